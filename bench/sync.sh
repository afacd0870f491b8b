#!/bin/bash
# bench/sync.sh: hydra-agent sync against rsync, same run, interleaved,
# medians of RUNS (default 3).
#
#   A tool of 200 files (4 large, 195 small, 1 medium) in two versions that
#   differ in one file (the medium one, rewritten: no delta helps anyone).
#   Each measured run brings a folder from version 1 to version 2 (and an
#   unmeasured one brings it back):
#     hydra-agent sync   from hydra-mirror on loopback (warm index)
#     rsync -a           from an rsync daemon on loopback (rsync --port)
#   and, for scale, a full download into an empty folder with both.
#   Bytes for sync are what left the mirror (its /metrics, manifest included);
#   for rsync its --stats "Total bytes received".
#
# Sources (issue 17): a full download of version 2 from one hydra-mirror peer
# throttled to SOURCE_RATE (max_egress_bytes_per_s), against two such peers
# (mirror.extra_sources and --source), each on its own loopback address
# (so that --json's per-file host tells them apart); the last-but-one line is
# `sources: speedup=<x> (target >= 1.8)`.
#
# Prints a table, one row per target (measure, reference, agent, ratio,
# target, ok or MISS) and the last line `sync: N of M targets met`:
# a full download at most 1.0x rsync's time, one changed file at most 0.2x,
# at most 1.05x the changed bytes sent, two sources at least 1.8x one.
# Before them, `connections:` counts the TCP connections of one more (untimed) full sync, --jobs 4,
# from the access log ($connection) of an nginx put in front of the mirror.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$ROOT/${BUILD:-build}/bin"
RUNS=${RUNS:-3}
LARGE_MB=${LARGE_MB:-32}
CHANGED_KB=${CHANGED_KB:-2048}
SOURCE_RATE=${SOURCE_RATE:-50M}
DIR=$(mktemp -d "${TMPDIR:-/tmp}/hydra-bench.XXXXXX")
PIDS=""
trap 'for p in $PIDS; do kill $p 2>/dev/null; done; wait 2>/dev/null; rm -rf "$DIR"' EXIT

for t in rsync jq; do
	command -v $t > /dev/null || { echo "bench: $t is not installed" >&2; exit 1; }
done
port() { "$BIN/hydra-testkit" free-port; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
# The nginx proxy of conn_count, the same as the tests'.
. "$ROOT/tests/support/fleet_env.sh"
. "$ROOT/bench/lib.sh"
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

V1="$DIR/root/files/tools/bench/1/files"
V2="$DIR/root/files/tools/bench/2/files"
mkdir -p "$V1/models" "$V1/lib" "$V1/share"
for n in 1 2 3 4; do head -c $((LARGE_MB * 1024 * 1024)) /dev/urandom > "$V1/models/large$n.bin"; done
i=0
while [ $i -lt 195 ]; do
	case $((i % 2)) in 0) d=lib ;; *) d=share ;; esac
	head -c $((512 + (i * 331) % 65536)) /dev/urandom > "$V1/$d/s$i.dat"
	i=$((i + 1))
done
head -c $((CHANGED_KB * 1024)) /dev/urandom > "$V1/models/medium.bin"
mkdir -p "$V2"
cp -a "$V1/." "$V2/"
head -c $((CHANGED_KB * 1024)) /dev/urandom > "$V2/models/medium.bin"
# A later mtime, so that rsync's quick check (size and whole seconds) sees it.
touch -m -d "@$(( $(date +%s) + 3600 ))" "$V2/models/medium.bin"
CHANGED_BYTES=$((CHANGED_KB * 1024))
NFILES=$(find "$V1" -type f | wc -l)

MPORT=$(port)
"$BIN/hydra-mirror" --listen "127.0.0.1:$MPORT" --root "$DIR/root" --mode origin \
	> "$DIR/mirror.log" 2>&1 &
PIDS="$PIDS $!"
"$BIN/hydra-testkit" wait-log "$DIR/mirror.log" "hydra-mirror listening on" 60000 ||
	{ echo "bench: hydra-mirror did not start" >&2; exit 1; }
BASE="http://127.0.0.1:$MPORT"
for v in 1 2; do
	"$BIN/hydra-agent" manifest --dir "$DIR/root/files/tools/bench/$v/files" --tool-id bench \
		--version $v --base-url "$BASE" --out "$DIR/root/files/tools/bench/$v/manifest.json" \
		2> /dev/null || { echo "bench: manifest failed" >&2; exit 1; }
done
printf 'node_id: bench\nstate_dir: %s/state\nlog_file: %s/agent.log\n' "$DIR" "$DIR" > "$DIR/agent.yaml"

RPORT=$(port)
cat > "$DIR/rsyncd.conf" <<CONF
use chroot = no
uid = $(id -u)
gid = $(id -g)
[v1]
	path = $V1
	read only = yes
[v2]
	path = $V2
	read only = yes
