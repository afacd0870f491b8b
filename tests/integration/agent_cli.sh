#!/bin/bash
# hydra-agent's command line: help, version, usage errors, check-config.
. "$(dirname "$0")/../lib.sh"

A="$BIN/hydra-agent"

out=$("$A" --version); t_eq "--version prints the version" "$out" "hydra-agent 0.1.0"
"$A" --help > "$T_DIR/help" 2>&1; t_eq "--help exits 0" "$?" 0
t_grep "--help lists check-config" "$T_DIR/help" "check-config"
"$A" frobnicate > "$T_DIR/unknown" 2>&1; t_eq "unknown command exits 64" "$?" 64
t_grep "unknown command is named" "$T_DIR/unknown" "unknown command 'frobnicate'"
"$A" --log-level loud check-config > "$T_DIR/level" 2>&1; t_eq "bad --log-level exits 64" "$?" 64
"$A" check-config --help > "$T_DIR/cchelp" 2>&1; t_eq "check-config --help exits 0" "$?" 0
t_grep "check-config --help describes it" "$T_DIR/cchelp" "file:line:col"

cat > "$T_DIR/good.yaml" <<'YAML'
node_id: node-74adf4f8
state_dir: /tmp/state
dns: {servers: ["127.0.0.1:5353"], timeout_ms: 500}
district: {static: bxl1}
mirror:
  stall: {bytes_per_s: 128K, seconds: 5}
YAML
"$A" --config "$T_DIR/good.yaml" check-config > "$T_DIR/good.out" 2>&1
t_eq "valid config exits 0" "$?" 0
t_grep "effective config shows a set value" "$T_DIR/good.out" 'static: "bxl1"'
t_grep "effective config shows a size in bytes" "$T_DIR/good.out" "bytes_per_s: 131072"
t_grep "effective config shows a default" "$T_DIR/good.out" "head_timeout_ms: 2000"

printf 'node_id: a\nmirror:\n  head_timeout_ms: 0\n' > "$T_DIR/range.yaml"
"$A" --config "$T_DIR/range.yaml" check-config > "$T_DIR/range.out" 2>&1
t_eq "out-of-range value exits 78" "$?" 78
t_grep "out-of-range value names file:line:col" "$T_DIR/range.out" \
	"range.yaml:3:20: mirror.head_timeout_ms: 0 is out of range [1, 600000]"

printf 'node_id: a\n  bad indent: [\n' > "$T_DIR/broken.yaml"
"$A" --config "$T_DIR/broken.yaml" check-config > "$T_DIR/broken.out" 2>&1
t_eq "malformed YAML exits 78" "$?" 78
t_grep "malformed YAML names file:line:col" "$T_DIR/broken.out" "broken.yaml:2:"

"$A" --config "$T_DIR/none.yaml" check-config > "$T_DIR/none.out" 2>&1
t_eq "a named config that is missing exits 66 (EX_NOINPUT)" "$?" 66

# A malformed URL is a usage error before anything is written or fetched.
"$A" --config "$T_DIR/good.yaml" sync --manifest "http://" --dir "$T_DIR/never" \
	> "$T_DIR/badurl.out" 2>&1
t_eq "sync --manifest http:// exits 64" "$?" 64
[ ! -e "$T_DIR/never" ] && t_ok "sync with a malformed --manifest URL creates no DIR" ||
	t_fail "sync with a malformed --manifest URL creates no DIR" "$(ls -A "$T_DIR")"
"$A" --config "$T_DIR/good.yaml" install --url "http://127.0.0.1:99999/b" --out "" \
	> "$T_DIR/emptyout.out" 2>&1
t_eq "install --out \"\" exits 64" "$?" 64

# make install puts the programs and the man page under DESTDIR/PREFIX.
make -s -C "$T_ROOT" BUILD="$BUILD" install DESTDIR="$T_DIR/dest" PREFIX=/usr/local > "$T_DIR/install.log" 2>&1
t_eq "make install succeeds" "$?" 0
if [ -x "$T_DIR/dest/usr/local/bin/hydra-agent" ] && [ -f "$T_DIR/dest/usr/local/share/man/man1/hydra-agent.1" ]; then
	t_ok "make install places hydra-agent and its man page"
else
	t_fail "make install places hydra-agent and its man page" "$(find "$T_DIR/dest" | head)"
fi

t_done
