package firewall

import (
	"strings"
	"testing"
)

// The listings natmap reads its kernel forwarding rules back from: any
// output of nft or iptables is either read or an error, never a panic, and
// only comments with natmap's prefix come back.
func FuzzParseDNATListings(f *testing.F) {
	f.Add(`{"nftables": [{"rule": {"family": "inet", "table": "natmap", "chain": "prerouting", "handle": 2, "comment": "natmap-dnat:web#0a1b2c3d", "expr": []}}]}`)
	f.Add(`{"nftables": [{"rule": {"family": "inet", "table": "fw4", "chain": "dstnat", "handle": 7, "comment": "other"}}]}`)
	f.Add("-P PREROUTING ACCEPT\n-A PREROUTING -d 192.0.2.1/32 -p tcp -m tcp --dport 8080 -m comment --comment \"natmap-dnat:web#0a1b2c3d\" -j DNAT --to-destination 10.0.0.2:80\n")
	f.Add("-A zone_wan_forward -m comment --comment \"natmap-dnat:x\\\"y#1\" -j ACCEPT\n-A x \"unterminated natmap-dnat:\n")
	f.Fuzz(func(t *testing.T, out string) {
		ps, err := parseNFTDNAT([]byte(out), "inet", NFTTable)
		if err == nil {
			for _, p := range ps {
				if !strings.HasPrefix(p.tag, DNATTagPrefix) {
					t.Fatalf("nft: read %q", p.tag)
				}
			}
		}
		ps, err = parseFW3DNAT(out, "nat", false)
		if err == nil {
			for _, p := range ps {
				if !strings.HasPrefix(p.tag, DNATTagPrefix) || !strings.HasPrefix(p.line, "-A ") {
					t.Fatalf("iptables: read %+v", p)
				}
			}
		}
	})
}

func TestParseFW3DNAT(t *testing.T) {
	out := `-P PREROUTING ACCEPT
-A PREROUTING -m comment --comment "!fw3: Custom prerouting rule chain" -j prerouting_rule
-A PREROUTING -d 192.0.2.1/32 -p tcp -m tcp --dport 8080 -m comment --comment "natmap-dnat:@natmap[0]#0a1b2c3d" -j DNAT --to-destination 10.0.0.2:80
-A PREROUTING -m comment --comment "someone else mentions natmap-dnat:" -j ACCEPT
`
	ps, err := parseFW3DNAT(out, "nat", true)
	if err != nil || len(ps) != 1 {
		t.Fatalf("%+v, %v", ps, err)
	}
	if p := ps[0]; p.tag != "natmap-dnat:@natmap[0]#0a1b2c3d" || p.chain != "PREROUTING" || p.table != "nat" || !p.ipv6 || tagOwner(p.tag) != "@natmap[0]" {
		t.Fatalf("%+v", p)
	}
}
