package e2e

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/lab"
)

// BenchmarkKernelForward compares forward mode's two ways through the same
// NAT, taking turns with the direct path as BenchmarkTCPThroughput does:
// "kernel" (--forward-mode kernel: a DNAT rule, the kernel forwards) and
// "relay" (natmap relays), each to an iperf3 server on the lan host's own
// address, against "direct" (bind mode, iperf3 on the bind port). The
// kernel path's process CPU per GB is natmap's while the kernel forwards:
// about nothing, since no byte passes through it.
func BenchmarkKernelForward(b *testing.B) {
	for _, c := range []struct {
		name string
		opts []lab.Option
	}{
		{"wan=1gbit", []lab.Option{lab.WANRate("1gbit")}},
		{"wan=unlimited", nil},
	} {
		b.Run(c.name, func(b *testing.B) { benchKernelForward(b, c.opts...) })
	}
}

func benchKernelForward(b *testing.B, opts ...lab.Option) {
	l := lab.New(b, lab.FullConePreserve, opts...)
	const directPort, kernelPort, relayPort, targetPort = 42021, 42022, 42023, 5205
	startIperfServer(b, l, "", directPort)
	direct := startNatmap(b, l, bindArgs(l, directPort)...)
	startIperfServer(b, l, l.LANAddr.String(), targetPort)
	kernel := startNatmap(b, l, benchForwardArgs(l, kernelPort, l.LANAddr.String(), targetPort, "--forward-mode", "kernel")...)
	relay := startNatmap(b, l, benchForwardArgs(l, relayPort, l.LANAddr.String(), targetPort)...)
	addr := map[string]netip.AddrPort{}
	pid := map[string]int{}
	for p, n := range map[string]*natmap{"direct": direct, "kernel": kernel, "relay": relay} {
		addr[p] = n.waitNotification(1, 15*time.Second).Public()
		pid[p] = n.cmd.Process.Pid
	}
	paths := []string{"direct", "kernel", "relay"}

	type key struct {
		path string
		down bool
	}
	sum := map[key]iperfResult{}
	runs := 0
	load := otherLoad()
	for b.Loop() {
		for _, down := range []bool{false, true} {
			order := turns(paths)
			if down {
				order = turns(slices.Concat(paths[1:], paths[:1]))
			}
			for _, p := range order {
				r := iperf(b, l, addr[p], iperfSecs, down, pid[p])
				b.Logf("%-7s %-4s %6.3f Gbit/s %5.2f CPU-s/GB (natmap process %5.3f)", p, dirName(down), r.bps/1e9, r.cpu/r.bytes*1e9, r.proc/r.bytes*1e9)
				s := sum[key{p, down}]
				s.bps += r.bps
				s.bytes += r.bytes
				s.cpu += r.cpu
				s.proc += r.proc
				sum[key{p, down}] = s
			}
		}
		runs += 2
	}
	other := load()
	for _, down := range []bool{false, true} {
		dir := dirName(down)
		d := sum[key{"direct", down}]
		for _, p := range paths {
			r := sum[key{p, down}]
			b.ReportMetric(r.bps/float64(runs)/1e9, p+"-"+dir+"-Gbit/s")
			b.ReportMetric(r.cpu/r.bytes*1e9, p+"-"+dir+"-CPU-s/GB")
			if p != "direct" {
				b.ReportMetric(r.bps/d.bps, p+"-ratio-"+dir)
				b.ReportMetric(r.proc/r.bytes*1e9, p+"-"+dir+"-process-CPU-s/GB")
			}
		}
	}
	b.ReportMetric(other, "other-cores")
	b.ReportMetric(0, "ns/op")
}
