#!/bin/bash
# bench/install.sh: hydra-agent install against real peers, same run,
# interleaved, medians of RUNS (issue 18).
#
#   One nginx serves the same file to every contender, over HTTP (sendfile)
#   and over HTTPS with a test CA, for each size of SIZES (MiB):
#     hydra-agent install            (download, streaming SHA-256, verify,
#                                     fsync before the rename: durable)
#     curl -o f && openssl dgst -sha256 f
#     aria2c --checksum=sha-256=...
#     openssl dgst -sha256 alone on the served file, in page cache: the time
#                                    of hashing the bytes and nothing else
#   Targets, for each size and scheme: at most 0.45x curl && openssl dgst,
#   0.5x aria2c, 1.5x openssl dgst alone, peak RSS at most 16 MiB.
#     curl -o /dev/null              (the transfer alone)
#     dd ... conv=fdatasync of the same bytes from page cache: the disk's
#                                    share of a durable install
#   When 0.45x of curl && dgst is below the time of hashing alone, the
#   first target is out of reach for anything that hashes every byte in
#   order; when a target is below the time of the transfer alone, it is out
#   of reach for anything that receives the bytes. `floor:` lines say so
#   with the figures (the targets stay).
#
#   With the origin (a hydra-mirror) throttled to RATE, SMALL_MB bytes:
#     direct origin install, cold district install, warm district install.
#   `district install connections:` counts the TCP connections of one more
#   (untimed) district install (HEAD probe and GET) in nginx's access log.
#
# Each target row prints: measure, reference ms, agent ms, ratio, target,
# ok or MISS. The last line is `install: N of M targets met`.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$ROOT/${BUILD:-build}/bin"
RUNS=${RUNS:-3}
SIZES=${SIZES:-512 1024}
SMALL_MB=${SMALL_MB:-256}
RATE=${RATE:-100M}
# Peak RSS target of issue 18, in KiB.
RSS_TARGET_KIB=16384
DIR=$(mktemp -d "${TMPDIR:-/tmp}/hydra-bench.XXXXXX")
PIDS=""
trap 'for p in $PIDS; do kill $p 2>/dev/null; done; wait 2>/dev/null; rm -rf "$DIR"' EXIT

for t in nginx curl openssl aria2c dnsmasq; do
	command -v $t > /dev/null || { echo "bench: $t is not installed" >&2; exit 1; }
done
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
. "$ROOT/tests/support/fleet_env.sh"
. "$ROOT/bench/lib.sh"
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

mkdir -p "$DIR/www" "$DIR/small/files" "$DIR/peer" "$DIR/out" "$DIR/tls"
for s in $SIZES; do
	head -c $((s * 1024 * 1024)) /dev/urandom > "$DIR/www/f$s.bin"
	openssl dgst -sha256 -r "$DIR/www/f$s.bin" | cut -d' ' -f1 > "$DIR/f$s.sha"
done
head -c $((SMALL_MB * 1024 * 1024)) /dev/urandom > "$DIR/small/files/build.zip"

# A throw-away test CA and a certificate for 127.0.0.1 (an IP name: the
# agent pins addresses itself, curl and aria2c connect to it as given).
(
	cd "$DIR/tls" || exit 1
	openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
		-subj "/CN=hydra-agent bench CA" > /dev/null 2>&1 &&
	openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr \
		-subj "/CN=127.0.0.1" > /dev/null 2>&1 &&
	printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
		> srv.ext &&
	openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem \
		-days 2 -extfile srv.ext > /dev/null 2>&1
) || { echo "bench: cannot make the test CA" >&2; exit 1; }

HP=$(port)
SP=$(port)
env_nginx_conf "$DIR/nginx" "$HP" "listen 127.0.0.1:$SP ssl; ssl_certificate $DIR/tls/srv.pem;
	ssl_certificate_key $DIR/tls/srv.key; sendfile on; root $DIR/www;"
nginx -p "$DIR/nginx" -c "$DIR/nginx/nginx.conf" -e "$DIR/nginx/error.log" &
PIDS="$PIDS $!"
"$BIN/hydra-testkit" wait-tcp 127.0.0.1 "$SP" 10000 ||
	{ echo "bench: nginx did not start" >&2; exit 1; }
