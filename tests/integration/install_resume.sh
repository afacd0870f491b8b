#!/bin/bash
# hydra-agent install when things die mid-transfer: a district mirror killed
# mid-stream hands over to the origin with a Range request; an agent killed
# with SIGKILL resumes its part file on the next run; a full disk is exit 74.
. "$(dirname "$0")/../lib.sh"
. "$T_ROOT/tests/support/fleet_env.sh"

A="$BIN/hydra-agent"
SIZE=$((8 * 1024 * 1024))
BUILD_PATH=api/v1/peer/files/exp/build-7.zip
mkdir -p "$T_DIR/origin/files/exp"
SHA=$(env_build "$T_DIR/origin/files/exp/build-7.zip" $SIZE)

env_dnsmasq dns mirror-a.experiencenet.com=127.0.0.1 bxl1.hydramirror.experiencenet.com=127.0.0.1 || t_done
env_mirror origin --root "$T_DIR/origin" --mode origin || t_done
ORIGIN_PORT=$MIRROR_PORT
# 1 MiB/s: an 8 MiB file takes 8 s, so there is time to kill it mid-way.
env_mirror district --root "$T_DIR/origin" --mode origin --max-egress-bytes-per-s 1M || t_done
DISTRICT_PORT=$MIRROR_PORT
DISTRICT_PID=$MIRROR_PID
env_mirror slow-origin --root "$T_DIR/origin" --mode origin --max-egress-bytes-per-s 1M || t_done
SLOW_ORIGIN_PORT=$MIRROR_PORT

conf() {  # conf NAME DISTRICT_PORT
	cat > "$T_DIR/$1.yaml" <<YAML
node_id: node-test
state_dir: $T_DIR/state
log_file: $T_DIR/$1.hydrabody.log
dns: {servers: ["127.0.0.1:$DNS_PORT"], timeout_ms: 1000}
district: {static: bxl1}
mirror:
  url_pattern: "http://{district}.hydramirror.experiencenet.com:$2"
  stall: {bytes_per_s: 1K, seconds: 30}
YAML
}

# wait_part FILE BYTES: polls until FILE holds at least BYTES (20 s at most).
wait_part() {
	_i=0
	while [ "$(stat -c %s "$1" 2>/dev/null || echo 0)" -lt "$2" ] && [ $_i -lt 400 ]; do
		sleep 0.05
		_i=$((_i + 1))
	done
	[ "$(stat -c %s "$1" 2>/dev/null || echo 0)" -ge "$2" ]
}

# json_attempt_bytes FILE N: the bytes of attempt N (0-based) in an install's JSON.
json_attempt_bytes() {
	sed 's/.*"attempts":\[//' "$1" | tr '}' '\n' | sed -n "$(($2 + 1))p" |
		sed -n 's/.*"bytes":\([0-9]*\).*/\1/p'
}

# 1. The district mirror dies mid-transfer.
conf handover "$DISTRICT_PORT"
"$A" --config "$T_DIR/handover.yaml" install --json --out "$T_DIR/handover.out" \
	--url "http://mirror-a.experiencenet.com:$ORIGIN_PORT/$BUILD_PATH" \
	> "$T_DIR/handover.json" 2> "$T_DIR/handover.stderr" &
AGENT=$!
if wait_part "$T_DIR/handover.out.part" $((1024 * 1024)); then
	kill -KILL "$DISTRICT_PID"
	wait "$DISTRICT_PID" 2>/dev/null
	t_ok "handover: district mirror killed after 1 MiB"
else
	t_fail "handover: district mirror killed after 1 MiB" "the part file never grew"
fi
wait $AGENT
t_eq "handover: install exits 0" "$?" 0
t_eq "handover: the installed file verifies" \
	"$(sha256sum < "$T_DIR/handover.out" | cut -d' ' -f1)" "$SHA"
t_grep "handover: fallback line" "$T_DIR/handover.hydrabody.log" \
	"district mirror bxl1.hydramirror.experiencenet.com unavailable ("
t_grep "handover: resumed on the origin" "$T_DIR/handover.hydrabody.log" \
	"from mirror-a.experiencenet.com"
d_bytes=$(json_attempt_bytes "$T_DIR/handover.json" 0)
o_bytes=$(json_attempt_bytes "$T_DIR/handover.json" 1)
if [ -n "$d_bytes" ] && [ -n "$o_bytes" ] && [ "$d_bytes" -gt 0 ] && [ "$o_bytes" -lt $SIZE ] &&
	[ $((d_bytes + o_bytes)) -eq $SIZE ]; then
	t_ok "handover: the origin sent only the rest ($d_bytes + $o_bytes bytes)"
else
	t_fail "handover: the origin sent only the rest" "district $d_bytes, origin $o_bytes of $SIZE"
fi
t_eq "handover: no part file left" "$(ls "$T_DIR"/handover.out.* 2>/dev/null)" ""

