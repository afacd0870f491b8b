#!/bin/bash
# Testbook: the district mirror fleet's acceptance criteria
# ("District mirror fleet", docs/architecture.md section 13), on one machine.
#
# In a network namespace of our own: dnsmasq on 127.0.0.1:53 is the zone
# experiencenet.com (mirror-a -> 127.20.0.1, bxl1.hydramirror -> 127.20.1.1)
# and the namespace's resolver (/etc/netns/NS/resolv.conf), so getent, curl,
# hydra-mirror and hydra-agent all resolve through it; an origin hydra-mirror
# throttled like a far-away mirror-a; a district hydra-mirror in peer mode
# filling from it by name; hydra-cluster-sim as the district API. boom-pickle
# (node-74f9fbf2, district bxl1) installs; peppy (node-74adf4f8) streams from
# a stand-in body on boom-pickle's LAN the whole time.
# Knobs: TB_BUILD_MB (64), TB_ORIGIN_RATE (50M bytes/s).
# Operator version: testbooks/district-mirror.md.
. "$(dirname "$0")/lib/tb.sh"

tb_need hydra-agent hydra-mirror hydra-cluster-sim hydra-testkit hydra-stream-client \
	-- dnsmasq curl socat ss getent sha256sum
BUILD_MB=${TB_BUILD_MB:-64}
ORIGIN_RATE=${TB_ORIGIN_RATE:-50M}
MIRROR_A=mirror-a.experiencenet.com MIRROR_A_IP=127.20.0.1
DISTRICT=bxl1.hydramirror.experiencenet.com DISTRICT_IP=127.20.1.1

tb_netns "$MIRROR_A_IP" "$DISTRICT_IP" "$BOOM_LAN" 127.11.0.32
# The namespace's own resolver: ip netns exec bind-mounts this file over
# /etc/resolv.conf for everything we run in it.
# Another testbook's teardown may remove an empty /etc/netns at any moment.
for _try in 1 2 3; do
	mkdir -p "/etc/netns/$NS" 2> /dev/null &&
		echo "nameserver 127.0.0.1" 2> /dev/null > "/etc/netns/$NS/resolv.conf" && break
done
[ -f "/etc/netns/$NS/resolv.conf" ] ||
	{ tb_fail "the namespace's resolv.conf" "cannot write /etc/netns/$NS/resolv.conf"; tb_finish; }
t_start dns "$T_DIR/dns.log" ip netns exec "$NS" dnsmasq -k -C /dev/null --no-resolv \
	--no-hosts --pid-file --user=root --listen-address=127.0.0.1 --bind-interfaces --port=53 \
	--local=/experiencenet.com/ --log-queries --log-facility=- \
	--host-record="$MIRROR_A,$MIRROR_A_IP" --host-record="$DISTRICT,$DISTRICT_IP"
nsx "$BIN/hydra-testkit" wait-tcp 127.0.0.1 53 10000 ||
	{ tb_fail "dnsmasq starts" "$(tail -n 3 "$T_DIR/dns.log")"; tb_finish; }

REL=experiences/rupelmonde-arcade/build-1.zip
mkdir -p "$T_DIR/origin/files" "$T_DIR/district"
SHA=$(env_build "$T_DIR/origin/files/$REL" $((BUILD_MB * 1024 * 1024)))
OPORT=$(tb_free_port)
DPORT=$(tb_free_port)
t_start origin "$T_DIR/origin.log" ip netns exec "$NS" "$BIN/hydra-mirror" \
	--listen "$MIRROR_A_IP:$OPORT" --root "$T_DIR/origin" --mode origin \
	--max-egress-bytes-per-s "$ORIGIN_RATE"
t_start district "$T_DIR/district.log" ip netns exec "$NS" "$BIN/hydra-mirror" \
	--listen "$DISTRICT_IP:$DPORT" --root "$T_DIR/district" --mode peer \
	--origin-url "http://$MIRROR_A:$OPORT" --district bxl1 --max-bytes 1G
t_wait_log "$T_DIR/origin.log" "hydra-mirror listening on" 10000 &&
	t_wait_log "$T_DIR/district.log" "hydra-mirror listening on" 10000 ||
	{ tb_fail "mirrors start" "$(tail -n 2 "$T_DIR/origin.log" "$T_DIR/district.log")"; tb_finish; }
SIM_PORT=$(tb_free_port)
SIM="http://127.0.0.1:$SIM_PORT"
cp "$T_ROOT/tests/fixtures/fleet-bxl1.yaml" "$T_DIR/fleet.yaml"
t_start sim "$T_DIR/sim.log" ip netns exec "$NS" "$BIN/hydra-cluster-sim" \
	--fleet "$T_DIR/fleet.yaml" --listen "127.0.0.1:$SIM_PORT"
t_wait_log "$T_DIR/sim.log" "hydra-cluster-sim listening on" 10000 ||
	{ tb_fail "hydra-cluster-sim starts" "$(tail -n 3 "$T_DIR/sim.log")"; tb_finish; }

