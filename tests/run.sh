#!/bin/sh
# Runs every test program and script, then prints one closing line
# "N passed, N failed, N skipped" counting individual test cases.
# A program that crashes or exits non-zero without reporting a failure
# counts as one failure. Logs: $BUILD/test-logs/.
set -u
BUILD=${BUILD:-build}
LOGS="$BUILD/test-logs"
mkdir -p "$LOGS"
pass=0 fail=0 skip=0
failed_names=""

# ONLY=REGEX runs the tests whose name matches (for example ONLY='sync|test_path').
ONLY=${ONLY:-}
# What to run: SCRIPTS is a list of globs of shell tests; PROGRAMS=0 leaves out
# the C test programs and the testbooks (make torture runs its scripts so).
SCRIPTS=${SCRIPTS:-"tests/static/*.sh tests/integration/*.sh"}
PROGRAMS=${PROGRAMS:-1}
# Log file names start with LOG_PREFIX ("torture-" for make torture).
LOG_PREFIX=${LOG_PREFIX:-}
selected() { [ -z "$ONLY" ] || echo "$1" | grep -qE "$ONLY"; }

# A test that hangs is a failure, not a stuck CI run.
TEST_TIMEOUT=${TEST_TIMEOUT:-300}
run_bounded() { timeout -k 10 "$TEST_TIMEOUT" "$@"; }

# Unit tests also run under valgrind when it is here and this is no ASan build.
use_valgrind=0
if [ "${SANITIZE:-}" != 1 ] && command -v valgrind >/dev/null 2>&1 && [ "${VALGRIND:-1}" = 1 ]; then
	use_valgrind=1
fi

count() {  # count NAME LOG RC
	if grep -q '^\[==========\]' "$2"; then
		# cmocka: its summary lines carry the counts.
		_p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$2" | awk '{s += $1} END {print s + 0}')
		_f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$2" | awk '{s += $1} END {print s + 0}')
		_s=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' "$2" | awk '{s += $1} END {print s + 0}')
	else
		_p=$(grep -c '^ok - ' "$2")
		_f=$(grep -c '^not ok - ' "$2")
		_s=$(grep -c '^skip - ' "$2")
	fi
	if grep -qE 'runtime error:|ERROR: (Address|Leak)Sanitizer' "$2"; then
		_f=$((_f + 1))
		echo "    $1: sanitizer report in its log" >> "$2"
	elif [ "$3" -ne 0 ] && [ "$_f" -eq 0 ]; then
		_f=1
		echo "    $1 exited $3 without naming a failed test" >> "$2"
	fi
	pass=$((pass + _p)); fail=$((fail + _f)); skip=$((skip + _s))
	if [ "$_f" -gt 0 ]; then
		failed_names="$failed_names $1"
		echo "FAIL $1 ($_p passed, $_f failed, $_s skipped)"
		grep -E '^(not ok|\[  (FAILED|ERROR) \])|ERROR|error|Sanitizer|exited' "$2" | head -20 | sed 's/^/    /'
	else
		echo "PASS $1 ($_p passed, $_s skipped)"
	fi
}

for t in "$BUILD"/tests/unit/test_* "$BUILD"/tests/integration/test_*; do
	[ "$PROGRAMS" = 1 ] || break
	[ -x "$t" ] || continue
	name=$(basename "$t")
	selected "$name" || continue
	log="$LOGS/$name.log"
	case "$t" in
	*/unit/*)
		if [ "$use_valgrind" = 1 ]; then
			run_bounded valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
				"$t" > "$log" 2>&1
		else
			run_bounded "$t" > "$log" 2>&1
		fi
		rc=$?;;
	*)
		run_bounded "$t" > "$log" 2>&1; rc=$?;;
	esac
	count "$name" "$log" "$rc"
done

# shellcheck disable=SC2086
for t in $SCRIPTS; do
	[ -f "$t" ] || continue
	name=$(basename "$t" .sh)
	selected "$name" || continue
	log="$LOGS/$LOG_PREFIX$name.log"
	BUILD="$BUILD" run_bounded bash "$t" > "$log" 2>&1
	rc=$?
	[ $rc -eq 124 ] && echo "not ok - $name: still running after ${TEST_TIMEOUT}s, stopped" >> "$log"
	count "$name" "$log" "$rc"
done

if [ "$PROGRAMS" = 1 ] && [ -f testbooks/run.sh ] && [ "${TESTBOOKS:-1}" = 1 ] && selected testbooks; then
	log="$LOGS/testbooks.log"
	BUILD="$BUILD" timeout -k 10 900 sh testbooks/run.sh > "$log" 2>&1
	count testbooks "$log" "$?"
fi

[ -n "$failed_names" ] && echo "failed:$failed_names (logs in $LOGS/)"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
