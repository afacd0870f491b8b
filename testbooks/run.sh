#!/bin/sh
# testbooks/run.sh [NAME...]: runs every testbook (testbooks/*.sh but this
# one), or the named ones, one after the other, printing their step lines
# as they come:
#   ok - TESTBOOK: STEP: evidence
#   not ok - TESTBOOK: STEP: why
#   skip - TESTBOOK: why            (not root, or ip netns / nft unusable)
# then "N passed, N failed, N skipped"; exits 1 when a step failed. A
# testbook that exits non-zero without a failed step counts as one failure.
# `make testbooks` and `make check` (through tests/run.sh) call this.
# Environment: BUILD (default build), STABLE_S (default 20), KEEP=1.
set -u
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}
export BUILD
pass=0 fail=0 skip=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/hydra-testbooks.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'rm -rf "$tmp"; exit 130' INT TERM

if [ $# -gt 0 ]; then
	books=""
	for n in "$@"; do
		n=${n#testbooks/}
		n=${n%.sh}
		if [ ! -f "testbooks/$n.sh" ] || [ "$n" = run ]; then
			echo "testbooks/run.sh: no testbook '$n'" >&2
			exit 64
		fi
		books="$books testbooks/$n.sh"
	done
else
	books=$(ls testbooks/*.sh)
fi

for tb in $books; do
	name=$(basename "$tb" .sh)
	[ "$name" = run ] && continue
	out="$tmp/$name.out"
	start=$(date +%s)
	echo "# $name"
	# The testbook's own closing line becomes a comment: the last line of
	# this script is the only "N passed" line.
	{ bash "$tb" 2>&1; echo $? > "$tmp/$name.rc"; } | tee "$out" |
		sed -e "s/^\([0-9]* passed, [0-9]* failed, [0-9]* skipped\)$/# $name: \1/"
	rc=$(cat "$tmp/$name.rc")
	p=$(grep -c '^ok - ' "$out")
	f=$(grep -c '^not ok - ' "$out")
	s=$(grep -c '^skip - ' "$out")
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "not ok - $name: exited $rc without naming a failed step"
		f=1
	elif [ "$p" -eq 0 ] && [ "$f" -eq 0 ] && [ "$s" -eq 0 ]; then
		echo "not ok - $name: printed no step"
		f=1
	fi
	echo "# $name: $(( $(date +%s) - start )) s"
	pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
done

echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
