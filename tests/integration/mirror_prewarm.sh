#!/bin/bash
# Pre-warm on publish (issue 17): a PUT to a real origin reaches a following
# peer, verified, before any client asks; a body install through the peer is
# then a hit with no origin transfer; prefixes filter; a DELETE on the origin
# removes the file from the peer; a peer stopped mid-batch resumes from its
# saved position; a new journal id (the origin's journal lost) makes the
# peer list the origin and catch up, as does a position that fell off the
# journal; a client mid-pre-warm joins its fill;
# POST /api/v1/peer/prewarm fills now; a full peer skips rather than evict
# a file read within prewarm.protect_s, and evicts one unread for longer.
. "$(dirname "$0")/../lib.sh"

M="$BIN/hydra-mirror"
TOKEN=prewarm-test-token
printf '%s\n' "$TOKEN" > "$T_DIR/token"
chmod 600 "$T_DIR/token"
OROOT="$T_DIR/origin"
PROOT="$T_DIR/peer"
mkdir -p "$OROOT/files"
for f in app big1 big2 big3 other fresh old; do head -c 2000000 /dev/urandom > "$T_DIR/$f.bin"; done
sha() { sha256sum < "$1" | cut -d' ' -f1; }
metric() {
	curl -s "$1/metrics" | awk -v n="$2" '$1 == n { v = $2 } END { print v + 0 }'
}
put() {  # put LOCAL PATH
	curl -s -o /dev/null -w '%{http_code}' -X PUT -H "Authorization: Bearer $TOKEN" \
		--data-binary "@$1" "$O/api/v1/peer/files/$2"
}
# wait_file FILE MS: polls until FILE exists.
wait_file() {
	_end=$(( $(date +%s%N) / 1000000 + $2 ))
	while [ ! -e "$1" ]; do
		[ $(( $(date +%s%N) / 1000000 )) -gt "$_end" ] && return 1
		sleep 0.02
	done
}

# The origin sends at 1 MB/s: a 2 MB file takes about 2 s to fill, long
# enough to stop a peer in the middle of a batch.
OPORT=$(t_free_port)
start_origin() {
	t_start origin "$T_DIR/origin.log" "$M" --listen "127.0.0.1:$OPORT" --root "$OROOT" \
		--admin-token-file "$T_DIR/token" --max-egress-bytes-per-s 1M
	t_wait_log "$T_DIR/origin.log" "listening on" 10000 || { t_fail "origin starts" "see log"; t_done; }
}
start_origin
O="http://127.0.0.1:$OPORT"

WAIT_S=2
PPORT=$(t_free_port)
cat > "$T_DIR/peer.yaml" <<YAML
listen: "127.0.0.1:$PPORT"
root: $PROOT
mode: peer
origin_url: "$O"
district: bxl1
admin_token_file: $T_DIR/token
prewarm:
  enabled: true
  prefixes: [rel/]
  concurrency: 1
  wait_s: $WAIT_S
YAML
start_peer() {
	t_start peer "$T_DIR/peer.log" "$M" --config "$T_DIR/peer.yaml"
	t_wait_log "$T_DIR/peer.log" "listening on 127.0.0.1:$PPORT (peer)" 10000 ||
		{ t_fail "peer starts" "see log"; t_done; }
}
start_peer
P="http://127.0.0.1:$PPORT"
# A publication reaches the peer within one long-poll cycle (the origin
# answers at once when it lands, at worst the peer was between two polls)
# plus the 2 s fill; the bound is five times that.
BOUND_MS=$(( 5 * (WAIT_S * 1000 + 2000) ))

if t_wait_log "$T_DIR/peer.log" "prewarm: following journal" "$BOUND_MS"; then
	t_ok "a new peer follows the origin's journal from its end"
else
	t_fail "a new peer follows the origin's journal" "$(tail -n 3 "$T_DIR/peer.log")"; t_done
fi

