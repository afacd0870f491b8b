#!/bin/bash
# hydra-agent manifest and sync against a real hydra-mirror: a first sync,
# a second that downloads nothing and hashes nothing (the index), one file of
# 100 changed (exactly its bytes leave the mirror), a corrupted local file
# fetched again, bad manifests refused with nothing written, --delete, --jobs.
. "$(dirname "$0")/../lib.sh"
. "$T_ROOT/tests/support/fleet_env.sh"

A="$BIN/hydra-agent"
command -v jq > /dev/null || { t_skip "sync basic" "jq is not installed"; t_done; }

STORE="$T_DIR/origin/files/tools/demo"
V1="$STORE/1.0/files"
V2="$STORE/2.0/files"
mkdir -p "$V1/bin" "$V1/share/data files" "$V1/lib"
# 100 files: 97 small, 3 of 1 MiB.
i=0
while [ $i -lt 97 ]; do
	case $((i % 3)) in
	0) d="$V1/bin" ;; 1) d="$V1/share/data files" ;; *) d="$V1/lib" ;;
	esac
	head -c $((1000 + i * 137)) /dev/urandom > "$d/f$i.dat"
	i=$((i + 1))
done
for n in 1 2 3; do head -c $((1024 * 1024)) /dev/urandom > "$V1/big$n.bin"; done
mkdir -p "$V2"
cp -a "$V1/." "$V2/"
CHANGED="share/data files/f10.dat"
CHANGED_SIZE=$((1000 + 10 * 137))
head -c $CHANGED_SIZE /dev/urandom > "$V2/$CHANGED"

env_mirror origin --root "$T_DIR/origin" --mode origin || t_done
PORT=$MIRROR_PORT
BASE="http://127.0.0.1:$PORT"

cat > "$T_DIR/agent.yaml" <<YAML
node_id: node-test
state_dir: $T_DIR/state
log_file: $T_DIR/agent.log
YAML

# served: the origin's completed body bytes, once at least $1 (polled).
served() {
	_want=${1:-0} _i=0 _v=0
	while [ $_i -lt 100 ]; do
		_v=$(curl -s "$BASE/metrics" | awk '$1 == "hydra_mirror_bytes_served_total" { print $2 }')
		[ -n "$_v" ] && [ "$_v" -ge "$_want" ] && break
		sleep 0.05
		_i=$((_i + 1))
	done
	echo "${_v:-0}"
}

# run NAME ARGS...: one agent run; exit code in RC, JSON in NAME.json,
# its log lines in NAME.log.
run() {
	_n=$1
	shift
	: > "$T_DIR/agent.log"
	"$A" --config "$T_DIR/agent.yaml" "$@" > "$T_DIR/$_n.json" 2> "$T_DIR/$_n.stderr"
	RC=$?
	cp "$T_DIR/agent.log" "$T_DIR/$_n.log"
	if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$T_DIR/$_n.stderr"; then
		t_fail "$_n: no sanitizer report" "$(grep -m1 -E 'Sanitizer|runtime error' "$T_DIR/$_n.stderr")"
	fi
}
jget() { jq -r "$2" "$T_DIR/$1.json" 2>/dev/null; }

# canon FILE: manifest_hash recomputed from docs/sync.md with jq and sha256sum.
canon() {
	jq -j '"manifest_version\t\(.manifest_version)\ntool_id\t\(.tool_id)\ntool_version\t\(.tool_version)\n",
	       (.files | sort_by(.path)[] | "\(.path)\t\(.sha256 | ascii_downcase)\t\(.size)\t\(.url)\n")' "$1" |
		sha256sum | cut -d' ' -f1
}

# same_tree A B: the files of B (without the sync state) equal those of A.
same_tree() {
	diff -r --exclude=.hydra-index --exclude=.hydra-staging "$1" "$2" > /dev/null
}

