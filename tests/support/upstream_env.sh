# tests/support/upstream_env.sh: sourced after tests/lib.sh by the
# mirror_upstream* tests. Requests to a mirror answering from upstream
# releases, and the checks every refused release gets.

# get NAME URL: body to $T_DIR/NAME.body, headers to $T_DIR/NAME.h, status in CODE.
get() {
	CODE=$(curl -s -o "$T_DIR/$1.body" -D "$T_DIR/$1.h" -w '%{http_code}' "$2")
}

# header NAME FIELD: the value of FIELD in the headers get NAME saved.
header() { awk -v h="$2:" 'tolower($1) == tolower(h) { print $2 }' "$T_DIR/$1.h" | tr -d '\r'; }

# refused NAME TOOL/VERSION/files/MEMBER REASON: the miss is 502, REASON is
# in $LOG, and nothing of TOOL is under $ROOT (the mirror at $T).
refused() {
	get "$1" "$T/$2"
	t_eq "$1: 502" "$CODE" 502
	t_grep "$1: the reason is logged" "$LOG" "$3"
	t_eq "$1: nothing stored" "$(find "$ROOT/files/tools/${2%%/*}" -type f 2>/dev/null | wc -l)" 0
}

# up_nginx FORMAT [GH_LOCATIONS] [SERVERS]: nginx standing in for GitHub. A
# "release host" on 127.0.0.1:$GH answers every request with a 302 to an
# "asset host" on 127.0.0.1:$ASSETS serving $WWW, as GitHub sends release
# assets to its storage. GH_LOCATIONS are more location blocks of the release
# host, SERVERS more server blocks. Requests are logged with the log_format
# FORMAT to $T_DIR/nginx/gh.log and assets.log. Uses GH and ASSETS when set
# (so the extra blocks can name them), else picks free ports; 0 once nginx
# listens, 1 otherwise.
up_nginx() {
	GH=${GH:-$(t_free_port)}
	ASSETS=${ASSETS:-$(t_free_port)}
	mkdir -p "$T_DIR/nginx/t" || return 1
	cat > "$T_DIR/nginx/nginx.conf" <<NGINX
daemon off; master_process off; worker_processes 1; user root;
pid $T_DIR/nginx/nginx.pid; error_log $T_DIR/nginx/error.log;
events { worker_connections 64; }
http {
  log_format b '$1';
  client_body_temp_path $T_DIR/nginx/t;
  server { listen 127.0.0.1:$GH; access_log $T_DIR/nginx/gh.log b;
    ${2:-}
    location / { return 302 http://127.0.0.1:$ASSETS\$request_uri; } }
  server { listen 127.0.0.1:$ASSETS; access_log $T_DIR/nginx/assets.log b; root $WWW; }
  ${3:-}
}
NGINX
	t_start nginx "$T_DIR/nginx.log" nginx -p "$T_DIR/nginx" -c "$T_DIR/nginx/nginx.conf" \
		-e "$T_DIR/nginx/error.log"
	t_wait_tcp 127.0.0.1 "$ASSETS" 10000
}
