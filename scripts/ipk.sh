#!/usr/bin/env bash
# Builds OpenWrt packages (.ipk, for opkg; .apk, for OpenWrt 25's apk)
# without an SDK: natmap for each arch below, static and stripped, and
# luci-app-natmap (Architecture: all) when luci-app-natmap/ exists.
#
#   scripts/ipk.sh [-f ipk|apk|all] [-o DIR] [ARCH...]
#                  (default: ipk, into dist/, every arch)
#
# The layout is OpenWrt's scripts/ipkg-build's: a gzip'd tar (not ar) of
# ./debian-binary, ./data.tar.gz and ./control.tar.gz in that order, GNU
# format, numeric root:root ownership, entries sorted by name, every mtime
# SOURCE_DATE_EPOCH (default: the last commit's time), gzip without name or
# time; Installed-Size is the size of the uncompressed data tar. The same
# sources give the same bytes.
#
# The .apk (apk-tools v3, unsigned) holds the same files and scripts, put
# together as OpenWrt 25's include/package-pack.mk does for `apk mkpkg`:
# post-install, post-upgrade and pre-deinstall wrap default_postinst /
# default_prerm and the package's own scripts, postrm is post-deinstall,
# and lib/apk/packages/NAME.{list,conffiles,conffiles_static} are added to
# the files. cmd/mkapk writes it (no apk-tools needed). Its version is the
# ipk's in apk's grammar: +gitN.HASH becomes _gitN~HASH, and .dirty is left
# out (apk has no place for it; APK_VERSION overrides). Named
# NAME_VERSION_ARCH.apk, the LuCI app's arch being noarch.
#
# Metadata, the conffiles and the package scripts come from the feed
# package, openwrt/natmap/Makefile, so both builds install the same thing.
#
# Environment: GO (a Go toolchain), IPK_VERSION (the upstream version;
# default: the VERSION file, else the latest v* tag, else the last commit's
# date and hash), IPK_RELEASE (default: PKG_RELEASE), SOURCE_DATE_EPOCH,
# LUCI_DIR (default: luci-app-natmap), PO2LMO (a po2lmo to compile LuCI
# translations with; default: cmd/po2lmo, built for this machine), MKAPK
# (default: cmd/mkapk, built for this machine), APK_VERSION (the upstream
# part of the apk version), FEED_KEY (a usign secret key: the ipk feed's
# Packages is signed with it; `go run ./cmd/mkfeed keygen` makes one),
# MKFEED (default: cmd/mkfeed, built for this machine), APK_TOOLS_BIN
# (apk-tools v3's apk: it makes the apk repository index), APK_FEED_KEY
# (the apk key the index is signed with; default: FEED_KEY's twin from
# `mkfeed keygen`, FEED_KEY less .sec plus .apk.sec, when it exists).
#
# With ipk, the output directory is also an opkg feed: Packages,
# Packages.gz and, with FEED_KEY, Packages.sig. With apk and
# APK_TOOLS_BIN, an apk repository: packages.adb (`apk mkndx`), signed
# with APK_FEED_KEY, which apk checks against /etc/apk/keys/. A key
# without APK_TOOLS_BIN is an error: no release goes out unsigned.
set -euo pipefail
umask 022
export LC_ALL=C TZ=UTC

# OpenWrt arch, GOARCH, extra Go environment.
ARCHES=(
	"x86_64 amd64"
	"aarch64_generic arm64"
	"arm_cortex-a7_neon-vfpv4 arm GOARM=7"
	"mipsel_24kc mipsle GOMIPS=softfloat"
	"mips_24kc mips GOMIPS=softfloat"
)

die() {
	echo "ipk.sh: $*" >&2
	exit 1
}

out=
format=ipk
while getopts f:o: opt; do
	case $opt in
	f) format=$OPTARG ;;
	o) out=$OPTARG ;;
	*) die "usage: scripts/ipk.sh [-f ipk|apk|all] [-o DIR] [ARCH...]" ;;
	esac