# 1. The manifests.
"$A" --config "$T_DIR/agent.yaml" manifest --dir "$V1" --tool-id demo --version 1.0 \
	--base-url "$BASE" --out "$T_DIR/m1.json" 2> "$T_DIR/manifest.err"
t_eq "manifest: exits 0" "$?" 0
t_eq "manifest: 100 files" "$(jq '.files | length' "$T_DIR/m1.json")" 100
t_eq "manifest: sorted by path" "$(jq -c '[.files[].path] == ([.files[].path] | sort)' "$T_DIR/m1.json")" true
t_eq "manifest: url of a path with a space" \
	"$(jq -r --arg p "share/data files/f1.dat" '.files[] | select(.path == $p) | .url' "$T_DIR/m1.json")" \
	"$BASE/api/v1/tools/demo/1.0/files/share/data%20files/f1.dat"
t_eq "manifest: sha256 and size match the file" \
	"$(jq -r '.files[] | select(.path == "big1.bin") | "\(.sha256) \(.size)"' "$T_DIR/m1.json")" \
	"$(sha256sum < "$V1/big1.bin" | cut -d' ' -f1) $((1024 * 1024))"
t_eq "manifest: manifest_hash reproduced with jq (docs/sync.md)" \
	"$(canon "$T_DIR/m1.json")" "$(jq -r .manifest_hash "$T_DIR/m1.json")"
HYDRA_FILES_BASE_URL="$BASE" "$A" --config "$T_DIR/agent.yaml" manifest --dir "$V2" \
	--tool-id demo --version 2.0 > "$T_DIR/m2.json" 2> "$T_DIR/manifest2.err"
t_eq "manifest: base URL from HYDRA_FILES_BASE_URL" "$?" 0
t_eq "manifest: stdout parses" "$(jq -r .tool_version "$T_DIR/m2.json")" 2.0
"$A" --config "$T_DIR/agent.yaml" manifest --dir "$V2" --tool-id demo --version 2.0 \
	> /dev/null 2>&1 < /dev/null
t_eq "manifest: no base URL is usage (64)" "$?" 64
cp "$T_DIR/m1.json" "$STORE/1.0/manifest.json"
cp "$T_DIR/m2.json" "$STORE/2.0/manifest.json"
TOTAL1=$(jq '[.files[].size] | add' "$T_DIR/m1.json")
M1_SIZE=$(stat -c %s "$T_DIR/m1.json")

# 2. First sync from the manifest URL, 4 transfers at once.
D="$T_DIR/dest"
before=$(served)
run first sync --manifest "$BASE/api/v1/tools/demo/1.0/manifest.json" --dir "$D" --jobs 4 --json
t_eq "first: exits 0" "$RC" 0
t_eq "first: 100 downloaded" "$(jget first .downloaded)" 100
t_eq "first: the folder equals version 1.0" "$(same_tree "$V1" "$D" && echo same)" same
t_eq "first: the staging folder is gone" "$(ls -d "$D/.hydra-staging" 2>/dev/null)" ""
after=$(served $((before + TOTAL1 + M1_SIZE)))
t_eq "first: the mirror sent the manifest and every file once" "$((after - before))" $((TOTAL1 + M1_SIZE))
t_grep "first: downloading line per file" "$T_DIR/first.log" \
	"downloading $BASE/api/v1/tools/demo/1.0/files/share/data%20files/f1.dat"
t_grep "first: final line" "$T_DIR/first.log" "sync complete: $D 100 files, 100 downloaded, $TOTAL1 bytes in"

# 3. Nothing changed: nothing downloaded, nothing hashed.
before=$(served)
run again sync --manifest "$T_DIR/m1.json" --dir "$D" --json
t_eq "unchanged: exits 0" "$RC" 0
t_eq "unchanged: 0 downloaded" "$(jget again .downloaded)" 0
t_grep "unchanged: every file known from the index, none hashed" "$T_DIR/again.log" \
	"100 files unchanged (100 from the index, 0 hashed)"