# boom-pickle's agent.yaml as on the fleet (system resolver, district from
# the body config API), and a body without a district for the direct run.
body_config() {  # body_config FILE LOG STATE CONFIG_URL
	cat > "$1" << YAML
node_id: $BOOM
state_dir: $3
log_file: $2
district: {config_url: "$4"}
mirror:
  origin_host: $MIRROR_A
  url_pattern: "http://{district}.hydramirror.experiencenet.com:$DPORT"
  head_timeout_ms: 2000
YAML
}
body_config "$T_DIR/body.yaml" "$T_DIR/hydrabody.log" "$T_DIR/body-state" "$SIM/api/v1/body/config"
body_config "$T_DIR/direct.yaml" "$T_DIR/direct.log" "$T_DIR/direct-state" ""
URL="http://$MIRROR_A:$OPORT/api/v1/peer/files/$REL"

# health: GET the district health by name into $T_DIR/health.json; $HTTP.
health() {
	HTTP=$(nsx curl -s -m 5 -o "$T_DIR/health.json" -w '%{http_code}' \
		"http://$DISTRICT:$DPORT/api/v1/health")
}
# cache_field KEY: a number from the health answer's cache object.
cache_field() { grep -o "\"cache\":{[^}]*}" "$T_DIR/health.json" | grep -o "\"$1\":[0-9]*" | cut -d: -f2; }

# install STEP NAME CONFIG LOG: one install of the build; $RC, $MS (the agent's
# elapsed_ms), $SRC (source_url), $FB (fallback); the log mark in $MARK.
install() {
	_s=$1
	shift
	MARK=$(tb_lines "$3")
	rm -f "$T_DIR/out-$1.zip"
	tb_agent "$1" "$2" install --url "$URL" --out "$T_DIR/out-$1.zip" --json --progress none
	MS=$(tb_json_field "$T_DIR/$1.out" elapsed_ms)
	SRC=$(tb_json_field "$T_DIR/$1.out" source_url | sed 's|\\/|/|g')
	FB=$(tb_json_field "$T_DIR/$1.out" fallback)
	if [ "$RC" -eq 0 ] && [ "$(sha256sum < "$T_DIR/out-$1.zip" | cut -d' ' -f1)" = "$SHA" ]; then
		tb_ok "$_s: $1: install exits 0 and the file verifies" "exit 0, sha256 $SHA, ${MS} ms from $SRC"
	else
		tb_fail "$_s: $1: install exits 0 and the file verifies" "exit $RC: $(tail -n 2 "$T_DIR/$1.err")"
	fi
	rm -f "$T_DIR/out-$1.zip"
}

# 1. The bxl1 name resolves (and an unknown district's does not: a real
# zone, not a wildcard) and serves GET /api/v1/health, healthy.
got=$(nsx getent ahostsv4 "$DISTRICT" | awk '{ print $1; exit }')
tb_eq "1: $DISTRICT resolves" "$got" "$DISTRICT_IP" "getent ahostsv4:"
"$BIN/hydra-testkit" wait-log "$T_DIR/dns.log" "config $DISTRICT is" 5000 > /dev/null 2>&1
tb_order "1: the answer came from the zone's DNS server" "$T_DIR/dns.log" 0 \
	"query[A] $DISTRICT from 127.0.0.1" "config $DISTRICT is $DISTRICT_IP"
got=$(nsx getent ahostsv4 ant1.hydramirror.experiencenet.com)
tb_eq "1: a district without a mirror does not resolve" "$?" 2 "getent exit status (2 is not found):"
health
if [ "$HTTP" = 200 ] && [ "$(tb_json_field "$T_DIR/health.json" status)" = healthy ] &&
	[ "$(tb_json_field "$T_DIR/health.json" district)" = bxl1 ] &&
	[ "$(tb_json_field "$T_DIR/health.json" role)" = peer ]; then
	tb_ok "1: GET http://$DISTRICT:$DPORT/api/v1/health is healthy" "HTTP $HTTP $(cat "$T_DIR/health.json")"
else
	tb_fail "1: GET http://$DISTRICT:$DPORT/api/v1/health is healthy" "HTTP $HTTP $(cat "$T_DIR/health.json" 2> /dev/null)"
fi

# A stream on peppy runs through every install and the mirror's outage.
HEAD_LOG="$T_DIR/hydrahead.log"
PORT=$(tb_free_port)
tb_listen "$BOOM_LAN" "$PORT"
tb_head_config "$T_DIR/peppy.yaml" "$HEAD_LOG" "$T_DIR/peppy-state" "$PORT" "$SIM"
tb_stream_start stream "$T_DIR/peppy.yaml" "$PORT"
SPID=$TB_STREAM_PID
SMARK=0
tb_wait_line "stream: peppy streams from boom-pickle" "$T_DIR/stream.err" 0 \
	"hydra-stream-client: streaming from $BOOM_LAN:$PORT" 20000 "$SPID"

