#!/bin/bash
# hydra-mirror as a service (issue 13): real signals to the real binary.
# SIGHUP with a good config (values change, a transfer goes on), a bad one
# and one that changes listen (refused, the old config stays); sd_notify
# readiness, reload and stop read from a NOTIFY_SOCKET of our own; SIGTERM
# during a throttled 20 MB download (every byte arrives, new connections
# are refused, exit 0); the access log field by field; the audit of writes;
# --check-config; journal priority prefixes.
. "$(dirname "$0")/../lib.sh"

M="$BIN/hydra-mirror"
if ! command -v python3 > /dev/null; then
	t_skip "mirror lifecycle" "python3 not installed (the NOTIFY_SOCKET reader)"
	t_done
fi
ROOT="$T_DIR/origin"
mkdir -p "$ROOT/files/b"
head -c 20000000 /dev/urandom > "$ROOT/files/b/big.bin"
BIG_SHA=$(sha256sum "$ROOT/files/b/big.bin" | cut -d' ' -f1)
printf 'small\n' > "$ROOT/files/b/small.txt"
printf 'tok-one-%s\n' "$RANDOM$RANDOM" > "$T_DIR/token1"
printf 'tok-two-%s\n' "$RANDOM$RANDOM" > "$T_DIR/token2"
chmod 600 "$T_DIR/token1" "$T_DIR/token2"
TOKEN1=$(head -n1 "$T_DIR/token1")
TOKEN2=$(head -n1 "$T_DIR/token2")
PORT=$(t_free_port)
U="http://127.0.0.1:$PORT/api/v1/peer/files"

# cfg EGRESS TOKENFILE ACCESSLOG [LISTENPORT]: writes the config file.
cfg() {
	printf 'listen: 127.0.0.1:%s\nroot: %s\nmode: origin\nadmin_token_file: %s\n' \
		"${4:-$PORT}" "$ROOT" "$2" > "$T_DIR/mirror.yaml"
	printf 'max_egress_bytes_per_s: %s\naccess_log: %s\nshutdown_grace_s: 30\n' \
		"$1" "$3" >> "$T_DIR/mirror.yaml"
}

# t_egrep NAME FILE REGEX: FILE has a line matching the extended REGEX.
t_egrep() {
	if grep -qE -- "$3" "$2" 2> /dev/null; then t_ok "$1"
	else t_fail "$1" "/$3/ not in $2"; tail -n 5 "$2" | sed 's/^/    | /'; fi
}

# -h, -V, -t
"$M" -h > "$T_DIR/help" 2>&1
t_grep "-h prints the usage" "$T_DIR/help" "SYNOPSIS"
t_grep "the usage names --check-config" "$T_DIR/help" "--check-config"
"$M" -V > "$T_DIR/version" 2>&1
t_egrep "-V prints the version" "$T_DIR/version" "^hydra-mirror [0-9]"
cfg 8M "$T_DIR/token1" "$T_DIR/access.log"
"$M" -t --config "$T_DIR/mirror.yaml" > "$T_DIR/check" 2>&1
t_eq "-t on a good config exits 0" "$?" 0
t_egrep "-t prints the effective config, defaults included" "$T_DIR/check" "^shutdown_grace_s: 30"
t_egrep "-t prints the file's values" "$T_DIR/check" "^max_egress_bytes_per_s: 8388608"
printf 'listen: 127.0.0.1:1\nroot: %s\nshutdown_grace_s: -3\n' "$ROOT" > "$T_DIR/bad.yaml"
"$M" --check-config --config "$T_DIR/bad.yaml" > "$T_DIR/check.bad" 2>&1
t_eq "--check-config on a bad config exits 78" "$?" 78
t_grep "and names file:line:col" "$T_DIR/check.bad" "bad.yaml:3:"

# The notify socket systemd would hold.
NS="$T_DIR/notify.sock"
t_start notify "$T_DIR/notify.log" python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("bound", flush=True)
while True:
    print(s.recv(4096).decode().replace("\n", " "), flush=True)
' "$NS"
t_wait_log "$T_DIR/notify.log" "bound" 10000 || { t_fail "notify reader" "did not bind"; t_done; }

