#!/bin/bash
# hydra-agent install against planted links and bad arguments (issue 19,
# items 1 and 9): a link or a non-regular file at PATH.part or PATH is
# refused before anything is written or downloaded, and the target of a
# link is never touched; --out "", PATH a folder and malformed --url are
# refused before any transfer.
. "$(dirname "$0")/../lib.sh"
. "$T_ROOT/tests/support/fleet_env.sh"

A="$BIN/hydra-agent"
mkdir -p "$T_DIR/origin/files/exp"
SHA=$(env_build "$T_DIR/origin/files/exp/b.bin" 65536)
env_mirror origin --root "$T_DIR/origin" --mode origin || t_done
URL="http://127.0.0.1:$MIRROR_PORT/api/v1/peer/files/exp/b.bin"
cat > "$T_DIR/agent.yaml" <<YAML
node_id: node-test
state_dir: $T_DIR/state
log_file: $T_DIR/agent.log
YAML
mkdir -p "$T_DIR/out"
printf 'precious\n' > "$T_DIR/victim"
VICTIM=$(cksum < "$T_DIR/victim")

# install NAME OUT [ARGS...]: one run from $T_DIR/cwd; exit code in RC.
mkdir -p "$T_DIR/cwd"
install() {
	_n=$1 _o=$2
	shift 2
	(cd "$T_DIR/cwd" && "$A" --config "$T_DIR/agent.yaml" install --url "$URL" --out "$_o" \
		--json "$@" > "$T_DIR/$_n.json" 2> "$T_DIR/$_n.stderr")
	RC=$?
}
# no_transfer NAME: the run's JSON lists no attempt.
no_transfer() {
	t_grep "$1: nothing downloaded" "$T_DIR/$1.json" '"attempts":[]'
}

# Item 1: a link planted at PATH.part.
ln -s "$T_DIR/victim" "$T_DIR/out/a.bin.part"
install link-part "$T_DIR/out/a.bin"
t_eq "link at PATH.part: exit 73" "$RC" 73
t_eq "link at PATH.part: its target is untouched" "$(cksum < "$T_DIR/victim")" "$VICTIM"
t_eq "link at PATH.part: PATH not created" "$(ls -A "$T_DIR/out" | tr '\n' ' ')" "a.bin.part "
t_grep "link at PATH.part: says why" "$T_DIR/link-part.stderr" "a.bin.part"
no_transfer link-part

# A link at PATH itself.
ln -s "$T_DIR/victim" "$T_DIR/out/b.bin"
install link-path "$T_DIR/out/b.bin"
t_eq "link at PATH: exit 73" "$RC" 73
t_eq "link at PATH: its target is untouched" "$(cksum < "$T_DIR/victim")" "$VICTIM"
[ -L "$T_DIR/out/b.bin" ] && t_ok "link at PATH: left as it was" ||
	t_fail "link at PATH: left as it was" "$(ls -l "$T_DIR/out")"
[ ! -e "$T_DIR/out/b.bin.part" ] && t_ok "link at PATH: no part file" ||
	t_fail "link at PATH: no part file" "$(ls -l "$T_DIR/out")"
no_transfer link-path

# A FIFO and a folder at PATH.part.
mkfifo "$T_DIR/out/c.bin.part"
install fifo-part "$T_DIR/out/c.bin"
t_eq "FIFO at PATH.part: exit 73" "$RC" 73
no_transfer fifo-part
mkdir "$T_DIR/out/d.bin.part"
install dir-part "$T_DIR/out/d.bin"
t_eq "folder at PATH.part: exit 73" "$RC" 73
no_transfer dir-part

# A link planted at PATH.part.meta is replaced, never written through.
ln -s "$T_DIR/victim" "$T_DIR/out/e.bin.part.meta"
install link-meta "$T_DIR/out/e.bin"
t_eq "link at PATH.part.meta: installs" "$RC" 0
t_eq "link at PATH.part.meta: its target is untouched" "$(cksum < "$T_DIR/victim")" "$VICTIM"
t_eq "link at PATH.part.meta: PATH verified" "$(sha256sum < "$T_DIR/out/e.bin" | cut -d' ' -f1)" "$SHA"

# Item 9: --out "" and PATH a folder, before any transfer.
install empty-out ""
t_eq "--out \"\": exit 64" "$RC" 64
t_eq "--out \"\": nothing written in the working folder" "$(ls -A "$T_DIR/cwd" | wc -l)" 0
mkdir "$T_DIR/out/folder"
install folder-path "$T_DIR/out/folder"
t_eq "PATH a folder: exit 73" "$RC" 73
no_transfer folder-path
t_eq "PATH a folder: left empty" "$(ls -A "$T_DIR/out/folder" | wc -l)" 0
t_eq "PATH a folder: no part file" "$(ls -A "$T_DIR/out" | grep -c '^folder')" 1

# Malformed --url: usage errors.
for u in "not a url" "ftp://127.0.0.1/x" "http://" "http://127.0.0.1:99999/x"; do
	(cd "$T_DIR/cwd" && "$A" --config "$T_DIR/agent.yaml" install --url "$u" \
		--out "$T_DIR/out/u.bin" > /dev/null 2> "$T_DIR/url.stderr")
	t_eq "--url '$u': exit 64" "$?" 64
done
[ ! -e "$T_DIR/out/u.bin.part" ] && t_ok "malformed --url: no part file" ||
	t_fail "malformed --url: no part file" "$(ls "$T_DIR/out")"

# And a plain install still works.
install plain "$T_DIR/out/ok.bin"
t_eq "plain install: exit 0" "$RC" 0
t_eq "plain install: verified" "$(sha256sum < "$T_DIR/out/ok.bin" | cut -d' ' -f1)" "$SHA"

t_done
