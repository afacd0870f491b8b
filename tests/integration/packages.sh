#!/bin/bash
# The Debian packages as an operator gets them: `make install` and the
# packages hold the same files; lintian finds no error; every unit passes
# systemd-analyze verify and scores at most 2.0 in `security --offline`;
# then, as root with dpkg, the packages are installed with dpkg -i (files,
# conffiles, system users, units in place), the installed hydra-mirror serves
# its health endpoint once as its own user, and dpkg -P leaves nothing behind.
# The machine is restored on every exit path: the packages are purged by the
# exit trap even when a check fails half-way.
. "$(dirname "$0")/../lib.sh"

PKGS="hydra-agent hydra-mirror hydra-cluster-sim"
DEBDIR="$T_ROOT/$BUILD/deb"
# systemd-analyze security: the bar the issue sets for every shipped unit.
MAX_EXPOSURE=2.0

# Everything the packages may leave on a machine, checked before and after.
LEFTOVERS="/usr/bin/hydra-agent /usr/bin/hydra-mirror /usr/bin/hydra-cluster-sim
/etc/hydra-agent /etc/hydra-mirror /etc/logrotate.d/hydra-agent /etc/logrotate.d/hydra-mirror
/usr/lib/hydra-mirror /var/lib/hydra-agent /var/lib/hydra-mirror /var/log/hydra-mirror
/lib/systemd/system/hydra-mirror.service /lib/systemd/system/hydra-mirror-acme.service
/lib/systemd/system/hydra-mirror-acme.timer /lib/systemd/system/hydra-agent-stream.service
/usr/share/doc/hydra-agent /usr/share/doc/hydra-mirror /usr/share/doc/hydra-cluster-sim
/usr/share/man/man1/hydra-agent.1.gz /usr/share/man/man8/hydra-mirror.8.gz
/usr/share/man/man1/hydra-cluster-sim.1.gz"

leftovers() {
	for p in $LEFTOVERS; do [ -e "$p" ] && echo "$p"; done
	for u in hydra-agent hydra-mirror; do
		getent passwd "$u" >/dev/null && echo "user $u"
		getent group "$u" >/dev/null && echo "group $u"
	done
	find /etc/systemd /var/lib/systemd -name 'hydra-*' 2>/dev/null
	dpkg-query -W -f='${Package} ${Status}\n' $PKGS 2>/dev/null | grep -v 'not-installed$'
}

for tool in dpkg-buildpackage dh; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		t_skip "packages" "$tool is missing (apt-get install dpkg-dev debhelper)"
		t_done
	fi
done

# ---- build once for the whole test
if make -s -C "$T_ROOT" BUILD="$BUILD" deb > "$T_DIR/build.out" 2>&1; then
	t_ok "make deb builds the packages"
else
	t_fail "make deb builds the packages" "$(tail -n 5 "$T_DIR/build.out" | tr '\n' ' ')"
	t_done
fi
debs=""
for p in $PKGS; do
	f=$(ls "$DEBDIR/${p}"_*.deb 2>/dev/null | head -n 1)
	if [ -n "$f" ]; then debs="$debs $f"; else t_fail "$p package built" "none in $DEBDIR"; fi
done
first=$(ls "$DEBDIR"/hydra-agent_*.deb 2>/dev/null | head -n 1)
version=$(dpkg-deb -f "$first" Version 2>/dev/null)
case "$version" in
	[0-9]*) t_ok "the version comes from the tree ($version)" ;;
	*) t_fail "the version comes from the tree" "got '$version'" ;;
esac

