#!/bin/bash
# make demo: one district on this machine. An origin hydra-mirror (throttled
# like a far-away mirror-a), a district hydra-mirror in peer mode, dnsmasq
# answering both names, hydra-cluster-sim as the district API; then a cold
# install, a warm install, an install with the district mirror stopped, and
# one body discovery. Everything listens on 127.0.0.0/8 and is stopped at exit.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$ROOT/${BUILD:-build}/bin"
SIZE_MB=${DEMO_SIZE_MB:-256}
ORIGIN_RATE=${DEMO_ORIGIN_RATE:-100M}
DIR=$(mktemp -d "${TMPDIR:-/tmp}/hydra-demo.XXXXXX")
PIDS=""

stop_all() {
	for p in $PIDS; do kill -TERM "$p" 2>/dev/null; done
	for p in $PIDS; do wait "$p" 2>/dev/null; done
	PIDS=""
}
cleanup() {
	stop_all
	[ "${KEEP:-0}" = 1 ] && echo "kept $DIR" || rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() { echo "demo: $*" >&2; exit 1; }
port() { "$BIN/hydra-testkit" free-port; }
start() {  # start NAME CMD...: background, output in $DIR/NAME.log
	_n=$1
	shift
	"$@" > "$DIR/$_n.log" 2>&1 &
	PIDS="$PIDS $!"
	eval "PID_$(echo "$_n" | tr - _)=$!"
}
ready() { "$BIN/hydra-testkit" wait-log "$DIR/$1.log" "$2" 10000 || die "$1 did not start: $(tail -n 3 "$DIR/$1.log")"; }

for b in hydra-agent hydra-mirror hydra-cluster-sim hydra-testkit; do
	[ -x "$BIN/$b" ] || die "$BIN/$b is missing: run make"
done
command -v dnsmasq >/dev/null || die "dnsmasq is missing: run make deps"

echo "== hydra-agent demo: district bxl1 on one machine (files in $DIR)"
echo "-- making a ${SIZE_MB} MiB build"
mkdir -p "$DIR/origin/files/experiences/demo" "$DIR/district"
head -c $((SIZE_MB * 1024 * 1024)) /dev/urandom > "$DIR/origin/files/experiences/demo/build-1.zip"
SHA=$(sha256sum "$DIR/origin/files/experiences/demo/build-1.zip" | cut -d' ' -f1)

DNS_PORT=$(port); ORIGIN_PORT=$(port); DISTRICT_PORT=$(port); CLUSTER_PORT=$(port)
STREAM_PORT=$(port)

start dns dnsmasq -k -C /dev/null --no-resolv --no-hosts --pid-file --user=root \
	--listen-address=127.0.0.1 --bind-interfaces --port="$DNS_PORT" \
	--local=/experiencenet.com/ \
	--host-record=mirror-a.experiencenet.com,127.0.0.1 \
	--host-record=bxl1.hydramirror.experiencenet.com,127.0.0.1
"$BIN/hydra-testkit" wait-tcp 127.0.0.1 "$DNS_PORT" 10000 || die "dnsmasq did not start"
start origin "$BIN/hydra-mirror" --listen "127.0.0.1:$ORIGIN_PORT" --root "$DIR/origin" \
	--mode origin --max-egress-bytes-per-s "$ORIGIN_RATE"
ready origin "hydra-mirror listening on"
start district "$BIN/hydra-mirror" --listen "127.0.0.1:$DISTRICT_PORT" --root "$DIR/district" \
	--mode peer --origin-url "http://127.0.0.1:$ORIGIN_PORT" --district bxl1 --max-bytes 2G
ready district "hydra-mirror listening on"
cp "$ROOT/tests/fixtures/fleet-bxl1.yaml" "$DIR/fleet.yaml"
start cluster "$BIN/hydra-cluster-sim" --fleet "$DIR/fleet.yaml" --listen "127.0.0.1:$CLUSTER_PORT"
ready cluster "hydra-cluster-sim listening on"

cat > "$DIR/agent.yaml" <<YAML
node_id: node-74f9fbf2
state_dir: $DIR/state
log_file: $DIR/hydrabody.log
dns: {servers: ["127.0.0.1:$DNS_PORT"], timeout_ms: 1000}
district: {config_url: "http://127.0.0.1:$CLUSTER_PORT/api/v1/body/config"}
mirror:
  url_pattern: "http://{district}.hydramirror.experiencenet.com:$DISTRICT_PORT"
discovery:
  cluster_url: "http://127.0.0.1:$CLUSTER_PORT"
  head_id: node-74adf4f8
  district: bxl1
  venue: rupelmonde
  port: $STREAM_PORT
  probe_timeout_ms: 500
YAML
URL="http://mirror-a.experiencenet.com:$ORIGIN_PORT/api/v1/peer/files/experiences/demo/build-1.zip"
echo "-- origin throttled to $ORIGIN_RATE bytes/s; build URL $URL"
printf '\n%-30s %-40s %10s  %s\n' "install" "source" "time" "verdict"

install() {  # install LABEL
	rm -f "$DIR/out.zip"
	"$BIN/hydra-agent" --config "$DIR/agent.yaml" install --url "$URL" --out "$DIR/out.zip" \
		--json --progress none > "$DIR/result.json" 2> "$DIR/install.err"
	_rc=$?
	_src=$(sed -n 's/.*"source_url":"https\{0,1\}:\/\/\([^:/]*\).*/\1/p' "$DIR/result.json")
	_ms=$(sed -n 's/.*"elapsed_ms":\([0-9]*\).*/\1/p' "$DIR/result.json")
	if [ $_rc -eq 0 ] && [ "$(sha256sum < "$DIR/out.zip" | cut -d' ' -f1)" = "$SHA" ]; then
		_verdict="ok, sha256 verified"
	else
		_verdict="FAILED (exit $_rc: $(tail -n 1 "$DIR/install.err"))"
		FAILED=1
	fi
	printf '%-30s %-40s %8s ms  %s\n' "$1" "${_src:--}" "${_ms:--}" "$_verdict"
}
FAILED=0
install "cold (district cache empty)"
install "warm (district cache hit)"
kill -TERM "$PID_district" && wait "$PID_district" 2>/dev/null
install "district mirror stopped"

echo
echo "-- discovery for head peppy-dumpling-32 (bxl1/rupelmonde)"
echo "   boom-pickle-38 listens only on WireGuard 127.10.100.24; its LAN 127.11.0.24 is silent"
start body-wg "$BIN/hydra-testkit" listen 127.10.100.24 "$STREAM_PORT"
"$BIN/hydra-testkit" wait-tcp 127.10.100.24 "$STREAM_PORT" 10000 || die "body listener did not start"
chosen=$("$BIN/hydra-agent" --config "$DIR/agent.yaml" discover 2> "$DIR/discover.err")
rc=$?
echo "   discover printed: ${chosen:-nothing} (exit $rc)"
[ "$rc" -eq 0 ] && [ "$chosen" = 127.10.100.24 ] || FAILED=1

echo
echo "-- hydrabody.log"
sed 's/^/   /' "$DIR/hydrabody.log"
echo
if [ "$FAILED" -eq 0 ]; then echo "demo: all steps ok"; else echo "demo: a step failed"; fi
exit "$FAILED"
