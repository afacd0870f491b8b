#!/bin/bash
# hydra-agent's global options before and after the command, help and
# version without a config or a log, one error style, EX_NOINPUT.
. "$(dirname "$0")/../lib.sh"

A="$BIN/hydra-agent"
printf 'node_id: n1\nstate_dir: %s/state\nlog_file: %s/agent.log\n' "$T_DIR" "$T_DIR" > "$T_DIR/a.yaml"
mkdir -p "$T_DIR/state"

# --config after the command works as before it.
"$A" invalidate --config "$T_DIR/a.yaml" --reason "test" > "$T_DIR/after.out" 2>&1
t_eq "--config after the command exits 0" "$?" 0
"$A" --config "$T_DIR/a.yaml" invalidate --reason "test" > "$T_DIR/before.out" 2>&1
t_eq "--config before the command exits 0" "$?" 0
"$A" check-config --config="$T_DIR/a.yaml" > "$T_DIR/eq.out" 2>&1
t_eq "--config=FILE after the command exits 0" "$?" 0
t_grep "--config=FILE after the command is the file loaded" "$T_DIR/eq.out" 'node_id: "n1"'
"$A" invalidate --reason x --log-level debug --config "$T_DIR/a.yaml" --log-stderr > "$T_DIR/lvl.out" 2>&1
t_eq "--log-level and --log-stderr after the command exit 0" "$?" 0
"$A" invalidate --reason x --log-level loud --config "$T_DIR/a.yaml" > "$T_DIR/badlvl.out" 2>&1
t_eq "a bad --log-level after the command exits 64" "$?" 64
"$A" invalidate --reason x --config > "$T_DIR/noval.out" 2>&1
t_eq "--config without a value exits 64" "$?" 64
t_grep "--config without a value is named" "$T_DIR/noval.out" "hydra-agent invalidate: --config needs a value"
"$A" --config > "$T_DIR/gnoval.out" 2>&1
t_eq "--config without a value before the command exits 64" "$?" 64
t_grep "--config without a value before the command is named" "$T_DIR/gnoval.out" "hydra-agent: --config needs a value"
"$A" --bogus invalidate > "$T_DIR/gbogus.out" 2>&1
t_eq "an unknown global option exits 64" "$?" 64
t_grep "an unknown global option is named" "$T_DIR/gbogus.out" "hydra-agent: unknown option --bogus (see --help)"

# Help and version need neither a readable config nor a writable log.
printf 'log_file: /proc/no/such/dir/agent.log\nbogus_key: 1\n' > "$T_DIR/broken.yaml"
for cmd in install sync discover invalidate stream manifest check-config; do
	"$A" --config "$T_DIR/broken.yaml" "$cmd" --help > "$T_DIR/h.$cmd" 2>&1
	t_eq "$cmd --help with a broken config exits 0" "$?" 0
	first=$(head -1 "$T_DIR/h.$cmd")
	case "$first" in
	"usage: hydra-agent"*" $cmd"*) t_ok "$cmd --help prints the command's usage" ;;
	*) t_fail "$cmd --help prints the command's usage" "$first" ;;
	esac
	"$A" "$cmd" -h --config /nonexistent > "$T_DIR/hh.$cmd" 2>&1
	t_eq "$cmd -h with a missing config exits 0" "$?" 0
	out=$("$A" "$cmd" -V 2>&1)
	t_eq "$cmd -V prints the version" "$out" "hydra-agent 0.1.0"
done
out=$("$A" install --version 2>&1)
t_eq "--version after a command prints the version" "$out" "hydra-agent 0.1.0"
out=$("$A" -h 2>&1 | head -1)
case "$out" in usage:*) t_ok "-h prints the usage" ;; *) t_fail "-h prints the usage" "$out" ;; esac

# Everything after '--' belongs to the stream command, never to the agent.
"$A" --config "$T_DIR/a.yaml" stream --max-attempts x -- true --config /nonexistent --help > "$T_DIR/dd.out" 2>&1
rc=$?
t_eq "options after -- are the child's: stream's own usage error (64)" "$rc" 64
t_nogrep "options after -- are not read as the agent's" "$T_DIR/dd.out" "nonexistent"

# One error style, and EX_NOINPUT for a named input file that is missing.
"$A" --config "$T_DIR/none.yaml" install --url http://127.0.0.1:1/x --out "$T_DIR/o" > "$T_DIR/noin.out" 2>&1
t_eq "a missing --config exits 66" "$?" 66
t_grep "the error names the command and the file" "$T_DIR/noin.out" "hydra-agent install: --config $T_DIR/none.yaml: No such file"
"$A" --config "$T_DIR/a.yaml" install --bogus > "$T_DIR/bogus.out" 2>&1
t_eq "an unknown option exits 64" "$?" 64
t_grep "an unknown option error reads 'hydra-agent install: ...'" "$T_DIR/bogus.out" "hydra-agent install: see 'hydra-agent install --help'"
t_nogrep "the command is not named twice" "$T_DIR/bogus.out" "install: install:"

# discover --json prints its object on failure too, with the error.
port=$(t_free_port)
printf 'node_id: n1\nstate_dir: %s/state\nlog_file: %s/agent.log\ndiscovery:\n  cluster_url: http://127.0.0.1:%s\n' \
	"$T_DIR" "$T_DIR" "$port" > "$T_DIR/dead.yaml"
"$A" --config "$T_DIR/dead.yaml" discover --json --no-cache > "$T_DIR/dj.out" 2> "$T_DIR/dj.err"
t_eq "discover with the cluster down exits 69" "$?" 69
t_eq "discover --json on failure: status failed" "$(jq -r .status "$T_DIR/dj.out")" failed
t_eq "discover --json on failure: schema 1" "$(jq -r .schema "$T_DIR/dj.out")" 1
case "$(jq -r .error "$T_DIR/dj.out")" in
*"127.0.0.1:$port"*) t_ok "discover --json on failure: error names the cluster" ;;
*) t_fail "discover --json on failure: error names the cluster" "$(cat "$T_DIR/dj.out")" ;;
esac
t_grep "discover on failure: the error on stderr too" "$T_DIR/dj.err" "hydra-agent discover: "

# Every command's --help lists its exit codes, 66 and 78 among them.
for cmd in discover invalidate stream check-config; do
	"$A" "$cmd" --help > "$T_DIR/codes.$cmd" 2>&1
	t_grep "$cmd --help lists exit code 66" "$T_DIR/codes.$cmd" "66"
	t_grep "$cmd --help lists exit code 78" "$T_DIR/codes.$cmd" "78"
done

t_done
