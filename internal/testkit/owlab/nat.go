package owlab

import (
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// NATAddr is the lab's public address behind ConeNAT: .3 of its /24, an
// address the lab does not own.
func (l *Lab) NATAddr() string { return l.Subnet + ".3" }

var macRE = regexp.MustCompile(`link/ether ([0-9a-f:]{17})`)

// ConeNAT puts a full-cone NAT (one to one, port preserving) in front of
// the lab for its connections from an ephemeral port (the kernel's
// ip_local_port_range, where natmap check's port comes from, not the fixed
// ports of natmap's mappings) to the host's ports dports: they come out
// from NATAddr, and whatever the host sends to NATAddr gets in to the lab.
// natmap check then sees a NAT, not its own address. The NAT is a table of
// nftables in the lab's namespace beside fw4's; the host reaches NATAddr
// through a permanent neighbour entry for the lab's end of the veth. Both
// go when the test ends.
func (l *Lab) ConeNAT(t testing.TB, dports ...int) {
	t.Helper()
	ip := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("owlab: ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	m := macRE.FindStringSubmatch(ip("-n", l.NetNS, "link", "show", "lab0"))
	if m == nil {
		t.Fatal("owlab: no MAC address on the lab's lab0")
	}
	rng := strings.Fields(l.Sh("cat /proc/sys/net/ipv4/ip_local_port_range"))
	if len(rng) != 2 {
		t.Fatalf("owlab: the lab's ip_local_port_range: %q", rng)
	}
	ports := make([]string, len(dports))
	for i, p := range dports {
		ports[i] = fmt.Sprint(p)
	}
	pub, lab, host := l.NATAddr(), l.Addr(), l.HostAddr()
	l.Sh(fmt.Sprintf(`nft -f - <<'EOF'
table ip owlab_nat {
	chain pre {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr %[1]s dnat to %[2]s
	}
	chain post {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr %[2]s ip daddr %[3]s meta l4proto { tcp, udp } th sport %[4]s-%[5]s th dport { %[6]s } snat to %[1]s
	}
}
EOF`, pub, lab, host, rng[0], rng[1], strings.Join(ports, ", ")))
	t.Cleanup(func() { l.Exec(nil, "nft delete table ip owlab_nat") })
	ip("neigh", "replace", pub, "lladdr", m[1], "dev", l.veth, "nud", "permanent")
	t.Cleanup(func() { exec.Command("ip", "neigh", "del", pub, "dev", l.veth).Run() })
}
