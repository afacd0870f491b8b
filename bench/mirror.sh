#!/bin/bash
# bench/mirror.sh: hydra-mirror against the targets of issue 18, each against
# nginx (or a reference) in the same run, on the same files, interleaved.
#
#   1. 64 KiB file, wrk -t2 -c64: mirror/nginx req/s >= 1.0
#   2. 1 MiB file, wrk -t2 -c64: >= 1.2; one 1 GiB download with curl: >= 0.95
#   3. HTTPS, the same certificate for both, 1 MiB, wrk -t2 -c64: >= 0.8
#   4. IDLE_CONNS idle keep-alive connections held open (each did one GET):
#      peak RSS of hydra-mirror <= 64 MiB, and meanwhile PROBE_GETS sequential
#      fresh-connection 64 KiB GETs answered within 50 ms at the 99th
#      percentile (absolute targets; nginx is measured the same way and shown)
#   5. a cold miss feeding FILL_CLIENTS clients: a district peer with an empty
#      store in front of an origin paced at FILL_RATE; every client's rate
#      >= 0.9x the rate of one client straight on the origin, same round
#
# Rows without a target, for reference: peak RSS after wrk with 256
# connections, a peer hashing every hit as it is sent (verify_max_age_s: 0)
# against the sendfile rows, the p50 of row 4 and the median client of row 5.
#
# Rows 1 to 3 and 5 keep the best of ROUNDS interleaved rounds (the machine is
# shared: a slower round measures the neighbours). Prints a table with the
# columns measure, nginx (or reference), hydra-mirror, ratio, target, verdict,
# then `mirror: N of M targets met` and last
# `mirror: ratio=<x> (target >= 1)`, x being the worst target's value over its
# bound (ratio/bound for ">=", bound/value for "<="). Not a test: it measures.
#
# Knobs: ROUNDS (3), DURATION (5 s of wrk), IDLE_CONNS (10000), PROBE_GETS
# (1000), FILL_CLIENTS (64), FILL_MB (128), FILL_RATE (32M, bytes per second as
# max_egress_bytes_per_s reads it; 64 clients at 32M are 2 GiB/s out of one
# process, about half of what this 2-core machine's loopback carries, see
# docs/mirror.md), ROWS (`load idle fill`: rows 1-3, 4, 5),
# MIRROR_BIN (another build's hydra-mirror; the tools come from BUILD).
#
#   BUILD=build ROUNDS=3 DURATION=5 IDLE_CONNS=10000 bash bench/mirror.sh
#   ROWS=idle MIRROR_BIN=/other/build/bin/hydra-mirror bash bench/mirror.sh
set -u
HERE=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
IDLE_CONNS=${IDLE_CONNS:-10000}
PROBE_GETS=${PROBE_GETS:-1000}
FILL_CLIENTS=${FILL_CLIENTS:-64}
FILL_MB=${FILL_MB:-128}
FILL_RATE=${FILL_RATE:-32M}
ROWS=${ROWS:-load idle fill}
M=${MIRROR_BIN:-$HERE/$BUILD/bin/hydra-mirror}
TK="$HERE/$BUILD/bin/hydra-testkit"
CP="$HERE/$BUILD/bin/conn-probe"
# The most connections hydra-mirror accepts (MIR_CONNECTIONS_MAX).
MIRROR_CONNS_MAX=16384
# Descriptors beside the idle connections: listeners, files, logs, stdio.
FD_SPARE=512
# A server that exits on TERM does so at once; one that does not is killed.
STOP_S=10
# Held connections outlive the row by far: the row ends them, or they end
# themselves after this if the script is killed.
HOLD_S=600

for tool in nginx wrk curl openssl; do
	command -v "$tool" > /dev/null || { echo "mirror: $tool not installed (make deps)"; exit 1; }
done
if [ ! -x "$HERE/$BUILD/bin/hydra-mirror" ] || [ ! -x "$TK" ] || [ ! -x "$CP" ]; then
	make -s -C "$HERE" BUILD="$BUILD" all || exit 1
fi
[ -x "$M" ] || { echo "mirror: $M is not an executable"; exit 1; }
# Row 4 needs a descriptor per idle connection in the client and in the server.
ulimit -n "$(ulimit -Hn)" 2> /dev/null
NOFILE=$(ulimit -n)
# nginx wants a number; an unlimited shell still has the kernel's nr_open.
case $NOFILE in *[!0-9]*) NOFILE=$(cat /proc/sys/fs/nr_open) ;; esac

