#!/bin/sh
# Runs every fuzz target built in BUILD_FUZZ/fuzz/ for FUZZ_SECONDS each,
# from its seed corpus (fuzz/corpus/NAME, read only) and a working corpus
# (BUILD_FUZZ/corpus/NAME, where new inputs go), with fuzz/NAME.dict.
# A crash is saved as BUILD_FUZZ/crashes/NAME-crash-<sha1>; replay it with
# BUILD_FUZZ/fuzz/NAME FILE. Prints ok/not ok per target; exit 1 on any crash.
# FUZZ_ONLY=REGEX runs the targets whose name matches.
set -u
cd "$(dirname "$0")/.."
BUILD_FUZZ=${1:-build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
FUZZ_ONLY=${FUZZ_ONLY:-}
# An input that takes longer than this is a hang worth reporting.
FUZZ_INPUT_TIMEOUT_S=10
# Every target holds a few small documents; more is a leak.
FUZZ_RSS_MB=2048
# Inputs stay small so each run explores, not copies; above the largest seed.
FUZZ_MAX_LEN=16384
passed=0 failed=0
mkdir -p "$BUILD_FUZZ/crashes" "$BUILD_FUZZ/logs" "$BUILD_FUZZ/tmp"
# Scratch folders of the targets (fz_scratch) stay inside the build folder.
TMPDIR=$(cd "$BUILD_FUZZ/tmp" && pwd)
export TMPDIR
for bin in "$BUILD_FUZZ"/fuzz/*; do
	[ -x "$bin" ] || continue
	name=$(basename "$bin")
	[ -z "$FUZZ_ONLY" ] || echo "$name" | grep -qE "$FUZZ_ONLY" || continue
	work="$BUILD_FUZZ/corpus/$name"
	mkdir -p "$work"
	dict=""
	[ -f "fuzz/$name.dict" ] && dict="-dict=fuzz/$name.dict"
	log="$BUILD_FUZZ/logs/$name.log"
	# shellcheck disable=SC2086
	"$bin" -max_total_time="$FUZZ_SECONDS" -timeout="$FUZZ_INPUT_TIMEOUT_S" \
		-rss_limit_mb="$FUZZ_RSS_MB" -max_len="$FUZZ_MAX_LEN" -print_final_stats=1 \
		-artifact_prefix="$BUILD_FUZZ/crashes/$name-" $dict \
		"$work" "fuzz/corpus/$name" > "$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	if [ "$rc" -eq 0 ]; then
		passed=$((passed + 1))
		echo "ok - fuzz $name: ${execs:-?} inputs in ${FUZZ_SECONDS}s"
	else
		failed=$((failed + 1))
		echo "not ok - fuzz $name: exit $rc, see $log"
		grep -E '^(==[0-9]+==ERROR|SUMMARY|fuzz: property|.*runtime error)|artifact' "$log" | head -5 | sed 's/^/    /'
	fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
