package e2e

import (
	"net/netip"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/testkit/lab"
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
	throughputTurns(b, l, addr, pid, paths, func(p string) string { return p + "-ratio" })
}
