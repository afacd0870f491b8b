#!/bin/bash
# hydra-mirror health and metrics (issue 13): a peer turns degraded, with a
# reason and the origin's last error, when its origin is killed, and healthy
# again once the origin is back (without a client's miss); version, uptime
# and an origin_url without escaped slashes; /metrics passes promtool and
# carries build_info, connections, the duration histogram and failures by
# reason. A HUP with a key that does not match the certificate is refused
# and the old certificate stays in use.
. "$(dirname "$0")/../lib.sh"
. "$T_ROOT/tests/support/fleet_env.sh"

M="$BIN/hydra-mirror"
mkdir -p "$T_DIR/origin/files/b" "$T_DIR/peer"
printf 'one\n' > "$T_DIR/origin/files/b/one.txt"
printf 'two\n' > "$T_DIR/origin/files/b/two.txt"
env_mirror origin --root "$T_DIR/origin" || t_done
OPORT=$MIRROR_PORT
env_mirror peer --root "$T_DIR/peer" --mode peer --origin-url "http://127.0.0.1:$OPORT/" \
	--district bxl1 || t_done
P="http://127.0.0.1:$MIRROR_PORT"

curl -s "$P/api/v1/peer/files/b/one.txt" > /dev/null
curl -s "$P/api/v1/health" > "$T_DIR/h1"
t_eq "healthy with a live origin" "$(jq -r .status "$T_DIR/h1")" healthy
t_eq "no reasons" "$(jq -c .reasons "$T_DIR/h1")" "[]"
t_eq "version" "$(jq -r .version "$T_DIR/h1")" "$("$M" -V | cut -d' ' -f2)"
t_eq "uptime_s is a number" "$(jq -r '.uptime_s | type' "$T_DIR/h1")" number
t_eq "origin.reachable" "$(jq -r .origin.reachable "$T_DIR/h1")" true
t_grep "origin_url reads as written" "$T_DIR/h1" "\"origin_url\":\"http://127.0.0.1:$OPORT/\""

t_stop origin
code=$(curl -s -o /dev/null -w '%{http_code}' "$P/api/v1/peer/files/b/two.txt")
t_eq "a miss with the origin down is 502" "$code" 502
curl -s -w '\n%{http_code}' "$P/api/v1/health" > "$T_DIR/h2"
t_eq "health stays HTTP 200" "$(tail -n1 "$T_DIR/h2")" 200
sed -i '$d' "$T_DIR/h2"
t_eq "degraded once a fill cannot reach the origin" "$(jq -r .status "$T_DIR/h2")" degraded
t_eq "with the reason" "$(jq -r '.reasons[0]' "$T_DIR/h2")" "origin unreachable"
t_eq "origin.reachable false" "$(jq -r .origin.reachable "$T_DIR/h2")" false
t_eq "origin.last_error says why" "$(jq -r '.origin.last_error | length > 0' "$T_DIR/h2")" true

t_start origin "$T_DIR/origin2.log" "$M" --listen "127.0.0.1:$OPORT" --root "$T_DIR/origin"
t_wait_log "$T_DIR/origin2.log" "listening on" 10000 || { t_fail "origin restarts" "see log"; t_done; }
# The peer probes an unreachable origin every 5 s: 20 s is four times that.
i=0 st=degraded
while [ $i -lt 200 ] && [ "$st" != healthy ]; do
	st=$(curl -s "$P/api/v1/health" | jq -r .status)
	[ "$st" = healthy ] || sleep 0.1
	i=$((i + 1))
done
t_eq "healthy again once the origin is back, with no client miss" "$st" healthy
t_grep "the recovery is logged" "$T_DIR/peer.log" "answers again"

curl -s "$P/metrics" > "$T_DIR/metrics"
if command -v promtool > /dev/null; then
	promtool check metrics < "$T_DIR/metrics" > "$T_DIR/promtool" 2>&1
	t_eq "promtool check metrics exits 0" "$?" 0
	t_eq "and reports nothing" "$(wc -c < "$T_DIR/promtool")" 0
	[ -s "$T_DIR/promtool" ] && sed 's/^/    | /' "$T_DIR/promtool" | head
else
	t_skip "promtool check metrics" "promtool (Debian prometheus) is not installed"
fi
t_grep "build_info with the version" "$T_DIR/metrics" "hydra_mirror_build_info{version=\"$("$M" -V | cut -d' ' -f2)\"} 1"
t_grep "connections open" "$T_DIR/metrics" "hydra_mirror_connections_open "
t_grep "connections refused" "$T_DIR/metrics" "hydra_mirror_connections_refused_total 0"
t_grep "duration histogram by route" "$T_DIR/metrics" \
	'hydra_mirror_request_duration_seconds_bucket{route="files",le="+Inf"} 2'
