#!/bin/bash
# Testbook: body selection Phase 1, Test A (cross-venue, peppy -> cosmic),
# all seven steps of "Body selection, Phase 1" (docs/architecture.md section 13), on one machine.
#
# The venue is a network namespace of our own: peppy-dumpling-32 (the head,
# node-74adf4f8) runs hydra-agent; boom-pickle-38 (node-74f9fbf2, same
# venue) and cosmic-pretzel-98 (node-4c2be4b0, cloud-seven) are stand-in
# bodies (hydra-testkit listen) on their LAN and WireGuard addresses;
# hydra-cluster-sim serves the seed's fleet. nft draws the venue boundary:
# cosmic's LAN is unreachable from peppy, its WireGuard is reachable.
# The stream is `hydra-agent stream -- hydra-stream-client {ip} PORT`.
# STABLE_S (default 20) is the stability window; the field runbook uses 360.
# Operator version: testbooks/body-selection-a.md.
. "$(dirname "$0")/lib/tb.sh"

tb_need hydra-agent hydra-cluster-sim hydra-testkit hydra-stream-client -- curl socat ss
tb_fleet

# Before the test, peppy streams from boom-pickle on the venue LAN; the
# choice is cached (this is what step 3's kiosk reset has to clear).
mark=$(tb_lines "$HEAD_LOG")
tb_agent before "$HEAD_CFG" discover --json
tb_eq "before: discover exits 0" "$RC" 0 "exit"
tb_expect "before: peppy routes to boom-pickle on LAN" "$HEAD_LOG" "$mark" \
	"INFO discovery: routing via LAN: $BOOM_LAN"
tb_expect "before: the choice is cached" "$HEAD_STATE/discovery-cache.json" 0 "\"ip\":\"$BOOM_LAN\""

# Step 1: park boom-pickle in bxl1-test to empty peppy's quickroute.
tb_sim POST "/nodes/$BOOM/district" '{"district":"bxl1-test","venue":"rupelmonde"}'
tb_eq "step 1: POST /api/v1/nodes/$BOOM/district answers 200" "$HTTP" 200 "HTTP"
tb_sim GET /nodes
if grep -qF "\"node_id\":\"$BOOM\",\"name\":\"boom-pickle-38\",\"role\":\"body\",\"district\":\"bxl1-test\",\"venue\":\"rupelmonde\"" "$T_DIR/sim.out"; then
	tb_ok "step 1: boom-pickle is in bxl1-test/rupelmonde" \
		"$(tb_find "$T_DIR/sim.log" 0 "node $BOOM (boom-pickle-38) moved to" | cut -d: -f2-)"
else
	tb_fail "step 1: boom-pickle is in bxl1-test/rupelmonde" "GET /nodes: $(head -c 400 "$T_DIR/sim.out")"
fi

# Step 2: the eligible list for peppy is cosmic alone, across venues. Both
# the seed's query (head_id only) and the one hydra-agent sends.
for q in "head_id=$PEPPY" "district=bxl1&venue=rupelmonde&head_id=$PEPPY"; do
	tb_sim GET "/bodies/eligible?$q"
	ids=$(grep -o '"node_id":"[^"]*"' "$T_DIR/sim.out" | sed 's/.*:"//; s/"$//' | tr '\n' ' ')
	sv=$(tb_json_field "$T_DIR/sim.out" same_venue)
	if [ "$HTTP" = 200 ] && [ "$ids" = "$COSMIC " ] && [ "$sv" = false ]; then
		tb_ok "step 2: eligible?$q returns only cosmic, same_venue false" \
			"bodies [$ids] same_venue $sv partition $(tb_json_field "$T_DIR/sim.out" partition)"
	else
		tb_fail "step 2: eligible?$q returns only cosmic, same_venue false" \
			"HTTP $HTTP, bodies [$ids], same_venue '$sv': $(head -c 300 "$T_DIR/sim.out")"
	fi
done

# Step 3: full kiosk reset on peppy.
tb_kiosk_reset "step 3: kiosk reset"