# 2. The agent itself is killed, then run again.
cat > "$T_DIR/rerun.yaml" <<YAML
node_id: node-test
state_dir: $T_DIR/state
log_file: $T_DIR/rerun.hydrabody.log
dns: {servers: ["127.0.0.1:$DNS_PORT"], timeout_ms: 1000}
YAML
URL="http://mirror-a.experiencenet.com:$SLOW_ORIGIN_PORT/$BUILD_PATH"
"$A" --config "$T_DIR/rerun.yaml" install --out "$T_DIR/rerun.out" --url "$URL" \
	> /dev/null 2>&1 &
AGENT=$!
wait_part "$T_DIR/rerun.out.part" $((2 * 1024 * 1024))
kill -KILL $AGENT
wait $AGENT 2>/dev/null
t_eq "rerun: nothing at PATH after SIGKILL" "$(ls "$T_DIR/rerun.out" 2>/dev/null)" ""
left=$(stat -c %s "$T_DIR/rerun.out.part" 2>/dev/null || echo 0)
"$A" --config "$T_DIR/rerun.yaml" install --json --out "$T_DIR/rerun.out" --url "$URL" \
	> "$T_DIR/rerun.json" 2> "$T_DIR/rerun.stderr"
t_eq "rerun: exits 0" "$?" 0
t_eq "rerun: the installed file verifies" "$(sha256sum < "$T_DIR/rerun.out" | cut -d' ' -f1)" "$SHA"
got=$(json_attempt_bytes "$T_DIR/rerun.json" 0)
if [ -n "$got" ] && [ "$left" -gt 0 ] && [ "$got" -eq $((SIZE - left)) ]; then
	t_ok "rerun: fetched only the $got bytes the part lacked"
else
	t_fail "rerun: fetched only what the part lacked" "part had $left, fetched $got of $SIZE"
fi
t_grep "rerun: resume logged" "$T_DIR/rerun.hydrabody.log" "resuming at $left bytes"

# 2b. A second install to the same PATH while the first runs: refused, and
# the first one's bytes untouched.
"$A" --config "$T_DIR/rerun.yaml" install --out "$T_DIR/twice.out" --url "$URL" \
	> /dev/null 2>&1 &
FIRST=$!
wait_part "$T_DIR/twice.out.part" $((512 * 1024))
"$A" --config "$T_DIR/rerun.yaml" install --out "$T_DIR/twice.out" --url "$URL" \
	> /dev/null 2> "$T_DIR/twice.stderr"
t_eq "same PATH twice: the second install exits 74" "$?" 74
t_grep "same PATH twice: says why" "$T_DIR/twice.stderr" \
	"$T_DIR/twice.out.part is being written by another install"
wait $FIRST
t_eq "same PATH twice: the first install completes" "$?" 0
t_eq "same PATH twice: and verifies" "$(sha256sum < "$T_DIR/twice.out" | cut -d' ' -f1)" "$SHA"

# 3. A stale part file from some other download: the resumed file cannot
# verify, so the source is tried once more from zero instead of being blamed.
head -c $((1024 * 1024)) /dev/urandom > "$T_DIR/stale.out.part"
"$A" --config "$T_DIR/rerun.yaml" install --json --out "$T_DIR/stale.out" \
	--url "http://mirror-a.experiencenet.com:$ORIGIN_PORT/$BUILD_PATH" \
	> "$T_DIR/stale.json" 2> "$T_DIR/stale.stderr"
t_eq "stale part: exits 0" "$?" 0
t_eq "stale part: the installed file verifies" "$(sha256sum < "$T_DIR/stale.out" | cut -d' ' -f1)" "$SHA"
t_grep "stale part: retried from zero" "$T_DIR/rerun.hydrabody.log" \
	"sha256 mismatch after resuming at 1048576 bytes from mirror-a.experiencenet.com, restarting from zero"
t_eq "stale part: the retry fetched the whole file" "$(json_attempt_bytes "$T_DIR/stale.json" 1)" "$SIZE"

# 4. A source that ignores Range (nginx with max_ranges 0) answers 200: the
# part is restarted, never spliced.
NGINX_PORT=$(t_free_port)
env_nginx nginx "$NGINX_PORT" "root $T_DIR/origin/files; max_ranges 0;"
head -c $((1024 * 1024)) "$T_DIR/origin/files/exp/build-7.zip" > "$T_DIR/norange.out.part"
"$A" --config "$T_DIR/rerun.yaml" install --json --out "$T_DIR/norange.out" --sha256 "$SHA" \
	--url "http://127.0.0.1:$NGINX_PORT/exp/build-7.zip" > "$T_DIR/norange.json" 2> "$T_DIR/norange.stderr"
t_eq "range ignored: exits 0" "$?" 0
t_eq "range ignored: the installed file verifies" \
	"$(sha256sum < "$T_DIR/norange.out" | cut -d' ' -f1)" "$SHA"
