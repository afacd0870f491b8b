#!/bin/bash
# bench/upstream.sh: one 24 KB member of a large release ZIP through the HQ
# mirror (issue 16), against downloading the whole archive first, medians of
# RUNS (default 3).
#
# nginx stands in for GitHub: a release host answering 302 to an asset host
# with ranges on. The release holds src/main.py (24356 bytes), a few small
# sources and models/big.bin of BIG_MB MiB (default 1024) stored (zip -0).
# Each run starts a fresh mirror (import: on_request_only, so no background
# import is counted) on an empty root and asks for src/main.py once.
#
# The same member from a .tar.gz release (sources and TAR_MB MiB of random
# bytes, default 64: zeros would be refused as a bomb) costs the whole
# archive: the mirror reads it once and rewrites it as a ZIP (tar_ms),
# against curl | tar -xzO of the member (tar_whole_ms).
#
# Prints a table and the last lines
# `upstream: member_bytes=<n> (target < 1048576) member_ms=<m> whole_ms=<w>` and
# `upstream tar.gz: tar_ms=<m> tar_whole_ms=<w> archive_bytes=<b>`.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/tests/lib.sh"
# lib.sh finds the root from its caller's place; a bench sits one level up.
T_ROOT=$ROOT
. "$ROOT/tests/support/upstream_env.sh"
BIN="$ROOT/${BUILD:-build}/bin"
RUNS=${RUNS:-3}
BIG_MB=${BIG_MB:-1024}
TAR_MB=${TAR_MB:-64}

for c in nginx zip unzip curl tar; do
	command -v "$c" > /dev/null || { echo "upstream bench: $c is not installed" >&2; exit 1; }
done

WWW="$T_DIR/www"
REL="$WWW/demo"
mkdir -p "$REL" "$T_DIR/src/src" "$T_DIR/src/models" "$T_DIR/nginx/t"
head -c 18267 /dev/urandom | base64 -w 76 | head -c 24356 > "$T_DIR/src/src/main.py"
for i in 1 2 3 4 5; do head -c 4000 /dev/urandom | base64 > "$T_DIR/src/src/mod$i.py"; done
# A sparse file: no disk for the source, BIG_MB MiB stored in the ZIP.
truncate -s "${BIG_MB}M" "$T_DIR/src/models/big.bin"
(cd "$T_DIR/src" && zip -q -0 -r "$REL/demo-1.0.zip" models src) ||
	{ echo "upstream bench: zip failed" >&2; exit 1; }
rm -f "$T_DIR/src/models/big.bin"
ARCHIVE_BYTES=$(stat -c %s "$REL/demo-1.0.zip")
head -c "$((TAR_MB * 1024 * 1024))" /dev/urandom > "$T_DIR/src/models/big.bin"
tar -C "$T_DIR/src" -czf "$REL/demo-2.0.tar.gz" models src ||
	{ echo "upstream bench: tar failed" >&2; exit 1; }
rm -f "$T_DIR/src/models/big.bin"
TAR_BYTES=$(stat -c %s "$REL/demo-2.0.tar.gz")

up_nginx '$bytes_sent' || { echo "upstream bench: nginx did not start" >&2; exit 1; }