printf 'node_id: bench\nstate_dir: %s/state\nlog_file: %s/agent.log\ntls: {ca_file: "%s"}\n' \
	"$DIR" "$DIR" "$DIR/tls/ca.pem" > "$DIR/agent.yaml"

# run NAME CMD...: one timed run from a clean, written-back state; appends
# its ms to $DIR/NAME.ms
run() {
	_n=$1
	shift
	rm -f "$DIR"/out/*
	sync
	_t=$(now_ms)
	"$@" > /dev/null 2> "$DIR/last.err" || echo "bench: $_n failed: $(tail -n 1 "$DIR/last.err")" >&2
	echo $(( $(now_ms) - _t )) >> "$DIR/$_n.ms"
}
url() { if [ "$1" = https ]; then echo "https://127.0.0.1:$SP/f$2.bin"; else echo "http://127.0.0.1:$HP/f$2.bin"; fi; }
agent() {  # agent SCHEME SIZE
	/usr/bin/time -f %M -o "$DIR/rss" "$BIN/hydra-agent" --config "$DIR/agent.yaml" install \
		--progress none --url "$(url "$1" "$2")" --out "$DIR/out/f" --sha256 "$(cat "$DIR/f$2.sha")"
	_rc=$?
	cat "$DIR/rss" >> "$DIR/agent-$1-$2.rss"
	return $_rc
}
curl_openssl() {
	curl -sf --cacert "$DIR/tls/ca.pem" -o "$DIR/out/f" "$(url "$1" "$2")" &&
		openssl dgst -sha256 "$DIR/out/f"
}
aria() {
	aria2c -q -d "$DIR/out" -o f --allow-overwrite=true --ca-certificate="$DIR/tls/ca.pem" \
		--checksum="sha-256=$(cat "$DIR/f$2.sha")" "$(url "$1" "$2")"
}
dgst() { cat "$DIR/www/f$2.bin" > /dev/null && run "dgst-$1-$2" openssl dgst -sha256 "$DIR/www/f$2.bin"; }
# The transfer alone: the bytes to /dev/null, nothing hashed or written.
transfer() { curl -sf --cacert "$DIR/tls/ca.pem" -o /dev/null "$(url "$1" "$2")"; }
# The disk's part of a durable install: the same bytes, from page cache,
# written and fdatasync'ed (what the agent must do and the others skip).
durable() { run "durable-$1" dd if="$DIR/www/f$1.bin" of="$DIR/out/f" bs=1M conv=fdatasync status=none; }

for i in $(seq "$RUNS"); do
	for s in $SIZES; do
		for x in http https; do
			run "agent-$x-$s" agent $x "$s"
			# Checked outside the timed run: reading both files back costs
			# more than the install (the agent dropped its copy from the cache).
			cmp -s "$DIR/out/f" "$DIR/www/f$s.bin" || echo "bench: the installed file differs" >&2
			run "curl-$x-$s" curl_openssl $x "$s"
			run "aria2c-$x-$s" aria $x "$s"
			dgst $x "$s"
			run "net-$x-$s" transfer $x "$s"
		done
		durable "$s"
	done
done

# Throttled origin: direct, then through a district peer cold and warm.
mirror far --root "$DIR/small" --mode origin --max-egress-bytes-per-s "$RATE"; FAR=$PORT
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

# conn_count: one untimed district install (HEAD probe and GET) from the
# nginx above as the district; prints "<connections> connections for
# <requests> requests" from its access log ($connection).
conn_count() {
	_s=${SIZES%% *}
	cat > "$DIR/proxied.yaml" <<YAML
node_id: bench
state_dir: $DIR/state-proxied
log_file: $DIR/proxied.log
dns: {servers: ["127.0.0.1:$DNS_PORT"]}
district: {static: bxl1}
mirror: {url_pattern: "http://{district}.hydramirror.experiencenet.com:$HP"}
YAML
	rm -f "$DIR"/out/*
	: > "$DIR/nginx/access.log"
	"$BIN/hydra-agent" --config "$DIR/proxied.yaml" install --progress none \
		--sha256 "$(cat "$DIR/f$_s.sha")" --out "$DIR/out/f" \
		--url "http://mirror-a.experiencenet.com:$HP/f$_s.bin" > /dev/null 2>&1 ||
		echo "bench: the district install failed" >&2
	awk '{ c[$1] = 1; n++ } END { printf "%d connections for %d requests\n", length(c), n }' \
		"$DIR/nginx/access.log"
}
CONNS=$(conn_count)

m() { median < "$DIR/$1.ms"; }

printf '\nnginx serves every contender; medians of %s runs (ms); agent = hydra-agent install\n' "$RUNS"
printf '%-20s %9s %9s %9s %9s %9s %9s %8s\n' "" "agent" "curl+dgst" "aria2c" "dgst" \
	"transfer" "dd+fdsync" "RSS KiB"
for s in $SIZES; do
	for x in http https; do
		printf '%-20s %9s %9s %9s %9s %9s %9s %8s\n' "$s MiB $x" "$(m "agent-$x-$s")" \
			"$(m "curl-$x-$s")" "$(m "aria2c-$x-$s")" "$(m "dgst-$x-$s")" \
			"$(m "net-$x-$s")" "$(m "durable-$s")" "$(sort -n "$DIR/agent-$x-$s.rss" | tail -n 1)"
	done
done
printf '(transfer: curl -o /dev/null, the bytes alone; dd+fdsync: the same bytes from page\n'
printf ' cache written with dd, then fdatasync: the disk work a durable install adds, which\n'
printf ' curl, dgst and aria2c never do; not a floor, the agent overlaps it with the transfer)\n'
printf '%-34s %s\n' "district install connections" "$CONNS"
printf '\n%s MiB, origin throttled to %s bytes/s, medians of %s runs\n' "$SMALL_MB" "$RATE" "$RUNS"
printf '%-34s %10s ms\n' "direct origin install" "$(m direct)" "cold district install" \
	"$(m cold)" "warm district install" "$(m warm)"

bench_target_header agent
rm -f "$DIR/floors"
for s in $SIZES; do
	for x in http https; do
		A=$(m "agent-$x-$s"); C=$(m "curl-$x-$s"); D=$(m "dgst-$x-$s")
		N=$(m "net-$x-$s")
		bench_target "$s MiB $x vs curl && dgst" "$C" "$A" "<=" 0.45
		bench_target "$s MiB $x vs aria2c" "$(m "aria2c-$x-$s")" "$A" "<=" 0.5
		bench_target "$s MiB $x vs openssl dgst alone" "$D" "$A" "<=" 1.5
		bench_target "$s MiB $x peak RSS (KiB)" "$RSS_TARGET_KIB" \
			"$(sort -n "$DIR/agent-$x-$s.rss" | tail -n 1)" "<=" 1
		awk -v c="$C" -v d="$D" -v t="$N" -v n="$s MiB $x" 'BEGIN {
			if (0.45 * c < d)
				printf "floor: %s: 0.45 x curl && dgst = %.0f ms is below openssl dgst alone = %d ms: out of reach for any client that hashes every byte in order\n", n, 0.45 * c, d
			if (0.45 * c < t)
				printf "floor: %s: 0.45 x curl && dgst = %.0f ms is below the transfer alone (curl -o /dev/null) = %d ms\n", n, 0.45 * c, t
			if (1.5 * d < t)
				printf "floor: %s: 1.5 x openssl dgst = %.0f ms is below the transfer alone (curl -o /dev/null) = %d ms\n", n, 1.5 * d, t }' >> "$DIR/floors"
	done
done
bench_target "cold district / direct" "$(m direct)" "$(m cold)" "<=" 1.25
bench_target "warm district / direct" "$(m direct)" "$(m warm)" "<" 1
[ -s "$DIR/floors" ] && { echo; cat "$DIR/floors"; }
echo
echo "install: $BENCH_MET of $BENCH_ALL targets met"
