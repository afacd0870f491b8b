#!/bin/bash
# hydra-agent install learning its district from hydra-cluster-sim's
# /api/v1/body/config: the district from the API, the last known district
# while the API is down, and a body moved to another district.
. "$(dirname "$0")/../lib.sh"
. "$T_ROOT/tests/support/fleet_env.sh"

A="$BIN/hydra-agent"
BOOM=node-74f9fbf2
mkdir -p "$T_DIR/origin/files"
SHA=$(env_build "$T_DIR/origin/files/b.zip" $((1024 * 1024)))

env_dnsmasq dns mirror-a.experiencenet.com=127.0.0.1 bxl1.hydramirror.experiencenet.com=127.0.0.1 || t_done
env_mirror origin --root "$T_DIR/origin" --mode origin || t_done
ORIGIN_PORT=$MIRROR_PORT
env_mirror district --root "$T_DIR/district" --mode peer --origin-url "http://127.0.0.1:$ORIGIN_PORT" \
	--district bxl1 || t_done
DISTRICT_PORT=$MIRROR_PORT
cp "$T_ROOT/tests/fixtures/fleet-bxl1.yaml" "$T_DIR/fleet.yaml"
CLUSTER_PORT=$(t_free_port)
t_start cluster "$T_DIR/cluster.log" "$BIN/hydra-cluster-sim" --fleet "$T_DIR/fleet.yaml" \
	--listen "127.0.0.1:$CLUSTER_PORT"
t_wait_log "$T_DIR/cluster.log" "hydra-cluster-sim listening on" 10000 ||
	{ t_fail "cluster starts" "$(tail -n 3 "$T_DIR/cluster.log")"; t_done; }

cat > "$T_DIR/agent.yaml" <<YAML
node_id: $BOOM
state_dir: $T_DIR/state
log_file: $T_DIR/hydrabody.log
dns: {servers: ["127.0.0.1:$DNS_PORT"], timeout_ms: 1000}
district: {config_url: "http://127.0.0.1:$CLUSTER_PORT/api/v1/body/config"}
mirror:
  url_pattern: "http://{district}.hydramirror.experiencenet.com:$DISTRICT_PORT"
YAML
URL="http://mirror-a.experiencenet.com:$ORIGIN_PORT/api/v1/peer/files/b.zip"
run() {  # run NAME: one install, log lines in $T_DIR/NAME.log
	: > "$T_DIR/hydrabody.log"
	"$A" --config "$T_DIR/agent.yaml" install --url "$URL" --out "$T_DIR/$1.zip" \
		> /dev/null 2> "$T_DIR/$1.err"
	RC=$?
	cp "$T_DIR/hydrabody.log" "$T_DIR/$1.log"
}

run api
t_eq "api: exits 0" "$RC" 0
t_eq "api: verified" "$(sha256sum < "$T_DIR/api.zip" | cut -d' ' -f1)" "$SHA"
t_grep "api: district from body config" "$T_DIR/api.log" "district bxl1 from body config"
t_grep "api: downloaded from the district host" "$T_DIR/api.log" \
	"downloading http://bxl1.hydramirror.experiencenet.com:$DISTRICT_PORT/api/v1/peer/files/b.zip"
t_eq "api: district remembered in state_dir" "$(cat "$T_DIR/state/district" 2>/dev/null)" bxl1

t_stop cluster
run api-down
t_eq "api down: exits 0" "$RC" 0
t_grep "api down: last known district used" "$T_DIR/api-down.log" \
	"district bxl1 from body config (last known; API unavailable: "
t_grep "api down: still the district host" "$T_DIR/api-down.log" \
	"from bxl1.hydramirror.experiencenet.com in"

# Back up, and the body parked in bxl1-test: no mirror there, so the origin.
t_start cluster2 "$T_DIR/cluster2.log" "$BIN/hydra-cluster-sim" --fleet "$T_DIR/fleet.yaml" \
	--listen "127.0.0.1:$CLUSTER_PORT"
t_wait_log "$T_DIR/cluster2.log" "hydra-cluster-sim listening on" 10000
curl -sf -o /dev/null -X POST -H 'Content-Type: application/json' \
	--data '{"district": "bxl1-test", "venue": "rupelmonde"}' \
	"http://127.0.0.1:$CLUSTER_PORT/api/v1/nodes/$BOOM/district"
t_eq "move: the sim accepts the move" "$?" 0
run moved
t_eq "moved: exits 0" "$RC" 0
t_grep "moved: new district from body config" "$T_DIR/moved.log" "district bxl1-test from body config"
t_grep "moved: falls back from the missing mirror" "$T_DIR/moved.log" \
	"district mirror bxl1-test.hydramirror.experiencenet.com unavailable (lookup bxl1-test.hydramirror.experiencenet.com: no such host), falling back to mirror-a.experiencenet.com"
t_eq "moved: verified" "$(sha256sum < "$T_DIR/moved.zip" | cut -d' ' -f1)" "$SHA"

t_done
