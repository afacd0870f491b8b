# tests/support/fleet_env.sh: sourced after tests/lib.sh by install tests, the
# demo and testbooks. Starts the real servers of a district on loopback.

# env_dnsmasq NAME NAME=ADDR...: dnsmasq authoritative for experiencenet.com
# with these records (unknown names get NXDOMAIN, AAAA gets NODATA). Sets
# DNS_PORT.
env_dnsmasq() {
	_name=$1
	shift
	DNS_PORT=$(t_free_port)
	set -- "$@"
	_records=""
	for _r in "$@"; do
		_records="$_records --host-record=${_r%%=*},${_r#*=}"
	done
	# shellcheck disable=SC2086
	t_start "$_name" "$T_DIR/$_name.log" dnsmasq -k -C /dev/null --no-resolv --no-hosts \
		--pid-file --listen-address=127.0.0.1 --bind-interfaces --user=root \
		--port="$DNS_PORT" --local=/experiencenet.com/ --log-queries $_records
	t_wait_tcp 127.0.0.1 "$DNS_PORT" 10000 || { t_fail "$_name starts" "no DNS on $DNS_PORT"; return 1; }
}

# env_mirror NAME ARGS...: hydra-mirror on a free port, ready when its log says
# so. Sets MIRROR_PORT and MIRROR_PID.
env_mirror() {
	_name=$1
	shift
	MIRROR_PORT=$(t_free_port)
	t_start "$_name" "$T_DIR/$_name.log" "$BIN/hydra-mirror" --listen "127.0.0.1:$MIRROR_PORT" "$@"
	MIRROR_PID=$T_LAST_PID
	t_wait_log "$T_DIR/$_name.log" "hydra-mirror listening on" 10000 ||
		{ t_fail "$_name starts" "$(tail -n 3 "$T_DIR/$_name.log")"; return 1; }
}

# env_silent_dns NAME: a UDP port that receives and never answers. Sets
# SILENT_DNS_PORT.
env_silent_dns() {
	SILENT_DNS_PORT=$(t_free_port)
	t_start "$1" "$T_DIR/$1.log" socat -u "UDP4-RECV:$SILENT_DNS_PORT,bind=127.0.0.1" /dev/null
}

# env_build FILE BYTES: a build of random bytes; prints its sha256.
env_build() {
	mkdir -p "$(dirname "$1")"
	head -c "$2" /dev/urandom > "$1"
	sha256sum "$1" | cut -d' ' -f1
}

# env_nginx_conf DIR PORT SERVER: writes DIR/nginx.conf, one foreground nginx
# process on 127.0.0.1:PORT whose server block holds SERVER (a root, or a
# location with env_nginx_proxy). Every request is logged to DIR/access.log
# as "$connection $request_method $request_uri $status": the first field
# counts connections, the rest shows what was asked and answered. Needs no
# tests/lib.sh, so bench/ writes its proxy with it too.
env_nginx_conf() {
	mkdir -p "$1" || return 1
	cat > "$1/nginx.conf" <<NGINX
daemon off; master_process off; worker_processes 1; user root;
pid $1/nginx.pid; error_log $1/error.log;
events { worker_connections 256; }
http {
	log_format conn '\$connection \$request_method \$request_uri \$status';
	access_log $1/access.log conn;
	client_body_temp_path $1/t; proxy_temp_path $1/p;
	server { listen 127.0.0.1:$2; $3 }
}
NGINX
}

# env_nginx_proxy URL: the SERVER of env_nginx_conf for a proxy to URL,
# unbuffered and HTTP/1.1 to the upstream, so bytes stream as they come.
env_nginx_proxy() {
	echo "location / { proxy_pass $1; proxy_buffering off; proxy_http_version 1.1; }"
}

# env_nginx NAME PORT SERVER: env_nginx_conf in $T_DIR/NAME, started and
# ready when it listens; its access log is $T_DIR/NAME/access.log.
env_nginx() {
	env_nginx_conf "$T_DIR/$1" "$2" "$3" || return 1
	t_start "$1" "$T_DIR/$1.log" nginx -p "$T_DIR/$1" -c "$T_DIR/$1/nginx.conf" \
		-e "$T_DIR/$1/error.log"
	t_wait_tcp 127.0.0.1 "$2" 10000 || { t_fail "$1 starts" "no listener on $2"; return 1; }
}
