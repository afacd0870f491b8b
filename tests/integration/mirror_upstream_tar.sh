#!/bin/bash
# hydra-mirror (origin) reads tools misses out of upstream .tar.gz releases
# (issue 16): no random access, so the archive is read whole once and
# rewritten as a ZIP by libarchive. A local nginx stands in for GitHub (a
# 302 to the asset host). Checked: the first member, the background import
# and its generated manifest, a sync through the HQ, an admin DELETE of the
# version followed by a new import, refusals (a traversal name, an absolute
# path, a symlink, a hard link, a gzip bomb, an archive cut short) that
# store nothing, and a manifest.json miss during a long import answered 503
# with Retry-After instead of being held.
. "$(dirname "$0")/../lib.sh"
. "$T_ROOT/tests/support/upstream_env.sh"

command -v nginx > /dev/null || { t_skip "mirror upstream tar" "nginx is not installed"; t_done; }
command -v python3 > /dev/null || { t_skip "mirror upstream tar" "python3 is not installed"; t_done; }

M="$BIN/hydra-mirror"
A="$BIN/hydra-agent"
WWW="$T_DIR/www"
mkdir -p "$WWW" "$T_DIR/nginx/t"

python3 - "$WWW" <<'PY'
import io, os, sys, tarfile
www = sys.argv[1]
def t(tool, ver, members):
    os.makedirs(f"{www}/{tool}", exist_ok=True)
    with tarfile.open(f"{www}/{tool}/{tool}-{ver}.tar.gz", "w:gz") as tf:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            if data is None:
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
            elif isinstance(data, tuple):  # (type, target)
                ti.type, ti.linkname = data
                tf.addfile(ti)
            else:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
rnd = os.urandom
main = (b"# main.py\n" + rnd(12000).hex().encode())[:24356]
big = rnd(3 * 1024 * 1024)
t("demo", "1.0", [("./", None), ("./src/", None), ("./src/main.py", main),
                  ("./README.md", b"demo 1.0\n"), ("./models/big.bin", big)])