# 2. A direct install from mirror-a (a body without a district): the
# baseline the district runs are measured against, in this same run.
install 2 direct "$T_DIR/direct.yaml" "$T_DIR/direct.log"
DIRECT_MS=$MS
tb_expect "2: direct: downloads from mirror-a" "$T_DIR/direct.log" "$MARK" "downloading $URL"
tb_expect "2: direct: complete from mirror-a" "$T_DIR/direct.log" "$MARK" "from $MIRROR_A in"

# 3. Cold: a body in bxl1 installs through the district host; the
# district mirror fills from mirror-a while it serves.
install 3 cold "$T_DIR/body.yaml" "$T_DIR/hydrabody.log"
COLD_MS=$MS
tb_expect "3: cold: district from the body config" "$T_DIR/hydrabody.log" "$MARK" \
	"INFO mirrorfetch: district bxl1 from body config"
tb_expect "3: cold: downloads from the district host" "$T_DIR/hydrabody.log" "$MARK" \
	"INFO mirrorfetch: downloading http://$DISTRICT:$DPORT/api/v1/peer/files/$REL"
tb_expect "3: cold: complete from the district host" "$T_DIR/hydrabody.log" "$MARK" \
	"download complete: $T_DIR/out-cold.zip $((BUILD_MB * 1024 * 1024)) bytes sha256 $SHA from $DISTRICT in"
tb_absent "3: cold: no fallback" "$T_DIR/hydrabody.log" "$MARK" "falling back"
tb_expect "3: cold: the district mirror filled from mirror-a" "$T_DIR/district.log" 0 \
	"fill $REL from http://$MIRROR_A:$OPORT/api/v1/peer/files/$REL"

# 4. Warm: the same build again, served from the district's cache.
DMARK=$(tb_lines "$T_DIR/district.log")
install 4 warm "$T_DIR/body.yaml" "$T_DIR/hydrabody.log"
WARM_MS=$MS
tb_expect "4: warm: downloads from the district host" "$T_DIR/hydrabody.log" "$MARK" \
	"INFO mirrorfetch: downloading http://$DISTRICT:$DPORT/api/v1/peer/files/$REL"
tb_expect "4: warm: complete from the district host" "$T_DIR/hydrabody.log" "$MARK" \
	"from $DISTRICT in"
tb_absent "4: warm: no second fill from mirror-a" "$T_DIR/district.log" "$DMARK" "fill $REL"

# 5. Times: cold within the same order of magnitude as direct (under 10x),
# warm strictly faster than direct.
if [ -n "$DIRECT_MS" ] && [ -n "$COLD_MS" ] && [ "$DIRECT_MS" -gt 0 ] &&
	[ "$COLD_MS" -lt $((10 * DIRECT_MS)) ]; then
	tb_ok "5: cold install within 10x of direct" "cold $COLD_MS ms, direct $DIRECT_MS ms ($BUILD_MB MiB, origin at $ORIGIN_RATE B/s)"
else
	tb_fail "5: cold install within 10x of direct" "cold ${COLD_MS:-?} ms, direct ${DIRECT_MS:-?} ms"
fi
if [ -n "$DIRECT_MS" ] && [ -n "$WARM_MS" ] && [ "$WARM_MS" -lt "$DIRECT_MS" ]; then
	tb_ok "5: warm install strictly faster than direct" "warm $WARM_MS ms, direct $DIRECT_MS ms"
else
	tb_fail "5: warm install strictly faster than direct" "warm ${WARM_MS:-?} ms, direct ${DIRECT_MS:-?} ms"
fi

# 6. Health: healthy, with the district's cache hits.
health
hits=$(cache_field hits)
if [ "$HTTP" = 200 ] && [ "$(tb_json_field "$T_DIR/health.json" status)" = healthy ] &&
	[ "${hits:-0}" -ge 1 ] && [ "$(cache_field files)" = 1 ]; then
	tb_ok "6: health is healthy with cache hits" "HTTP $HTTP $(cat "$T_DIR/health.json")"
else
	tb_fail "6: health is healthy with cache hits" "HTTP $HTTP $(cat "$T_DIR/health.json" 2> /dev/null)"
fi

# 7. The district mirror goes offline: installs fall back to mirror-a and
# succeed, and peppy's stream keeps running.
t_stop district
health
tb_eq "7: the district mirror is offline" "$HTTP" 000 "health HTTP"
install 7 offline "$T_DIR/body.yaml" "$T_DIR/hydrabody.log"
tb_order "7: offline: the fallback line, then mirror-a" "$T_DIR/hydrabody.log" "$MARK" \
	"WARN mirrorfetch: district mirror $DISTRICT unavailable (connect $DISTRICT:$DPORT: Connection refused), falling back to $MIRROR_A" \
	"INFO mirrorfetch: downloading $URL" \
	"from $MIRROR_A in"
tb_eq "7: offline: the result says fallback" "$FB" true "fallback"
tb_stable "7: the stream during the installs and the outage" "$HEAD_LOG" "$SMARK" "$SPID" "$BOOM_LAN" "$PORT"
tb_stream_stop "7: peppy's stream" stream "$HEAD_LOG"

tb_finish
