#!/bin/bash
# Pre-warm against a lying origin: a journal id that is not what an origin
# writes (not hex, a space in it, too long) or negative sequence numbers in
# an answer of changes are refused with the field named, nothing is saved,
# and the peer keeps serving; a good answer afterwards is followed. A saved
# position whose id is not lower-case hex is unreadable at the next start.
. "$(dirname "$0")/../lib.sh"

M="$BIN/hydra-mirror"
if ! command -v python3 > /dev/null; then
	t_skip "pre-warm against a lying origin" "python3 not installed"
	t_done
fi

# The origin: answers every GET of changes with the JSON in $T_DIR/answer.json
# as it is at that moment, anything else with 404.
cat > "$T_DIR/liar.py" <<'EOF'
import http.server, socketserver, sys
port, answer = int(sys.argv[1]), sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        if not self.path.startswith("/api/v1/peer/changes"):
            self.send_response(404); self.send_header("Content-Length", "0"); self.end_headers(); return
        data = open(answer, "rb").read()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
S(("127.0.0.1", port), H).serve_forever()
EOF
GOOD_ID=0123456789abcdef0123456789abcdef
# answer ID FIRST LAST: the next answer of changes.
answer() {
	printf '{"journal_id":"%s","first_seq":%s,"last_seq":%s,"entries":[]}\n' "$1" "$2" "$3" \
		> "$T_DIR/answer.json.new"
	mv "$T_DIR/answer.json.new" "$T_DIR/answer.json"
}
answer "$GOOD_ID" 1 -5
LPORT=$(t_free_port)
t_start liar "$T_DIR/liar.log" python3 -u "$T_DIR/liar.py" "$LPORT" "$T_DIR/answer.json"
t_wait_tcp 127.0.0.1 "$LPORT" 10000 || { t_fail "the lying origin starts" "see log"; t_done; }

PROOT="$T_DIR/peer"
PPORT=$(t_free_port)
cat > "$T_DIR/peer.yaml" <<YAML
listen: "127.0.0.1:$PPORT"
root: $PROOT
mode: peer
origin_url: "http://127.0.0.1:$LPORT"
shutdown_grace_s: 1
prewarm:
  enabled: true
  wait_s: 1
YAML
start_peer() {
	t_start peer "$T_DIR/peer.log" "$M" --config "$T_DIR/peer.yaml"
	t_wait_log "$T_DIR/peer.log" "listening on 127.0.0.1:$PPORT (peer)" 10000 ||
		{ t_fail "peer starts" "see log"; t_done; }
}
start_peer
# The follower retries every 2 s after a refused answer; five times that.
BOUND_MS=10000

# refused NAME TEXT: sets the answer first (answer ...), then polls until
# the peer logs TEXT once more than before, and checks that nothing was
# saved and that the peer still answers.
refused() {
	local name=$1 text=$2 before end
	shift 2
	before=$(grep -c -F "$text" "$T_DIR/peer.log")
	answer "$@"
	end=$(( $(date +%s%N) / 1000000 + BOUND_MS ))
	while [ "$(grep -c -F "$text" "$T_DIR/peer.log")" -le "$before" ] &&
		[ $(( $(date +%s%N) / 1000000 )) -lt "$end" ]; do sleep 0.05; done
	if [ "$(grep -c -F "$text" "$T_DIR/peer.log")" -gt "$before" ]; then
		t_ok "$name is refused ($text)"
	else
		t_fail "$name is refused" "$(grep prewarm "$T_DIR/peer.log" | tail -n 3)"
	fi
	if [ -e "$PROOT/meta/prewarm" ]; then
		t_fail "$name: nothing saved" "$(cat "$PROOT/meta/prewarm")"
	else
		t_ok "$name: nothing saved"
	fi
	t_eq "$name: the peer still answers" \
		"$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PPORT/api/v1/health")" 200
}
BAD_ID="journal_id: not 32 lower-case hex digits"
NEGATIVE="first_seq, last_seq: negative"
# The peer logs a failure once, and again when its reason changes: the
# refusals alternate so that each one is a new line.
refused "a journal id in upper case" "$BAD_ID" 0123456789ABCDEF0123456789ABCDEF 1 7
refused "a negative last_seq" "$NEGATIVE" "$GOOD_ID" 1 -5
refused "a journal id with a space" "$BAD_ID" "0123456789abcdef 123456789abcdef" 1 7
refused "a negative first_seq" "$NEGATIVE" "$GOOD_ID" -1 7
refused "a journal id too long" "$BAD_ID" "${GOOD_ID}00" 1 7

answer "$GOOD_ID" 1 7
if t_wait_log "$T_DIR/peer.log" "prewarm: following journal $GOOD_ID from 7" "$BOUND_MS"; then
	t_ok "a good answer afterwards is followed"
else
	t_fail "a good answer afterwards is followed" "$(grep prewarm "$T_DIR/peer.log" | tail -n 3)"
fi
# The position is saved before that line is logged.
t_eq "the position saved is the good one" "$(cut -d' ' -f3,4 "$PROOT/meta/prewarm")" \
	"$GOOD_ID 7"

# A saved id in upper case is not what the peer writes: unreadable.
t_stop peer
printf 'hydra-mirror-prewarm 1 %s 7\n' "0123456789ABCDEF0123456789ABCDEF" > "$PROOT/meta/prewarm"
mv "$T_DIR/peer.log" "$T_DIR/peer1.log"
start_peer
t_wait_log "$T_DIR/peer.log" "unreadable; following from the origin's end" "$BOUND_MS" &&
	t_ok "a saved position with an upper-case id is unreadable" ||
	t_fail "a saved position with an upper-case id is unreadable" "$(head -n 5 "$T_DIR/peer.log")"
t_done
