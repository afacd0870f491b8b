#!/bin/sh
# make torture: runs tests/torture/*.sh (but this one) with one seed, counts
# their ok/not ok/skip lines as tests/run.sh does, and prints the closing
# line "N passed, N failed, N skipped". TORTURE_SEED=N replays a run's
# random schedule; ONLY=REGEX picks scripts by name. Each script is stopped
# after TORTURE_TIMEOUT seconds (240) and counts as failed then.
# Logs: $BUILD/test-logs/torture-NAME.log.
set -u
BUILD=${BUILD:-build}
LOGS="$BUILD/test-logs"
mkdir -p "$LOGS"
ONLY=${ONLY:-}
TORTURE_TIMEOUT=${TORTURE_TIMEOUT:-240}
TORTURE_SEED=${TORTURE_SEED:-$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')}
export TORTURE_SEED BUILD
echo "torture seed $TORTURE_SEED (replay: TORTURE_SEED=$TORTURE_SEED make torture)"

pass=0 fail=0 skip=0
failed_names=""
for t in tests/torture/*.sh; do
	name=$(basename "$t" .sh)
	[ "$name" = run ] && continue
	[ -z "$ONLY" ] || echo "$name" | grep -qE "$ONLY" || continue
	log="$LOGS/torture-$name.log"
	started=$(date +%s)
	timeout -k 10 "$TORTURE_TIMEOUT" bash "$t" > "$log" 2>&1
	rc=$?
	[ $rc -eq 124 ] && echo "not ok - $name: still running after ${TORTURE_TIMEOUT}s, stopped" >> "$log"
	_p=$(grep -c '^ok - ' "$log")
	_f=$(grep -c '^not ok - ' "$log")
	_s=$(grep -c '^skip - ' "$log")
	if grep -qE 'runtime error:|ERROR: (Address|Leak)Sanitizer' "$log"; then
		_f=$((_f + 1))
	elif [ $rc -ne 0 ] && [ "$_f" -eq 0 ]; then
		_f=1
		echo "    $name exited $rc without naming a failed test" >> "$log"
	fi
	pass=$((pass + _p)); fail=$((fail + _f)); skip=$((skip + _s))
	took=$(($(date +%s) - started))
	if [ "$_f" -gt 0 ]; then
		failed_names="$failed_names $name"
		echo "FAIL $name ($_p passed, $_f failed, $_s skipped, ${took}s)"
		grep -E '^(not ok|# )|exited' "$log" | head -20 | sed 's/^/    /'
	else
		echo "PASS $name ($_p passed, $_s skipped, ${took}s)"
		grep '^# ' "$log" | grep -v '^# seed' | sed 's/^/    /'
	fi
done

[ -n "$failed_names" ] && echo "failed:$failed_names (seed $TORTURE_SEED, logs in $LOGS/)"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
