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

# A link at the part file of a.bin.
D="$T_DIR/d1"
mkdir -p "$D/.hydra-staging/.hydra-parts"
ln -s "$T_DIR/victim" "$D/.hydra-staging/.hydra-parts/a.bin.part"
sync link-part "$D" "$T_DIR/m.json"
t_eq "link at a part file: exit 0" "$RC" 0
t_eq "link at a part file: its target is untouched" "$(cksum < "$T_DIR/victim")" "$VICTIM"
same_tree "link at a part file" "$D"

# The .hydra-parts folder itself a link out of DIR.
D="$T_DIR/d2"
mkdir -p "$D/.hydra-staging" "$T_DIR/outside2"
ln -s "$T_DIR/outside2" "$D/.hydra-staging/.hydra-parts"
sync link-parts-dir "$D" "$T_DIR/m.json"
t_eq "link at .hydra-parts: exit 0" "$RC" 0
t_eq "link at .hydra-parts: nothing written through it" "$(ls -A "$T_DIR/outside2" | wc -l)" 0
same_tree "link at .hydra-parts" "$D"

# A staged folder a link out of DIR.
D="$T_DIR/d3"
mkdir -p "$D/.hydra-staging" "$T_DIR/outside3"
ln -s "$T_DIR/outside3" "$D/.hydra-staging/sub"
sync link-staged-dir "$D" "$T_DIR/m.json"
t_eq "link at a staged folder: exit 0" "$RC" 0
t_eq "link at a staged folder: nothing written through it" "$(ls -A "$T_DIR/outside3" | wc -l)" 0
same_tree "link at a staged folder" "$D"

# .hydra-staging itself a link out of DIR.
D="$T_DIR/d6"
mkdir -p "$D" "$T_DIR/outside6"
ln -s "$T_DIR/outside6" "$D/.hydra-staging"
sync link-staging "$D" "$T_DIR/m.json"
t_eq "link at .hydra-staging: exit 0" "$RC" 0
t_eq "link at .hydra-staging: nothing written through it" "$(ls -A "$T_DIR/outside6" | wc -l)" 0
same_tree "link at .hydra-staging" "$D"

# A staged part's meta file a link.
D="$T_DIR/d4"
mkdir -p "$D/.hydra-staging/.hydra-parts"
ln -s "$T_DIR/victim" "$D/.hydra-staging/.hydra-parts/a.bin.part.meta"
sync link-meta "$D" "$T_DIR/m.json"
t_eq "link at a part's meta: exit 0" "$RC" 0
t_eq "link at a part's meta: its target is untouched" "$(cksum < "$T_DIR/victim")" "$VICTIM"

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
