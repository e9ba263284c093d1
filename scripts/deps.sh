#!/usr/bin/env bash
# Installs what testing natmap needs on Debian: the namespace lab's tools
# (iproute2, nftables, conntrack, coturn, iperf3), qemu-user to run the
# router arches' binaries, and the packaging and LuCI test tools. Idempotent;
# installs only as root with apt-get, else says what is missing.
set -euo pipefail

need=()
for pair in ip:iproute2 nft:nftables iptables:iptables conntrack:conntrack turnserver:coturn iperf3:iperf3 node:nodejs shellcheck:shellcheck busybox:busybox curl:curl unzip:unzip qemu-mipsel:qemu-user miniupnpd:miniupnpd-nftables; do
	command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if ((${#need[@]})); then
	if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
		echo "deps: missing ${need[*]} (Debian: apt-get install ${need[*]}); the namespace-lab tests will skip" >&2
		[ "${CI:-}" != true ] || exit 1
		exit 0
	fi
	echo "deps: installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# miniupnpd: never started by the package (the lab runs its own, in a
	# namespace); its debconf question already defaults to no.
	echo 'miniupnpd miniupnpd/start_daemon boolean false' | debconf-set-selections 2>/dev/null || true
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	# The coturn package may start a system-wide server; the lab runs its own.
	pkill -x -f '/usr/bin/turnserver.*-c /etc/turnserver.conf.*' 2>/dev/null || true
fi
