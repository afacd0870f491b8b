#!/bin/bash
# hydra-agent stream and the signals a kiosk's session sends: SIGHUP stops the
# stream like SIGTERM (the child gets SIGTERM, stopMoonlight is logged, exit 0),
# and the stream child never outlives the agent, even one killed with SIGKILL.
. "$(dirname "$0")/../lib.sh"
. "$T_ROOT/tests/fixtures/discovery-netns.sh"

dn_need stream_signals

BOOM_LAN=127.11.0.24 BOOM_WG=127.10.100.24
ZESTY_LAN=127.11.0.25 ZESTY_WG=127.10.100.25
dn_setup 127.11.0.32 $BOOM_LAN $BOOM_WG $ZESTY_LAN $ZESTY_WG 127.11.0.26 127.10.100.26
for ip in $BOOM_LAN $BOOM_WG $ZESTY_LAN $ZESTY_WG; do
	dn_listen "$ip" "$DN_PORT"
	dn_listen "$ip" "$DN_STREAM_PORT"
done
dn_sim "$T_ROOT/tests/fixtures/discovery-fleet.yaml"
dn_config agent sequential 400 2
CFG="$T_DIR/agent.yaml"
LOG="$T_DIR/agent.log"
CLIENT="$BIN/hydra-stream-client"

# Waits up to 10 s for no stream client of this test to be running.
client_gone() {
	local i
	for i in $(seq 1 100); do
		pgrep -f "$CLIENT 127.1[01]" > /dev/null 2>&1 || return 0
		"$BIN/hydra-testkit" wait-tcp 127.0.0.1 1 100 > /dev/null 2>&1
	done
	return 1
}

# 1. SIGHUP: forwarded and logged, exit 0, no child left.
t_start hup "$T_DIR/hup.err" ip netns exec "$NS" "$BIN/hydra-agent" --config "$CFG" \
	stream -- "$CLIENT" '{ip}' "$DN_STREAM_PORT"
SPID=$T_LAST_PID
t_wait_log "$T_DIR/hup.err" "hydra-stream-client: streaming from" 15000 ||
	t_fail "SIGHUP: stream starts" "$(tail -n 5 "$T_DIR/hup.err")"
kill -HUP "$SPID"
wait "$SPID"
t_eq "SIGHUP: the agent exits 0" "$?" 0
t_grep "SIGHUP: stopMoonlight logged" "$LOG" "stopMoonlight: received SIGHUP"
t_grep "SIGHUP: the child is asked to stop with SIGTERM" "$T_DIR/hup.err" "hydra-stream-client: stopped by signal 15"
if client_gone; then t_ok "SIGHUP: no stream client left"
else t_fail "SIGHUP: no stream client left" "$(pgrep -af "$CLIENT")"; fi
t_stop hup

# 2. SIGKILL of the agent: the kernel sends the child SIGTERM.
: > "$LOG"
t_start kill "$T_DIR/kill.err" ip netns exec "$NS" "$BIN/hydra-agent" --config "$CFG" \
	stream -- "$CLIENT" '{ip}' "$DN_STREAM_PORT"
t_wait_log "$T_DIR/kill.err" "hydra-stream-client: streaming from" 15000 ||
	t_fail "SIGKILL: stream starts" "$(tail -n 5 "$T_DIR/kill.err")"
APID=$(pgrep -f "hydra-agent --config $CFG stream" | head -1)
if [ -n "$APID" ]; then
	kill -KILL "$APID"
	if client_gone; then t_ok "SIGKILL of the agent: the stream client ends too"
	else t_fail "SIGKILL of the agent: the stream client ends too" "$(pgrep -af "$CLIENT")"; fi
	t_grep "SIGKILL of the agent: the child got SIGTERM" "$T_DIR/kill.err" \
		"hydra-stream-client: stopped by signal 15"
else
	t_fail "SIGKILL: find the agent's pid" "no process"
fi
t_stop kill

dn_finish
