#!/bin/bash
# Torture: 50 SIGKILLs at random moments of hydra-agent install, through a
# district hydra-mirror (peer mode, paced by max_egress_bytes_per_s) in front
# of an origin hydra-mirror. After every kill PATH is absent or the verified
# build (a regular file whose sha256 matches), PATH.part is a prefix of the
# build, and nothing else is left beside them (but its .meta); the runs after a kill resume.
# Two builds alternate and the peer holds only one, so fills are killed too.
# A final run of each build completes and verifies.
. "$(dirname "$0")/../lib.sh"
. "$T_ROOT/tests/support/fleet_env.sh"
. "$T_ROOT/tests/torture/lib/torture.sh"
tt_seed

A="$BIN/hydra-agent"
KILLS=${TORTURE_KILLS:-50}
# 3 MiB at 4 MiB/s (the district's pace): about 0.75 s a whole transfer.
SIZE=$((3 * 1024 * 1024))
PACE=$((4 * 1024 * 1024))
# The loop stops here (the runner's bound is 240 s a script).
BUDGET_S=180
mkdir -p "$T_DIR/origin/files/exp" "$T_DIR/out"
SHA0=$(env_build "$T_DIR/origin/files/exp/build-0.zip" $SIZE)
SHA1=$(env_build "$T_DIR/origin/files/exp/build-1.zip" $SIZE)

env_dnsmasq dns mirror-a.experiencenet.com=127.0.0.1 bxl1.hydramirror.experiencenet.com=127.0.0.1 || t_done
env_mirror origin --root "$T_DIR/origin" --mode origin --max-egress-bytes-per-s 8M || t_done
ORIGIN_PORT=$MIRROR_PORT
# max_bytes holds one build, not two: every switch of build is a new fill.
env_mirror district --root "$T_DIR/district" --mode peer --district bxl1 \
	--origin-url "http://127.0.0.1:$ORIGIN_PORT" --max-bytes $((SIZE + SIZE / 2)) \
	--max-egress-bytes-per-s $PACE || t_done

cat > "$T_DIR/agent.yaml" <<YAML
node_id: node-torture
state_dir: $T_DIR/state
log_file: $T_DIR/agent.log
dns: {servers: ["127.0.0.1:$DNS_PORT"], timeout_ms: 1000}
district: {static: bxl1}
mirror:
  url_pattern: "http://{district}.hydramirror.experiencenet.com:$MIRROR_PORT"
  stall: {bytes_per_s: 1K, seconds: 30}
YAML

url_of() { echo "http://mirror-a.experiencenet.com:$ORIGIN_PORT/api/v1/peer/files/exp/build-$1.zip"; }
sha_of() { if [ "$1" = 0 ]; then echo "$SHA0"; else echo "$SHA1"; fi; }

# check_out WHEN: PATH absent or verified, the part a prefix, nothing else.
# Prints nothing and returns 0 when all holds, else one reason.
check_out() {
	for _b in 0 1; do
		_p="$T_DIR/out/build-$_b.zip"
		if [ -L "$_p" ] || { [ -e "$_p" ] && [ ! -f "$_p" ]; }; then
			echo "$1: build-$_b.zip is not a regular file"; return 1
		fi
		if [ -e "$_p" ] && [ "$(tt_sha "$_p")" != "$(sha_of $_b)" ]; then
			echo "$1: build-$_b.zip is there and does not verify ($(stat -c %s "$_p") bytes)"; return 1
		fi
		if [ -e "$_p.part" ]; then
			_n=$(stat -c %s "$_p.part")
			if [ "$_n" -gt $SIZE ] ||
				! cmp -s -n "$_n" "$_p.part" "$T_DIR/origin/files/exp/build-$_b.zip"; then
				echo "$1: build-$_b.zip.part ($_n bytes) is not a prefix of the build"; return 1
			fi
		fi
	done
	_extra=$(find "$T_DIR/out" -mindepth 1 -printf '%f\n' | grep -vxE 'build-[01]\.zip(\.part(\.meta)?)?')
	if [ -n "$_extra" ]; then
		echo "$1: left beside PATH: $(echo "$_extra" | tr '\n' ' ')"; return 1
	fi
	return 0
}

