#!/bin/bash
# bench/install.sh: hydra-agent install against real peers, same run,
# interleaved, medians of RUNS.
#
#   1 GiB from a local hydra-mirror (loopback, no throttle):
#     hydra-agent install            (download + streaming SHA-256 + verify)
#     curl -o f && openssl dgst      (the strong baseline)
#     curl -o f && openssl dgst && sync f   (the same, durable like the agent,
#                                    which fsyncs before it renames)
#     curl -o f && sha256sum         (Debian's sha256sum, no SHA instructions)
#     aria2c --checksum=sha-256=...
#   With the origin throttled (RATE, default 100 MB/s), SMALL bytes:
#     direct origin install, cold district install, warm district install.
#
# Prints a table and the last line `install: ratio=<x> (target <= 0.6)`.
# `connections:` counts the TCP connections of one more (untimed) district
# install (HEAD probe and GET) from the access log ($connection) of an nginx
# put in front of the local mirror as the district.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$ROOT/${BUILD:-build}/bin"
RUNS=${RUNS:-5}
SIZE_MB=${SIZE_MB:-1024}
SMALL_MB=${SMALL_MB:-256}
RATE=${RATE:-100M}
DIR=$(mktemp -d "${TMPDIR:-/tmp}/hydra-bench.XXXXXX")
PIDS=""
trap 'for p in $PIDS; do kill $p 2>/dev/null; done; wait 2>/dev/null; rm -rf "$DIR"' EXIT

port() { "$BIN/hydra-testkit" free-port; }
mirror() {  # mirror NAME ARGS...: sets PORT
	_n=$1
	shift
	PORT=$(port)
	"$BIN/hydra-mirror" --listen "127.0.0.1:$PORT" "$@" > "$DIR/$_n.log" 2>&1 &
	PIDS="$PIDS $!"
	"$BIN/hydra-testkit" wait-log "$DIR/$_n.log" "hydra-mirror listening on" 60000 ||
		{ echo "bench: hydra-mirror did not start" >&2; exit 1; }
}
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
# The nginx proxy of conn_count, the same as the tests'.
. "$ROOT/tests/support/fleet_env.sh"
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

mkdir -p "$DIR/root/files" "$DIR/small/files" "$DIR/peer" "$DIR/out"
head -c $((SIZE_MB * 1024 * 1024)) /dev/urandom > "$DIR/root/files/big.zip"
head -c $((SMALL_MB * 1024 * 1024)) /dev/urandom > "$DIR/small/files/build.zip"
SHA=$(openssl dgst -sha256 -r "$DIR/root/files/big.zip" | cut -d' ' -f1)

mirror local --root "$DIR/root" --mode origin; LOCAL=$PORT
mirror far --root "$DIR/small" --mode origin --max-egress-bytes-per-s "$RATE"; FAR=$PORT
URL="http://127.0.0.1:$LOCAL/api/v1/peer/files/big.zip"
printf 'node_id: bench\nstate_dir: %s/state\nlog_file: %s/agent.log\n' "$DIR" "$DIR" > "$DIR/agent.yaml"

