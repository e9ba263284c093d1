package firewall

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
)

const dnatPort = 40100 // the bind port the DNAT tests forward from

// natmapTable is the ruleset of table inet natmap, "" when it is gone.
func (r *router) natmapTable() string {
	r.t.Helper()
	out, err := r.run(context.Background(), "nft", "list", "table", "inet", NFTTable)
	if err != nil {
		return ""
	}
	return string(out)
}

// natmap's own nftables table forwards TCP and UDP, both families, to a
// service on the host itself (DNAT to its own address, and redirect for a
// loopback target); syncs are idempotent, follow a changed target, leave
// other natmaps' rules alone, clear a dead natmap's, and remove the table
// with the last rule.
func TestNFTDNAT(t *testing.T) {
	t.Parallel()
	r := newRouter(t, nil)
	r.serve()
	ctx := context.Background()
	b := NewNFTDNAT(r.run)
	from4 := netip.AddrPortFrom(routerAddr, dnatPort)
	from6 := netip.AddrPortFrom(routerAddr6, dnatPort)
	to4 := netip.AddrPortFrom(routerAddr, testPort)
	want := []DNAT{
		{Owner: "web", Proto: "tcp", Dst: from4, To: to4, Local: true},
		{Owner: "dns", Proto: "udp", Dst: from4, To: netip.MustParseAddrPort("127.0.0.1:40000"), Local: true},
		{Owner: "web6", Proto: "tcp", Dst: from6, To: netip.AddrPortFrom(routerAddr6, testPort), Local: true},
		{Owner: "dns6", Proto: "udp", Dst: from6, To: netip.AddrPortFrom(routerAddr6, testPort), Local: true},
	}
	for _, network := range []string{"tcp", "udp"} {
		if got := r.probeAt(network, from4); got == open {
			t.Fatalf("%s: open before any rule", network)
		}
	}
	must(t, SyncDNAT(ctx, b, DaemonScope, want))
	for _, dst := range []netip.AddrPort{from4, from6} {
		for _, network := range []string{"tcp", "udp"} {
			if got := r.probeAt(network, dst); got != open {
				t.Errorf("%s to %s: %s, want open", network, dst, got)
			}
		}
	}
	table := r.natmapTable()
	if strings.Count(table, DNATTagPrefix) != 4 || !strings.Contains(table, "redirect to :40000") {
		t.Fatalf("want four rules, one a redirect:\n%s", table)
	}

	// Idempotent: nothing changes.
	must(t, SyncDNAT(ctx, b, DaemonScope, want))
	if got := r.natmapTable(); got != table {
		t.Fatalf("second sync changed the table:\n%s\nwas:\n%s", got, table)
	}

	// Another natmap's rule (a running command-line natmap: this test's
	// pid) stays; a dead one's goes with the command-line scope.
	other := DNAT{Owner: fmt.Sprintf("pid:%d", os.Getpid()), Proto: "tcp", Dst: netip.AddrPortFrom(routerAddr, 40101), To: to4, Local: true}
	dead := DNAT{Owner: "pid:999999999", Proto: "tcp", Dst: netip.AddrPortFrom(routerAddr, 40102), To: to4, Local: true}
	must(t, b.add(ctx, other))
	must(t, b.add(ctx, dead))

	// A changed target (-p 0 and a new public port): the rule follows.
	want[0].To = netip.AddrPortFrom(routerAddr, 40001)
	must(t, SyncDNAT(ctx, b, DaemonScope, want))
	if got := r.probeAt("tcp", from4); got != refused {
		t.Errorf("tcp to %s after the target moved to a closed port: %s, want refused", from4, got)
	}
	table = r.natmapTable()
	if !strings.Contains(table, "to 192.0.2.1:40001") || strings.Contains(table, "to 192.0.2.1:40000 comment \"natmap-dnat:web#") {
		t.Fatalf("rule did not follow the target:\n%s", table)
	}
	if !strings.Contains(table, other.tag()) || !strings.Contains(table, dead.tag()) {
		t.Fatalf("the daemon's sync touched command-line natmaps' rules:\n%s", table)
	}

	// The command-line scope of this process: its own rule, and the dead
	// natmap's, go; the sections' stay.
	must(t, SyncDNAT(ctx, b, CLIScope(os.Getpid()), nil))
	table = r.natmapTable()
	if strings.Contains(table, other.tag()) || strings.Contains(table, dead.tag()) || strings.Count(table, DNATTagPrefix) != 4 {
		t.Fatalf("command-line sync:\n%s", table)
	}

	// A rule deleted by hand is put back; one duplicated is made single.
	ps, err := b.list(ctx)
	must(t, err)
	must(t, b.remove(ctx, ps[:1]))
	must(t, b.add(ctx, want[1]))
	must(t, SyncDNAT(ctx, b, DaemonScope, want))
	if ps, err := b.list(ctx); err != nil || len(ps) != 4 {
		t.Fatalf("after repair: %d rules, %v:\n%s", len(ps), err, r.natmapTable())
	}

	// The last rule takes the table with it.
	must(t, SyncDNAT(ctx, b, DaemonScope, nil))
	if table := r.natmapTable(); table != "" {
		t.Fatalf("table left after the last rule:\n%s", table)
	}
	if got := r.probeAt("tcp", from4); got == open {
		t.Error("still forwarded after the rules went")
	}
	// Nothing to remove is no error.
	must(t, SyncDNAT(ctx, b, DaemonScope, nil))
}

