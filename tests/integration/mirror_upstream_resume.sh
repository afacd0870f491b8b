#!/bin/bash
# hydra-mirror reading an upstream release (issue 16) from a host that drops
# the connection in the middle of a range once: the read is resumed by
# Range from the last byte received, the member arrives whole and verified.
# A large member streams while it is extracted; a small one is stored first.
. "$(dirname "$0")/../lib.sh"

command -v python3 > /dev/null || { t_skip "upstream resume" "python3 is not installed"; t_done; }

M="$BIN/hydra-mirror"
mkdir -p "$T_DIR/www"
python3 - "$T_DIR/www/rel.zip" <<'PY'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_STORED) as zf:
    zf.writestr("small.txt", b"small\n")
    zf.writestr("big.bin", os.urandom(3 * 1024 * 1024))
with zipfile.ZipFile(sys.argv[1]) as zf:
    open(sys.argv[1] + ".big", "wb").write(zf.read("big.bin"))
PY

# A range server that cuts the first large range after half its bytes.
cat > "$T_DIR/server.py" <<'PY'
import http.server, os, re, sys
path, port = sys.argv[1], int(sys.argv[2])
data = open(path, "rb").read()
dropped = [False]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        sys.stderr.write("%s %s\n" % (self.path, self.headers.get("Range")))
    def do_GET(self):
        m = re.match(r"bytes=(\d+)-(\d+)", self.headers.get("Range", ""))
        a, b = (int(m.group(1)), int(m.group(2))) if m else (0, len(data) - 1)
        b = min(b, len(data) - 1)
        body = data[a:b + 1]
        self.send_response(206 if m else 200)
        self.send_header("Accept-Ranges", "bytes")
        if m:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (a, b, len(data)))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if len(body) > 200000 and not dropped[0]:
            dropped[0] = True
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            sys.stderr.write("dropped after %d bytes\n" % (len(body) // 2))
            return
        self.wfile.write(body)
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY
UP=$(t_free_port)
t_start upstream "$T_DIR/upstream.log" python3 "$T_DIR/server.py" "$T_DIR/www/rel.zip" "$UP"
t_wait_tcp 127.0.0.1 "$UP" 10000 || { t_fail "range server starts" "no listener"; t_done; }

PORT=$(t_free_port)
cat > "$T_DIR/m.yaml" <<YAML
listen: 127.0.0.1:$PORT
root: $T_DIR/root
tools_upstream:
  archive_url: "http://127.0.0.1:$UP/rel.zip?t={tool_id}&v={version}"
  import: on_request_only
YAML
LOG="$T_DIR/mirror.log"
t_start mirror "$LOG" "$M" --config "$T_DIR/m.yaml"
t_wait_log "$LOG" "hydra-mirror listening on 127.0.0.1:$PORT" 10000 ||
	{ t_fail "mirror starts" "see log"; cat "$LOG"; t_done; }

CODE=$(curl -s -o "$T_DIR/big" -w '%{http_code}' \
	"http://127.0.0.1:$PORT/api/v1/tools/demo/1.0/files/big.bin")
t_eq "member over a dropped connection: 200" "$CODE" 200
t_eq "member over a dropped connection: whole and right" \
	"$(cmp -s "$T_DIR/big" "$T_DIR/www/rel.zip.big" && echo same)" same
t_grep "the server did drop the connection" "$T_DIR/upstream.log" "dropped after"
t_grep "the read was resumed by range" "$LOG" "resuming by range"
t_grep "a large member streams while it is extracted" "$LOG" \
	"upstream streams tools/demo/1.0/files/big.bin (3145728 bytes) while it is extracted"
CODE=$(curl -s -o "$T_DIR/small" -D "$T_DIR/small.h" -w '%{http_code}' \
	"http://127.0.0.1:$PORT/api/v1/tools/demo/1.0/files/small.txt")
t_eq "a small member: 200" "$CODE" 200
t_grep "a small member is stored first and carries its digest" "$T_DIR/small.h" \
	"X-File-SHA256: $(printf 'small\n' | sha256sum | cut -d' ' -f1)"
t_stop mirror
t_done
