#!/usr/bin/env bash
# Installs what testing natmap needs on Debian: the namespace lab's tools
# (iproute2, nftables, conntrack, coturn, iperf3), the updaters' servers
# (bind9, transmission-daemon, qbittorrent-nox), qemu-user to run the
# router arches' binaries, and the packaging and LuCI test tools. Idempotent;
# installs only as root with apt-get, else says what is missing.
set -euo pipefail

need=()
for pair in ip:iproute2 nft:nftables iptables:iptables conntrack:conntrack turnserver:coturn iperf3:iperf3 node:nodejs shellcheck:shellcheck busybox:busybox curl:curl unzip:unzip qemu-mipsel:qemu-user named:bind9 dig:bind9-dnsutils transmission-daemon:transmission-daemon qbittorrent-nox:qbittorrent-nox lua5.1:lua5.1; do
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
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	# The coturn package may start a system-wide server; the lab runs its own.
	pkill -x -f '/usr/bin/turnserver.*-c /etc/turnserver.conf.*' 2>/dev/null || true
	# So may bind9 and transmission-daemon; the updater tests run their own
	# on loopback with temporary configs.
	for svc in named transmission-daemon; do
		if command -v systemctl >/dev/null && systemctl is-system-running >/dev/null 2>&1; then
			systemctl disable --now "$svc" >/dev/null 2>&1 || true
		elif [ -x "/etc/init.d/$svc" ]; then
			"/etc/init.d/$svc" stop >/dev/null 2>&1 || true
		fi
	done
fi
