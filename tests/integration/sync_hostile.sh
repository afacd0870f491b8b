#!/bin/bash
# hydra-agent sync against planted links and lying manifests (issue 19,
# items 2, 7 and 8): links planted at DIR/.hydra-staging or in it (a part
# file, the .hydra-parts folder, a staged folder) are never written through; an
# index with no entry is read back; a manifest size that disagrees with the
# bytes is a content failure (exit 65), not a file fetched on every sync.
. "$(dirname "$0")/../lib.sh"
. "$T_ROOT/tests/support/fleet_env.sh"

A="$BIN/hydra-agent"
command -v jq > /dev/null || { t_skip "sync hostile" "jq is not installed"; t_done; }

SRC="$T_DIR/origin/files/tools/t/1.0/files"
mkdir -p "$SRC/sub"
head -c 16 /dev/urandom > "$SRC/a.bin"
head -c 40000 /dev/urandom > "$SRC/sub/b.bin"
env_mirror origin --root "$T_DIR/origin" --mode origin || t_done
BASE="http://127.0.0.1:$MIRROR_PORT"
"$A" manifest --dir "$SRC" --tool-id t --version 1.0 --base-url "$BASE" \
	--out "$T_DIR/m.json" 2> /dev/null
cat > "$T_DIR/agent.yaml" <<YAML
node_id: node-test
state_dir: $T_DIR/state
log_file: $T_DIR/agent.log
YAML
printf 'precious\n' > "$T_DIR/victim"
VICTIM=$(cksum < "$T_DIR/victim")

# sync NAME DIR MANIFEST: one run; exit code in RC.
sync() {
	"$A" --config "$T_DIR/agent.yaml" sync --manifest "$3" --dir "$2" --json \
		> "$T_DIR/$1.json" 2> "$T_DIR/$1.stderr"
	RC=$?
}
# same_tree NAME DIR: DIR holds exactly the tool's files.
same_tree() {
	if diff -r -x '.hydra-*' "$SRC" "$2" > "$T_DIR/$1.diff" 2>&1; then
		t_ok "$1: DIR holds the tool"
	else
		t_fail "$1: DIR holds the tool" "$(head -n 3 "$T_DIR/$1.diff")"
	fi
}

# planted NAME LABEL REL TARGET: a fresh DIR with a link at REL (below DIR)
# to TARGET, a file or a folder outside DIR; the sync succeeds, writes
# nothing through the link, and DIR ends up holding the tool.
planted() {
	_d="$T_DIR/$1"
	mkdir -p "$(dirname "$_d/$3")"
	ln -s "$4" "$_d/$3"
	sync "$1" "$_d" "$T_DIR/m.json"
	t_eq "link at $2: exit 0" "$RC" 0
	if [ -d "$4" ]; then
		t_eq "link at $2: nothing written through it" "$(ls -A "$4" | wc -l)" 0
	else
		t_eq "link at $2: its target is untouched" "$(cksum < "$4")" "$VICTIM"
	fi
	same_tree "link at $2" "$_d"
}
mkdir -p "$T_DIR/outside-parts" "$T_DIR/outside-staged" "$T_DIR/outside-staging"
planted link-part "a part file" .hydra-staging/.hydra-parts/a.bin.part "$T_DIR/victim"
planted link-meta "a part's meta" .hydra-staging/.hydra-parts/a.bin.part.meta "$T_DIR/victim"
planted link-parts-dir ".hydra-parts" .hydra-staging/.hydra-parts "$T_DIR/outside-parts"
planted link-staged-dir "a staged folder" .hydra-staging/sub "$T_DIR/outside-staged"
planted link-staging ".hydra-staging" .hydra-staging "$T_DIR/outside-staging"

# Item 7: a sync where no file could be fetched writes an index with no
# entry; the next sync reads it (under SANITIZE=1 a qsort on NULL aborted
# here).
D="$T_DIR/d5"
DEAD=$(t_free_port)
"$A" manifest --dir "$SRC" --tool-id t --version 1.0 --base-url "http://127.0.0.1:$DEAD" \
	--out "$T_DIR/m-dead.json" 2> /dev/null
sync dead "$D" "$T_DIR/m-dead.json"
t_eq "no source: exit 69" "$RC" 69
t_eq "no source: an index with no entry is written" "$(cat "$D/.hydra-index" 2>/dev/null)" \
	"hydra-index 1"
sync after-empty-index "$D" "$T_DIR/m.json"
t_eq "after an index with no entry: exit 0" "$RC" 0
same_tree "after an index with no entry" "$D"

# Item 8: a manifest whose size for a.bin (16 bytes) is wrong.
# with_size SIZE OUT: m.json with a.bin's size replaced and the hash redone.
with_size() {
	jq --argjson s "$1" '(.files[] | select(.path == "a.bin") | .size) = $s' "$T_DIR/m.json" \
		> "$2.tmp"
	_h=$(jq -j '"manifest_version\t\(.manifest_version)\ntool_id\t\(.tool_id)\ntool_version\t\(.tool_version)\n",
	       (.files | sort_by(.path)[] | "\(.path)\t\(.sha256 | ascii_downcase)\t\(.size)\t\(.url)\n")' \
		"$2.tmp" | sha256sum | cut -d' ' -f1)
	jq --arg h "$_h" '.manifest_hash = $h' "$2.tmp" > "$2"
}
for size in 0 1 4611686018427387904; do
	D="$T_DIR/size-$size"
	with_size "$size" "$T_DIR/m-$size.json"
	sync "size-$size" "$D" "$T_DIR/m-$size.json"
	t_eq "manifest size $size for 16 bytes: exit 65" "$RC" 65
	t_grep "manifest size $size: the failed path is named" "$T_DIR/size-$size.json" \
		'"failed_path":"a.bin"'
	t_grep "manifest size $size: says why" "$T_DIR/size-$size.stderr" "size mismatch"
	[ ! -e "$D/a.bin" ] && t_ok "manifest size $size: a.bin not installed" ||
		t_fail "manifest size $size: a.bin not installed" "$(ls -l "$D")"
done
# A DIR already holding the right bytes under a wrong size is not "unchanged"
# and not fetched again and again: each run fails the same way.
D="$T_DIR/size-0"
sync size-0-again "$D" "$T_DIR/m-0.json"
t_eq "manifest size 0, second run: exit 65" "$RC" 65

t_done
