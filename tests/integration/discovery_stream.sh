#!/bin/bash
# hydra-agent stream inside a network namespace with hydra-cluster-sim: the
# cached body is used; its stream command exits at once (the body answers
# probes but not the stream), so the cache is invalidated, the body demoted
# and the next body chosen ("stream target changed"); that stream outlives
# the launch window and is left alone; SIGTERM and SIGINT are forwarded and
# logged as stopMoonlight; attempts are bounded; a missing command is 64.
. "$(dirname "$0")/../lib.sh"
. "$T_ROOT/tests/fixtures/discovery-netns.sh"

dn_need discovery_stream

BOOM_LAN=127.11.0.24 BOOM_WG=127.10.100.24
ZESTY_LAN=127.11.0.25 ZESTY_WG=127.10.100.25
BOOM=node-74f9fbf2 ZESTY=node-5a1e0001
# An early exit takes milliseconds; the window is far above that, and short
# enough to wait out once.
WINDOW_S=2

dn_setup 127.11.0.32 $BOOM_LAN $BOOM_WG $ZESTY_LAN $ZESTY_WG 127.11.0.26 127.10.100.26
for ip in $BOOM_LAN $BOOM_WG $ZESTY_LAN $ZESTY_WG; do
	dn_listen "$ip" "$DN_PORT"
done
# Only zesty-waffle serves streams: boom-pickle answers probes but its
# stream fails at once, as when Moonlight fails to pair.
dn_listen "$ZESTY_LAN" "$DN_STREAM_PORT"
dn_sim "$T_ROOT/tests/fixtures/discovery-fleet.yaml"
dn_config agent sequential 400 "$WINDOW_S"
CFG="$T_DIR/agent.yaml"
LOG="$T_DIR/agent.log"
CLIENT="$BIN/hydra-stream-client"

count() { grep -cF -- "$2" "$1"; }

nsx "$BIN/hydra-agent" --config "$CFG" discover > "$T_DIR/d1.out"
t_eq "discover caches boom-pickle's LAN" "$(cat "$T_DIR/d1.out")" "$BOOM_LAN"

# 1. stream: the cache, a launch failure, the next body, a stable stream.
t_start stream "$T_DIR/stream.err" ip netns exec "$NS" "$BIN/hydra-agent" --config "$CFG" \
	stream --max-attempts 3 -- "$CLIENT" '{ip}' "$DN_STREAM_PORT"
SPID=$T_LAST_PID
if t_wait_log "$T_DIR/stream.err" "hydra-stream-client: streaming from $ZESTY_LAN:$DN_STREAM_PORT" 15000; then
	t_ok "stream: settles on zesty-waffle"
else
	t_fail "stream: settles on zesty-waffle" "$(tail -n 5 "$T_DIR/stream.err")"
fi
t_grep "stream: the cached body is used" "$LOG" "using cached body $BOOM"
t_grep "stream: the early exit is logged" "$LOG" "Moonlight subprocess exited: status 1 after"
t_grep "stream: the cache is invalidated" "$LOG" \
	"cached body $BOOM invalidated: stream launch failed: status 1"
t_grep "stream: boom-pickle is demoted" "$LOG" "body $BOOM demoted"
t_grep "stream: rediscovery routes via zesty's LAN" "$LOG" "routing via LAN: $ZESTY_LAN"
t_grep "stream: the target change is logged" "$LOG" \
	"stream target changed: $BOOM_LAN -> $ZESTY_LAN"
if t_wait_log "$LOG" "stream on body $ZESTY outlived the $WINDOW_S s launch window" 15000; then
	t_ok "stream: outlives the launch window"
else
	t_fail "stream: outlives the launch window" "$(tail -n 5 "$LOG")"
fi
# A stable stream: nothing restarts it, and none of the forbidden lines.
t_eq "stable: one target change only" "$(count "$LOG" 'stream target changed')" 1
t_eq "stable: one subprocess exit only (the failed launch)" \
	"$(count "$LOG" 'Moonlight subprocess exited')" 1
t_nogrep "stable: no stopMoonlight" "$LOG" "stopMoonlight"
t_eq "stable: the supervisor is still running" \
	"$(kill -0 "$SPID" 2> /dev/null && echo yes)" yes

# 2. SIGTERM: forwarded, logged, exit 0.
kill -TERM "$SPID"
wait "$SPID"
RC=$?
t_eq "SIGTERM: exit 0" "$RC" 0
t_grep "SIGTERM: stopMoonlight logged" "$LOG" "INFO discovery: stopMoonlight: received SIGTERM"
t_grep "SIGTERM: the child got it" "$T_DIR/stream.err" "hydra-stream-client: stopped by signal 15"
t_grep "SIGTERM: the child's exit is logged" "$LOG" "Moonlight subprocess exited: status 0 after"
if pgrep -f "$CLIENT $ZESTY_LAN $DN_STREAM_PORT" > /dev/null 2>&1; then
	t_fail "SIGTERM: no stream client left" "still running"
