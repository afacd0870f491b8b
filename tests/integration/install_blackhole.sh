#!/bin/bash
# hydra-agent install when the district mirror is blackholed: inside a network
# namespace made for this test, nft drops every packet to the district
# mirror's port, so the connection times out (no refusal comes back). The
# install must fall back to the origin within head_timeout_ms.
. "$(dirname "$0")/../lib.sh"
. "$T_ROOT/tests/support/fleet_env.sh"

if ! t_netns_usable; then
	t_skip "blackholed district mirror" "needs root, ip netns and nft"
	t_done
fi
NS="hydra-bh-$$"
ip netns add "$NS"
T_ON_EXIT="ip netns del $NS 2>/dev/null"
ip netns exec "$NS" ip link set lo up
IN="ip netns exec $NS"

SIZE=$((2 * 1024 * 1024))
mkdir -p "$T_DIR/origin/files"
SHA=$(env_build "$T_DIR/origin/files/b.zip" $SIZE)
DNS_PORT=$(t_free_port); ORIGIN_PORT=$(t_free_port); DISTRICT_PORT=$(t_free_port)

t_start dns "$T_DIR/dns.log" $IN dnsmasq -k -C /dev/null --no-resolv --no-hosts --pid-file \
	--user=root --listen-address=127.0.0.1 --bind-interfaces --port="$DNS_PORT" \
	--local=/experiencenet.com/ --host-record=mirror-a.experiencenet.com,127.0.0.1 \
	--host-record=bxl1.hydramirror.experiencenet.com,127.0.0.1
t_start origin "$T_DIR/origin.log" $IN "$BIN/hydra-mirror" --listen "127.0.0.1:$ORIGIN_PORT" \
	--root "$T_DIR/origin" --mode origin
t_start district "$T_DIR/district.log" $IN "$BIN/hydra-mirror" --listen "127.0.0.1:$DISTRICT_PORT" \
	--root "$T_DIR/origin" --mode origin
t_wait_log "$T_DIR/origin.log" "hydra-mirror listening on" 10000 &&
	t_wait_log "$T_DIR/district.log" "hydra-mirror listening on" 10000 ||
	{ t_fail "servers start" "see $T_DIR"; t_done; }

# Reachable first, so the drop is what makes the difference.
$IN curl -sf -o /dev/null -I "http://127.0.0.1:$DISTRICT_PORT/api/v1/peer/files/b.zip"
t_eq "district mirror answers before the drop" "$?" 0
$IN nft -f - <<NFT
table inet hydra_test {
	chain out {
		type filter hook output priority 0; policy accept;
		ip daddr 127.0.0.1 tcp dport $DISTRICT_PORT drop
	}
}
NFT
t_eq "nft drop rule installed" "$?" 0

cat > "$T_DIR/agent.yaml" <<YAML
node_id: node-test
state_dir: $T_DIR/state
log_file: $T_DIR/hydrabody.log
dns: {servers: ["127.0.0.1:$DNS_PORT"], timeout_ms: 1000}
district: {static: bxl1}
mirror:
  url_pattern: "http://{district}.hydramirror.experiencenet.com:$DISTRICT_PORT"
  head_timeout_ms: 1000
YAML
start=$(date +%s%N)
$IN "$BIN/hydra-agent" --config "$T_DIR/agent.yaml" install --out "$T_DIR/b.zip" \
	--url "http://mirror-a.experiencenet.com:$ORIGIN_PORT/api/v1/peer/files/b.zip" \
	> /dev/null 2> "$T_DIR/agent.err"
rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
t_eq "blackhole: install exits 0" "$rc" 0
t_eq "blackhole: the installed file verifies" "$(sha256sum < "$T_DIR/b.zip" | cut -d' ' -f1)" "$SHA"
t_grep "blackhole: fallback line names the connect timeout" "$T_DIR/hydrabody.log" \
	"district mirror bxl1.hydramirror.experiencenet.com unavailable (connect bxl1.hydramirror.experiencenet.com:$DISTRICT_PORT: timeout), falling back to mirror-a.experiencenet.com"
# head_timeout_ms is 1 s; 5 s leaves a wide margin and still catches a
# connect that waits for the kernel's own minutes-long timeout.
if [ "$ms" -lt 5000 ]; then t_ok "blackhole: bounded by head_timeout_ms ($ms ms)"
else t_fail "blackhole: bounded by head_timeout_ms" "took $ms ms"; fi

t_done