# want WORD: whether ROWS names that group of rows.
want() { case " $ROWS " in *" $1 "*) return 0 ;; esac; return 1; }

W=$(mktemp -d "${TMPDIR:-/tmp}/hydra-bench-mirror.XXXXXX")
PIDS=""
# stop PID: TERM, a bounded wait, then KILL.
stop() {
	local p rest=""
	for p in $PIDS; do [ "$p" = "$1" ] || rest="$rest $p"; done
	PIDS=$rest
	kill "$1" 2> /dev/null || return 0
	timeout "$STOP_S" tail --pid="$1" -f /dev/null 2> /dev/null || kill -KILL "$1" 2> /dev/null
	wait "$1" 2> /dev/null
	return 0
}
cleanup() {
	local p
	for p in $PIDS; do stop "$p"; done
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# start LOG CMD...: runs CMD in the background, its PID in $LAST.
start() {
	local log=$1
	shift
	"$@" > "$log" 2>&1 &
	LAST=$!
	PIDS="$PIDS $LAST"
}
# wait_up NAME PORT LOG: bounded wait for a listener.
wait_up() {
	"$TK" wait-tcp 127.0.0.1 "$2" 30000 && return 0
	echo "mirror: $1 did not start"
	cat "$3"
	exit 1
}

mkdir -p "$W/root/files/bench" "$W/origin/files/bench" "$W/district" "$W/peer" "$W/tls"
# nginx workers run as an unprivileged user: let them read the files.
chmod 755 "$W"
head -c 1048576 /dev/urandom > "$W/root/files/bench/1m.bin"
head -c 65536 /dev/urandom > "$W/root/files/bench/64k.bin"
want load && head -c 1073741824 /dev/zero > "$W/root/files/bench/1g.bin"
# Row 5: one cold file per round (links of one file, each a miss of its own).
if want fill; then
	head -c $((FILL_MB * 1048576)) /dev/urandom > "$W/origin/files/bench/fill-1.bin"
	for r in $(seq 2 "$ROUNDS"); do
		ln "$W/origin/files/bench/fill-1.bin" "$W/origin/files/bench/fill-$r.bin"
	done
fi
chmod -R a+rX "$W/root"
sh "$HERE/tests/support/gen-certs.sh" "$W/tls" localhost || { echo "mirror: no test certificate"; exit 1; }
chmod a+r "$W/tls/localhost.key"

# nginx_conf DIR PORT [TLS_PORT]: nginx serving the mirror's files under the
# same URLs, with sendfile and two workers, as a tuned static server would.
nginx_conf() {
	local tls=""
	[ -n "${3:-}" ] && tls="server {
		listen 127.0.0.1:$3 ssl;
		ssl_certificate $W/tls/localhost.pem;
		ssl_certificate_key $W/tls/localhost.key;
		location /api/v1/peer/files/ { alias $W/root/files/; }
	}"
	mkdir -p "$1"
	cat > "$1/nginx.conf" <<EOF
worker_processes 2;
worker_rlimit_nofile $NOFILE;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log;
events { worker_connections $MIRROR_CONNS_MAX; }
http {
	sendfile on;
	tcp_nopush on;
	access_log off;
	keepalive_requests 1000000;
	keepalive_timeout ${HOLD_S}s;
	client_body_temp_path $1/body;
	proxy_temp_path $1/proxy;
	fastcgi_temp_path $1/fastcgi;
	uwsgi_temp_path $1/uwsgi;
	scgi_temp_path $1/scgi;
	default_type application/octet-stream;
	server {
		listen 127.0.0.1:$2;
		location /api/v1/peer/files/ { alias $W/root/files/; }
	}
	$tls
}
EOF
}
# mirror_conf FILE PORT ROOT [KEY: VALUE...]: a hydra-mirror configuration.
mirror_conf() {
	local f=$1 port=$2 root=$3
	shift 3
	{
		echo "listen: \"127.0.0.1:$port\""
		echo "root: $root"
		echo "log_level: warn"
		echo "shutdown_grace_s: 0"
		for kv in "$@"; do echo "$kv"; done
	} > "$f"
}

url() { echo "http://127.0.0.1:$1/api/v1/peer/files/bench/$2"; }
surl() { echo "https://127.0.0.1:$1/api/v1/peer/files/bench/$2"; }
# rps URL CONNS: requests per second from wrk.
rps() {
	wrk -t2 -c"$2" -d"${DURATION}s" "$1" 2> /dev/null |
		awk '/^Requests\/sec:/ { print $2 }'
}
speed() { curl -sk -o /dev/null --max-time 120 -w '%{speed_download}\n' "$1"; }
best() { sort -g | tail -n1; }

