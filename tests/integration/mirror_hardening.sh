#!/bin/bash
# hydra-mirror against a hostile tester (issue 19, mirror items): origin
# credentials never shown, admin token file errors are configuration errors,
# a peer whose disk cannot hold a file streams it through without spooling,
# and slow or idle clients do not lock a normal client out.
. "$(dirname "$0")/../lib.sh"

M="$BIN/hydra-mirror"
OROOT="$T_DIR/origin"
mkdir -p "$OROOT/files/b"
head -c 100000 /dev/urandom > "$OROOT/files/b/a.bin"
sha() { sha256sum < "$1" | cut -d' ' -f1; }

# ---------------------------------------------------------------- item 9
# A missing or oversized token file is a configuration error (78), not a
# missing service (69) or bad data (65).
PORT=$(t_free_port)
"$M" --listen "127.0.0.1:$PORT" --root "$T_DIR/o9" --admin-token-file "$T_DIR/none" \
	> "$T_DIR/t9a.log" 2>&1
t_eq "missing admin token file exits 78" "$?" "78"
head -c 100000 /dev/urandom | base64 > "$T_DIR/huge-token"
"$M" --listen "127.0.0.1:$PORT" --root "$T_DIR/o9" --admin-token-file "$T_DIR/huge-token" \
	> "$T_DIR/t9b.log" 2>&1
t_eq "oversized admin token file exits 78" "$?" "78"
printf 'tok-%s\n' "$RANDOM$RANDOM" > "$T_DIR/open-token"
chmod 644 "$T_DIR/open-token"
t_start o9 "$T_DIR/o9.log" "$M" --listen "127.0.0.1:$PORT" --root "$T_DIR/o9" \
	--admin-token-file "$T_DIR/open-token"
if t_wait_log "$T_DIR/o9.log" "listening on" 10000; then
	t_ok "a token file others can read is accepted"
else
	t_fail "a token file others can read is accepted" "see $T_DIR/o9.log"
fi
t_grep "with a warning naming its mode" "$T_DIR/o9.log" "has mode 0644"
t_stop o9

# ---------------------------------------------------------------- item 5
OPORT=$(t_free_port)
t_start origin "$T_DIR/origin.log" "$M" --listen "127.0.0.1:$OPORT" --root "$OROOT"
t_wait_log "$T_DIR/origin.log" "listening on" 10000 || { t_fail "origin starts" "see log"; t_done; }
SECRET="s3cr3t$RANDOM"
PPORT=$(t_free_port)
t_start peer "$T_DIR/peer.log" "$M" --mode peer --listen "127.0.0.1:$PPORT" \
	--root "$T_DIR/peer" --origin-url "http://fill:$SECRET@127.0.0.1:$OPORT/"
t_wait_log "$T_DIR/peer.log" "listening on" 10000 || { t_fail "peer starts" "see log"; t_done; }
P="http://127.0.0.1:$PPORT"
curl -s -o "$T_DIR/a.bin" "$P/api/v1/peer/files/b/a.bin"
t_eq "a fill through an origin_url with credentials works" "$(sha "$T_DIR/a.bin")" \
	"$(sha "$OROOT/files/b/a.bin")"
curl -s -o /dev/null "$P/api/v1/peer/files/b/missing.bin"
curl -s "$P/api/v1/health" > "$T_DIR/health"
curl -s "$P/metrics" > "$T_DIR/metrics"
t_grep "health shows the origin without its userinfo" "$T_DIR/health" \
	"\"origin_url\":\"http://***@127.0.0.1:$OPORT/\""
t_nogrep "health never shows the password" "$T_DIR/health" "$SECRET"
t_nogrep "metrics never show the password" "$T_DIR/metrics" "$SECRET"
t_grep "the fill log line names the redacted origin" "$T_DIR/peer.log" "from http://***@127.0.0.1"
t_nogrep "logs never show the password" "$T_DIR/peer.log" "$SECRET"
"$M" --mode peer --listen "127.0.0.1:$PPORT" --root "$T_DIR/p5" \
	--origin-url "ftp://fill:$SECRET@127.0.0.1/" > "$T_DIR/p5.log" 2>&1
t_eq "a bad origin_url is a usage error" "$?" "64"
t_nogrep "and its message hides the password" "$T_DIR/p5.log" "$SECRET"
printf 'mode: peer\nroot: %s\norigin_url: "gopher://u:%s@h/"\n' "$T_DIR/p5" "$SECRET" \
	> "$T_DIR/p5.yaml"
"$M" --config "$T_DIR/p5.yaml" > "$T_DIR/p5b.log" 2>&1
t_eq "a bad origin_url in the file is a config error" "$?" "78"
t_nogrep "and its message hides the password" "$T_DIR/p5b.log" "$SECRET"
t_stop peer

