#!/bin/bash
# hydra-mirror (origin) reads tools misses out of upstream release ZIPs
# (issue 16). A local nginx stands in for GitHub: the release host answers
# with a 302 to an asset host that serves the ZIPs with ranges. Checked:
# the first member by range (bytes, digest headers, archive bytes read),
# the background import and its generated manifest, an upstream manifest
# and a member that disagrees with it, a hydra-agent sync through the HQ,
# the admin import, the token kept from the asset host, and refusals (a
# traversal name, a symlink entry, a ZIP bomb, an archive cut short, a
# redirect loop, a 429 with Retry-After) that store nothing.
. "$(dirname "$0")/../lib.sh"
. "$T_ROOT/tests/support/upstream_env.sh"

command -v nginx > /dev/null || { t_skip "mirror upstream" "nginx is not installed"; t_done; }
command -v python3 > /dev/null || { t_skip "mirror upstream" "python3 is not installed"; t_done; }

M="$BIN/hydra-mirror"
A="$BIN/hydra-agent"
WWW="$T_DIR/www"
mkdir -p "$WWW" "$T_DIR/nginx/t"

# The releases. demo 1.0: small sources and one large stored member.
python3 - "$WWW" <<'PY'
import hashlib, json, os, sys, zipfile
www = sys.argv[1]
def z(tool, ver, members, method=zipfile.ZIP_DEFLATED):
    os.makedirs(f"{www}/{tool}", exist_ok=True)
    with zipfile.ZipFile(f"{www}/{tool}/{tool}-{ver}.zip", "w", method) as zf:
        for name, data in members:
            if isinstance(data, tuple):  # (bytes, external_attr)
                zi = zipfile.ZipInfo(name)
                zi.create_system = 3
                zi.external_attr = data[1]
                zf.writestr(zi, data[0])
            else:
                zf.writestr(name, data)
rnd = os.urandom
main = (b"# main.py\n" + rnd(12000).hex().encode())[:24356]
z("demo", "1.0", [("src/main.py", main), ("README.md", b"demo 1.0\n"),
                  ("models/big.bin", rnd(24 * 1024 * 1024))])
z("demo", "3.0", [(f"f{i}.txt", f"file {i}\n".encode()) for i in range(4)] +
  [("pad.bin", rnd(6000))])
