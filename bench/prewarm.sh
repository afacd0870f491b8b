#!/bin/bash
# bench/prewarm.sh: the first body in a district installing a release just
# published, with pre-warm against without, and against a warm install.
#
#   cold     the district peer has never seen the file: the install waits
#            for the fill from the origin (throttled, as a WAN link is)
#   prewarm  a peer following the origin's journal filled it on publish;
#            the install starts once the peer's log says so
#   warm     the same file again through the cold peer, now a hit
#
# Each round publishes a new file (PUT to the origin). Prints a table, then
# `prewarm: ratio=<x> (target <= 1.2)` where x is the median pre-warmed install
# time over the median warm one. Not a test: it measures.
#
#   BUILD=build ROUNDS=5 SIZE_MB=64 ORIGIN_RATE=50M bash bench/prewarm.sh
set -u
HERE=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
ROUNDS=${ROUNDS:-5}
SIZE_MB=${SIZE_MB:-64}
ORIGIN_RATE=${ORIGIN_RATE:-50M}
M="$HERE/$BUILD/bin/hydra-mirror"
A="$HERE/$BUILD/bin/hydra-agent"
TK="$HERE/$BUILD/bin/hydra-testkit"

command -v curl > /dev/null || { echo "prewarm: curl not installed (make deps)"; exit 1; }
if [ ! -x "$M" ] || [ ! -x "$A" ] || [ ! -x "$TK" ]; then
	make -s -C "$HERE" BUILD="$BUILD" all || exit 1
fi

W=$(mktemp -d "${TMPDIR:-/tmp}/hydra-bench-prewarm.XXXXXX")
PIDS=""
cleanup() {
	for p in $PIDS; do kill "$p" 2> /dev/null && wait "$p" 2> /dev/null; done
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

TOKEN=bench-prewarm-token
printf '%s\n' "$TOKEN" > "$W/token"
chmod 600 "$W/token"
OPORT=$("$TK" free-port); CPORT=$("$TK" free-port); PPORT=$("$TK" free-port)
O="http://127.0.0.1:$OPORT"
"$M" --listen "127.0.0.1:$OPORT" --root "$W/origin" --admin-token-file "$W/token" \
	--max-egress-bytes-per-s "$ORIGIN_RATE" > "$W/origin.log" 2>&1 &
PIDS="$PIDS $!"
"$M" --mode peer --listen "127.0.0.1:$CPORT" --root "$W/cold" --origin-url "$O" \
	> "$W/cold.log" 2>&1 &
PIDS="$PIDS $!"
cat > "$W/peer.yaml" <<EOF
listen: "127.0.0.1:$PPORT"
root: $W/warm
mode: peer
origin_url: "$O"
prewarm:
  enabled: true
  wait_s: 5
EOF
"$M" --config "$W/peer.yaml" > "$W/prewarm.log" 2>&1 &
PIDS="$PIDS $!"
for p in "$OPORT" "$CPORT" "$PPORT"; do
	"$TK" wait-tcp 127.0.0.1 "$p" 30000 || { echo "prewarm: a mirror did not start"; exit 1; }
done
"$TK" wait-log "$W/prewarm.log" "prewarm: following journal" 30000 ||
	{ echo "prewarm: the peer does not follow"; tail -n 5 "$W/prewarm.log"; exit 1; }

agent_yaml() {  # agent_yaml NAME PORT
	cat > "$W/$1.yaml" <<EOF
node_id: bench-$1
state_dir: $W/state-$1
log_file: $W/agent-$1.log
district: {static: bxl1}
mirror:
  origin_host: "127.0.0.1"
  url_pattern: "http://127.0.0.1:$2"
EOF
}
agent_yaml cold "$CPORT"
agent_yaml prewarm "$PPORT"
# install NAME FILE: seconds of one install through NAME's district peer.
install() {
	local t0 t1
	rm -f "$W/out.bin"
	t0=$(date +%s%N)
	"$A" --config "$W/$1.yaml" install --url "$O/api/v1/peer/files/rel/$2" \
		--out "$W/out.bin" > /dev/null 2>&1 || { echo "prewarm: install $1 $2 failed" >&2; }
	t1=$(date +%s%N)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", (b - a) / 1e9 }'
}

: > "$W/tcold"; : > "$W/tpre"; : > "$W/twarm"; : > "$W/tlag"
for r in $(seq 1 "$ROUNDS"); do
	f="r$r.bin"
	head -c $((SIZE_MB * 1048576)) /dev/urandom > "$W/$f"
	t0=$(date +%s%N)
	curl -s -o /dev/null -X PUT -H "Authorization: Bearer $TOKEN" --data-binary "@$W/$f" \
		"$O/api/v1/peer/files/rel/$f"
	"$TK" wait-log "$W/prewarm.log" "prewarmed rel/$f" 600000 ||
		{ echo "prewarm: rel/$f was not pre-warmed"; exit 1; }
	t1=$(date +%s%N)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", (b - a) / 1e9 }' >> "$W/tlag"
	install prewarm "$f" >> "$W/tpre"
	install cold "$f" >> "$W/tcold"
	install cold "$f" >> "$W/twarm"
	rm -f "$W/$f"
	echo "# round $r of $ROUNDS done" >&2
done

median() { sort -g | awk '{ v[NR] = $1 } END { print NR ? v[int((NR + 1) / 2)] : 0 }'; }
COLD=$(median < "$W/tcold"); PRE=$(median < "$W/tpre"); WARM=$(median < "$W/twarm")
LAG=$(median < "$W/tlag")
awk -v c="$COLD" -v p="$PRE" -v w="$WARM" -v l="$LAG" -v n="$ROUNDS" -v mb="$SIZE_MB" \
    -v rate="$ORIGIN_RATE" '
BEGIN {
	printf "# median of %d rounds, one new %d MiB file per round, origin paced at %s/s\n",
	       n, mb, rate
	printf "%-44s %10s\n", "first-body-in-district install", "seconds"
	printf "%-44s %10.3f\n", "cold (no pre-warm: fill from the origin)", c
	printf "%-44s %10.3f\n", "pre-warmed on publish", p
	printf "%-44s %10.3f\n", "warm (a hit)", w
	printf "%-44s %10.3f\n", "publish to pre-warmed (PUT + journal + fill)", l
	printf "prewarm: ratio=%.2f (target <= 1.2: pre-warmed as fast as warm; cold/warm %.1f)\n",
	       (w > 0 ? p / w : 0), (w > 0 ? c / w : 0)
}'
