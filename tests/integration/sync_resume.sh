#!/bin/bash
# hydra-agent sync killed with SIGKILL half-way: DIR holds nothing of the new
# version, and the next run reuses the verified files left in staging,
# resumes the part files with Range requests, and completes.
. "$(dirname "$0")/../lib.sh"
. "$T_ROOT/tests/support/fleet_env.sh"

A="$BIN/hydra-agent"
command -v jq > /dev/null || { t_skip "sync resume" "jq is not installed"; t_done; }

SRC="$T_DIR/origin/files/tools/big/1.0/files"
mkdir -p "$SRC"
N=10
SIZE=$((512 * 1024))
i=0
while [ $i -lt $N ]; do
	head -c $SIZE /dev/urandom > "$SRC/part$i.bin"
	i=$((i + 1))
done
TOTAL=$((N * SIZE))
# 1 MiB/s for everyone: 5 s for the whole tool, so a kill lands half-way.
# (The manifest is a local file: no downloading line before the files'.)
env_mirror origin --root "$T_DIR/origin" --mode origin --max-egress-bytes-per-s 1M || t_done
BASE="http://127.0.0.1:$MIRROR_PORT"
"$A" manifest --dir "$SRC" --tool-id big --version 1.0 --base-url "$BASE" --out "$T_DIR/m.json" \
	2> /dev/null

cat > "$T_DIR/agent.yaml" <<YAML
node_id: node-test
state_dir: $T_DIR/state
log_file: $T_DIR/agent.log
mirror: {stall: {bytes_per_s: 1K, seconds: 30}}
YAML
D="$T_DIR/dest"
STAGING="$D/.hydra-staging"

# staged_count: verified files waiting in staging (no .part or .meta). The
# polls below give up after 30 s, 15x what a normal build needs.
staged_count() {
	find "$STAGING" -type f ! -name '*.part' ! -name '*.meta' 2>/dev/null | wc -l
}
part_bytes() {
	find "$STAGING" -type f -name '*.part' -size +0 2>/dev/null | wc -l
}

"$A" --config "$T_DIR/agent.yaml" sync --manifest "$T_DIR/m.json" --dir "$D" --jobs 4 \
	> /dev/null 2> "$T_DIR/first.stderr" &
AGENT=$!
i=0
while { [ "$(staged_count)" -lt 1 ] || [ "$(part_bytes)" -lt 1 ]; } && [ $i -lt 1200 ]; do
	sleep 0.025
	i=$((i + 1))
done
# A second sync of the same folder meanwhile is refused at once.
"$A" --config "$T_DIR/agent.yaml" sync --manifest "$T_DIR/m.json" --dir "$D" \
	> /dev/null 2> "$T_DIR/second-concurrent.stderr"
t_eq "concurrent sync of the same DIR: exit 74" "$?" 74
t_grep "concurrent sync: says why" "$T_DIR/second-concurrent.stderr" "another sync holds the folder"
if [ "$(staged_count)" -ge 1 ] && [ "$(part_bytes)" -ge 1 ]; then
	kill -KILL $AGENT
	wait $AGENT 2>/dev/null
	t_ok "killed with a verified file and a part file in staging"
else
	kill -KILL $AGENT 2>/dev/null
	wait $AGENT 2>/dev/null
	t_fail "killed with a verified file and a part file in staging" \
		"staged $(staged_count), parts $(part_bytes)"
fi
STAGED_BEFORE=$(staged_count)
t_eq "after the kill: no file of the tool in DIR" \
	"$(cd "$D" && find . -path ./.hydra-staging -prune -o -type f -print | wc -l)" 0
t_nogrep "after the kill: no sync complete line" "$T_DIR/agent.log" "sync complete"

# --jobs 4: four transfers were under way before the first one ended (at
# 1 MiB/s shared, a file takes about 2 s; starting one takes milliseconds).
t_eq "--jobs 4: four downloads started before the first completed" \
	"$(grep -E 'downloading|download complete' "$T_DIR/agent.log" | sed -n '1,5p' |
	   awk '/download complete/ { exit } /downloading/ { n++ } END { print n + 0 }')" 4
cp "$T_DIR/agent.log" "$T_DIR/first.log"
: > "$T_DIR/agent.log"
"$A" --config "$T_DIR/agent.yaml" sync --manifest "$T_DIR/m.json" --dir "$D" --jobs 2 --json \
	> "$T_DIR/second.json" 2> "$T_DIR/second.stderr"
t_eq "rerun: exits 0" "$?" 0
t_eq "rerun: the folder equals the tool" \
	"$(diff -r --exclude=.hydra-index "$SRC" "$D" > /dev/null && echo same)" same
t_eq "rerun: the verified files in staging are reused" \
	"$(jq .reused_staged "$T_DIR/second.json")" "$STAGED_BEFORE"
t_grep "rerun: a part file is resumed with a Range request" "$T_DIR/agent.log" "resuming at"
BYTES=$(jq .bytes "$T_DIR/second.json")
if [ "$BYTES" -lt $((TOTAL - STAGED_BEFORE * SIZE)) ]; then
	t_ok "rerun: received less than what was left ($BYTES bytes)"
else
	t_fail "rerun: received less than what was left" "$BYTES of $((TOTAL - STAGED_BEFORE * SIZE))"
fi
t_eq "rerun: staging removed" "$(ls -d "$STAGING" 2>/dev/null)" ""
t_grep "rerun: final line" "$T_DIR/agent.log" "sync complete: $D $N files, $((N - STAGED_BEFORE)) downloaded"
if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$T_DIR/first.stderr" "$T_DIR/second.stderr"; then
	t_fail "agent runs without sanitizer reports" "see stderr files"
fi

t_done
