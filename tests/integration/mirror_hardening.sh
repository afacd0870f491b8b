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
	"\"origin_url\":\"http:\/\/***@127.0.0.1:$OPORT\/\""
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

t_done
