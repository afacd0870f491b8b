#!/bin/bash
# hydra-mirror in peer mode in front of a real origin: cold miss then warm hit,
# streaming before the fill ends, one origin transfer for 16 concurrent cold
# GETs, HEAD and Range on a miss, an origin killed mid-fill, LRU eviction,
# pinned files, and the LRU order across a restart.
. "$(dirname "$0")/../lib.sh"

M="$BIN/hydra-mirror"
OROOT="$T_DIR/origin"
mkdir -p "$OROOT/files/b"
for f in big1 big2 big3 big4; do head -c 4000000 /dev/urandom > "$OROOT/files/b/$f.zip"; done
for f in a b c d; do head -c 100000 /dev/urandom > "$OROOT/files/b/$f.bin"; done
head -c 60000 /dev/urandom > "$OROOT/files/b/small.bin"
head -c 40000 /dev/urandom > "$OROOT/files/b/tamper.bin"
head -c 40000 /dev/urandom > "$OROOT/files/b/tamper2.bin"
head -c 100000 /dev/urandom > "$OROOT/files/b/p1.bin"
for f in p2 p3; do head -c 20000 /dev/urandom > "$OROOT/files/b/$f.bin"; done
sha() { sha256sum < "$1" | cut -d' ' -f1; }

# metric URL NAME: the value of an unlabelled metric (0 when absent).
metric() {
	curl -s "$1/metrics" | awk -v n="$2" '$1 == n { v = $2 } END { print v + 0 }'
}

# wait_metric URL NAME MIN MS: polls until NAME >= MIN.
wait_metric() {
	_end=$(( $(date +%s%N) / 1000000 + $4 ))
	while [ "$(metric "$1" "$2")" -lt "$3" ]; do
		[ $(( $(date +%s%N) / 1000000 )) -gt "$_end" ] && return 1
		sleep 0.02
	done
	return 0
}

# The origin sends at 2 MB/s: a 4 MB file takes about 2 s to fill.
OPORT=$(t_free_port)
t_start origin "$T_DIR/origin.log" "$M" --listen "127.0.0.1:$OPORT" --root "$OROOT" \
	--max-egress-bytes-per-s 2M
t_wait_log "$T_DIR/origin.log" "listening on" 10000 || { t_fail "origin starts" "see log"; t_done; }
O="http://127.0.0.1:$OPORT"

PPORT=$(t_free_port)
PROOT="$T_DIR/peer"
t_start peer "$T_DIR/peer.log" "$M" --mode peer --listen "127.0.0.1:$PPORT" --root "$PROOT" \
	--origin-url "$O/" --district bxl1
if t_wait_log "$T_DIR/peer.log" "hydra-mirror listening on 127.0.0.1:$PPORT (peer)" 10000; then
	t_ok "peer readiness line"
else
	t_fail "peer readiness line" "see log"; t_done
fi
P="http://127.0.0.1:$PPORT"
PU="$P/api/v1/peer/files"

t_grep "peer health" <(curl -s "$P/api/v1/health") '"role":"peer","district":"bxl1"'

# Cold miss: the first byte comes long before the fill ends.
curl -s -D "$T_DIR/h1" -o "$T_DIR/big1" -w '%{time_starttransfer} %{time_total}\n' \
	"$PU/b/big1.zip" > "$T_DIR/t1"
t_eq "cold miss body" "$(sha "$T_DIR/big1")" "$(sha "$OROOT/files/b/big1.zip")"
t_grep "cold miss carries X-File-SHA256" "$T_DIR/h1" "X-File-SHA256: $(sha "$OROOT/files/b/big1.zip")"
t_grep "cold miss carries Content-Length" "$T_DIR/h1" "Content-Length: 4000000"
read -r ttfb total < "$T_DIR/t1"
if awk -v a="$ttfb" -v b="$total" 'BEGIN { exit !(a * 5 < b) }'; then
	t_ok "first byte before the fill ends (ttfb ${ttfb}s, total ${total}s)"
else
	t_fail "first byte before the fill ends" "ttfb ${ttfb}s, total ${total}s"
fi
# 4 MB at 2 MB/s: about 2 s; unpaced, loopback takes milliseconds.
if awk -v b="$total" 'BEGIN { exit !(b > 0.4) }'; then
	t_ok "origin egress is paced by max_egress_bytes_per_s (${total}s for 4 MB at 2 MB/s)"
else
	t_fail "origin egress is paced by max_egress_bytes_per_s" "${total}s for 4 MB"
fi
t_eq "peer stored the verified file" "$(sha "$PROOT/files/b/big1.zip")" "$(sha "$OROOT/files/b/big1.zip")"
hits0=$(metric "$O" hydra_mirror_hits_total)
curl -s -o "$T_DIR/big1b" "$PU/b/big1.zip"
t_eq "warm hit body" "$(sha "$T_DIR/big1b")" "$(sha "$OROOT/files/b/big1.zip")"
t_eq "warm hit does not touch the origin" "$(metric "$O" hydra_mirror_hits_total)" "$hits0"
t_eq "peer counted one hit" "$(metric "$P" hydra_mirror_hits_total)" "1"

