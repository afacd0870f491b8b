#!/bin/sh
# Installs the Debian packages hydra-agent builds, tests, packages and
# benchmarks with (docs/architecture.md section 3). Idempotent: runs apt-get
# only when something is missing, and apt-get update only then.
set -eu

PKGS="build-essential pkg-config
libcurl4-openssl-dev libc-ares-dev libssl-dev libjson-c-dev libyaml-dev
libcmocka-dev libmicrohttpd-dev libzip-dev libarchive-dev
dnsmasq-base nftables iproute2 openssl curl socat procps jq util-linux
nginx-light aria2 wrk valgrind rsync time python3
libsystemd-dev debhelper dpkg-dev fakeroot lintian man-db groff-base logrotate
pebble uacme prometheus"

missing=""
# make fuzz: clang and its libFuzzer runtime (Debian 12's clang only recommends it).
PKGS="$PKGS clang libclang-rt-14-dev"
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	echo "deps: all packages present"
	exit 0
fi

echo "deps: installing:$missing"
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: not root; run: apt-get update && apt-get install -y$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d keeps package scripts from starting nginx or dnsmasq services.
rc=/usr/sbin/policy-rc.d
made_rc=0
if [ ! -e "$rc" ]; then
	printf '#!/bin/sh\nexit 101\n' > "$rc" && chmod 0755 "$rc" && made_rc=1
fi
status=0
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing || status=$?
[ "$made_rc" -eq 1 ] && rm -f "$rc"
exit $status
