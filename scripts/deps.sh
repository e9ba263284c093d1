#!/usr/bin/env bash
# Installs what testing natmap needs on Debian: the namespace lab's tools
# (iproute2, nftables, conntrack, coturn, iperf3), the updaters' servers
# (bind9, transmission-daemon, qbittorrent-nox), qemu-user to run the
# router arches' binaries, and the packaging and LuCI test tools. Idempotent;
# installs only as root with apt-get, else says what is missing.
set -euo pipefail

need=()
for pair in ip:iproute2 nft:nftables iptables:iptables conntrack:conntrack turnserver:coturn iperf3:iperf3 node:nodejs shellcheck:shellcheck busybox:busybox curl:curl unzip:unzip qemu-mipsel:qemu-user named:bind9 dig:bind9-dnsutils transmission-daemon:transmission-daemon qbittorrent-nox:qbittorrent-nox lua5.1:lua5.1 miniupnpd:miniupnpd-nftables; do
	command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
# The prometheus collector's test decodes JSON in Lua.
command -v lua5.1 >/dev/null 2>&1 && lua5.1 -e 'require "cjson"' 2>/dev/null || need+=(lua-cjson)
if ((${#need[@]})); then
	if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
		echo "deps: missing ${need[*]} (Debian: apt-get install ${need[*]}); the namespace-lab tests will skip" >&2
		[ "${CI:-}" != true ] || exit 1
		exit 0
	fi
	echo "deps: installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# Wait for another apt or dpkg (up to 10 min) rather than fail.
	apt=(apt-get -o DPkg::Lock::Timeout=600)
	# The coturn package would start a system-wide server; the lab runs its
	# own. Start no service while installing (policy-rc.d, honoured by
	# invoke-rc.d and deb-systemd-invoke), unless the machine has its own
	# policy; a server already running is left alone.
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 0755 /usr/sbin/policy-rc.d
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	# miniupnpd: never started by the package (the lab runs its own, in a
	# namespace); its debconf question already defaults to no.
	echo 'miniupnpd miniupnpd/start_daemon boolean false' | debconf-set-selections 2>/dev/null || true
	"${apt[@]}" update -qq
	"${apt[@]}" install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	rm -f /usr/sbin/policy-rc.d
	trap - EXIT
fi

# OpenWrt's userspace for the tests on it (internal/testkit/owlab), from the
# openwrt-lab tool beside the repository, with both LuCI snapshots the LuCI
# app is tested on: built once into the harness's cache (its build.sh
# installs its own Debian build dependencies, waiting for the dpkg lock;
# about 2.5 min cold each on 2 cores, then instant), here rather than under
# a test's timeout.
# Only for the tests (--openwrt): the demo and the benchmarks need none.
lab=${NATMAP_OPENWRT_LAB:-$(cd "$(dirname "$0")/../.." && pwd)/shared/openwrt-lab}
if [ "${1:-}" = --openwrt ] && [ -x "$lab/build.sh" ] && [ "$(id -u)" = 0 ]; then
	cache=/var/tmp/natmap-owlab
	for luci in 2026 2024; do
		mkdir -p "$cache/$luci"
		echo "deps: OpenWrt's userspace, LuCI $luci ($lab/build.sh into $cache/$luci)"
		flock "$cache/build-$luci.lock" env OPENWRT_LAB_DIR="$cache/$luci" OPENWRT_LAB_LUCI=$luci "$lab/build.sh" >"$cache/build-$luci.log" 2>&1 || {
			tail -n 40 "$cache/build-$luci.log" >&2
			exit 1
		}
	done
fi
