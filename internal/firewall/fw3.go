package firewall

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// FW3 is OpenWrt's iptables firewall. Rules go into chain
// zone_<zone>_input of the filter table, which fw3 ends with a jump to
// zone_<zone>_src_REJECT (or DROP, ACCEPT): just before that jump, so
// after the zone's user chain input_<zone>_rule and the rules of
// /etc/config/firewall (a drop of some sources to the same port still
// wins), as fw4's backend places them; with iptables for IPv4 and
// ip6tables for IPv6:
//
//	iptables -w -I zone_wan_input 5 -p tcp --dport 8080 -m comment --comment natmap:ssh -j ACCEPT
//
// List reads `iptables -w -S` (the filter table, in iptables-save's format,
// from the same command that changes it), and Delete turns a listed
// rule's "-A CHAIN ..." line into "-D CHAIN ...", so it removes exactly
// the rule that is there.
type FW3 struct{ run Exec }

// NewFW3 returns the fw3 backend running iptables and ip6tables through run.
func NewFW3(run Exec) *FW3 { return &FW3{run: run} }

// Name is "fw3".
func (f *FW3) Name() string { return "fw3" }

func (f *FW3) chain(zone string) string { return "zone_" + zone + "_input" }

func iptables(ipv6 bool) string {
	if ipv6 {
		return "ip6tables"
	}
	return "iptables"
}

// present reports whether iptables' filter table has a zone input chain.
func (f *FW3) present(ctx context.Context) (bool, error) {
	out, err := f.run(ctx, "iptables", "-w", "-S")
	if err != nil {
		return false, fmt.Errorf("fw3: %w", err)
	}
	for line := range strings.Lines(string(out)) {
		chain, ok := strings.CutPrefix(strings.TrimSpace(line), "-N ")
		if ok && strings.HasPrefix(chain, "zone_") && strings.HasSuffix(chain, "_input") {
			return true, nil
		}
	}
	return false, nil
}

// List returns natmap's rules in both families' filter tables.
func (f *FW3) List(ctx context.Context) ([]Rule, error) {
	var rules []Rule
	for _, ipv6 := range []bool{false, true} {
		out, err := f.run(ctx, iptables(ipv6), "-w", "-S")
		if err != nil {
			// A router built without IPv6 has no ip6tables, and so no
			// IPv6 rules.
			if ipv6 && errors.Is(err, exec.ErrNotFound) {
				continue
			}
			return nil, fmt.Errorf("fw3: list rules: %w", err)
		}
		rs, err := parseFW3(string(out), ipv6)
		if err != nil {
			return nil, fmt.Errorf("fw3: %s -S: %w", iptables(ipv6), err)
		}
		rules = append(rules, rs...)
	}
	return rules, nil
}

// Add inserts r into zone_<zone>_input just before its final jump (at
// its end when it has none).
func (f *FW3) Add(ctx context.Context, r Rule) error {
	if err := r.validate(); err != nil {
		return err
	}
	cmd, chain := iptables(r.IPv6), f.chain(r.Zone)
	out, err := f.run(ctx, cmd, "-w", "-S")
	if err != nil {
		return fmt.Errorf("fw3: add %s: %w", r, err)
	}
	if !hasChain(string(out), chain) {
		return fmt.Errorf("fw3: add %s: %w: %q (%s filter table has no chain %s)", r, ErrNoZone, r.Zone, cmd, chain)
	}
	where := []string{"-A", chain}
	if n := finalJump(string(out), chain, "zone_"+r.Zone+"_src_"); n > 0 {
		where = []string{"-I", chain, strconv.Itoa(n)}
	}
	args := append(append([]string{"-w"}, where...), "-p", r.Proto, "--dport", strconv.Itoa(int(r.Port)),
		"-m", "comment", "--comment", r.tag(), "-j", "ACCEPT")
	if _, err := f.run(ctx, cmd, args...); err != nil {
		return fmt.Errorf("fw3: add %s: %w", r, err)
	}
	return nil
}

