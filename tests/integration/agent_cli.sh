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

# Issue 14: every --help of install, sync, manifest lists its exit codes,
# 66 and 78 among them.
for cmd in install sync manifest; do
	"$A" "$cmd" --help > "$T_DIR/$cmd.help" 2>&1
	t_eq "$cmd --help exits 0" "$?" 0
	t_grep "$cmd --help lists 66" "$T_DIR/$cmd.help" "66 "
	t_grep "$cmd --help lists 78" "$T_DIR/$cmd.help" "78 bad config"
done

# The seed's BITSTATION_FILES_BASE_URL gives the manifest's base URL too.
mkdir -p "$T_DIR/tool"
printf 'x' > "$T_DIR/tool/a.txt"
env -u HYDRA_FILES_BASE_URL BITSTATION_FILES_BASE_URL=http://files.example "$A" manifest \
	--dir "$T_DIR/tool" --tool-id t --version 1 > "$T_DIR/bitstation.json" 2> "$T_DIR/bitstation.err"
t_eq "manifest: BITSTATION_FILES_BASE_URL accepted" "$?" 0
t_grep "manifest: URLs from BITSTATION_FILES_BASE_URL" "$T_DIR/bitstation.json" \
	'http://files.example/api/v1/tools/t/1/files/a.txt'

# install --sha256 with the file already at PATH: nothing fetched (the URL
# has no server), exit 0, bytes 0, "already installed".
printf 'hydra' > "$T_DIR/have.bin"
HAVE=$(sha256sum < "$T_DIR/have.bin" | cut -d' ' -f1)
"$A" --config "$T_DIR/good.yaml" install --url "http://127.0.0.1:9/have.bin" --out "$T_DIR/have.bin" \
	--sha256 "$HAVE" --json > "$T_DIR/have.json" 2> "$T_DIR/have.err"
t_eq "already installed: exit 0" "$?" 0
t_grep "already installed: status" "$T_DIR/have.json" '"status":"already installed"'
t_grep "already installed: bytes 0" "$T_DIR/have.json" '"bytes":0,'
t_grep "already installed: schema 1" "$T_DIR/have.json" '"schema":1'
t_eq "already installed: PATH untouched" "$(cat "$T_DIR/have.bin")" hydra
# Another digest is not "already installed": it goes to the (absent) source.
"$A" --config "$T_DIR/good.yaml" install --url "http://127.0.0.1:9/have.bin" --out "$T_DIR/have.bin" \
	--sha256 "$(printf '%064d' 0)" --json > "$T_DIR/other.json" 2> "$T_DIR/other.err"
t_eq "another digest: the install runs (69, nothing reachable)" "$?" 69
t_grep "--json on failure: error" "$T_DIR/other.json" '"error":"no source could deliver'
t_grep "--json on failure: schema 1" "$T_DIR/other.json" '"schema":1'
t_eq "another digest: PATH untouched" "$(cat "$T_DIR/have.bin")" hydra
"$A" --config "$T_DIR/good.yaml" sync --manifest "$T_DIR/absent.json" --dir "$T_DIR/sd" --json \
	> "$T_DIR/sync-fail.json" 2> /dev/null
t_grep "sync --json on failure: error" "$T_DIR/sync-fail.json" '"error":"'
t_grep "sync --json on failure: schema 1" "$T_DIR/sync-fail.json" '"schema":1'
"$A" --config "$T_DIR/good.yaml" sync --manifest "$T_DIR/absent.json" --dir "$T_DIR/sd" > /dev/null 2>&1
t_eq "sync with a missing --manifest file: 66" "$?" 66

# make install puts the programs and the man page under DESTDIR/PREFIX.
make -s -C "$T_ROOT" BUILD="$BUILD" install DESTDIR="$T_DIR/dest" PREFIX=/usr/local > "$T_DIR/install.log" 2>&1
t_eq "make install succeeds" "$?" 0
if [ -x "$T_DIR/dest/usr/local/bin/hydra-agent" ] && [ -f "$T_DIR/dest/usr/local/share/man/man1/hydra-agent.1" ]; then
	t_ok "make install places hydra-agent and its man page"
else
	t_fail "make install places hydra-agent and its man page" "$(find "$T_DIR/dest" | head)"
fi

t_done
