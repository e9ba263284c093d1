package firewall

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// FW3DNAT keeps kernel forwarding rules in fw3's iptables chains: a DNAT
// at the top of the nat table's zone_<zone>_prerouting (which fw3 makes
// only for a zone with port forwards, else PREROUTING itself), and an
// accept for the translated flows at the top of the filter table's
// zone_<zone>_forward (zone_<zone>_input for a target on the router
// itself), ahead of the zone's reject; iptables for IPv4, ip6tables for
// IPv6:
//
//	iptables -w -t nat -I PREROUTING 1 -d 100.64.0.2/32 -p tcp --dport 8080 -m comment --comment natmap-dnat:web#1a2b3c4d -j DNAT --to-destination 192.168.1.10:80
//	iptables -w -I zone_wan_forward 1 -p tcp -m conntrack --ctstate DNAT --ctorigdst 100.64.0.2 --ctorigdstport 8080 -m comment --comment natmap-dnat:web#1a2b3c4d -j ACCEPT
type FW3DNAT struct{ run Exec }

// NewFW3DNAT returns the backend running iptables and ip6tables through run.
func NewFW3DNAT(run Exec) *FW3DNAT { return &FW3DNAT{run: run} }

// Name is "fw3".
func (f *FW3DNAT) Name() string { return "fw3" }

func (f *FW3DNAT) rules(DNAT) int { return 2 }

// listing is `iptables -w -t TABLE -S` of one family.
func (f *FW3DNAT) listing(ctx context.Context, ipv6 bool, table string) (string, error) {
	out, err := f.run(ctx, iptables(ipv6), "-w", "-t", table, "-S")
	if err != nil {
		return "", fmt.Errorf("fw3: list %s rules: %w", table, err)
	}
	return string(out), nil
}

func (f *FW3DNAT) list(ctx context.Context) ([]placed, error) {
	var ps []placed
	for _, ipv6 := range []bool{false, true} {
		for _, table := range []string{"nat", "filter"} {
			out, err := f.listing(ctx, ipv6, table)
			if err != nil {
				// No ip6tables (a router without IPv6), or no IPv6 NAT
				// in the kernel: no IPv6 rules there.
				if ipv6 {
					continue
				}
				return nil, err
			}
			got, err := parseFW3DNAT(out, table, ipv6)
			if err != nil {
				return nil, fmt.Errorf("fw3: %s -t %s -S: %w", iptables(ipv6), table, err)
			}
			ps = append(ps, got...)
		}
	}
	return ps, nil
}

// parseFW3DNAT reads the kernel forwarding rules from `iptables -S`.
func parseFW3DNAT(out, table string, ipv6 bool) ([]placed, error) {
	var ps []placed
	for line := range strings.Lines(out) {
		line = strings.TrimRight(line, "\r\n")
		if !strings.HasPrefix(line, "-A ") || !strings.Contains(line, DNATTagPrefix) {
			continue
		}
		args, err := splitRule(line)
		if err != nil {
			return nil, fmt.Errorf("rule %q: %w", line, err)
		}
		for i := 2; i+1 < len(args); i++ {
			if args[i] == "--comment" && strings.HasPrefix(args[i+1], DNATTagPrefix) {
				ps = append(ps, placed{tag: args[i+1], table: table, chain: args[1], line: line, ipv6: ipv6})
				break
			}
		}
	}
	return ps, nil
}

func (f *FW3DNAT) add(ctx context.Context, d DNAT) error {
	if d.Zone == "" {
		return errors.New("no firewall zone for the rules")
	}
	cmd, prefix := iptables(d.ipv6()), "/32"
	if d.ipv6() {
		prefix = "/128"
	}
	nat, err := f.listing(ctx, d.ipv6(), "nat")
	if err != nil {
		return err
	}
	filter, err := f.listing(ctx, d.ipv6(), "filter")
	if err != nil {
		return err
	}
	natChain := "zone_" + d.Zone + "_prerouting"
	if !hasChain(nat, natChain) {
		natChain = "PREROUTING"
	}
	acceptChain := "zone_" + d.Zone + "_forward"
	if d.Local {
		acceptChain = "zone_" + d.Zone + "_input"
	}
	if !hasChain(filter, acceptChain) {
		return fmt.Errorf("%w: %q (%s filter table has no chain %s)", ErrNoZone, d.Zone, cmd, acceptChain)
	}
	port := strconv.Itoa(int(d.Dst.Port()))
	tag := []string{"-m", "comment", "--comment", d.tag()}
	// The accept first: a translated flow must never meet the zone's
	// reject.
	accept := append([]string{"-w", "-I", acceptChain, "1", "-p", d.Proto, "-m", "conntrack", "--ctstate", "DNAT",
		"--ctorigdst", d.Dst.Addr().String(), "--ctorigdstport", port}, tag...)
	if _, err := f.run(ctx, cmd, append(accept, "-j", "ACCEPT")...); err != nil {
		return err
	}
	dnat := append([]string{"-w", "-t", "nat", "-I", natChain, "1", "-d", d.Dst.Addr().String() + prefix,
		"-p", d.Proto, "--dport", port}, tag...)
	if d.redirect() {
		dnat = append(dnat, "-j", "REDIRECT", "--to-ports", strconv.Itoa(int(d.To.Port())))
	} else {
		dnat = append(dnat, "-j", "DNAT", "--to-destination", d.To.String())
	}
	_, err = f.run(ctx, cmd, dnat...)
	return err
}

func (f *FW3DNAT) remove(ctx context.Context, ps []placed) error {
	for _, p := range ps {
		args, err := splitRule(p.line)
		if err != nil || len(args) < 2 || args[0] != "-A" {
			return fmt.Errorf("fw3: delete %s: cannot read rule %q", p.tag, p.line)
		}
		args[0] = "-D"
		_, err = f.run(ctx, iptables(p.ipv6), append([]string{"-w", "-t", p.table}, args...)...)
		if err != nil && !errors.Is(err, exec.ErrNotFound) {
			return fmt.Errorf("fw3: delete %s: %w", p.tag, err)
		}
	}
	return nil
}