# Publish: the peer holds it, verified, before any client asks.
t_eq "PUT rel/app.bin" "$(put "$T_DIR/app.bin" rel/app.bin)" 201
t_eq "PUT other/x.bin (outside the prefixes)" "$(put "$T_DIR/other.bin" other/x.bin)" 201
if wait_file "$PROOT/files/rel/app.bin" "$BOUND_MS" &&
	t_wait_log "$T_DIR/peer.log" "prewarmed rel/app.bin" "$BOUND_MS"; then
	t_ok "published file pre-warmed within ${BOUND_MS} ms"
else
	t_fail "published file pre-warmed" "$(tail -n 5 "$T_DIR/peer.log")"
fi
t_eq "pre-warmed bytes are the published ones" "$(sha "$PROOT/files/rel/app.bin")" \
	"$(sha "$T_DIR/app.bin")"
t_grep "pre-warm fill verified the origin's digest" "$T_DIR/peer.log" \
	"filled rel/app.bin: 2000000 bytes sha256 $(sha "$T_DIR/app.bin")"
t_eq "no client asked the peer yet" "$(metric "$P" hydra_mirror_misses_total)" 0
t_eq "peer counts one pre-warm fill" "$(metric "$P" hydra_mirror_prewarm_fills_total)" 1
if [ -e "$PROOT/files/other/x.bin" ]; then
	t_fail "a path outside prewarm.prefixes is not pre-warmed" "it is in the store"
else
	t_ok "a path outside prewarm.prefixes is not pre-warmed"
fi
t_grep "changes lists both publications" \
	<(curl -s "$O/api/v1/peer/changes?since=0") '"op":"put","path":"other/x.bin"'

# A body install through the district is a hit, with no origin transfer.
obytes=$(metric "$O" hydra_mirror_bytes_served_total)
cat > "$T_DIR/agent.yaml" <<YAML
node_id: node-prewarm
state_dir: $T_DIR/state
log_file: $T_DIR/hydrabody.log
district: {static: bxl1}
mirror:
  origin_host: "127.0.0.1"
  url_pattern: "http://127.0.0.1:$PPORT"
YAML
"$BIN/hydra-agent" --config "$T_DIR/agent.yaml" install \
	--url "$O/api/v1/peer/files/rel/app.bin" --out "$T_DIR/installed.bin" \
	> "$T_DIR/install.out" 2> "$T_DIR/install.err"
t_eq "install through the district exits 0" "$?" 0
t_eq "installed file verified" "$(sha "$T_DIR/installed.bin" 2>/dev/null)" "$(sha "$T_DIR/app.bin")"
t_grep "install came from the district" "$T_DIR/hydrabody.log" "127.0.0.1:$PPORT"
t_eq "install was a hit on the peer" "$(metric "$P" hydra_mirror_misses_total)" 0
t_eq "install sent no body bytes from the origin" \
	"$(metric "$O" hydra_mirror_bytes_served_total)" "$obytes"

# The same path published again with new bytes: the peer's copy is out of
# date (the journal's digest differs) and is replaced.
head -c 1500000 /dev/urandom > "$T_DIR/app2.bin"
t_eq "PUT rel/app.bin again, new bytes" "$(put "$T_DIR/app2.bin" rel/app.bin)" 201
if t_wait_log "$T_DIR/peer.log" "prewarm: rel/app.bin changed on the origin; filling it again" \
	"$BOUND_MS" && t_wait_log "$T_DIR/peer.log" "prewarmed rel/app.bin (1500000 bytes)" \
	"$BOUND_MS"; then
	t_ok "a republished path is filled again"
else
	t_fail "a republished path is filled again" "$(tail -n 5 "$T_DIR/peer.log")"
fi
t_eq "the peer holds the new bytes" "$(sha "$PROOT/files/rel/app.bin" 2>/dev/null)" \
	"$(sha "$T_DIR/app2.bin")"

