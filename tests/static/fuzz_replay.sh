#!/bin/bash
# Replays every fuzz target's seed corpus (fuzz/corpus/NAME) with gcc, so
# make check runs the inputs libFuzzer found worth keeping without clang:
# each fuzz/NAME.c is linked with fuzz/lib/*.c (replay.c as main) and the
# module libraries of BUILD (ASan + UBSan with SANITIZE=1). One ok line per
# target; a target without a corpus or a dictionary is a failure.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
OUT="$BUILD/fuzz-replay"
CC=${CC:-cc}
LIBS="agent mirrorfetch discovery mirror cluster common"

for m in $LIBS; do
	if [ ! -f "$BUILD/lib/lib$m.a" ]; then
		echo "skip - fuzz replay: $BUILD/lib/lib$m.a not built (make all tests first)"
		exit 0
	fi
done
# The libraries the Makefile links every program with.
PKGS=$(sed -n 's/^PKGS *= *//p' Makefile)
PKG_CFLAGS=$(pkg-config --cflags $PKGS)
PKG_LIBS=$(pkg-config --libs $PKGS)
SAN=""
[ "${SANITIZE:-}" = 1 ] && SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
CFLAGS="-std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -O1 $SAN -I. $PKG_CFLAGS"
ARCHIVES=""
for m in $LIBS; do ARCHIVES="$ARCHIVES $BUILD/lib/lib$m.a"; done

mkdir -p "$OUT/tmp"
# Scratch folders of the targets (fz_scratch) stay inside the build folder.
TMPDIR=$(cd "$OUT/tmp" && pwd)
export TMPDIR
targets=0 bad=0
# shellcheck disable=SC2086
if ! $CC $CFLAGS -o "$OUT/lib.o" -r fuzz/lib/*.c 2> "$OUT/lib.err"; then
	echo "not ok - fuzz replay: fuzz/lib does not build"
	sed 's/^/    /' "$OUT/lib.err" | head -20
	exit 1
fi
for src in fuzz/*.c; do
	name=$(basename "$src" .c)
	targets=$((targets + 1))
	if [ ! -d "fuzz/corpus/$name" ] || [ -z "$(ls -A "fuzz/corpus/$name")" ]; then
		echo "not ok - fuzz replay $name: no seed corpus in fuzz/corpus/$name"
		bad=$((bad + 1))
		continue
	fi
	if [ ! -f "fuzz/$name.dict" ]; then
		echo "not ok - fuzz replay $name: no dictionary fuzz/$name.dict"
		bad=$((bad + 1))
		continue
	fi
	# shellcheck disable=SC2086
	if ! $CC $CFLAGS -o "$OUT/$name" "$src" "$OUT/lib.o" $ARCHIVES $PKG_LIBS -lpthread \
		2> "$OUT/$name.err"; then
		echo "not ok - fuzz replay $name: does not build"
		sed 's/^/    /' "$OUT/$name.err" | head -20
		bad=$((bad + 1))
		continue
	fi
	if "$OUT/$name" "fuzz/corpus/$name" > "$OUT/$name.log" 2>&1; then
		echo "ok - fuzz replay $name: $(tail -1 "$OUT/$name.log")"
	else
		echo "not ok - fuzz replay $name: a seed input fails, see $OUT/$name.log"
		grep -E 'property|ERROR|runtime error|SUMMARY' "$OUT/$name.log" | head -5 | sed 's/^/    /'
		bad=$((bad + 1))
	fi
done
# A replay that found no target would pass whatever the tree holds.
if [ "$targets" -lt 1 ]; then
	echo "not ok - fuzz replay: no target in fuzz/"
	exit 1
fi
[ "$bad" -eq 0 ]
