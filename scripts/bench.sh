#!/usr/bin/env bash
# natmap's benchmarks: in the namespace lab (needs root and the lab's tools)
# the time from start to the first notify, the forward-mode relay against
# the direct path side by side (TCP throughput with iperf3, TCP connections
# per second, UDP echo), natmap's memory (idle, 1000 relayed TCP connections
# and after they closed, 1000 UDP sessions, the daemon with 16 mappings); the
# STUN reply parser; forward mode's kernel forwarding against the relay; with
# qemu-system-mipsel, on a MIPS kernel the daemon's idle memory and the
# relay's CPU of the mipsel package's build (no inlining) against inlining.
# Prints the raw benchmark lines, then a summary.
#
#   BENCHTIME   -benchtime of the first-notify benchmark (default 50x)
#   COUNT       -count of every benchmark (default 1; the summary averages)
#   QUIET_PCT   before each group, wait until the machine is less busy than
#   QUIET_WAIT  this (percent, default 10), for at most this long (seconds,
#               default 120)
#   RETRIES     how often to measure a comparison again when other processes
#               were busy meanwhile (default 2)
#   NATMAP_C_BIN a C natmap binary (built outside this project): its relay
#               is measured as a third path, its memory with 1000 relayed
#               connections too, and TestCompareWithC runs
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-$(scripts/go.sh)}
scripts/deps.sh
out=$(mktemp)
log=$(mktemp)
grp=$(mktemp)
trap 'rm -f "$out" "$log" "$grp"' EXIT
failed=0

# bench PATTERN BENCHTIME PACKAGE [flags]: run benchmarks, print and keep
# their result lines; a failure is reported with its log at the end. A
# comparison measured while other processes kept more than a tenth of a CPU
# busy (other-cores) is measured again, up to RETRIES (default 2) times.
bench() {
	local pattern=$1 benchtime=$2 pkg=$3 try other
	shift 3
	for ((try = 0; ; try++)); do
		quiet
		if ! "$GO" test -run '^$' -bench "$pattern" -benchtime "$benchtime" -count "${COUNT:-1}" "$@" "$pkg" >"$log" 2>&1; then
			failed=1
			echo "bench: $pattern in $pkg failed:" >&2
			grep -v '^        time=' "$log" | tail -n 40 >&2
			try=${RETRIES:-2} # no second chance for a failure
		fi
		grep -E '^(Benchmark[^[:space:]]+[[:space:]]+[0-9]+[[:space:]]|cpu:)' "$log" >"$grp" || true
		other=$(awk '{ for (i = 3; i < NF; i += 2) if ($(i+1) == "other-cores" && $i > m) m = $i } END { print m + 0 }' "$grp")
		if awk -v o="$other" 'BEGIN { exit !(o > 0.1) }' && ((try < ${RETRIES:-2})); then
			echo "bench: other processes used $other CPU cores meanwhile; measuring again" >&2
			continue
		fi
		break
	done
	tee -a "$out" <"$grp"
	# What the benchmarks logged (each iperf3 run, say), for the spread.
	grep -E '^    bench_test\.go:[0-9]+: ' "$log" | sed 's/^    bench_test\.go:[0-9]*: /    /' || true
}

# busy prints how much of the CPU (percent) the machine used over a second.
busy() {
	local a b c d e f g h t1 i1
	read -r _ a b c d e f g h _ </proc/stat
	t1=$((a + b + c + d + e + f + g + h)) i1=$((d + e))
	sleep 1
	read -r _ a b c d e f g h _ </proc/stat
	t1=$((a + b + c + d + e + f + g + h - t1)) i1=$((d + e - i1))
	echo $((t1 > 0 ? 100 * (t1 - i1) / t1 : 0))
}

# quiet waits (up to QUIET_WAIT seconds, default 120) until the machine is
# idle (below QUIET_PCT percent busy, default 10): the comparisons below
# measure two paths one after the other, and other work on a shared
# machine would skew them. The benchmarks also report, as other-cores, the
# CPU that other processes used while they ran.
quiet() {
	local pct waited=0
	while pct=$(busy) && ((pct > ${QUIET_PCT:-10})); do
		((waited > 0)) || echo "bench: waiting for a quiet machine (${pct}% CPU busy)" >&2
		waited=$((waited + 1))
		if ((waited >= ${QUIET_WAIT:-120})); then
			echo "bench: machine still busy (${pct}%) after ${waited}s; measuring anyway" >&2
			return
		fi
	done
}

