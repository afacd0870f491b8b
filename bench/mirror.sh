#!/bin/bash
# bench/mirror.sh: hydra-mirror against nginx on the same files, same machine,
# same run, interleaved.
#
#   wrk, 64 connections, on a 1 MiB and on a 64 KiB file (requests per second)
#   one 1 GiB download with curl (single-stream throughput)
#   peak RSS of hydra-mirror after wrk with 256 connections
#   a peer of it with verify_max_age_s: 0, so that every hit is hashed as
#   it is sent: its 1 MiB req/s and 1 GiB MiB/s against the sendfile rows
#
# Prints a table, then `mirror: ratio=<x> (target >= 0.9)` where x is the
# worst of the three hydra-mirror/nginx ratios. Not a test: it measures.
#
#   BUILD=build ROUNDS=3 DURATION=5 bash bench/mirror.sh
set -u
HERE=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
M="$HERE/$BUILD/bin/hydra-mirror"
TK="$HERE/$BUILD/bin/hydra-testkit"

for tool in nginx wrk curl; do
	command -v "$tool" > /dev/null || { echo "mirror: $tool not installed (make deps)"; exit 1; }
done
if [ ! -x "$M" ] || [ ! -x "$TK" ]; then
	make -s -C "$HERE" BUILD="$BUILD" all || exit 1
fi

