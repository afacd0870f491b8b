#!/bin/bash
# hydra-agent sync with manifest paths that look like the agent's own part
# files: "x" and "x.part" fetched at once must each land with their own
# bytes (part files live apart from staged files).
. "$(dirname "$0")/../lib.sh"
. "$T_ROOT/tests/support/fleet_env.sh"

A="$BIN/hydra-agent"
command -v jq > /dev/null || { t_skip "sync names" "jq is not installed"; t_done; }

V="$T_DIR/origin/files/tools/names/1.0/files"
mkdir -p "$V/d"
head -c 300000 /dev/urandom > "$V/x"
head -c 5000 /dev/urandom > "$V/x.part"
head -c 7000 /dev/urandom > "$V/x.part.meta"
head -c 9000 /dev/urandom > "$V/d/y"
head -c 3000 /dev/urandom > "$V/d/y.part"
# Slow enough that the big file is still downloading when the small ones end.
env_mirror origin --root "$T_DIR/origin" --mode origin --max-egress-bytes-per-s 200K || t_done
BASE="http://127.0.0.1:$MIRROR_PORT"
printf 'node_id: node-test\nstate_dir: %s/state\nlog_file: %s/agent.log\n' "$T_DIR" "$T_DIR" \
	> "$T_DIR/agent.yaml"
"$A" --config "$T_DIR/agent.yaml" manifest --dir "$V" --tool-id names --version 1.0 \
	--base-url "$BASE" --out "$T_DIR/origin/files/tools/names/1.0/manifest.json"
t_eq "manifest of look-alike names: exits 0" "$?" 0

"$A" --config "$T_DIR/agent.yaml" sync --manifest "$BASE/api/v1/tools/names/1.0/manifest.json" \
	--dir "$T_DIR/dest" --jobs 4 --json > "$T_DIR/sync.json" 2> "$T_DIR/sync.stderr"
t_eq "sync: exits 0" "$?" 0
for f in x x.part x.part.meta d/y d/y.part; do
	t_eq "sync: $f has its own bytes" "$(sha256sum < "$T_DIR/dest/$f" | cut -d' ' -f1)" \
		"$(sha256sum < "$V/$f" | cut -d' ' -f1)"
done
t_eq "sync: no staging left" "$(ls -A "$T_DIR/dest" | grep -c '^.hydra-staging$')" 0

t_done
