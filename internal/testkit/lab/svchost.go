package lab

import (
	"fmt"
	"net/netip"
	"os"
	"testing"
)

// ServiceHost is a second host on the lan host's own LAN, for forward-mode
// targets on another machine (a router forwarding to a LAN server):
//
//	svc (10.78.0.2)      --svc0--  lan (10.78.0.1)
//	    (2001:db8:78::2)               (2001:db8:78::1)
//
// The lan host forwards both families, as a router does, and is the
// service host's default route, so replies to outside clients go back
// through it (and through its conntrack).
type ServiceHost struct {
	NS          string     // network namespace name
	Addr, Addr6 netip.Addr // 10.78.0.2, 2001:db8:78::2
}

var (
	svcAddr    = netip.MustParseAddr("10.78.0.2")
	svcGW      = netip.MustParseAddr("10.78.0.1")
	svcAddr6   = netip.MustParseAddr("2001:db8:78::2")
	svcGW6     = netip.MustParseAddr("2001:db8:78::1")
	svcLinkIf  = "svc0"
	svcIndexes = [2]int{20, 21} // distinct ifindexes, as in setupNetwork
)

// AddServiceHost adds a ServiceHost to the lab; it goes away with the lab.
func (l *Lab) AddServiceHost(t testing.TB) ServiceHost {
	t.Helper()
	h := ServiceHost{NS: l.LAN[:len(l.LAN)-len("lan")] + "svc", Addr: svcAddr, Addr6: svcAddr6}
	// Cleanups run last first: this one before the lab's own.
	t.Cleanup(func() {
		if _, err := os.Stat("/var/run/netns/" + h.NS); err == nil {
			if err := run("", "", "ip", "netns", "del", h.NS); err != nil {
				t.Errorf("lab: %v", err)
			}
		}
	})
	root := fmt.Sprintf("netns add %[1]s\nlink add %[3]s netns %[2]s index %[4]d type veth peer name %[3]s netns %[1]s index %[5]d\n",
		h.NS, l.LAN, svcLinkIf, svcIndexes[0], svcIndexes[1])
	if err := run("", root, "ip", "-batch", "-"); err != nil {
		t.Fatalf("lab: %v", err)
	}
	lan := fmt.Sprintf("addr add %[1]s/24 dev %[3]s\naddr add %[2]s/64 dev %[3]s nodad\nlink set %[3]s up\n", svcGW, svcGW6, svcLinkIf)
	svc := fmt.Sprintf("link set lo up\naddr add %[1]s/24 dev %[5]s\naddr add %[2]s/64 dev %[5]s nodad\nlink set %[5]s up\nroute add default via %[3]s\nroute add ::/0 via %[4]s\n",
		svcAddr, svcAddr6, svcGW, svcGW6, svcLinkIf)
	sysctls := map[string]string{
		"ipv6/conf/all/accept_dad": "0", "ipv6/conf/all/accept_ra": "0",
		"ipv6/conf/" + svcLinkIf + "/accept_dad": "0", "ipv6/conf/" + svcLinkIf + "/accept_ra": "0",
	}
	lanSysctls := map[string]string{
		"ipv4/ip_forward": "1", "ipv6/conf/all/forwarding": "1",
		"ipv6/conf/" + svcLinkIf + "/accept_dad": "0",
	}
	for _, ns := range []struct {
		name    string
		sysctls map[string]string
		batch   string
	}{{h.NS, sysctls, svc}, {l.LAN, lanSysctls, lan}} {
		if err := l.Do(ns.name, func() error { return writeSysctls(ns.sysctls) }); err != nil {
			t.Fatalf("lab: sysctls in %s: %v", ns.name, err)
		}
		if err := run(ns.name, ns.batch, "ip", "-batch", "-"); err != nil {
			t.Fatalf("lab: %v", err)
		}
	}
	return h
}
