#!/bin/bash
# Torture: a hydra-mirror peer under load (wrk when installed, and a curl
# loop that checks every whole 200 it gets) while its fills are killed (the
# peer SIGKILLed and restarted on its port and store) and its origin flaps
# (stopped, TERM or KILL, and started again). The peer's store holds a third
# of the files, so evictions keep fills going. Afterwards every file in the
# peer's store verifies against the origin's digest, no temp file outlives a
# restart, the store is within max_bytes, and the peer serves every file with
# the right bytes, the origin's digest and an ETag of its own.
. "$(dirname "$0")/../lib.sh"
. "$T_ROOT/tests/torture/lib/torture.sh"
tt_seed

M="$BIN/hydra-mirror"
ACTIONS=${TORTURE_ACTIONS:-40}
BUDGET_S=150
OROOT="$T_DIR/origin"
PROOT="$T_DIR/peer"
MAX_BYTES=$((5 * 1024 * 1024))
mkdir -p "$OROOT/files/b"
i=0
while [ $i -lt 24 ]; do
	head -c $((32 * 1024 + i * 64 * 1024)) /dev/urandom > "$OROOT/files/b/f$i.bin"
	i=$((i + 1))
done
(cd "$OROOT/files" && find . -type f | sed 's|^\./||' | sort |
	while IFS= read -r p; do printf '%s %s\n' "$(tt_sha "$p")" "$p"; done) > "$T_DIR/digests"
NFILES=$(wc -l < "$T_DIR/digests")

OPORT=$(t_free_port)
PPORT=$(t_free_port)
O="http://127.0.0.1:$OPORT"
PU="http://127.0.0.1:$PPORT/api/v1/peer/files"
NO=0
NP=0

# start_origin / start_peer: a new incarnation on the same port and root,
# ready when its log says so (10 s at most). Named origin-N and peer-N.
start_origin() {
	NO=$((NO + 1))
	t_start "origin-$NO" "$T_DIR/origin-$NO.log" "$M" --listen "127.0.0.1:$OPORT" --root "$OROOT" \
		--max-egress-bytes-per-s 8M
	ORIGIN_PID=$T_LAST_PID
	t_wait_log "$T_DIR/origin-$NO.log" "hydra-mirror listening on" 10000 ||
		{ t_fail "origin-$NO starts on its port" "$(tail -n 3 "$T_DIR/origin-$NO.log")"; return 1; }
}
start_peer() {
	NP=$((NP + 1))
	t_start "peer-$NP" "$T_DIR/peer-$NP.log" "$M" --mode peer --listen "127.0.0.1:$PPORT" \
		--root "$PROOT" --origin-url "$O" --district bxl1 --max-bytes $MAX_BYTES
	PEER_PID=$T_LAST_PID
	t_wait_log "$T_DIR/peer-$NP.log" "hydra-mirror listening on" 10000 ||
		{ t_fail "peer-$NP starts on its port and store" "$(tail -n 3 "$T_DIR/peer-$NP.log")"; return 1; }
}
# kill_peer: SIGKILL, then t_stop reaps it and checks its log.
kill_peer() {
	kill -KILL "$PEER_PID" 2>/dev/null
	t_stop "peer-$NP"
}
stop_origin() {
	tt_rand 2
	[ $TT_R = 0 ] && kill -KILL "$ORIGIN_PID" 2>/dev/null
	t_stop "origin-$NO"
}

