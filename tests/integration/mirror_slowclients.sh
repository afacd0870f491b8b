#!/bin/bash
# hydra-mirror under slow and idle clients (issue 19 item 6): a request head
# must arrive whole within MIR_HEAD_TIMEOUT_S (5 s) even from a client that
# sends a byte a second, one client address cannot take every connection,
# and a normal client is served every time, within a bound, while 1,100
# slow and 2,000 idle connections press on the server.
. "$(dirname "$0")/../lib.sh"

M="$BIN/hydra-mirror"
LOAD="$T_ROOT/tests/support/slowloris.py"
if ! command -v python3 > /dev/null; then
	t_skip "slow clients" "python3 not installed"
	t_done
fi
# 3,100 client sockets and as many on the server's side.
if ! ulimit -n 16384 2> /dev/null; then
	t_skip "slow clients" "cannot raise the open file limit to 16384"
	t_done
fi
ROOT="$T_DIR/origin"
mkdir -p "$ROOT/files/b"
head -c 100000 /dev/urandom > "$ROOT/files/b/a.bin"
PORT=$(t_free_port)
t_start origin "$T_DIR/origin.log" "$M" --listen "127.0.0.1:$PORT" --root "$ROOT"
t_wait_log "$T_DIR/origin.log" "listening on" 10000 || { t_fail "origin starts" "see log"; t_done; }
U="http://127.0.0.1:$PORT/api/v1/peer/files/b/a.bin"

# One client sending its head a byte a second is cut at the head timeout
# (5 s), although it is never idle long enough for the 60 s idle timeout.
python3 "$LOAD" --port "$PORT" --sources 1 --source-base 127.0.0.3 --mode slow --count 1 \
	--duration 30 --until-close > "$T_DIR/one"
first=$(grep -o '"first_close_s": [-0-9.]*' "$T_DIR/one" | grep -o '[-0-9.]*$')
if awk -v t="$first" 'BEGIN { exit !(t >= 2 && t <= 25) }'; then
	t_ok "a head sent a byte a second is cut after the head timeout (${first} s)"
else
	t_fail "a head sent a byte a second is cut after the head timeout" "$(cat "$T_DIR/one")"
fi
t_grep "the cut is logged" "$T_DIR/origin.log" "sent no whole request head within 5 s"

# The load: 1,100 slow and 2,000 idle connections from 127.0.0.2 for 20 s.
python3 "$LOAD" --port "$PORT" --sources 1 --source-base 127.0.0.2 --mode slow --count 1100 \
	--duration 20 --reconnect > "$T_DIR/load" &
LOADPID=$!
python3 "$LOAD" --port "$PORT" --sources 1 --source-base 127.0.0.2 --mode idle --count 2000 \
	--duration 20 --reconnect > "$T_DIR/load-idle" &
IDLEPID=$!
# Wait until the load holds its share of the connections.
i=0
while [ $i -lt 100 ] && ! grep -q "opened" "$T_DIR/load" 2> /dev/null; do
	n=$(ss -Htn state established "( dport = :$PORT )" 2> /dev/null | wc -l)
	[ "$n" -ge 200 ] && break
	sleep 0.1
	i=$((i + 1))
done
# A normal client, 20 times, each answered within 2 s.
served=0 worst=0
for i in $(seq 1 20); do
	out=$(curl -s -o /dev/null --max-time 2 -w '%{http_code} %{time_total}' "$U")
	code=${out%% *}
	ms=$(awk -v t="${out##* }" 'BEGIN { printf "%d", t * 1000 }')
	[ "$code" = 200 ] && served=$((served + 1))
	[ "$ms" -gt "$worst" ] && worst=$ms
	sleep 0.5
done
t_eq "a normal client is served every time under the load (worst ${worst} ms)" "$served" "20"
wait "$LOADPID" "$IDLEPID"
t_grep "the slow load ran" "$T_DIR/load" '"opened"'
t_grep "the idle load ran" "$T_DIR/load-idle" '"opened"'
kill -0 "$(t_pid_of origin)" 2> /dev/null && t_ok "the server is still up" ||
	t_fail "the server is still up" "see $T_DIR/origin.log"
# Keep-alive clients that were answered once and then wait hold every
# connection of a small server (--max-connections 40); short of
# connections, the server cuts them after the head timeout instead of the
# 60 s idle timeout, and a new client gets in.
KPORT=$(t_free_port)
t_start small "$T_DIR/small.log" "$M" --listen "127.0.0.1:$KPORT" --root "$ROOT" \
	--max-connections 40
t_wait_log "$T_DIR/small.log" "listening on" 10000 || { t_fail "small server starts" "see log"; t_done; }
python3 "$LOAD" --port "$KPORT" --sources 1 --source-base 127.0.0.4 --mode keepalive \
	--count 40 --duration 35 --reconnect > "$T_DIR/keepalive" &
KPID=$!
i=0
while [ $i -lt 100 ]; do
	n=$(ss -Htn state established "( sport = :$KPORT )" 2> /dev/null | wc -l)
	[ "$n" -ge 40 ] && break
	sleep 0.1
	i=$((i + 1))
done
t_eq "the keep-alive load holds every connection" "$([ "$n" -ge 40 ] && echo yes)" "yes"
start=$(date +%s%N) code=000
while [ "$code" != 200 ] && [ $(( ($(date +%s%N) - start) / 1000000 )) -lt 30000 ]; do
	code=$(curl -s -o /dev/null --max-time 1 -w '%{http_code}' \
		"http://127.0.0.1:$KPORT/api/v1/health")
	[ "$code" = 200 ] || sleep 0.1
done
ms=$(( ($(date +%s%N) - start) / 1000000 ))
t_eq "a new client gets in well before the idle timeout (${ms} ms)" "$code" "200"
kill "$KPID" 2> /dev/null; wait "$KPID" 2> /dev/null
t_stop small

t_stop origin
t_done
