package firewall

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/testkit/owlab"
)

// shellQuote makes a command line for the lab's /bin/sh.
func shellQuote(name string, args []string) string {
	parts := []string{name}
	for _, a := range args {
		parts = append(parts, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
	}
	return strings.Join(parts, " ")
}

// On OpenWrt's real userspace, with the ruleset fw4 itself generates from
// the default config: the kernel forwarding rules land in fw4's table (the
// dstnat chain, the wan zone's forward and input chains), a `fw4 reload`
// drops them and a sync puts them back, and a sync without them leaves
// fw4's own ruleset as it was.
func TestFW4DNATOnOpenWrt(t *testing.T) {
	l := owlab.Start(t, owlab.Options{})
	run := func(ctx context.Context, name string, args ...string) ([]byte, error) {
		out, err := l.Exec(nil, shellQuote(name, args))
		return []byte(out), err
	}
	l.WaitSh(30*time.Second, "nft list chain inet fw4 forward_wan")
	before := l.Sh("nft -s list table inet fw4")
	ctx := context.Background()
	b, err := DetectDNAT(ctx, run)
	must(t, err)
	if b.Name() != "fw4" {
		t.Fatalf("detected %s, want fw4", b.Name())
	}
	wan := netip.MustParseAddr("192.0.2.2")
	want := []DNAT{
		{Owner: "web", Zone: "wan", Proto: "tcp", Dst: netip.AddrPortFrom(wan, 40100), To: netip.MustParseAddrPort("192.168.1.10:80")},
		{Owner: "router", Zone: "wan", Proto: "udp", Dst: netip.AddrPortFrom(wan, 40101), To: netip.MustParseAddrPort("192.168.1.1:53"), Local: true},
	}
	check := func(when string) {
		t.Helper()
		for chain, owner := range map[string]string{"dstnat": "", "forward_wan": "web", "input_wan": "router"} {
			c := l.Sh("nft list chain inet fw4 " + chain)
			for _, d := range want {
				in := strings.Contains(c, `comment "`+d.tag()+`"`)
				if wantIn := owner == "" || owner == d.Owner; in != wantIn {
					t.Errorf("%s: chain %s: rule of %s there: %v, want %v:\n%s", when, chain, d.Owner, in, wantIn, c)
				}
			}
		}
	}
	must(t, SyncDNAT(ctx, b, DaemonScope, want))
	check("after the sync")

	l.Sh("fw4 reload")
	if strings.Contains(l.Sh("nft list table inet fw4"), DNATTagPrefix) {
		t.Fatal("rules survived fw4 reload")
	}
	must(t, SyncDNAT(ctx, b, DaemonScope, want))
	check("after fw4 reload and a sync")

	must(t, SyncDNAT(ctx, b, DaemonScope, nil))
	if after := l.Sh("nft -s list table inet fw4"); after != before {
		t.Errorf("fw4's table not as it was:\n%s\nwant:\n%s", after, before)
	}
}