# Runs that end before their kill moment do not count: the loop goes on
# until KILLS runs were killed (at most 3 KILLS runs).
start=$(date +%s)
bad=0 midbody=0 done_before_kill=0 k=0 r=0
while [ $k -lt "$KILLS" ] && [ $r -lt $((3 * KILLS)) ]; do
	if tt_over_budget "$start" $BUDGET_S; then
		t_fail "install: $KILLS kills within ${BUDGET_S}s" "only $k done (seed $TT_SEED)"
		break
	fi
	b=$((r % 2))
	out="$T_DIR/out/build-$b.zip"
	# A build already in place is removed, so every run has bytes to move.
	[ -f "$out" ] && rm -f "$out" "$out.part"
	# The moment is uniform over what this run has to do: start-up (DNS,
	# HEAD, re-hashing a part) and the bytes still missing, plus a quarter.
	have=$(stat -c %s "$out.part" 2>/dev/null || echo 0)
	tt_rand $((200 + (SIZE - have) * 1250 / PACE))
	at=$TT_R
	"$A" --config "$T_DIR/agent.yaml" install --progress none --url "$(url_of $b)" --out "$out" \
		> /dev/null 2> "$T_DIR/run-$r.stderr" &
	agent=$!
	tt_sleep_ms "$at"
	if kill -0 "$agent" 2>/dev/null; then
		tt_kill9 "$agent"
		k=$((k + 1))
		part=$(stat -c %s "$out.part" 2>/dev/null || echo 0)
		[ "$part" -gt 0 ] && [ "$part" -lt $SIZE ] && midbody=$((midbody + 1))
	else
		wait "$agent"
		rc=$?
		done_before_kill=$((done_before_kill + 1))
		if [ $rc -ne 0 ]; then
			t_fail "install run $r: a run that was not killed exits 0" \
				"exit $rc (seed $TT_SEED): $(tail -n 2 "$T_DIR/run-$r.stderr")"
			bad=$((bad + 1))
		fi
	fi
	tt_sanitizer_clean "install run $r" "$T_DIR/run-$r.stderr" || bad=$((bad + 1))
	why=$(check_out "run $r, kill moment ${at} ms (build-$b)")
	if [ -n "$why" ]; then
		t_fail "install: PATH absent or verified after every kill" "$why (seed $TT_SEED)"
		bad=$((bad + 1))
		break
	fi
	r=$((r + 1))
done
echo "# $r runs: $k killed ($midbody mid-body), $done_before_kill finished before their kill, $(($(date +%s) - start)) s"
if [ $bad -eq 0 ] && [ $k -eq "$KILLS" ]; then
	t_ok "install: $KILLS kills, PATH absent or verified after each, parts are prefixes"
elif [ $bad -eq 0 ]; then
	t_fail "install: $KILLS kills" "only $k of $r runs were still going at their moment (seed $TT_SEED)"
fi
# Uniform kill moments over a window a little longer than a transfer: most
# land in the body. Fewer than 1 in 10 means the torture missed its target.
if [ "$midbody" -ge $((KILLS / 10)) ]; then
	t_ok "install: kills landed mid-body ($midbody of $k)"
else
	t_fail "install: kills landed mid-body" "only $midbody of $k (seed $TT_SEED)"
fi

for b in 0 1; do
	out="$T_DIR/out/build-$b.zip"
	"$A" --config "$T_DIR/agent.yaml" install --progress none --url "$(url_of $b)" --out "$out" \
		> /dev/null 2> "$T_DIR/final-$b.stderr"
	t_eq "install: final run of build-$b exits 0" "$?" 0
	t_eq "install: final build-$b verifies" "$(tt_sha "$out")" "$(sha_of $b)"
	t_eq "install: no part or meta file left for build-$b" "$(ls "$out.part" "$out.part.meta" 2>/dev/null)" ""
	tt_sanitizer_clean "install final $b" "$T_DIR/final-$b.stderr"
done
t_done