else
	t_ok "SIGTERM: no stream client left"
fi
t_stop stream

# 3. The demotion outlives the process: boom-pickle is probed last.
nsx "$BIN/hydra-agent" --config "$CFG" discover --no-cache > "$T_DIR/d2.out"
t_eq "demotion: the next discovery prefers zesty-waffle" "$(cat "$T_DIR/d2.out")" "$ZESTY_LAN"
t_grep "demotion: logged" "$LOG" "body $BOOM probed last: its last stream launch failed"

# 4. SIGINT is forwarded the same way.
: > "$LOG"
t_start stream2 "$T_DIR/stream2.err" ip netns exec "$NS" "$BIN/hydra-agent" --config "$CFG" \
	stream -- "$CLIENT" '{ip}' "$DN_STREAM_PORT"
SPID=$T_LAST_PID
t_wait_log "$T_DIR/stream2.err" "hydra-stream-client: streaming from" 15000 ||
	t_fail "SIGINT: stream starts" "$(tail -n 5 "$T_DIR/stream2.err")"
# A stable run from the start: past the window, none of the forbidden lines.
t_wait_log "$LOG" "outlived the $WINDOW_S s launch window" 15000 ||
	t_fail "stable run: outlives the window" "$(tail -n 5 "$LOG")"
for line in "stream target changed" "stopMoonlight" "Moonlight subprocess exited"; do
	t_nogrep "stable run: no '$line'" "$LOG" "$line"
done
kill -INT "$SPID"
wait "$SPID"
t_eq "SIGINT: exit 0" "$?" 0
t_grep "SIGINT: stopMoonlight logged" "$LOG" "stopMoonlight: received SIGINT"
t_stop stream2

# 5. Every launch fails: bounded by --max-attempts, exit 69.
: > "$LOG"
nsx "$BIN/hydra-agent" --config "$CFG" stream --max-attempts 2 -- "$CLIENT" '{ip}' 47999 \
	> /dev/null 2> "$T_DIR/stream3.err"
t_eq "attempts: exit 69 when every launch fails" "$?" 69
t_eq "attempts: two launches" "$(count "$LOG" 'Moonlight subprocess exited')" 2
t_grep "attempts: the reason names the count" "$T_DIR/stream3.err" "stream: 2 launch attempts failed"
t_grep "attempts: backoff is logged" "$LOG" "stream: retrying in 500 ms (attempt 2 of 2)"

# 6. A stop request while every body is being probed: no failover lines, no
# wait for the probes (they would take 6 x 5 s here), exit 0.
dn_drop $BOOM_LAN $BOOM_WG $ZESTY_LAN $ZESTY_WG 127.11.0.26 127.10.100.26
dn_config slow sequential 5000 "$WINDOW_S"
t_start stream5 "$T_DIR/stream5.err" ip netns exec "$NS" "$BIN/hydra-agent" \
	--config "$T_DIR/slow.yaml" stream -- "$CLIENT" '{ip}' "$DN_STREAM_PORT"
SPID=$T_LAST_PID
t_wait_log "$T_DIR/slow.log" "eligible bodies for head" 15000 ||
	t_fail "stop while probing: discovery starts" "$(tail -n 5 "$T_DIR/slow.log")"
T0=$(date +%s%N)
kill -TERM "$SPID"
wait "$SPID"
RC=$?
MS=$(( ($(date +%s%N) - T0) / 1000000 ))
t_eq "stop while probing: exit 0" "$RC" 0
# The first probe alone would take 5000 ms; the stop is seen within 100 ms.
if [ "$MS" -lt 1000 ]; then t_ok "stop while probing: prompt ($MS ms)"
else t_fail "stop while probing: prompt" "took $MS ms"; fi
t_grep "stop while probing: logged" "$T_DIR/slow.log" \
	"stopMoonlight: received SIGTERM, no stream running"
t_nogrep "stop while probing: no exhausted line" "$T_DIR/slow.log" "no reachable body"
t_stop stream5
dn_undrop

# 7. A command that cannot run is a usage error, not a body's fault.
nsx "$BIN/hydra-agent" --config "$CFG" stream -- /nonexistent/moonlight '{ip}' \
	> /dev/null 2> "$T_DIR/stream4.err"
t_eq "missing command: exit 64" "$?" 64
t_grep "missing command: named" "$T_DIR/stream4.err" "cannot run '/nonexistent/moonlight'"
nsx "$BIN/hydra-agent" --config "$CFG" stream > /dev/null 2>&1
t_eq "no command: exit 64" "$?" 64

dn_finish
