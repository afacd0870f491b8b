# testbooks/lib/tb.sh: sourced by every testbooks/*.sh (not a testbook itself:
# testbooks/run.sh only runs testbooks/*.sh).
#
# A testbook is one seed's acceptance run on one machine. It makes a network
# namespace of its own (the "venue"), starts the real servers and stand-in
# bodies inside it, blocks with nft where the field runbook blocks with pfctl
# or nft, and passes a step only on evidence: an exact log line, an exit
# status, a live process or an established connection. Every step prints
#   ok - TESTBOOK: STEP: evidence
#   not ok - TESTBOOK: STEP: why, and what was seen instead
# or the whole testbook prints one "skip - TESTBOOK: why".

TB_NAME=$(basename "$0" .sh)
. "$(dirname "$0")/../tests/lib.sh"
# tests/lib.sh assumes tests/integration/X.sh; a testbook sits one level up.
T_ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$T_ROOT/$BUILD/bin"
. "$T_ROOT/tests/support/fleet_env.sh"

# The stability window: 6 minutes in the field (the seeds' "stable for 6
# minutes"), 20 s by default here so the whole set stays near 1.5 minutes.
STABLE_S=${STABLE_S:-20}
NS=""
TB_NFT=hydra_tb

nsx() { ip netns exec "$NS" "$@"; }

tb_ok()   { t_ok "$TB_NAME: $1${2:+: $2}"; }
tb_fail() { t_fail "$TB_NAME: $1" "$2"; }
# tb_eq STEP GOT WANT [WHAT]: WHAT (default "got") names GOT in the evidence.
tb_eq() {
	if [ "$2" = "$3" ]; then tb_ok "$1" "${4:-got} $2"
	else tb_fail "$1" "${4:-got} '$2', want '$3'"; fi
}

# tb_need BIN... [-- CMD...]: skips the whole testbook (exit 0 with one skip
# line) unless this is root with working ip netns and nft, the named
# programs are built and the named commands are installed.
tb_need() {
	_why=""
	_cmds=0
	if [ "$(id -u)" != 0 ]; then
		_why="needs root (ip netns and nft); run: sudo BUILD=$BUILD bash testbooks/$TB_NAME.sh"
	fi
	for _b in "$@"; do
		[ -n "$_why" ] && break
		if [ "$_b" = -- ]; then _cmds=1; continue; fi
		if [ "$_cmds" = 1 ]; then
			command -v "$_b" > /dev/null 2>&1 || _why="$_b is not installed (make deps)"
		else
			[ -x "$BIN/$_b" ] || _why="$BIN/$_b is missing (make BUILD=$BUILD)"
		fi
	done
	if [ -z "$_why" ]; then
		for _c in ip nft; do
			command -v "$_c" > /dev/null 2>&1 || { _why="$_c is not installed"; break; }
		done
	fi
	if [ -z "$_why" ] && ! t_netns_usable; then
		_why="ip netns or nft inside a namespace does not work here"
	fi
	if [ -n "$_why" ]; then
		t_skip "$TB_NAME" "$_why"
		t_done
	fi
}

# tb_netns ADDR...: the testbook's own network namespace, loopback up, with
# ADDRs on lo (the whole 127/8 is local already; the addresses make each
# stand-in host explicit in `ip addr`), and an empty nft table of ours.
# Torn down at exit, even on failure.
tb_netns() {
	NS="htb-$TB_NAME-$$"
	NS=$(printf '%s' "$NS" | cut -c1-40)
	T_ON_EXIT="tb_teardown"
	ip netns add "$NS" || { NS=""; tb_fail "create network namespace" "ip netns add failed"; t_done; }
	nsx ip link set lo up
	for _a in "$@"; do
		nsx ip addr add "$_a/32" dev lo || tb_fail "address $_a on lo" "ip addr add failed"
	done
	nsx nft add table inet "$TB_NFT" &&
		nsx nft add chain inet "$TB_NFT" topology \
			'{ type filter hook output priority 0; policy accept; }' ||
		{ tb_fail "nft table in the namespace" "nft add table failed"; t_done; }
}

# tb_teardown: whatever t_stop left (a stream client orphaned by a KILLed
# supervisor) dies with the namespace: every process in it is ours.
tb_teardown() {
	[ -n "$NS" ] || return 0
	for _p in $(ip netns pids "$NS" 2> /dev/null); do
		kill -KILL "$_p" 2> /dev/null
	done
	ip netns del "$NS" 2> /dev/null
	if [ -d "/etc/netns/$NS" ]; then
		rm -rf "/etc/netns/$NS"
		rmdir /etc/netns 2> /dev/null
	fi
	NS=""
}