echo "== time from natmap's start to its first notify (namespace lab, full-cone NAT)"
bench '^BenchmarkTimeToFirstNotify$' "${BENCHTIME:-50x}" ./e2e/
echo "== TCP throughput through the NAT, direct and natmap's relay taking turns (iperf3, 4 x 2 s per path and direction)"
bench '^BenchmarkTCPThroughput$' 1x ./e2e/
echo "== TCP throughput in forward mode: the kernel (--forward-mode kernel, DNAT) against the relay and the direct path, taking turns"
bench '^BenchmarkKernelForward$' 1x ./e2e/
echo "== TCP connections per second (connect, 1-byte round trip, close), direct and relay taking turns"
bench '^BenchmarkTCPConnRate$' 3s ./e2e/
echo "== natmap's memory in forward mode: idle, with 1000 relayed TCP connections and after they closed; 1000 UDP sessions; the daemon with 16 mappings"
bench '^BenchmarkRelayRSS$' 1x ./e2e/
bench '^BenchmarkUDPRelayRSS$' 1x ./e2e/
bench '^BenchmarkDaemonIdleRSS$' 1x ./e2e/
if command -v qemu-system-mipsel >/dev/null; then
	echo "== the same on a MIPS kernel (qemu-system-mipsel, Malta 24Kc; NATMAP_C_BIN_MIPSEL: a static mipsel C natmap too)"
	bench '^BenchmarkDaemonIdleRSSMIPS$' 1x ./e2e/ -timeout 30m
	echo "== the relay's CPU on a MIPS kernel: the mipsel package's build (no inlining) against inlining, taking turns (128 MiB each way, 3 runs each; the VM's clock counts instructions: compare the ratios)"
	bench '^BenchmarkRelayMIPS$' 1x ./e2e/ -timeout 30m
fi
echo "== UDP echo through the NAT, direct and relay taking turns (64-byte and 60000-byte datagrams)"
bench '^BenchmarkUDPRelay$' 3s ./e2e/
echo "== STUN reply parsing"
bench . 1s ./internal/stun/ -benchmem
if [[ -n ${NATMAP_C_BIN:-} ]]; then
	echo "== side by side with the C natmap: first notify, recovery after the NAT forgets, symmetric NAT (about 5 minutes)"
	if ! "$GO" test -count=1 -run '^TestCompareWithC$' -v -timeout 20m ./e2e/ >"$log" 2>&1; then
		failed=1
		tail -n 40 "$log" >&2
	fi
	grep -E '^ +compare_test\.go:[0-9]+: ' "$log" | sed 's/^ *compare_test\.go:[0-9]*: /    /' || true
fi