CONF
rsync --daemon --no-detach --config="$DIR/rsyncd.conf" --address=127.0.0.1 --port="$RPORT" \
	--log-file="$DIR/rsyncd.log" &
PIDS="$PIDS $!"
"$BIN/hydra-testkit" wait-tcp 127.0.0.1 "$RPORT" 10000 ||
	{ echo "bench: rsync daemon did not start" >&2; exit 1; }

served() {
	curl -s "$BASE/metrics" | awk '$1 == "hydra_mirror_bytes_served_total" { print $2 }'
}
agent_sync() {  # agent_sync VERSION DEST
	"$BIN/hydra-agent" --config "$DIR/agent.yaml" sync --progress none --jobs 4 \
		--manifest "$BASE/api/v1/tools/bench/$1/manifest.json" --dir "$2"
}
rsync_from() {  # rsync_from MODULE DEST: prints the bytes received
	rsync -a --delete --stats "rsync://127.0.0.1:$RPORT/$1/" "$2/" |
		awk -F': ' '/^Total bytes received/ { gsub(/,/, "", $2); print $2 }'
}
# timed NAME CMD...: appends the ms of one run to $DIR/NAME.ms
timed() {
	_n=$1
	shift
	sync
	_t=$(now_ms)
	"$@" > "$DIR/last.out" 2> "$DIR/last.err" || echo "bench: $_n failed: $(tail -n1 "$DIR/last.err")" >&2
	echo $(( $(now_ms) - _t )) >> "$DIR/$_n.ms"
}

# Both folders start at version 1.
agent_sync 1 "$DIR/agent" > /dev/null 2>&1 || { echo "bench: first sync failed" >&2; exit 1; }
rsync_from v1 "$DIR/rsync" > /dev/null

# conn_count: one untimed full sync of version 2 through an nginx proxy in
# front of the mirror; prints "<connections> connections for <requests>
# requests" from its access log, or "n/a" without nginx.
conn_count() {
	command -v nginx > /dev/null || { echo "n/a (nginx is not installed)"; return; }
	_np=$(port)
	env_nginx_conf "$DIR/nginx" "$_np" "$(env_nginx_proxy "$BASE")"
	nginx -p "$DIR/nginx" -c "$DIR/nginx/nginx.conf" -e "$DIR/nginx/error.log" &
	_ngx=$!
	"$BIN/hydra-testkit" wait-tcp 127.0.0.1 "$_np" 10000 || { echo "n/a (nginx did not start)"; kill $_ngx; return; }
	"$BIN/hydra-agent" manifest --dir "$V2" --tool-id bench --version 2 \
		--base-url "http://127.0.0.1:$_np" --out "$DIR/proxied.json" 2> /dev/null
	"$BIN/hydra-agent" --config "$DIR/agent.yaml" sync --progress none --jobs 4 \
		--manifest "$DIR/proxied.json" --dir "$DIR/proxied" > /dev/null 2>&1 ||
		echo "bench: the proxied sync failed" >&2
	kill $_ngx
	wait $_ngx 2> /dev/null
	awk '{ c[$1] = 1; n++ } END { printf "%d connections for %d requests\n", length(c), n }' \
		"$DIR/nginx/access.log"
}
CONNS=$(conn_count)

r=0
while [ $r -lt "$RUNS" ]; do
	b=$(served)
	timed agent agent_sync 2 "$DIR/agent"
	echo $(( $(served) - b )) >> "$DIR/agent.bytes"
	cmp -s "$V2/models/medium.bin" "$DIR/agent/models/medium.bin" ||
		echo "bench: hydra-agent did not bring the changed file" >&2
	agent_sync 1 "$DIR/agent" > /dev/null 2>&1
	timed rsync rsync_from v2 "$DIR/rsync"
	cat "$DIR/last.out" >> "$DIR/rsync.bytes"
	cmp -s "$V2/models/medium.bin" "$DIR/rsync/models/medium.bin" ||
		echo "bench: rsync did not bring the changed file" >&2
	rsync_from v1 "$DIR/rsync" > /dev/null
	# Full downloads into empty folders.
	rm -rf "$DIR/full-agent" "$DIR/full-rsync"
	b=$(served)
	timed agent_full agent_sync 2 "$DIR/full-agent"
	echo $(( $(served) - b )) >> "$DIR/agent_full.bytes"
	timed rsync_full rsync_from v2 "$DIR/full-rsync"
	cat "$DIR/last.out" >> "$DIR/rsync_full.bytes"
	r=$((r + 1))
done

