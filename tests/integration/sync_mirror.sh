#!/bin/bash
# hydra-mirror's side of delta sync: manifest.json served from the store, a
# peer filling tool files from the origin, hits and misses per tool in
# /metrics, --keep-versions purging old versions (version order), and the
# admin DELETE of a whole version.
. "$(dirname "$0")/../lib.sh"
. "$T_ROOT/tests/support/fleet_env.sh"

A="$BIN/hydra-agent"
command -v jq > /dev/null || { t_skip "sync mirror" "jq is not installed"; t_done; }

printf 'tok-%s\n' "$RANDOM$RANDOM" > "$T_DIR/token"
TOKEN=$(head -n1 "$T_DIR/token")
TOOLS="$T_DIR/origin/files/tools"
for v in 1.0 1.2 1.10; do
	mkdir -p "$TOOLS/demo/$v/files/lib"
	for i in 1 2 3 4; do head -c $((2000 * i)) /dev/urandom > "$TOOLS/demo/$v/files/lib/f$i"; done
done
mkdir -p "$TOOLS/other/9/files"
echo other > "$TOOLS/other/9/files/readme"

env_mirror origin --root "$T_DIR/origin" --mode origin --admin-token-file "$T_DIR/token" \
	--keep-versions 2 || t_done
ORIGIN_PORT=$MIRROR_PORT
O="http://127.0.0.1:$ORIGIN_PORT"
env_mirror peer --root "$T_DIR/peer" --mode peer --origin-url "$O" --keep-versions 1 || t_done
PEER_PORT=$MIRROR_PORT
PEER="http://127.0.0.1:$PEER_PORT"

# wait_gone PATH: polls until PATH no longer exists (5 s at most).
wait_gone() {
	_i=0
	while [ -e "$1" ] && [ $_i -lt 100 ]; do sleep 0.05; _i=$((_i + 1)); done
	[ ! -e "$1" ]
}
metric() {  # metric URL NAME: the value of one sample
	curl -s "$1/metrics" | awk -v n="$2" '$1 == n { print $2 }'
}

# 1. --keep-versions 2 at start: 1.0 goes (version order: 1.2 < 1.10), the others stay.
if wait_gone "$TOOLS/demo/1.0"; then t_ok "keep 2: 1.0 purged at start"; else t_fail "keep 2: 1.0 purged at start" "still there"; fi
t_eq "keep 2: 1.2 and 1.10 kept" "$(ls "$TOOLS/demo" | sort -V | tr '\n' ' ')" "1.2 1.10 "
# The line is written after the folder is gone: wait for it.
if t_wait_log "$T_DIR/origin.log" "purged tools/demo/1.0 (4 files): keeping the newest 2 versions of demo" 10000; then
	t_ok "keep 2: purge logged"
else
	t_fail "keep 2: purge logged" "$(tail -n 3 "$T_DIR/origin.log")"
fi
t_eq "keep 2: another tool untouched" "$(cat "$TOOLS/other/9/files/readme")" other
t_eq "keep 2: the purged files are gone from the store" \
	"$(curl -s -o /dev/null -w '%{http_code}' "$O/api/v1/tools/demo/1.0/files/lib/f1")" 404

# 2. manifest.json is a file of the store, served with its digest.
"$A" manifest --dir "$TOOLS/demo/1.10/files" --tool-id demo --version 1.10 --base-url "$PEER" \
	--out "$T_DIR/m110.json" 2> /dev/null
curl -s -f -o /dev/null -H "Authorization: Bearer $TOKEN" -T "$T_DIR/m110.json" \
	"$O/api/v1/tools/demo/1.10/manifest.json"
t_eq "manifest.json: PUT to the origin" "$?" 0
curl -s -D "$T_DIR/mh" -o "$T_DIR/m110.got" "$O/api/v1/tools/demo/1.10/manifest.json"
t_eq "manifest.json: served as stored" "$(cmp -s "$T_DIR/m110.json" "$T_DIR/m110.got" && echo same)" same
t_grep "manifest.json: with X-File-SHA256" "$T_DIR/mh" "X-File-SHA256: $(sha256sum < "$T_DIR/m110.json" | cut -d' ' -f1)"

# 3. A sync through the peer: every miss filled from the origin, counted per tool.
cat > "$T_DIR/agent.yaml" <<YAML
node_id: node-test
state_dir: $T_DIR/state
log_file: $T_DIR/agent.log
YAML
"$A" --config "$T_DIR/agent.yaml" sync --manifest "$PEER/api/v1/tools/demo/1.10/manifest.json" \
	--dir "$T_DIR/d1" --json > "$T_DIR/s1.json" 2> "$T_DIR/s1.err"
