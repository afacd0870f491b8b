#!/bin/bash
# Issue 17, several mirrors for one body: mirror.extra_sources and --source
# add hydra-mirror peers between the district and the origin. A sync spreads
# its files over them; one killed half-way leaves the rotation and its files
# go on from the other, every file verified, none from the origin. Bad
# extra_sources values are config errors with file:line:col, a bad --source
# is 64.
. "$(dirname "$0")/../lib.sh"
. "$T_ROOT/tests/support/fleet_env.sh"

A="$BIN/hydra-agent"
command -v jq > /dev/null || { t_skip "sync sources" "jq is not installed"; t_done; }
command -v dnsmasq > /dev/null || { t_skip "sync sources" "dnsmasq is not installed"; t_done; }

SRC="$T_DIR/origin/files/tools/demo/4.0/files"
mkdir -p "$SRC/data"
NFILES=40
i=0
while [ $i -lt $NFILES ]; do
	head -c $((200000 + i * 1000)) /dev/urandom > "$SRC/data/f$i.bin"
	i=$((i + 1))
done

S1=src1.experiencenet.com
S2=src2.experiencenet.com
env_dnsmasq dns mirror-a.experiencenet.com=127.0.0.1 $S1=127.0.0.1 $S2=127.0.0.1 || t_done
env_mirror m-origin --root "$T_DIR/origin" --mode origin || t_done
ORIGIN_PORT=$MIRROR_PORT
# Throttled so that the sync lasts long enough to kill one peer half-way
# (8 MB at 2 MB/s per peer: about two seconds with both).
env_mirror m-s1 --root "$T_DIR/s1" --mode peer --origin-url "http://127.0.0.1:$ORIGIN_PORT" \
	--max-egress-bytes-per-s 2M --access-log "$T_DIR/s1.access" || t_done
P1=$MIRROR_PORT
env_mirror m-s2 --root "$T_DIR/s2" --mode peer --origin-url "http://127.0.0.1:$ORIGIN_PORT" \
	--max-egress-bytes-per-s 2M --access-log "$T_DIR/s2.access" || t_done
P2=$MIRROR_PORT
S2_PID=$MIRROR_PID

ORIGIN="http://mirror-a.experiencenet.com:$ORIGIN_PORT"
"$A" manifest --dir "$SRC" --tool-id demo --version 4.0 --base-url "$ORIGIN" \
	--out "$T_DIR/origin/files/tools/demo/4.0/manifest.json" 2> "$T_DIR/manifest.err"
t_eq "manifest: exits 0" "$?" 0
MURL="$ORIGIN/api/v1/tools/demo/4.0/manifest.json"

cat > "$T_DIR/two.yaml" <<YAML
node_id: node-test
state_dir: $T_DIR/state
log_file: $T_DIR/two.log
dns: {servers: ["127.0.0.1:$DNS_PORT"], timeout_ms: 500}
mirror:
  extra_sources: ["http://$S1:$P1"]
  head_timeout_ms: 1500
YAML

# 1. Two healthy peers, the second from --source: the files are spread
#    over both (at least a quarter each), none from the origin.
sed "s|two.log|both.log|" "$T_DIR/two.yaml" > "$T_DIR/both.yaml"
"$A" --config "$T_DIR/both.yaml" sync --manifest "$MURL" --dir "$T_DIR/both.out" --jobs 4 \
	--source "http://$S2:$P2" --json > "$T_DIR/both.json" 2> "$T_DIR/both.stderr"
t_eq "both healthy: exits 0" "$?" 0
b1=$(jq "[.transfers[] | select(.host == \"$S1\")] | length" "$T_DIR/both.json")
b2=$(jq "[.transfers[] | select(.host == \"$S2\")] | length" "$T_DIR/both.json")
t_eq "both healthy: spread over the two peers ($b1 + $b2)" \
	"$([ $((b1 * 4)) -ge $NFILES ] && [ $((b2 * 4)) -ge $NFILES ] && echo spread)" spread
t_eq "both healthy: none from the origin" "$((b1 + b2))" $NFILES

# 2. The same, and the second peer is killed once it has served a file.
"$A" --config "$T_DIR/two.yaml" sync --manifest "$MURL" --dir "$T_DIR/two.out" --jobs 4 \
	--source "http://$S2:$P2/" --json > "$T_DIR/two.json" 2> "$T_DIR/two.stderr" &
SYNC_PID=$!
if t_wait_log "$T_DIR/two.log" "from $S2 in" 20000; then
	t_kill_pid "$S2_PID"
	KILLED=yes
else
	KILLED=no
fi
wait "$SYNC_PID"
RC=$?
t_eq "two sources: the second was killed during the sync" "$KILLED" yes
t_eq "two sources: exits 0" "$RC" 0
t_eq "two sources: no sanitizer report" \
	"$(grep -cE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$T_DIR/two.stderr")" 0
