#!/bin/bash
# Issue 17: install with mirror.extra_sources and --source. The extra
# sources come after the district and before the origin, in order (config
# first); a source whose digest is not the origin's is not used (its own
# digest is never trusted over the origin's), and a dead one is passed over.
. "$(dirname "$0")/../lib.sh"
. "$T_ROOT/tests/support/fleet_env.sh"

A="$BIN/hydra-agent"
command -v jq > /dev/null || { t_skip "install sources" "jq is not installed"; t_done; }
command -v dnsmasq > /dev/null || { t_skip "install sources" "dnsmasq is not installed"; t_done; }

SHA=$(env_build "$T_DIR/origin/files/b.zip" $((1024 * 1024)))
mkdir -p "$T_DIR/bad/files"
cp "$T_DIR/origin/files/b.zip" "$T_DIR/bad/files/b.zip"
printf 'rotten' | dd of="$T_DIR/bad/files/b.zip" bs=1 seek=1000 conv=notrunc 2>/dev/null

BAD=bad.experiencenet.com
GOOD=good.experiencenet.com
DEAD=dead.experiencenet.com
env_dnsmasq dns mirror-a.experiencenet.com=127.0.0.1 $BAD=127.0.0.1 $GOOD=127.0.0.1 \
	$DEAD=127.0.0.1 || t_done
env_mirror m-origin --root "$T_DIR/origin" --mode origin || t_done
ORIGIN_PORT=$MIRROR_PORT
env_mirror m-bad --root "$T_DIR/bad" --mode origin || t_done
BAD_PORT=$MIRROR_PORT
env_mirror m-good --root "$T_DIR/good" --mode peer --origin-url "http://127.0.0.1:$ORIGIN_PORT" ||
	t_done
GOOD_PORT=$MIRROR_PORT
DEAD_PORT=$(t_free_port)

cat > "$T_DIR/agent.yaml" <<YAML
node_id: node-test
state_dir: $T_DIR/state
log_file: $T_DIR/agent.log
dns: {servers: ["127.0.0.1:$DNS_PORT"], timeout_ms: 500}
mirror:
  extra_sources: ["http://$DEAD:$DEAD_PORT", "http://$BAD:$BAD_PORT"]
  head_timeout_ms: 1500
YAML
URL="http://mirror-a.experiencenet.com:$ORIGIN_PORT/api/v1/peer/files/b.zip"

"$A" --config "$T_DIR/agent.yaml" install --url "$URL" --out "$T_DIR/b.zip" \
	--source "http://$GOOD:$GOOD_PORT" --json > "$T_DIR/out.json" 2> "$T_DIR/out.stderr"
t_eq "exits 0" "$?" 0
t_eq "the file is the origin's" "$(sha256sum < "$T_DIR/b.zip" | cut -d' ' -f1)" "$SHA"
t_eq "candidates in order: config's sources, then --source" \
	"$(jq -r '[.attempts[].host] | join(" ")' "$T_DIR/out.json")" "$DEAD $BAD $GOOD"
t_eq "the dead source: connection refused" "$(jq -r '.attempts[0].result' "$T_DIR/out.json")" \
	"connect_refused"
t_eq "the bad source: its digest is not the origin's, not used" \
	"$(jq -r '.attempts[1].result' "$T_DIR/out.json")" "sha256_mismatch"
t_eq "the bad source sent no body" "$(jq -r '.attempts[1].bytes' "$T_DIR/out.json")" 0
t_eq "served by the --source mirror" "$(jq -r '.source_url' "$T_DIR/out.json")" \
	"http://$GOOD:$GOOD_PORT/api/v1/peer/files/b.zip"
t_eq "checked against the origin's digest" "$(jq -r '.digest_source' "$T_DIR/out.json")" origin
t_grep "the dead source is logged" "$T_DIR/agent.log" \
	"mirror $DEAD unavailable (connect $DEAD:$DEAD_PORT: Connection refused), trying the next source"

t_done