# DELETE on the origin removes the file from the peer.
t_eq "DELETE rel/app.bin" "$(curl -s -o /dev/null -w '%{http_code}' -X DELETE \
	-H "Authorization: Bearer $TOKEN" "$O/api/v1/peer/files/rel/app.bin")" 204
if t_wait_log "$T_DIR/peer.log" "prewarm: deleted rel/app.bin" "$BOUND_MS" &&
	[ ! -e "$PROOT/files/rel/app.bin" ]; then
	t_ok "a deletion on the origin is applied to the peer"
else
	t_fail "a deletion on the origin is applied to the peer" "$(tail -n 3 "$T_DIR/peer.log")"
fi

# Restart mid-batch: three publications, one fill at a time; the peer is
# stopped after the first and resumes from its saved position.
pos0=$(awk '{ print $4 }' "$PROOT/meta/prewarm")
for f in big1 big2 big3; do put "$T_DIR/$f.bin" "rel/$f.bin" > /dev/null; done
last=$(curl -s "$O/api/v1/health" | sed -n 's/.*"last_seq":\([0-9]*\).*/\1/p')
t_wait_log "$T_DIR/peer.log" "prewarmed rel/big1.bin" "$BOUND_MS" ||
	t_fail "first of the batch pre-warmed" "$(tail -n 3 "$T_DIR/peer.log")"
t_stop peer
pos1=$(awk '{ print $4 }' "$PROOT/meta/prewarm")
if [ "$pos1" -lt "$last" ]; then
	t_ok "position not past the batch while it was filling ($pos0 -> $pos1 < $last)"
else
	t_fail "position not past an unfinished batch" "$pos1 >= $last"
fi
mv "$T_DIR/peer.log" "$T_DIR/peer1.log"
start_peer
if wait_file "$PROOT/files/rel/big3.bin" "$BOUND_MS" &&
	t_wait_log "$T_DIR/peer.log" "prewarmed rel/big3.bin" "$BOUND_MS"; then
	t_ok "restarted peer finished the batch"
else
	t_fail "restarted peer finished the batch" "$(tail -n 5 "$T_DIR/peer.log")"
fi
for f in big1 big2 big3; do
	t_eq "rel/$f.bin verified after the restart" "$(sha "$PROOT/files/rel/$f.bin" 2>/dev/null)" \
		"$(sha "$T_DIR/$f.bin")"
done
t_nogrep "restart resumed, no resync" "$T_DIR/peer.log" "listing the origin"
t_nogrep "restart resumed, not from the end" "$T_DIR/peer.log" "following journal"
end=$(( $(date +%s%N) / 1000000 + BOUND_MS ))
while [ "$(awk '{ print $4 }' "$PROOT/meta/prewarm")" -lt "$last" ] &&
	[ $(( $(date +%s%N) / 1000000 )) -lt "$end" ]; do sleep 0.05; done
t_eq "position saved once the batch is done" "$(awk '{ print $4 }' "$PROOT/meta/prewarm")" "$last"

# A new journal id: the origin lost its journal; a file published meanwhile
# and one published after both reach the peer through the list resync. Two
# files go from the origin with no journal entry: rel/gone.bin, which the
# resync deletes from the peer, and other/x.bin, which a client had the peer
# fill and which stays (it is outside the peer's prefixes).
t_eq "PUT rel/gone.bin" "$(put "$T_DIR/old.bin" rel/gone.bin)" 201
wait_file "$PROOT/files/rel/gone.bin" "$BOUND_MS" &&
	t_wait_log "$T_DIR/peer.log" "prewarmed rel/gone.bin" "$BOUND_MS" ||
	t_fail "rel/gone.bin pre-warmed" "$(tail -n 3 "$T_DIR/peer.log")"
t_eq "a client has the peer fill other/x.bin" \
	"$(curl -s -o /dev/null -w '%{http_code}' "$P/api/v1/peer/files/other/x.bin")" 200
