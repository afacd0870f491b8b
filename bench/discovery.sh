#!/bin/bash
# bench/discovery.sh: hydra-agent discover, sequential against parallel, in
# the same run, interleaved, medians of RUNS (default 3).
#
# 8 eligible bodies from hydra-cluster-sim; nft drops every packet to the
# first 7 on both transports, probe_timeout_ms 1000. Sequential waits out
# 14 probe timeouts (about 14 s); parallel must answer within 1.5 s.
# Everything runs in a network namespace of its own (root, ip, nft).
#
# Prints a table and the last line `discovery: ratio=<x> (target <= 0.11)`.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/tests/lib.sh"
# lib.sh finds the root from its caller's place; a bench sits one level up.
T_ROOT=$ROOT
BIN="$ROOT/${BUILD:-build}/bin"
. "$ROOT/tests/fixtures/discovery-netns.sh"
RUNS=${RUNS:-3}
BODIES=8
DEAD=7
PROBE_MS=1000

dn_need discovery-bench

FLEET="$T_DIR/bench-fleet.yaml"
ADDRS=""
{
	echo "nodes:"
	echo "  - {id: head-0, name: head, role: head, district: bxl1, venue: rupelmonde,"
	echo "     owner: o, lan_ip: 127.11.0.32, wg_ip: 127.10.100.32, status: online,"
	echo "     drained: false, idle: true, vram_mb: 0}"
	for i in $(seq 1 $BODIES); do
		# VRAM descending keeps the server's order body-1 .. body-8.
		echo "  - {id: body-$i, name: body-$i, role: body, district: bxl1, venue: rupelmonde,"
		echo "     owner: o, lan_ip: 127.11.1.$i, wg_ip: 127.10.101.$i, status: online,"
		echo "     drained: false, idle: true, vram_mb: $((20000 - i * 100))}"
		ADDRS="$ADDRS 127.11.1.$i 127.10.101.$i"
	done
} > "$FLEET"

dn_setup 127.11.0.32 $ADDRS
for a in $ADDRS; do
	dn_listen "$a" "$DN_PORT"
done
for i in $(seq 1 $DEAD); do
	dn_drop "127.11.1.$i" "127.10.101.$i"
done
dn_sim "$FLEET"
DN_NODE_ID=head-0
for mode in sequential parallel; do
	dn_config "$mode" "$mode" "$PROBE_MS" 10 "$T_DIR/state-$mode"
done

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

CHOSEN_sequential="" CHOSEN_parallel=""
for r in $(seq 1 "$RUNS"); do
	for mode in sequential parallel; do
		t0=$(now_ms)
		nsx "$BIN/hydra-agent" --config "$T_DIR/$mode.yaml" discover --no-cache --json \
			> "$T_DIR/$mode.out" 2> /dev/null || echo "bench: $mode run $r failed" >&2
		echo $(( $(now_ms) - t0 )) >> "$T_DIR/$mode.ms"
		eval "CHOSEN_$mode=\$(dn_json_field \"\$T_DIR/\$mode.out\" node_id)"
	done
done

S=$(median < "$T_DIR/sequential.ms")
P=$(median < "$T_DIR/parallel.ms")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }

printf '\n%s eligible bodies, first %s dropped on LAN and WireGuard, probe timeout %s ms,\n' \
	"$BODIES" "$DEAD" "$PROBE_MS"
printf 'median of %s runs (wall clock of hydra-agent discover)\n' "$RUNS"
printf '%-12s %10s %8s %8s  %s\n' mode median_ms min_ms max_ms chosen
for mode in sequential parallel; do
	printf '%-12s %10s %8s %8s  %s\n' "$mode" "$(median < "$T_DIR/$mode.ms")" \
		"$(sort -n "$T_DIR/$mode.ms" | head -1)" "$(sort -n "$T_DIR/$mode.ms" | tail -1)" \
		"$(eval echo "\$CHOSEN_$mode")"
done
printf '\n%-36s %s ms (target <= 1500)\n' "parallel" "$P"
printf '%-36s %s\n' "same choice" "$([ "$CHOSEN_sequential" = "$CHOSEN_parallel" ] && echo yes || echo NO)"
dn_teardown
echo "discovery: ratio=$(ratio "$P" "$S") (target <= 0.11)"
