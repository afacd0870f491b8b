#!/bin/bash
# hydra-agent install against real servers: every fallback trigger of the
# install issue ends with a verified file from the origin, exit 0, and the
# exact fallback log line; then the failures that must not install anything.
. "$(dirname "$0")/../lib.sh"
. "$T_ROOT/tests/support/fleet_env.sh"

A="$BIN/hydra-agent"
SIZE=$((8 * 1024 * 1024))
BUILD_PATH=api/v1/peer/files/exp/build-42.zip

mkdir -p "$T_DIR/origin/files/exp" "$T_DIR/empty/files" "$T_DIR/bad/files/exp" "$T_DIR/other"
SHA=$(env_build "$T_DIR/origin/files/exp/build-42.zip" $SIZE)
cp "$T_DIR/origin/files/exp/build-42.zip" "$T_DIR/bad/files/exp/build-42.zip"
printf 'rotten' | dd of="$T_DIR/bad/files/exp/build-42.zip" bs=1 seek=4096 conv=notrunc 2>/dev/null
sh "$T_ROOT/tests/support/gen-certs.sh" "$T_DIR" bxl1.hydramirror.experiencenet.com wrong.example
sh "$T_ROOT/tests/support/gen-certs.sh" "$T_DIR/other" bxl1.hydramirror.experiencenet.com

env_dnsmasq dns mirror-a.experiencenet.com=127.0.0.1 bxl1.hydramirror.experiencenet.com=127.0.0.1 || t_done
env_silent_dns silent-dns
env_mirror origin --root "$T_DIR/origin" --mode origin || t_done
ORIGIN_PORT=$MIRROR_PORT
ORIGIN_URL="http://mirror-a.experiencenet.com:$ORIGIN_PORT/$BUILD_PATH"
env_mirror district --root "$T_DIR/district" --mode peer \
	--origin-url "http://127.0.0.1:$ORIGIN_PORT" --district bxl1 || t_done
DISTRICT_PORT=$MIRROR_PORT
env_mirror notfound --root "$T_DIR/empty" --mode origin || t_done
NOTFOUND_PORT=$MIRROR_PORT
env_mirror slow --root "$T_DIR/origin" --mode origin --max-egress-bytes-per-s 16384 || t_done
SLOW_PORT=$MIRROR_PORT
env_mirror corrupt --root "$T_DIR/bad" --mode origin || t_done
CORRUPT_PORT=$MIRROR_PORT
env_mirror tls-wrong --root "$T_DIR/origin" --mode origin \
	--tls-cert "$T_DIR/wrong.example.pem" --tls-key "$T_DIR/wrong.example.key" || t_done
TLS_WRONG_PORT=$MIRROR_PORT
env_mirror tls-otherca --root "$T_DIR/origin" --mode origin \
	--tls-cert "$T_DIR/other/bxl1.hydramirror.experiencenet.com.pem" \
	--tls-key "$T_DIR/other/bxl1.hydramirror.experiencenet.com.key" || t_done
TLS_OTHERCA_PORT=$MIRROR_PORT
CLOSED_PORT=$(t_free_port)

# nginx as a peer that answers 500 to everything.
NGINX_PORT=$(t_free_port)
env_nginx nginx "$NGINX_PORT" "location / { return 500; }"

# conf NAME DISTRICT PATTERN_URL [ORIGIN_HOST [DNS]]: writes $T_DIR/NAME.yaml
conf() {
	cat > "$T_DIR/$1.yaml" <<YAML
node_id: node-test
state_dir: $T_DIR/state-$1
log_file: $T_DIR/$1.hydrabody.log
tls: {ca_file: "$T_DIR/ca.pem"}
dns: {servers: ["${5:-127.0.0.1:$DNS_PORT}"], timeout_ms: 500}
district: {static: "$2"}
mirror:
  origin_host: ${4:-mirror-a.experiencenet.com}
  url_pattern: "$3"
  head_timeout_ms: 1500
  stall: {bytes_per_s: 64K, seconds: 1}
YAML
}

# install NAME [ARGS...]: runs an install with NAME's config; exit code in RC.
install() {
	_n=$1
	shift
	"$A" --config "$T_DIR/$_n.yaml" install --out "$T_DIR/$_n.out" --json "$@" \
		> "$T_DIR/$_n.json" 2> "$T_DIR/$_n.stderr"
	RC=$?
}

# falls_back NAME DISTRICT PATTERN REASON [URL [ORIGIN_HOST [DNS]] [-- ARGS]]
falls_back() {
	_n=$1 _d=$2 _p=$3 _why=$4 _url=${5:-$ORIGIN_URL}
	conf "$_n" "$_d" "$_p" "${6:-}" "${7:-}"
	install "$_n" --url "$_url" ${SHA_ARG:+--sha256 "$SHA"}
	t_eq "$_n: install exits 0" "$RC" 0
	t_eq "$_n: the installed file verifies" "$(sha256sum < "$T_DIR/$_n.out" | cut -d' ' -f1)" "$SHA"
	t_grep "$_n: fallback line names the reason" "$T_DIR/$_n.hydrabody.log" \
		"district mirror $_d.hydramirror.experiencenet.com unavailable ($_why"
	t_grep "$_n: the origin served it" "$T_DIR/$_n.hydrabody.log" \
		"download complete: $T_DIR/$_n.out $SIZE bytes sha256 $SHA from ${6:-mirror-a.experiencenet.com} in"
	t_grep "$_n: json says fallback" "$T_DIR/$_n.json" '"fallback":true'
}

