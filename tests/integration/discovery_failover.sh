#!/bin/bash
# hydra-agent discover against hydra-cluster-sim, inside a network namespace
# of its own with stand-in bodies on 127.x and nft dropping packets:
# LAN reachable -> LAN; LAN dropped -> WireGuard with both exact log lines;
# first body dead on both transports -> the next body; all dead -> exit 69
# and the exhausted line; parallel mode makes the same choices and logs the
# same lines, also over a table of 12 layouts of answering, refused and
# dropped addresses; the seed's Test A (cross-venue, peppy -> cosmic over
# WireGuard); the cache is used, and invalidated when its body stops
# answering.
. "$(dirname "$0")/../lib.sh"
. "$T_ROOT/tests/fixtures/discovery-netns.sh"

dn_need discovery_failover

BOOM_LAN=127.11.0.24 BOOM_WG=127.10.100.24
ZESTY_LAN=127.11.0.25 ZESTY_WG=127.10.100.25
TIDY_LAN=127.11.0.26 TIDY_WG=127.10.100.26
COSMIC_LAN=127.11.0.12 COSMIC_WG=127.10.100.12
BOOM=node-74f9fbf2 ZESTY=node-5a1e0001 TIDY=node-5a1e0002 COSMIC=node-4c2be4b0
ALL="$BOOM_LAN $BOOM_WG $ZESTY_LAN $ZESTY_WG $TIDY_LAN $TIDY_WG $COSMIC_LAN $COSMIC_WG"
# A dropped probe costs this much; everything else answers in milliseconds.
PROBE_MS=400

dn_setup 127.11.0.32 $ALL
for ip in $ALL; do
	dn_listen "$ip" "$DN_PORT"
done
dn_sim "$T_ROOT/tests/fixtures/discovery-fleet.yaml"

# run NAME MODE [ARGS...]: hydra-agent discover with config NAME in the
# namespace; stdout in $T_DIR/NAME.out, status in $RC, log $T_DIR/NAME.log.
run() {
	_n=$1 _m=$2
	shift 2
	dn_config "$_n" "$_m" "$PROBE_MS" 2 "$T_DIR/state-$_n"
	nsx "$BIN/hydra-agent" --config "$T_DIR/$_n.yaml" discover "$@" \
		> "$T_DIR/$_n.out" 2> "$T_DIR/$_n.err"
	RC=$?
}

# in_order NAME FILE A B: line A comes before line B in FILE.
in_order() {
	_a=$(grep -nF -- "$3" "$2" | head -1 | cut -d: -f1)
	_b=$(grep -nF -- "$4" "$2" | head -1 | cut -d: -f1)
	if [ -n "$_a" ] && [ -n "$_b" ] && [ "$_a" -lt "$_b" ]; then t_ok "$1"
	else t_fail "$1" "'$3' (line ${_a:-none}) not before '$4' (line ${_b:-none})"; fi
}