t_stop origin
rm -f "$OROOT/meta/journal" "$OROOT/files/rel/gone.bin" "$OROOT/files/other/x.bin"
cp "$T_DIR/old.bin" "$OROOT/files/rel/old.bin"
mv "$T_DIR/origin.log" "$T_DIR/origin1.log"
start_origin
t_eq "PUT rel/fresh.bin" "$(put "$T_DIR/fresh.bin" rel/fresh.bin)" 201
if t_wait_log "$T_DIR/peer.log" "listing the origin" "$BOUND_MS" &&
	wait_file "$PROOT/files/rel/old.bin" "$BOUND_MS" &&
	wait_file "$PROOT/files/rel/fresh.bin" "$BOUND_MS"; then
	t_ok "a journal id change triggers the list resync"
else
	t_fail "a journal id change triggers the list resync" "$(tail -n 5 "$T_DIR/peer.log")"
fi
t_eq "resync filled the file copied in by hand, verified" \
	"$(sha "$PROOT/files/rel/old.bin" 2>/dev/null)" "$(sha "$T_DIR/old.bin")"
if t_wait_log "$T_DIR/peer.log" "prewarm: deleted rel/gone.bin (not on the origin)" \
	"$BOUND_MS" && [ ! -e "$PROOT/files/rel/gone.bin" ]; then
	t_ok "resync deleted a file gone from the origin without a journal entry"
else
	t_fail "resync deleted a file gone from the origin" "$(tail -n 5 "$T_DIR/peer.log")"
fi
t_wait_log "$T_DIR/peer.log" ", deleted 1; following journal" "$BOUND_MS" ||
	t_fail "resync reports one deletion" "$(grep resynced "$T_DIR/peer.log")"
for f in big1 big2 big3; do
	t_eq "resync kept rel/$f.bin" "$(sha "$PROOT/files/rel/$f.bin" 2>/dev/null)" \
		"$(sha "$T_DIR/$f.bin")"
done
t_eq "resync kept other/x.bin, outside the prefixes" \
	"$(sha "$PROOT/files/other/x.bin" 2>/dev/null)" "$(sha "$T_DIR/other.bin")"
t_eq "peer counted the resync's deletion (since its restart)" \
	"$(metric "$P" hydra_mirror_prewarm_deleted_total)" 1
t_eq "peer counted one resync" "$(metric "$P" hydra_mirror_prewarm_resyncs_total)" 1
t_grep "origin list names the files" <(curl -s "$O/api/v1/peer/list?prefix=rel/") \
	'"path":"rel/old.bin","size":2000000'

# The same journal whose older entries are gone (the peer's position fell
# off it): the peer lists again rather than skip what it missed.
t_stop origin
head -n 1 "$OROOT/meta/journal" > "$T_DIR/journal.new"
echo "500 1764688000 P 2000000 $(sha "$T_DIR/fresh.bin") rel/fresh.bin" >> "$T_DIR/journal.new"
mv "$T_DIR/journal.new" "$OROOT/meta/journal"
mv "$T_DIR/origin.log" "$T_DIR/origin2.log"
start_origin
t_grep "origin kept the journal id" <(curl -s "$O/api/v1/health") "\"id\":\"$(head -n 1 \
	"$OROOT/meta/journal" | cut -d' ' -f3)\""
if t_wait_log "$T_DIR/peer.log" "at 500 does not follow position" "$BOUND_MS"; then
	t_ok "a position that fell off the journal triggers the list resync"
else
	t_fail "a position that fell off the journal triggers the list resync" \
		"$(tail -n 3 "$T_DIR/peer.log")"
fi
t_eq "peer counted two resyncs" "$(metric "$P" hydra_mirror_prewarm_resyncs_total)" 2

