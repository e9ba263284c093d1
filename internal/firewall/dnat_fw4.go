package firewall

import (
	"context"
	"fmt"
	"strconv"
)

// FW4DNAT keeps kernel forwarding rules inside fw4's own table, where they
// count: a DNAT at the top of the zone's dstnat chain (dstnat_<zone>, which
// fw4 makes only for a zone with port forwards, else its dstnat base
// chain), and an accept for the translated flows at the top of the zone's
// forward_<zone> chain (input_<zone> for a target on the router itself),
// ahead of the zone's reject:
//
//	nft insert rule inet fw4 dstnat ip daddr 100.64.0.2 tcp dport 8080 counter dnat ip to 192.168.1.10:80 comment "natmap-dnat:web#1a2b3c4d"
//	nft insert rule inet fw4 forward_wan meta nfproto ipv4 meta l4proto tcp ct original ip daddr 100.64.0.2 ct original proto-dst 8080 ct status dnat counter accept comment "natmap-dnat:web#1a2b3c4d"
//
// The accept matches only flows that were sent to natmap's address and port
// and translated. fw4 rebuilds its table on every reload: the firewall
// include then runs `natmap firewall-sync`, which puts them back.
type FW4DNAT struct{ run Exec }

// NewFW4DNAT returns the backend running nft through run.
func NewFW4DNAT(run Exec) *FW4DNAT { return &FW4DNAT{run: run} }

// Name is "fw4".
func (f *FW4DNAT) Name() string { return "fw4" }

func (f *FW4DNAT) rules(DNAT) int { return 2 }

func (f *FW4DNAT) read(ctx context.Context) ([]placed, map[string]bool, error) {
	out, err := f.run(ctx, "nft", "-j", "list", "table", "inet", "fw4")
	if err != nil {
		return nil, nil, fmt.Errorf("fw4: list rules: %w", err)
	}
	ps, err := parseNFTDNAT(out, "inet", "fw4")
	if err == nil {
		var jumps map[string]uint64 // the chains, with their final jumps
		_, jumps, err = parseFW4(out)
		if err == nil {
			chains := make(map[string]bool, len(jumps))
			for c := range jumps {
				chains[c] = true
			}
			return ps, chains, nil
		}
	}
	return nil, nil, fmt.Errorf("fw4: nft -j list table inet fw4: %w", err)
}

func (f *FW4DNAT) list(ctx context.Context) ([]placed, error) {
	ps, _, err := f.read(ctx)
	return ps, err
}

// acceptExpr matches d's translated flows, in nft's syntax.
func acceptExpr(d DNAT) []string {
	family, ip := "ipv4", "ip"
	if d.ipv6() {
		family, ip = "ipv6", "ip6"
	}
	return []string{"meta", "nfproto", family, "meta", "l4proto", d.Proto,
		"ct", "original", ip, "daddr", d.Dst.Addr().String(), "ct", "original", "proto-dst", strconv.Itoa(int(d.Dst.Port())),
		"ct", "status", "dnat", "counter", "accept"}
}

func (f *FW4DNAT) add(ctx context.Context, d DNAT) error {
	if d.Zone == "" {
		return fmt.Errorf("no firewall zone for the rules")
	}
	_, chains, err := f.read(ctx)
	if err != nil {
		return err
	}
	natChain := "dstnat_" + d.Zone
	if !chains[natChain] {
		natChain = "dstnat"
	}
	acceptChain := "forward_" + d.Zone
	if d.Local {
		acceptChain = "input_" + d.Zone
	}
	for _, c := range []string{natChain, acceptChain} {
		if !chains[c] {
			return fmt.Errorf("%w: %q (table inet fw4 has no chain %s)", ErrNoZone, d.Zone, c)
		}
	}
	tag := []string{"comment", `"` + d.tag() + `"`}
	// The accept first: a translated flow must never meet the zone's
	// reject.
	accept := append(append([]string{"insert", "rule", "inet", "fw4", acceptChain}, acceptExpr(d)...), tag...)
	if _, err := f.run(ctx, "nft", accept...); err != nil {
		return err
	}
	dnat := append(append([]string{"insert", "rule", "inet", "fw4", natChain}, nftDNATExpr(d)...), tag...)
	_, err = f.run(ctx, "nft", dnat...)
	return err
}

func (f *FW4DNAT) remove(ctx context.Context, ps []placed) error {
	for _, p := range ps {
		if err := checkName("chain", p.chain, ""); err != nil {
			return fmt.Errorf("fw4: delete rule: %w", err)
		}
		if _, err := f.run(ctx, "nft", "delete", "rule", "inet", "fw4", p.chain, "handle", strconv.FormatUint(p.handle, 10)); err != nil {
			return fmt.Errorf("fw4: delete rule %s: %w", p.tag, err)
		}
	}
	return nil
}