for mode in sequential parallel; do
	# 1. Everything up: boom-pickle on LAN.
	dn_undrop
	run "lan-$mode" "$mode" --json
	t_eq "$mode: LAN reachable -> exit 0" "$RC" 0
	t_eq "$mode: LAN reachable -> boom-pickle's LAN" \
		"$(dn_json_field "$T_DIR/lan-$mode.out" ip)" "$BOOM_LAN"
	t_eq "$mode: transport lan" "$(dn_json_field "$T_DIR/lan-$mode.out" transport)" lan
	t_grep "$mode: logs routing via LAN" "$T_DIR/lan-$mode.log" "routing via LAN: $BOOM_LAN"
	t_nogrep "$mode: no fallback logged" "$T_DIR/lan-$mode.log" "not reachable"

	# 2. boom-pickle's LAN dropped: its WireGuard, with both exact lines.
	dn_undrop
	dn_drop "$BOOM_LAN"
	run "wg-$mode" "$mode"
	t_eq "$mode: LAN dropped -> exit 0" "$RC" 0
	t_eq "$mode: LAN dropped -> boom-pickle's WireGuard" "$(cat "$T_DIR/wg-$mode.out")" "$BOOM_WG"
	t_grep "$mode: logs the LAN fallback" "$T_DIR/wg-$mode.log" \
		"INFO discovery: LAN host $BOOM_LAN not reachable, falling back to WireGuard"
	t_grep "$mode: logs routing via WireGuard" "$T_DIR/wg-$mode.log" \
		"INFO discovery: routing via WireGuard: $BOOM_WG"
	in_order "$mode: fallback line before the routing line" "$T_DIR/wg-$mode.log" \
		"LAN host $BOOM_LAN not reachable" "routing via WireGuard: $BOOM_WG"

	# 3. boom-pickle dead on both: the loop goes on to zesty's LAN (the
	# seed's bug returned boom-pickle's WireGuard address unprobed).
	dn_undrop
	dn_drop "$BOOM_LAN" "$BOOM_WG"
	run "next-$mode" "$mode" --json
	t_eq "$mode: first body dead -> exit 0" "$RC" 0
	t_eq "$mode: first body dead -> the second body's LAN" \
		"$(dn_json_field "$T_DIR/next-$mode.out" ip)" "$ZESTY_LAN"
	t_eq "$mode: first body dead -> node_id" \
		"$(dn_json_field "$T_DIR/next-$mode.out" node_id)" "$ZESTY"
	t_grep "$mode: logs the first body unreachable" "$T_DIR/next-$mode.log" \
		"body $BOOM unreachable on LAN and WireGuard, trying next"
	in_order "$mode: WireGuard of the first body was probed before moving on" \
		"$T_DIR/next-$mode.log" "LAN host $BOOM_LAN not reachable, falling back to WireGuard" \
		"body $BOOM unreachable on LAN and WireGuard, trying next"
	t_grep "$mode: logs routing via the second body's LAN" "$T_DIR/next-$mode.log" \
		"routing via LAN: $ZESTY_LAN"

	# 4. Two bodies dead, the third's LAN dropped: its WireGuard.
	dn_undrop
	dn_drop "$BOOM_LAN" "$BOOM_WG" "$ZESTY_LAN" "$ZESTY_WG" "$TIDY_LAN"
	run "third-$mode" "$mode" --json
	t_eq "$mode: two dead, LAN of the third dropped -> its WireGuard" \
		"$(dn_json_field "$T_DIR/third-$mode.out" ip)" "$TIDY_WG"
	ms=$(dn_json_field "$T_DIR/third-$mode.out" elapsed_ms)
	eval "ELAPSED_$mode=\${ms:-0}"

	# 5. Every body of the head's venue dead: quickroute is a gate, so the
	# client asks again excluding them and gets cosmic across venues (Test B).
	dn_undrop
	dn_drop "$BOOM_LAN" "$BOOM_WG" "$ZESTY_LAN" "$ZESTY_WG" "$TIDY_LAN" "$TIDY_WG"
	run "past-$mode" "$mode" --json
	t_eq "$mode: venue dead -> exit 0" "$RC" 0
	t_eq "$mode: venue dead -> cosmic across venues" \
		"$(dn_json_field "$T_DIR/past-$mode.out" node_id)" "$COSMIC"
	t_eq "$mode: venue dead -> cosmic is not same_venue" \
		"$(dn_json_field "$T_DIR/past-$mode.out" same_venue)" false
	in_order "$mode: venue dead -> the last body, the second question, the choice" \
		"$T_DIR/past-$mode.log" "body $TIDY unreachable on LAN and WireGuard, trying next" \
		"no reachable body among 3 in the head's venue, asking the cluster for the rest of the district" \
		"routing via LAN: $COSMIC_LAN"
	t_nogrep "$mode: venue dead -> no exhausted line" "$T_DIR/past-$mode.log" \
		"ERROR discovery: no reachable body"
	t_grep "$mode: venue dead -> the cluster was asked to exclude them" "$T_DIR/sim.log" \
		"partition cross_venue, 1 found, first $COSMIC (excluding unreachable bodies)"

	# 6. All dead, cosmic too: 69 and the exhausted line over both lists.
	dn_drop "$COSMIC_LAN" "$COSMIC_WG"
	run "dead-$mode" "$mode"
	t_eq "$mode: all dead -> exit 69" "$RC" 69
	t_grep "$mode: all dead -> the exhausted line" "$T_DIR/dead-$mode.log" \
		"ERROR discovery: no reachable body among 4 eligible"
	t_grep "$mode: all dead -> the last body is reported too" "$T_DIR/dead-$mode.log" \
		"body $COSMIC unreachable on LAN and WireGuard, trying next"
	t_eq "$mode: all dead -> nothing on stdout" "$(cat "$T_DIR/dead-$mode.out")" ""