t_eq "unchanged: no byte left the mirror" "$(($(served) - before))" 0
t_grep "unchanged: final line" "$T_DIR/again.log" "sync complete: $D 100 files, 0 downloaded, 0 bytes in"

# Without the index the same run hashes every file (what the index saves).
chmod 755 "$D/$CHANGED"  # (a new ctime: indexed again below)
mv "$D/.hydra-index" "$T_DIR/index.saved"
run noindex sync --manifest "$T_DIR/m1.json" --dir "$D" --json
t_grep "no index: every file hashed" "$T_DIR/noindex.log" "100 files unchanged (0 from the index, 100 hashed)"
t_eq "no index: the index is written again" "$(head -n1 "$D/.hydra-index")" "hydra-index 1"

# 4. Version 2.0 changes one file: exactly its bytes leave the mirror.
before=$(served)
run delta sync --manifest "$T_DIR/m2.json" --dir "$D" --jobs 4 --json
t_eq "delta: exits 0" "$RC" 0
t_eq "delta: one file downloaded" "$(jget delta '[.downloaded, .transfers[0].path] | join(" ")')" "1 $CHANGED"
t_grep "delta: 99 unchanged from the index, none hashed" "$T_DIR/delta.log" \
	"99 files unchanged (99 from the index, 0 hashed)"
t_eq "delta: the mirror sent exactly the changed file's bytes" \
	"$(($(served $((before + CHANGED_SIZE))) - before))" "$CHANGED_SIZE"
t_eq "delta: the folder equals version 2.0" "$(same_tree "$V2" "$D" && echo same)" same
t_grep "delta: downloading line" "$T_DIR/delta.log" \
	"downloading $BASE/api/v1/tools/demo/2.0/files/share/data%20files/f10.dat"
t_eq "delta: the replaced file keeps its mode" "$(stat -c %a "$D/$CHANGED")" 755

# 5. A corrupted local file is fetched again, even with its mtime put back.
printf 'XX' | dd of="$D/lib/f5.dat" bs=1 seek=100 conv=notrunc 2>/dev/null
# A planted staging symlink is not written through.
mkdir -p "$T_DIR/elsewhere"
ln -s "$T_DIR/elsewhere" "$D/.hydra-staging"
run corrupt sync --manifest "$T_DIR/m2.json" --dir "$D" --json --progress bar
t_eq "corrupt: exits 0" "$RC" 0
t_eq "corrupt: that file downloaded again" "$(jget corrupt '[.downloaded, .transfers[0].path] | join(" ")')" "1 lib/f5.dat"
t_eq "corrupt: repaired" "$(cmp -s "$V2/lib/f5.dat" "$D/lib/f5.dat" && echo same)" same
t_eq "corrupt: nothing written through a staging symlink" "$(ls -A "$T_DIR/elsewhere")" ""
t_grep "corrupt: --progress bar draws a summary" "$T_DIR/corrupt.stderr" "  1/1 files"
cp -p "$D/bin/f3.dat" "$T_DIR/f3.keep"
printf 'YY' | dd of="$D/bin/f3.dat" bs=1 seek=10 conv=notrunc 2>/dev/null
touch -r "$T_DIR/f3.keep" "$D/bin/f3.dat"
run corrupt2 sync --manifest "$T_DIR/m2.json" --dir "$D" --json
t_eq "corrupt, same size and mtime: caught (ctime) and fetched" \
	"$(jget corrupt2 '[.downloaded, .transfers[0].path] | join(" ")')" "1 bin/f3.dat"
t_eq "corrupt, same size and mtime: repaired" "$(cmp -s "$V2/bin/f3.dat" "$D/bin/f3.dat" && echo same)" same

