#!/bin/bash
# Testbook: body selection Phase 1, Test B (the failover loop), from
# "Body selection, Phase 1" (docs/architecture.md section 13), on one machine.
#
# Same venue as Test A (testbooks/body-selection-a.sh): a network namespace
# of our own with peppy (head), boom-pickle (same venue, stays in
# bxl1/rupelmonde) and cosmic (cloud-seven, WireGuard only from peppy).
# nft drops TCP to boom-pickle's LAN and WireGuard stream port, as the
# seed's temporary pfctl rule does; discovery must probe both, move on to
# cosmic and route via its WireGuard; the stream stays up for STABLE_S
# (default 20, 360 in the field); removing the rule brings peppy back to
# boom-pickle on LAN. Operator version: testbooks/body-selection-b.md.
. "$(dirname "$0")/lib/tb.sh"

tb_need hydra-agent hydra-cluster-sim hydra-testkit hydra-stream-client -- curl socat ss
tb_fleet

# Step 1: boom-pickle stays in bxl1/rupelmonde and cosmic stays available
# to peppy across venues. Quickroute is a gate (docs/architecture.md section 9): while
# boom-pickle is eligible the list is boom-pickle alone; a head that cannot
# reach it asks again with exclude=, and then cosmic is what it gets.
tb_sim GET "/bodies/eligible?district=bxl1&venue=rupelmonde&head_id=$PEPPY"
ids=$(grep -o '"node_id":"[^"]*"' "$T_DIR/sim.out" | sed 's/.*:"//; s/"$//' | tr '\n' ' ')
part=$(tb_json_field "$T_DIR/sim.out" partition)
case "$HTTP $ids" in
"200 $BOOM "*) tb_ok "step 1: boom-pickle in bxl1/rupelmonde, first for peppy" "bodies [$ids] partition $part";;
*) tb_fail "step 1: boom-pickle in bxl1/rupelmonde, first for peppy" "HTTP $HTTP: $(head -c 300 "$T_DIR/sim.out")";;
esac
tb_sim GET "/bodies/eligible?district=bxl1&venue=rupelmonde&head_id=$PEPPY&exclude=$BOOM"
ids=$(grep -o '"node_id":"[^"]*"' "$T_DIR/sim.out" | sed 's/.*:"//; s/"$//' | tr '\n' ' ')
part=$(tb_json_field "$T_DIR/sim.out" partition)
case " $ids" in
*" $COSMIC "*) tb_ok "step 1: cosmic is available to peppy once boom-pickle is excluded" "bodies [$ids] partition $part";;
*) tb_fail "step 1: cosmic is available to peppy once boom-pickle is excluded" \
	"eligible for peppy excluding boom-pickle is [$ids] (partition $part)";;
esac
# Before the block, peppy streams from boom-pickle on LAN (and caches it).
mark=$(tb_lines "$HEAD_LOG")
tb_agent before "$HEAD_CFG" discover
tb_eq "before: peppy discovers boom-pickle's LAN" "$(cat "$T_DIR/before.out")" "$BOOM_LAN" "discover printed"
tb_expect "before: routing via LAN is logged" "$HEAD_LOG" "$mark" "INFO discovery: routing via LAN: $BOOM_LAN"

# Step 2: the temporary rule: drop TCP to boom-pickle's LAN and WireGuard
# on the stream port, in a chain of its own (the cleanup removes it alone;
# the venue boundary stays).
nsx nft add chain inet "$TB_NFT" testb '{ type filter hook output priority 0; policy accept; }' &&
	tb_drop testb "$BOOM_LAN" "$PORT" && tb_drop testb "$BOOM_WG" "$PORT"
tb_eq "step 2: nft rule blocking boom-pickle's LAN and WireGuard :$PORT installed" "$?" 0 "nft exit"

# Step 3: like `nc -zv`: both of boom-pickle's addresses fail, cosmic's
# WireGuard answers.
tb_reach "step 3: boom-pickle LAN unreachable" "$BOOM_LAN" "$PORT" no
tb_reach "step 3: boom-pickle WireGuard unreachable" "$BOOM_WG" "$PORT" no
tb_reach "step 3: cosmic WireGuard reachable" "$COSMIC_WG" "$PORT" yes

# Step 4: full kiosk reset on peppy.
tb_kiosk_reset "step 4: kiosk reset"

# Step 5: trigger the stream: the loop iterates past boom-pickle (both
# transports fail) to cosmic, then routes via its WireGuard.
mark=$(tb_lines "$HEAD_LOG")
tb_stream_start stream "$HEAD_CFG" "$PORT"
SPID=$TB_STREAM_PID
tb_wait_line "step 5: the stream client connects to cosmic's WireGuard" "$T_DIR/stream.err" 0 \
	"hydra-stream-client: streaming from $COSMIC_WG:$PORT" 20000 "$SPID"
tb_order "step 5: boom-pickle fails on both transports, then routing via cosmic's WireGuard" \
	"$HEAD_LOG" "$mark" \
	"INFO discovery: LAN host $BOOM_LAN not reachable, falling back to WireGuard" \
	"INFO discovery: body $BOOM unreachable on LAN and WireGuard, trying next" \
	"INFO discovery: no reachable body among 1 in the head's venue, asking the cluster for the rest of the district" \
	"INFO discovery: routing via WireGuard: $COSMIC_WG"
tb_absent "step 5: boom-pickle was never chosen" "$HEAD_LOG" "$mark" \
	"routing via LAN: $BOOM_LAN" "routing via WireGuard: $BOOM_WG"
# The cluster was asked (no stale cache short-cut), twice: the second time
# without the unreachable boom-pickle, which gave cross-venue cosmic.
tb_expect "step 5: the eligible list came from the cluster" "$HEAD_LOG" "$mark" \
	"eligible bodies for head $PEPPY"
tb_absent "step 5: no exhausted line" "$HEAD_LOG" "$mark" "ERROR discovery: no reachable body"

# Step 6: stable for STABLE_S.
tb_stable "step 6" "$HEAD_LOG" "$mark" "$SPID" "$COSMIC_WG" "$PORT"

# Step 7: cleanup: the stream ends, the rule goes, boom-pickle answers
# again, and after a kiosk reset peppy is back on boom-pickle's LAN.
tb_stream_stop "step 7: Test B's stream" stream "$HEAD_LOG"
nsx nft delete chain inet "$TB_NFT" testb
tb_eq "step 7: the blocking rule is removed" "$?" 0 "nft exit"
tb_reach "step 7: boom-pickle LAN reachable again" "$BOOM_LAN" "$PORT" yes
tb_reach "step 7: boom-pickle WireGuard reachable again" "$BOOM_WG" "$PORT" yes
tb_kiosk_reset "step 7: kiosk reset"
mark=$(tb_lines "$HEAD_LOG")
tb_stream_start stream2 "$HEAD_CFG" "$PORT"
tb_wait_line "step 7: the stream client connects to boom-pickle's LAN" "$T_DIR/stream2.err" 0 \
	"hydra-stream-client: streaming from $BOOM_LAN:$PORT" 20000 "$TB_STREAM_PID"
tb_expect "step 7: routing via LAN to boom-pickle" "$HEAD_LOG" "$mark" \
	"INFO discovery: routing via LAN: $BOOM_LAN"
tb_absent "step 7: no fallback" "$HEAD_LOG" "$mark" "not reachable" "trying next"
tb_stream_stop "step 7: the LAN stream" stream2 "$HEAD_LOG"

tb_finish