t_grep "fill failures by reason" "$T_DIR/metrics" \
	'hydra_mirror_origin_fill_failures_by_reason_total{reason="unreachable"} 1'

# A store on a nearly full file system: a 4 MiB tmpfs of the mirror's own
# mount namespace, 97% taken.
if unshare -m true 2> /dev/null; then
	DPORT=$(t_free_port)
	mkdir -p "$T_DIR/full"
	t_start full "$T_DIR/full.log" unshare -m sh -c '
		mount -t tmpfs -o size=4m none "$1" && head -c 4000000 /dev/zero > "$1/ballast" &&
		exec "$2" --listen "127.0.0.1:$3" --root "$1"' sh "$T_DIR/full" "$M" "$DPORT"
	if t_wait_log "$T_DIR/full.log" "listening on" 10000; then
		curl -s "http://127.0.0.1:$DPORT/api/v1/health" > "$T_DIR/hfull"
		t_eq "a nearly full disk is degraded" "$(jq -r .status "$T_DIR/hfull")" degraded
		t_eq "with the reason" "$(jq -r '.reasons[0]' "$T_DIR/hfull")" "disk nearly full"
	else
		t_fail "a mirror on a small tmpfs starts" "$(tail -3 "$T_DIR/full.log")"
	fi
	t_stop full
else
	t_skip "disk nearly full" "cannot create a mount namespace for a small tmpfs"
fi

# A connection over max_connections is refused and counted.
env_mirror small --root "$T_DIR/small" --max-connections 2 || t_done
SPORT=$MIRROR_PORT
t_start holder "$T_DIR/holder.log" python3 -c '
import socket, sys, time
s = [socket.create_connection(("127.0.0.1", int(sys.argv[1]))) for _ in range(2)]
print("holding", flush=True)
time.sleep(3)
' "$SPORT"
t_wait_log "$T_DIR/holder.log" "holding" 5000
curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$SPORT/api/v1/health"
[ $? -ne 0 ] && t_ok "a third connection is turned away" || t_fail "a third connection is turned away" "answered"
t_stop holder
i=0 n=""
while [ $i -lt 50 ] && [ -z "$n" ]; do
	n=$(curl -s --max-time 2 "http://127.0.0.1:$SPORT/metrics" |
		awk '$1 == "hydra_mirror_connections_refused_total" { print $2 }')
	[ -n "$n" ] || sleep 0.1
	i=$((i + 1))
done
t_eq "and counted in connections_refused_total" "$n" 1

# TLS: a HUP with a key that is not the certificate's is refused.
C="$T_DIR/certs"
mkdir -p "$C"
sh "$T_ROOT/tests/support/gen-certs.sh" "$C" one.test two.test
TPORT=$(t_free_port)
printf 'listen: 127.0.0.1:%s\nroot: %s\ntls:\n  cert: %s\n  key: %s\n' "$TPORT" \
	"$T_DIR/tlsroot" "$C/cur.pem" "$C/cur.key" > "$T_DIR/tls.yaml"
cp "$C/one.test.pem" "$C/cur.pem"
cp "$C/one.test.key" "$C/cur.key"
t_start tls "$T_DIR/tls.log" "$M" --config "$T_DIR/tls.yaml"
TPID=$T_LAST_PID
t_wait_log "$T_DIR/tls.log" "listening on" 10000 || { t_fail "tls mirror starts" "see log"; t_done; }
serial() {
	openssl s_client -connect "127.0.0.1:$TPORT" < /dev/null 2> /dev/null | openssl x509 -noout -serial
}
ONE=$(serial)
cp "$C/two.test.pem" "$C/cur.pem"
kill -HUP "$TPID"
t_wait_log "$T_DIR/tls.log" "reload refused: tls: the key does not match the certificate" 10000 &&
	t_ok "a certificate without its key is refused" || t_fail "a mismatched key is refused" "$(tail -3 "$T_DIR/tls.log")"
t_eq "the old certificate stays in use" "$(serial)" "$ONE"
cp "$C/two.test.key" "$C/cur.key"
kill -HUP "$TPID"
t_wait_log "$T_DIR/tls.log" "reloaded" 10000
t_eq "with its key, new handshakes see the new serial" "$(serial)" \
	"$(openssl x509 -noout -serial -in "$C/two.test.pem")"
t_done
