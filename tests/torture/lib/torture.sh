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
