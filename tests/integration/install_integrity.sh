#!/bin/bash
# Issue 12, the agent: a district mirror is an untrusted cache. The digest
# comes from --sha256, else the origin (a HEAD beside the district probe),
# else the district alone with a warning; a district caught with other bytes
# is told so (POST /api/v1/peer/verify/{path}) and not used for that file.
# The district sits behind nginx, whose access log records what was sent.
. "$(dirname "$0")/../lib.sh"
. "$T_ROOT/tests/support/fleet_env.sh"

A="$BIN/hydra-agent"
SIZE=$((1024 * 1024))
mkdir -p "$T_DIR/origin/files" "$T_DIR/bad/files"
SHA=$(env_build "$T_DIR/origin/files/b.zip" $SIZE)
cp "$T_DIR/origin/files/b.zip" "$T_DIR/bad/files/b.zip"
printf 'rotten' | dd of="$T_DIR/bad/files/b.zip" bs=1 seek=4096 conv=notrunc 2>/dev/null

env_dnsmasq dns mirror-a.experiencenet.com=127.0.0.1 bxl1.hydramirror.experiencenet.com=127.0.0.1 || t_done
env_mirror origin --root "$T_DIR/origin" --mode origin || t_done
ORIGIN_PORT=$MIRROR_PORT
env_mirror district --root "$T_DIR/district" --mode peer \
	--origin-url "http://127.0.0.1:$ORIGIN_PORT" --district bxl1 || t_done
DISTRICT_PORT=$MIRROR_PORT
# An origin-mode mirror with rotten bytes: it digests what it holds, so it
# advertises a digest that is not the origin's.
env_mirror bad --root "$T_DIR/bad" --mode origin || t_done
BAD_PORT=$MIRROR_PORT

PROXY_PORT=$(t_free_port)
env_nginx nginx "$PROXY_PORT" "$(env_nginx_proxy "http://127.0.0.1:$DISTRICT_PORT")" || t_done

# conf NAME PORT: the district bxl1 at PORT.
conf() {
	cat > "$T_DIR/$1.yaml" <<YAML
node_id: node-test
state_dir: $T_DIR/state
log_file: $T_DIR/$1.log
dns: {servers: ["127.0.0.1:$DNS_PORT"], timeout_ms: 500}
district: {static: bxl1}
mirror:
  origin_host: mirror-a.experiencenet.com
  url_pattern: "http://{district}.hydramirror.experiencenet.com:$2"
  head_timeout_ms: 1500
YAML
}
# install NAME [ARGS...]: exit code in RC, --json in NAME.json.
install() {
	_n=$1
	shift
	"$A" --config "$T_DIR/$_n.yaml" install --url "$URL" --out "$T_DIR/$_n.out" --json "$@" \
		> "$T_DIR/$_n.json" 2> "$T_DIR/$_n.stderr"
	RC=$?
}
# json NAME EXPR: one value of NAME.json.
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$T_DIR/$1.json" 2>/dev/null; }
# corrupt: rots the district's copy keeping its size and mtime.
corrupt() {
	_f="$T_DIR/district/files/b.zip"
	cp -p "$_f" "$T_DIR/keep-mtime"
	printf 'rotten' | dd of="$_f" bs=1 seek=8192 conv=notrunc 2>/dev/null
	touch -r "$T_DIR/keep-mtime" "$_f"
}
URL="http://mirror-a.experiencenet.com:$ORIGIN_PORT/api/v1/peer/files/b.zip"
VERIFY="POST /api/v1/peer/verify/b.zip"

# 1. The district fills and serves; the digest is the origin's.
conf fill "$PROXY_PORT"
install fill
t_eq "fill: exits 0" "$RC" 0
t_eq "fill: digest_source is origin" "$(json fill "d['digest_source']")" origin
t_eq "fill: served by the district" "$(json fill "d['source_url']")" \
	"http://bxl1.hydramirror.experiencenet.com:$PROXY_PORT/api/v1/peer/files/b.zip"
t_nogrep "fill: no origin-unreachable warning" "$T_DIR/fill.log" "origin unreachable"

