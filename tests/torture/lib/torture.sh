# tests/torture/lib/torture.sh: sourced by tests/torture/*.sh after
# tests/lib.sh. A torture script draws every random choice (which moment to
# kill, which action next) from bash's RANDOM seeded with TORTURE_SEED, so a
# failing run is replayed with the same schedule: TORTURE_SEED=N make torture.
# (The machine's timing still varies; the schedule does not.)

# tt_seed: seeds RANDOM from TORTURE_SEED (one is drawn when unset) and says
# which, first thing in the log, so a failure names its replay command.
tt_seed() {
	TT_SEED=${TORTURE_SEED:-$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')}
	case "$TT_SEED" in
	'' | *[!0-9]*) echo "not ok - torture seed: TORTURE_SEED='$TT_SEED' is not a number"; exit 1 ;;
	esac
	RANDOM=$TT_SEED
	echo "# seed $TT_SEED (replay: TORTURE_SEED=$TT_SEED make torture)"
}

# tt_rand N: sets TT_R to an integer in [0, N), N up to 2^30. It sets a
# variable rather than printing: bash reseeds RANDOM in a subshell, so
# $(...) would break the replay.
tt_rand() {
	TT_R=$(( ((RANDOM << 15) | RANDOM) % $1 ))
}

# tt_sleep_ms MS: sleeps MS milliseconds.
tt_sleep_ms() {
	sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"
}

# tt_sleep_rand MS: sleeps a random time in [0, MS) milliseconds.
tt_sleep_rand() {
	tt_rand "$1"
	tt_sleep_ms "$TT_R"
}

# tt_sha FILE: its sha256, empty when it cannot be read.
tt_sha() {
	sha256sum 2>/dev/null < "$1" | cut -d' ' -f1
}

# tt_kill9 PID: SIGKILL, then reaps it (our child).
tt_kill9() {
	kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	return 0
}

# tt_over_budget START SECONDS: true once SECONDS have passed since START
# (date +%s). A torture loop stops there and says so, rather than being cut
# by the runner's timeout without a closing line.
tt_over_budget() {
	[ $(($(date +%s) - $1)) -ge "$2" ]
}

# tt_sanitizer_clean NAME FILE: FILE (an agent's stderr) has no sanitizer report.
tt_sanitizer_clean() {
	if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$2" 2>/dev/null; then
		t_fail "$1: no sanitizer report" "$(grep -m1 -E 'Sanitizer|runtime error' "$2")"
		return 1
	fi
	return 0
}

# tt_kill_runs NAME KILLS BUDGET_S PROMISE: the kill loop of a torture
# script, driving three functions the script defines:
#   torture_prepare R  sets TT_AT (the kill moment, ms) and TT_WHAT (the run,
#                      for messages) for run R = 0, 1, ...
#   torture_run        execs the command (exec: the kill must reach it, not
#                      a subshell), run in the background with its stderr
#                      in $T_DIR/run-R.stderr;
#   torture_check WHEN prints one reason when the state is wrong, else nothing.
# A run still going at TT_AT is SIGKILLed and counts (torture_killed is called
# when defined); one that ended first must have exited 0 and does not count.
# The loop goes on until KILLS kills (at most 5 KILLS runs, BUDGET_S seconds),
# stops at the first wrong state, and ends with "ok - NAME: KILLS kills,
# PROMISE" or a "not ok". Sets TT_KILLS, TT_RUNS and TT_ENDED_FIRST.
tt_kill_runs() {
	_name=$1 _kills=$2 _budget=$3 _promise=$4
	_start=$(date +%s) _bad=0
	TT_KILLS=0 TT_RUNS=0 TT_ENDED_FIRST=0
	while [ $TT_KILLS -lt "$_kills" ] && [ $TT_RUNS -lt $((5 * _kills)) ]; do
		if tt_over_budget "$_start" "$_budget"; then
			t_fail "$_name: $_kills kills within ${_budget}s" "only $TT_KILLS done (seed $TT_SEED)"
			return 1
		fi
		torture_prepare $TT_RUNS
		_err="$T_DIR/run-$TT_RUNS.stderr"
		torture_run 2> "$_err" &
		_pid=$!
		tt_sleep_ms "$TT_AT"
		if kill -0 "$_pid" 2>/dev/null; then
			tt_kill9 "$_pid"
			TT_KILLS=$((TT_KILLS + 1))
			if declare -F torture_killed > /dev/null; then torture_killed; fi
		else
			wait "$_pid"
			_rc=$?
			TT_ENDED_FIRST=$((TT_ENDED_FIRST + 1))
			if [ $_rc -ne 0 ]; then
				t_fail "$_name run $TT_RUNS: a run that was not killed exits 0" \
					"exit $_rc (seed $TT_SEED): $(tail -n 2 "$_err")"
				_bad=1
			fi
		fi
		tt_sanitizer_clean "$_name run $TT_RUNS" "$_err" || _bad=1
		_why=$(torture_check "run $TT_RUNS: $TT_WHAT, kill moment $TT_AT ms")
		if [ -n "$_why" ]; then
			t_fail "$_name: $_promise" "$_why (seed $TT_SEED)"
			return 1
		fi
		TT_RUNS=$((TT_RUNS + 1))
	done
	echo "# $_name: $TT_RUNS runs, $TT_KILLS killed, $TT_ENDED_FIRST ended before their moment, $(($(date +%s) - _start)) s"
	[ $_bad = 0 ] || return 1
	if [ $TT_KILLS -lt "$_kills" ]; then
		t_fail "$_name: $_kills kills" "only $TT_KILLS of $TT_RUNS runs were still going at their moment (seed $TT_SEED)"
		return 1
	fi
	t_ok "$_name: $_kills kills, $_promise"
}