# run NAME CMD...: one timed run; appends ms to $DIR/NAME.ms
run() {
	_n=$1
	shift
	rm -f "$DIR"/out/*
	sync
	_t=$(now_ms)
	"$@" > /dev/null 2>&1 || echo "bench: $_n failed" >&2
	echo $(( $(now_ms) - _t )) >> "$DIR/$_n.ms"
}
agent() {
	/usr/bin/time -f %M -o "$DIR/rss" "$BIN/hydra-agent" --config "$DIR/agent.yaml" install \
		--progress none --url "$URL" --out "$DIR/out/f" --sha256 "$SHA"
	_rc=$?
	cat "$DIR/rss" >> "$DIR/agent.rss"
	return $_rc
}
curl_openssl() { curl -sf -o "$DIR/out/f" "$URL" && openssl dgst -sha256 "$DIR/out/f"; }
curl_openssl_sync() { curl_openssl && sync "$DIR/out/f"; }
curl_sha256sum() { curl -sf -o "$DIR/out/f" "$URL" && sha256sum "$DIR/out/f"; }
aria() { aria2c -q -d "$DIR/out" -o f --allow-overwrite=true --checksum="sha-256=$SHA" "$URL"; }

for i in $(seq "$RUNS"); do
	run agent agent
	run curl_openssl curl_openssl
	run curl_openssl_sync curl_openssl_sync
	run curl_sha256sum curl_sha256sum
	command -v aria2c > /dev/null && run aria2c aria
done

# Throttled origin: direct, then through a district peer cold and warm.
SMALL_URL="http://mirror-a.experiencenet.com:$FAR/api/v1/peer/files/build.zip"
DNS_PORT=$(port)
dnsmasq -k -C /dev/null --no-resolv --no-hosts --pid-file --user=root --listen-address=127.0.0.1 \
	--bind-interfaces --port="$DNS_PORT" --local=/experiencenet.com/ \
	--host-record=mirror-a.experiencenet.com,127.0.0.1 \
	--host-record=bxl1.hydramirror.experiencenet.com,127.0.0.1 > "$DIR/dns.log" 2>&1 &
PIDS="$PIDS $!"
"$BIN/hydra-testkit" wait-tcp 127.0.0.1 "$DNS_PORT" 10000
for i in $(seq "$RUNS"); do
	rm -rf "$DIR/peer"
	mkdir -p "$DIR/peer"
	mirror "peer$i" --root "$DIR/peer" --mode peer --origin-url "http://127.0.0.1:$FAR" --district bxl1
	PEER_PID=${PIDS##* }
	for mode in direct cold warm; do
		if [ $mode = direct ]; then district=""; else district=bxl1; fi
		cat > "$DIR/$mode.yaml" <<YAML
node_id: bench
state_dir: $DIR/state-$mode
log_file: $DIR/$mode.log
dns: {servers: ["127.0.0.1:$DNS_PORT"]}
district: {static: "$district"}
mirror: {url_pattern: "http://{district}.hydramirror.experiencenet.com:$PORT"}
YAML
		run "$mode" "$BIN/hydra-agent" --config "$DIR/$mode.yaml" install --progress none \
			--url "$SMALL_URL" --out "$DIR/out/f"
	done
	kill "$PEER_PID" 2>/dev/null
done

# conn_count: one untimed district install through an nginx proxy in front
# of the local mirror; prints "<connections> connections for <requests>
# requests" from its access log, or "n/a" without nginx.
conn_count() {
	command -v nginx > /dev/null || { echo "n/a (nginx is not installed)"; return; }
	_np=$(port)
	env_nginx_conf "$DIR/nginx" "$_np" "$(env_nginx_proxy "http://127.0.0.1:$LOCAL")"
	nginx -p "$DIR/nginx" -c "$DIR/nginx/nginx.conf" -e "$DIR/nginx/error.log" &
	_ngx=$!
	"$BIN/hydra-testkit" wait-tcp 127.0.0.1 "$_np" 10000 || { echo "n/a (nginx did not start)"; kill $_ngx; return; }
	cat > "$DIR/proxied.yaml" <<YAML
node_id: bench
state_dir: $DIR/state-proxied
log_file: $DIR/proxied.log
dns: {servers: ["127.0.0.1:$DNS_PORT"]}
district: {static: bxl1}
mirror: {url_pattern: "http://{district}.hydramirror.experiencenet.com:$_np"}
YAML
	rm -f "$DIR"/out/*
	"$BIN/hydra-agent" --config "$DIR/proxied.yaml" install --progress none --sha256 "$SHA" \
		--url "http://mirror-a.experiencenet.com:$LOCAL/api/v1/peer/files/big.zip" \
		--out "$DIR/out/f" > /dev/null 2>&1 || echo "bench: the proxied install failed" >&2
	kill $_ngx
	wait $_ngx 2> /dev/null
	awk '{ c[$1] = 1; n++ } END { printf "%d connections for %d requests\n", length(c), n }' \
		"$DIR/nginx/access.log"
}
CONNS=$(conn_count)

m() { median < "$DIR/$1.ms"; }
A=$(m agent); CO=$(m curl_openssl); COS=$(m curl_openssl_sync); CS=$(m curl_sha256sum)
AR=$( [ -f "$DIR/aria2c.ms" ] && m aria2c || echo 0)
RSS=$(sort -n "$DIR/agent.rss" | tail -n 1)
D=$(m direct); C=$(m cold); W=$(m warm)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

printf '\n%s MiB from a local hydra-mirror, median of %s runs\n' "$SIZE_MB" "$RUNS"
printf '%-36s %8s ms\n' "hydra-agent install" "$A" "curl -o && openssl dgst" "$CO" \
	"curl -o && openssl dgst && sync f" "$COS" "curl -o && sha256sum" "$CS" \
	"aria2c --checksum" "$AR"
printf '%-36s %8s KiB\n' "hydra-agent peak RSS" "$RSS"
printf '%-36s %s\n' "district install connections" "$CONNS"
printf '\n%s MiB, origin throttled to %s bytes/s, median of %s runs\n' "$SMALL_MB" "$RATE" "$RUNS"
printf '%-36s %8s ms\n' "direct origin install" "$D" "cold district install" "$C" \
	"warm district install" "$W"
printf '\n%-36s %s (target <= 0.6, stretch 0.4)\n' "vs curl && openssl dgst" "$(ratio "$A" "$CO")"
printf '%-36s %s\n' "vs the same made durable (sync f)" "$(ratio "$A" "$COS")"
printf '%-36s %s\n' "vs curl && sha256sum" "$(ratio "$A" "$CS")"
printf '%-36s %s (target <= 0.5)\n' "vs aria2c" "$(ratio "$A" "$AR")"
printf '%-36s %s (target <= 1.25)\n' "cold district / direct" "$(ratio "$C" "$D")"
printf '%-36s %s (target < 1)\n' "warm district / direct" "$(ratio "$W" "$D")"
printf '%-36s %s KiB (target <= 16384)\n' "peak RSS" "$RSS"
echo "install: ratio=$(ratio "$A" "$CO") (target <= 0.6)"