for f in n64k m64k n1m m1m ncurl mcurl ns1m ms1m v1m vcurl; do : > "$W/$f"; done
RSS256_KB=0
if want load; then
	NPORT=$("$TK" free-port)
	NSPORT=$("$TK" free-port)
	MPORT=$("$TK" free-port)
	MSPORT=$("$TK" free-port)
	VPORT=$("$TK" free-port)
	nginx_conf "$W/nginx" "$NPORT" "$NSPORT"
	start "$W/nginx/out.log" nginx -c "$W/nginx/nginx.conf" -p "$W/nginx"
	NPID=$LAST
	mirror_conf "$W/mirror.yaml" "$MPORT" "$W/root" "max_connections: 4096" \
		"max_connections_per_ip: 4096"
	start "$W/mirror.log" "$M" --config "$W/mirror.yaml"
	MPID=$LAST
	mirror_conf "$W/mirror-tls.yaml" "$MSPORT" "$W/root" "max_connections: 4096" \
		"max_connections_per_ip: 4096" "tls:" "  cert: $W/tls/localhost.pem" \
		"  key: $W/tls/localhost.key"
	start "$W/mirror-tls.log" "$M" --config "$W/mirror-tls.yaml"
	mirror_conf "$W/peer.yaml" "$VPORT" "$W/peer" "mode: peer" \
		"origin_url: http://127.0.0.1:$MPORT" "max_connections: 4096" \
		"max_connections_per_ip: 4096" "scrub_bytes_per_s: 0" "verify_max_age_s: 0"
	start "$W/peer.log" "$M" --config "$W/peer.yaml"
	wait_up nginx "$NPORT" "$W/nginx/out.log"
	wait_up "nginx (https)" "$NSPORT" "$W/nginx/out.log"
	wait_up hydra-mirror "$MPORT" "$W/mirror.log"
	wait_up "hydra-mirror (https)" "$MSPORT" "$W/mirror-tls.log"
	wait_up "the hashing peer" "$VPORT" "$W/peer.log"

	# Warm the page cache and every server once.
	for p in "$NPORT" "$MPORT" "$VPORT"; do
		curl -s -o /dev/null "$(url "$p" 1g.bin)"
		curl -s -o /dev/null "$(url "$p" 1m.bin)"
	done
	for p in "$NSPORT" "$MSPORT"; do curl -sk -o /dev/null "$(surl "$p" 1m.bin)"; done

	
	for r in $(seq 1 "$ROUNDS"); do
		rps "$(url "$NPORT" 64k.bin)" 64 >> "$W/n64k"
		rps "$(url "$MPORT" 64k.bin)" 64 >> "$W/m64k"
		rps "$(url "$NPORT" 1m.bin)" 64 >> "$W/n1m"
		rps "$(url "$MPORT" 1m.bin)" 64 >> "$W/m1m"
		speed "$(url "$NPORT" 1g.bin)" >> "$W/ncurl"
		speed "$(url "$MPORT" 1g.bin)" >> "$W/mcurl"
		rps "$(surl "$NSPORT" 1m.bin)" 64 >> "$W/ns1m"
		rps "$(surl "$MSPORT" 1m.bin)" 64 >> "$W/ms1m"
		rps "$(url "$VPORT" 1m.bin)" 64 >> "$W/v1m"
		speed "$(url "$VPORT" 1g.bin)" >> "$W/vcurl"
		echo "# load round $r of $ROUNDS done at ${SECONDS}s" >&2
	done
	# Peak RSS of hydra-mirror after the load rows and 256 connections.
	wrk -t2 -c256 -d"${DURATION}s" "$(url "$MPORT" 1m.bin)" > /dev/null 2>&1
	RSS256_KB=$(awk '/^VmHWM:/ { print $2 }' "/proc/$MPID/status")
	# The load rows are done: their servers would only take memory from row 4.
	for p in $PIDS; do stop "$p"; done
	echo "# load rows done at ${SECONDS}s" >&2
fi