# ---- make install holds the same files as the packages
stage="$T_DIR/stage"
if make -s -C "$T_ROOT" BUILD="$BUILD" install install-sim DESTDIR="$stage" PREFIX=/usr \
	UNITDIR=/lib/systemd/system > "$T_DIR/install.out" 2>&1; then
	(cd "$stage" && find . -type f | sed 's|^\.||' | sort) > "$T_DIR/install.files"
	for f in $debs; do dpkg-deb -c "$f"; done | awk '$1 ~ /^-/ { print $6 }' |
		sed -e 's|^\./|/|' -e 's|\.gz$||' | grep -v '^/usr/share/doc/' | sort > "$T_DIR/deb.files"
	if diff "$T_DIR/deb.files" "$T_DIR/install.files" > "$T_DIR/files.diff"; then
		t_ok "make install and install-sim install the packages' $(wc -l < "$T_DIR/deb.files") files"
	else
		t_fail "make install installs the packages' files" "$(tr '\n' ' ' < "$T_DIR/files.diff")"
	fi
	if [ -e "$stage/usr/bin/hydra-cluster-sim" ] && ! grep -q hydra-cluster-sim "$T_DIR/deb.files"; then
		t_fail "hydra-cluster-sim only in its own package" "missing"
	fi
	make -s -C "$T_ROOT" BUILD="$BUILD" install DESTDIR="$T_DIR/nosim" PREFIX=/usr > /dev/null 2>&1
	if [ -e "$T_DIR/nosim/usr/bin/hydra-agent" ] && [ ! -e "$T_DIR/nosim/usr/bin/hydra-cluster-sim" ]; then
		t_ok "make install leaves the simulator out"
	else
		t_fail "make install leaves the simulator out" "see $T_DIR/nosim"
	fi
else
	t_fail "make install DESTDIR= runs" "$(tail -n 3 "$T_DIR/install.out" | tr '\n' ' ')"
fi
if dpkg-deb -c "$DEBDIR"/hydra-mirror_*.deb | grep -q hydra-cluster-sim ||
	dpkg-deb -c "$DEBDIR"/hydra-agent_*.deb | grep -q hydra-cluster-sim; then
	t_fail "production packages hold no simulator" "found in hydra-agent or hydra-mirror"
else
	t_ok "production packages hold no simulator"
fi

# ---- lintian
if command -v lintian >/dev/null 2>&1; then
	# shellcheck disable=SC2086
	lintian --allow-root $debs > "$T_DIR/lintian.out" 2>&1
	if grep -q '^E: ' "$T_DIR/lintian.out"; then
		t_fail "lintian reports no error" "$(grep '^E: ' "$T_DIR/lintian.out" | head -n 5 | tr '\n' ' ')"
	else
		t_ok "lintian reports no error ($(grep -c '^W: ' "$T_DIR/lintian.out") warnings)"
	fi
else
	t_skip "lintian reports no error" "lintian is not installed"
fi

# ---- from here on the machine itself
if [ "$(id -u)" -ne 0 ]; then
	t_skip "dpkg -i and dpkg -P" "not root"
	t_done
fi
if [ -n "$(leftovers)" ]; then
	t_skip "dpkg -i and dpkg -P" "this machine already has: $(leftovers | tr '\n' ' ')"
	t_done
fi

# The agent's log may be there already (hydra-agent run as root with the
# default config writes it): kept aside and put back, as the purge removes it.
LOG=/var/log/hydrabody.log
had_log=0
if [ -e "$LOG" ]; then mv "$LOG" "$T_DIR/hydrabody.log.saved" && had_log=1; fi
restore_log() {
	[ "$had_log" = 1 ] && mv "$T_DIR/hydrabody.log.saved" "$LOG"
	had_log=0
}
purge_all() {
	# shellcheck disable=SC2086
	dpkg -P $PKGS > "$T_DIR/purge.out" 2>&1
}
# The maintainer scripts enable units but must start none on this machine:
# policy-rc.d (honoured by deb-systemd-invoke and invoke-rc.d) says no.
RC=/usr/sbin/policy-rc.d
made_rc=0
if [ ! -e "$RC" ]; then
	printf '#!/bin/sh\nexit 101\n' > "$RC" && chmod 0755 "$RC" && made_rc=1
fi
restore_rc() {
	[ "$made_rc" = 1 ] && rm -f "$RC"
	made_rc=0
}
# shellcheck disable=SC2034
T_ON_EXIT="purge_all; restore_log; restore_rc"

# shellcheck disable=SC2086
if dpkg -i $debs > "$T_DIR/dpkg-i.out" 2>&1; then
	t_ok "dpkg -i installs the three packages"
