#!/bin/bash
# The man pages: every option each program's --help names (and, for
# hydra-agent, every command's --help) is documented in its page, and
# `man --warnings -l` has nothing to say about any page.
. "$(dirname "$0")/../lib.sh"

MAN="$T_ROOT/docs/man"

# options_of HELPFILE: the long and short options a help text names, one a
# line ("--config", "-h"); "--" alone and words with inner dashes are not.
options_of() {
	grep -oE '(^|[][ ,|(])(--[a-z][a-z0-9-]*|-[A-Za-z])([][ ,|=)]|$)' "$1" |
		grep -oE -- '--?[A-Za-z][a-z0-9-]*' | sort -u
}

# check_page PROG PAGE HELPFILE...: every option of the help files is in PAGE.
check_page() {
	_prog=$1 _page=$2
	shift 2
	# The page's source with groff's \- as a plain dash.
	sed 's/\\-/-/g' "$_page" > "$T_DIR/page.txt"
	_n=0 _missing=""
	for _opt in $(cat "$@" | options_of /dev/stdin); do
		_n=$((_n + 1))
		grep -qE -- "(^|[^A-Za-z0-9-])$_opt([^A-Za-z0-9-]|$)" "$T_DIR/page.txt" ||
			_missing="$_missing $_opt"
	done
	if [ "$_n" -lt 3 ]; then
		t_fail "$_prog: --help names its options" "found only $_n in $*"
	elif [ -z "$_missing" ]; then
		t_ok "$_prog: all $_n options of --help are in ${_page##*/}"
	else
		t_fail "$_prog: every option of --help is in ${_page##*/}" "missing:$_missing"
	fi
}

if ! command -v man >/dev/null 2>&1; then
	t_skip "man --warnings" "man (man-db) is not installed"
else
	for page in "$MAN/hydra-agent.1" "$MAN/hydra-mirror.8" "$MAN/hydra-cluster-sim.1"; do
		if [ ! -f "$page" ]; then
			t_fail "${page##*/} exists" "no such file"
			continue
		fi
		MANWIDTH=80 man --warnings -l "$page" > "$T_DIR/render" 2> "$T_DIR/warnings"
		rc=$?
		if [ "$rc" -eq 0 ] && [ ! -s "$T_DIR/warnings" ] && [ -s "$T_DIR/render" ]; then
			t_ok "man --warnings -l ${page##*/} prints nothing"
		else
			t_fail "man --warnings -l ${page##*/} prints nothing" \
				"exit $rc: $(head -n 5 "$T_DIR/warnings" | tr '\n' ' ')"
		fi
	done
fi

for prog in hydra-agent hydra-mirror hydra-cluster-sim; do
	if [ ! -x "$BIN/$prog" ]; then
		t_fail "$prog is built" "no $BIN/$prog"
		continue
	fi
	"$BIN/$prog" --help > "$T_DIR/$prog.help" 2>&1 ||
		t_fail "$prog --help exits 0" "exit $?"
done

# hydra-agent: the global help and each command's.
helps="$T_DIR/hydra-agent.help"
commands=$(sed -n '/^commands:/,/^$/p' "$T_DIR/hydra-agent.help" | awk 'NR > 1 && NF { print $1 }')
t_eq "hydra-agent --help lists 7 commands" "$(echo "$commands" | grep -c .)" 7
for cmd in $commands; do
	"$BIN/hydra-agent" "$cmd" --help > "$T_DIR/agent-$cmd.help" 2>&1
	helps="$helps $T_DIR/agent-$cmd.help"
	if sed 's/\\-/-/g' "$MAN/hydra-agent.1" | grep -qE "^\.SS \"?$cmd( |\"|$)"; then
		t_ok "hydra-agent.1 has a section for $cmd"
	else
		t_fail "hydra-agent.1 has a section for $cmd" "no .SS $cmd"
	fi
done
# shellcheck disable=SC2086
check_page hydra-agent "$MAN/hydra-agent.1" $helps
check_page hydra-mirror "$MAN/hydra-mirror.8" "$T_DIR/hydra-mirror.help"
check_page hydra-cluster-sim "$MAN/hydra-cluster-sim.1" "$T_DIR/hydra-cluster-sim.help"

# The check itself can fail: an option the page lacks is reported.
printf 'usage: x [--no-such-option-anywhere]\n  --config FILE\n  --help\n' > "$T_DIR/fake.help"
# In a subshell: its own "not ok" is this check's evidence, not a failure.
( check_page fake "$MAN/hydra-mirror.8" "$T_DIR/fake.help" ) > "$T_DIR/fake.out"
if grep -q 'missing: --no-such-option-anywhere' "$T_DIR/fake.out"; then
	t_ok "an undocumented option is caught"
else
	t_fail "an undocumented option is caught" "$(cat "$T_DIR/fake.out")"
fi

t_done