W=$(mktemp -d "${TMPDIR:-/tmp}/hydra-bench-mirror.XXXXXX")
MPID="" NPID="" VPID=""
cleanup() {
	[ -n "$MPID" ] && kill "$MPID" 2> /dev/null && wait "$MPID" 2> /dev/null
	[ -n "$VPID" ] && kill "$VPID" 2> /dev/null && wait "$VPID" 2> /dev/null
	[ -n "$NPID" ] && kill "$NPID" 2> /dev/null && wait "$NPID" 2> /dev/null
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$W/root/files/bench" "$W/nginx"
# nginx workers run as an unprivileged user: let them read the files.
chmod 755 "$W"
head -c 1048576 /dev/urandom > "$W/root/files/bench/1m.bin"
head -c 65536 /dev/urandom > "$W/root/files/bench/64k.bin"
head -c 1073741824 /dev/zero > "$W/root/files/bench/1g.bin"

chmod -R a+rX "$W/root"
MPORT=$("$TK" free-port)
NPORT=$("$TK" free-port)
cat > "$W/nginx/nginx.conf" <<EOF
worker_processes 2;
daemon off;
pid $W/nginx/nginx.pid;
error_log $W/nginx/error.log;
events { worker_connections 4096; }
http {
	sendfile on;
	tcp_nopush on;
	access_log off;
	keepalive_requests 1000000;
	client_body_temp_path $W/nginx/body;
	proxy_temp_path $W/nginx/proxy;
	fastcgi_temp_path $W/nginx/fastcgi;
	uwsgi_temp_path $W/nginx/uwsgi;
	scgi_temp_path $W/nginx/scgi;
	default_type application/octet-stream;
	server {
		listen 127.0.0.1:$NPORT;
		location /api/v1/peer/files/ { alias $W/root/files/; }
	}
}
EOF
nginx -c "$W/nginx/nginx.conf" -p "$W/nginx" > "$W/nginx/out.log" 2>&1 &
NPID=$!
"$M" --listen "127.0.0.1:$MPORT" --root "$W/root" --max-connections 4096 \
	--log-level warn > "$W/mirror.log" 2>&1 &
MPID=$!
"$TK" wait-tcp 127.0.0.1 "$NPORT" 10000 || { echo "mirror: nginx did not start"; cat "$W/nginx/out.log"; exit 1; }
"$TK" wait-tcp 127.0.0.1 "$MPORT" 30000 || { echo "mirror: hydra-mirror did not start"; cat "$W/mirror.log"; exit 1; }

VPORT=$("$TK" free-port)
mkdir -p "$W/peer"
cat > "$W/peer.yaml" <<EOF
listen: "127.0.0.1:$VPORT"
root: $W/peer
mode: peer
origin_url: http://127.0.0.1:$MPORT
max_connections: 4096
log_level: warn
scrub_bytes_per_s: 0
verify_max_age_s: 0
EOF
"$M" --config "$W/peer.yaml" > "$W/peer.log" 2>&1 &
VPID=$!
"$TK" wait-tcp 127.0.0.1 "$VPORT" 30000 || { echo "mirror: the peer did not start"; cat "$W/peer.log"; exit 1; }

url() { echo "http://127.0.0.1:$1/api/v1/peer/files/bench/$2"; }
# rps PORT FILE CONNS: requests per second from wrk.
rps() {
	wrk -t2 -c"$3" -d"${DURATION}s" "$(url "$1" "$2")" 2> /dev/null |
		awk '/^Requests\/sec:/ { print $2 }'
}
best() { sort -g | tail -n1; }

# Warm the page cache and both servers once.
for p in "$NPORT" "$MPORT" "$VPORT"; do
	curl -s -o /dev/null "$(url "$p" 1g.bin)"
	curl -s -o /dev/null "$(url "$p" 1m.bin)"
done

: > "$W/n1m"; : > "$W/m1m"; : > "$W/n64k"; : > "$W/m64k"; : > "$W/ncurl"; : > "$W/mcurl"
: > "$W/v1m"; : > "$W/vcurl"
for r in $(seq 1 "$ROUNDS"); do
	rps "$NPORT" 1m.bin 64 >> "$W/n1m"
	rps "$MPORT" 1m.bin 64 >> "$W/m1m"
	rps "$NPORT" 64k.bin 64 >> "$W/n64k"
	rps "$MPORT" 64k.bin 64 >> "$W/m64k"
	curl -s -o /dev/null -w '%{speed_download}\n' "$(url "$NPORT" 1g.bin)" >> "$W/ncurl"
	curl -s -o /dev/null -w '%{speed_download}\n' "$(url "$MPORT" 1g.bin)" >> "$W/mcurl"
	rps "$VPORT" 1m.bin 64 >> "$W/v1m"
	curl -s -o /dev/null -w '%{speed_download}\n' "$(url "$VPORT" 1g.bin)" >> "$W/vcurl"
	echo "# round $r of $ROUNDS done" >&2
done

# Peak RSS of hydra-mirror under 256 connections.
wrk -t2 -c256 -d"${DURATION}s" "$(url "$MPORT" 1m.bin)" > /dev/null 2>&1
RSS_KB=$(awk '/^VmHWM:/ { print $2 }' "/proc/$MPID/status")

N1M=$(best < "$W/n1m"); M1M=$(best < "$W/m1m")
N64=$(best < "$W/n64k"); M64=$(best < "$W/m64k")
NC=$(best < "$W/ncurl"); MC=$(best < "$W/mcurl")
V1M=$(best < "$W/v1m"); VC=$(best < "$W/vcurl")

awk -v n1="$N1M" -v m1="$M1M" -v n6="$N64" -v m6="$M64" -v nc="$NC" -v mc="$MC" \
    -v v1="$V1M" -v vc="$VC" -v rss="$RSS_KB" -v rounds="$ROUNDS" -v dur="$DURATION" '
function ratio(m, n) { return n > 0 ? m / n : 0 }
BEGIN {
	r1 = ratio(m1, n1); r6 = ratio(m6, n6); rc = ratio(mc, nc)
	printf "# best of %d interleaved rounds, wrk %d s each\n", rounds, dur
	printf "%-34s %14s %14s %7s\n", "measure", "nginx", "hydra-mirror", "ratio"
	printf "%-34s %14.0f %14.0f %7.2f\n", "1 MiB, 64 connections (req/s)", n1, m1, r1
	printf "%-34s %14.0f %14.0f %7.2f\n", "64 KiB, 64 connections (req/s)", n6, m6, r6
	printf "%-34s %14.1f %14.1f %7.2f\n", "1 GiB, one curl (MiB/s)", nc / 1048576, mc / 1048576, rc
	printf "%-34s %14s %14.1f %7s\n", "peak RSS, 256 connections (MiB)", "-", rss / 1024,
	       rss < 65536 ? "ok" : "OVER"
	printf "%-34s %14s %14.0f %7.2f\n", "1 MiB hashed, req/s (vs sendfile)", "-", v1,
	       ratio(v1, m1)
	printf "%-34s %14s %14.1f %7.2f\n", "1 GiB hashed, MiB/s (vs sendfile)", "-",
	       vc / 1048576, ratio(vc, mc)
	worst = r1; if (r6 < worst) worst = r6; if (rc < worst) worst = rc
	printf "mirror: ratio=%.2f (target >= 0.9)\n", worst
}'