# tb_free_port: a port free inside the namespace (where it is used).
tb_free_port() { nsx "$BIN/hydra-testkit" free-port 127.0.0.1; }

# tb_drop CHAIN IP [PORT]: nft drops packets to IP (TCP to IP:PORT when
# given) from this namespace, so a connect times out (no refusal comes
# back), as behind pfctl's "block drop".
tb_drop() {
	if [ -n "${3:-}" ]; then
		nsx nft add rule inet "$TB_NFT" "$1" ip daddr "$2" tcp dport "$3" drop
	else
		nsx nft add rule inet "$TB_NFT" "$1" ip daddr "$2" drop
	fi
}

# tb_connect IP PORT: like `nc -z -w 1`: 0 when IP:PORT accepts within 1 s.
# The error (timed out, refused) is in $TB_CONNECT_WHY.
tb_connect() {
	TB_CONNECT_WHY=$(nsx socat -u /dev/null "TCP:$1:$2,connect-timeout=1" 2>&1)
}

# tb_reach STEP IP PORT yes|no: a connection check as evidence.
tb_reach() {
	if tb_connect "$2" "$3"; then
		if [ "$4" = yes ]; then tb_ok "$1" "connect $2:$3 succeeded"
		else tb_fail "$1" "connect $2:$3 succeeded, want no answer"; fi
	else
		_w=$(printf '%s' "$TB_CONNECT_WHY" | sed 's/.*E connect([^)]*): *//; s/.*E //' | tail -n 1)
		if [ "$4" = no ]; then tb_ok "$1" "connect $2:$3 failed: $_w"
		else tb_fail "$1" "connect $2:$3 failed: $_w"; fi
	fi
}

# tb_listen IP PORT: a stand-in body accepting on IP:PORT, ready on return.
tb_listen() {
	t_start "body-$1" "$T_DIR/body-$1-$2.log" ip netns exec "$NS" \
		"$BIN/hydra-testkit" listen "$1" "$2"
	nsx "$BIN/hydra-testkit" wait-tcp "$1" "$2" 10000 ||
		{ tb_fail "body listener $1:$2 ready" "$(cat "$T_DIR/body-$1-$2.log")"; t_done; }
}

# tb_lines FILE: how many lines FILE has (0 when missing): a mark for the
# "since" arguments below, so each step reads only its own part of a log.
tb_lines() { if [ -f "$1" ]; then wc -l < "$1" | tr -d ' '; else echo 0; fi; }

# tb_find FILE SINCE TEXT: line number (in FILE) and text of the first line
# after line SINCE containing TEXT, as "N:line"; empty when none.
tb_find() {
	[ -f "$1" ] || return 0
	awk -v s="$2" -v t="$3" 'NR > s && index($0, t) { print NR ":" $0; exit }' "$1"
}

