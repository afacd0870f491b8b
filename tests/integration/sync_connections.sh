#!/bin/bash
# Issue 14: one connection per source and worker for a whole run. nginx is
# the district and logs $connection for every request: an install's HEAD
# and GET share one connection, and a sync of 200 files with --jobs 4 opens
# at most 4. Then a district that refuses connections: one fallback line.
. "$(dirname "$0")/../lib.sh"
. "$T_ROOT/tests/support/fleet_env.sh"

A="$BIN/hydra-agent"
command -v nginx > /dev/null || { t_skip "sync connections" "nginx is not installed"; t_done; }
NFILES=200
JOBS=4
SRC="$T_DIR/origin/files/tools/conn/1/files"
mkdir -p "$SRC/d" "$T_DIR/www/api/v1"
i=0
while [ $i -lt $NFILES ]; do
	head -c $((100 + i * 37)) /dev/urandom > "$SRC/d/f$i.bin"
	i=$((i + 1))
done
head -c $((2 * 1024 * 1024)) /dev/urandom > "$T_DIR/origin/files/b.zip"
ln -s "$T_DIR/origin/files/tools" "$T_DIR/www/api/v1/tools"
mkdir -p "$T_DIR/www/api/v1/peer"
ln -s "$T_DIR/origin/files" "$T_DIR/www/api/v1/peer/files"

env_dnsmasq dns mirror-a.experiencenet.com=127.0.0.1 bxl1.hydramirror.experiencenet.com=127.0.0.1 || t_done
env_mirror origin --root "$T_DIR/origin" --mode origin || t_done
ORIGIN="http://mirror-a.experiencenet.com:$MIRROR_PORT"
CLOSED_PORT=$(t_free_port)

NGINX_PORT=$(t_free_port)
env_nginx nginx "$NGINX_PORT" "root $T_DIR/www; disable_symlinks off;" || t_done

"$A" manifest --dir "$SRC" --tool-id conn --version 1 --base-url "$ORIGIN" \
	--out "$T_DIR/manifest.json" 2> "$T_DIR/manifest.err"
t_eq "manifest: exits 0" "$?" 0

conf() {  # conf NAME PORT
	cat > "$T_DIR/$1.yaml" <<YAML
node_id: node-test
state_dir: $T_DIR/state
log_file: $T_DIR/$1.log
dns: {servers: ["127.0.0.1:$DNS_PORT"], timeout_ms: 500}
district: {static: bxl1}
mirror:
  url_pattern: "http://{district}.hydramirror.experiencenet.com:$2"
  head_timeout_ms: 1500
YAML
}
# conns: distinct connections in nginx's log, then requests.
conns() { awk '{ c[$1] = 1; n++ } END { print length(c), n + 0 }' "$T_DIR/nginx/access.log"; }

# An install: the HEAD and the GET on one connection.
conf district "$NGINX_PORT"
: > "$T_DIR/nginx/access.log"
"$A" --config "$T_DIR/district.yaml" install --url "$ORIGIN/api/v1/peer/files/b.zip" \
	--out "$T_DIR/b.zip" --sha256 "$(sha256sum < "$T_DIR/origin/files/b.zip" | cut -d' ' -f1)" \
	> /dev/null 2> "$T_DIR/install.err"
t_eq "install: exits 0" "$?" 0
t_eq "install: HEAD and GET to the district on 1 connection" "$(conns)" "1 2"

# A sync of 200 files with --jobs 4: at most 4 connections for 400 requests.
: > "$T_DIR/nginx/access.log"
"$A" --config "$T_DIR/district.yaml" sync --manifest "$T_DIR/manifest.json" --dir "$T_DIR/out" \
	--jobs $JOBS --json > "$T_DIR/sync.json" 2> "$T_DIR/sync.err"
t_eq "sync: exits 0" "$?" 0
t_eq "sync: the folder equals the tool" "$(diff -r --exclude=.hydra-index "$SRC" "$T_DIR/out" > /dev/null && echo same)" same
set -- $(conns)
t_eq "sync: every file asked of the district (HEAD and GET)" "$2" $((NFILES * 2))
if [ "$1" -ge 1 ] && [ "$1" -le $JOBS ]; then
	t_ok "sync: $1 connections for $NFILES files with --jobs $JOBS"
else
	t_fail "sync: at most $JOBS connections" "$1 connections"
fi

# A district that refuses connections: one fallback line for the whole run.
conf dead "$CLOSED_PORT"
"$A" --config "$T_DIR/dead.yaml" sync --manifest "$T_DIR/manifest.json" --dir "$T_DIR/out-dead" \
	--jobs $JOBS > /dev/null 2> "$T_DIR/dead.err"
t_eq "dead district: exits 0" "$?" 0
t_eq "dead district: one fallback line" \
	"$(grep -c 'district mirror bxl1.hydramirror.experiencenet.com unavailable' "$T_DIR/dead.log")" 1

t_done
