package firewall

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/netns"
)

const dnatPort = 40100 // the bind port the DNAT tests forward from

// probeAt is probe to any address: what the wan side gets from dst.
func (r *router) probeAt(network string, dst netip.AddrPort) string {
	var got string
	err := netns.Do(r.wan, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		var d net.Dialer
		c, err := d.DialContext(ctx, network, dst.String())
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		if network == "udp" {
			if _, err := c.Write([]byte("ok")); err != nil {
				return err
			}
		}
		buf := make([]byte, 8)
		n, err := c.Read(buf)
		got = string(buf[:n])
		return err
	})
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return refused
	case err != nil:
		return err.Error()
	case got == "ok":
		return open
	}
	return fmt.Sprintf("unexpected reply %q", got)
}

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