# Step 4: trigger the stream; the exact lines, in order.
mark=$(tb_lines "$HEAD_LOG")
tb_stream_start stream "$HEAD_CFG" "$PORT"
SPID=$TB_STREAM_PID
tb_wait_line "step 4: the stream client connects to cosmic's WireGuard" "$T_DIR/stream.err" 0 \
	"hydra-stream-client: streaming from $COSMIC_WG:$PORT" 20000 "$SPID"
tb_order "step 4: LAN fallback, then routing via WireGuard" "$HEAD_LOG" "$mark" \
	"INFO discovery: LAN host $COSMIC_LAN not reachable, falling back to WireGuard" \
	"INFO discovery: routing via WireGuard: $COSMIC_WG"

# Step 5: stable for STABLE_S.
tb_stable "step 5" "$HEAD_LOG" "$mark" "$SPID" "$COSMIC_WG" "$PORT"
tb_expect "step 5: the stream outlived the launch window" "$HEAD_LOG" "$mark" \
	"stream on body $COSMIC outlived the $TB_LAUNCH_WINDOW_S s launch window"

# Step 6: the seed's pairing.yaml stores the cert against cosmic's WireGuard
# IP. hydra-agent's equivalent record is the cached body in state_dir: the
# address the kiosk paired with and reuses is 127.10.100.12.
cache="$HEAD_STATE/discovery-cache.json"
if [ "$(tb_json_field "$cache" node_id)" = "$COSMIC" ] &&
	[ "$(tb_json_field "$cache" ip)" = "$COSMIC_WG" ] &&
	[ "$(tb_json_field "$cache" transport)" = wireguard ]; then
	tb_ok "step 6: the kiosk's record of its body is cosmic at $COSMIC_WG" \
		"$(basename "$cache") $(tr -d ' \n' < "$cache")"
else
	tb_fail "step 6: the kiosk's record of its body is cosmic at $COSMIC_WG" \
		"$(basename "$cache"): $(tr -d ' \n' < "$cache" 2> /dev/null || echo missing)"
fi

# The operator ends the Test A stream.
tb_stream_stop "step 7: Test A's stream" stream "$HEAD_LOG"

# Step 7: restore boom-pickle; after a kiosk reset peppy streams from it on LAN.
tb_sim POST "/nodes/$BOOM/district" '{"district":"bxl1","venue":"rupelmonde"}'
tb_eq "step 7: POST restore to bxl1/rupelmonde answers 200" "$HTTP" 200 "HTTP"
tb_sim GET "/bodies/eligible?district=bxl1&venue=rupelmonde&head_id=$PEPPY"
first=$(tb_json_field "$T_DIR/sim.out" node_id)
sv=$(tb_json_field "$T_DIR/sim.out" same_venue)
if [ "$first" = "$BOOM" ] && [ "$sv" = true ]; then
	tb_ok "step 7: eligible lists boom-pickle first, same venue" \
		"first $first same_venue $sv partition $(tb_json_field "$T_DIR/sim.out" partition)"
else
	tb_fail "step 7: eligible lists boom-pickle first, same venue" "$(head -c 300 "$T_DIR/sim.out")"
fi
tb_kiosk_reset "step 7: kiosk reset"
mark=$(tb_lines "$HEAD_LOG")
tb_stream_start stream2 "$HEAD_CFG" "$PORT"
tb_wait_line "step 7: the stream client connects to boom-pickle's LAN" "$T_DIR/stream2.err" 0 \
	"hydra-stream-client: streaming from $BOOM_LAN:$PORT" 20000 "$TB_STREAM_PID"
tb_expect "step 7: routing via LAN to boom-pickle" "$HEAD_LOG" "$mark" \
	"INFO discovery: routing via LAN: $BOOM_LAN"
tb_absent "step 7: no WireGuard fallback" "$HEAD_LOG" "$mark" "not reachable" "routing via WireGuard"
tb_stream_stop "step 7: the LAN stream" stream2 "$HEAD_LOG"

tb_finish