NOTIFY_SOCKET="$NS" t_start mirror "$T_DIR/mirror.log" "$M" --config "$T_DIR/mirror.yaml"
MPID=$T_LAST_PID
t_wait_log "$T_DIR/mirror.log" "listening on 127.0.0.1:$PORT" 10000 ||
	{ t_fail "mirror starts" "$(cat "$T_DIR/mirror.log")"; t_done; }
if t_wait_log "$T_DIR/notify.log" "READY=1" 10000; then
	t_ok "READY=1 once listening"
else
	t_fail "READY=1 once listening" "$(cat "$T_DIR/notify.log")"
fi

# A transfer at 8 MB/s (2.5 s) runs across every reload below.
curl -s -A "lifecycle-test/1" -e "http://ref.example/x" -o "$T_DIR/across" \
	"$U/b/big.bin" &
CURL1=$!

# Good HUP: the token changes, and the access log moves.
curl -s -o /dev/null -w '%{http_code}' -T "$ROOT/files/b/small.txt" \
	-H "Authorization: Bearer $TOKEN1" "$U/up/one.txt" > "$T_DIR/put1"
t_eq "PUT with the first token" "$(cat "$T_DIR/put1")" 201
cfg 8M "$T_DIR/token2" "$T_DIR/access2.log"
kill -HUP "$MPID"
t_wait_log "$T_DIR/mirror.log" "reloaded $T_DIR/mirror.yaml" 10000 &&
	t_ok "HUP logs reloaded FILE" || t_fail "HUP logs reloaded FILE" "$(tail -5 "$T_DIR/mirror.log")"
t_wait_log "$T_DIR/notify.log" "RELOADING=1" 5000 &&
	t_ok "RELOADING=1 on HUP" || t_fail "RELOADING=1 on HUP" "$(cat "$T_DIR/notify.log")"
t_eq "READY=1 again after the reload" "$(grep -c 'READY=1' "$T_DIR/notify.log")" 2
code=$(curl -s -o /dev/null -w '%{http_code}' -T "$ROOT/files/b/small.txt" \
	-H "Authorization: Bearer $TOKEN1" "$U/up/two.txt")
t_eq "the old token is refused after the reload" "$code" 401
code=$(curl -s -o /dev/null -w '%{http_code}' -T "$ROOT/files/b/small.txt" \
	-H "Authorization: Bearer $TOKEN2" "$U/up/two.txt")
t_eq "the new token writes after the reload" "$code" 201
curl -s -o /dev/null "$U/b/small.txt"
t_grep "the access log moved to the new path" "$T_DIR/access2.log" "GET /api/v1/peer/files/b/small.txt"

# Bad HUP: a config that does not load, then one that moves the listener.
printf 'listen: 127.0.0.1:%s\nroot: %s\nmax_egress_bytes_per_s: lots\n' "$PORT" "$ROOT" \
	> "$T_DIR/mirror.yaml"
kill -HUP "$MPID"
t_wait_log "$T_DIR/mirror.log" "reload refused: $T_DIR/mirror.yaml:3:" 10000 &&
	t_ok "a bad config is refused with file:line:col" ||
	t_fail "a bad config is refused with file:line:col" "$(tail -5 "$T_DIR/mirror.log")"
cfg 8M "$T_DIR/token2" "$T_DIR/access2.log" "$(t_free_port)"
kill -HUP "$MPID"
t_wait_log "$T_DIR/mirror.log" "reload refused: listen needs a restart" 10000 &&
	t_ok "a listen change is refused and named" ||
	t_fail "a listen change is refused and named" "$(tail -5 "$T_DIR/mirror.log")"
code=$(curl -s -o /dev/null -w '%{http_code}' -T "$ROOT/files/b/small.txt" \
	-H "Authorization: Bearer $TOKEN2" "$U/up/three.txt")
t_eq "the config in force stays after refusals" "$code" 201
wait "$CURL1"
t_eq "the transfer across three reloads completes" "$?" 0
t_eq "and every byte is right" "$(sha256sum < "$T_DIR/across" | cut -d' ' -f1)" "$BIG_SHA"
kill -0 "$MPID" 2> /dev/null && t_ok "the mirror is still up" || t_fail "the mirror is still up" "gone"

