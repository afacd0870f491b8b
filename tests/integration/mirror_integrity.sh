#!/bin/bash
# hydra-mirror as a verifying cache (issue 12, the mirror's side): a district
# copy corrupted keeping its size and mtime is evicted by POST verify and the
# next GET is a fresh fill; verify refuses bad paths (400), rate-limits one
# address (429) and coalesces concurrent reports into one hash; the
# scrubber evicts a corrupted file within a bound computed from its rate and
# never a correct one; a stale hit is hashed as it is sent and cut on a
# mismatch; a kill -9 during a scrub loses no good file.
. "$(dirname "$0")/../lib.sh"

M="$BIN/hydra-mirror"
OROOT="$T_DIR/origin"
mkdir -p "$OROOT/files/b"
for f in a b c d e; do head -c 1000000 /dev/urandom > "$OROOT/files/b/$f.bin"; done
head -c 64000000 /dev/urandom > "$OROOT/files/b/big.bin"
sha() { sha256sum < "$1" | cut -d' ' -f1; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

metric() {
	curl -s "$1/metrics" | awk -v n="$2" '$1 == n { v = $2 } END { print v + 0 }'
}

# corrupt FILE: overwrites 16 bytes in the middle, keeping size and mtime.
corrupt() {
	touch -r "$1" "$T_DIR/stamp"
	head -c 16 /dev/urandom | dd of="$1" bs=1 seek=1000 conv=notrunc status=none
	touch -r "$T_DIR/stamp" "$1"
}

# peer NAME SCRUB MAXAGE: starts a peer of the origin; sets $P.
peer() {
	_port=$(t_free_port)
	mkdir -p "$T_DIR/$1"
	cat > "$T_DIR/$1.yaml" <<YAML
listen: "127.0.0.1:$_port"
root: $T_DIR/$1
mode: peer
origin_url: $O
scrub_bytes_per_s: $2
verify_max_age_s: $3
YAML
	t_start "$1" "$T_DIR/$1.log" "$M" --config "$T_DIR/$1.yaml"
	t_wait_log "$T_DIR/$1.log" "listening on" 10000 || { t_fail "$1 starts" "see log"; t_done; }
	P="http://127.0.0.1:$_port"
}

OPORT=$(t_free_port)
t_start origin "$T_DIR/origin.log" "$M" --listen "127.0.0.1:$OPORT" --root "$OROOT"
t_wait_log "$T_DIR/origin.log" "listening on" 10000 || { t_fail "origin starts" "see log"; t_done; }
O="http://127.0.0.1:$OPORT"

# ---- POST verify, no scrubber, hits trusted for an hour
peer pa 0 3600
PA=$P
for f in a b c; do curl -s -o /dev/null "$PA/api/v1/peer/files/b/$f.bin"; done
t_eq "peer filled a.bin" "$(sha "$T_DIR/pa/files/b/a.bin")" "$(sha "$OROOT/files/b/a.bin")"
corrupt "$T_DIR/pa/files/b/a.bin"
t_eq "a fresh hit is sent without hashing (corrupt bytes go out)" \
	"$(curl -s "$PA/api/v1/peer/files/b/a.bin" | sha256sum | cut -d' ' -f1)" \
	"$(sha "$T_DIR/pa/files/b/a.bin")"
t_eq "verify of a corrupted copy evicts it" \
	"$(curl -s -X POST "$PA/api/v1/peer/verify/b/a.bin")" '{"path":"b/a.bin","status":"evicted"}'
t_eq "the corrupted copy is gone" "$(ls "$T_DIR/pa/files/b/a.bin" 2>/dev/null)" ""
if grep -q "b/a.bin corrupt: expected sha256 $(sha "$OROOT/files/b/a.bin"), found [0-9a-f]\{64\}; evicted" "$T_DIR/pa.log"; then
	t_ok "eviction names path and both digests"
else
	t_fail "eviction names path and both digests" "no such line in pa.log"
fi
t_eq "corrupt_evictions_total counts it" "$(metric "$PA" hydra_mirror_corrupt_evictions_total)" 1
ohits=$(metric "$O" hydra_mirror_hits_total)
curl -s -o "$T_DIR/a.got" "$PA/api/v1/peer/files/b/a.bin"
t_eq "the next GET has the origin's bytes" "$(sha "$T_DIR/a.got")" "$(sha "$OROOT/files/b/a.bin")"
t_eq "the next GET was a fresh fill" "$(metric "$O" hydra_mirror_hits_total)" "$((ohits + 1))"
t_eq "verify of a good copy says ok" \
	"$(curl -s -X POST "$PA/api/v1/peer/verify/b/b.bin")" '{"path":"b/b.bin","status":"ok"}'
t_eq "a good copy stays" "$(sha "$T_DIR/pa/files/b/b.bin")" "$(sha "$OROOT/files/b/b.bin")"
t_eq "verify of a file not stored says absent" \
	"$(curl -s -X POST "$PA/api/v1/peer/verify/b/none.bin")" '{"path":"b/none.bin","status":"absent"}'
for bad in "..%2f..%2fetc%2fpasswd" "b/../../x" "%2e%2e/x" "b/%252e%252e/x" "" "/etc/passwd" "b/a%00.bin"; do
	t_eq "verify of bad path '$bad' is 400" \
		"$(curl -s --path-as-is -o /dev/null -w '%{http_code}' -X POST "$PA/api/v1/peer/verify/$bad")" 400
done
t_eq "verify on an origin is 404" \
	"$(curl -s -o /dev/null -w '%{http_code}' -X POST "$O/api/v1/peer/verify/b/b.bin")" 404
t_eq "GET on verify is 405" "$(curl -s -o /dev/null -w '%{http_code}' "$PA/api/v1/peer/verify/b/b.bin")" 405

# Rate limit: 10 at once per address, then one every 2 s; 20 in a row from
# 127.0.0.2 (done well within 2 s) leave at least 9 refused.
codes=$(for i in $(seq 1 20); do
	curl -s --interface 127.0.0.2 -o /dev/null -w '%{http_code}\n' -X POST \
		"$PA/api/v1/peer/verify/b/c.bin"
done | sort | uniq -c | tr -s ' ')
n200=$(echo "$codes" | awk '$2 == 200 { print $1 }')
n429=$(echo "$codes" | awk '$2 == 429 { print $1 }')
if [ "${n200:-0}" -ge 10 ] && [ "${n200:-0}" -le 11 ] && [ "${n429:-0}" -ge 9 ]; then
	t_ok "verify is rate-limited per address (${n200:-0} x 200, ${n429:-0} x 429)"
else
	t_fail "verify is rate-limited per address" "$codes"
fi
t_eq "another address still has its budget" \
	"$(curl -s -o /dev/null -w '%{http_code}' -X POST "$PA/api/v1/peer/verify/b/c.bin")" 200

# ---- coalescing and a kill -9 during a scrub: a slow scrubber (1 MB/s) holds
# the one hash of a 64 MB file for about a minute.
peer pb 1M 3600
PB=$P
curl -s -o /dev/null "$PB/api/v1/peer/files/b/big.bin"
curl -s -o /dev/null "$PB/api/v1/peer/files/b/d.bin"
end=$(( $(now_ms) + 20000 ))
while [ "$(metric "$PB" hydra_mirror_scrubbed_bytes_total)" -lt 1 ] && [ "$(now_ms)" -lt "$end" ]; do
	sleep 0.05
done
v0=$(metric "$PB" hydra_mirror_verifications_total)
scrubbing=$(curl -s "$PB/metrics" | awk '$1 == "hydra_mirror_scrubbed_bytes_total" { print $2 }')
t0=$(now_ms)
pids=""
for i in 1 2 3 4 5 6 7 8; do
	curl -s --interface 127.0.0.3 -o "$T_DIR/co$i" -X POST "$PB/api/v1/peer/verify/b/big.bin" &
	pids="$pids $!"
done
for p in $pids; do wait "$p"; done
t1=$(now_ms)
ok=$(cat "$T_DIR"/co? | grep -o '"status":"ok"' | wc -l)
t_eq "8 concurrent reports all answered ok" "$ok" 8
if [ "$scrubbing" -lt 64000000 ] && [ "$(metric "$PB" hydra_mirror_verifications_total)" -le "$((v0 + 1))" ]; then
	t_ok "8 concurrent reports were one hash (joined the scrub of big.bin)"
else
	t_fail "8 concurrent reports were one hash" "verifications $v0 -> $(metric "$PB" hydra_mirror_verifications_total), scrubbed $scrubbing"
fi
# At 1 MB/s the scrub alone needs 64 s: a waiter makes it go at full speed.
if [ $((t1 - t0)) -lt 12000 ]; then
	t_ok "a waiting report is not held to the scrub rate ($((t1 - t0)) ms)"
else
	t_fail "a waiting report is not held to the scrub rate" "$((t1 - t0)) ms"
fi
# kill -9 in the middle of a scrub: the scrubber is on big.bin or d.bin.
end=$(( $(now_ms) + 20000 ))
s0=$(metric "$PB" hydra_mirror_scrubbed_bytes_total)
while [ "$(metric "$PB" hydra_mirror_scrubbed_bytes_total)" -le "$s0" ] && [ "$(now_ms)" -lt "$end" ]; do
	sleep 0.05
done
kill -KILL "$(t_pid_of pb)"
t_stop pb
peer pb 0 3600
PB=$P
ohits=$(metric "$O" hydra_mirror_hits_total)
for f in big d; do
	curl -s -o "$T_DIR/pb.$f" "$PB/api/v1/peer/files/b/$f.bin"
	t_eq "after kill -9 during a scrub, $f.bin is intact" "$(sha "$T_DIR/pb.$f")" "$(sha "$OROOT/files/b/$f.bin")"
done
t_eq "after kill -9 during a scrub, nothing was filled again" "$(metric "$O" hydra_mirror_hits_total)" "$ohits"
t_stop pb

# ---- the scrubber at 8 MB/s over 5 MB: one pass takes 0.6 s.
pc0=$(now_ms)
peer pc 8M 3600
PC=$P
for f in a b c d e; do curl -s -o /dev/null "$PC/api/v1/peer/files/b/$f.bin"; done
corrupt "$T_DIR/pc/files/b/c.bin"
t0=$(now_ms)
# Two passes (the one under way, then the file's turn) of 5 MB at 8 MB/s,
# times 5, plus a second for the batch walks and the poll.
bound=$(( 5 * 2 * 5000000 * 1000 / 8000000 + 1000 ))
if t_wait_log "$T_DIR/pc.log" "b/c.bin corrupt: expected sha256" "$bound"; then
	t_ok "the scrubber evicted the corrupted file within $bound ms ($(( $(now_ms) - t0 )) ms)"
else
	t_fail "the scrubber evicted the corrupted file within $bound ms" "no eviction line"
fi
s1=$(metric "$PC" hydra_mirror_scrubbed_bytes_total)
t_eq "the scrubber evicted only the corrupted file" "$(metric "$PC" hydra_mirror_corrupt_evictions_total)" 1
for f in a b d e; do
	t_eq "the scrubber kept the correct $f.bin" "$(sha "$T_DIR/pc/files/b/$f.bin")" "$(sha "$OROOT/files/b/$f.bin")"
done
# The rate is a ceiling: never more than 8 MB per second since the start
# (plus one 256 KiB read ahead of its pause).
cap=$(( ( $(now_ms) - pc0 ) * 8388608 / 1000 + 262144 ))
if [ "$s1" -gt 0 ] && [ "$s1" -le "$cap" ]; then
	t_ok "the scrubber kept to its rate ($s1 bytes, at most $cap)"
else
	t_fail "the scrubber kept to its rate" "$s1 bytes, at most $cap"
fi
t_stop pc

# ---- verify_max_age_s 0: every hit is hashed as it is sent.
peer pd 0 0
PD=$P
for f in a b; do curl -s -o /dev/null "$PD/api/v1/peer/files/b/$f.bin"; done
curl -s -o "$T_DIR/pd.b" "$PD/api/v1/peer/files/b/b.bin"
t_eq "a verified hit has the right bytes" "$(sha "$T_DIR/pd.b")" "$(sha "$OROOT/files/b/b.bin")"
curl -s -r 100-199 -o "$T_DIR/pd.r" "$PD/api/v1/peer/files/b/b.bin"
t_eq "a verified range has the right bytes" "$(sha "$T_DIR/pd.r")" \
	"$(tail -c +101 "$OROOT/files/b/b.bin" | head -c 100 | sha256sum | cut -d' ' -f1)"
corrupt "$T_DIR/pd/files/b/a.bin"
curl -s -o "$T_DIR/pd.a" "$PD/api/v1/peer/files/b/a.bin"
rc=$?
size=$(stat -c %s "$T_DIR/pd.a" 2>/dev/null || echo 0)
if [ "$rc" -ne 0 ] && [ "$size" -lt 1000000 ]; then
	t_ok "a corrupted hit is cut before its last byte (curl $rc, $size bytes)"
else
	t_fail "a corrupted hit is cut before its last byte" "curl $rc, $size bytes"
fi
t_eq "the corrupted hit was evicted" "$(ls "$T_DIR/pd/files/b/a.bin" 2>/dev/null)" ""
curl -s -o "$T_DIR/pd.a2" "$PD/api/v1/peer/files/b/a.bin"
t_eq "the next GET is a fill with the right bytes" "$(sha "$T_DIR/pd.a2")" "$(sha "$OROOT/files/b/a.bin")"
t_stop pd
t_done
