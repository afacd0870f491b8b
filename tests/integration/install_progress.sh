#!/bin/bash
# Issue 14, progress: the install and sync bars fit the terminal (at most
# COLUMNS-1 wide, the host shortened rather than wrapped), and a log line
# written while a bar is shown erases the bar first and redraws it after
# (checked on a pseudo-terminal made by script(1)).
. "$(dirname "$0")/../lib.sh"
. "$T_ROOT/tests/support/fleet_env.sh"

A="$BIN/hydra-agent"
command -v script > /dev/null || { t_skip "progress" "script(1) is not installed"; t_done; }
SRC="$T_DIR/origin/files/tools/bar/1/files"
mkdir -p "$SRC"
SHA=$(env_build "$T_DIR/origin/files/b.zip" $((4 * 1024 * 1024)))
i=0
while [ $i -lt 20 ]; do
	head -c $((20000 + i * 999)) /dev/urandom > "$SRC/f$i.bin"
	i=$((i + 1))
done

env_dnsmasq dns mirror-a.experiencenet.com=127.0.0.1 bxl1.hydramirror.experiencenet.com=127.0.0.1 || t_done
env_mirror origin --root "$T_DIR/origin" --mode origin || t_done
ORIGIN="http://mirror-a.experiencenet.com:$MIRROR_PORT"
env_mirror district --root "$T_DIR/district" --mode peer \
	--origin-url "http://127.0.0.1:$MIRROR_PORT" --district bxl1 || t_done
DISTRICT_PORT=$MIRROR_PORT
"$A" manifest --dir "$SRC" --tool-id bar --version 1 --base-url "$ORIGIN" \
	--out "$T_DIR/manifest.json" 2> /dev/null
cat > "$T_DIR/agent.yaml" <<YAML
node_id: node-test
state_dir: $T_DIR/state
log_file: $T_DIR/agent.log
dns: {servers: ["127.0.0.1:$DNS_PORT"], timeout_ms: 500}
district: {static: bxl1}
mirror:
  url_pattern: "http://{district}.hydramirror.experiencenet.com:$DISTRICT_PORT"
  head_timeout_ms: 1500
YAML

# widest FILE: the longest line a terminal shows, the carriage returns and
# the clear-to-end-of-line sequences taken as line breaks.
widest() {
	sed 's/\x1b\[K/\n/g' "$1" | tr '\r' '\n' | awk '{ if (length($0) > m) m = length($0) } END { print m + 0 }'
}
# fits NAME FILE: a bar was drawn and never wider than 79 columns.
fits() {
	_w=$(widest "$2")
	if [ "$_w" -gt 0 ] && [ "$_w" -le 79 ]; then t_ok "$1: the bar is $_w wide"
	else t_fail "$1: at most 79 wide" "$_w"; fi
}

# 1. At 80 columns the install bar is at most 79 wide; the host is cut, not wrapped.
COLUMNS=80 "$A" --config "$T_DIR/agent.yaml" install --url "$ORIGIN/api/v1/peer/files/b.zip" \
	--out "$T_DIR/b80.zip" --progress bar > /dev/null 2> "$T_DIR/b80.err"
t_eq "install at 80 columns: exits 0" "$?" 0
fits "install at 80 columns" "$T_DIR/b80.err"
t_grep "install at 80 columns: reaches 100%" "$T_DIR/b80.err" "100.0%  4.0 MiB / 4.0 MiB"
t_grep "install at 80 columns: the host shortened" "$T_DIR/b80.err" "  bxl1.hydra"
COLUMNS=200 "$A" --config "$T_DIR/agent.yaml" install --url "$ORIGIN/api/v1/peer/files/b.zip" \
	--out "$T_DIR/b200.zip" --progress bar > /dev/null 2> "$T_DIR/b200.err"
t_grep "install at 200 columns: the whole host" "$T_DIR/b200.err" "  bxl1.hydramirror.experiencenet.com"

# 2. The sync bar: percent of bytes, files done/total, the source, 79 wide.
COLUMNS=80 "$A" --config "$T_DIR/agent.yaml" sync --manifest "$T_DIR/manifest.json" \
	--dir "$T_DIR/s80" --progress bar > /dev/null 2> "$T_DIR/s80.err"
t_eq "sync at 80 columns: exits 0" "$?" 0
fits "sync at 80 columns" "$T_DIR/s80.err"
t_grep "sync bar: 100% of the bytes and 20/20 files" "$T_DIR/s80.err" "100.0%  "
t_grep "sync bar: files done/total" "$T_DIR/s80.err" "20/20 files"
t_grep "sync bar: the source" "$T_DIR/s80.err" "files  bxl1.hydra"

# 3. On a terminal the log goes to stderr too: each line erases the bar
# first (\r, clear to end of line) and the bar comes back after it.
rm -f "$T_DIR/tty.zip"
COLUMNS=80 script -qec "'$A' --config '$T_DIR/agent.yaml' install --url '$ORIGIN/api/v1/peer/files/b.zip' --out '$T_DIR/tty.zip'" \
	"$T_DIR/tty.typescript" > /dev/null 2>&1 < /dev/null
t_eq "terminal install: exits 0" "$?" 0
ESC=$(printf '\033')
CR=$(printf '\r')
if grep -q "${CR}${ESC}\[K[0-9-]*T[0-9:.]*Z INFO mirrorfetch: download complete" "$T_DIR/tty.typescript"; then
	t_ok "terminal install: the bar is erased before a log line"
else
	t_fail "terminal install: the bar is erased before a log line" "$(od -c "$T_DIR/tty.typescript" | tail -n 12)"
fi
if tr -d '\n' < "$T_DIR/tty.typescript" | grep -q "download complete: [^$ESC]*${CR}100.0%"; then
	t_ok "terminal install: the bar is redrawn after it"
else
	t_fail "terminal install: the bar is redrawn after it" "$(tail -c 400 "$T_DIR/tty.typescript" | od -c | tail -n 8)"
fi

t_done
