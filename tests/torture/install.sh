#!/bin/bash
# Torture: 50 SIGKILLs at random moments of hydra-agent install, through a
# district hydra-mirror (peer mode, paced by max_egress_bytes_per_s) in front
# of an origin hydra-mirror. After every kill PATH is absent or the verified
# build (a regular file whose sha256 matches), PATH.part is a prefix of the
# build, and nothing but PATH.part.meta is left beside them; the runs after
# a kill resume. Two builds alternate and the peer holds only one, so fills
# are killed too. A final run of each build completes and verifies, and
# clears what a kill inside the meta file's atomic write leaves.
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

midbody=0
torture_prepare() {
	B=$(($1 % 2))
	OUT="$T_DIR/out/build-$B.zip"
	# A build already in place is removed, so every run has bytes to move.
	[ -f "$OUT" ] && rm -f "$OUT" "$OUT.part"
	# The moment is uniform over what this run has to do: start-up (DNS,
	# HEAD, re-hashing a part) and the bytes still missing, plus a quarter.
	_have=$(stat -c %s "$OUT.part" 2>/dev/null || echo 0)
	tt_rand $((200 + (SIZE - _have) * 1250 / PACE))
	TT_AT=$TT_R
	TT_WHAT="build-$B"
}
torture_run() {
	exec "$A" --config "$T_DIR/agent.yaml" install --progress none --url "$(url_of $B)" --out "$OUT" > /dev/null
}
torture_killed() {
	_part=$(stat -c %s "$OUT.part" 2>/dev/null || echo 0)
	if [ "$_part" -gt 0 ] && [ "$_part" -lt $SIZE ]; then midbody=$((midbody + 1)); fi
}
torture_check() { check_out "$1"; }
tt_kill_runs install "$KILLS" $BUDGET_S "PATH absent or verified after each, parts are prefixes"
# Uniform kill moments over a window a little longer than a transfer: most
# land in the body. Fewer than 1 in 10 means the torture missed its target.
if [ "$midbody" -ge $((KILLS / 10)) ]; then
	t_ok "install: kills landed mid-body ($midbody of $TT_KILLS)"
else
	t_fail "install: kills landed mid-body" "only $midbody of $TT_KILLS (seed $TT_SEED)"
fi

# What a SIGKILL inside the part meta's atomic write (hc_atomic_write: temp
# beside it, then rename) leaves; a completed install is to clear it.
echo "partial meta" > "$T_DIR/out/build-0.zip.part.meta.tmp.T0rtur"
for b in 0 1; do
	out="$T_DIR/out/build-$b.zip"
	"$A" --config "$T_DIR/agent.yaml" install --progress none --url "$(url_of $b)" --out "$out" \
		> /dev/null 2> "$T_DIR/final-$b.stderr"
	t_eq "install: final run of build-$b exits 0" "$?" 0
	t_eq "install: final build-$b verifies" "$(tt_sha "$out")" "$(sha_of $b)"
	t_eq "install: no part or meta file left for build-$b" "$(ls "$out.part" "$out.part.meta" 2>/dev/null)" ""
	tt_sanitizer_clean "install final $b" "$T_DIR/final-$b.stderr"
done
t_eq "install: nothing left beside PATH after the final runs" \
	"$(find "$T_DIR/out" -mindepth 1 -printf '%f\n' | grep -vxE 'build-[01]\.zip')" ""
t_done