# 6. Bad manifests: refused (65), naming the entry, nothing written.
snapshot() { (cd "$1" 2>/dev/null && find . -printf '%p %s %T@ %C@\n' | sort); }
# bad NAME JQ-FILTER REHASH(0|1) MESSAGE
bad() {
	jq "$2" "$T_DIR/m2.json" > "$T_DIR/$1.m.json"
	if [ "$3" = 1 ]; then
		_h=$(canon "$T_DIR/$1.m.json")
		jq --arg h "$_h" '.manifest_hash = $h' "$T_DIR/$1.m.json" > "$T_DIR/$1.m2.json"
		mv "$T_DIR/$1.m2.json" "$T_DIR/$1.m.json"
	fi
	snapshot "$D" > "$T_DIR/$1.before"
	run "$1" sync --manifest "$T_DIR/$1.m.json" --dir "$D" --delete
	t_eq "$1: exit 65" "$RC" 65
	t_grep "$1: the error names the entry" "$T_DIR/$1.stderr" "$4"
	snapshot "$D" > "$T_DIR/$1.after"
	t_eq "$1: nothing written in DIR" "$(cmp -s "$T_DIR/$1.before" "$T_DIR/$1.after" && echo same)" same
	run "$1-new" sync --manifest "$T_DIR/$1.m.json" --dir "$T_DIR/$1-new"
	t_eq "$1: a new DIR is not even created" "$(ls -d "$T_DIR/$1-new" 2>/dev/null)" ""
}
bad escape '.files[3].path = "../../escaped"' 1 'files[3] path "../../escaped": path escapes the directory'
bad absolute '.files[4].path = "/tmp/abs"' 1 'files[4] path "/tmp/abs": absolute path'
bad duplicate '.files[7].path = .files[8].path' 1 "both have path"
bad negative '.files[2].size = -1' 1 'negative size -1'
bad badsha '.files[5].sha256 = "1234"' 1 "sha256 '1234' is not 64 hex digits"
bad hash '.files[0].size = .files[0].size + 1' 0 "manifest_hash mismatch"
# A pinned manifest_hash: the right one syncs, another is refused.
run pinned sync --manifest "$T_DIR/m2.json" --dir "$D" --manifest-hash "$(jq -r .manifest_hash "$T_DIR/m2.json")"
t_eq "--manifest-hash: the right hash syncs" "$RC" 0
snapshot "$D" > "$T_DIR/pin.before"
run pinned-bad sync --manifest "$T_DIR/m1.json" --dir "$D" --manifest-hash "$(jq -r .manifest_hash "$T_DIR/m2.json")"
t_eq "--manifest-hash: another manifest is refused (65)" "$RC" 65
t_grep "--manifest-hash: says so" "$T_DIR/pinned-bad.stderr" "is not the expected"
snapshot "$D" > "$T_DIR/pin.after"
t_eq "--manifest-hash: nothing written" "$(cmp -s "$T_DIR/pin.before" "$T_DIR/pin.after" && echo same)" same
t_eq "escape: nothing outside DIR" "$(ls "$T_DIR/escaped" "$T_DIR/dest/../escaped" 2>/dev/null)" ""

# 7. --delete removes what the manifest does not list, never the sync state.
mkdir -p "$D/extra dir/deeper" "$D/lib/old"
echo x > "$D/extra.txt"
echo y > "$D/extra dir/deeper/z"
echo z > "$D/lib/old/f"
ln -s /etc/hostname "$D/link"
run keep sync --manifest "$T_DIR/m2.json" --dir "$D" --json
t_eq "no --delete: extra files stay" "$(ls "$D/extra.txt" "$D/extra dir/deeper/z" 2>/dev/null | wc -l)" 2
# A folder where the manifest has a file: only --delete may remove it.
rm "$D/lib/f5.dat"
mkdir -p "$D/lib/f5.dat"
echo w > "$D/lib/f5.dat/w"
run conflict sync --manifest "$T_DIR/m2.json" --dir "$D" --json
t_eq "folder in the way: exit 73" "$RC" 73
t_grep "folder in the way: says so" "$T_DIR/conflict.stderr" "lib/f5.dat is a folder where the manifest has a file"
run delete sync --manifest "$T_DIR/m2.json" --dir "$D" --delete --json
t_eq "--delete: exits 0" "$RC" 0
t_eq "--delete: 5 removed (4 extras and the folder in the way)" "$(jget delete .deleted)" 5
t_eq "--delete: extra files and their folders gone" \
	"$(ls -d "$D/extra.txt" "$D/extra dir" "$D/lib/old" "$D/link" 2>/dev/null)" ""