# checker: GETs random files through the peer until $T_DIR/stop exists (at
# most 20000), and writes one line per whole 200: "good PATH" or "bad PATH".
# A transfer cut by a kill is no verdict (curl fails); a whole body that is
# wrong is one.
checker() {
	_n=0
	while [ ! -e "$T_DIR/stop" ] && [ $_n -lt 20000 ]; do
		_line=$(sed -n "$(( (RANDOM % NFILES) + 1 ))p" "$T_DIR/digests")
		_want=${_line%% *} _p=${_line#* }
		_code=$(curl -s -o "$T_DIR/checker.body" -w '%{http_code}' --max-time 20 "$PU/$_p")
		_rc=$?
		if [ $_rc -eq 0 ] && [ "$_code" = 200 ]; then
			if [ "$(tt_sha "$T_DIR/checker.body")" = "$_want" ]; then
				echo "good $_p"
			else
				echo "bad $_p $(stat -c %s "$T_DIR/checker.body") bytes"
			fi
		fi
		_n=$((_n + 1))
	done
}

start_origin || t_done
start_peer || t_done

if command -v wrk > /dev/null; then
	{
		echo "math.randomseed($TT_SEED)"
		echo "local paths = {"
		while read -r _s p; do echo "  \"/api/v1/peer/files/$p\","; done < "$T_DIR/digests"
		echo "}"
		echo 'request = function() return wrk.format("GET", paths[math.random(#paths)]) end'
	} > "$T_DIR/paths.lua"
	t_start wrk "$T_DIR/wrk.log" wrk -t1 -c2 -d$((BUDGET_S + 30))s --timeout 10s \
		-s "$T_DIR/paths.lua" "http://127.0.0.1:$PPORT"
else
	t_skip "mirror: load from wrk" "wrk is not installed (the curl loop still runs)"
fi
checker > "$T_DIR/checker.log" 2>&1 &
echo "checker $! $T_DIR/checker.log" >> "$T_PROCS"

# The chaos: ACTIONS actions with random pauses between them.
start=$(date +%s)
a=0 peer_kills=0 origin_flaps=0 broken=0
while [ $a -lt "$ACTIONS" ]; do
	if tt_over_budget "$start" $BUDGET_S; then
		t_fail "mirror: $ACTIONS actions within ${BUDGET_S}s" "only $a done (seed $TT_SEED)"
		break
	fi
	tt_sleep_ms 100
	tt_sleep_rand 600
	tt_rand 3
	case $TT_R in
	0)
		kill_peer
		start_peer || { broken=1; break; }
		peer_kills=$((peer_kills + 1)) ;;
	1)
		stop_origin
		tt_sleep_rand 800
		start_origin || { broken=1; break; }
		origin_flaps=$((origin_flaps + 1)) ;;
	*)
		stop_origin
		tt_sleep_rand 400
		kill_peer
		start_peer || { broken=1; break; }
		tt_sleep_rand 400
		start_origin || { broken=1; break; }
		peer_kills=$((peer_kills + 1))
		origin_flaps=$((origin_flaps + 1)) ;;
	esac
	a=$((a + 1))
done
touch "$T_DIR/stop"
# wrk prints its summary when SIGINT stops it (5 s at most, then t_stop).
WRK_PID=$(t_pid_of wrk)
if [ -n "$WRK_PID" ]; then
	kill -INT "$WRK_PID" 2>/dev/null
	i=0
	while kill -0 "$WRK_PID" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
	t_stop wrk
fi
t_stop checker
echo "# $a actions: $peer_kills peer kills, $origin_flaps origin flaps, $(($(date +%s) - start)) s"
[ -f "$T_DIR/wrk.log" ] && sed -n 's/^/# wrk: /p' "$T_DIR/wrk.log" | grep -E 'requests in|Socket errors|Non-2xx'
[ $broken = 1 ] && t_done
t_eq "mirror: $ACTIONS actions of chaos" "$a" "$ACTIONS"

good=$(grep -c '^good ' "$T_DIR/checker.log")
echo "# the curl loop got $good whole and correct 200s"
t_eq "mirror: no whole 200 with wrong bytes under chaos" "$(grep '^bad ' "$T_DIR/checker.log" | head -n 3)" ""
if [ "$good" -gt 0 ]; then t_ok "mirror: correct 200s under chaos ($good)"
else t_fail "mirror: correct 200s under chaos" "none (seed $TT_SEED)"; fi

# The store as the last SIGKILL left it, before a restart tidies anything.
kill_peer
bad_entries=""
n_entries=0
while IFS= read -r p; do
	n_entries=$((n_entries + 1))
	want=$(awk -v p="$p" '{ s = $1; sub(/^[^ ]* /, ""); if ($0 == p) print s }' "$T_DIR/digests")
	[ "$(tt_sha "$PROOT/files/$p")" = "$want" ] || bad_entries="$bad_entries $p"