# A client asking while the pre-warm fills joins that fill: one transfer.
head -c 2000000 /dev/urandom > "$T_DIR/join.bin"
fills0=$(metric "$P" hydra_mirror_origin_fills_total)
sent0=$(metric "$O" hydra_mirror_bytes_served_total)
t_eq "PUT rel/join.bin" "$(put "$T_DIR/join.bin" rel/join.bin)" 201
t_wait_log "$T_DIR/peer.log" "fill rel/join.bin from" "$BOUND_MS" ||
	t_fail "pre-warm fill of rel/join.bin starts" "$(tail -n 3 "$T_DIR/peer.log")"
curl -s -o "$T_DIR/join.out" "$P/api/v1/peer/files/rel/join.bin"
t_eq "client mid-pre-warm gets the file" "$(sha "$T_DIR/join.out")" "$(sha "$T_DIR/join.bin")"
t_wait_log "$T_DIR/peer.log" "prewarmed rel/join.bin" "$BOUND_MS" ||
	t_fail "rel/join.bin pre-warmed" "$(tail -n 3 "$T_DIR/peer.log")"
t_eq "client joined the pre-warm fill (one fill)" \
	"$(( $(metric "$P" hydra_mirror_origin_fills_total) - fills0 ))" 1
t_eq "the origin sent the file once" \
	"$(( $(metric "$O" hydra_mirror_bytes_served_total) - sent0 ))" 2000000

# POST /api/v1/peer/prewarm: admin token, checked paths, fills now.
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST --data '["other/x.bin"]' \
	"$P/api/v1/peer/prewarm")
t_eq "POST prewarm without the token is refused" "$code" 401
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $TOKEN" \
	--data '["../etc/passwd"]' "$P/api/v1/peer/prewarm")
t_eq "POST prewarm with a path leaving the store is refused" "$code" 400
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $TOKEN" \
	--data '["other/x.bin"]' "$P/api/v1/peer/prewarm")
t_eq "POST prewarm accepted" "$code" 202
if wait_file "$PROOT/files/other/x.bin" "$BOUND_MS"; then
	t_eq "POST prewarm filled the path, verified" "$(sha "$PROOT/files/other/x.bin")" \
		"$(sha "$T_DIR/other.bin")"
else
	t_fail "POST prewarm filled the path" "$(tail -n 3 "$T_DIR/peer.log")"
fi
t_grep "peer health reports the pre-warm" <(curl -s "$P/api/v1/health") '"prewarm":{"following":true'

# start_full NAME MAX_BYTES [YAML LINES]: a pre-warming peer with a small
# store, following every path; its URL in $FULL.
start_full() {
	_port=$(t_free_port)
	{
		printf 'listen: "127.0.0.1:%s"\nroot: %s\nmode: peer\norigin_url: "%s"\n' \
			"$_port" "$T_DIR/$1" "$O"
		printf 'max_bytes: %s\n%s\nprewarm:\n  enabled: true\n  wait_s: %s\n' \
			"$2" "${3:-}" "$WAIT_S"
		if [ -n "${4:-}" ]; then printf '  %s\n' "$4"; fi
	} > "$T_DIR/$1.yaml"
	t_start "$1" "$T_DIR/$1.log" "$M" --config "$T_DIR/$1.yaml"
	t_wait_log "$T_DIR/$1.log" "prewarm: following journal" "$BOUND_MS" ||
		{ t_fail "$1 peer follows" "$(tail -n 3 "$T_DIR/$1.log")"; t_done; }
	FULL="http://127.0.0.1:$_port"
}

# A full peer skips a pre-warm rather than evict a file a client read
# (within prewarm.protect_s, an hour by default).
start_full small 3M
Q=$FULL
curl -s -o /dev/null "$Q/api/v1/peer/files/rel/big1.bin"
t_eq "PUT rel/space.bin" "$(put "$T_DIR/app.bin" rel/space.bin)" 201
if t_wait_log "$T_DIR/small.log" "prewarm rel/space.bin skipped" "$BOUND_MS"; then
	t_ok "a pre-warm that does not fit without evicting is skipped"