func TestDNATValidate(t *testing.T) {
	a := netip.MustParseAddrPort("192.0.2.1:1")
	a6 := netip.MustParseAddrPort("[2001:db8::1]:1")
	ok := DNAT{Owner: "web", Proto: "tcp", Dst: a, To: a}
	if err := ok.validate(); err != nil {
		t.Fatal(err)
	}
	for _, d := range []DNAT{
		{Owner: "we b", Proto: "tcp", Dst: a, To: a},
		{Owner: `x"`, Proto: "tcp", Dst: a, To: a},
		{Owner: "pid:", Proto: "tcp", Dst: a, To: a},
		{Owner: "pid:1x", Proto: "tcp", Dst: a, To: a},
		{Owner: "web", Proto: "sctp", Dst: a, To: a},
		{Owner: "web", Proto: "tcp", Dst: a, To: a6},
		{Owner: "web", Proto: "tcp", Dst: a, To: netip.AddrPortFrom(a.Addr(), 0)},
		{Owner: "web", Proto: "tcp", Dst: a, To: netip.MustParseAddrPort("[::ffff:192.0.2.1]:1")},
		{Owner: "web", Zone: "w;an", Proto: "tcp", Dst: a, To: a},
	} {
		if err := d.validate(); err == nil {
			t.Errorf("%+v: want an error", d)
		}
	}
	if tagOwner(ok.tag()) != "web" || len(ok.tag()) > 128 {
		t.Errorf("tag %q", ok.tag())
	}
	if !DaemonScope("web") || DaemonScope("pid:1") || !CLIScope(1)("pid:1") || CLIScope(1)("web") {
		t.Error("scopes")
	}
}

// fw4DNATRuleset has fw4's structure for a wan zone on wan0 whose input and
// forward end in a reject (ruleset.uc), with no port forward, so no
// dstnat_wan chain. Loading it again is a fw4 reload.
const fw4DNATRuleset = `
table inet fw4
flush table inet fw4
table inet fw4 {
	chain input {
		type filter hook input priority filter; policy drop;
		iif "lo" accept comment "!fw4: Accept traffic from loopback"
		ct state vmap { established : accept, related : accept } comment "!fw4: Handle inbound flows"
		iifname "wan0" jump input_wan comment "!fw4: Handle wan IPv4/IPv6 input traffic"
		jump handle_reject
	}
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state vmap { established : accept, related : accept } comment "!fw4: Handle forwarded flows"
		iifname "wan0" jump forward_wan comment "!fw4: Handle wan IPv4/IPv6 forward traffic"
		jump handle_reject
	}
	chain handle_reject {
		meta l4proto tcp reject with tcp reset comment "!fw4: Reject TCP traffic"
		reject with icmpx type port-unreachable comment "!fw4: Reject any other traffic"
	}
	chain input_wan {
		meta nfproto ipv4 icmp type 8 counter accept comment "!fw4: Allow-Ping"
		meta nfproto ipv6 icmpv6 type { 1, 2, 3, 4, 128, 129, 133, 134, 135, 136 } limit rate 1000/second counter accept comment "!fw4: Allow-ICMPv6-Input"
		jump reject_from_wan
	}
	chain forward_wan {
		jump reject_to_wan
	}
	chain reject_from_wan {
		iifname "wan0" counter jump handle_reject comment "!fw4: reject wan IPv4/IPv6 traffic"
	}
	chain reject_to_wan {
		oifname "wan0" counter jump handle_reject comment "!fw4: reject wan IPv4/IPv6 traffic"
	}
	chain dstnat {
		type nat hook prerouting priority dstnat; policy accept;
	}
	chain srcnat {
		type nat hook postrouting priority srcnat; policy accept;
	}
}
`

