#!/bin/bash
# hydra-cluster-sim over HTTP with curl: the seed's Test A steps 1, 2 and 7
# (park boom-pickle in bxl1-test, peppy gets cosmic alone across venues,
# move it back, boom-pickle first again), body config, status changes, the
# 400/404/405/413 answers, --save round trip, bad fleet files and a clean
# SIGTERM stop. Only 127.0.0.1 is contacted.
. "$(dirname "$0")/../lib.sh"

SIM="$BIN/hydra-cluster-sim"
FIXTURE="$T_ROOT/tests/fixtures/fleet-bxl1.yaml"
PEPPY=node-74adf4f8
BOOM=node-74f9fbf2
COSMIC=node-4c2be4b0

if [ ! -x "$SIM" ] || [ ! -x "$BIN/hydra-testkit" ]; then
	t_skip cluster_sim "build $SIM and hydra-testkit first"
	t_done
fi
if ! command -v curl > /dev/null 2>&1; then
	t_skip cluster_sim "curl is not installed"
	t_done
fi

OUT="$T_DIR/out.json"
CODE=""

# req METHOD PATH [JSON]: the status in $CODE, the body in $OUT.
req() {
	if [ $# -ge 3 ]; then
		CODE=$(curl -s -o "$OUT" -w '%{http_code}' -X "$1" \
			-H 'Content-Type: application/json' --data-binary "$3" "$URL$2")
	else
		CODE=$(curl -s -o "$OUT" -w '%{http_code}' -X "$1" "$URL$2")
	fi
}

# ids: the node_id values of $OUT in order, space separated.
ids() { grep -o '"node_id":"[^"]*"' "$OUT" | sed 's/"node_id":"//; s/"$//' | tr '\n' ' ' | sed 's/ $//'; }

# field NODE_ID KEY: the raw JSON value of KEY in NODE_ID's object of $OUT.
field() {
	tr '{' '\n' < "$OUT" | grep "\"node_id\":\"$1\"" | head -1 |
		grep -o "\"$2\":[^,}]*" | sed "s/\"$2\"://"
}

# expect NAME CODE TEXT: the last answer had status CODE and contains TEXT.
expect() {
	if [ "$CODE" = "$2" ] && grep -qF -- "$3" "$OUT"; then
		t_ok "$1"
	else
		t_fail "$1" "got $CODE $(head -c 300 "$OUT"), want $2 with '$3'"
	fi
}

# start NAME FLEET [ARGS...]: starts a sim on a free port, sets URL.
start() {
	_n=$1 _f=$2
	shift 2
	PORT=$(t_free_port) || { t_fail "$_n free port" "hydra-testkit free-port failed"; t_done; }
	LOG="$T_DIR/$_n.log"
	t_start "$_n" "$LOG" "$SIM" --fleet "$_f" --listen "127.0.0.1:$PORT" "$@"
	if t_wait_log "$LOG" "hydra-cluster-sim listening on 127.0.0.1:$PORT" 10000; then
		t_ok "$_n logs its readiness line"
	else
		t_fail "$_n logs its readiness line" "$(tail -n 5 "$LOG")"
		t_done
	fi
	URL="http://127.0.0.1:$PORT/api/v1"
}

cp "$FIXTURE" "$T_DIR/fleet.yaml"
start sim "$T_DIR/fleet.yaml"

req GET /health
expect "health answers healthy" 200 '"status":"healthy"'
expect "health counts the fixture's bodies" 200 '"bodies":6'

# Before Test A: peppy's same-venue partition holds boom-pickle.
req GET "/bodies/eligible?head_id=$PEPPY"
t_eq "peppy starts on boom-pickle alone (quickroute)" "$(ids)" "$BOOM"
t_eq "boom-pickle is same_venue" "$(field $BOOM same_venue)" "true"

# Test A step 1: park boom-pickle in bxl1-test.
req POST "/nodes/$BOOM/district" '{"district":"bxl1-test","venue":"rupelmonde"}'
expect "step 1: boom-pickle moves to bxl1-test" 200 '"district":"bxl1-test"'
t_grep "step 1: the move is logged" "$LOG" \
	"node $BOOM (boom-pickle-38) moved to bxl1-test/rupelmonde (was bxl1/rupelmonde)"

# Test A step 2: only cosmic, across venues. Another owner's body, a drained
# and an offline one sit in cloud-seven with more VRAM and must not appear.
req GET "/bodies/eligible?head_id=$PEPPY"
t_eq "step 2: eligible for peppy is cosmic alone" "$(ids)" "$COSMIC"
t_eq "step 2: cosmic is not same_venue" "$(field $COSMIC same_venue)" "false"
t_eq "step 2: cosmic's WireGuard address" "$(field $COSMIC wg_ip)" '"127.10.100.12"'
expect "step 2: partition is cross_venue" 200 '"partition":"cross_venue"'
# The discovery client sends district and venue too; the answer is the same.
req GET "/bodies/eligible?district=bxl1&venue=rupelmonde&head_id=$PEPPY"
t_eq "step 2 with district and venue: cosmic alone" "$(ids)" "$COSMIC"
t_grep "step 2: the choice is logged" "$LOG" \
	"eligible for head $PEPPY in bxl1/rupelmonde: partition cross_venue, 1 found, first $COSMIC"

req GET "/body/config?node_id=$BOOM"
expect "body config follows the move" 200 \
	"{\"node_id\":\"$BOOM\",\"district\":\"bxl1-test\",\"venue\":\"rupelmonde\",\"owner\":\"visit.flanders\"}"

# Issue 20: peppy reports what it measured; the eligible answer carries it.
req POST "/heads/$PEPPY/latency" \
	"{\"samples\":[{\"node_id\":\"$COSMIC\",\"transport\":\"wg\",\"rtt_ms\":7.25}]}"
expect "a latency report is accepted" 200 '"samples":1'
req GET "/bodies/eligible?head_id=$PEPPY"
t_eq "the eligible answer carries the head's estimate" "$(field $COSMIC rtt_ms)" "7.25"
req POST "/heads/$PEPPY/latency" \
	"{\"samples\":[{\"node_id\":\"$COSMIC\",\"transport\":\"wg\",\"rtt_ms\":-3}]}"
expect "a negative round trip is 400" 400 "samples[0].rtt_ms: -3 is not a round trip"
req POST "/heads/$BOOM/latency" '{"samples":[]}'
expect "a body cannot report" 400 "is a body, not a head"
req GET "/bodies/eligible?head_id=$PEPPY"
t_eq "a refused report stores nothing" "$(field $COSMIC rtt_ms)" "7.25"

# Test A step 7: restore boom-pickle; it is first again, same venue.
req POST "/nodes/$BOOM/district" '{"district":"bxl1","venue":"rupelmonde"}'
expect "step 7: boom-pickle moves back to bxl1" 200 '"district":"bxl1"'
req GET "/bodies/eligible?head_id=$PEPPY"
t_eq "step 7: boom-pickle first again" "$(ids | cut -d' ' -f1)" "$BOOM"
t_eq "step 7: boom-pickle is same_venue" "$(field $BOOM same_venue)" "true"
expect "step 7: partition is quickroute" 200 '"partition":"quickroute"'

# Test B: peppy could not reach boom-pickle and asks again excluding it:
# quickroute is empty, so cross-venue gives cosmic.
req GET "/bodies/eligible?district=bxl1&venue=rupelmonde&head_id=$PEPPY&exclude=$BOOM"
t_eq "exclude: unreachable boom-pickle gives way to cosmic" "$(ids)" "$COSMIC"
expect "exclude: partition is cross_venue" 200 '"partition":"cross_venue"'
t_grep "exclude: logged" "$LOG" "partition cross_venue, 1 found, first $COSMIC (excluding unreachable bodies)"
req GET "/bodies/eligible?head_id=$PEPPY&exclude=$BOOM,$COSMIC"
t_eq "exclude: several ids, nothing left" "$(ids)" ""
req GET "/bodies/eligible?head_id=$PEPPY&exclude=$BOOM,,x"
expect "exclude: an empty id is refused" 400 "query parameter 'exclude'"
req GET "/bodies/eligible?head_id=$PEPPY&exclude=bad%20id"
expect "exclude: a malformed id is refused" 400 "query parameter 'exclude'"

# Without head_id: the old strict venue, every owner, never a head.
req GET "/bodies/eligible?district=bxl1&venue=cloud-seven"
t_eq "strict venue lists cloud-seven's available bodies" "$(ids)" "node-9a1c03e5 $COSMIC"
req GET "/bodies/eligible?district=bxl1&venue=rupelmonde"
t_eq "strict venue never lists the head" "$(ids)" "$BOOM"

# Status changes apply to the next request.
req POST "/nodes/$BOOM/status" '{"status":"offline"}'
expect "status offline is accepted" 200 '"status":"offline"'
req GET "/bodies/eligible?head_id=$PEPPY"
t_eq "an offline boom-pickle leaves cosmic" "$(ids)" "$COSMIC"
req POST "/nodes/$BOOM/status" '{"status":"online","drained":true}'
expect "online and drained together" 200 '"drained":true'
req GET "/bodies/eligible?head_id=$PEPPY"
t_eq "a drained boom-pickle leaves cosmic" "$(ids)" "$COSMIC"
req POST "/nodes/$BOOM/status" '{"drained":false}'
expect "drained false alone keeps status" 200 '"status":"online","drained":false'
req GET "/bodies/eligible?head_id=$PEPPY"
t_eq "boom-pickle is back" "$(ids)" "$BOOM"
req POST "/nodes/$COSMIC/status" '{"status":"offline"}'
req POST "/nodes/$BOOM/district" '{"district":"bxl1-test"}'
expect "a move without venue keeps the venue" 200 '"district":"bxl1-test","venue":"rupelmonde"'
req GET "/bodies/eligible?head_id=$PEPPY"
t_eq "no candidates is an empty list" "$(tr -d '\n' < "$OUT" | cut -c1-32)" '{"bodies":[],"partition":"none",'
req POST "/nodes/$BOOM/district" '{"district":"bxl1","venue":"rupelmonde"}'
req POST "/nodes/$COSMIC/status" '{"status":"online"}'

req GET /nodes
t_eq "nodes lists the whole fleet" "$(ids | wc -w)" 7
expect "nodes shows roles" 200 '"role":"head"'
req GET "/nodes/$PEPPY"
expect "one node by id" 200 "\"node_id\":\"$PEPPY\",\"name\":\"peppy-dumpling-32\",\"role\":\"head\""

# Bad requests name the problem.
req GET "/bodies/eligible?head_id=node-00000000"
expect "unknown head is 404" 404 '{"error":"unknown head '"'node-00000000'"'"}'
req GET "/bodies/eligible?head_id=$BOOM"
expect "a body as head is 400" 400 "node '$BOOM' is a body, not a head"
req GET "/bodies/eligible?venue=rupelmonde"
expect "strict venue needs district" 400 "missing query parameter 'district'"
req GET "/bodies/eligible?district=bxl1"
expect "strict venue needs venue" 400 "missing query parameter 'venue'"
req GET "/bodies/eligible?district=bxl%201&venue=rupelmonde"
expect "a district that is not a DNS label is 400" 400 \
	"query parameter 'district': 'bxl 1' is not a DNS label"
req GET "/bodies/eligible?head-id=$PEPPY"
expect "an unknown query parameter is 400" 400 "unknown query parameter 'head-id'"
req GET "/bodies/eligible?head_id=$PEPPY&head_id=$PEPPY"
expect "a repeated query parameter is 400" 400 "query parameter 'head_id' given twice"
req GET "/bodies/eligible?head_id=node%2F1"
expect "a malformed head_id is 400" 400 "query parameter 'head_id': 'node/1' is not a node id"
req GET "/body/config"
expect "body config needs node_id" 400 "missing query parameter 'node_id'"
req GET "/body/config?node_id=node-00000000"
expect "body config of an unknown node is 404" 404 "unknown node 'node-00000000'"
req POST "/nodes/node-00000000/district" '{"district":"bxl1"}'
expect "moving an unknown node is 404" 404 "unknown node 'node-00000000'"
req POST "/nodes/node%20x/status" '{"status":"online"}'
expect "a malformed node id in the path is 400" 400 "node id: 'node x' is not a node id"
req POST "/nodes/$BOOM/district" '{"district":'
expect "invalid JSON is 400" 400 "request body: invalid JSON"
req POST "/nodes/$BOOM/district" '["bxl1"]'
expect "a JSON array is 400" 400 "request body: expected a JSON object"
req POST "/nodes/$BOOM/district" ''
expect "an empty body is 400" 400 "request body: expected a JSON object"
req POST "/nodes/$BOOM/district" '{"district":5}'
expect "a district of the wrong type is 400" 400 \
	"request body: field 'district': expected a string, got an integer"
req POST "/nodes/$BOOM/district" '{"venue":"rupelmonde"}'
expect "a move without district is 400" 400 "request body: missing field 'district'"
req POST "/nodes/$BOOM/district" '{"district":"BXL 1!"}'
expect "a district of the wrong format is 400" 400 \
	"district: 'BXL 1!' is not a DNS label"
req POST "/nodes/$BOOM/district" '{"district":"bxl1","zone":"x"}'
expect "an unknown body field is 400" 400 "request body: unknown field 'zone'"
req POST "/nodes/$BOOM/status" '{"status":"sleeping"}'
expect "an unknown status is 400" 400 "field 'status': 'sleeping' is not online or offline"
req POST "/nodes/$BOOM/status" '{"drained":"yes"}'
expect "drained of the wrong type is 400" 400 \
	"field 'drained': expected a boolean, got a string"
req POST "/nodes/$BOOM/status" '{}'
expect "a status change of nothing is 400" 400 "nothing to change"
# Issue 19 item 13: what json-c lets through is refused, the field named.
req POST "/nodes/$BOOM/status" '{"drained":null}'
expect "null for a boolean is 400" 400 "field 'drained': expected a boolean, got null"
req POST "/nodes/$BOOM/district" '{"district":"bxl1-test","district":"bxl1"}'
expect "a key given twice is 400" 400 "field 'district' given twice"
req POST "/nodes/$BOOM/district" '{"district":"bxl1\u0000-test"}'
expect "a NUL in a string is 400" 400 "field 'district': contains a NUL character"
req POST "/nodes/$BOOM/district" "$(printf '{"district":"bxl1\377"}')"
expect "invalid UTF-8 in a body is 400" 400 "request body: invalid UTF-8 at offset 17"
req GET "/nodes/node-%FF%C0"
if ! command -v python3 > /dev/null 2>&1; then
	t_skip "an error quoting invalid bytes is still valid JSON" "python3 is not installed"
elif [ "$CODE" = 400 ] && python3 -c 'import json,sys; json.load(open(sys.argv[1], encoding="utf-8"))' "$OUT" 2>/dev/null; then
	t_ok "an error quoting invalid bytes is still valid JSON"
else
	t_fail "an error quoting invalid bytes is still valid JSON" "$CODE $(od -c "$OUT" | head -3)"
fi
head -c 5000 /dev/zero | tr '\0' ' ' > "$T_DIR/big.json"
CODE=$(curl -s -o "$OUT" -w '%{http_code}' -X POST --data-binary @"$T_DIR/big.json" \
	"$URL/nodes/$BOOM/status")
expect "a body over the limit is 413" 413 "request body larger than 4096 bytes"
req GET /nothing
expect "an unknown path is 404" 404 "no such endpoint: /api/v1/nothing"
CODE=$(curl -s -o "$OUT" -D "$T_DIR/headers" -w '%{http_code}' -X DELETE "$URL/nodes")
expect "a wrong method is 405" 405 "method DELETE not allowed on /api/v1/nodes"
t_grep "405 carries Allow" "$T_DIR/headers" "Allow: GET"
req GET "/nodes/$BOOM/district"
expect "GET on a POST endpoint is 405" 405 "allowed: POST"

# None of the refused requests changed anything, and without --save the
# fleet file is untouched.
req GET "/nodes/$BOOM"
expect "refused requests changed nothing" 200 \
	'"district":"bxl1","venue":"rupelmonde","owner":"visit.flanders","lan_ip":"127.11.0.24","wg_ip":"127.10.100.24","status":"online","drained":false'
if cmp -s "$FIXTURE" "$T_DIR/fleet.yaml"; then t_ok "without --save the fleet file is untouched"
else t_fail "without --save the fleet file is untouched" "it changed"; fi

t_stop sim
t_grep "SIGTERM stops it cleanly" "$T_DIR/sim.log" "hydra-cluster-sim stopping on SIGTERM"

# --save: a change is written back atomically and survives a restart.
cp "$FIXTURE" "$T_DIR/saved.yaml"
start saver "$T_DIR/saved.yaml" --save
req POST "/nodes/$BOOM/district" '{"district":"bxl1-test","venue":"rupelmonde"}'
expect "--save: the move is answered" 200 '"district":"bxl1-test"'
req POST "/nodes/$COSMIC/status" '{"drained":false,"status":"online"}'
t_grep "--save: the file holds the move" "$T_DIR/saved.yaml" 'district: "bxl1-test"'
if ls "$T_DIR"/saved.yaml.tmp.* > /dev/null 2>&1; then
	t_fail "--save leaves no temp file" "$(ls "$T_DIR")"
else t_ok "--save leaves no temp file"; fi
t_stop saver
start reloaded "$T_DIR/saved.yaml"
req GET "/bodies/eligible?head_id=$PEPPY"
t_eq "--save: after a restart peppy still gets cosmic alone" "$(ids)" "$COSMIC"
req GET /nodes
t_eq "--save: the saved fleet keeps every node" "$(ids | wc -w)" 7
t_stop reloaded

# --save when the file cannot be written (its directory is gone, which
# stops root too): 500 naming the problem, and no change in memory.
mkdir "$T_DIR/gone"
cp "$FIXTURE" "$T_DIR/gone/fleet.yaml"
start unsaveable "$T_DIR/gone/fleet.yaml" --save
rm -rf "$T_DIR/gone"
req POST "/nodes/$BOOM/district" '{"district":"bxl1-test"}'
expect "--save failure is 500" 500 "saving fleet: create $T_DIR/gone/fleet.yaml.tmp."
req GET "/nodes/$BOOM"
expect "--save failure keeps the old placement" 200 '"district":"bxl1","venue":"rupelmonde"'
t_stop unsaveable

# Issue 19 item 6: slow and idle clients never lock a normal one out.
# served NAME: 20 health requests from 127.0.0.1, paced over about 6 s (two
# head timeouts, so closing and topping up happen meanwhile); each must be
# answered 200 within SERVED_BOUND_S (an idle sim answers in milliseconds).
SERVED_BOUND_S=2
served() {
	_ok=0 _worst=0
	for _i in $(seq 1 20); do
		_r=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' --max-time 5 \
			"$URL/health")
		_t=${_r#* }
		if [ "${_r%% *}" = 200 ] && awk -v t="$_t" -v b="$SERVED_BOUND_S" 'BEGIN { exit !(t < b) }'; then
			_ok=$((_ok + 1))
		fi
		_worst=$(awk -v t="$_t" -v w="$_worst" 'BEGIN { print (t > w ? t : w) }')
		sleep 0.3
	done
	t_eq "$1: 20 of 20 served within ${SERVED_BOUND_S}s (slowest ${_worst}s)" "$_ok" 20
}

# load NAME COUNT MODE SOURCES BASE: slowloris in the background until the
# first COUNT connections are under way; its output in $T_DIR/NAME.out.
load() {
	python3 "$T_ROOT/tests/support/slowloris.py" --port "$PORT" --count "$2" \
		--duration 15 --mode "$3" --sources "$4" --source-base "$5" --reconnect \
		> "$T_DIR/$1.out" 2>&1 &
	echo "$1 $!" >> "$T_DIR/loaders"
	t_wait_log "$T_DIR/$1.out" ready 30000 || t_fail "$1 starts" "$(cat "$T_DIR/$1.out")"
}

# unload: waits for the loaders (each stops itself after 15 s).
unload() {
	while read -r _n _p; do wait "$_p"; done < "$T_DIR/loaders"
	: > "$T_DIR/loaders"
}

# held NAME: no connection of NAME stayed open past HELD_BOUND_S: the
# request timeout (3 s) closes slow and idle ones, where they would
# otherwise stay for the whole 15 s run.
HELD_BOUND_S=8
held() {
	_h=$(tail -n 1 "$T_DIR/$1.out" | grep -o '"held_max_s": [0-9.]*' | grep -o '[0-9.]*$')
	if [ -n "$_h" ] && awk -v h="$_h" -v b="$HELD_BOUND_S" 'BEGIN { exit !(h < b) }'; then
		t_ok "$2 are closed within ${HELD_BOUND_S}s (longest ${_h}s)"
	else
		t_fail "$2 are closed within ${HELD_BOUND_S}s" "$(tail -n 1 "$T_DIR/$1.out")"
	fi
}

if ! command -v python3 > /dev/null 2>&1; then
	t_skip "slow clients" "python3 is not installed"
elif ! ulimit -n 8192 2> /dev/null; then
	t_skip "slow clients" "cannot raise the open file limit to 8192 (hard $(ulimit -Hn))"
else
	: > "$T_DIR/loaders"
	cp "$FIXTURE" "$T_DIR/load.yaml"
	start loaded "$T_DIR/load.yaml"
	# One address each: the per-address cap keeps them to a few slots.
	load slow1 1100 slow 1 127.77.0.1
	load idle1 2000 idle 1 127.78.0.1
	served "1,100 slow and 2,000 idle from one address each"
	unload
	held slow1 "slow heads from one address"
	held idle1 "idle connections from one address"
	# Spread over many addresses, under the per-address cap: the head
	# timeout and the room kept for new clients have to do it.
	load slowN 1100 slow 220 127.79.0.1
	load idleN 2000 idle 400 127.80.0.1
	served "1,100 slow and 2,000 idle from 620 addresses"
	unload
	held slowN "slow heads from 220 addresses"
	held idleN "idle connections from 400 addresses"
	# A whole head at once, then the body at a byte a second.
	load body1 300 body 30 127.81.0.1
	served "300 slow bodies from 30 addresses"
	unload
	held body1 "slow bodies"
	req GET /health
	expect "the loaded sim is still healthy" 200 '"status":"healthy"'
	_l=$(wc -l < "$T_DIR/loaded.log")
	if [ "$_l" -lt 1000 ]; then t_ok "the flood does not flood the log ($_l lines)"
	else t_fail "the flood does not flood the log" "$_l lines"; fi
	t_stop loaded
fi

# Bad fleet files and command lines: sysexits codes and exact messages.
printf 'nodes:\n  - id: node-1\n    colour: green\n' > "$T_DIR/bad.yaml"
"$SIM" --fleet "$T_DIR/bad.yaml" --listen 127.0.0.1:0 > "$T_DIR/bad.log" 2>&1
t_eq "a bad fleet file exits 78" "$?" 78
t_grep "a bad fleet file names file:line:col" "$T_DIR/bad.log" \
	"$T_DIR/bad.yaml:3:5: unknown key 'colour' in nodes[0]"
sed 's/node-4c2be4b0/node-74f9fbf2/' "$FIXTURE" > "$T_DIR/dup.yaml"
"$SIM" --fleet "$T_DIR/dup.yaml" --listen 127.0.0.1:0 > "$T_DIR/dup.log" 2>&1
t_eq "duplicate ids exit 78" "$?" 78
t_grep "duplicate ids are named" "$T_DIR/dup.log" \
	"$T_DIR/dup.yaml:32:9: nodes[2].id: duplicate id 'node-74f9fbf2' (first used by nodes[1])"
"$SIM" --fleet "$T_DIR/nothing.yaml" --listen 127.0.0.1:0 > "$T_DIR/none.log" 2>&1
t_eq "a missing fleet file exits 78" "$?" 78
"$SIM" --fleet "$FIXTURE" > /dev/null 2>&1
t_eq "a missing --listen exits 64" "$?" 64
"$SIM" --fleet "$FIXTURE" --listen 127.0.0.1 > "$T_DIR/listen.log" 2>&1
t_eq "a listen address without port exits 64" "$?" 64
t_grep "the bad listen address is named" "$T_DIR/listen.log" "listen 127.0.0.1: expected ip:port"
"$SIM" --help | grep -q -- '--fleet FILE'
t_eq "--help describes --fleet" "$?" 0
t_eq "--version" "$("$SIM" --version)" "hydra-cluster-sim 0.1.0"

t_done