# ---------------------------------------------------------------- item 10
# A peer on a 1 MiB disk asked for a 3 MB file streams it through, to a
# slow and a fast client at once, without spooling it into its temp folder.
if [ "$(id -u)" = 0 ] && command -v unshare > /dev/null &&
   unshare -m --propagation private true 2> /dev/null; then
	head -c 3000000 /dev/urandom > "$OROOT/files/b/huge.bin"
	SMALL="$T_DIR/small"
	mkdir -p "$SMALL"
	SPPORT=$(t_free_port)
	t_start small "$T_DIR/small.log" unshare -m --propagation private sh -c \
		'mount -t tmpfs -o size=1m tmpfs "$1" && shift && exec "$@"' sh "$SMALL" \
		"$M" --mode peer --listen "127.0.0.1:$SPPORT" --root "$SMALL" \
		--origin-url "http://127.0.0.1:$OPORT"
	t_wait_log "$T_DIR/small.log" "listening on" 10000 || { t_fail "small peer starts" "see log"; t_done; }
	SU="http://127.0.0.1:$SPPORT/api/v1/peer/files/b/huge.bin"
	curl -s --max-time 60 --limit-rate 1M -o "$T_DIR/huge-slow" "$SU" &
	SLOW=$!
	curl -s --max-time 60 -o "$T_DIR/huge-fast" "$SU"
	wait "$SLOW"
	t_eq "disk too small: a fast client gets the file" "$(sha "$T_DIR/huge-fast")" \
		"$(sha "$OROOT/files/b/huge.bin")"
	t_eq "disk too small: a slow client gets the file" "$(sha "$T_DIR/huge-slow")" \
		"$(sha "$OROOT/files/b/huge.bin")"
	curl -s --max-time 20 -r 0-99999 -o "$T_DIR/huge-range" "$SU"
	t_eq "disk too small: a range ending far before the end" "$(sha "$T_DIR/huge-range")" \
		"$(head -c 100000 "$OROOT/files/b/huge.bin" | sha256sum | cut -d' ' -f1)"
	t_grep "disk too small: streamed through" "$T_DIR/small.log" \
		"on the disk: streaming it through without caching"
	t_nogrep "disk too small: nothing written to the temp folder" "$T_DIR/small.log" \
		"No space left"
	t_eq "disk too small: nothing left behind" \
		"$(nsenter -t "$(t_pid_of small)" -m -- find "$SMALL/files" "$SMALL/tmp" -type f | wc -l)" "0"
	t_stop small
else
	t_skip "disk too small" "needs root and unshare -m for a small tmpfs"
fi

# ---------------------------------------------------------------- item 4
# An origin that sends no digest (a plain static file server): the peer
# never presents a digest of its own as the origin's.
if command -v python3 > /dev/null; then
	SROOT="$T_DIR/static"
	mkdir -p "$SROOT/api/v1/peer/files/b"
	head -c 50000 /dev/urandom > "$SROOT/api/v1/peer/files/b/nd.bin"
	SPORT=$(t_free_port)
	t_start static "$T_DIR/static.log" python3 -m http.server --bind 127.0.0.1 \
		--directory "$SROOT" "$SPORT"
	t_wait_tcp 127.0.0.1 "$SPORT" 10000 || { t_fail "static origin starts" "see log"; t_done; }
	QPORT=$(t_free_port)
	t_start nd "$T_DIR/nd.log" "$M" --mode peer --listen "127.0.0.1:$QPORT" \
		--root "$T_DIR/nd" --origin-url "http://127.0.0.1:$SPORT"
	t_wait_log "$T_DIR/nd.log" "listening on" 10000 || { t_fail "peer starts" "see log"; t_done; }
	Q="http://127.0.0.1:$QPORT"
	for pass in fill hit; do
		curl -s -D "$T_DIR/nd-$pass.h" -o "$T_DIR/nd-$pass" "$Q/api/v1/peer/files/b/nd.bin"
		t_eq "no origin digest ($pass): the bytes" "$(sha "$T_DIR/nd-$pass")" \
			"$(sha "$SROOT/api/v1/peer/files/b/nd.bin")"
		t_nogrep "no origin digest ($pass): no X-File-SHA256" "$T_DIR/nd-$pass.h" "X-File-SHA256"
		t_nogrep "no origin digest ($pass): no Repr-Digest" "$T_DIR/nd-$pass.h" "Repr-Digest"
		t_grep "no origin digest ($pass): a weak ETag" "$T_DIR/nd-$pass.h" 'ETag: W/"'
	done
	t_grep "health counts the unverified file" <(curl -s "$Q/api/v1/health") \
		'"unverified_files":1'
	t_grep "metrics count the unverified file" <(curl -s "$Q/metrics") \
		"hydra_mirror_store_unverified_files 1"
	t_stop nd
	printf 'mode: peer\nlisten: "127.0.0.1:%s"\nroot: %s\norigin_url: "http://127.0.0.1:%s"\nrequire_origin_digest: true\n' \
		"$QPORT" "$T_DIR/nd2" "$SPORT" > "$T_DIR/nd2.yaml"
	t_start nd2 "$T_DIR/nd2.log" "$M" --config "$T_DIR/nd2.yaml"
	t_wait_log "$T_DIR/nd2.log" "listening on" 10000 || { t_fail "peer starts" "see log"; t_done; }
	t_eq "require_origin_digest: GET refused with 502" "$(curl -s -o /dev/null -w '%{http_code}' \
		"$Q/api/v1/peer/files/b/nd.bin")" "502"
	t_eq "require_origin_digest: HEAD refused with 502" "$(curl -s -o /dev/null -I -w '%{http_code}' \
		"$Q/api/v1/peer/files/b/nd.bin")" "502"
	t_grep "require_origin_digest: the log says why" "$T_DIR/nd2.log" \
		"the origin sent no digest and require_origin_digest is on"
	t_eq "require_origin_digest: nothing cached" "$(find "$T_DIR/nd2/files" -type f | wc -l)" "0"
	t_stop nd2
	t_stop static
else
	t_skip "origin without digest" "python3 not installed"
fi

t_done