else
	t_fail "a pre-warm that does not fit is skipped" "$(tail -n 3 "$T_DIR/small.log")"
fi
t_eq "skipped for space is counted" "$(metric "$Q" hydra_mirror_prewarm_skipped_space_total)" 1
t_eq "the file a client read stays" "$(sha "$T_DIR/small/files/rel/big1.bin" 2>/dev/null)" \
	"$(sha "$T_DIR/big1.bin")"
t_eq "nothing was evicted" "$(metric "$Q" hydra_mirror_evictions_total)" 0
t_stop small

# prewarm.protect_s: a full peer pre-warms by evicting a file nobody read
# for longer than protect_s, never one read within it. big2 is filled and
# left unread for more than PROTECT_S; big1 is read just before the PUT
# (the pre-warm's reservation follows the PUT by one journal answer,
# well under PROTECT_S / 5 on loopback). The scrubber is off: a file it is
# hashing is in use, and a pre-warm never evicts a file in use.
PROTECT_S=3
start_full protect 5M "scrub_bytes_per_s: 0" "protect_s: $PROTECT_S"
R=$FULL
curl -s -o /dev/null "$R/api/v1/peer/files/rel/big2.bin"
curl -s -o /dev/null "$R/api/v1/peer/files/rel/big1.bin"
sleep $((PROTECT_S + 1))
curl -s -o "$T_DIR/big1.out" "$R/api/v1/peer/files/rel/big1.bin"
t_eq "big1 read again (a hit)" "$(metric "$R" hydra_mirror_hits_total)" 1
head -c 2000000 /dev/urandom > "$T_DIR/evict.bin"
t_eq "PUT rel/evict.bin" "$(put "$T_DIR/evict.bin" rel/evict.bin)" 201
if t_wait_log "$T_DIR/protect.log" "prewarmed rel/evict.bin" "$BOUND_MS"; then
	t_ok "a full peer pre-warms by evicting"
else
	t_fail "a full peer pre-warms by evicting" "$(tail -n 3 "$T_DIR/protect.log")"
fi
t_eq "pre-warmed file verified" "$(sha "$T_DIR/protect/files/rel/evict.bin" 2>/dev/null)" \
	"$(sha "$T_DIR/evict.bin")"
t_grep "the file unread for longer than protect_s was evicted" "$T_DIR/protect.log" \
	"evicted rel/big2.bin (2000000 bytes)"
t_eq "the file read within protect_s stays" \
	"$(sha "$T_DIR/protect/files/rel/big1.bin" 2>/dev/null)" "$(sha "$T_DIR/big1.bin")"
t_eq "one eviction" "$(metric "$R" hydra_mirror_evictions_total)" 1
# Now only files read or stored within protect_s could make room: big1 is
# read again (its fill of evict.bin took seconds), evict.bin was just stored.
curl -s -o /dev/null "$R/api/v1/peer/files/rel/big1.bin"
t_eq "PUT rel/evict2.bin" "$(put "$T_DIR/fresh.bin" rel/evict2.bin)" 201
if t_wait_log "$T_DIR/protect.log" "prewarm rel/evict2.bin skipped: no room" "$BOUND_MS"; then
	t_ok "a pre-warm that could fit only by evicting recent files is skipped"
else
	t_fail "a pre-warm that could fit only by evicting recent files is skipped" \
		"$(tail -n 3 "$T_DIR/protect.log")"
fi
t_eq "still one eviction" "$(metric "$R" hydra_mirror_evictions_total)" 1
t_eq "the file read within protect_s still stays" \
	"$(sha "$T_DIR/protect/files/rel/big1.bin" 2>/dev/null)" "$(sha "$T_DIR/big1.bin")"
t_stop protect

t_stop peer
t_stop origin
t_done