else
	t_fail "dpkg -i installs the three packages" "$(tail -n 5 "$T_DIR/dpkg-i.out" | tr '\n' ' ')"
	t_done
fi

for f in /usr/bin/hydra-agent /usr/bin/hydra-mirror /usr/bin/hydra-cluster-sim \
	/usr/share/man/man1/hydra-agent.1.gz /usr/share/man/man8/hydra-mirror.8.gz \
	/usr/share/man/man1/hydra-cluster-sim.1.gz /usr/lib/hydra-mirror/acme-hook \
	/usr/lib/hydra-mirror/acme-renew /etc/logrotate.d/hydra-agent; do
	if [ -e "$f" ]; then t_ok "installed: $f"; else t_fail "installed: $f" "missing"; fi
done
conffiles=$(dpkg-query -W -f='${Conffiles}\n' hydra-agent hydra-mirror | awk 'NF { print $1 }' | sort | tr '\n' ' ')
t_eq "conffiles" "$conffiles" "/etc/hydra-agent/agent.yaml /etc/hydra-agent/stream.env /etc/hydra-mirror/acme.conf /etc/hydra-mirror/mirror.yaml /etc/logrotate.d/hydra-agent /etc/logrotate.d/hydra-mirror "
/usr/bin/hydra-agent --config /etc/hydra-agent/agent.yaml check-config > "$T_DIR/check.out" 2>&1
t_eq "the shipped agent.yaml is valid" "$?" 0

for u in hydra-mirror hydra-agent; do
	ent=$(getent passwd "$u")
	shell=${ent##*:}
	case "$ent:$shell" in
		*:/usr/sbin/nologin|*:/bin/false) t_ok "system user $u exists without a login shell" ;;
		*) t_fail "system user $u exists without a login shell" "passwd: '$ent'" ;;
	esac
	owner=$(stat -c '%U:%G %a' "/var/lib/$u" 2>/dev/null)
	t_eq "/var/lib/$u belongs to $u" "$owner" "$u:$u 750"
done
t_eq "/var/log/hydrabody.log is the agent's" "$(stat -c '%U:%G %a' /var/log/hydrabody.log 2>/dev/null)" "hydra-agent:adm 640"
for w in /etc/systemd/system/multi-user.target.wants/hydra-mirror.service \
	/etc/systemd/system/timers.target.wants/hydra-mirror-acme.timer; do
	if [ -L "$w" ]; then t_ok "enabled: ${w##*/}"; else t_fail "enabled: ${w##*/}" "no $w"; fi
done
if [ -e /etc/systemd/system/graphical.target.wants/hydra-agent-stream.service ]; then
	t_fail "the kiosk stream unit is installed disabled" "it is enabled"
else
	t_ok "the kiosk stream unit is installed disabled"
fi

# ---- the units: verify and security, on the installed files
units="hydra-mirror.service hydra-mirror-acme.service hydra-mirror-acme.timer hydra-agent-stream.service"
if command -v systemd-analyze >/dev/null 2>&1; then
	for u in $units; do
		systemd-analyze verify "/lib/systemd/system/$u" > "$T_DIR/verify.out" 2>&1
		rc=$?
		if [ "$rc" -eq 0 ] && ! grep -q "$u" "$T_DIR/verify.out"; then
			t_ok "systemd-analyze verify $u is clean"
		else
			t_fail "systemd-analyze verify $u is clean" "exit $rc: $(head -n 3 "$T_DIR/verify.out" | tr '\n' ' ')"
		fi
		case "$u" in *.service) ;; *) continue ;; esac
		score=$(systemd-analyze security --offline=true --no-pager "/lib/systemd/system/$u" 2>/dev/null |
			sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p')
		if [ -n "$score" ] && awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s <= m) }'; then
			t_ok "$u exposure $score <= $MAX_EXPOSURE"
		else
			t_fail "$u exposure at most $MAX_EXPOSURE" "got '$score'"
		fi
	done
else
	t_skip "systemd-analyze verify and security" "systemd-analyze is not installed"
fi

