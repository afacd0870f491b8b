#!/bin/bash
# hydra-mirror's serving core (issue 18): libmicrohttpd's epoll thread pool,
# no thread per connection. Idle keep-alive connections cost no thread; a
# hit is answered at once while 32 clients are parked on a slow fill and
# while paced downloads wait for the egress bucket; a reload and a shutdown
# with connections parked on a fill end cleanly.
. "$(dirname "$0")/../lib.sh"

M="$BIN/hydra-mirror"
LOAD="$T_ROOT/tests/support/slowloris.py"
if ! command -v python3 > /dev/null; then
	t_skip "serving core" "python3 not installed"
	t_done
fi
ulimit -n 4096 2> /dev/null
# Threads of a mirror with nothing to do but hold connections: the pool
# (one per core), the park's workers (16) and timer, the guard, the index
# writer, the main thread and a few of the store's and the verifier's.
# IDLE connections, at least twice the bound, so that a thread per
# connection could not pass however many cores the machine has.
CORES=$(nproc)
THREADS_MAX=$((CORES + 40))
IDLE=$((THREADS_MAX * 2 > 300 ? THREADS_MAX * 2 : 300))

threads_of() { awk '/^Threads:/ { print $2 }' "/proc/$1/status"; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
# ms_of CMD...: runs CMD, prints its wall time in milliseconds.
ms_of() {
	_t0=$(date +%s%N)
	"$@" > /dev/null
	echo $((($(date +%s%N) - _t0) / 1000000))
}

# ---------------------------------------------------------------- idle clients
ROOT="$T_DIR/origin"
mkdir -p "$ROOT/files/b"
head -c 100000 /dev/urandom > "$ROOT/files/b/a.bin"
env_port=$(t_free_port)
t_start origin "$T_DIR/origin.log" "$M" --listen "127.0.0.1:$env_port" --root "$ROOT" \
	--max-egress-bytes-per-s 1M
OPID=$T_LAST_PID
t_wait_log "$T_DIR/origin.log" "listening on" 10000 || { t_fail "origin starts" "see log"; t_done; }
O="http://127.0.0.1:$env_port"

t_start idle "$T_DIR/idle.log" python3 "$LOAD" --port "$env_port" --sources 4 \
	--source-base 127.0.9.1 --mode keepalive --count "$IDLE" --duration 60
t_wait_log "$T_DIR/idle.log" "ready" 20000 || t_fail "$IDLE keep-alive clients connect" "see log"
n=0 open=0
while [ $n -lt 100 ] && [ "$open" -lt "$IDLE" ]; do
	open=$(curl -s --max-time 2 "$O/metrics" |
		awk '$1 == "hydra_mirror_connections_open" { print $2 }')
	open=${open:-0}
	[ "$open" -ge "$IDLE" ] || sleep 0.1
	n=$((n + 1))
done
if [ "$open" -ge "$IDLE" ]; then
	t_ok "$IDLE idle keep-alive connections are held ($open open)"
else
	t_fail "$IDLE idle keep-alive connections are held" "$open open"
fi
th=$(threads_of "$OPID")
if [ "$th" -lt "$THREADS_MAX" ]; then
	t_ok "no thread per connection: $th threads for $open connections (bound $THREADS_MAX)"
else
	t_fail "no thread per connection" "$th threads for $open connections"
fi
code=$(curl -s -o "$T_DIR/a1" -w '%{http_code}' --max-time 5 "$O/api/v1/peer/files/b/a.bin")
t_eq "a fresh GET is answered meanwhile" "$code $(sha "$T_DIR/a1")" "200 $(sha "$ROOT/files/b/a.bin")"
t_stop idle

# ---------------------------------------------------------------- pacing
# Four paced downloads at once (more than the pool has threads on a small
# machine): the bucket parks them, so the pool still answers at once.
head -c 1500000 /dev/urandom > "$ROOT/files/b/paced.bin"
t0=$(date +%s%N)
CURLS=""
for i in 1 2 3 4; do
	curl -s -o "$T_DIR/paced$i" --max-time 60 "$O/api/v1/peer/files/b/paced.bin" &
	CURLS="$CURLS $!"
done
n=0
while [ $n -lt 100 ] && [ ! -s "$T_DIR/paced1" ]; do sleep 0.05; n=$((n + 1)); done
ms=$(ms_of curl -s --max-time 10 "$O/api/v1/health")
if [ "$ms" -lt 1000 ]; then
	t_ok "health is answered in ${ms} ms while 4 downloads are paced"
else
	t_fail "health is answered while 4 downloads are paced" "${ms} ms"
fi
# shellcheck disable=SC2086
wait $CURLS
total=$((($(date +%s%N) - t0) / 1000000))
ok=1
for i in 1 2 3 4; do
	[ "$(sha "$T_DIR/paced$i")" = "$(sha "$ROOT/files/b/paced.bin")" ] || ok=0
done
t_eq "the 4 paced downloads are whole" "$ok" 1
# 6 MB at 1 MB/s: 6 s when paced; unpaced on loopback well under a second.
if [ "$total" -ge 3000 ]; then
	t_ok "and paced at max_egress_bytes_per_s (${total} ms for 6 MB at 1 MB/s)"
else
	t_fail "paced at max_egress_bytes_per_s" "${total} ms for 6 MB at 1 MB/s"
fi
t_stop origin

# ---------------------------------------------------------------- slow fill
# An origin that sends half of slow.bin, then holds the rest until the test
# creates the gate file; fast.bin goes out at once.
SIZE=2000000
head -c "$SIZE" /dev/urandom > "$T_DIR/slow.bin"
head -c 50000 /dev/urandom > "$T_DIR/fast.bin"
cat > "$T_DIR/gated.py" <<'EOF'
import hashlib, http.server, os, socketserver, sys, time
port, folder = int(sys.argv[1]), sys.argv[2]
GATE_WAIT_S = 120  # bound: a test that never opens the gate ends anyway
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        sys.stdout.write("%s %s\n" % (self.command, self.path)); sys.stdout.flush()
    def do_HEAD(self): self.answer(False)
    def do_GET(self): self.answer(True)
    def answer(self, body):
        name = self.path.rsplit("/", 1)[-1]
        path = os.path.join(folder, name)
        if name not in ("slow.bin", "fast.bin") or not os.path.exists(path):
            self.send_response(404); self.send_header("Content-Length", "0"); self.end_headers(); return
        data = open(path, "rb").read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-File-SHA256", hashlib.sha256(data).hexdigest())
        self.end_headers()
        if not body:
            return
        if name == "fast.bin":
            self.wfile.write(data); return
        half = len(data) // 2
        self.wfile.write(data[:half]); self.wfile.flush()
        t0 = time.time()
        while not os.path.exists(os.path.join(folder, "gate")) and time.time() - t0 < GATE_WAIT_S:
            time.sleep(0.05)
        self.wfile.write(data[half:])
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
S(("127.0.0.1", port), H).serve_forever()
EOF
GPORT=$(t_free_port)
t_start gated "$T_DIR/gated.log" python3 -u "$T_DIR/gated.py" "$GPORT" "$T_DIR"
t_wait_tcp 127.0.0.1 "$GPORT" 10000 || { t_fail "the gated origin starts" "see log"; t_done; }
PROOT="$T_DIR/peer"
mkdir -p "$PROOT"
printf 'listen: 127.0.0.1:%s\nroot: %s\nmode: peer\norigin_url: http://127.0.0.1:%s\nshutdown_grace_s: 1\n' \
	"$(t_free_port)" "$PROOT" "$GPORT" > "$T_DIR/peer.yaml"
PPORT=$(sed -n 's/^listen: 127.0.0.1://p' "$T_DIR/peer.yaml")
t_start peer "$T_DIR/peer.log" "$M" --config "$T_DIR/peer.yaml"
PPID_=$T_LAST_PID
t_wait_log "$T_DIR/peer.log" "listening on" 10000 || { t_fail "peer starts" "see log"; t_done; }
P="http://127.0.0.1:$PPORT/api/v1/peer/files"
curl -s -o /dev/null "$P/fast.bin"

# waiting_on N: polls until N clients of the slow fill hold a quarter of it
# (the origin sent half; curl writes through a stdio buffer).
waiting_on() {
	_n=0 _held=0
	while [ $_n -lt 200 ] && [ "$_held" -lt "$1" ]; do
		_held=0
		for _f in "$T_DIR"/slow.out.*; do
			[ -f "$_f" ] && [ "$(stat -c %s "$_f")" -ge $((SIZE / 4)) ] && _held=$((_held + 1))
		done
		[ "$_held" -ge "$1" ] || sleep 0.05
		_n=$((_n + 1))
	done
	[ "$_held" -ge "$1" ]
}

CURLS=""
for i in $(seq 1 32); do
	curl -s -o "$T_DIR/slow.out.$i" --max-time 120 "$P/slow.bin" &
	CURLS="$CURLS $!"
done
if waiting_on 32; then
	t_ok "32 clients of one slow fill have a quarter of it (the origin sent half)"
else
	t_fail "32 clients of one slow fill have a quarter of it (the origin sent half)" "see $T_DIR"
fi
t_eq "they share one request to the origin" "$(grep -c 'GET /api/v1/peer/files/slow.bin' "$T_DIR/gated.log")" 1
ms=$(ms_of curl -s -o "$T_DIR/fast.out" --max-time 10 "$P/fast.bin")
if [ "$ms" -lt 2000 ] && [ "$(sha "$T_DIR/fast.out")" = "$(sha "$T_DIR/fast.bin")" ]; then
	t_ok "a hit is served in ${ms} ms while 32 clients wait on the fill"
else
	t_fail "a hit is served while 32 clients wait on the fill" "${ms} ms"
fi
th=$(threads_of "$PPID_")
if [ "$th" -lt "$THREADS_MAX" ]; then
	t_ok "parked clients hold no thread: $th threads (bound $THREADS_MAX)"
else
	t_fail "parked clients hold no thread" "$th threads"
fi

# A reload while they are parked: served on, the fill still whole after it.
kill -HUP "$PPID_"
t_wait_log "$T_DIR/peer.log" "reloaded" 10000 && t_ok "a reload with parked clients is applied" ||
	t_fail "a reload with parked clients is applied" "see log"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$P/fast.bin")
t_eq "and the peer still answers" "$code" 200
touch "$T_DIR/gate"
# shellcheck disable=SC2086
wait $CURLS
ok=0
for i in $(seq 1 32); do
	[ "$(sha "$T_DIR/slow.out.$i")" = "$(sha "$T_DIR/slow.bin")" ] && ok=$((ok + 1))
done
t_eq "the 32 clients get the whole file once the origin sends the rest" "$ok" 32

# A shutdown while clients are parked on a fill: resumed before the
# daemon stops (libmicrohttpd may not stop with suspended connections),
# the process ends by itself, without a crash or a sanitizer report.
rm -f "$T_DIR/gate" "$T_DIR"/slow.out.*
CURLS=""
for i in 1 2 3 4 5 6 7 8; do
	curl -s -o "$T_DIR/slow.out.$i" --max-time 60 \
		"http://127.0.0.1:$PPORT/api/v1/peer/files/again/slow.bin" &
	CURLS="$CURLS $!"
done
waiting_on 8 || t_fail "8 clients parked on a second slow fill" "see $T_DIR"
kill -TERM "$PPID_"
n=0
while kill -0 "$PPID_" 2> /dev/null && [ $n -lt 200 ] &&
	[ "$(ps -o stat= -p "$PPID_" 2> /dev/null | cut -c1)" != Z ]; do
	sleep 0.05
	n=$((n + 1))
done
if kill -0 "$PPID_" 2> /dev/null && [ "$(ps -o stat= -p "$PPID_" | cut -c1)" != Z ]; then
	t_fail "a shutdown with parked clients ends" "still running after 10 s"
else
	wait "$PPID_"
	t_eq "a shutdown with parked clients ends cleanly" "$?" 0
fi
t_nogrep "without stopping a daemon with suspended connections" "$T_DIR/peer.log" \
	"suspended connections"
touch "$T_DIR/gate"
# shellcheck disable=SC2086
wait $CURLS
t_stop peer
t_stop gated
t_done