# 2. --sha256 is the reference: no origin HEAD needed, digest_source argument.
conf arg "$PROXY_PORT"
install arg --sha256 "$SHA"
t_eq "argument: exits 0" "$RC" 0
t_eq "argument: digest_source is argument" "$(json arg "d['digest_source']")" argument

# 3. The district's copy rots (size and mtime kept): the origin's bytes are
# installed, the district is told.
# A client can have every byte before the fill is checked and renamed into
# place: rot the district's copy only once its fill is done.
t_wait_log "$T_DIR/district.log" "filled " 30000 ||
	t_fail "fill: the district logs the fill as done" "no 'filled' line"
if [ -f "$T_DIR/district/files/b.zip" ]; then
	corrupt
	conf rot "$PROXY_PORT"
	install rot
	t_eq "rotten district: exits 0" "$RC" 0
	t_eq "rotten district: the origin's bytes" "$(sha256sum < "$T_DIR/rot.out" | cut -d' ' -f1)" "$SHA"
	t_eq "rotten district: digest_source is origin" "$(json rot "d['digest_source']")" origin
	t_eq "rotten district: the district attempt was a mismatch" \
		"$(json rot "d['attempts'][0]['result']")" sha256_mismatch
	t_grep "rotten district: the report is sent" "$T_DIR/nginx/access.log" "$VERIFY "
	# Sent, or "not reported" with the mirror's answer: logged either way.
	t_grep "rotten district: the report is logged" "$T_DIR/rot.log" \
		"sha256 mismatch of $T_DIR/rot.out "
	t_grep "rotten district: then the fallback" "$T_DIR/rot.log" \
		"district mirror bxl1.hydramirror.experiencenet.com unavailable (sha256 mismatch: got "
	if grep -q "$VERIFY 200" "$T_DIR/nginx/access.log"; then
		: > "$T_DIR/district.log"
		curl -s -o "$T_DIR/refill" "http://127.0.0.1:$DISTRICT_PORT/api/v1/peer/files/b.zip"
		t_wait_log "$T_DIR/district.log" "filled " 30000 ||
			t_fail "rotten district: the refill is logged as done" "no 'filled' line"
		t_eq "rotten district: the next GET is a fresh fill" \
			"$(sha256sum < "$T_DIR/refill" | cut -d' ' -f1)" "$SHA"
	else
		t_skip "rotten district: the next GET is a fresh fill" "the mirror has no verify endpoint yet"
	fi
else
	t_fail "rotten district" "the district holds no copy at files/b.zip"
fi

# 4. A district whose digest is not the origin's is never used for the file.
conf other "$BAD_PORT"
install other
t_eq "disagreeing district: exits 0" "$RC" 0
t_eq "disagreeing district: the origin's bytes" "$(sha256sum < "$T_DIR/other.out" | cut -d' ' -f1)" "$SHA"
t_nogrep "disagreeing district: no GET from it" "$T_DIR/other.log" \
	"downloading http://bxl1.hydramirror.experiencenet.com:$BAD_PORT/"
t_grep "disagreeing district: says why" "$T_DIR/other.log" \
	"district mirror bxl1.hydramirror.experiencenet.com unavailable (its sha256 "
t_eq "disagreeing district: digest_source is origin" "$(json other "d['digest_source']")" origin

# 5. The same rot with the origin unreachable: the district's digest alone,
# with a warning; its bytes do not match it, so nothing is installed (65).
curl -s -o /dev/null "http://127.0.0.1:$DISTRICT_PORT/api/v1/peer/files/b.zip"
corrupt
t_stop origin
: > "$T_DIR/nginx/access.log"
conf alone "$PROXY_PORT"
install alone
t_eq "origin down, rotten district: exit 65" "$RC" 65
t_eq "origin down, rotten district: nothing at PATH" "$(ls "$T_DIR"/alone.out* 2>/dev/null)" ""
t_grep "origin down: the digest warning" "$T_DIR/alone.log" \
	"digest for $T_DIR/alone.out from bxl1.hydramirror.experiencenet.com only: origin unreachable"
t_grep "origin down: the report is sent" "$T_DIR/nginx/access.log" "$VERIFY "
t_eq "origin down: json carries the error" "$(json alone "d['error'] != '' and d['schema']")" 1

t_done