# ---- the installed hydra-mirror, once, as its user, on a free loopback port
port=$(t_free_port)
t_start mirror "$T_DIR/mirror.log" setpriv --reuid=hydra-mirror --regid=hydra-mirror --init-groups \
	/usr/bin/hydra-mirror --config /etc/hydra-mirror/mirror.yaml --listen "127.0.0.1:$port"
health=""
if t_wait_tcp 127.0.0.1 "$port" 10000; then
	health=$(curl -s --max-time 5 "http://127.0.0.1:$port/api/v1/health")
fi
case "$health" in
	*'"status":"healthy"'*|*'"status": "healthy"'*) t_ok "the installed hydra-mirror answers health as hydra-mirror" ;;
	*) t_fail "the installed hydra-mirror answers health" "got '$health'; $(tail -n 3 "$T_DIR/mirror.log" | tr '\n' ' ')" ;;
esac
if [ "$(stat -c %U /var/lib/hydra-mirror/meta 2>/dev/null)" = hydra-mirror ]; then
	t_ok "it keeps its store in /var/lib/hydra-mirror"
else
	t_fail "it keeps its store in /var/lib/hydra-mirror" "no meta/ owned by hydra-mirror"
fi
t_stop mirror

# ---- the installed ACME helpers, without an ACME server
webroot="$T_DIR/webroot"
hook=/usr/lib/hydra-mirror/acme-hook
if ACME_WEBROOT="$webroot" "$hook" begin http-01 bxl1.example tok_EN-9 tok_EN-9.key &&
	[ "$(cat "$webroot/tok_EN-9" 2>/dev/null)" = tok_EN-9.key ]; then
	t_ok "acme-hook begin publishes the challenge"
else
	t_fail "acme-hook begin publishes the challenge" "no $webroot/tok_EN-9"
fi
ACME_WEBROOT="$webroot" "$hook" "done" http-01 bxl1.example tok_EN-9 tok_EN-9.key
t_eq "acme-hook done withdraws it" "$(ls "$webroot")" ""
ACME_WEBROOT="$webroot" "$hook" begin http-01 bxl1.example ../escape x 2> /dev/null
rc=$?
escaped=no
[ -e "$T_DIR/escape" ] && escaped=yes
t_eq "acme-hook refuses a token that is not base64url" "$rc:$escaped" "2:no"
ACME_WEBROOT="$webroot" "$hook" begin dns-01 bxl1.example tok x
t_eq "acme-hook declines other challenge types" "$?" 1
out=$(setpriv --reuid=hydra-mirror --regid=hydra-mirror --init-groups \
	/usr/lib/hydra-mirror/acme-renew /etc/hydra-mirror/acme.conf 2>&1)
t_eq "acme-renew with no domain configured does nothing, exit 0" "$?:$out" \
	"0:acme-renew: ACME_DOMAIN is empty in /etc/hydra-mirror/acme.conf, nothing to do"

if command -v logrotate >/dev/null 2>&1; then
	for f in hydra-agent hydra-mirror; do
		if logrotate -d "/etc/logrotate.d/$f" > "$T_DIR/logrotate.out" 2>&1 &&
			! grep -qiE 'error|unknown' "$T_DIR/logrotate.out"; then
			t_ok "logrotate accepts /etc/logrotate.d/$f"
		else
			t_fail "logrotate accepts /etc/logrotate.d/$f" "$(grep -iE 'error|unknown' "$T_DIR/logrotate.out" | head -n 2)"
		fi
	done
else
	t_skip "logrotate accepts the shipped files" "logrotate is not installed"
fi

# ---- dpkg -P leaves nothing
# shellcheck disable=SC2034
T_ON_EXIT="restore_log; restore_rc"
if purge_all; then
	t_ok "dpkg -P purges the three packages"
else
	t_fail "dpkg -P purges the three packages" "$(tail -n 5 "$T_DIR/purge.out" | tr '\n' ' ')"
fi
left=$(leftovers; [ -e "$LOG" ] && echo "$LOG")
t_eq "nothing is left after the purge" "$left" ""
restore_log
restore_rc

t_done