done
case $format in
ipk | apk | all) ;;
*) die "-f $format: want ipk, apk or all" ;;
esac
want_ipk=
want_apk=
[ "$format" = apk ] || want_ipk=1
[ "$format" = ipk ] || want_apk=1
shift $((OPTIND - 1))
[ -z "$out" ] || out=$(realpath -m -- "$out") # as given, from where we were called
cd "$(dirname "$0")/.."
[ -n "$out" ] || out=$PWD/dist

selected=()
if [ $# -eq 0 ]; then
	selected=("${ARCHES[@]}")
else
	for want in "$@"; do
		found=
		for a in "${ARCHES[@]}"; do
			if [ "${a%% *}" = "$want" ]; then
				selected+=("$a")
				found=1
			fi
		done
		[ -n "$found" ] || die "unknown arch $want (known: $(printf '%s ' "${ARCHES[@]%% *}"))"
	done
fi

tar --sort=name --version >/dev/null 2>&1 || die "GNU tar 1.28 or later is needed (--sort=name)"
GO=${GO:-$(scripts/go.sh)}

# --- metadata from the feed package -------------------------------------

mk=openwrt/natmap/Makefile
[ -f "$mk" ] || die "$mk is missing"

# make_var NAME: the value of NAME:= in the feed Makefile.
make_var() {
	sed -n "s/^[[:space:]]*$1:=[[:space:]]*//p" "$mk" | head -n 1
}

# make_define NAME: the body of "define NAME", with make's $$ undone.
make_define() {
	awk -v name="$1" '
		$0 == "define " name { on = 1; next }
		on && $0 == "endef" { exit }
		on { gsub(/\$\$/, "$"); print }
	' "$mk"
}

license=$(make_var PKG_LICENSE)
license_files=$(make_var PKG_LICENSE_FILES)
maintainer=$(make_var PKG_MAINTAINER)
url=$(make_var URL)
section=$(make_var SECTION)
release=${IPK_RELEASE:-$(make_var PKG_RELEASE)}
# The feed's DEPENDS less build-time conditions ($(GO_ARCH_DEPENDS), @...).
# No libc: the binary is static.
depends=$(make_var DEPENDS | tr ' ' '\n' | sed -n 's/^+//p' | { grep -v '[$@:]' || true; } | paste -sd, - | sed 's/,/, /g')
description=$(make_define Package/natmap/description | sed 's/^[[:space:]]*//')
conffiles=$(make_define Package/natmap/conffiles)
postinst_pkg=$(make_define Package/natmap/postinst)
postrm=$(make_define Package/natmap/postrm)
for v in license maintainer url section release description conffiles postinst_pkg postrm; do
	[ -n "${!v}" ] || die "$mk: no $v"
done

# --- version and time ---------------------------------------------------

in_git=
git rev-parse --git-dir >/dev/null 2>&1 && in_git=1

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	if [ -n "$in_git" ]; then
		SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)
	else
		SOURCE_DATE_EPOCH=$(stat -c %Y go.mod)
	fi
fi
epoch=$SOURCE_DATE_EPOCH
[[ $epoch =~ ^[0-9]+$ ]] || die "SOURCE_DATE_EPOCH=$epoch is not a number"