t_eq "peer sync: exits 0" "$?" 0
t_eq "peer sync: the folder equals the tool" \
	"$(diff -r --exclude=.hydra-index "$TOOLS/demo/1.10/files" "$T_DIR/d1" > /dev/null && echo same)" same
t_eq "peer sync: 5 misses for demo (manifest and 4 files)" \
	"$(metric "$PEER" 'hydra_mirror_tool_misses_total{tool="demo"}')" 5
t_eq "peer sync: filled from the origin" "$(metric "$PEER" hydra_mirror_origin_fills_total)" 5
"$A" --config "$T_DIR/agent.yaml" sync --manifest "$PEER/api/v1/tools/demo/1.10/manifest.json" \
	--dir "$T_DIR/d2" > /dev/null 2>&1
t_eq "second sync: 5 hits for demo" "$(metric "$PEER" 'hydra_mirror_tool_hits_total{tool="demo"}')" 5
t_eq "second sync: no new miss" "$(metric "$PEER" 'hydra_mirror_tool_misses_total{tool="demo"}')" 5
t_eq "origin counts per tool (the manifest GET above and the peer's 5 fills)" \
	"$(metric "$O" 'hydra_mirror_tool_hits_total{tool="demo"}')" 6
curl -s -o /dev/null "$PEER/api/v1/tools/other/9/files/readme"
t_eq "another tool counted apart" "$(metric "$PEER" 'hydra_mirror_tool_misses_total{tool="other"}')" 1

# 4. The peer keeps 1 version: an older one fetched through it is not kept.
curl -s -o "$T_DIR/f1.got" "$PEER/api/v1/tools/demo/1.2/files/lib/f1"
t_eq "peer keep 1: the older version is still served" \
	"$(cmp -s "$T_DIR/f1.got" "$TOOLS/demo/1.2/files/lib/f1" && echo same)" same
if wait_gone "$T_DIR/peer/files/tools/demo/1.2"; then t_ok "peer keep 1: 1.2 purged from the cache"
else t_fail "peer keep 1: 1.2 purged from the cache" "still there"; fi
t_eq "peer keep 1: 1.10 kept in the cache" "$(ls "$T_DIR/peer/files/tools/demo" | tr '\n' ' ')" "1.10 "
t_eq "peer keep 1: the origin still has both" "$(ls "$TOOLS/demo" | sort -V | tr '\n' ' ')" "1.2 1.10 "

# 5. A new version on the origin purges the oldest of the two.
curl -s -f -o /dev/null -H "Authorization: Bearer $TOKEN" -T "$T_DIR/m110.json" \
	"$O/api/v1/tools/demo/2.0/files/x"
if wait_gone "$TOOLS/demo/1.2"; then t_ok "keep 2: a PUT of 2.0 purges 1.2"; else t_fail "keep 2: a PUT of 2.0 purges 1.2" "still there"; fi
t_eq "keep 2: 1.10 and 2.0 kept" "$(ls "$TOOLS/demo" | sort -V | tr '\n' ' ')" "1.10 2.0 "

# 6. The admin DELETE of a version.
t_eq "DELETE version without token: 401" \
	"$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$O/api/v1/tools/demo/1.10")" 401
t_eq "DELETE version: 200 with the file count" \
	"$(curl -s -X DELETE -H "Authorization: Bearer $TOKEN" "$O/api/v1/tools/demo/1.10" | jq -c .)" \
	'{"deleted":"tools/demo/1.10","files":5}'
t_eq "DELETE version: the folder is gone" "$(ls "$TOOLS/demo" | tr '\n' ' ')" "2.0 "
t_eq "DELETE version: its files are 404" \
	"$(curl -s -o /dev/null -w '%{http_code}' "$O/api/v1/tools/demo/1.10/files/lib/f2")" 404
t_eq "DELETE version again: 404" \
	"$(curl -s -o /dev/null -w '%{http_code}' -X DELETE -H "Authorization: Bearer $TOKEN" "$O/api/v1/tools/demo/1.10")" 404
t_eq "DELETE a traversal: 400" \
	"$(curl -s --path-as-is -o /dev/null -w '%{http_code}' -X DELETE -H "Authorization: Bearer $TOKEN" "$O/api/v1/tools/demo/..")" 400
t_eq "DELETE version on a peer: 405" \
	"$(curl -s -o /dev/null -w '%{http_code}' -X DELETE -H "Authorization: Bearer $TOKEN" "$PEER/api/v1/tools/demo/2.0")" 405
t_eq "purges counted in /metrics" "$(metric "$O" hydra_mirror_tool_versions_purged_total)" 3

t_done
