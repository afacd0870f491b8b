#!/bin/sh
# make bench: every bench/NAME.sh in turn (ONLY=regex picks some by NAME).
# Each prints its table, shown as it comes, where a row with a target ends in
# `ok` or `MISS`, and result lines `NAME: N of M targets met` and/or
# `NAME: ratio=<x> (target ...)`. A summary of those result lines follows; a
# script with none is named there with its last line, and so is one that
# failed. Benchmarks are measurements, not tests: the exit status says only
# whether every script ran to its end.
cd "$(dirname "$0")/.." || exit 1
out=$(mktemp "${TMPDIR:-/tmp}/hydra-bench-run.XXXXXX") || exit 1
sum=$(mktemp "${TMPDIR:-/tmp}/hydra-bench-sum.XXXXXX") || exit 1
trap 'rm -f "$out" "$sum"' EXIT
status=0
for b in bench/*.sh; do
	case "$b" in bench/run.sh | bench/lib.sh) continue ;; esac
	name=$(basename "$b" .sh)
	if [ -n "${ONLY:-}" ] && ! echo "$name" | grep -Eq -- "$ONLY"; then
		continue
	fi
	echo "== $b"
	# Shown as it comes and kept for the summary; tail ends with the script.
	: > "$out"
	bash "$b" > "$out" &
	pid=$!
	tail -n +1 --pid="$pid" -f "$out"
	wait "$pid"
	rc=$?
	last=$(grep -v '^[[:space:]]*$' "$out" | tail -n 1)
	results=$(grep -E "^$name: ([0-9]+ of [0-9]+ targets met|ratio=[0-9.]+ \(target [<>]=? )" "$out")
	if [ "$rc" != 0 ]; then
		status=1
		echo "$name: failed (exit $rc): $last" >> "$sum"
	elif [ -n "$results" ]; then
		echo "$results" >> "$sum"
	else
		echo "$name: no result line, last line: $last" >> "$sum"
	fi
done
echo "== summary"
cat "$sum"
exit $status