# Row 4. hwm_kb PID...: the sum of the processes' peak RSS in KiB.
hwm_kb() {
	local p
	for p in "$@"; do awk '/^VmHWM:/ { print $2 }' "/proc/$p/status" 2> /dev/null; done |
		awk '{ s += $1 } END { print s + 0 }'
}
# idle NAME PORT PID...: holds IDLE_CONNS connections to PORT, probes it
# meanwhile, and leaves `held failed closed rss_kb p50 p99 max probe_failed`
# in $W/idle-NAME.
idle() {
	local name=$1 port=$2 hpid
	shift 2
	start "$W/hold-$name.out" "$CP" hold 127.0.0.1 "$port" /api/v1/peer/files/bench/64k.bin \
		"$IDLE_CONNS" "$HOLD_S"
	hpid=$LAST
	# conn-probe gives up on setting up connections after 120 s.
	"$TK" wait-log "$W/hold-$name.out" "ready held=" 150000 > /dev/null ||
		echo "# $name: no ready line from conn-probe hold" >&2
	"$CP" latency 127.0.0.1 "$port" /api/v1/peer/files/bench/64k.bin "$PROBE_GETS" \
		> "$W/lat-$name.out" 2>&1
	hwm_kb "$@" > "$W/rss-$name"
	stop "$hpid"
	sed -n 's/^first failure/# '"$name"' hold: first failure/p' "$W/hold-$name.out" >&2
	sed -n 's/^first failure/# '"$name"' probe: first failure/p' "$W/lat-$name.out" >&2
	# held failed closed rss_kb p50 p99 max probe_failed, -1 where missing.
	awk -v rss="$(cat "$W/rss-$name")" '
	function get(a, k) { return (k in a) ? a[k] : -1 }
	/^ready / { for (i = 2; i <= NF; i++) { split($i, kv, "="); h[kv[1]] = kv[2] } }
	/^done / { split($3, kv, "="); h["closed"] = kv[2] }
	/^latency / { for (i = 2; i <= NF; i++) { split($i, kv, "="); l[kv[1]] = kv[2] } }
	END {
		print get(h, "held"), get(h, "failed"), get(h, "closed"), rss, get(l, "p50_ms"),
		      get(l, "p99_ms"), get(l, "max_ms"), get(l, "failed")
	}' "$W/hold-$name.out" "$W/lat-$name.out" > "$W/idle-$name"
}
IDLE_MAX=$((IDLE_CONNS * 3 / 2 + 256))
[ "$IDLE_MAX" -gt "$MIRROR_CONNS_MAX" ] && IDLE_MAX=$MIRROR_CONNS_MAX
: > "$W/idle-nginx"; : > "$W/idle-mirror"
if ! want idle; then
	:
elif [ $((IDLE_CONNS + FD_SPARE)) -gt "$NOFILE" ] || [ "$IDLE_CONNS" -ge "$IDLE_MAX" ]; then
	echo "# idle row skipped: $IDLE_CONNS connections need more than ulimit -n $NOFILE" \
		"or hydra-mirror's $MIRROR_CONNS_MAX" >&2
else
	IPORT=$("$TK" free-port)
	nginx_conf "$W/nginx-idle" "$IPORT"
	start "$W/nginx-idle/out.log" nginx -c "$W/nginx-idle/nginx.conf" -p "$W/nginx-idle"
	INPID=$LAST
	wait_up "nginx (idle)" "$IPORT" "$W/nginx-idle/out.log"
	# shellcheck disable=SC2046
	idle nginx "$IPORT" "$INPID" $(pgrep -P "$INPID")
	stop "$INPID"
	# Room for the held connections with a quarter of max_connections to
	# spare (below that, idle keep-alive connections are cut after 5 s).
	IPORT=$("$TK" free-port)
	mirror_conf "$W/mirror-idle.yaml" "$IPORT" "$W/root" "max_connections: $IDLE_MAX" \
		"max_connections_per_ip: $IDLE_MAX" "connection_timeout_s: $HOLD_S"
	start "$W/mirror-idle.log" "$M" --config "$W/mirror-idle.yaml"
	IMPID=$LAST
	wait_up "hydra-mirror (idle)" "$IPORT" "$W/mirror-idle.log"
	idle mirror "$IPORT" "$IMPID"
	stop "$IMPID"
	echo "# idle rows done at ${SECONDS}s" >&2
fi