# 16 concurrent cold GETs: one origin transfer, every client gets the file.
hits0=$(metric "$O" hydra_mirror_hits_total)
pids=""
for i in $(seq 1 16); do
	curl -s -o "$T_DIR/c$i" "$PU/b/big2.zip" &
	pids="$pids $!"
done
for p in $pids; do wait "$p"; done
ok=0
for i in $(seq 1 16); do
	[ "$(sha "$T_DIR/c$i")" = "$(sha "$OROOT/files/b/big2.zip")" ] && ok=$((ok + 1))
done
t_eq "16 concurrent clients got the file" "$ok" "16"
t_eq "16 concurrent cold GETs made one origin transfer" \
	"$(( $(metric "$O" hydra_mirror_hits_total) - hits0 ))" "1"

# aria2c with four segmented ranges on a cold miss: every range is served
# from the one fill.
if command -v aria2c > /dev/null; then
	hits0=$(metric "$O" hydra_mirror_hits_total)
	aria2c -q -x4 -s4 -k1M --min-split-size=1M --allow-overwrite=true -d "$T_DIR" \
		-o aria4.zip "$PU/b/big4.zip" > "$T_DIR/aria.log" 2>&1
	t_eq "aria2c -x4 -s4 on a cold miss" "$(sha "$T_DIR/aria4.zip")" "$(sha "$OROOT/files/b/big4.zip")"
	t_eq "aria2c ranges shared one origin transfer" \
		"$(( $(metric "$O" hydra_mirror_hits_total) - hits0 ))" "1"
else
	t_skip "aria2c -x4 -s4 on a cold miss" "aria2c not installed"
fi

# HEAD on a miss asks the origin with HEAD and fetches no body.
obytes=$(metric "$P" hydra_mirror_origin_bytes_total)
curl -s -I "$PU/b/big3.zip" > "$T_DIR/hh"
t_grep "HEAD miss 200" "$T_DIR/hh" "HTTP/1.1 200"
t_grep "HEAD miss Content-Length" "$T_DIR/hh" "Content-Length: 4000000"
t_grep "HEAD miss digest" "$T_DIR/hh" "X-File-SHA256: $(sha "$OROOT/files/b/big3.zip")"
t_eq "HEAD miss fetched no body" "$(metric "$P" hydra_mirror_origin_bytes_total)" "$obytes"
t_eq "HEAD miss stored nothing" "$(ls "$PROOT/files/b/big3.zip" 2>/dev/null)" ""
t_eq "HEAD of a file the origin lacks 404" "$(curl -s -I -o /dev/null -w '%{http_code}' "$PU/b/none")" "404"
t_eq "GET of a file the origin lacks 404" "$(curl -s -o /dev/null -w '%{http_code}' "$PU/b/none")" "404"

# Range on a miss.
curl -s -D "$T_DIR/rh" -o "$T_DIR/r" -r 1000-1999 "$PU/b/small.bin"
t_grep "range miss 206" "$T_DIR/rh" "HTTP/1.1 206"
t_grep "range miss Content-Range" "$T_DIR/rh" "Content-Range: bytes 1000-1999/60000"
t_eq "range miss bytes" "$(cmp -s "$T_DIR/r" <(tail -c +1001 "$OROOT/files/b/small.bin" | head -c 1000) && echo same)" "same"
t_eq "range miss 416" "$(curl -s -o /dev/null -w '%{http_code}' -r 200000- "$PU/b/c.bin")" "416"

# A peer takes no writes.
curl -s -D "$T_DIR/ph" -o /dev/null -X PUT --data x "$PU/b/new"
t_grep "peer PUT 405" "$T_DIR/ph" "HTTP/1.1 405"
t_grep "peer PUT Allow" "$T_DIR/ph" "Allow: GET, HEAD"
t_eq "peer DELETE 405" "$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$PU/b/big1.zip")" "405"
t_eq "peer traversal 400" "$(curl -s --path-as-is -o /dev/null -w '%{http_code}' "$PU/../../etc/passwd")" "400"
t_stop peer

# The origin dies mid-fill: the client's transfer fails, nothing is kept,
# and the next request fills again.
PPORT2=$(t_free_port)
t_start peer2 "$T_DIR/peer2.log" "$M" --mode peer --listen "127.0.0.1:$PPORT2" \
	--root "$T_DIR/peer2" --origin-url "$O"