t_grep "range ignored: a resume was asked for" "$T_DIR/rerun.hydrabody.log" \
	"resuming at 1048576 bytes from 127.0.0.1"
t_eq "range ignored: the whole file came again" "$(json_attempt_bytes "$T_DIR/norange.json" 0)" "$SIZE"
t_grep "range ignored: status 200" "$T_DIR/norange.json" '"http_status":200'

# 5. A crash between the last byte and the rename leaves a whole part: the
# resume gets 416 and the part is checked and installed, not refused forever.
cp "$T_DIR/origin/files/exp/build-7.zip" "$T_DIR/whole.out.part"
"$A" --config "$T_DIR/rerun.yaml" install --json --out "$T_DIR/whole.out" \
	--url "http://mirror-a.experiencenet.com:$ORIGIN_PORT/$BUILD_PATH" \
	> "$T_DIR/whole.json" 2> "$T_DIR/whole.stderr"
t_eq "whole part: exits 0" "$?" 0
t_eq "whole part: the installed file verifies" "$(sha256sum < "$T_DIR/whole.out" | cut -d' ' -f1)" "$SHA"
t_grep "whole part: recognised" "$T_DIR/rerun.hydrabody.log" \
	"$T_DIR/whole.out.part already holds all $SIZE bytes"
# A part longer than the file (a shorter version was published): from zero.
cp "$T_DIR/origin/files/exp/build-7.zip" "$T_DIR/long.out.part"
head -c 1024 /dev/urandom >> "$T_DIR/long.out.part"
"$A" --config "$T_DIR/rerun.yaml" install --json --out "$T_DIR/long.out" \
	--url "http://mirror-a.experiencenet.com:$ORIGIN_PORT/$BUILD_PATH" \
	> "$T_DIR/long.json" 2> "$T_DIR/long.stderr"
t_eq "long part: exits 0" "$?" 0
t_eq "long part: the installed file verifies" "$(sha256sum < "$T_DIR/long.out" | cut -d' ' -f1)" "$SHA"
t_grep "long part: restarted from zero" "$T_DIR/rerun.hydrabody.log" \
	"mirror-a.experiencenet.com has $SIZE bytes, the partial download $((SIZE + 1024)), restarting from zero"

# 6. A server whose 206 stops short of the end: never installed as the file.
SHORT_PORT=$(t_free_port)
head -c 1000 /dev/urandom > "$T_DIR/short.body"
printf 'HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-999/300000\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n' > "$T_DIR/short.head"
cat "$T_DIR/short.head" "$T_DIR/short.body" > "$T_DIR/short.reply"
t_start short "$T_DIR/short.log" socat "TCP-LISTEN:$SHORT_PORT,bind=127.0.0.1,reuseaddr,fork" \
	"SYSTEM:cat $T_DIR/short.reply; cat > /dev/null"
t_wait_tcp 127.0.0.1 "$SHORT_PORT" 10000 || t_fail "short server starts" "no listener"
"$A" --config "$T_DIR/rerun.yaml" install --json --out "$T_DIR/short.out" \
	--url "http://127.0.0.1:$SHORT_PORT/b.zip" > "$T_DIR/short.json" 2> "$T_DIR/short.stderr"
t_eq "short 206: exit 69" "$?" 69
t_eq "short 206: nothing at PATH" "$(ls "$T_DIR/short.out" 2>/dev/null)" ""
t_grep "short 206: the reason" "$T_DIR/short.stderr" "127.0.0.1 sent 1000 of 300000 bytes"
t_grep "short 206: attempt result" "$T_DIR/short.json" '"result":"short"'
t_eq "short 206: the good bytes are kept for a resume" "$(stat -c %s "$T_DIR/short.out.part" 2>/dev/null)" 1000

# 7. A full disk: exit 74, a clear message, nothing left behind.
if [ "$(id -u)" -eq 0 ] && unshare -m true 2>/dev/null; then
	mkdir -p "$T_DIR/small"
	unshare -m sh -c "mount -t tmpfs -o size=1m hydra-test '$T_DIR/small' &&
		'$A' --config '$T_DIR/rerun.yaml' install --out '$T_DIR/small/b.zip' \
			--url 'http://mirror-a.experiencenet.com:$ORIGIN_PORT/$BUILD_PATH' \
			2> '$T_DIR/full.stderr'; echo \$? > '$T_DIR/full.rc'; ls '$T_DIR/small' > '$T_DIR/full.ls'"
	t_eq "disk full: exit 74" "$(cat "$T_DIR/full.rc")" 74
	t_grep "disk full: says so" "$T_DIR/full.stderr" "No space left on device"
	t_eq "disk full: nothing left on the disk" "$(cat "$T_DIR/full.ls")" ""
else
	t_skip "disk full" "needs root and mount namespaces for a small tmpfs"
fi

t_done
