# tests/lib.sh: sourced by tests/integration/*.sh and testbooks.
#
# Each check prints "ok - NAME", "not ok - NAME: WHY" or "skip - NAME: WHY";
# t_done prints "N passed, N failed, N skipped" and sets the exit status.
# Servers started with t_start run in their own process group, are stopped by
# PID with TERM then KILL, and have their logs checked for sanitizer reports.
# Everything lives in $T_DIR, removed at exit (kept when KEEP=1). A test
# that creates more (a network namespace) sets T_ON_EXIT to undo it.

set -u
T_ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-build}
BIN="$T_ROOT/$BUILD/bin"
T_PASS=0
T_FAIL=0
T_SKIP=0
T_DIR=$(mktemp -d "${TMPDIR:-/tmp}/hydra-test.XXXXXX")
T_PROCS="$T_DIR/.procs"
: > "$T_PROCS"

t_ok()   { T_PASS=$((T_PASS + 1)); echo "ok - $1"; }
t_fail() { T_FAIL=$((T_FAIL + 1)); echo "not ok - $1: $2"; }
t_skip() { T_SKIP=$((T_SKIP + 1)); echo "skip - $1: $2"; }

# t_eq NAME GOT WANT
t_eq() {
	if [ "$2" = "$3" ]; then t_ok "$1"; else t_fail "$1" "got '$2', want '$3'"; fi
}

# t_grep NAME FILE TEXT: FILE contains TEXT (fixed string)
t_grep() {
	if grep -qF -- "$3" "$2" 2>/dev/null; then t_ok "$1"
	else t_fail "$1" "'$3' not in $2"; [ -f "$2" ] && tail -n 5 "$2" | sed 's/^/    | /'; fi
}

# t_nogrep NAME FILE TEXT: FILE does not contain TEXT
t_nogrep() {
	if grep -qF -- "$3" "$2" 2>/dev/null; then t_fail "$1" "'$3' found in $2"
	else t_ok "$1"; fi
}

t_free_port() { "$BIN/hydra-testkit" free-port "${1:-127.0.0.1}"; }

# t_netns_usable: root, ip netns and nft all work here.
t_netns_usable() {
	[ "$(id -u)" -eq 0 ] || return 1
	command -v nft >/dev/null 2>&1 || return 1
	_probe="hydra-probe-$$"
	ip netns add "$_probe" 2>/dev/null || return 1
	ip netns exec "$_probe" nft list tables >/dev/null 2>&1
	_ok=$?
	ip netns del "$_probe" 2>/dev/null
	return $_ok
}
t_wait_tcp()  { "$BIN/hydra-testkit" wait-tcp "$1" "$2" "${3:-10000}"; }
t_wait_log()  { "$BIN/hydra-testkit" wait-log "$1" "$2" "${3:-10000}"; }

# t_start NAME LOG CMD ARGS...: starts CMD in the background; its PID is in
# $T_LAST_PID. NAME identifies it to t_stop.
t_start() {
	_name=$1 _log=$2
	shift 2
	setsid "$@" > "$_log" 2>&1 < /dev/null &
	T_LAST_PID=$!
	echo "$_name $T_LAST_PID $_log" >> "$T_PROCS"
}

t_pid_of() { awk -v n="$1" '$1 == n { p = $2 } END { print p }' "$T_PROCS"; }

# t_kill_pid PID: TERM, up to 5 s, then KILL; reaps it when it is our child.
t_kill_pid() {
	_pid=$1
	kill -0 "$_pid" 2>/dev/null || { wait "$_pid" 2>/dev/null; return 0; }
	kill -TERM "$_pid" 2>/dev/null
	_i=0
	while kill -0 "$_pid" 2>/dev/null && [ $_i -lt 100 ]; do
		# A zombie child counts as gone once reaped.
		if [ "$(ps -o stat= -p "$_pid" 2>/dev/null | cut -c1)" = "Z" ]; then break; fi
		sleep 0.05
		_i=$((_i + 1))
	done
	kill -KILL "$_pid" 2>/dev/null
	wait "$_pid" 2>/dev/null
	return 0
}

# t_stop NAME: stops it and checks its log for sanitizer reports.
t_stop() {
	_pid=$(t_pid_of "$1")
	[ -n "$_pid" ] || return 0
	t_kill_pid "$_pid"
	_log=$(awk -v n="$1" '$1 == n { l = $3 } END { print l }' "$T_PROCS")
	awk -v n="$1" '$1 != n' "$T_PROCS" > "$T_PROCS.new" && mv "$T_PROCS.new" "$T_PROCS"
	if [ -n "$_log" ] && grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$_log" 2>/dev/null; then
		t_fail "$1 ran without sanitizer reports" "see below"
		grep -A 20 -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$_log" | head -40 | sed 's/^/    | /'
	fi
}

t_cleanup() {
	while read -r _n _p _l; do
		[ -n "$_n" ] && t_stop "$_n"
	done < "$T_PROCS"
	# A test's own teardown (network namespaces, nft tables) runs last.
	if [ -n "${T_ON_EXIT:-}" ]; then eval "$T_ON_EXIT"; T_ON_EXIT=""; fi
	[ "${KEEP:-0}" = 1 ] && echo "# kept $T_DIR" || rm -rf "$T_DIR"
}

# t_done: prints the closing line and exits 1 when anything failed.
t_done() {
	t_cleanup
	trap - EXIT
	echo "$T_PASS passed, $T_FAIL failed, $T_SKIP skipped"
	[ "$T_FAIL" -eq 0 ]
	exit $?
}

trap 't_cleanup' EXIT
trap 't_cleanup; exit 130' INT TERM
