#!/bin/bash
# Torture: 50 SIGKILLs at random moments of hydra-agent sync of a tool tree
# from a paced hydra-mirror, going back and forth between version 1.0 and
# 2.0 (random --jobs, --delete on some runs). After every kill each file of
# DIR is the 1.0 or the 2.0 version by digest, never a partial or mixed one;
# a file both versions list is never missing; nothing else is in DIR but the
# sync state. A final run completes and DIR equals 2.0.
. "$(dirname "$0")/../lib.sh"
. "$T_ROOT/tests/support/fleet_env.sh"
. "$T_ROOT/tests/torture/lib/torture.sh"
command -v jq > /dev/null || { t_skip "sync torture" "jq is not installed"; t_done; }
tt_seed

A="$BIN/hydra-agent"
KILLS=${TORTURE_KILLS:-50}
BUDGET_S=180
# About 2 MiB a version at 4 MiB/s: half a second a whole sync.
PACE=$((4 * 1024 * 1024))
KILL_WINDOW_MS=800

STORE="$T_DIR/origin/files/tools/demo"
V1="$STORE/1.0/files"
V2="$STORE/2.0/files"
mkdir -p "$V1/bin" "$V1/share/data files" "$V1/lib" "$V1/old"
i=0
while [ $i -lt 24 ]; do
	case $((i % 3)) in
	0) d="$V1/bin" ;; 1) d="$V1/share/data files" ;; *) d="$V1/lib" ;;
	esac
	head -c $((1000 + i * 1637)) /dev/urandom > "$d/f$i.dat"
	i=$((i + 1))
done
for n in 1 2 3 4 5 6; do head -c $((256 * 1024)) /dev/urandom > "$V1/big$n.bin"; done
echo "only in 1.0" > "$V1/old/removed.txt"
mkdir -p "$V2"
cp -a "$V1/." "$V2/"
rm -r "$V2/old"
# 2.0: every big file and every other small one changed, one file added.
for f in "$V2"/big*.bin "$V2"/bin/f*.dat "$V2"/lib/f*.dat; do
	n=$(stat -c %s "$f")
	head -c "$n" /dev/urandom > "$f"
done
mkdir -p "$V2/new"
head -c 70000 /dev/urandom > "$V2/new/added.bin"

env_mirror origin --root "$T_DIR/origin" --mode origin --max-egress-bytes-per-s $PACE || t_done
BASE="http://127.0.0.1:$MIRROR_PORT"
for v in 1.0 2.0; do
	"$A" manifest --dir "$STORE/$v/files" --tool-id demo --version $v --base-url "$BASE" \
		--out "$STORE/$v/manifest.json" 2> "$T_DIR/manifest-$v.err" ||
		{ t_fail "manifest $v" "$(cat "$T_DIR/manifest-$v.err")"; t_done; }
done

cat > "$T_DIR/agent.yaml" <<YAML
node_id: node-torture
state_dir: $T_DIR/state
log_file: $T_DIR/agent.log
mirror: {stall: {bytes_per_s: 1K, seconds: 30}}
YAML
D="$T_DIR/dest"

# The digests allowed per path: "path<TAB>v1-sha<TAB>v2-sha" ("-" for a
# version without the path).
(cd "$V1" && find . -type f | sed 's|^\./||') > "$T_DIR/paths"
(cd "$V2" && find . -type f | sed 's|^\./||') >> "$T_DIR/paths"
sort -u "$T_DIR/paths" | while IFS= read -r p; do
	s1=$(tt_sha "$V1/$p")
	s2=$(tt_sha "$V2/$p")
	printf '%s\t%s\t%s\n' "$p" "${s1:--}" "${s2:--}"
done > "$T_DIR/allowed"

# check_dir WHEN: every file of D is one version's; prints one reason and
# returns 1 otherwise.
check_dir() {
	while IFS="$(printf '\t')" read -r _p _s1 _s2; do
		if [ -L "$D/$_p" ] || { [ -e "$D/$_p" ] && [ ! -f "$D/$_p" ]; }; then
			echo "$1: $_p is not a regular file"; return 1
		fi
		if [ ! -e "$D/$_p" ]; then
			[ "$_s1" != - ] && [ "$_s2" != - ] && { echo "$1: $_p is missing"; return 1; }
			continue
		fi
		_s=$(tt_sha "$D/$_p")
		if [ "$_s" != "$_s1" ] && [ "$_s" != "$_s2" ]; then
			echo "$1: $_p is neither version ($(stat -c %s "$D/$_p") bytes, sha256 $_s)"; return 1
		fi
	done < "$T_DIR/allowed"
	_extra=$(cd "$D" && find . -path ./.hydra-staging -prune -o ! -type d -print |
		sed 's|^\./||' | grep -vxF -e .hydra-index -e .hydra-staging | grep -vxF -f <(cut -f1 "$T_DIR/allowed"))
	if [ -n "$_extra" ]; then
		echo "$1: in DIR but in no version: $(echo "$_extra" | head -n 5 | tr '\n' ' ')"; return 1
	fi
	return 0
}

# DIR starts as a whole 1.0.
"$A" --config "$T_DIR/agent.yaml" sync --manifest "$BASE/api/v1/tools/demo/1.0/manifest.json" \
	--dir "$D" > /dev/null 2> "$T_DIR/first.stderr"
t_eq "sync: the first sync of 1.0 exits 0" "$?" 0
why=$(check_dir "first sync")
t_eq "sync: the first sync leaves 1.0" "$why" ""

torture_prepare() {
	V=$((1 + $1 % 2)).0
	tt_rand 3
	JOBS=$((1 << TT_R))
	tt_rand 4
	DEL=""
	[ $TT_R = 0 ] && DEL=--delete
	# Half the moments over a whole sync, half over the first 150 ms: a run
	# that finds its files staged by a killed one takes only that long.
	tt_rand 2
	if [ $TT_R = 0 ]; then tt_rand $KILL_WINDOW_MS; else tt_rand 150; fi
	TT_AT=$TT_R
	TT_WHAT="to $V, --jobs $JOBS ${DEL:-(no --delete)}"
}
torture_run() {
	# shellcheck disable=SC2086
	exec "$A" --config "$T_DIR/agent.yaml" sync --manifest "$BASE/api/v1/tools/demo/$V/manifest.json" \
		--dir "$D" --jobs $JOBS $DEL > /dev/null
}
torture_check() { check_dir "$1"; }
tt_kill_runs sync "$KILLS" $BUDGET_S "every file of DIR the old or the new version after each"

# What a SIGKILL inside the index's atomic write leaves (the torture found
# it): the next sync clears it, DIR is to hold exactly the manifest's files.
echo "partial index" > "$D/.hydra-index.tmp.T0rtur"
"$A" --config "$T_DIR/agent.yaml" sync --manifest "$BASE/api/v1/tools/demo/2.0/manifest.json" \
	--dir "$D" --delete > /dev/null 2> "$T_DIR/final.stderr"
t_eq "sync: the final run exits 0" "$?" 0
t_eq "sync: DIR equals 2.0 after the final run" \
	"$(diff -r --exclude='.hydra-index*' --exclude=.hydra-staging "$V2" "$D" > /dev/null && echo same)" same
t_eq "sync: the staging folder is gone after the final run" "$(ls -d "$D/.hydra-staging" 2>/dev/null)" ""
t_eq "sync: no index temp file left after the final run" \
	"$(find "$D" -maxdepth 1 -name '.hydra-index.tmp*' -printf '%f ')" ""
tt_sanitizer_clean "sync final" "$T_DIR/final.stderr"
t_done