# Two peers of the origin on their own addresses, throttled alike, warmed by
# one untimed sync each so that no fill is measured.
peer() {  # peer ADDR: starts a peer, prints its base URL
	_p=$(port)
	"$BIN/hydra-mirror" --listen "$1:$_p" --root "$DIR/peer-$1" --mode peer \
		--origin-url "$BASE" --max-egress-bytes-per-s "$SOURCE_RATE" > "$DIR/peer-$1.log" 2>&1 &
	# Run in $(...): the trap's PIDS is the parent's, so the pid goes by file.
	echo $! > "$DIR/peer-$1.pid"
	"$BIN/hydra-testkit" wait-log "$DIR/peer-$1.log" "hydra-mirror listening on" 60000 ||
		{ echo "bench: the peer on $1 did not start" >&2; exit 1; }
	echo "http://$1:$_p"
}
SRC1=$(peer 127.0.0.2)
SRC2=$(peer 127.0.0.3)
PIDS="$PIDS $(cat "$DIR/peer-127.0.0.2.pid" "$DIR/peer-127.0.0.3.pid" 2> /dev/null)"
[ -n "$SRC1" ] && [ -n "$SRC2" ] || exit 1
printf 'node_id: bench\nstate_dir: %s/state\nlog_file: %s/sources.log\nmirror:\n' "$DIR" "$DIR" \
	> "$DIR/sources.yaml"
printf '  origin_host: 127.0.0.1\n  extra_sources: ["%s"]\n' "$SRC1" >> "$DIR/sources.yaml"
sources_sync() {  # sources_sync DEST [--source URL]
	_d=$1
	shift
	rm -rf "$_d"
	"$BIN/hydra-agent" --config "$DIR/sources.yaml" sync --progress none --jobs 4 \
		--manifest "$BASE/api/v1/tools/bench/2/manifest.json" --dir "$_d" --json "$@"
}
sources_sync "$DIR/warm1" > /dev/null 2>&1 || echo "bench: warming $SRC1 failed" >&2
sed "s|$SRC1|$SRC2|" "$DIR/sources.yaml" > "$DIR/sources2.yaml"
"$BIN/hydra-agent" --config "$DIR/sources2.yaml" sync --progress none --jobs 4 \
	--manifest "$BASE/api/v1/tools/bench/2/manifest.json" --dir "$DIR/warm2" > /dev/null 2>&1 ||
	echo "bench: warming $SRC2 failed" >&2
r=0
while [ $r -lt "$RUNS" ]; do
	timed one_source sources_sync "$DIR/one"
	timed two_sources sources_sync "$DIR/two" --source "$SRC2"
	r=$((r + 1))
done
diff -r --exclude=.hydra-index "$V2" "$DIR/two" > /dev/null ||
	echo "bench: the folder synced from two sources differs from version 2" >&2
TWO_SPLIT=$(jq -r '.transfers | group_by(.host) | map("\(.[0].host) \(length) files " +
	"\([.[].bytes] | add / 1048576 | floor) MiB") | join(", ")' \
	"$DIR/last.out" 2> /dev/null)

diff -r --exclude=.hydra-index "$V2" "$DIR/full-agent" > /dev/null ||
	echo "bench: the synced folder differs from version 2" >&2

A_MS=$(median < "$DIR/agent.ms")
R_MS=$(median < "$DIR/rsync.ms")
printf '\n%d files (%d x %d MiB, one %d KiB file changed), %d runs, medians\n\n' \
	"$NFILES" 4 "$LARGE_MB" "$CHANGED_KB" "$RUNS"
printf '%-34s %10s %14s %12s\n' "" "ms" "bytes" "x changed"
row() {
	_b=$(median < "$DIR/$2.bytes")
	printf '%-34s %10s %14s %12s\n' "$1" "$(median < "$DIR/$2.ms")" "$_b" \
		"$(awk -v b="$_b" -v c="$CHANGED_BYTES" 'BEGIN { printf "%.3f", b / c }')"
}
row "hydra-agent sync, 1 changed" agent
row "rsync daemon, 1 changed" rsync
row "hydra-agent sync, full download" agent_full
row "rsync daemon, full download" rsync_full
printf '%-34s %10s\n' "full, 1 source at $SOURCE_RATE/s" "$(median < "$DIR/one_source.ms")"
printf '%-34s %10s   (files: %s)\n' "full, 2 sources at $SOURCE_RATE/s" \
	"$(median < "$DIR/two_sources.ms")" "$TWO_SPLIT"
echo
echo "connections: $CONNS (full sync of $NFILES files, --jobs 4)"
bench_target_header agent
bench_target "full download, ms vs rsync" "$(median < "$DIR/rsync_full.ms")" \
	"$(median < "$DIR/agent_full.ms")" "<=" 1.0
bench_target "1 changed of $NFILES, ms vs rsync" "$R_MS" "$A_MS" "<=" 0.2
bench_target "1 changed, bytes vs the change" "$CHANGED_BYTES" "$(median < "$DIR/agent.bytes")" "<=" 1.05
# A speedup: the reference is the two-source time, the "agent" the one-source time.
bench_target "2 sources, speedup (1 src / 2 src)" "$(median < "$DIR/two_sources.ms")" \
	"$(median < "$DIR/one_source.ms")" ">=" 1.8
echo
echo "sync: $BENCH_MET of $BENCH_ALL targets met"