t_wait_log "$T_DIR/peer2.log" "listening on" 10000
P2="http://127.0.0.1:$PPORT2"
curl -s -o "$T_DIR/killed" "$P2/api/v1/peer/files/b/big3.zip" &
CURL_PID=$!
if wait_metric "$P2" hydra_mirror_origin_bytes_total 1 10000; then
	kill -KILL "$(t_pid_of origin)"
	t_stop origin
	wait "$CURL_PID"
	rc=$?
	if [ "$rc" -ne 0 ] && [ "$(stat -c %s "$T_DIR/killed")" -lt 4000000 ]; then
		t_ok "client transfer fails when the origin dies (curl $rc)"
	else
		t_fail "client transfer fails when the origin dies" "curl $rc, $(stat -c %s "$T_DIR/killed") bytes"
	fi
	wait_metric "$P2" hydra_mirror_origin_fill_failures_total 1 10000
	t_eq "no entry after the failed fill" "$(ls "$T_DIR/peer2/files/b/" 2>/dev/null)" ""
	t_eq "no temp file after the failed fill" "$(ls -A "$T_DIR/peer2/tmp")" ""
	t_eq "origin down: 502" "$(curl -s -o /dev/null -w '%{http_code}' "$P2/api/v1/peer/files/b/big3.zip")" "502"
	t_start origin "$T_DIR/origin2.log" "$M" --listen "127.0.0.1:$OPORT" --root "$OROOT"
	t_wait_log "$T_DIR/origin2.log" "listening on" 10000
	curl -s -o "$T_DIR/refill" "$P2/api/v1/peer/files/b/big3.zip"
	t_eq "next request fills again" "$(sha "$T_DIR/refill")" "$(sha "$OROOT/files/b/big3.zip")"
	t_eq "refilled entry stored" "$(sha "$T_DIR/peer2/files/b/big3.zip")" "$(sha "$OROOT/files/b/big3.zip")"
else
	t_fail "fill started" "no origin bytes seen"
fi
t_stop peer2

# LRU: room for two 100 kB files. Touch order decides, and survives a restart.
PPORT3=$(t_free_port)
L="$T_DIR/lru"
# No scrubber here: a file it is hashing is pinned, and a pinned file is
# passed over by eviction, which would make the order below depend on timing.
printf 'scrub_bytes_per_s: 0\n' > "$T_DIR/lru.yaml"
start_lru() {
	t_start lru "$T_DIR/lru$1.log" "$M" --config "$T_DIR/lru.yaml" --mode peer \
		--listen "127.0.0.1:$PPORT3" --root "$L" --origin-url "$O" --max-bytes 250000
	t_wait_log "$T_DIR/lru$1.log" "listening on" 10000
}
start_lru 1
P3="http://127.0.0.1:$PPORT3/api/v1/peer/files"
get() { curl -s -o /dev/null -w '%{http_code}' "$P3/b/$1.bin"; }
r="$(get a) $(get b) $(get a) $(get c)"
t_eq "fills and hits" "$r" "200 200 200 200"
t_eq "least recently used (b) evicted" "$(ls "$L/files/b" | tr '\n' ' ')" "a.bin c.bin "
t_eq "evictions counted" "$(metric "http://127.0.0.1:$PPORT3" hydra_mirror_evictions_total)" "1"
# Order now: c, then a (most recent).
get c > /dev/null
get a > /dev/null
t_stop lru
start_lru 2
get d > /dev/null
t_eq "restart kept the LRU order (c evicted, not a)" "$(ls "$L/files/b" | tr '\n' ' ')" "a.bin d.bin "
# A file larger than max_bytes streams through without being cached.
curl -s -o "$T_DIR/through" "$P3/b/big1.zip"
t_eq "too big for the store: streamed through" "$(sha "$T_DIR/through")" "$(sha "$OROOT/files/b/big1.zip")"
t_eq "too big for the store: not cached" "$(ls "$L/files/b" | tr '\n' ' ')" "a.bin d.bin "
t_grep "stream-through logged" "$T_DIR/lru2.log" "streaming it through without caching"

# The origin's digest is checked before an entry becomes visible: change the
# origin's bytes behind its back (same size and mtime, so it keeps serving
# the old digest) and the fill must fail, cut the client, and keep nothing.
cp -p "$OROOT/files/b/tamper.bin" "$T_DIR/tamper.ref"
head -c 40000 /dev/urandom > "$OROOT/files/b/tamper.bin"
touch -r "$T_DIR/tamper.ref" "$OROOT/files/b/tamper.bin"
code=$(curl -s -o "$T_DIR/tampered" -w '%{http_code}' "$P3/b/tamper.bin")
rc=$?
touch "$T_DIR/tampered"  # curl makes no file when no body byte came
# Cut mid-body, or 502 when the fill failed before the response started.
if { [ "$rc" -ne 0 ] && [ "$(stat -c %s "$T_DIR/tampered")" -lt 40000 ]; } || [ "$code" = 502 ]; then
	t_ok "digest mismatch: the client never gets a clean body (curl $rc, HTTP $code)"