# The access log, field by field (the reload moved it to access2.log).
curl -s -A "lifecycle-test/1" -e "http://ref.example/x" -o /dev/null "$U/b/small.txt"
line=$(grep 'lifecycle-test' "$T_DIR/access2.log" | tail -n1)
re='^([0-9.]+) - - \[([0-9]{2}/[A-Z][a-z]{2}/[0-9]{4}:[0-9:]{8} \+0000)\] "([A-Z]+) ([^ ]+) (HTTP/1\.[01])" ([0-9]{3}) ([0-9]+) "([^"]*)" "([^"]*)" ([0-9]+\.[0-9]{3}) (hit|miss|fill|bypass)$'
if [[ $line =~ $re ]]; then
	t_ok "an access log line is combined format plus time and outcome"
	t_eq "access log: client address" "${BASH_REMATCH[1]}" "127.0.0.1"
	t_eq "access log: method" "${BASH_REMATCH[3]}" "GET"
	t_eq "access log: path" "${BASH_REMATCH[4]}" "/api/v1/peer/files/b/small.txt"
	t_eq "access log: status" "${BASH_REMATCH[6]}" "200"
	t_eq "access log: body bytes" "${BASH_REMATCH[7]}" "6"
	t_eq "access log: referer" "${BASH_REMATCH[8]}" "http://ref.example/x"
	t_eq "access log: user agent" "${BASH_REMATCH[9]}" "lifecycle-test/1"
	t_eq "access log: outcome" "${BASH_REMATCH[11]}" "hit"
else
	t_fail "an access log line is combined format plus time and outcome" "$line"
fi
t_grep "the download across the reload is logged where it ended" "$T_DIR/access2.log" \
	'"GET /api/v1/peer/files/b/big.bin HTTP/1.1" 200 20000000 "http://ref.example/x"'
curl -s -o /dev/null -A 'ev"il' "$U/b/small.txt"
t_grep "a quote in a field is escaped as nginx does" "$T_DIR/access2.log" '"ev\x22il" 0.'
t_grep "the path is logged as sent" "$T_DIR/access2.log" '"GET /api/v1/peer/files/b/small.txt HTTP/1.1" 200 6'
curl -s -o /dev/null "$U/b/none.bin"
t_grep "an origin miss is logged as miss" "$T_DIR/access2.log" '"GET /api/v1/peer/files/b/none.bin HTTP/1.1" 404'
t_egrep "with the outcome miss" "$T_DIR/access2.log" 'none.bin HTTP/1.1" 404 [0-9]+ "-" "curl/[^"]*" [0-9.]+ miss$'

# Audit: who wrote, who was refused; never the token.
t_egrep "audit: a PUT with its client" "$T_DIR/mirror.log" \
	"audit: 127.0.0.1 PUT /api/v1/peer/files/up/one.txt: 201, 6 bytes, sha256 [0-9a-f]{64}"
t_grep "audit: a refused PUT with its client" "$T_DIR/mirror.log" \
	"audit: 127.0.0.1 PUT /api/v1/peer/files/up/two.txt: 401"
t_nogrep "the tokens never appear in the log" "$T_DIR/mirror.log" "tok-"
t_nogrep "nor in the access log" "$T_DIR/access.log" "tok-"

# TERM during a throttled download: the client gets every byte.
curl -s -o "$T_DIR/drained" "$U/b/big.bin" &
CURL2=$!
i=0
while [ "$(stat -c %s "$T_DIR/drained" 2> /dev/null || echo 0)" -lt 1000000 ] && [ $i -lt 100 ]; do
	sleep 0.05
	i=$((i + 1))
done
kill -TERM "$MPID"
t_wait_log "$T_DIR/mirror.log" "draining 1 transfers" 5000 &&
	t_ok "TERM logs draining 1 transfers" || t_fail "TERM logs draining" "$(tail -5 "$T_DIR/mirror.log")"
t_wait_log "$T_DIR/notify.log" "STOPPING=1" 5000 &&
	t_ok "STOPPING=1 on TERM" || t_fail "STOPPING=1 on TERM" "$(cat "$T_DIR/notify.log")"