t_eq "--delete: the folder equals version 2.0" "$(same_tree "$V2" "$D" && echo same)" same
t_eq "--delete: the index is kept" "$(head -n1 "$D/.hydra-index")" "hydra-index 1"
t_eq "--delete: /etc/hostname untouched" "$(test -f /etc/hostname && echo here)" here

# 8. --jobs: 1 and 16 give the same folder; out of range is usage.
run jobs1 sync --manifest "$T_DIR/m2.json" --dir "$T_DIR/j1" --jobs 1 --json
run jobs16 sync --manifest "$T_DIR/m2.json" --dir "$T_DIR/j16" --jobs 16 --json
t_eq "--jobs 1: same folder" "$(same_tree "$V2" "$T_DIR/j1" && echo same)" same
t_eq "--jobs 16: same folder" "$(same_tree "$V2" "$T_DIR/j16" && echo same)" same
run jobs0 sync --manifest "$T_DIR/m2.json" --dir "$T_DIR/j0" --jobs 0
t_eq "--jobs 0: usage (64)" "$RC" 64
run nomanifest sync --manifest "$T_DIR/none.json" --dir "$T_DIR/j0"
t_eq "missing manifest file: no input (66)" "$RC" 66

# 9. One file verified, a later one missing from the mirror: no source (69),
# and DIR keeps its old files (the verified one waits in staging).
P0=$(jq -r '.files[0].path' "$T_DIR/m2.json")
printf 'ZZ' | dd of="$D/$P0" bs=1 seek=3 conv=notrunc 2>/dev/null
jq '.files[5].url = .files[5].url + ".gone"' "$T_DIR/m2.json" > "$T_DIR/gone.m.json"
jq --arg h "$(canon "$T_DIR/gone.m.json")" '.manifest_hash = $h' "$T_DIR/gone.m.json" > "$T_DIR/gone.manifest"
rm -f "$D/$(jq -r '.files[5].path' "$T_DIR/m2.json")"
snapshot "$D" | grep -v -e hydra -e "^\. " > "$T_DIR/gone.before"
run gone sync --manifest "$T_DIR/gone.manifest" --dir "$D" --jobs 1 --json
t_eq "404 everywhere: exit 69" "$RC" 69
t_eq "404 everywhere: json status and file" "$(jget gone '"\(.status) \(.failed_path)"')" \
	"unavailable $(jq -r '.files[5].path' "$T_DIR/m2.json")"
snapshot "$D" | grep -v -e hydra -e "^\. " > "$T_DIR/gone.after"
t_eq "404 everywhere: no file of DIR replaced" "$(cmp -s "$T_DIR/gone.before" "$T_DIR/gone.after" && echo same)" same
t_eq "404 everywhere: the verified file waits in staging" \
	"$(cmp -s "$V2/$P0" "$D/.hydra-staging/$P0" && echo same)" same
run after-gone sync --manifest "$T_DIR/m2.json" --dir "$D" --json
t_eq "rerun: exits 0" "$RC" 0
t_eq "rerun: the staged file is reused, the missing one downloaded" \
	"$(jget after-gone '"\(.reused_staged) \(.downloaded)"')" "1 1"
t_eq "rerun: the folder equals version 2.0" "$(same_tree "$V2" "$D" && echo same)" same

t_done