// finalJump is the position (from 1) of chain's last rule in listing, an
// `iptables -S`, when that rule jumps to a chain named target...; else 0.
func finalJump(listing, chain, target string) int {
	n, last := 0, ""
	for line := range strings.Lines(listing) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "-A "+chain+" "); ok {
			n++
			last = rest
		}
	}
	if i := strings.LastIndex(last, "-j "); n > 0 && i >= 0 && strings.HasPrefix(last[i+len("-j "):], target) {
		return n
	}
	return 0
}

func hasChain(listing, chain string) bool {
	for line := range strings.Lines(listing) {
		if strings.TrimSpace(line) == "-N "+chain {
			return true
		}
	}
	return false
}

// Delete removes r by its rule line when r came from List, else every
// tagged rule Equal to r.
func (f *FW3) Delete(ctx context.Context, r Rule) error {
	if r.line != "" {
		return f.deleteLine(ctx, r)
	}
	have, err := f.List(ctx)
	if err != nil {
		return err
	}
	for _, h := range have {
		if h.Equal(r) {
			if err := f.deleteLine(ctx, h); err != nil {
				return err
			}
		}
	}
	return nil
}

func (f *FW3) deleteLine(ctx context.Context, r Rule) error {
	args, err := splitRule(r.line)
	if err != nil || len(args) < 2 || args[0] != "-A" {
		return fmt.Errorf("fw3: delete %s: cannot read rule %q", r, r.line)
	}
	args[0] = "-D"
	if _, err := f.run(ctx, iptables(r.IPv6), append([]string{"-w"}, args...)...); err != nil {
		return fmt.Errorf("fw3: delete %s: %w", r, err)
	}
	return nil
}

// parseFW3 reads natmap's rules from `iptables -S` output, whose rules read
//
//	-A zone_wan_input -p tcp -m tcp --dport 8080 -m comment --comment "natmap:ssh" -j ACCEPT
//
// A tagged rule not of that shape keeps an empty Proto or a zero Port, so
// it matches no wanted rule.
func parseFW3(out string, ipv6 bool) ([]Rule, error) {
	var rules []Rule
	for line := range strings.Lines(out) {
		line = strings.TrimRight(line, "\r\n")
		if !strings.HasPrefix(line, "-A ") || !strings.Contains(line, TagPrefix) {
			continue
		}
		args, err := splitRule(line)
		if err != nil {
			return nil, fmt.Errorf("rule %q: %w", line, err)
		}
		r := Rule{IPv6: ipv6, chain: args[1], line: line}
		tagged, target := false, ""
		for i := 2; i+1 < len(args); i++ {
			switch v := args[i+1]; args[i] {
			case "--comment":
				r.Section, tagged = strings.CutPrefix(v, TagPrefix)
			case "-p":
				r.Proto = v
			case "--dport":
				if p, err := strconv.ParseUint(v, 10, 16); err == nil {
					r.Port = uint16(p)
				}
			case "-j":
				target = v
			}
		}
		if !tagged {
			continue // the tag was in some other argument
		}
		if zone, ok := strings.CutPrefix(r.chain, "zone_"); ok {
			r.Zone, _ = strings.CutSuffix(zone, "_input")
			if r.Zone == zone {
				r.Zone = "" // not a zone input chain
			}
		}
		if target != "ACCEPT" || strings.Contains(line, " ! ") {
			r.Proto = ""
		}
		rules = append(rules, r)
	}
	return rules, nil
}

// splitRule splits a line of `iptables -S` into arguments: separated by
// spaces, with double-quoted arguments in which a backslash escapes the
// next byte (xtables_save_string).
func splitRule(line string) ([]string, error) {
	var args []string
	var cur strings.Builder
	inArg, quoted := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quoted && c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case c == '"':
			quoted, inArg = !quoted, true
		case c == ' ' && !quoted:
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteByte(c)
			inArg = true
		}
	}
	if quoted {
		return nil, errors.New("unterminated quote")
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args, nil
}