else
	t_fail "digest mismatch: the client never gets a clean body" "curl $rc, HTTP $code"
fi
t_grep "digest mismatch logged" "$T_DIR/lru2.log" "fill b/tamper.bin failed: digest mismatch"
t_eq "digest mismatch: nothing cached" "$(ls "$L/files/b" | tr '\n' ' ')$(ls -A "$L/tmp")" "a.bin d.bin "
# The same for a range that ends before the end of the file.
cp -p "$OROOT/files/b/tamper2.bin" "$T_DIR/tamper2.ref"
head -c 40000 /dev/urandom > "$OROOT/files/b/tamper2.bin"
head -c 100000 /dev/urandom > "$OROOT/files/b/p1.bin"
for f in p2 p3; do head -c 20000 /dev/urandom > "$OROOT/files/b/$f.bin"; done
touch -r "$T_DIR/tamper2.ref" "$OROOT/files/b/tamper2.bin"
code=$(curl -s -r 0-999 -o "$T_DIR/tampered2" -w '%{http_code}' "$P3/b/tamper2.bin")
rc=$?
if [ "$rc" -ne 0 ] || [ "$code" = 502 ]; then
	t_ok "digest mismatch: a range never ends cleanly (curl $rc, HTTP $code)"
else
	t_fail "digest mismatch: a range never ends cleanly" "curl $rc, HTTP $code"
fi
t_wait_log "$T_DIR/lru2.log" "fill b/tamper2.bin failed: digest mismatch" 10000
t_stop lru

# Pinned: a file being read is not evicted even when it is the oldest.
PPORT4=$(t_free_port)
K="$T_DIR/pin"
mkdir -p "$K/files/b"
cp "$OROOT/files/b/a.bin" "$OROOT/files/b/b.bin" "$K/files/b/"
t_start pin "$T_DIR/pin.log" "$M" --config "$T_DIR/lru.yaml" --mode peer --listen "127.0.0.1:$PPORT4" --root "$K" \
	--origin-url "$O" --max-bytes 250000 --max-egress-bytes-per-s 20K
t_wait_log "$T_DIR/pin.log" "listening on" 10000
P4="http://127.0.0.1:$PPORT4"
curl -s -I -o /dev/null "$P4/api/v1/peer/files/b/a.bin"
curl -s -I -o /dev/null "$P4/api/v1/peer/files/b/b.bin"
# a is the oldest; a slow read (100 kB at 20 kB/s: 5 s) pins it.
curl -s -o "$T_DIR/slow" "$P4/api/v1/peer/files/b/a.bin" &
SLOW=$!
wait_metric "$P4" hydra_mirror_hits_total 3 5000
curl -s -o /dev/null --max-time 30 "$P4/api/v1/peer/files/b/small.bin" &
SMALL=$!
t_wait_log "$T_DIR/pin.log" "filled b/small.bin" 10000
t_eq "pinned file kept, next oldest evicted" "$(ls "$K/files/b" | tr '\n' ' ')" "a.bin small.bin "
t_grep "eviction logged" "$T_DIR/pin.log" "evicted b/b.bin"
wait "$SLOW"
t_eq "pinned reader got its file" "$(sha "$T_DIR/slow")" "$(sha "$OROOT/files/b/a.bin")"
wait "$SMALL"
t_stop pin

# A file just filled stays pinned while the clients of its fill still read it.
PPORT5=$(t_free_port)
t_start pin2 "$T_DIR/pin2.log" "$M" --config "$T_DIR/lru.yaml" --mode peer --listen "127.0.0.1:$PPORT5" --root "$T_DIR/pin2" \
	--origin-url "$O" --max-bytes 130000 --max-egress-bytes-per-s 20K
t_wait_log "$T_DIR/pin2.log" "listening on" 10000
P5="http://127.0.0.1:$PPORT5/api/v1/peer/files"
# p1 fills at once but is sent in about 5 s.
curl -s -o "$T_DIR/slowfill" "$P5/b/p1.bin" &
SLOW=$!
t_wait_log "$T_DIR/pin2.log" "filled b/p1.bin" 10000
curl -s -o /dev/null --max-time 30 "$P5/b/p2.bin"
curl -s -o /dev/null --max-time 30 "$P5/b/p3.bin"
t_nogrep "a file its fill's client still reads is not evicted" "$T_DIR/pin2.log" "evicted b/p1.bin"
t_eq "the next oldest goes instead" "$(ls "$T_DIR/pin2/files/b" | tr '\n' ' ')" "p1.bin p3.bin "
wait "$SLOW"
t_eq "the fill's client got its file" "$(sha "$T_DIR/slowfill")" "$(sha "$OROOT/files/b/p1.bin")"
t_stop pin2

t_done