// Inside fw4's table: a DNAT to the router itself passes fw4's input
// reject only with natmap's accept, in the wan zone's chain; a fw4 reload
// drops both rules and a sync puts them back; removing them leaves fw4's
// own rules as they were. The forward path (a target on another host) is
// tested in the lab (e2e TestDaemonKernelForwardFW4).
func TestFW4DNAT(t *testing.T) {
	t.Parallel()
	r := newRouter(t, nil)
	r.serve()
	r.do(fw4DNATRuleset, "nft", "-f", "-")
	before := r.do("", "nft", "-s", "list", "ruleset")
	ctx := context.Background()
	b, err := DetectDNAT(ctx, r.run)
	must(t, err)
	if b.Name() != "fw4" {
		t.Fatalf("detected %s, want fw4", b.Name())
	}
	from4 := netip.AddrPortFrom(routerAddr, dnatPort)
	from6 := netip.AddrPortFrom(routerAddr6, dnatPort)
	want := []DNAT{
		{Owner: "web", Zone: "wan", Proto: "tcp", Dst: from4, To: netip.AddrPortFrom(routerAddr, testPort), Local: true},
		{Owner: "dns", Zone: "wan", Proto: "udp", Dst: from6, To: netip.AddrPortFrom(routerAddr6, testPort), Local: true},
	}
	// The service on testPort is closed to the wan: fw4 rejects.
	if got := r.probeAt("tcp", netip.AddrPortFrom(routerAddr, testPort)); got != refused {
		t.Fatalf("fw4 does not reject: %s", got)
	}
	check := func(when string) {
		t.Helper()
		if got := r.probeAt("tcp", from4); got != open {
			t.Errorf("%s: tcp to %s: %s, want open", when, from4, got)
		}
		if got := r.probeAt("udp", from6); got != open {
			t.Errorf("%s: udp to %s: %s, want open", when, from6, got)
		}
		// Only the translated flows are accepted.
		if got := r.probeAt("tcp", netip.AddrPortFrom(routerAddr, testPort)); got != refused {
			t.Errorf("%s: the target's own port is open: %s", when, got)
		}
		set := r.do("", "nft", "list", "table", "inet", "fw4")
		for _, chain := range []string{"dstnat", "input_wan"} {
			c := r.do("", "nft", "list", "chain", "inet", "fw4", chain)
			if strings.Count(c, DNATTagPrefix) != 2 {
				t.Errorf("%s: chain %s: want two rules:\n%s", when, chain, set)
			}
		}
	}
	must(t, SyncDNAT(ctx, b, DaemonScope, want))
	check("after the sync")

	// fw4 reload: the rules are gone until the next sync.
	r.do(fw4DNATRuleset, "nft", "-f", "-")
	if got := r.probeAt("tcp", from4); got == open {
		t.Fatal("still forwarded after a reload: the reload was not simulated")
	}
	must(t, SyncDNAT(ctx, b, DaemonScope, want))
	check("after a reload and a sync")

	// An incomplete DNAT (its accept deleted by hand) is made again.
	ps, err := b.list(ctx)
	must(t, err)
	for _, p := range ps {
		if p.chain == "input_wan" && tagOwner(p.tag) == "web" {
			must(t, b.remove(ctx, []placed{p}))
		}
	}
	must(t, SyncDNAT(ctx, b, DaemonScope, want))
	check("after a repair")

	// A zone fw4 does not have is an error naming it.
	bad := want[0]
	bad.Zone = "guest"
	if err := SyncDNAT(ctx, b, DaemonScope, []DNAT{bad}); !errors.Is(err, ErrNoZone) || !strings.Contains(err.Error(), "guest") {
		t.Errorf("zone guest: %v", err)
	}

	must(t, SyncDNAT(ctx, b, DaemonScope, nil))
	if after := r.do("", "nft", "-s", "list", "ruleset"); after != before {
		t.Errorf("fw4 not as it was:\n%s\nwant:\n%s", after, before)
	}
}

// fw3DNATRuleset has fw3's structure (zones.c) for a wan zone on wan0 with
// no port forward: input and forward from the wan zone end in a reject,
// and the nat table has no zone_wan_prerouting. Restoring it is a fw3
// restart. For ip6tables, with ICMPv6 accepted for neighbour discovery.
func fw3DNATRuleset(ipv6 bool) string {
	reject, icmp := "icmp-port-unreachable", ""
	if ipv6 {
		reject = "icmp6-port-unreachable"
		icmp = "-A zone_wan_input -p ipv6-icmp -m comment --comment \"!fw3: Allow-ICMPv6-Input\" -j ACCEPT\n"
	}
	return `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:prerouting_rule - [0:0]
-A PREROUTING -m comment --comment "!fw3: Custom prerouting rule chain" -j prerouting_rule
COMMIT
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:reject - [0:0]
:zone_wan_input - [0:0]
:zone_wan_forward - [0:0]
:zone_wan_src_REJECT - [0:0]
:zone_wan_dest_REJECT - [0:0]
-A INPUT -i lo -m comment --comment "!fw3" -j ACCEPT
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "!fw3" -j ACCEPT
-A INPUT -i wan0 -m comment --comment "!fw3" -j zone_wan_input
-A INPUT -m comment --comment "!fw3" -j reject
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "!fw3" -j ACCEPT
-A FORWARD -i wan0 -m comment --comment "!fw3" -j zone_wan_forward
-A FORWARD -m comment --comment "!fw3" -j reject
-A reject -p tcp -m comment --comment "!fw3" -j REJECT --reject-with tcp-reset
-A reject -m comment --comment "!fw3" -j REJECT --reject-with ` + reject + `
` + icmp + `-A zone_wan_input -m comment --comment "!fw3" -j zone_wan_src_REJECT
-A zone_wan_forward -m comment --comment "!fw3" -j zone_wan_dest_REJECT
-A zone_wan_src_REJECT -i wan0 -m comment --comment "!fw3" -j reject
-A zone_wan_dest_REJECT -o wan0 -m comment --comment "!fw3" -j reject
COMMIT
`
}