# Row 5: an origin paced at FILL_RATE, a district peer with an empty store.
: > "$W/fill-rounds"
if want fill; then
OPORT=$("$TK" free-port)
DPORT=$("$TK" free-port)
mirror_conf "$W/origin.yaml" "$OPORT" "$W/origin" "max_egress_bytes_per_s: $FILL_RATE"
start "$W/origin.log" "$M" --config "$W/origin.yaml"
mirror_conf "$W/district.yaml" "$DPORT" "$W/district" "mode: peer" "district: bench" \
	"origin_url: http://127.0.0.1:$OPORT" "scrub_bytes_per_s: 0"
start "$W/district.log" "$M" --config "$W/district.yaml"
wait_up "the paced origin" "$OPORT" "$W/origin.log"
wait_up "the district" "$DPORT" "$W/district.log"
FILL_BYTES=$((FILL_MB * 1048576))
# Ten times the paced transfer, and never under a minute.
FILL_MAX_S=$(awk -v b="$FILL_BYTES" -v r="$FILL_RATE" 'BEGIN {
	m = 1; if (r ~ /[kK]$/) m = 1024; if (r ~ /[mM]$/) m = 1048576; if (r ~ /[gG]$/) m = 1073741824
	t = 10 * b / ((r + 0) * m); print (t < 60 ? 60 : int(t) + 1) }')
for r in $(seq 1 "$ROUNDS"); do
	DIRECT=$(curl -s -o /dev/null --max-time "$FILL_MAX_S" -w '%{speed_download}' \
		"$(url "$OPORT" "fill-$r.bin")")
	CPIDS=""
	for c in $(seq 1 "$FILL_CLIENTS"); do
		curl -s -o /dev/null --max-time "$FILL_MAX_S" \
			-w '%{http_code} %{size_download} %{speed_download}\n' \
			"$(url "$DPORT" "fill-$r.bin")" > "$W/fill-$r-$c" 2>&1 &
		CPIDS="$CPIDS $!"
	done
	# Each curl is bounded by --max-time.
	for p in $CPIDS; do wait "$p"; done
	# A client that got less than the whole file, or none, counts as rate 0.
	cat "$W"/fill-"$r"-* | awk -v want="$FILL_BYTES" -v n="$FILL_CLIENTS" '
	{ print (($1 == 200 && $2 == want) ? $3 : 0) }
	END { for (i = NR + 1; i <= n; i++) print 0 }' | sort -g > "$W/fill-$r-rates"
	echo "$DIRECT $(head -n1 "$W/fill-$r-rates")" \
		"$(sed -n "$(((FILL_CLIENTS + 1) / 2))p" "$W/fill-$r-rates")" >> "$W/fill-rounds"
	echo "# fill round $r of $ROUNDS done at ${SECONDS}s" >&2
done
fi
# The round whose worst client came closest to the origin's rate counts.
FILL=$(awk 'NF == 3 { r = ($1 > 0) ? $2 / $1 : 0; if (NR == 1 || r > b) { b = r; l = $0 } } END { print l }' \
	"$W/fill-rounds")

awk -v n6="$(best < "$W/n64k")" -v m6="$(best < "$W/m64k")" \
    -v n1="$(best < "$W/n1m")" -v m1="$(best < "$W/m1m")" \
    -v nc="$(best < "$W/ncurl")" -v mc="$(best < "$W/mcurl")" \
    -v ns="$(best < "$W/ns1m")" -v ms="$(best < "$W/ms1m")" \
    -v v1="$(best < "$W/v1m")" -v vc="$(best < "$W/vcurl")" -v rss256="$RSS256_KB" \
    -v idn="$(cat "$W/idle-nginx")" -v idm="$(cat "$W/idle-mirror")" \
    -v fill="$FILL" -v rounds="$ROUNDS" -v dur="$DURATION" -v conns="$IDLE_CONNS" \
    -v gets="$PROBE_GETS" -v clients="$FILL_CLIENTS" -v fmb="$FILL_MB" -v frate="$FILL_RATE" \
    -v rows=" $ROWS " -v bin="$M" '
