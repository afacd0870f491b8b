#!/bin/bash
# hydra-mirror origin on a 1 MiB file system (tmpfs in a private mount
# namespace): a PUT larger than the free space answers 507 and stores
# nothing, whether announced by Content-Length or found out mid-body.
# Connection limits and idle timeouts ride along on the same server.
. "$(dirname "$0")/../lib.sh"

M="$BIN/hydra-mirror"
if [ "$(id -u)" != 0 ] || ! command -v unshare > /dev/null ||
   ! unshare -m --propagation private true 2> /dev/null; then
	t_skip "disk full" "needs root and unshare -m for a small tmpfs"
	t_done
fi
ROOT="$T_DIR/small"
mkdir -p "$ROOT"
printf 'tok-%s\n' "$RANDOM$RANDOM" > "$T_DIR/token"
TOKEN=$(head -n1 "$T_DIR/token")
PORT=$(t_free_port)
t_start small "$T_DIR/small.log" unshare -m --propagation private sh -c \
	'mount -t tmpfs -o size=1m tmpfs "$1" && shift && exec "$@"' sh "$ROOT" \
	"$M" --listen "127.0.0.1:$PORT" --root "$ROOT" --admin-token-file "$T_DIR/token" \
	--max-connections 4 --connection-timeout 2
t_wait_log "$T_DIR/small.log" "listening on" 10000 || { t_fail "server starts" "see log"; t_done; }
PID=$T_LAST_PID
U="http://127.0.0.1:$PORT/api/v1/peer/files"
in_ns() { nsenter -t "$PID" -m -- "$@"; }

head -c 2000000 /dev/urandom > "$T_DIR/big"
t_eq "announced body larger than the disk: 507" "$(curl -s -o /dev/null -w '%{http_code}' \
	-H "Authorization: Bearer $TOKEN" -T "$T_DIR/big" "$U/big.bin")" "507"
t_eq "chunked body that fills the disk: 507" "$(curl -s -o /dev/null -w '%{http_code}' \
	-H "Authorization: Bearer $TOKEN" -H 'Transfer-Encoding: chunked' -T "$T_DIR/big" \
	"$U/big2.bin")" "507"
t_eq "nothing stored" "$(in_ns ls -A "$ROOT/files" "$ROOT/tmp" | grep -v ':$' | grep -c .)" "0"
t_eq "404 after 507" "$(curl -s -o /dev/null -w '%{http_code}' "$U/big2.bin")" "404"
t_eq "a small PUT still fits" "$(curl -s -o /dev/null -w '%{http_code}' \
	-H "Authorization: Bearer $TOKEN" --data-binary 'small' -X PUT "$U/small.txt")" "201"
t_eq "and is served" "$(curl -s "$U/small.txt")" "small"
t_nogrep "the token never appears in the log" "$T_DIR/small.log" "$TOKEN"

# Idle connections are closed after --connection-timeout (2 s), and no
# more than --max-connections (4) are served at once.
if command -v socat > /dev/null; then
	start=$(date +%s%N)
	socat -u "TCP:127.0.0.1:$PORT" - > /dev/null 2>&1 < /dev/null &
	IDLE=$!
	# An idle client is dropped by the server, well before 10 s.
	i=0
	while kill -0 "$IDLE" 2> /dev/null && [ $i -lt 500 ]; do sleep 0.02; i=$((i + 1)); done
	ms=$(( ($(date +%s%N) - start) / 1000000 ))
	if ! kill -0 "$IDLE" 2> /dev/null && [ "$ms" -ge 1500 ]; then
		t_ok "idle connection closed after the timeout (${ms} ms)"
	else
		t_fail "idle connection closed after the timeout" "${ms} ms"; kill "$IDLE" 2> /dev/null
	fi
	wait "$IDLE" 2> /dev/null
	pids=""
	for i in 1 2 3 4; do
		socat -u "TCP:127.0.0.1:$PORT" - > /dev/null 2>&1 < /dev/null &
		pids="$pids $!"
	done
	# The four hold their slots (until the 2 s timeout); a fifth is refused.
	# Probe only once all four are established, twice in a row (a refused
	# one is accepted and closed at once), so no probe races them for a slot.
	i=0 code=200
	while [ $i -lt 250 ]; do
		n1=$(ss -Htn state established "( dport = :$PORT )" 2> /dev/null | wc -l)
		sleep 0.02
		n2=$(ss -Htn state established "( dport = :$PORT )" 2> /dev/null | wc -l)
		if [ "$n1" -ge 4 ] && [ "$n2" -ge 4 ]; then
			code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 \
				"http://127.0.0.1:$PORT/api/v1/health")
			break
		fi
		i=$((i + 1))
	done
	t_eq "connection beyond --max-connections refused" "$code" "000"
	for p in $pids; do kill "$p" 2> /dev/null; wait "$p" 2> /dev/null; done
else
	t_skip "connection limits" "socat not installed"
fi

t_stop small
t_done