done

# Sequential waits out five dropped probes in step 4; parallel waits for one
# probe timeout, since all five time out together.
if [ "${ELAPSED_sequential:-0}" -ge $((5 * PROBE_MS)) ]; then
	t_ok "sequential pays every dropped probe in turn (${ELAPSED_sequential} ms)"
else
	t_fail "sequential pays every dropped probe in turn" "took ${ELAPSED_sequential:-?} ms"
fi
if [ -n "${ELAPSED_parallel:-}" ] && [ "$ELAPSED_parallel" -lt $((5 * PROBE_MS)) ]; then
	t_ok "parallel waits about one probe timeout (${ELAPSED_parallel} ms)"
else
	t_fail "parallel waits about one probe timeout" "took ${ELAPSED_parallel:-?} ms"
fi
for s in lan wg next past dead; do
	sed 's/^[^ ]* //' "$T_DIR/$s-sequential.log" | grep -v 'eligible bodies for head' > "$T_DIR/$s-s.msgs"
	sed 's/^[^ ]* //' "$T_DIR/$s-parallel.log" | grep -v 'eligible bodies for head' > "$T_DIR/$s-p.msgs"
	if cmp -s "$T_DIR/$s-s.msgs" "$T_DIR/$s-p.msgs"; then
		t_ok "$s: parallel logs the same lines as sequential"
	else
		t_fail "$s: parallel logs the same lines as sequential" "$(diff "$T_DIR/$s-s.msgs" "$T_DIR/$s-p.msgs" | head -5)"
	fi
done

# Sequential and parallel on a table of fleet layouts under real packet
# filtering. Each layout gives, for boom LAN, boom WG, zesty LAN, zesty WG,
# tidy LAN, tidy WG in failover order: o answers, r is refused (TCP reset),
# t is dropped (the probe times out). The expected choice is the first 'o';
# with none, cosmic's LAN across venues, after the second question.
ORDER="$BOOM_LAN $BOOM_WG $ZESTY_LAN $ZESTY_WG $TIDY_LAN $TIDY_WG"
for layout in oooooo tooooo rooooo ttoooo trtooo rrrrto tttttt rrrrrr trrtoo ttttot rtrtro ottttt; do
	dn_undrop
	want="" i=0
	for ip in $ORDER; do
		c=${layout:$i:1}
		[ "$c" = t ] && dn_drop "$ip"
		[ "$c" = r ] && dn_reject "$ip"
		[ "$c" = o ] && [ -z "$want" ] && want=$ip
		i=$((i + 1))
	done
	for mode in sequential parallel; do
		# A fresh state: the previous layout's cached body must not decide.
		rm -rf "$T_DIR/state-layout-$mode"
		run "layout-$mode" "$mode" --json
		got=$(dn_json_field "$T_DIR/layout-$mode.out" ip)
		[ -n "$got" ] || got="exit $RC"
		eval "GOT_$mode=\$got"
	done
	t_eq "layout $layout: sequential chooses ${want:-cosmic}" "$GOT_sequential" "${want:-$COSMIC_LAN}"
	t_eq "layout $layout: parallel agrees" "$GOT_parallel" "$GOT_sequential"