curl -s -o /dev/null --max-time 3 "$U/b/small.txt"
t_eq "a new connection is refused while draining" "$?" 7
wait "$CURL2"
t_eq "the download across TERM completes" "$?" 0
t_eq "with every byte" "$(sha256sum < "$T_DIR/drained" | cut -d' ' -f1)" "$BIG_SHA"
wait "$MPID"
t_eq "the mirror exits 0 after the drain" "$?" 0
t_grep "and logs stopped" "$T_DIR/mirror.log" "mirror: stopped"
sed -i "/^mirror /d" "$T_PROCS"

# HUP changes live values: the egress limit (1 MB/s to none) and the level.
cfg 1M "$T_DIR/token2" ""
t_start mirror3 "$T_DIR/mirror3.log" "$M" --config "$T_DIR/mirror.yaml"
M3PID=$T_LAST_PID
t_wait_log "$T_DIR/mirror3.log" "listening on" 10000 || { t_fail "mirror restarts" "see log"; t_done; }
cfg 0 "$T_DIR/token2" ""
printf 'log_level: warn\n' >> "$T_DIR/mirror.yaml"
kill -HUP "$M3PID"
t_wait_log "$T_DIR/mirror3.log" "reloaded" 10000
# 20 MB: 20 s at the old 1 MB/s, well under a second unpaced.
curl -s -o "$T_DIR/fast" --max-time 10 "$U/b/big.bin"
t_eq "after the reload the egress limit is gone (20 MB within 10 s)" "$?" 0
code=$(curl -s -o /dev/null -w '%{http_code}' -T "$ROOT/files/b/small.txt" \
	-H "Authorization: Bearer $TOKEN2" "$U/up/four.txt")
t_eq "a PUT after the reload" "$code" 201
t_nogrep "log_level warn from the reload hides INFO lines" "$T_DIR/mirror3.log" "four.txt"
t_stop mirror3

# A second TERM stops at once, leaving the transfer cut.
cfg 1M "$T_DIR/token2" ""
t_start mirror2 "$T_DIR/mirror2.log" "$M" --config "$T_DIR/mirror.yaml"
M2PID=$T_LAST_PID
t_wait_log "$T_DIR/mirror2.log" "listening on" 10000 || { t_fail "mirror restarts" "see log"; t_done; }
curl -s -o "$T_DIR/cut" "$U/b/big.bin" &
CURL3=$!
t_wait_log "$T_DIR/mirror2.log" "nothing" 300 2> /dev/null
kill -TERM "$M2PID"
t_wait_log "$T_DIR/mirror2.log" "draining 1 transfers" 5000
kill -TERM "$M2PID"
t_wait_log "$T_DIR/mirror2.log" "again: stopping now" 5000 &&
	t_ok "a second TERM stops at once" || t_fail "a second TERM stops at once" "$(tail -3 "$T_DIR/mirror2.log")"
wait "$M2PID"
t_eq "and exits 0" "$?" 0
wait "$CURL3"
t_eq "the cut transfer is short, not ended cleanly" "$([ "$(stat -c %s "$T_DIR/cut")" -lt 20000000 ] && echo short)" short
sed -i "/^mirror2 /d" "$T_PROCS"

# Under systemd, stderr is the journal: priority prefixes, no timestamp.
PORT3=$(t_free_port)
: > "$T_DIR/journal.log"
JS=$(stat -c '%d:%i' "$T_DIR/journal.log")
(JOURNAL_STREAM="$JS" exec setsid "$M" --listen "127.0.0.1:$PORT3" --root "$ROOT" \
	>> "$T_DIR/journal.log" 2>&1 < /dev/null) &
JPID=$!
echo "journal $JPID $T_DIR/journal.log" >> "$T_PROCS"
t_wait_log "$T_DIR/journal.log" "listening on" 10000
t_egrep "journal: INFO carries <6> and no timestamp" "$T_DIR/journal.log" "^<6>INFO mirror: hydra-mirror listening"
t_egrep "journal: WARN carries <4>" "$T_DIR/journal.log" "^<4>WARN mirror: no admin token"
t_stop journal
t_done
