package firewall

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// NFTDNAT keeps kernel forwarding rules in natmap's own nftables table, for
// a Linux without OpenWrt's firewall:
//
//	table inet natmap {
//		chain prerouting {
//			type nat hook prerouting priority dstnat; policy accept;
//			ip daddr 10.77.0.2 tcp dport 8080 counter dnat ip to 10.78.0.2:80 comment "natmap-dnat:web#1a2b3c4d"
//		}
//	}
//
// The table is created with the first rule and deleted whole with the last.
// An accept in a table of its own cannot override another table's drop, so
// it has no forward chain: a host whose forward policy drops must accept
// the translated flows itself (ct status dnat).
type NFTDNAT struct{ run Exec }

// NewNFTDNAT returns the backend running nft through run.
func NewNFTDNAT(run Exec) *NFTDNAT { return &NFTDNAT{run: run} }

// NFTTable is natmap's own table (family inet).
const NFTTable = "natmap"

// Name is "nftables".
func (n *NFTDNAT) Name() string { return "nftables" }

func (n *NFTDNAT) rules(DNAT) int { return 1 }

// exists reports whether table inet natmap exists.
func (n *NFTDNAT) exists(ctx context.Context) (bool, error) {
	out, err := n.run(ctx, "nft", "-j", "list", "tables")
	if err != nil {
		return false, fmt.Errorf("nftables: %w", err)
	}
	objs, err := nftObjects(out)
	if err != nil {
		return false, fmt.Errorf("nftables: nft -j list tables: %w", err)
	}
	for _, o := range objs {
		var t struct{ Family, Name string }
		if raw, ok := o["table"]; ok && json.Unmarshal(raw, &t) == nil && t.Family == "inet" && t.Name == NFTTable {
			return true, nil
		}
	}
	return false, nil
}

func (n *NFTDNAT) list(ctx context.Context) ([]placed, error) {
	ok, err := n.exists(ctx)
	if err != nil || !ok {
		return nil, err
	}
	out, err := n.run(ctx, "nft", "-j", "list", "table", "inet", NFTTable)
	if err != nil {
		return nil, fmt.Errorf("nftables: list rules: %w", err)
	}
	ps, err := parseNFTDNAT(out, "inet", NFTTable)
	if err != nil {
		return nil, fmt.Errorf("nftables: nft -j list table inet %s: %w", NFTTable, err)
	}
	return ps, nil
}

// parseNFTDNAT reads the kernel forwarding rules of one table from nft's
// JSON listing.
func parseNFTDNAT(out []byte, family, table string) ([]placed, error) {
	objs, err := nftObjects(out)
	if err != nil {
		return nil, err
	}
	var ps []placed
	for _, o := range objs {
		raw, ok := o["rule"]
		if !ok {
			continue
		}
		var r struct {
			Family, Table, Chain, Comment string
			Handle                        uint64
		}
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, fmt.Errorf("rule %s: %w", raw, err)
		}
		if r.Family == family && r.Table == table && strings.HasPrefix(r.Comment, DNATTagPrefix) {
			ps = append(ps, placed{tag: r.Comment, chain: r.Chain, handle: r.Handle})
		}
	}
	return ps, nil
}

// nftDNATExpr is the translation of d in nft's syntax, after the match.
func nftDNATExpr(d DNAT) []string {
	ip := "ip"
	to := d.To.String()
	if d.ipv6() {
		ip = "ip6"
	}
	match := []string{ip, "daddr", d.Dst.Addr().String(), d.Proto, "dport", strconv.Itoa(int(d.Dst.Port())), "counter"}
	if d.redirect() {
		return append(match, "redirect", "to", ":"+strconv.Itoa(int(d.To.Port())))
	}
	return append(match, "dnat", ip, "to", to)
}

func (n *NFTDNAT) add(ctx context.Context, d DNAT) error {
	// add is a no-op for a table or chain that exists.
	if _, err := n.run(ctx, "nft", "add table inet "+NFTTable+"; add chain inet "+NFTTable+
		" prerouting { type nat hook prerouting priority -100; policy accept; }"); err != nil {
		return err
	}
	args := append([]string{"add", "rule", "inet", NFTTable, "prerouting"}, nftDNATExpr(d)...)
	// nft joins its arguments into one command: the comment needs its
	// quotes, and validate let none into it.
	args = append(args, "comment", `"`+d.tag()+`"`)
	_, err := n.run(ctx, "nft", args...)
	return err
}

func (n *NFTDNAT) remove(ctx context.Context, ps []placed) error {
	for _, p := range ps {
		if err := checkName("chain", p.chain, ""); err != nil {
			return fmt.Errorf("nftables: delete rule: %w", err)
		}
		if _, err := n.run(ctx, "nft", "delete", "rule", "inet", NFTTable, p.chain, "handle", strconv.FormatUint(p.handle, 10)); err != nil {
			return fmt.Errorf("nftables: delete rule %s: %w", p.tag, err)
		}
	}
	// The table goes with its last rule.
	left, err := n.list(ctx)
	if err != nil || len(left) > 0 {
		return err
	}
	if _, err := n.run(ctx, "nft", "delete", "table", "inet", NFTTable); err != nil {
		return fmt.Errorf("nftables: delete table inet %s: %w", NFTTable, err)
	}
	return nil
}