done
dn_undrop

# The seed's Test A: park the same-venue bodies in bxl1-test; peppy gets
# cosmic across venues, whose LAN it cannot reach: WireGuard.
dn_undrop
dn_drop "$COSMIC_LAN"
for b in $BOOM $ZESTY $TIDY; do
	dn_sim_post "/nodes/$b/district" '{"district":"bxl1-test","venue":"rupelmonde"}' ||
		t_fail "park $b in bxl1-test" "POST failed"
done
run testa sequential --json
t_eq "Test A: cosmic chosen" "$(dn_json_field "$T_DIR/testa.out" node_id)" "$COSMIC"
t_eq "Test A: over WireGuard" "$(dn_json_field "$T_DIR/testa.out" ip)" "$COSMIC_WG"
t_eq "Test A: cross-venue" "$(dn_json_field "$T_DIR/testa.out" same_venue)" false
in_order "Test A: both lines, in order" "$T_DIR/testa.log" \
	"LAN host $COSMIC_LAN not reachable, falling back to WireGuard" \
	"routing via WireGuard: $COSMIC_WG"
t_grep "Test A: the eligible GET names the head" "$T_DIR/sim.log" \
	"eligible for head node-74adf4f8 in bxl1/rupelmonde: partition cross_venue"
# Step 7: boom-pickle back; after a kiosk reset (the cache dropped) peppy
# returns to LAN on boom-pickle.
dn_sim_post "/nodes/$BOOM/district" '{"district":"bxl1","venue":"rupelmonde"}' ||
	t_fail "restore boom-pickle" "POST failed"
dn_config testa sequential "$PROBE_MS" 2 "$T_DIR/state-testa"
nsx "$BIN/hydra-agent" --config "$T_DIR/testa.yaml" invalidate --reason "kiosk reset" > /dev/null
t_grep "Test A: invalidate is logged" "$T_DIR/testa.log" \
	"cached body $COSMIC invalidated: kiosk reset"
run testa sequential
t_eq "Test A step 7: back on boom-pickle's LAN" "$(cat "$T_DIR/testa.out")" "$BOOM_LAN"

# The cache: the next discover uses it after one probe, without the cluster.
run cache sequential
t_eq "cache: first discover" "$(cat "$T_DIR/cache.out")" "$BOOM_LAN"
t_stop sim
run cache sequential --json
t_eq "cache: used while the cluster is down" "$(dn_json_field "$T_DIR/cache.out" cached)" true
t_eq "cache: same body" "$(dn_json_field "$T_DIR/cache.out" ip)" "$BOOM_LAN"
t_grep "cache: use is logged" "$T_DIR/cache.log" "using cached body $BOOM"
# Its body stops answering: invalidated with the reason, discovery runs again
# (and fails here: the cluster is down, so exit 69).
dn_drop "$BOOM_LAN"
run cache sequential
t_grep "cache: invalidated when the re-probe fails" "$T_DIR/cache.log" \
	"cached body $BOOM invalidated: probe $BOOM_LAN:$DN_PORT timeout"
t_eq "cache: rediscovery without a cluster -> 69" "$RC" 69
dn_sim "$T_ROOT/tests/fixtures/discovery-fleet.yaml"
run cache sequential
t_eq "cache: gone, rediscovery picks WireGuard" "$(cat "$T_DIR/cache.out")" "$BOOM_WG"

# Usage errors and help.
nsx "$BIN/hydra-agent" --config "$T_DIR/cache.yaml" discover --bogus > /dev/null 2>&1
t_eq "discover --bogus -> 64" "$?" 64
nsx "$BIN/hydra-agent" --config "$T_DIR/cache.yaml" invalidate > /dev/null 2>&1
t_eq "invalidate without --reason -> 64" "$?" 64
"$BIN/hydra-agent" --config "$T_DIR/cache.yaml" discover --help | grep -q -- '--json'
t_eq "discover --help" "$?" 0

dn_finish