open(f"{www}/demo/main.py", "wb").write(main)
open(f"{www}/demo/big.bin", "wb").write(big)
t("evil", "1.0", [("src/ok.txt", b"fine\n"), ("../escape.txt", b"out\n")])
t("abs", "1.0", [("src/ok.txt", b"fine\n"), ("/tmp/abs.txt", b"out\n")])
t("link", "1.0", [("src/ok.txt", b"fine\n"), ("src/ln", (tarfile.SYMTYPE, "/etc/passwd"))])
t("hard", "1.0", [("src/ok.txt", b"fine\n"), ("src/hl", (tarfile.LNKTYPE, "src/ok.txt"))])
t("bomb", "1.0", [("zeros.bin", bytes(256 * 1024 * 1024))])
t("cut", "1.0", [("src/a.txt", rnd(200000)), ("src/b.txt", b"b\n")])
p = f"{www}/cut/cut-1.0.tar.gz"
with open(p, "r+b") as f:
    f.truncate(os.path.getsize(p) // 2)
t("slow", "1.0", [("a.txt", b"a\n"), ("pad.bin", rnd(1024 * 1024))])
PY

up_nginx '$server_port $request_uri $status $bytes_sent "$http_range"' ||
	{ t_fail "nginx starts" "no listener"; t_done; }

printf 'tok-%s\n' "$RANDOM$RANDOM" > "$T_DIR/token"
TOKEN=$(head -n1 "$T_DIR/token")
PORT=$(t_free_port)
ROOT="$T_DIR/origin"
cat > "$T_DIR/mirror.yaml" <<YAML
listen: 127.0.0.1:$PORT
root: $ROOT
mode: origin
admin_token_file: $T_DIR/token
tools_upstream:
  archive_url: "http://127.0.0.1:$GH/{tool_id}/{tool_id}-{version}.tar.gz"
  max_archive_bytes: 1G
  import: on_first_use
YAML
LOG="$T_DIR/origin.log"
t_start origin "$LOG" "$M" --config "$T_DIR/mirror.yaml"
t_wait_log "$LOG" "hydra-mirror listening on 127.0.0.1:$PORT" 10000 ||
	{ t_fail "mirror starts" "see log"; cat "$LOG"; t_done; }
T="http://127.0.0.1:$PORT/api/v1/tools"

reads() { grep -c " /$1 " "$T_DIR/nginx/gh.log"; }

# 1. The first member: the archive read whole, rewritten, the member served.
get main "$T/demo/1.0/files/src/main.py"
t_eq "first member: 200" "$CODE" 200
WANT=$(sha256sum "$WWW/demo/main.py" | cut -d' ' -f1)
t_eq "first member: the right bytes" "$(sha256sum < "$T_DIR/main.body" | cut -d' ' -f1)" "$WANT"
t_eq "first member: X-File-SHA256" "$(header main X-File-SHA256)" "$WANT"
t_grep "first member: the .tar.gz was read whole" "$LOG" \
	"upstream http://127.0.0.1:$ASSETS/demo/demo-1.0.tar.gz: .tar.gz read whole"
t_nogrep "first member: no Range asked of a .tar.gz" "$T_DIR/nginx/assets.log" '"bytes='

# 2. The background import, its manifest, a sync through the HQ.
t_wait_log "$LOG" "upstream imported tools/demo/1.0: 3 files, manifest generated" 30000 &&
	t_ok "background import of the whole version" || t_fail "background import" "see log"
get manifest "$T/demo/1.0/manifest.json"
t_eq "generated manifest: 200" "$CODE" 200
t_eq "generated manifest: three files, no directory, no './'" \
	"$(jq -r '[.files[].path] | sort | join(",")' "$T_DIR/manifest.body")" \
	"README.md,models/big.bin,src/main.py"
cat > "$T_DIR/agent.yaml" <<YAML
node_id: node-test
state_dir: $T_DIR/state
log_file: $T_DIR/agent.log
YAML
"$A" --config "$T_DIR/agent.yaml" sync --manifest "$T/demo/1.0/manifest.json" \
	--dir "$T_DIR/d1" > "$T_DIR/sync.out" 2>&1
t_eq "sync through the HQ: exits 0" "$?" 0
t_eq "sync through the HQ: the large member" \
	"$(cmp -s "$T_DIR/d1/models/big.bin" "$WWW/demo/big.bin" && echo same)" same

# 3. An admin DELETE of the version: the next miss imports it again.
N1=$(reads demo/demo-1.0.tar.gz)
CODE=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" -X DELETE \
	"$T/demo/1.0")
t_eq "admin DELETE of the version: 200" "$CODE" 200
get again "$T/demo/1.0/manifest.json"
t_eq "after the DELETE: manifest.json imported again, 200" "$CODE" 200
t_eq "after the DELETE: the archive was read again" "$(reads demo/demo-1.0.tar.gz)" $((N1 + 1))
t_eq "after the DELETE: every file is back" \
	"$(find "$ROOT/files/tools/demo/1.0/files" -type f | wc -l)" 3
t_grep "after the DELETE: logged" "$LOG" "upstream tools/demo/1.0 left the store"

# 4. Bad archives: 502, the reason logged, nothing stored.
refused "traversal name" "evil/1.0/files/src/ok.txt" "member '../escape.txt' refused: a '..' segment"
refused "absolute path" "abs/1.0/files/src/ok.txt" "member '/tmp/abs.txt' refused: an absolute path"
refused "symlink entry" "link/1.0/files/src/ok.txt" "member 'src/ln' refused: a symlink entry"
refused "hard link entry" "hard/1.0/files/src/ok.txt" "member 'src/hl' refused: a hard link entry"
refused "gzip bomb" "bomb/1.0/files/zeros.bin" "(a bomb)"
refused "archive cut short" "cut/1.0/files/src/b.txt" "cut/cut-1.0.tar.gz: "
N1=$(reads evil/evil-1.0.tar.gz)
get evil2 "$T/evil/1.0/files/src/ok.txt"
t_eq "a refused release is read again on the next request" \
	"$(reads evil/evil-1.0.tar.gz)" $((N1 + 1))
t_eq "stale temp files: none left" "$(find "$ROOT/tmp" -type f | wc -l)" 0
t_stop origin

# 5. A manifest.json miss while a long import runs: 503 with Retry-After,
# not a request held for the whole transfer. The server trickles the
# archive (well above the stall limit) until the test lets it finish.
cat > "$T_DIR/slow.py" <<'PY'
import http.server, os, sys, time
path, port, gate = sys.argv[1], int(sys.argv[2]), sys.argv[3]
data = open(path, "rb").read()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        at = 0
        while not os.path.exists(gate) and at < len(data) // 2:
            self.wfile.write(data[at:at + 8192])
            self.wfile.flush()
            at += 8192
            time.sleep(0.25)
        while not os.path.exists(gate):
            time.sleep(0.1)
        self.wfile.write(data[at:])
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY
SLOW=$(t_free_port)
t_start slow "$T_DIR/slow.log" python3 "$T_DIR/slow.py" "$WWW/slow/slow-1.0.tar.gz" "$SLOW" \
	"$T_DIR/gate"
t_wait_tcp 127.0.0.1 "$SLOW" 10000 || { t_fail "slow server starts" "no listener"; t_done; }
PORT2=$(t_free_port)
cat > "$T_DIR/slow.yaml" <<YAML
listen: 127.0.0.1:$PORT2
root: $T_DIR/origin2
tools_upstream:
  archive_url: "http://127.0.0.1:$SLOW/{tool_id}-{version}.tar.gz"
  import: on_first_use
YAML
LOG2="$T_DIR/origin2.log"
t_start origin2 "$LOG2" "$M" --config "$T_DIR/slow.yaml"
t_wait_log "$LOG2" "hydra-mirror listening on 127.0.0.1:$PORT2" 10000 ||
	{ t_fail "second mirror starts" "see log"; cat "$LOG2"; t_done; }
get slowman "http://127.0.0.1:$PORT2/api/v1/tools/slow/1.0/manifest.json"
t_eq "long import: manifest.json miss 503" "$CODE" 503
t_eq "long import: Retry-After" "$(header slowman Retry-After)" 10
touch "$T_DIR/gate"
t_wait_log "$LOG2" "upstream imported tools/slow/1.0: 2 files" 60000 &&
	t_ok "long import: finishes" || t_fail "long import: finishes" "see log"
get slowman2 "http://127.0.0.1:$PORT2/api/v1/tools/slow/1.0/manifest.json"
t_eq "long import: manifest.json afterwards 200" "$CODE" 200
t_stop origin2
t_stop slow
t_done
