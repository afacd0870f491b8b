#!/bin/bash
# The module graph, checked: a module includes only its own header and the
# headers of the modules it may use, so the layout in docs/HACKING.md stays
# true. agent may use mirrorfetch, discovery and common; every module may
# use common; nothing else crosses. Programs' main.c follow their module.
set -u
cd "$(dirname "$0")/../.."

allowed() {  # allowed MODULE: the modules it may include, besides itself
	case "$1" in
	agent) echo "mirrorfetch discovery common" ;;
	common) echo "" ;;
	*) echo "common" ;;
	esac
}

bad=0 checked=0
for m in agent mirrorfetch discovery mirror cluster common; do
	ok=" $m $(allowed "$m") "
	for f in "$m"/*.c "$m"/*.h; do
		[ -f "$f" ] || continue
		checked=$((checked + 1))
		while IFS=: read -r line inc; do
			target=${inc%%/*}
			case "$ok" in
			*" $target "*) ;;
			*) echo "not ok - $f:$line includes $inc: $m may not use $target"; bad=$((bad + 1)) ;;
			esac
		done < <(grep -n '^#[[:space:]]*include[[:space:]]*"[a-z]*/' "$f" |
		         sed 's/^\([0-9]*\):#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1:\2/')
	done
done
# A check that read nothing would pass whatever the tree holds.
if [ "$checked" -lt 20 ]; then
	echo "not ok - module graph: only $checked files read"
	exit 1
fi
[ "$bad" -eq 0 ] && echo "ok - module graph: $checked files include only what their module may use"

# No circle of includes inside a module: every module's own headers are
# interfaces, so a header including a sibling .c's private header is a loop.
for h in */internal.h; do
	[ -f "$h" ] || continue
	m=${h%%/*}
	if grep -q "#include \"$m/internal.h\"" "$m/$m.h" 2>/dev/null; then
		echo "not ok - $m/$m.h includes $h: the interface depends on the private part"
		bad=$((bad + 1))
	fi
done
[ "$bad" -eq 0 ] && echo "ok - no interface header includes its module's private header"
[ "$bad" -eq 0 ]