function ratio(m, n) { return n > 0 ? m / n : 0 }
# A target row. m is the text shown, -1 when the measure failed; r the
# mirror/reference ratio for ">=" targets; bound a number.
function line(what, n, m, r, op, bound, unit,    mv, norm, ok) {
	mv = m + 0
	if (op == ">=") norm = r / bound
	else norm = (mv > 0) ? bound / mv : 0
	ok = (op == ">=") ? (r >= bound) : (mv >= 0 && mv <= bound)
	if (mv < 0) { ok = 0; norm = 0 }
	targets++; met += ok
	if (targets == 1 || norm < worst) worst = norm
	printf "%-44s %14s %14s %6s   %-11s %s\n", what, n, mv < 0 ? "failed" : m,
	       (op == ">=") ? sprintf("%.2f", r) : "-", op " " bound unit, ok ? "ok" : "MISS"
}
function info(what, n, m, r) {
	printf "%-44s %14s %14s %6s   %-11s %s\n", what, n, m, r, "-", "info"
}
BEGIN {
	printf "# %s; rows 1-3 and 5: best of %d interleaved rounds, wrk -t2 %d s\n", bin, rounds, dur
	printf "%-44s %14s %14s %6s   %-11s %s\n", "measure", "nginx/ref", "hydra-mirror",
	       "ratio", "target", "verdict"
	if (index(rows, " load ")) {
		line("64 KiB, 64 connections (req/s)", sprintf("%.0f", n6), sprintf("%.0f", m6),
		     ratio(m6, n6), ">=", "1.00", "")
		line("1 MiB, 64 connections (req/s)", sprintf("%.0f", n1), sprintf("%.0f", m1),
		     ratio(m1, n1), ">=", "1.20", "")
		line("1 GiB, one curl (MiB/s)", sprintf("%.1f", nc / 1048576),
		     sprintf("%.1f", mc / 1048576), ratio(mc, nc), ">=", "0.95", "")
		line("HTTPS 1 MiB, 64 connections (req/s)", sprintf("%.0f", ns), sprintf("%.0f", ms),
		     ratio(ms, ns), ">=", "0.80", "")
	}
	if (index(rows, " idle ") && split(idm, im, " ") == 8 && split(idn, inn, " ") == 8) {
		# A hold that lost connections, or a probe that failed, fails the row.
		mr = (im[2] == 0 && im[3] == 0 && im[1] == conns) ? im[4] / 1024 : -1
		mp = (im[8] == 0 && mr >= 0) ? im[6] + 0 : -1
		line(sprintf("%d idle: peak RSS (MiB)", conns), sprintf("%.1f", inn[4] / 1024),
		     mr < 0 ? -1 : sprintf("%.1f", mr), 0, "<=", 64, " MiB")
		line(sprintf("%d idle: fresh 64 KiB GET p99 (ms)", conns), inn[6],
		     mp < 0 ? -1 : sprintf("%.2f", mp), 0, "<=", 50, " ms")
		info(sprintf("%d idle: p50 / max of %d GETs (ms)", conns, gets),
		     sprintf("%.2f / %.1f", inn[5], inn[7]), sprintf("%.2f / %.1f", im[5], im[7]), "-")
		info(sprintf("%d idle: held / failed / closed", conns),
		     inn[1] " / " inn[2] " / " inn[3], im[1] " / " im[2] " / " im[3], "-")
	} else if (index(rows, " idle ")) {
		line(sprintf("%d idle: peak RSS (MiB)", conns), "-", -1, 0, "<=", 64, " MiB")
		line(sprintf("%d idle: fresh 64 KiB GET p99 (ms)", conns), "-", -1, 0, "<=", 50, " ms")
	}
	if (index(rows, " fill ")) {
		if (split(fill, f, " ") != 3) { f[1] = 0; f[2] = -1; f[3] = -1 }
		line(sprintf("cold %d MiB to %d clients, worst (MiB/s)", fmb, clients),
		     sprintf("%.1f", f[1] / 1048576), f[2] < 0 ? -1 : sprintf("%.1f", f[2] / 1048576),
		     ratio(f[2], f[1]), ">=", "0.90", "")
		info(sprintf("  origin paced at %s/s; median client", frate),
		     sprintf("%.1f", f[1] / 1048576), sprintf("%.1f", f[3] / 1048576),
		     sprintf("%.2f", ratio(f[3], f[1])))
	}
	if (index(rows, " load ")) {
		info("peak RSS after load, 256 connections (MiB)", "-", sprintf("%.1f", rss256 / 1024),
		     "-")
		info("1 MiB hashed, req/s (ref: sendfile)", sprintf("%.0f", m1), sprintf("%.0f", v1),
		     sprintf("%.2f", ratio(v1, m1)))
		info("1 GiB hashed, MiB/s (ref: sendfile)", sprintf("%.1f", mc / 1048576),
		     sprintf("%.1f", vc / 1048576), sprintf("%.2f", ratio(vc, mc)))
	}
	printf "mirror: %d of %d targets met\n", met, targets
	printf "mirror: ratio=%.2f (target >= 1)\n", worst
}'
