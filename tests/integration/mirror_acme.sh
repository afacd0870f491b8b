#!/bin/bash
# Automatic HTTPS end to end (issue 13): pebble, a real ACME server, on
# loopback with its DNS pointed at a test dnsmasq, validates http-01 against
# hydra-mirror's plain acme listener; the shipped acme-renew runs uacme with
# the shipped hook, which writes and removes the challenge file, then reloads
# the mirror. New handshakes present the pebble-issued certificate (issuer
# and serial over a real handshake) while a download running across the
# reload completes. Also: the challenge listener serves nothing but tokens.
. "$(dirname "$0")/../lib.sh"
. "$T_ROOT/tests/support/fleet_env.sh"

M="$BIN/hydra-mirror"
DOMAIN=bxl1.hydramirror.experiencenet.com
for tool in pebble uacme dnsmasq openssl unshare; do
	if ! command -v "$tool" > /dev/null; then
		t_skip "acme end to end" "$tool is not installed (tools/deps.sh installs it)"
		t_done
	fi
done
# uacme (libcurl-gnutls) trusts only the system bundle: the test CA of
# pebble's own HTTPS is bind-mounted over it in a mount namespace of the
# renewal alone.
if ! unshare -m true 2> /dev/null; then
	t_skip "acme end to end" "cannot create a mount namespace (uacme must trust pebble's test CA)"
	t_done
fi
SYS_BUNDLE=/etc/ssl/certs/ca-certificates.crt
[ -f "$SYS_BUNDLE" ] || { t_skip "acme end to end" "no $SYS_BUNDLE to stand in for"; t_done; }

# pebble's HTTPS certificate, for 127.0.0.1, from a throw-away CA.
C="$T_DIR/certs"
mkdir -p "$C"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$C/ca.key" -out "$C/ca.pem" -days 2 \
	-subj "/CN=acme test CA" > /dev/null 2>&1
openssl req -newkey rsa:2048 -nodes -keyout "$C/pebble.key" -out "$C/pebble.csr" \
	-subj "/CN=127.0.0.1" > /dev/null 2>&1
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > "$C/ext"
openssl x509 -req -in "$C/pebble.csr" -CA "$C/ca.pem" -CAkey "$C/ca.key" -CAcreateserial \
	-out "$C/pebble.pem" -days 2 -extfile "$C/ext" > /dev/null 2>&1
cat "$SYS_BUNDLE" "$C/ca.pem" > "$C/bundle.pem"

# The mirror starts with a self-signed certificate valid for a day where
# uacme keeps the domain's certificate and key: due for renewal at once.
A="$T_DIR/acme"
mkdir -p "$A/$DOMAIN" "$A/private/$DOMAIN" "$T_DIR/webroot" "$T_DIR/root/files/b"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$A/private/$DOMAIN/key.pem" \
	-out "$A/$DOMAIN/cert.pem" -days 1 -subj "/CN=$DOMAIN" > /dev/null 2>&1
cp "$A/$DOMAIN/cert.pem" "$C/first.pem"
head -c 20000000 /dev/urandom > "$T_DIR/root/files/b/big.bin"
BIG_SHA=$(sha256sum "$T_DIR/root/files/b/big.bin" | cut -d' ' -f1)
PORT=$(t_free_port)
ACME_PORT=$(t_free_port)
cat > "$T_DIR/mirror.yaml" << YAML
listen: 127.0.0.1:$PORT
root: $T_DIR/root
max_egress_bytes_per_s: 4M
tls:
  cert: $A/$DOMAIN/cert.pem
  key: $A/private/$DOMAIN/key.pem
acme:
  listen: 127.0.0.1:$ACME_PORT
  webroot: $T_DIR/webroot
YAML
t_start mirror "$T_DIR/mirror.log" "$M" --config "$T_DIR/mirror.yaml"
MPID=$T_LAST_PID
t_wait_log "$T_DIR/mirror.log" "listening on 127.0.0.1:$PORT" 10000 ||
	{ t_fail "mirror starts" "$(tail -3 "$T_DIR/mirror.log")"; t_done; }
t_grep "the acme listener is announced" "$T_DIR/mirror.log" "acme challenges on http://127.0.0.1:$ACME_PORT"

# The challenge listener: tokens from the webroot, nothing else.
AU="http://127.0.0.1:$ACME_PORT/.well-known/acme-challenge"
printf 'tok_1-A.thumb' > "$T_DIR/webroot/tok_1-A"
printf 'secret' > "$T_DIR/secret"
ln -s "$T_DIR/secret" "$T_DIR/webroot/linked"
t_eq "a challenge file is served" "$(curl -s "$AU/tok_1-A")" "tok_1-A.thumb"
t_eq "a token outside base64url is refused" \
	"$(curl -s -o /dev/null -w '%{http_code}' --path-as-is "$AU/..%2fsecret")" 404
t_eq "a link in the webroot is not followed" "$(curl -s -o /dev/null -w '%{http_code}' "$AU/linked")" 404
t_eq "other paths are not served" \
	"$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ACME_PORT/api/v1/health")" 404
t_eq "writes are refused" "$(curl -s -o /dev/null -w '%{http_code}' -X PUT -d x "$AU/tok_1-A")" 405

# pebble, resolving through the test dnsmasq, validating on the acme port.
env_dnsmasq dns "$DOMAIN=127.0.0.1" || t_done
PEB_PORT=$(t_free_port)
PEB_MGMT=$(t_free_port)
cat > "$T_DIR/pebble.json" << JSON
{ "pebble": { "listenAddress": "127.0.0.1:$PEB_PORT",
  "managementListenAddress": "127.0.0.1:$PEB_MGMT",
  "certificate": "$C/pebble.pem", "privateKey": "$C/pebble.key",
  "httpPort": $ACME_PORT, "tlsPort": $(t_free_port), "ocspResponderURL": "",
  "externalAccountBindingRequired": false } }
