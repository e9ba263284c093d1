#!/usr/bin/env bash
# Makes a release, as an OpenWrt packages feed takes one (`make release
# VERSION=...`):
#
#   1. sets PKG_VERSION (PKG_RELEASE 1) in openwrt/natmap/Makefile, adds a
#      CHANGELOG.md entry (the commit subjects since the last tag), commits
#      "Release VERSION" and tags it vVERSION;
#   2. writes dist/release/natmap-VERSION.tar.gz as the feed Makefile
#      downloads it: the forge's archive of the tag, top directory
#      natmap-VERSION/ (git archive, so the same commit gives the same
#      bytes), and commits its sha256 as PKG_HASH. The tagged commit itself
#      cannot hold the hash of an archive of itself: the feed's copy of the
#      Makefile is the one that carries it, as in OpenWrt's packages feed;
#   3. builds the ipk and apk packages and feeds of that version into
#      dist/release (scripts/ipk.sh; RELEASE_ARCHES limits the arches).
#
#   scripts/release.sh VERSION
#   scripts/release.sh tarball VERSION [REF [OUT]]   step 2's archive only
#
# VERSION is numbers and dots (20261205, 20261205.1), as the C natmap's.
set -euo pipefail
export LC_ALL=C TZ=UTC
cd "$(dirname "$0")/.."

die() {
	echo "release.sh: $*" >&2
	exit 1
}
mk=openwrt/natmap/Makefile

check_version() {
	[[ $1 =~ ^[0-9]+(\.[0-9]+)*$ ]] || die "version '$1': want numbers and dots, as 20261205 or 20261205.1"
}

# tarball VERSION REF OUT: the archive the feed Makefile downloads.
# git's own gzip (no name, the commit's time) makes it reproducible.
tarball() {
	git -c core.autocrlf=false archive --format=tar.gz --prefix="natmap-$1/" -o "$3" "$2"
}

if [ "${1:-}" = tarball ]; then
	[ $# -ge 2 ] || die "usage: scripts/release.sh tarball VERSION [REF [OUT]]"
	check_version "$2"
	out=${4:-dist/release/natmap-$2.tar.gz}
	mkdir -p "$(dirname "$out")"
	tarball "$2" "${3:-v$2}" "$out"
	sha256sum "$out"
	exit 0
fi

[ $# -eq 1 ] || die "usage: scripts/release.sh VERSION (or: make release VERSION=...)"
version=$1
check_version "$version"
git rev-parse -q --verify "refs/tags/v$version" >/dev/null && die "tag v$version exists"
git diff-index --quiet HEAD -- || die "the work tree has changes: commit them first"
[ -z "$(git ls-files --others --exclude-standard)" ] || die "the work tree has untracked files"

# 1. version, changelog, commit, tag
last=$(git describe --tags --abbrev=0 --match 'v[0-9]*' 2>/dev/null || true)
sed -i -e "s/^PKG_VERSION:=.*/PKG_VERSION:=$version/" -e "s/^PKG_RELEASE:=.*/PKG_RELEASE:=1/" \
	-e "s/^PKG_HASH:=.*/PKG_HASH:=skip/" "$mk"
{
	echo "# Changelog"
	echo
	echo "## $version ($(date -u +%F))"
	echo
	git log --no-merges --format='- %s' ${last:+"$last"..}HEAD
	if [ -f CHANGELOG.md ]; then
		echo
		sed '1{/^# Changelog$/d}' CHANGELOG.md | sed '1{/^$/d}'
	fi
} >CHANGELOG.md.new
mv CHANGELOG.md.new CHANGELOG.md
git add "$mk" CHANGELOG.md
git commit -q -m "Release $version"
git tag -a "v$version" -m "natmap $version"

# 2. the tarball and its hash
out=dist/release
mkdir -p "$out"
tar=$out/natmap-$version.tar.gz
tarball "$version" "v$version" "$tar"
hash=$(sha256sum "$tar" | cut -d' ' -f1)
sed -i "s/^PKG_HASH:=.*/PKG_HASH:=$hash/" "$mk"
git commit -q -m "openwrt: PKG_HASH of natmap $version" "$mk"

# 3. the packages and feeds, of the tagged version
# shellcheck disable=SC2086 # RELEASE_ARCHES: words
IPK_VERSION=$version scripts/ipk.sh -f all -o "$out" ${RELEASE_ARCHES:-}
echo "released natmap $version: tag v$version, $tar (sha256 $hash), packages in $out"
echo "push with: git push origin main v$version"