P="http://{district}.hydramirror.experiencenet.com"

# The happy path first: the district mirror serves it.
conf district bxl1 "$P:$DISTRICT_PORT"
install district --url "$ORIGIN_URL"
t_eq "district: install exits 0" "$RC" 0
t_eq "district: the installed file verifies" "$(sha256sum < "$T_DIR/district.out" | cut -d' ' -f1)" "$SHA"
t_grep "district: district logged" "$T_DIR/district.hydrabody.log" "district bxl1 from body config (district.static)"
t_grep "district: downloads from the district host" "$T_DIR/district.hydrabody.log" \
	"downloading http://bxl1.hydramirror.experiencenet.com:$DISTRICT_PORT/$BUILD_PATH"
t_grep "district: served by the district host" "$T_DIR/district.hydrabody.log" \
	"from bxl1.hydramirror.experiencenet.com in"
t_grep "district: json says no fallback" "$T_DIR/district.json" '"fallback":false'
t_nogrep "district: no fallback line" "$T_DIR/district.hydrabody.log" "falling back"
t_eq "district: no progress bar when stderr is not a terminal" "$(cat "$T_DIR/district.stderr")" ""
"$A" --config "$T_DIR/district.yaml" install --url "$ORIGIN_URL" --out "$T_DIR/bar.out" \
	--progress bar > /dev/null 2> "$T_DIR/bar.stderr"
t_grep "progress bar: reaches 100% when forced" "$T_DIR/bar.stderr" "100.0%  8.0 MiB / 8.0 MiB"
t_grep "progress bar: names the source host" "$T_DIR/bar.stderr" "bxl1.hydramirror.experiencenet.com"

falls_back nxdomain gnt9 "$P:$DISTRICT_PORT" "lookup gnt9.hydramirror.experiencenet.com: no such host"
# The origin is an address here, so only the district name needs the silent DNS.
falls_back dnstimeout bxl1 "$P:$DISTRICT_PORT" "lookup bxl1.hydramirror.experiencenet.com: timeout" \
	"http://127.0.0.1:$ORIGIN_PORT/$BUILD_PATH" 127.0.0.1 "127.0.0.1:$SILENT_DNS_PORT"
falls_back refused bxl1 "$P:$CLOSED_PORT" \
	"connect bxl1.hydramirror.experiencenet.com:$CLOSED_PORT: Connection refused"
falls_back tlsname bxl1 "https://{district}.hydramirror.experiencenet.com:$TLS_WRONG_PORT" \
	"TLS bxl1.hydramirror.experiencenet.com: "
falls_back tlsca bxl1 "https://{district}.hydramirror.experiencenet.com:$TLS_OTHERCA_PORT" \
	"TLS bxl1.hydramirror.experiencenet.com: "
falls_back head404 bxl1 "$P:$NOTFOUND_PORT" "HEAD returned HTTP 404"
falls_back head500 bxl1 "$P:$NGINX_PORT" "HEAD returned HTTP 500"
falls_back stall bxl1 "$P:$SLOW_PORT" \
	"bxl1.hydramirror.experiencenet.com: stalled below 65536 bytes/s for 1 s"
SHA_ARG=1 falls_back corrupt bxl1 "$P:$CORRUPT_PORT" "sha256 mismatch: got "
t_grep "corrupt: the corrupt copy was downloaded first" "$T_DIR/corrupt.hydrabody.log" \
	"downloading http://bxl1.hydramirror.experiencenet.com:$CORRUPT_PORT/$BUILD_PATH"

# Nothing reachable: 69, nothing at PATH.
conf none gnt9 "$P:$DISTRICT_PORT"
install none --url "http://mirror-a.experiencenet.com:$CLOSED_PORT/$BUILD_PATH"
t_eq "no source: exit 69" "$RC" 69
t_eq "no source: nothing at PATH" "$(ls "$T_DIR"/none.out* 2>/dev/null)" ""
t_grep "no source: the error names the last reason" "$T_DIR/none.stderr" "Connection refused"

# A digest nobody matches: 65, nothing at PATH.
conf mismatch bxl1 "$P:$DISTRICT_PORT"
install mismatch --url "$ORIGIN_URL" \
	--sha256 0000000000000000000000000000000000000000000000000000000000000000
t_eq "mismatch everywhere: exit 65" "$RC" 65
t_eq "mismatch everywhere: nothing at PATH" "$(ls "$T_DIR"/mismatch.out* 2>/dev/null)" ""

# Output that cannot be created: 73.
"$A" --config "$T_DIR/district.yaml" install --url "$ORIGIN_URL" --out /nonexistent/dir/b.zip \
	> /dev/null 2> "$T_DIR/cantcreat.stderr"
t_eq "cannot create output: exit 73" "$?" 73
t_grep "cannot create output: names the file" "$T_DIR/cantcreat.stderr" "/nonexistent/dir/b.zip.part"

# Bad usage: 64.
"$A" --config "$T_DIR/district.yaml" install --url "$ORIGIN_URL" > /dev/null 2>&1
t_eq "missing --out: exit 64" "$?" 64
"$A" --config "$T_DIR/district.yaml" install --url "$ORIGIN_URL" --out "$T_DIR/x" --sha256 12 \
	> /dev/null 2>&1
t_eq "malformed --sha256: exit 64" "$?" 64

t_done