// In fw3's chains, with iptables-nft and iptables-legacy: a DNAT to the
// router itself passes fw3's input reject only with natmap's accept; a fw3
// restart drops the rules and a sync puts them back; removing them leaves
// fw3's own rules as they were.
func TestFW3DNAT(t *testing.T) {
	t.Parallel()
	tools := map[string]map[string]string{"iptables": nil}
	if _, err := exec.LookPath("iptables-legacy"); err == nil {
		tools["iptables-legacy"] = map[string]string{
			"iptables": "iptables-legacy", "ip6tables": "ip6tables-legacy",
			"iptables-restore": "iptables-legacy-restore", "ip6tables-restore": "ip6tables-legacy-restore",
		}
	}
	for name, tool := range tools {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := newRouter(t, tool)
			r.serve()
			load := func() {
				r.do(fw3DNATRuleset(false), "iptables-restore")
				r.do(fw3DNATRuleset(true), "ip6tables-restore")
			}
			snapshot := func() string {
				return r.do("", "iptables", "-w", "-S") + r.do("", "iptables", "-w", "-t", "nat", "-S") +
					r.do("", "ip6tables", "-w", "-S") + r.do("", "ip6tables", "-w", "-t", "nat", "-S")
			}
			load()
			before := snapshot()
			ctx := context.Background()
			b, err := DetectDNAT(ctx, r.run)
			must(t, err)
			if b.Name() != "fw3" {
				t.Fatalf("detected %s, want fw3", b.Name())
			}
			from4 := netip.AddrPortFrom(routerAddr, dnatPort)
			from6 := netip.AddrPortFrom(routerAddr6, dnatPort)
			want := []DNAT{
				{Owner: "web", Zone: "wan", Proto: "tcp", Dst: from4, To: netip.AddrPortFrom(routerAddr, testPort), Local: true},
				{Owner: "dns", Zone: "wan", Proto: "udp", Dst: from6, To: netip.AddrPortFrom(routerAddr6, testPort), Local: true},
				{Owner: "lo", Zone: "wan", Proto: "udp", Dst: from4, To: netip.MustParseAddrPort("127.0.0.1:40000"), Local: true},
			}
			if got := r.probeAt("tcp", netip.AddrPortFrom(routerAddr, testPort)); got != refused {
				t.Fatalf("fw3 does not reject: %s", got)
			}
			check := func(when string) {
				t.Helper()
				for _, p := range []struct {
					network string
					dst     netip.AddrPort
				}{{"tcp", from4}, {"udp", from6}, {"udp", from4}} {
					if got := r.probeAt(p.network, p.dst); got != open {
						t.Errorf("%s: %s to %s: %s, want open", when, p.network, p.dst, got)
					}
				}
				if got := r.probeAt("tcp", netip.AddrPortFrom(routerAddr, testPort)); got != refused {
					t.Errorf("%s: the target's own port is open: %s", when, got)
				}
				if s := snapshot(); strings.Count(s, DNATTagPrefix) != 6 {
					t.Errorf("%s: want six rules:\n%s", when, s)
				}
			}
			must(t, SyncDNAT(ctx, b, DaemonScope, want))
			check("after the sync")
			must(t, SyncDNAT(ctx, b, DaemonScope, want))
			check("after a second sync")

			load() // fw3 restart
			if got := r.probeAt("tcp", from4); got == open {
				t.Fatal("still forwarded after a restart: the restart was not simulated")
			}
			must(t, SyncDNAT(ctx, b, DaemonScope, want))
			check("after a restart and a sync")

			must(t, SyncDNAT(ctx, b, DaemonScope, nil))
			if after := snapshot(); after != before {
				t.Errorf("fw3 not as it was:\n%s\nwant:\n%s", after, before)
			}
		})
	}
}