done < <(cd "$PROOT/files" && find . ! -type d | sed 's|^\./||')
echo "# $n_entries entries in the store after the last kill"
t_eq "mirror: every store entry verifies against the origin's digest" "$bad_entries" ""

start_peer || t_done
t_eq "mirror: no temp file outlives a restart" "$(ls -A "$PROOT/tmp" 2>/dev/null)" ""
# Bytes, digest header and ETag are told apart: a whole body with the wrong
# bytes is corruption; a missing digest or a shared ETag is lost knowledge.
wrong="" nodigest="" badetag=""
while read -r want p; do
	code=$(curl -s -D "$T_DIR/final.h" -o "$T_DIR/final.body" -w '%{http_code}' --max-time 30 "$PU/$p")
	crc=$?
	got=$(tt_sha "$T_DIR/final.body")
	tr -d '\r' < "$T_DIR/final.h" > "$T_DIR/final.hh"
	hdr=$(awk 'tolower($1) == "x-file-sha256:" { print $2 }' "$T_DIR/final.hh")
	etag=$(awk 'tolower($1) == "etag:" { print $2 }' "$T_DIR/final.hh")
	if [ $crc -ne 0 ] || [ "$code" != 200 ] || [ "$got" != "$want" ]; then
		wrong="$wrong $p (curl $crc, HTTP $code, $(stat -c %s "$T_DIR/final.body") bytes)"
	fi
	[ "$hdr" = "$want" ] || nodigest="$nodigest $p (X-File-SHA256 '$hdr')"
	[ "$etag" = '""' ] && badetag="$badetag $p"
done < "$T_DIR/digests"
t_eq "mirror: after the chaos every file served whole with its bytes" "$wrong" ""
# The origin sent a digest with every file: the peer's entries keep it.
t_eq "mirror: after the chaos every file served with the origin's digest" "$nodigest" ""
# One strong ETag for different bytes would let If-Range splice them.
t_eq "mirror: no file served with the empty ETag \"\"" "$badetag" ""
# The same loss made certain: a fill, then SIGKILL before the peer's index
# is next written, then a restart. Passes whatever the timing when entries
# keep their digest across a crash.
fresh=""
while read -r want p; do
	[ -e "$PROOT/files/$p" ] || { fresh=$p; fresh_sha=$want; break; }
done < "$T_DIR/digests"
if [ -z "$fresh" ]; then
	t_skip "mirror: a SIGKILL right after a fill" "every file is in the store"
else
	curl -s -o /dev/null --max-time 30 "$PU/$fresh"
	i=0
	while [ ! -e "$PROOT/files/$fresh" ] && [ $i -lt 200 ]; do sleep 0.025; i=$((i + 1)); done
	kill_peer
	start_peer || t_done
	curl -s -D "$T_DIR/fresh.h" -o "$T_DIR/fresh.body" --max-time 30 "$PU/$fresh"
	t_eq "mirror: a SIGKILL right after a fill: bytes" "$(tt_sha "$T_DIR/fresh.body")" "$fresh_sha"
	t_eq "mirror: a SIGKILL right after a fill: the origin's digest kept" \
		"$(tr -d '\r' < "$T_DIR/fresh.h" | awk 'tolower($1) == "x-file-sha256:" { print $2 }')" "$fresh_sha"
	# An If-Range naming no known representation gets the whole file.
	t_eq "mirror: a SIGKILL right after a fill: If-Range \"\" is no match (200, not 206)" \
		"$(curl -s -o /dev/null -w '%{http_code}' -H 'Range: bytes=0-0' -H 'If-Range: ""' \
			--max-time 30 "$PU/$fresh")" 200
fi
store=$(find "$PROOT/files" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
if [ "$store" -le $MAX_BYTES ]; then t_ok "mirror: store within max_bytes ($store of $MAX_BYTES)"
else t_fail "mirror: store within max_bytes" "$store of $MAX_BYTES bytes (seed $TT_SEED)"; fi
t_done
