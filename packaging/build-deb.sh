#!/bin/sh
# make deb: builds the Debian binary packages of the working tree in a copy
# (a temporary folder), so debhelper's scratch files never land in the tree
# nor in $BUILD, where the Makefile reads every *.d it finds.
# The version comes from git describe: a tag vX.Y.Z gives X.Y.Z (plus
# +N.gHASH past it); without a tag, HC_VERSION+gitN.gHASH. Packages end up
# in $BUILD/deb/, and the file names are printed last.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/${BUILD:-build}/deb"
work=""
trap 'rm -rf "$work"' EXIT

version_of_tree() {
	desc=$(git -C "$root" describe --tags --match 'v[0-9]*' --long 2>/dev/null || true)
	if [ -n "$desc" ]; then
		# v1.2.3-4-gabcdef0 -> 1.2.3+4.gabcdef0, or 1.2.3 exactly on the tag
		echo "$desc" | sed -E -e 's/^v//' -e 's/-0-g[0-9a-f]+$//' -e 's/-([0-9]+)-(g[0-9a-f]+)$/+\1.\2/'
		return
	fi
	base=$(sed -n 's/^#define HC_VERSION "\(.*\)"$/\1/p' "$root/common/hc.h")
	count=$(git -C "$root" rev-list --count HEAD)
	hash=$(git -C "$root" rev-parse --short HEAD)
	echo "${base:-0.0.0}+git$count.g$hash"
}

for tool in dpkg-buildpackage dh; do
	command -v "$tool" >/dev/null 2>&1 || {
		echo "deb: $tool is missing (apt-get install dpkg-dev debhelper)" >&2
		exit 69
	}
done

version=$(version_of_tree)
rm -rf "$out"
mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/hydra-deb.XXXXXX")
src="$work/hydra-agent-$version"
mkdir "$src"
# Tracked and new (not ignored) files, as they are in the working tree.
git -C "$root" ls-files -z --cached --others --exclude-standard |
	tar -C "$root" -cf - --null -T - --no-recursion --ignore-failed-read |
	tar -xf - -C "$src"
rm -rf "$src/build" "$src/build-asan"

date=$(git -C "$root" log -1 --format=%aD)
cat > "$src/debian/changelog" <<CHANGELOG
hydra-agent ($version) unstable; urgency=medium

  * Built from $(git -C "$root" rev-parse HEAD).

 -- hydra-agent maintainers <maintainers@users.noreply.b-seed-6c96a550.example>  $date
CHANGELOG

echo "deb: building hydra-agent $version"
(cd "$src" && dpkg-buildpackage -b -us -uc --no-sign -j2) > "$out/build.log" 2>&1 || {
	echo "deb: dpkg-buildpackage failed, see $out/build.log" >&2
	tail -n 20 "$out/build.log" >&2
	exit 1
}
mv "$work"/*.deb "$work"/*.buildinfo "$work"/*.changes "$out"/
ls "$out"/*.deb