if [ -n "${IPK_VERSION:-}" ]; then
	upstream=${IPK_VERSION#v}
elif [ -s VERSION ]; then
	upstream=$(head -n 1 VERSION)
	upstream=${upstream#v}
elif [ -n "$in_git" ] && desc=$(git describe --tags --match 'v[0-9]*' --long 2>/dev/null); then
	# v1.2-3-gabcdef: 1.2 on the tag, 1.2+git3.abcdef three commits later.
	hash=${desc##*-g}
	rest=${desc%-g*}
	count=${rest##*-}
	upstream=${rest%-*}
	upstream=${upstream#v}
	[ "$count" = 0 ] || upstream="$upstream+git$count.$hash"
elif [ -n "$in_git" ]; then
	# No release yet: the date (as the C natmap's versions are dates, so
	# this one replaces the stock package) and the commit.
	upstream="$(date -u -d "@$(git log -1 --format=%ct)" +%Y%m%d)~$(git rev-parse --short=7 HEAD)"
else
	die "no version: set IPK_VERSION or write a VERSION file"
fi
clean_upstream=$upstream
if [ -n "$in_git" ] && [ -z "${IPK_VERSION:-}" ] && ! git diff-index --quiet HEAD -- 2>/dev/null; then
	upstream="$upstream.dirty"
fi
[[ $upstream =~ ^[0-9][A-Za-z0-9.+~]*$ ]] || die "version $upstream: want a digit first, then letters, digits, . + ~"
[[ $release =~ ^[0-9]+$ ]] || die "release $release is not a number"
version="$upstream-r$release"

# apk's grammar (apk-tools doc/apk-package.5):
# number{.number}...{letter}{_suffix{number}}...{~hash}{-r#}.
apk_version=
if [ -n "$want_apk" ]; then
	if [ -n "${APK_VERSION:-}" ]; then
		apk_upstream=${APK_VERSION#v}
	elif [[ $clean_upstream =~ ^(.*)\+git([0-9]+)\.([0-9a-f]+)$ ]]; then
		apk_upstream="${BASH_REMATCH[1]}_git${BASH_REMATCH[2]}~${BASH_REMATCH[3]}"
	else
		apk_upstream=$clean_upstream
	fi
	apk_version="$apk_upstream-r$release"
	[[ $apk_version =~ ^[0-9]+(\.[0-9]+)*[a-z]?(_(alpha|beta|pre|rc|cvs|svn|git|hg|p)[0-9]*)*(~[0-9a-f]+)?-r[0-9]+$ ]] ||
		die "version $apk_version is not an apk version (number{.number}...{letter}{_suffix{number}}...{~hash}-rN): set APK_VERSION"
fi

# --- packing --------------------------------------------------------------

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

# The apk writer, built for this machine.
mkapk=
if [ -n "$want_apk" ]; then
	mkapk=${MKAPK:-}
	if [ -z "$mkapk" ]; then
		mkapk=$work/mkapk
		env -u GOOS -u GOARCH -u GOARM -u GOMIPS CGO_ENABLED=0 "$GO" build -trimpath -o "$mkapk" ./cmd/mkapk
	fi
fi

# targz DIR OUT [MEMBER...]: DIR's tree (or the members) as ipkg-build packs it.
targz() {
	local dir=$1 dest=$2
	shift 2
	[ $# -gt 0 ] || set -- .
	tar --format=gnu --numeric-owner --owner=0 --group=0 --sort=name \
		--mtime="@$epoch" -C "$dir" -cf - "$@" | gzip -9 -n >"$dest"
}

# wrapper_scripts CONTROLDIR: postinst and prerm as OpenWrt's build writes
# them. lib/functions.sh's default_postinst runs the package's uci-defaults,
# enables the init script and starts it on a live system (under
# $IPKG_INSTROOT it only enables it), then sources postinst-pkg;
# default_prerm stops the init script (and disables it, unless upgrading).
wrapper_scripts() {
	cat >"$1/postinst" <<'EOF'
#!/bin/sh
[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s "${IPKG_INSTROOT}/lib/functions.sh" ] || exit 0
. "${IPKG_INSTROOT}/lib/functions.sh"
default_postinst "$0" "$@"
EOF
	cat >"$1/prerm" <<'EOF'
#!/bin/sh
[ -s "${IPKG_INSTROOT}/lib/functions.sh" ] || exit 0
. "${IPKG_INSTROOT}/lib/functions.sh"
default_prerm "$0" "$@"
EOF
	chmod 0755 "$1/postinst" "$1/prerm"
}

# field NAME VALUE: a control line, left out when VALUE is empty.
field() {
	[ -z "$2" ] || printf '%s: %s\n' "$1" "$2"
}

# pack NAME ARCH STAGE: STAGE/data and STAGE/control (less the control
# file) into $out/NAME_VERSION_ARCH.ipk and/or (pack_apk) .apk. Control
# fields come from the variables pkg_*.
pack() {
	local name=$1 arch=$2 stage=$3
	find "$stage/data" -type d -exec chmod 0755 {} +
	[ -z "$want_ipk" ] || pack_ipk "$@"
	[ -z "$want_apk" ] || pack_apk "$@"
}

pack_ipk() {
	local name=$1 arch=$2 stage=$3 size ipk
	targz "$stage/data" "$stage/data.tar.gz"
	size=$(gzip -dc "$stage/data.tar.gz" | wc -c)
	{
		field Package "$name"
		field Version "$version"
		field Depends "$pkg_depends"
		field Source "$pkg_source"
		field SourceName "$name"
		field License "$license"
		field LicenseFiles "$license_files"
		field Section "$pkg_section"
		field SourceDateEpoch "$epoch"
		field URL "$url"
		field Maintainer "$maintainer"
		field Architecture "$arch"
		field Installed-Size "$size"
		printf 'Description: %s\n' "$(printf '%s\n' "$pkg_description" | sed '1!s/^/ /')"
	} >"$stage/control/control"
	chmod 0644 "$stage/control/control"
	chmod 0755 "$stage/control"
	targz "$stage/control" "$stage/control.tar.gz"
	echo "2.0" >"$stage/debian-binary"
	ipk="$out/${name}_${version}_${arch}.ipk"
	rm -f "$out/${name}"_*_"${arch}.ipk"
	targz "$stage" "$ipk" ./debian-binary ./data.tar.gz ./control.tar.gz
	printf '%-52s %9d bytes (installed %d)\n' "$ipk" "$(stat -c %s "$ipk")" "$size"
}

# apk_script FILE: FILE's lines less #! lines, as package-pack.mk's
# sed '/^\s*#!/d' inlines a package script into a generated one.
apk_script() {
	[ ! -f "$1" ] || sed '/^[[:space:]]*#!/d' "$1"
}

# pack_apk NAME ARCH STAGE: the same files and scripts as an apk v3
# package, $out/NAME_APKVERSION_APKARCH.apk, put together as OpenWrt 25's
# include/package-pack.mk does before it calls `apk mkpkg`.
pack_apk() {
	local name=$1 arch=$2 stage=$3 apkarch=$2 root=$3/apk-root scripts=$3/apk-scripts info apk f
	[ "$arch" != all ] || apkarch=noarch
	rm -rf "$root" "$scripts"
	cp -a "$stage/data" "$root"
	mkdir -p "$scripts"
	info=$root/lib/apk/packages
	mkdir -p "$info"
	# The files and symlinks, which default_postinst (lib/functions.sh)
	# reads for the uci-defaults to run and the init scripts to enable.
	(cd "$root" && find . \( -type f -o -type l \) -printf '/%P\n' | sort) >"$scripts/list"
	mv "$scripts/list" "$info/$name.list"
	# The conffiles, and their checksums as built (sysupgrade and apk keep
	# changed ones).
	if [ -f "$stage/control/conffiles" ]; then
		cp "$stage/control/conffiles" "$info/$name.conffiles"
		while read -r f; do
			[ -f "$root/$f" ] || continue
			printf '%s %s\n' "$f" "$(sha256sum <"$root/$f" | cut -d' ' -f1)"
		done <"$stage/control/conffiles" >"$info/$name.conffiles_static"
		[ -s "$info/$name.conffiles_static" ] || rm -f "$info/$name.conffiles_static"
	fi
	find "$root" -type d -exec chmod 0755 {} +
	find "$info" -type f -exec chmod 0644 {} +

	# The scripts: apk runs them with no arguments OpenWrt's functions use;
	# root and pkgname tell default_postinst/default_prerm the package.
	# shellcheck disable=SC2016 # ${IPKG_INSTROOT}: for the router's shell
	{
		echo '#!/bin/sh'
		echo '[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0'
		echo '[ -s "${IPKG_INSTROOT}/lib/functions.sh" ] || exit 0'
		echo '. "${IPKG_INSTROOT}/lib/functions.sh"'
		echo 'export root="${IPKG_INSTROOT}"'
		echo "export pkgname=\"$name\""
		echo 'add_group_and_user'
		echo 'default_postinst'
		apk_script "$stage/control/postinst-pkg"
	} >"$scripts/post-install"
	{
		echo '#!/bin/sh'
		echo 'export PKG_UPGRADE=1'
		apk_script "$scripts/post-install"
	} >"$scripts/post-upgrade"
	# shellcheck disable=SC2016
	{
		echo '#!/bin/sh'
		echo '[ -s "${IPKG_INSTROOT}/lib/functions.sh" ] || exit 0'
		echo '. "${IPKG_INSTROOT}/lib/functions.sh"'
		echo 'export root="${IPKG_INSTROOT}"'
		echo "export pkgname=\"$name\""
		echo 'default_prerm'
		apk_script "$stage/control/prerm-pkg"
	} >"$scripts/pre-deinstall"
	local args=(--script "post-install:$scripts/post-install" --script "post-upgrade:$scripts/post-upgrade"
		--script "pre-deinstall:$scripts/pre-deinstall")
	if [ -f "$stage/control/postrm" ]; then
		sed '1s/^[[:space:]]*#!/#!/' "$stage/control/postrm" >"$scripts/post-deinstall"
		args+=(--script "post-deinstall:$scripts/post-deinstall")
	fi

	apk="$out/${name}_${apk_version}_${apkarch}.apk"
	rm -f "$out/${name}"_*_"${apkarch}.apk"
	SOURCE_DATE_EPOCH=$epoch "$mkapk" \
		--info "name:$name" \
		--info "version:$apk_version" \
		--info "description:$(printf '%s\n' "$pkg_description" | tr -s '[:space:]' ' ' | sed 's/^ //; s/ $//')" \
		--info "arch:$apkarch" \
		--info "license:$license" \
		--info "origin:$pkg_source" \
		--info "url:$url" \
		--info "maintainer:$maintainer" \
		--info "provides:$name-any" \
		"${args[@]}" \
		--info "depends:${pkg_depends//,/}" \
		--files "$root" \
		--output "$apk"
	printf '%-52s %9d bytes\n' "$apk" "$(stat -c %s "$apk")"
}

# --- natmap ---------------------------------------------------------------

files=openwrt/natmap/files
common=$work/natmap-common
install -d "$common/usr/bin" "$common/etc/config" "$common/etc/init.d" "$common/etc/uci-defaults" \
	"$common/usr/libexec/rpcd" "$common/usr/share/natmap" "$common/usr/lib/lua/prometheus-collectors"
install -m 0600 "$files/natmap.config" "$common/etc/config/natmap"
install -m 0755 "$files/natmap.init" "$common/etc/init.d/natmap"
install -m 0644 "$files/natmap.uci-defaults" "$common/etc/uci-defaults/99-natmap"
install -m 0755 "$files/natmap.rpcd" "$common/usr/libexec/rpcd/natmap"
install -m 0644 "$files/firewall.include" "$common/usr/share/natmap/firewall.include"
install -m 0644 "$files/natmap.prometheus.lua" "$common/usr/lib/lua/prometheus-collectors/natmap.lua"

pkg_depends=$depends
pkg_source=openwrt/natmap
pkg_section=$section
pkg_description=$description

echo "natmap $version${apk_version:+ (apk: $apk_version)} (SOURCE_DATE_EPOCH=$epoch)"
for a in "${selected[@]}"; do
	read -r arch goarch extra <<<"$a"
	stage=$work/natmap-$arch
	mkdir -p "$stage/control"
	cp -a "$common" "$stage/data"
	# The caller's GOAMD64, GOARM... must not leak into another arch's build.
	# MIPS routers have the least flash: no inlining there (about 14%
	# smaller), as the feed Makefile's GO_PKG_GCFLAGS.
	gcflags=
	case $goarch in mips | mipsle) gcflags=all=-l ;; esac
	# shellcheck disable=SC2086 # $extra: zero or one VAR=value
	env -u GOAMD64 -u GOARM -u GOARM64 -u GOMIPS CGO_ENABLED=0 GOOS=linux GOARCH="$goarch" $extra \
		"$GO" build -trimpath -buildvcs=false ${gcflags:+-gcflags="$gcflags"} \
		-ldflags "-s -w -X main.version=$version" -o "$stage/data/usr/bin/natmap" ./cmd/natmap
	chmod 0755 "$stage/data/usr/bin/natmap"

	printf '%s\n' "$conffiles" >"$stage/control/conffiles"
	printf '%s\n' "$postinst_pkg" >"$stage/control/postinst-pkg"
	printf '%s\n' "$postrm" >"$stage/control/postrm"
	chmod 0644 "$stage/control/conffiles"
	chmod 0755 "$stage/control/postinst-pkg" "$stage/control/postrm"
	wrapper_scripts "$stage/control"
	pack natmap "$arch" "$stage"
done

# --- luci-app-natmap ------------------------------------------------------

luci=${LUCI_DIR:-luci-app-natmap}
if [ -d "$luci" ]; then
	stage=$work/luci
	mkdir -p "$stage/data" "$stage/control"
	if [ -d "$luci/htdocs" ]; then
		mkdir -p "$stage/data/www"
		cp -R "$luci/htdocs/." "$stage/data/www/"
	fi
	if [ -d "$luci/root" ]; then
		cp -R "$luci/root/." "$stage/data/"
	fi
	# Translations, as luci.mk compiles them: po/LANG/NAME.po into
	# NAME.CODE.lmo, CODE being LuCI's code for the language (zh_Hans:
	# zh-cn). Bundled here rather than in luci-i18n-* packages.
	pos=$( (find "$luci/po" -mindepth 2 -maxdepth 2 -name '*.po' ! -path '*/templates/*' 2>/dev/null || true) | sort)
	po2lmo=${PO2LMO:-}
	if [ -z "$po2lmo" ] && [ -n "$pos" ] && [ -f cmd/po2lmo/main.go ]; then
		po2lmo=$work/po2lmo
		env -u GOOS -u GOARCH -u GOARM -u GOMIPS CGO_ENABLED=0 "$GO" build -trimpath -o "$po2lmo" ./cmd/po2lmo
	fi
	if [ -n "$pos" ] && [ -n "$po2lmo" ]; then
		mkdir -p "$stage/data/usr/lib/lua/luci/i18n"
		for po in $pos; do
			lang=$(basename "$(dirname "$po")")
			case $lang in
			bn_BD) lang=bn ;;
			nb_NO) lang=no ;;
			pt_BR) lang=pt-br ;;
			zh_Hans) lang=zh-cn ;;
			zh_Hant) lang=zh-tw ;;
			esac
			"$po2lmo" "$po" "$stage/data/usr/lib/lua/luci/i18n/$(basename "$po" .po).$lang.lmo"
		done
	elif [ -n "$pos" ]; then
		echo "ipk.sh: no po2lmo (set PO2LMO): luci-app-natmap is built without its translations" >&2
	fi
	# Modes as in git: executables 0755, the rest 0644.
	find "$stage/data" -type f -perm /111 -exec chmod 0755 {} +
	find "$stage/data" -type f ! -perm /111 -exec chmod 0644 {} +
	find "$stage/data" -path '*/etc/config/*' -type f -exec chmod 0600 {} +
	if [ -d "$stage/data/etc/config" ]; then
		(cd "$stage/data" && find ./etc/config -type f | sed 's/^\.//' | sort) >"$stage/control/conffiles"
		chmod 0644 "$stage/control/conffiles"
		[ -s "$stage/control/conffiles" ] || rm -f "$stage/control/conffiles"
	fi
	# On a live system, as LuCI's own packages do: drop LuCI's caches, and
	# have rpcd (SIGHUP: it re-executes itself) read the new ACL.
	cat >"$stage/control/postinst-pkg" <<'EOF'
#!/bin/sh
[ -n "${IPKG_INSTROOT}" ] || {
	rm -f /tmp/luci-indexcache /tmp/luci-indexcache.*
	rm -rf /tmp/luci-modulecache/
	killall -HUP rpcd 2>/dev/null
	true
}
EOF
	cp "$stage/control/postinst-pkg" "$stage/control/postrm"
	echo "exit 0" >>"$stage/control/postrm"
	chmod 0755 "$stage/control/postinst-pkg" "$stage/control/postrm"
	wrapper_scripts "$stage/control"
	# Title, description and dependencies from its luci.mk Makefile.
	luci_var() {
		[ -f "$luci/Makefile" ] || return 0
		sed -n "s/^$1:=[[:space:]]*//p" "$luci/Makefile" | head -n 1
	}
	# shellcheck disable=SC2046 # LUCI_DEPENDS: words
	pkg_depends=$(printf '%s\n' luci-base natmap $(luci_var LUCI_DEPENDS) | sed -n 's/^+//; /^[a-z0-9][a-z0-9._+-]*$/p' |
		awk '!seen[$0]++' | paste -sd, - | sed 's/,/, /g')
	pkg_source=$(basename "$luci")
	pkg_section=luci
	pkg_description="$(luci_var LUCI_TITLE)"
	pkg_description="${pkg_description:-LuCI support for natmap}"
	if [ -n "$(luci_var LUCI_DESCRIPTION)" ]; then
		pkg_description="$pkg_description
$(luci_var LUCI_DESCRIPTION)"
	fi
	pack luci-app-natmap all "$stage"
fi

# --- the opkg feed -----------------------------------------------------------

# Packages, Packages.gz and, signed with the usign secret key FEED_KEY names,
# Packages.sig (cmd/mkfeed; without FEED_KEY the feed is unsigned).
if [ -n "$want_ipk" ]; then
	mkfeed=${MKFEED:-}
	if [ -z "$mkfeed" ]; then
		mkfeed=$work/mkfeed
		env -u GOOS -u GOARCH -u GOARM -u GOMIPS CGO_ENABLED=0 "$GO" build -trimpath -o "$mkfeed" ./cmd/mkfeed
	fi
	"$mkfeed" index ${FEED_KEY:+-s "$FEED_KEY"} "$out"
fi

# --- the apk repository index --------------------------------------------

# packages.adb, made by apk-tools v3 (its ADB index and signature), signed
# with APK_FEED_KEY. The packages themselves stay unsigned: apk trusts a
# package whose hash the signed index holds.
if [ -n "$want_apk" ]; then
	apk_key=${APK_FEED_KEY:-}
	if [ -z "$apk_key" ] && [ -n "${FEED_KEY:-}" ] && [ -f "${FEED_KEY%.sec}.apk.sec" ]; then
		apk_key=${FEED_KEY%.sec}.apk.sec
	fi
	[ -z "$apk_key" ] || [ -f "$apk_key" ] || die "APK_FEED_KEY=$apk_key: no such file"
	[ -z "$apk_key" ] || apk_key=$(realpath -- "$apk_key")
	if [ -n "${APK_TOOLS_BIN:-}" ]; then
		rm -f "$out/packages.adb"
		# Unsigned packages are read with --allow-untrusted; the index
		# written is signed all the same. No index key: an unsigned index.
		(
			cd "$out"
			shopt -s nullglob
			pkgs=(*.apk)
			# shellcheck disable=SC2016 # apk expands ${name}...
			"$APK_TOOLS_BIN" mkndx --allow-untrusted ${apk_key:+--sign-key "$apk_key"} \
				--pkgname-spec '${name}_${version}_${arch}.apk' -o packages.adb "${pkgs[@]}"
		) || die "apk mkndx failed"
		if [ -n "$apk_key" ]; then
			echo "$out/packages.adb: signed with $apk_key"
		else
			echo "$out/packages.adb: unsigned"
		fi
	elif [ -n "$apk_key" ]; then
		die "an apk key ($apk_key) but no APK_TOOLS_BIN: the signed index packages.adb needs apk-tools v3's apk"
	fi
fi

(
	cd "$out"
	shopt -s nullglob
	sha256sum -- *.ipk *.apk >sha256sums
)