t_eq "two sources: the folder equals the tool" \
	"$(diff -r --exclude=.hydra-index "$SRC" "$T_DIR/two.out" > /dev/null && echo same)" same
t_eq "two sources: every file transferred" \
	"$(jq '.transfers | length' "$T_DIR/two.json")" $NFILES
n1=$(jq "[.transfers[] | select(.host == \"$S1\")] | length" "$T_DIR/two.json")
n2=$(jq "[.transfers[] | select(.host == \"$S2\")] | length" "$T_DIR/two.json")
t_eq "two sources: files came from both peers ($n1 + $n2)" \
	"$([ "$n1" -gt 0 ] && [ "$n2" -gt 0 ] && echo both)" both
t_eq "two sources: none from the origin" "$((n1 + n2))" $NFILES
t_eq "two sources: the peers' access logs agree" \
	"$(grep -c "GET /api/v1/tools/demo/4.0/files/data/" "$T_DIR/s1.access" > /dev/null &&
	   grep -c "GET /api/v1/tools/demo/4.0/files/data/" "$T_DIR/s2.access" > /dev/null && echo both)" both
t_grep "two sources: the killed peer leaves the rotation" "$T_DIR/two.log" \
	"$S2 is skipped by this run for 30 s"
t_eq "two sources: one warning for the dead peer's connection" \
	"$(grep -c "WARN.*mirror $S2 unavailable (connect" "$T_DIR/two.log")" 1
t_eq "two sources: after the kill the files come from the other peer" \
	"$(grep 'download complete' "$T_DIR/two.log" | tail -n 1 | grep -o "from $S1 in")" "from $S1 in"

# 3. Bad extra_sources values: config errors naming file:line:col.
bad_conf() {  # bad_conf NAME VALUE
	printf 'node_id: n\nstate_dir: %s\nlog_file: %s\nmirror:\n  extra_sources: [%s]\n' \
		"$T_DIR/state" "$T_DIR/$1.log" "$2" > "$T_DIR/$1.yaml"
	"$A" --config "$T_DIR/$1.yaml" sync --manifest "$MURL" --dir "$T_DIR/$1.out" \
		> /dev/null 2> "$T_DIR/$1.stderr"
	RC=$?
}
bad_conf badscheme '"ftp://x.example"'
t_eq "extra_sources ftp://: exit 78" "$RC" 78
t_grep "extra_sources ftp://: file:line:col" "$T_DIR/badscheme.stderr" "$T_DIR/badscheme.yaml:5:"
bad_conf badpath '"http://ok.example", "http://x.example/some/path"'
t_eq "extra_sources with a path: exit 78" "$RC" 78
t_grep "extra_sources with a path: file:line:col" "$T_DIR/badpath.stderr" "$T_DIR/badpath.yaml:5:"
t_grep "extra_sources with a path: says why" "$T_DIR/badpath.stderr" \
	"item 1: 'http://x.example/some/path' is not a mirror's base URL"
bad_conf badtype '{a: 1}'
t_eq "extra_sources not a list: exit 78" "$RC" 78
t_grep "extra_sources not a list: file:line:col" "$T_DIR/badtype.stderr" "$T_DIR/badtype.yaml:5:"
bad_conf toomany '"http://a:1", "http://a:2", "http://a:3", "http://a:4", "http://a:5", "http://a:6", "http://a:7"'
t_eq "seven extra_sources: exit 78" "$RC" 78
t_grep "seven extra_sources: file:line:col" "$T_DIR/toomany.stderr" "$T_DIR/toomany.yaml:5:"
t_grep "seven extra_sources: says the bound" "$T_DIR/toomany.stderr" "extra_sources: 7 items, at most 6"
t_eq "extra_sources: nothing created" "$(ls -d "$T_DIR"/bad*.out 2>/dev/null)" ""

# 4. A bad --source is a usage error, for sync and install.
"$A" --config "$T_DIR/two.yaml" sync --manifest "$MURL" --dir "$T_DIR/u.out" \
	--source "not a url" > /dev/null 2> "$T_DIR/u1.stderr"
t_eq "sync --source not a URL: exit 64" "$?" 64
t_grep "sync --source: names the value" "$T_DIR/u1.stderr" "--source: 'not a url'"
"$A" --config "$T_DIR/two.yaml" install --url "$ORIGIN/x" --out "$T_DIR/u.bin" \
	--source "http://$S1:$P1/with/path" > /dev/null 2> "$T_DIR/u2.stderr"
t_eq "install --source with a path: exit 64" "$?" 64
t_eq "install --source: nothing written" "$(ls "$T_DIR"/u.bin* 2>/dev/null)" ""

t_done