echo
echo "== summary (ratio: relay / direct; other: CPU cores used by other processes meanwhile)"
awk '
/^Benchmark/ {
	name = $1
	sub(/-[0-9]+$/, "", name)
	for (i = 3; i < NF; i += 2) {
		sum[name "|" $(i+1)] += $i
		cnt[name "|" $(i+1)]++
	}
}
function v(name, unit,   k) { k = name "|" unit; return (k in cnt) ? sum[k] / cnt[k] : -1 }
function max(a, b) { return a > b ? a : b }
function cell(x, fmt, unit) { return x < 0 ? "-" : sprintf(fmt " %s", x, unit) }
function ratio(x, d) { return (d > 0 && x >= 0) ? sprintf("%.3f", x / d) : "-" }
# row prints direct, the natmap relay (r) and, when measured, the C
# natmap relay (c, -1 if not).
function row(what, d, r, c, fmt, unit, other,   os) {
	if (d < 0 && r < 0 && c < 0) return
	os = other < 0 ? "" : sprintf("%.2f", other)
	if (other > maxother) maxother = other
	printf "| %-45s | %-15s | %-15s | %-6s |", what, cell(d, fmt, unit), cell(r, fmt, unit), ratio(r, d)
	if (hasc) printf " %-15s | %-6s |", cell(c, fmt, unit), ratio(c, d)
	printf " %-5s |\n", os
}
function pair(what, name, unit, fmt, shown) {
	row(what, v(name, "direct-" unit), v(name, "relay-" unit), v(name, "c-relay-" unit), fmt, shown, v(name, "other-cores"))
}
# kfwd prints a row of BenchmarkKernelForward: direct, kernel, relay (with
# ratios to direct when ratios is 1).
function kfwd(what, name, unit, fmt, shown, ratios,   d, kk, r, os) {
	d = ratios ? v(name, "direct-" unit) : -1
	kk = v(name, "kernel-" unit)
	r = v(name, "relay-" unit)
	if (kk < 0 && r < 0) return
	os = sprintf("%.2f", v(name, "other-cores"))
	if (v(name, "other-cores") > maxother) maxother = v(name, "other-cores")
	printf "| %-45s | %-15s | %-15s | %-6s | %-15s | %-6s | %-5s |\n", what, cell(d, fmt, shown), cell(kk, fmt, shown), ratio(kk, d), cell(r, fmt, shown), ratio(r, d), os
}
# one prints a figure and, when measured, that of the C natmap (cval).
function one(what, val, fmt, unit, cval,   c) {
	if (val < 0) return
	c = (cval == "" || cval < 0) ? "" : sprintf(" (C natmap: " fmt " %s)", cval, unit)
	printf "| %-45s | %-20s |\n", what, sprintf(fmt " %s", val, unit) c
}
END {
	maxother = 0
	hasc = 0
	for (k in cnt) if (k ~ /\|c-relay-/) hasc = 1
	if (hasc) {
		print "| what                                          | direct          | relay           | ratio  | C relay         | ratio  | other |"
		print "| --------------------------------------------- | --------------- | --------------- | ------ | --------------- | ------ | ----- |"
	} else {
		print "| what                                          | direct          | relay           | ratio  | other |"
		print "| --------------------------------------------- | --------------- | --------------- | ------ | ----- |"
	}
	t = "BenchmarkTCPThroughput/"
	for (w = 1; w <= 2; w++) for (dir = 1; dir <= 2; dir++) {
		wan = w == 1 ? "wan=1gbit" : "wan=unlimited"
		d = dir == 1 ? "up" : "down"
		label = "TCP " (d == "up" ? "upload" : "download") (w == 1 ? ", WAN 1 Gbit/s" : ", no limit (CPU-bound)")
		pair(label, t wan, d "-Gbit/s", "%.3f", "Gbit/s")
		pair("  CPU per GB moved (all of the path)", t wan, d "-CPU-s/GB", "%.2f", "s")
		row("  relay process CPU per GB", -1, v(t wan, "relay-" d "-process-CPU-s/GB"), v(t wan, "c-relay-" d "-process-CPU-s/GB"), "%.2f", "s", v(t wan, "other-cores"))
	}
	c = "BenchmarkTCPConnRate/"
	pair("TCP connections, one at a time", c "conc=1", "conn/s", "%.0f", "conn/s")
	row("  relay process CPU per connection", -1, v(c "conc=1", "relay-process-us/conn"), v(c "conc=1", "c-relay-process-us/conn"), "%.0f", "us", v(c "conc=1", "other-cores"))
	pair("TCP connections, 8 clients at once", c "conc=8", "conn/s", "%.0f", "conn/s")
	row("  relay process CPU per connection", -1, v(c "conc=8", "relay-process-us/conn"), v(c "conc=8", "c-relay-process-us/conn"), "%.0f", "us", v(c "conc=8", "other-cores"))
	u = "BenchmarkUDPRelay/"
	pair("UDP echo, 64 B, 32 in flight", u "size=64", "dgram/s", "%.0f", "dgram/s")
	row("  relay process CPU per echo", -1, v(u "size=64", "relay-process-us/echo"), v(u "size=64", "c-relay-process-us/echo"), "%.1f", "us", v(u "size=64", "other-cores"))
	pair("UDP echo, 60000 B, 4 in flight", u "size=60000", "dgram/s", "%.0f", "dgram/s")
	row("  relay process CPU per echo", -1, v(u "size=60000", "relay-process-us/echo"), v(u "size=60000", "c-relay-process-us/echo"), "%.1f", "us", v(u "size=60000", "other-cores"))
	pair("  same, payload", u "size=60000", "Gbit/s", "%.2f", "Gbit/s")
	f = v(u "size=60000", "NAT-frags/dgram")
	if (f >= 0) printf "| %-45s | %-33s | %-6s | %-5s |\n", "  IP fragments per datagram at the NAT (both)", sprintf("%.1f", f), "", ""
	pair("  lost (all others came back whole)", u "size=60000", "%lost", "%.2f", "%")
	pair("  cut short by the relay", u "size=60000", "%cut", "%.2f", "%")
	k = "BenchmarkKernelForward/"
	if (v(k "wan=1gbit", "other-cores") >= 0 || v(k "wan=unlimited", "other-cores") >= 0) {
		print ""
		print "| forward mode: kernel and relay               | direct          | kernel          | ratio  | relay           | ratio  | other |"
		print "| --------------------------------------------- | --------------- | --------------- | ------ | --------------- | ------ | ----- |"
		for (w = 1; w <= 2; w++) for (dir = 1; dir <= 2; dir++) {
			wan = w == 1 ? "wan=1gbit" : "wan=unlimited"
			d = dir == 1 ? "up" : "down"
			label = "TCP " (d == "up" ? "upload" : "download") (w == 1 ? ", WAN 1 Gbit/s" : ", no limit (CPU-bound)")
			kfwd(label, k wan, d "-Gbit/s", "%.3f", "Gbit/s", 1)
			kfwd("  CPU per GB moved (all of the path)", k wan, d "-CPU-s/GB", "%.2f", "s", 1)
			kfwd("  natmap process CPU per GB", k wan, d "-process-CPU-s/GB", "%.3f", "s", 0)
		}
	}
	print ""
	print "| what                                          | figure               |"
	print "| --------------------------------------------- | -------------------- |"
	m = "BenchmarkRelayRSS"
	one("natmap RSS, forward mode, idle", v(m, "idle-KiB"), "%.0f", "KiB", v(m, "c-idle-KiB"))
	one("  of which anonymous (not binary pages)", v(m, "idle-anon-KiB"), "%.0f", "KiB", v(m, "c-idle-anon-KiB"))
	one("natmap RSS, 1000 relayed TCP connections", v(m, "1000conns-KiB"), "%.0f", "KiB", v(m, "c-1000conns-KiB"))
	one("  per relayed connection", v(m, "KiB/conn"), "%.1f", "KiB", v(m, "c-KiB/conn"))
	one("  natmap fds: sockets + pipes (splice)", v(m, "1000conns-sockets"), "%.0f", sprintf("+ %.0f", v(m, "1000conns-pipes")))
	one("natmap RSS after they closed", v(m, "closed-KiB"), "%.0f", "KiB", v(m, "c-closed-KiB"))
	one("  within 1 MiB of idle after (at most 60)", v(m, "closed-s"), "%.0f", "s", v(m, "c-closed-s"))
	one("natmap RSS, 1000 UDP sessions", v("BenchmarkUDPRelayRSS", "1000sessions-KiB"), "%.0f", "KiB")
	one("  per UDP session", v("BenchmarkUDPRelayRSS", "KiB/session"), "%.1f", "KiB")
	for (d = "BenchmarkDaemonIdleRSS"; d != ""; d = (d == "BenchmarkDaemonIdleRSS") ? "BenchmarkDaemonIdleRSSMIPS" : "") {
		a = (d ~ /MIPS/) ? " (MIPS)" : ""
		one("natmap daemon RSS, 16 mappings, idle" a, v(d, "16mappings-KiB"), "%.0f", "KiB", v(d, "c-16mappings-KiB"))
		one("  PSS (C: 16 processes share pages)", v(d, "16mappings-pss-KiB"), "%.0f", "KiB", v(d, "c-16mappings-pss-KiB"))
		one("  of which anonymous (not binary pages)", v(d, "16mappings-anon-KiB"), "%.0f", "KiB", v(d, "c-16mappings-anon-KiB"))
		one("  touched in 15 s (the rest: unused pages)", v(d, "16mappings-touched-KiB"), "%.0f", "KiB")
		one("  threads", v(d, "16mappings-threads"), "%.0f", "", v(d, "c-16mappings-threads"))
	}
	one("natmap daemon RSS, 1 mapping, idle (MIPS)", v("BenchmarkDaemonIdleRSSMIPS", "1mapping-KiB"), "%.0f", "KiB", v("BenchmarkDaemonIdleRSSMIPS", "c-1mapping-KiB"))
	one("  of which anonymous", v("BenchmarkDaemonIdleRSSMIPS", "1mapping-anon-KiB"), "%.0f", "KiB", v("BenchmarkDaemonIdleRSSMIPS", "c-1mapping-anon-KiB"))
	r = "BenchmarkRelayMIPS"
	for (dir = 1; dir <= 2; dir++) {
		d = dir == 1 ? "up" : "down"
		n = v(r, "noinline-" d "-CPU-ms/MiB")
		if (n <= 0) continue
		one("relay CPU, MIPS VM, " d ": inline / no inline", v(r, "inline-" d "-CPU-ms/MiB") / n, "%.3f", "")
		n = v(r, "noinline-" d "-user-ms/MiB")
		if (n > 0) one("  user space only", v(r, "inline-" d "-user-ms/MiB") / n, "%.3f", "")
		n = v(r, "noinline-" d "-MiB/s")
		if (n > 0) one("  throughput", v(r, "inline-" d "-MiB/s") / n, "%.3f", "")
	}
	one("  mipsel binary: no inline / inline", v(r, "noinline-bytes") / 1024, "%.0f", sprintf("/ %.0f KiB", v(r, "inline-bytes") / 1024))
	one("  natmap fd limit (RLIMIT_NOFILE)", v(m, "nofile-limit"), "%.0f", "")
	one("start to first notify", v("BenchmarkTimeToFirstNotify", "ms/notify"), "%.1f", "ms")
	one("STUN reply parse", v("BenchmarkParseResponse", "ns/op"), "%.0f", "ns")
	if (maxother > 0.1)
		printf "\nWARNING: other processes used up to %.2f CPU cores while the comparisons ran: the machine was busy, the figures are not reliable.\n", maxother
}' "$out"
if ((failed)); then
	echo "bench: some benchmarks failed (see above)" >&2
	exit 1
fi