z("demo", "2.0", [("src/main.py", b"print('two')\n"), ("lib/util.py", b"x = 2\n")])
z("evil", "1.0", [("src/ok.txt", b"fine\n"), ("../escape.txt", b"out\n")])
z("link", "1.0", [("src/ok.txt", b"fine\n"), ("src/ln", (b"/etc/passwd", 0o120777 << 16))])
z("bomb", "1.0", [("zeros.bin", bytes(64 * 1024 * 1024))])
z("cut", "1.0", [("src/a.txt", rnd(200000)), ("src/b.txt", b"b\n")])
with open(f"{www}/cut/cut-1.0.zip", "r+b") as f:
    f.truncate(os.path.getsize(f"{www}/cut/cut-1.0.zip") // 2)
z("crc", "1.0", [("big.bin", rnd(2 * 1024 * 1024))], zipfile.ZIP_STORED)
with open(f"{www}/crc/crc-1.0.zip", "r+b") as f:
    f.seek(1000000)
    x = f.read(1)
    f.seek(1000000)
    f.write(bytes([x[0] ^ 0xFF]))
# A stored member whose headers declare half its real size.
z("liar", "1.0", [("data.bin", rnd(100000))], zipfile.ZIP_STORED)
with open(f"{www}/liar/liar-1.0.zip", "r+b") as f:
    raw = bytearray(f.read())
    cd = raw.rfind(b"PK\x01\x02")
    for at in (22, cd + 24):
        raw[at:at + 4] = (50000).to_bytes(4, "little")
    f.seek(0)
    f.write(raw)
a, b = b"alpha\n", b"beta\n"
z("mf", "1.0", [("a.txt", a), ("b.txt", b)])
man = {"manifest_version": "1.0", "tool_id": "mf", "tool_version": "1.0", "files": [
    {"path": "a.txt", "sha256": hashlib.sha256(a).hexdigest(), "size": len(a),
     "url": "http://x/a.txt"},
    {"path": "b.txt", "sha256": "0" * 64, "size": len(b), "url": "http://x/b.txt"}],
    "manifest_hash": "0" * 64}
with open(f"{www}/mf/mf-1.0.manifest.json", "w") as f:
    json.dump(man, f)
z("mf2", "1.0", [("a.txt", a)])
man["tool_id"] = "mf2"
man["files"] = [man["files"][0], dict(man["files"][0], path="missing.txt")]
with open(f"{www}/mf2/mf2-1.0.manifest.json", "w") as f:
    json.dump(man, f)
with open(f"{www}/demo/src-main.py", "wb") as f:
    f.write(main)
PY

GH=$(t_free_port)
NORANGE=$(t_free_port)
up_nginx '$server_port $request_uri $status $bytes_sent "$http_authorization" "$http_range"' \
	"location /loop/ { return 302 http://127.0.0.1:$GH\$request_uri; }
    location /limited/ { add_header Retry-After 120 always; return 429; }" \
	"server { listen 127.0.0.1:$NORANGE; access_log $T_DIR/nginx/norange.log b; root $WWW;
    max_ranges 0; limit_rate 2k; }" ||
	{ t_fail "nginx starts" "no listener"; t_done; }

printf 'tok-%s\n' "$RANDOM$RANDOM" > "$T_DIR/token"
TOKEN=$(head -n1 "$T_DIR/token")
printf 'gh-%s\n' "$RANDOM$RANDOM" > "$T_DIR/ghtoken"
GHTOKEN=$(head -n1 "$T_DIR/ghtoken")
PORT=$(t_free_port)
ROOT="$T_DIR/origin"
cat > "$T_DIR/mirror.yaml" <<YAML
listen: 127.0.0.1:$PORT
root: $ROOT
mode: origin
admin_token_file: $T_DIR/token
tools_upstream:
  archive_url: "http://127.0.0.1:$GH/{tool_id}/{tool_id}-{version}.zip"
  manifest_url: "http://127.0.0.1:$GH/{tool_id}/{tool_id}-{version}.manifest.json"
  token_file: $T_DIR/ghtoken
  max_archive_bytes: 1G
  import: on_first_use
YAML
LOG="$T_DIR/origin.log"
t_start origin "$LOG" "$M" --config "$T_DIR/mirror.yaml"
t_wait_log "$LOG" "hydra-mirror listening on 127.0.0.1:$PORT" 10000 ||
	{ t_fail "mirror starts" "see log"; cat "$LOG"; t_done; }
T="http://127.0.0.1:$PORT/api/v1/tools"


# 1. The first member, by range.
get main "$T/demo/1.0/files/src/main.py"
t_eq "first member: 200" "$CODE" 200
WANT=$(sha256sum "$WWW/demo/src-main.py" | cut -d' ' -f1)
t_eq "first member: the right bytes" "$(sha256sum < "$T_DIR/main.body" | cut -d' ' -f1)" "$WANT"
t_eq "first member: X-File-SHA256" "$(header main X-File-SHA256)" "$WANT"
t_grep "first member: the log names the member and the release" "$LOG" \
	"upstream fetch tools/demo/1.0/files/src/main.py from http://127.0.0.1:$GH/demo/demo-1.0.zip"
BYTES=$(sed -n 's|.*upstream fetched tools/demo/1.0/files/src/main.py: \([0-9]*\) archive bytes.*by range.*|\1|p' "$LOG")
if [ -n "$BYTES" ] && [ "$BYTES" -lt 1048576 ]; then
	t_ok "first member: read by range, $BYTES archive bytes of a 24 MiB release"
else
	t_fail "first member: read by range under 1 MiB" "got '$BYTES'"
fi
t_grep "the token goes to the release host" "$T_DIR/nginx/gh.log" "Bearer $GHTOKEN"
t_nogrep "the token never goes to the asset host" "$T_DIR/nginx/assets.log" "$GHTOKEN"

# 2. The background import and the generated manifest.
t_wait_log "$LOG" "upstream imported tools/demo/1.0: 3 files, manifest generated" 30000 &&
	t_ok "background import of the whole version" || t_fail "background import" "see log"
get manifest "$T/demo/1.0/manifest.json"
t_eq "generated manifest: 200" "$CODE" 200
t_eq "generated manifest: three files" "$(jq '.files | length' "$T_DIR/manifest.body")" 3
t_eq "generated manifest: has a manifest_hash" \
	"$(jq -r '.manifest_hash | length' "$T_DIR/manifest.body")" 64
get big "$T/demo/1.0/files/models/big.bin"
t_eq "large member: served after the import" "$(sha256sum < "$T_DIR/big.body" | cut -d' ' -f1)" \
	"$(jq -r '.files[] | select(.path == "models/big.bin") | .sha256' "$T_DIR/manifest.body")"

# 3. A worker syncs the version through the HQ.
cat > "$T_DIR/agent.yaml" <<YAML
node_id: node-test
state_dir: $T_DIR/state
log_file: $T_DIR/agent.log
YAML
"$A" --config "$T_DIR/agent.yaml" sync --manifest "$T/demo/1.0/manifest.json" \
	--dir "$T_DIR/d1" > "$T_DIR/sync.out" 2>&1
t_eq "sync through the HQ: exits 0" "$?" 0
t_eq "sync through the HQ: main.py" "$(cmp -s "$T_DIR/d1/src/main.py" "$WWW/demo/src-main.py" && echo same)" same

# 4. The admin import, and a manifest.json miss importing the version.
CODE=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$T/demo/2.0/import")
t_eq "import without the token: 401" "$CODE" 401
CODE=$(curl -s -o "$T_DIR/imp.body" -w '%{http_code}' -X POST -H "Authorization: Bearer $TOKEN" \
	"$T/demo/2.0/import")
t_eq "admin import: 200 with the manifest" "$CODE" 200
t_eq "admin import: two files" "$(jq '.files | length' "$T_DIR/imp.body" 2>/dev/null)" 2

# 5. An upstream manifest: its digests decide.
get mfa "$T/mf/1.0/files/a.txt"
t_eq "upstream manifest: a listed member that matches, 200" "$CODE" 200
get mfb "$T/mf/1.0/files/b.txt"
t_eq "upstream manifest: a member that disagrees, 502" "$CODE" 502
t_grep "upstream manifest: the reason is logged" "$LOG" "b.txt: sha256"
t_eq "upstream manifest: the bad member is not stored" \
	"$([ -e "$ROOT/files/tools/mf/1.0/files/b.txt" ] && echo stored || echo absent)" absent

CODE=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $TOKEN" \
	"$T/mf2/1.0/import")
t_eq "upstream manifest listing a file the archive lacks: import 502" "$CODE" 502
t_grep "upstream manifest listing a file the archive lacks: logged" "$LOG" \
	"lists missing.txt, the archive has no such member"
t_eq "upstream manifest listing a file the archive lacks: no manifest stored" \
	"$([ -e "$ROOT/files/tools/mf2/1.0/manifest.json" ] && echo stored || echo absent)" absent

# 6. Bad archives: 502, the reason logged, nothing stored; the next request tries again.
refused "traversal name" "evil/1.0/files/src/ok.txt" "member '../escape.txt' refused: a '..' segment"
refused "symlink entry" "link/1.0/files/src/ok.txt" "member 'src/ln' refused: a symlink entry"
refused "zip bomb" "bomb/1.0/files/zeros.bin" "(a ZIP bomb?)"
refused "archive cut short" "cut/1.0/files/src/b.txt" "cut/cut-1.0.zip: not a readable ZIP"
N1=$(grep -c ' /evil/evil-1.0.zip ' "$T_DIR/nginx/gh.log")
get evil2 "$T/evil/1.0/files/src/ok.txt"
t_eq "a refused release is read again on the next request" \
	"$(grep -c ' /evil/evil-1.0.zip ' "$T_DIR/nginx/gh.log")" $((N1 + 1))
get nosuch "$T/nosuch/1.0/files/a.txt"
t_eq "a release upstream does not have: 404" "$CODE" 404
get nomember "$T/demo/2.0/files/no/such.txt"
t_eq "a member the release does not hold: 404" "$CODE" 404
curl -s -o "$T_DIR/crc.body" "$T/crc/1.0/files/big.bin"
CURL_RC=$?
t_eq "a streamed member failing its CRC-32: the transfer is cut (curl 18)" "$CURL_RC" 18
t_eq "a streamed member failing its CRC-32: the last byte was held back" \
	"$([ "$(stat -c %s "$T_DIR/crc.body")" -lt 2097152 ] && echo short)" short
t_grep "a streamed member failing its CRC-32: logged" "$LOG" "big.bin: CRC error"
t_eq "a streamed member failing its CRC-32: nothing stored" \
	"$(find "$ROOT/files/tools/crc" -type f 2>/dev/null | wc -l)" 0
get liar "$T/liar/1.0/files/data.bin"
t_eq "a member larger than its declared size: 502" "$CODE" 502
t_grep "a member larger than its declared size: logged" "$LOG" "data.bin: larger than its declared 50000 bytes"
t_eq "a member larger than its declared size: nothing stored" \
	"$(find "$ROOT/files/tools/liar" -type f 2>/dev/null | wc -l)" 0
refused "redirect loop" "loop/1.0/files/a.txt" "more than 5 redirects"
t_eq "stale temp files: none left" "$(find "$ROOT/tmp" -type f | wc -l)" 0

# 7. A rate limit: 503 with Retry-After, and no retry storm.
get lim "$T/limited/1.0/files/a.txt"
t_eq "rate limited: 503" "$CODE" 503
RA=$(header lim Retry-After)
if [ -n "$RA" ] && [ "$RA" -gt 100 ] && [ "$RA" -le 120 ]; then
	t_ok "rate limited: Retry-After $RA"
else
	t_fail "rate limited: Retry-After near 120" "got '$RA'"
fi
get lim2 "$T/limited/1.0/files/b.txt"
t_eq "rate limited: the next miss is 503 too" "$CODE" 503
t_eq "rate limited: upstream asked once" "$(grep -c ' /limited/' "$T_DIR/nginx/gh.log")" 1
get hit "$T/demo/1.0/files/README.md"
t_eq "rate limited: stored files are still served" "$CODE" 200

curl -s "http://127.0.0.1:$PORT/metrics" > "$T_DIR/metrics"
t_grep "metrics: members read on demand" "$T_DIR/metrics" "hydra_mirror_upstream_members_total "
t_grep "metrics: one rate limit" "$T_DIR/metrics" "hydra_mirror_upstream_rate_limited_total 1"
t_grep "metrics: imports counted" "$T_DIR/metrics" "hydra_mirror_upstream_imports_total 2"
t_stop origin

# 8. An upstream without ranges: read whole once, even for concurrent misses.
PORT2=$(t_free_port)
cat > "$T_DIR/norange.yaml" <<YAML
listen: 127.0.0.1:$PORT2
root: $T_DIR/origin2
tools_upstream:
  archive_url: "http://127.0.0.1:$NORANGE/{tool_id}/{tool_id}-{version}.zip"
  import: on_request_only
YAML
LOG2="$T_DIR/origin2.log"
t_start origin2 "$LOG2" "$M" --config "$T_DIR/norange.yaml"
t_wait_log "$LOG2" "hydra-mirror listening on 127.0.0.1:$PORT2" 10000 ||
	{ t_fail "second mirror starts" "see log"; cat "$LOG2"; t_done; }
PIDS=""
# The whole read takes about 3 s (limit_rate): the four misses all queue on it.
for i in 0 1 2 3; do
	curl -s -o "$T_DIR/c$i.body" "http://127.0.0.1:$PORT2/api/v1/tools/demo/3.0/files/f$i.txt" &
	PIDS="$PIDS $!"
done
# shellcheck disable=SC2086
wait $PIDS
ALL=same
for i in 0 1 2 3; do [ "$(cat "$T_DIR/c$i.body")" = "file $i" ] || ALL="c$i differs"; done
t_eq "no ranges: four concurrent misses answered" "$ALL" same
t_eq "no ranges: the archive was read whole once" \
	"$(grep -c ' /demo/demo-3.0.zip 200 ' "$T_DIR/nginx/norange.log")" 1
t_grep "no ranges: logged" "$LOG2" "no range support, read whole"
get noimp "http://127.0.0.1:$PORT2/api/v1/tools/demo/3.0/manifest.json"
t_eq "on_request_only: no manifest until an import" "$CODE" 404
t_stop origin2
t_done