# tb_expect STEP FILE SINCE TEXT: the log has the line; its text is the evidence.
tb_expect() {
	_hit=$(tb_find "$2" "$3" "$4")
	if [ -n "$_hit" ]; then tb_ok "$1" "$(printf '%s' "${_hit#*:}" | sed 's/^[[:space:]]*//')"
	else
		tb_fail "$1" "'$4' not in $(basename "$2") (since line $3); last lines:"
		tail -n 6 "$2" 2> /dev/null | sed 's/^/    | /'
	fi
}

# tb_order STEP FILE SINCE TEXT...: each TEXT appears after the previous one.
tb_order() {
	_step=$1 _file=$2 _at=$3
	shift 3
	_ev=""
	for _t in "$@"; do
		_hit=$(tb_find "$_file" "$_at" "$_t")
		if [ -z "$_hit" ]; then
			tb_fail "$_step" "'$_t' not found after line $_at of $(basename "$_file"); last lines:"
			tail -n 8 "$_file" 2> /dev/null | sed 's/^/    | /'
			return 1
		fi
		_at=${_hit%%:*}
		_ev="$_ev${_ev:+ / }line $_at: ${_hit#*: }"
	done
	tb_ok "$_step" "$_ev"
}

# tb_absent STEP FILE SINCE TEXT...: none of TEXT after line SINCE.
tb_absent() {
	_step=$1 _file=$2 _since=$3
	shift 3
	for _t in "$@"; do
		_hit=$(tb_find "$_file" "$_since" "$_t")
		if [ -n "$_hit" ]; then
			tb_fail "$_step" "forbidden line $_hit"
			return 1
		fi
	done
	_list=""
	for _t in "$@"; do _list="$_list${_list:+, }'$_t'"; done
	tb_ok "$_step" "none of $_list in $(basename "$_file") after line $_since"
}

# tb_wait_line STEP FILE SINCE TEXT MS [PID]: polls until the line appears;
# stops waiting early when process PID (the one that would write it) exits.
tb_wait_line() {
	_end=$(( $(date +%s%N) / 1000000 + $5 ))
	while [ -z "$(tb_find "$2" "$3" "$4")" ]; do
		if [ "$(( $(date +%s%N) / 1000000 ))" -ge "$_end" ]; then
			break
		fi
		if [ -n "${6:-}" ] && ! kill -0 "$6" 2> /dev/null; then
			break
		fi
		"$BIN/hydra-testkit" wait-log "$2" "$4" 200 > /dev/null 2>&1
	done
	tb_expect "$1" "$2" "$3" "$4"
}

# tb_established IP PORT: prints the established TCP connections to IP:PORT
# inside the namespace (one per line; empty when none).
tb_established() {
	nsx ss -Htn state established "( dst $1 and dport = :$2 )" 2> /dev/null
}

# tb_agent NAME CONFIG ARGS...: one hydra-agent run in the namespace; stdout
# in $T_DIR/NAME.out, stderr in $T_DIR/NAME.err (checked for sanitizer
# reports by tb_finish), status in $RC.
tb_agent() {
	_n=$1 _c=$2
	shift 2
	nsx "$BIN/hydra-agent" --config "$_c" "$@" > "$T_DIR/$_n.out" 2> "$T_DIR/$_n.err"
	RC=$?
}

# tb_finish: stops everything, looks for sanitizer reports in the stderr of
# every hydra-agent run and tool, prints the closing line and exits.
tb_finish() {
	tb_stop_all
	_bad=$(grep -lE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$T_DIR"/*.err "$T_DIR"/*.log 2> /dev/null)
	if [ -n "$_bad" ]; then
		tb_fail "every program ran without sanitizer reports" "$_bad"
		grep -hA 20 -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' $_bad | head -40 | sed 's/^/    | /'
	fi
	t_done
}

# tb_stop_all: t_stop for everything still running (t_stop checks each
# log for sanitizer reports), before the namespace goes.
tb_stop_all() {
	while read -r _n _p _l; do
		[ -n "$_n" ] && t_stop "$_n"
	done < "$T_PROCS"
}

# tb_json_field FILE KEY: the raw value of the first KEY in one-line JSON.
tb_json_field() {
	grep -o "\"$2\":[^,}]*" "$1" 2> /dev/null | head -1 | sed "s/\"$2\"://; s/^\"//; s/\"$//"
}

# tb_head_config FILE LOG STATE PORT SIM_URL [MODE]: a kiosk's agent.yaml (peppy).
tb_head_config() {
	cat > "$1" << YAML
node_id: node-74adf4f8
state_dir: $3
log_file: $2
discovery:
  cluster_url: $5
  head_id: node-74adf4f8
  district: bxl1
  venue: rupelmonde
  port: $4
  probe_timeout_ms: ${PROBE_TIMEOUT_MS:-1000}
  mode: ${6:-sequential}
  launch_window_s: $TB_LAUNCH_WINDOW_S
YAML
}

# The launch window must close inside the stability window, so a stable
# stream is seen to outlive it: 10 s (the field default) when STABLE_S
# allows, else half of STABLE_S.
TB_LAUNCH_WINDOW_S=10
if [ "$STABLE_S" -lt 20 ] 2> /dev/null; then
	TB_LAUNCH_WINDOW_S=$((STABLE_S / 2))
	[ "$TB_LAUNCH_WINDOW_S" -ge 1 ] || TB_LAUNCH_WINDOW_S=1
fi

case $STABLE_S in
''|*[!0-9]*) echo "STABLE_S must be a number of seconds, got '$STABLE_S'" >&2; exit 64;;
esac

# tb_stream_start NAME CONFIG PORT: `hydra-agent stream -- hydra-stream-client
# {ip} PORT` in the namespace, the way a kiosk runs Moonlight. Its stderr
# (the supervisor's and the client's) is $T_DIR/NAME.err; pid in $TB_STREAM_PID.
tb_stream_start() {
	t_start "$1" "$T_DIR/$1.err" ip netns exec "$NS" "$BIN/hydra-agent" --config "$2" \
		stream -- "$BIN/hydra-stream-client" '{ip}' "$3"
	TB_STREAM_PID=$T_LAST_PID
}

# tb_stream_stop STEP NAME LOG: the operator ends the stream (SIGTERM, as a
# kiosk shutdown does): the supervisor must still be running, log
# stopMoonlight, and exit 0.
tb_stream_stop() {
	_pid=$(t_pid_of "$2")
	[ -n "$_pid" ] || return 0
	_since=$(tb_lines "$3")
	if ! kill -0 "$_pid" 2> /dev/null || [ "$(ps -o stat= -p "$_pid" 2> /dev/null | cut -c1)" = Z ]; then
		wait "$_pid" 2> /dev/null
		tb_fail "$1: the stream stops on SIGTERM" "there was no stream to stop: it had ended with exit $?"
		t_stop "$2"
		return 1
	fi
	kill -TERM "$_pid" 2> /dev/null
	_i=0
	while kill -0 "$_pid" 2> /dev/null && [ $_i -lt 200 ]; do
		[ "$(ps -o stat= -p "$_pid" 2> /dev/null | cut -c1)" = Z ] && break
		sleep 0.05
		_i=$((_i + 1))
	done
	wait "$_pid" 2> /dev/null
	_rc=$?
	t_stop "$2"
	if [ "$_rc" -ne 0 ]; then
		tb_fail "$1: the stream stops on SIGTERM" "the supervisor exited $_rc"
	else
		tb_expect "$1: the stream stops on SIGTERM (exit 0)" "$3" "$_since" \
			"INFO discovery: stopMoonlight: received SIGTERM"
	fi
}

# tb_client_pid SUPERVISOR_PID: the stream client the supervisor runs.
tb_client_pid() { pgrep -P "$1" 2> /dev/null | head -1; }

# tb_stable STEP LOG SINCE PID IP PORT: the stability window. Waits STABLE_S
# seconds by the clock (the one deliberate wait of a testbook), looking
# about every second, and fails as soon as the supervisor or the client it
# ran at the start of the window dies, the client loses its connection to
# IP:PORT, or a forbidden line appears in LOG after SINCE.
tb_stable() {
	_step=$1 _log=$2 _since=$3 _spid=$4 _ip=$5 _port=$6
	_cpid=$(tb_client_pid "$_spid")
	_why=""
	_start=$(date +%s)
	_t=0
	while [ "$_t" -lt "$STABLE_S" ]; do
		sleep 1
		_t=$(( $(date +%s) - _start ))
		if ! kill -0 "$_spid" 2> /dev/null; then _why="the supervisor (pid $_spid) exited after ${_t}s"
		elif [ -z "$_cpid" ] || ! kill -0 "$_cpid" 2> /dev/null; then _why="the stream client (pid ${_cpid:-none}) is gone after ${_t}s"
		elif [ -z "$(tb_established "$_ip" "$_port")" ]; then _why="no established connection to $_ip:$_port after ${_t}s"
		else
			for _f in "stream target changed" "stopMoonlight" "Moonlight subprocess exited"; do
				_hit=$(tb_find "$_log" "$_since" "$_f")
				[ -n "$_hit" ] && { _why="forbidden line after ${_t}s: $_hit"; break; }
			done
		fi
		[ -n "$_why" ] && break
	done
	if [ -n "$_why" ]; then
		tb_fail "$_step: stable for ${STABLE_S}s" "$_why"
		tail -n 6 "$_log" 2> /dev/null | sed 's/^/    | /'
		return 1
	fi
	tb_ok "$_step: stable for ${STABLE_S}s" "supervisor pid $_spid and client pid $_cpid alive, connection established $(tb_established "$_ip" "$_port" | head -1 | awk '{ print $3 " -> " $4 }')"
	tb_absent "$_step: no target change, stopMoonlight or subprocess exit" "$_log" "$_since" \
		"stream target changed" "stopMoonlight" "Moonlight subprocess exited"
}

# The seed's fleet (tests/fixtures/fleet-bxl1.yaml), on 127.x addresses.
PEPPY=node-74adf4f8
BOOM=node-74f9fbf2 BOOM_LAN=127.11.0.24 BOOM_WG=127.10.100.24
COSMIC=node-4c2be4b0 COSMIC_LAN=127.11.0.12 COSMIC_WG=127.10.100.12

# tb_fleet: the namespace with peppy, boom-pickle and cosmic, a stand-in body
# on each body's LAN and WireGuard address at $PORT (discovery.port, which
# the stream client connects to as well; a free port, since 47990 may be
# taken), hydra-cluster-sim at $SIM, and the venue boundary: peppy in
# rupelmonde cannot reach cosmic's LAN in cloud-seven, only its WireGuard.
# Writes the kiosk's config $HEAD_CFG (log $HEAD_LOG, state $HEAD_STATE).
tb_fleet() {
	tb_netns 127.11.0.32 127.10.100.32 "$BOOM_LAN" "$BOOM_WG" "$COSMIC_LAN" "$COSMIC_WG"
	PORT=$(tb_free_port)
	for _ip in "$BOOM_LAN" "$BOOM_WG" "$COSMIC_LAN" "$COSMIC_WG"; do
		tb_listen "$_ip" "$PORT"
	done
	SIM_PORT=$(tb_free_port)
	cp "$T_ROOT/tests/fixtures/fleet-bxl1.yaml" "$T_DIR/fleet.yaml"
	t_start sim "$T_DIR/sim.log" ip netns exec "$NS" "$BIN/hydra-cluster-sim" \
		--fleet "$T_DIR/fleet.yaml" --listen "127.0.0.1:$SIM_PORT"
	t_wait_log "$T_DIR/sim.log" "hydra-cluster-sim listening on 127.0.0.1:$SIM_PORT" 10000 ||
		{ tb_fail "hydra-cluster-sim starts" "$(tail -n 3 "$T_DIR/sim.log")"; tb_finish; }
	SIM="http://127.0.0.1:$SIM_PORT"
	tb_reach "setup: cosmic's LAN listener answers before the venue boundary is drawn" "$COSMIC_LAN" "$PORT" yes
	tb_drop topology "$COSMIC_LAN"
	tb_reach "setup: cosmic's LAN is not reachable from peppy (other venue)" "$COSMIC_LAN" "$PORT" no
	tb_reach "setup: cosmic's WireGuard is reachable from peppy" "$COSMIC_WG" "$PORT" yes
	HEAD_CFG="$T_DIR/peppy.yaml"
	HEAD_LOG="$T_DIR/hydrahead.log"
	HEAD_STATE="$T_DIR/peppy-state"
	tb_head_config "$HEAD_CFG" "$HEAD_LOG" "$HEAD_STATE" "$PORT" "$SIM" "${DISCOVERY_MODE:-sequential}"
}

# tb_sim METHOD PATH [JSON]: one call to the cluster API; the body in
# $T_DIR/sim.out, the HTTP status in $HTTP.
tb_sim() {
	if [ -n "${3:-}" ]; then
		HTTP=$(nsx curl -s -o "$T_DIR/sim.out" -w '%{http_code}' -X "$1" \
			-H 'Content-Type: application/json' --data-binary "$3" "$SIM/api/v1$2")
	else
		HTTP=$(nsx curl -s -o "$T_DIR/sim.out" -w '%{http_code}' -X "$1" "$SIM/api/v1$2")
	fi
}

# tb_kiosk_reset STEP: the seed's "full kiosk reset": the cached body is
# invalidated (logged, and the cache file gone), then the rest of the
# kiosk's discovery state (demotions) is cleared.
tb_kiosk_reset() {
	_since=$(tb_lines "$HEAD_LOG")
	_node=$(tb_json_field "$HEAD_STATE/discovery-cache.json" node_id)
	tb_agent reset "$HEAD_CFG" invalidate --reason "kiosk reset"
	if [ "$RC" -ne 0 ]; then
		tb_fail "$1: invalidate exits 0" "exit $RC: $(cat "$T_DIR/reset.err")"
	elif [ -n "$_node" ]; then
		tb_expect "$1: the cached body is invalidated" "$HEAD_LOG" "$_since" \
			"INFO discovery: cached body $_node invalidated: kiosk reset"
	else
		tb_expect "$1: nothing cached to invalidate" "$T_DIR/reset.out" 0 "no cached body"
	fi
	if [ -e "$HEAD_STATE/discovery-cache.json" ]; then
		tb_fail "$1: the cache file is gone" "$HEAD_STATE/discovery-cache.json still there: $(cat "$HEAD_STATE/discovery-cache.json")"
	else
		tb_ok "$1: the cache file is gone" "no $(basename "$HEAD_STATE")/discovery-cache.json after invalidate"
	fi
	rm -rf "$HEAD_STATE"
}

# A signal cleans up once (tests/lib.sh's EXIT trap would run it again).
trap 't_cleanup; trap - EXIT; exit 130' INT TERM