JSON
PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 t_start pebble "$T_DIR/pebble.log" \
	pebble -config "$T_DIR/pebble.json" -dnsserver "127.0.0.1:$DNS_PORT"
t_wait_tcp 127.0.0.1 "$PEB_PORT" 15000 || { t_fail "pebble starts" "$(tail -3 "$T_DIR/pebble.log")"; t_done; }

serial() {
	openssl s_client -connect "127.0.0.1:$PORT" -servername "$DOMAIN" < /dev/null 2> /dev/null |
		openssl x509 -noout "$1" 2> /dev/null
}
BEFORE=$(serial -serial)
[ -n "$BEFORE" ] && t_ok "the mirror speaks HTTPS with the first certificate" ||
	t_fail "the mirror speaks HTTPS" "no certificate over a handshake"

# A download at 4 MB/s (5 s) runs across the renewal and its reload.
curl -sk -o "$T_DIR/across" "https://127.0.0.1:$PORT/api/v1/peer/files/b/big.bin" &
CURL=$!
cat > "$T_DIR/acme.conf" << CONF
ACME_DOMAIN=$DOMAIN
ACME_EMAIL=
ACME_DIRECTORY=https://127.0.0.1:$PEB_PORT/dir
ACME_CONFDIR=$A
ACME_WEBROOT=$T_DIR/webroot
ACME_HOOK=$T_ROOT/packaging/acme/acme-hook
ACME_RELOAD="kill -HUP $MPID"
CONF
unshare -m sh -c 'mount --bind "$1" "$2" && exec "$3" "$4"' sh \
	"$C/bundle.pem" "$SYS_BUNDLE" "$T_ROOT/packaging/acme/acme-renew" "$T_DIR/acme.conf" \
	> "$T_DIR/renew.log" 2>&1
rc=$?
t_eq "acme-renew issues and reloads" "$rc" 0
[ "$rc" = 0 ] || sed 's/^/    | /' "$T_DIR/renew.log" | tail -20
t_wait_log "$T_DIR/mirror.log" "reloaded $T_DIR/mirror.yaml" 10000 &&
	t_ok "the mirror reloaded" || t_fail "the mirror reloaded" "$(tail -3 "$T_DIR/mirror.log")"
t_grep "pebble validated through the acme listener" "$T_DIR/mirror.log" "acme challenge"
t_eq "the hook removed the challenge files" \
	"$(find "$T_DIR/webroot" -type f ! -name 'tok_1-A' | wc -l)" 0
AFTER=$(serial -serial)
ISSUED=$(openssl x509 -noout -serial -in "$A/$DOMAIN/cert.pem")
t_eq "a new handshake presents the issued certificate's serial" "$AFTER" "$ISSUED"
[ "$AFTER" != "$BEFORE" ] && t_ok "which is not the first one" || t_fail "a new certificate" "same serial $AFTER"
ISSUER=$(serial -issuer)
case "$ISSUER" in
	*Pebble*) t_ok "issued by pebble ($ISSUER)" ;;
	*) t_fail "issued by pebble" "issuer '$ISSUER'" ;;
esac
wait "$CURL"
t_eq "the download across the reload completes" "$?" 0
t_eq "with every byte" "$(sha256sum < "$T_DIR/across" | cut -d' ' -f1)" "$BIG_SHA"

# Not due: uacme says so, nothing changes, exit 0.
unshare -m sh -c 'mount --bind "$1" "$2" && exec "$3" "$4"' sh \
	"$C/bundle.pem" "$SYS_BUNDLE" "$T_ROOT/packaging/acme/acme-renew" "$T_DIR/acme.conf" \
	> "$T_DIR/renew2.log" 2>&1
t_eq "a second run is not due and exits 0" "$?" 0
t_grep "and says so" "$T_DIR/renew2.log" "not due for renewal"
t_eq "the certificate in use stays" "$(serial -serial)" "$AFTER"

# A due renewal that fails (the ACME server is gone) keeps the certificate
# in place, says why and exits 1 (the service shows failed).
A2="$T_DIR/acme2"
cp -a "$A" "$A2"
cp "$C/first.pem" "$A2/$DOMAIN/cert.pem"
sed -e "s|^ACME_CONFDIR=.*|ACME_CONFDIR=$A2|" \
	-e "s|^ACME_DIRECTORY=.*|ACME_DIRECTORY=https://127.0.0.1:$(t_free_port)/dir|" \
	-e "s|^ACME_RELOAD=.*|ACME_RELOAD=\"touch $T_DIR/reloaded-after-failure\"|" \
	"$T_DIR/acme.conf" > "$T_DIR/acme2.conf"
unshare -m sh -c 'mount --bind "$1" "$2" && exec "$3" "$4"' sh \
	"$C/bundle.pem" "$SYS_BUNDLE" "$T_ROOT/packaging/acme/acme-renew" "$T_DIR/acme2.conf" \
	> "$T_DIR/renew3.log" 2>&1
t_eq "a failed renewal exits 1" "$?" 1
t_grep "and says it keeps the certificate" "$T_DIR/renew3.log" "keeping the current certificate"
t_eq "the certificate file is untouched" "$(sha256sum < "$A2/$DOMAIN/cert.pem")" \
	"$(sha256sum < "$C/first.pem")"
[ ! -e "$T_DIR/reloaded-after-failure" ] && t_ok "and nothing is reloaded" ||
	t_fail "nothing is reloaded" "the reload command ran"
t_done