sent() { cat "$T_DIR/nginx/gh.log" "$T_DIR/nginx/assets.log" 2>/dev/null | awk '{ s += $1 } END { printf "%.0f\n", s }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

: > "$T_DIR/member_ms"
: > "$T_DIR/member_bytes"
: > "$T_DIR/whole_ms"
: > "$T_DIR/tar_ms"
: > "$T_DIR/tar_whole_ms"
# member URL DEST: time_total of one GET in ms; the bytes must be src/main.py.
member() {
	_s=$(curl -s -o "$2" -w '%{time_total}' "$1")
	cmp -s "$2" "$T_DIR/src/src/main.py" ||
		{ echo "upstream bench: wrong member bytes from $1" >&2; exit 1; }
	awk -v s="$_s" 'BEGIN { printf "%.0f\n", s * 1000 }'
}
for run in $(seq 1 "$RUNS"); do
	PORT=$(t_free_port)
	rm -rf "$T_DIR/root"
	cat > "$T_DIR/m.yaml" <<YAML
listen: 127.0.0.1:$PORT
root: $T_DIR/root
tools_upstream:
  archive_url: "http://127.0.0.1:$GH/{tool_id}/{tool_id}-{version}.zip"
  import: on_request_only
YAML
	cat > "$T_DIR/t.yaml" <<YAML
listen: 127.0.0.1:$PORT
root: $T_DIR/root
tools_upstream:
  archive_url: "http://127.0.0.1:$GH/{tool_id}/{tool_id}-{version}.tar.gz"
  import: on_request_only
YAML
	t_start "mirror$run" "$T_DIR/m$run.log" "$BIN/hydra-mirror" --config "$T_DIR/m.yaml"
	t_wait_log "$T_DIR/m$run.log" "listening on 127.0.0.1:$PORT" 10000 ||
		{ echo "upstream bench: mirror did not start" >&2; exit 1; }
	before=$(sent)
	member "http://127.0.0.1:$PORT/api/v1/tools/demo/1.0/files/src/main.py" \
		"$T_DIR/member" >> "$T_DIR/member_ms"
	echo $(( $(sent) - before )) >> "$T_DIR/member_bytes"
	t_stop "mirror$run"

	rm -rf "$T_DIR/root"
	t_start "tar$run" "$T_DIR/t$run.log" "$BIN/hydra-mirror" --config "$T_DIR/t.yaml"
	t_wait_log "$T_DIR/t$run.log" "listening on 127.0.0.1:$PORT" 10000 ||
		{ echo "upstream bench: mirror did not start" >&2; exit 1; }
	member "http://127.0.0.1:$PORT/api/v1/tools/demo/2.0/files/src/main.py" \
		"$T_DIR/member" >> "$T_DIR/tar_ms"
	t_stop "tar$run"
	t0=$(date +%s%N)
	curl -s -L "http://127.0.0.1:$GH/demo/demo-2.0.tar.gz" | tar -xzO src/main.py \
		> "$T_DIR/member2"
	t1=$(date +%s%N)
	cmp -s "$T_DIR/member2" "$T_DIR/src/src/main.py" ||
		{ echo "upstream bench: curl | tar gave wrong bytes" >&2; exit 1; }
	echo $(( (t1 - t0) / 1000000 )) >> "$T_DIR/tar_whole_ms"

	# The seed's sketch: the whole archive first, then the one file out of it.
	t0=$(date +%s%N)
	curl -s -L -o "$T_DIR/whole.zip" "http://127.0.0.1:$GH/demo/demo-1.0.zip" &&
		unzip -p "$T_DIR/whole.zip" src/main.py > "$T_DIR/member2"
	t1=$(date +%s%N)
	cmp -s "$T_DIR/member2" "$T_DIR/src/src/main.py" ||
		{ echo "upstream bench: whole download gave wrong bytes" >&2; exit 1; }
	echo $(( (t1 - t0) / 1000000 )) >> "$T_DIR/whole_ms"
	rm -f "$T_DIR/whole.zip"
done

MB=$(median < "$T_DIR/member_bytes")
MM=$(median < "$T_DIR/member_ms")
WM=$(median < "$T_DIR/whole_ms")
printf '# medians of %d runs, archive %s bytes (big.bin %d MiB stored)\n' "$RUNS" \
	"$ARCHIVE_BYTES" "$BIG_MB"
printf '%-44s %14s %14s\n' "measure" "by range" "whole first"
printf '%-44s %14s %14s\n' "bytes nginx sent for src/main.py" "$MB" "$ARCHIVE_BYTES"
printf '%-44s %14s %14s\n' "time to src/main.py (ms)" "$MM" "$WM"
TM=$(median < "$T_DIR/tar_ms")
TW=$(median < "$T_DIR/tar_whole_ms")
printf '%-44s %14s %14s\n' "time to src/main.py, .tar.gz (ms)" "$TM" "$TW"
echo "upstream tar.gz: tar_ms=$TM tar_whole_ms=$TW archive_bytes=$TAR_BYTES"
echo "upstream: member_bytes=$MB member_ms=$MM whole_ms=$WM"
# The ratio: bytes nginx sent for one member over the 1 MiB bound.
awk -v mb="$MB" 'BEGIN { printf "upstream: ratio=%.3f (target < 1: under 1 MiB sent for one member)\n", mb / 1048576 }'
