#!/bin/sh
# make bench: every bench/NAME.sh in turn; each prints its table and a last
# line `NAME: ratio=<x> (target ...)`. Benchmarks are measurements, not tests.
cd "$(dirname "$0")/.." || exit 1
status=0
for b in bench/*.sh; do
	[ "$b" = bench/run.sh ] && continue
	echo "== $b"
	bash "$b" || status=1
done
exit $status
