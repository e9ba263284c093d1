// Package firewall opens natmap's ports in the router's own firewall:
// accept rules for inbound TCP/UDP to a port, from one firewall zone, that
// the daemon adds and removes by itself.
//
// OpenWrt has two firewalls, and both reject what no rule of a zone accepts,
// so the rules go into the zone's own input chain, before its final jump to
// the reject: an accept anywhere else (another nftables table, the INPUT
// chain after the zone jump) would not override the zone's verdict.
//
//   - fw4 (nftables, OpenWrt 22.03 and later): chain input_<zone> of
//     table inet fw4, after the user's rules. See FW4.
//   - fw3 (iptables, OpenWrt 21.02 and earlier): the top of chain
//     zone_<zone>_input of the filter table, with iptables or ip6tables by
//     family. See FW3.
//
// Every rule carries the comment "natmap:<section>". That tag is how List
// finds natmap's rules, including those a crashed daemon left behind; no
// other rule is ever touched. Commands run with argv, never a shell.
//
// A firewall reload (fw4 reload, fw3 restart) rebuilds the zone chains
// without natmap's rules: the daemon calls Sync again after one.
package firewall

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// TagPrefix starts the comment of every rule natmap adds.
const TagPrefix = "natmap:"

var (
	// ErrNoFirewall: neither fw4 nor fw3 is running (see Detect).
	ErrNoFirewall = errors.New("no OpenWrt firewall (fw4 or fw3) found")
	// ErrNoZone: the zone's input chain does not exist, so the zone is not
	// in the running firewall (a typo, or a zone of another family).
	ErrNoZone = errors.New("firewall zone not found")
)

// Rule accepts inbound Proto traffic to Port from Zone, for IPv4 or IPv6.
// Rules from List also remember where they are (the nftables handle or the
// iptables rule), so that Delete removes exactly that rule; compare rules
// with Equal, which ignores that.
type Rule struct {
	Section string // natmap section, as uci shows it: a name or @natmap[0]; tags the rule
	Zone    string // firewall zone name, e.g. wan
	Proto   string // tcp or udp
	Port    uint16
	IPv6    bool

	// Set by List: the chain the rule is in, and its fw4 handle or its fw3
	// rule line (iptables -S). Comparable, so Rule stays a map key.
	chain  string
	handle uint64
	line   string
}

// Equal reports whether r and o are the same rule, wherever they are.
func (r Rule) Equal(o Rule) bool { return r.key() == o.key() }

// key is r without its location, for comparisons.
func (r Rule) key() Rule {
	return Rule{Section: r.Section, Zone: r.Zone, Proto: r.Proto, Port: r.Port, IPv6: r.IPv6}
}

func (r Rule) family() string {
	if r.IPv6 {
		return "ipv6"
	}
	return "ipv4"
}

func (r Rule) tag() string { return TagPrefix + r.Section }

func (r Rule) String() string {
	return fmt.Sprintf("%s %s/%d from zone %s (%s)", r.family(), r.Proto, r.Port, r.Zone, r.tag())
}

// validate checks what goes into commands. Sections and zones come from
// config files: only these characters, so that nothing in them can be read
// as nft syntax or an iptables option.
func (r Rule) validate() error {
	if err := checkName("section", r.Section, "@[]"); err != nil {
		return err
	}
	// Zones are chain names: nft's identifier characters, no '@' or '['.
	if err := checkName("zone", r.Zone, ""); err != nil {
		return err
	}
	if r.Proto != "tcp" && r.Proto != "udp" {
		return fmt.Errorf("firewall rule %s: protocol %q: want tcp or udp", r, r.Proto)
	}
	if r.Port == 0 {
		return fmt.Errorf("firewall rule %s: port 0", r)
	}
	return nil
}

// maxName keeps the tag within nftables' 128-byte comment limit and the
// chain names well within their limits.
const maxName = 64

func checkName(what, s, extra string) error {
	if s == "" {
		return fmt.Errorf("firewall: empty %s name", what)
	}
	if len(s) > maxName {
		return fmt.Errorf("firewall: %s name %q: longer than %d bytes", what, s, maxName)
	}
	for _, c := range s {
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.ContainsRune("_.-"+extra, c)
		if !ok {
			return fmt.Errorf("firewall: %s name %q: character %q not allowed (only letters, digits and _.-%s)", what, s, c, extra)
		}
	}
	return nil
}

// Backend is one firewall. Its methods are safe to call one at a time; the
// daemon serialises them (Sync reads, then changes).
type Backend interface {
	// Name is "fw4" or "fw3".
	Name() string
	// List returns every rule tagged by natmap, in every chain, as it is:
	// a tagged rule that natmap would not have written that way (edited
	// by hand, say) comes back with what could be read of it, so it
	// matches no wanted rule and Sync removes it.
	List(ctx context.Context) ([]Rule, error)
	// Add puts r into its zone's input chain, after the rules already
	// there (the user's), before the zone's final verdict. A missing
	// chain is an error wrapping ErrNoZone.
	Add(ctx context.Context, r Rule) error
	// Delete removes r: exactly that rule when r came from List, else
	// every tagged rule Equal to r (none is not an error).
	Delete(ctx context.Context, r Rule) error
}

// Exec runs a command (nft, iptables, ip6tables) with argv and returns its
// standard output. A failure must be an error that names the command and
// says what it printed. Command is the real one; tests wrap it in
// "ip netns exec NS".
type Exec func(ctx context.Context, name string, args ...string) ([]byte, error)

// Command runs name with args directly (no shell) and returns its standard
// output; on failure the error has the command line and its standard error.
func Command(ctx context.Context, name string, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		return stdout.Bytes(), fmt.Errorf("%s: %w: %s", cmdLine(name, args), err, msg)
	}
	return stdout.Bytes(), nil
}

// cmdLine shows a command for messages, quoting arguments that need it.
func cmdLine(name string, args []string) string {
	parts := []string{name}
	for _, a := range args {
		switch {
		case strings.ContainsRune(a, '\''):
			a = fmt.Sprintf("%q", a)
		case a == "" || strings.ContainsAny(a, " \t\"\\"):
			a = "'" + a + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// Detect finds the running firewall: fw4 when table inet fw4 exists, else
// fw3 when iptables' filter table has a zone_*_input chain, else an error
// wrapping ErrNoFirewall (with why each check failed, when one did).
func Detect(ctx context.Context, run Exec) (Backend, error) {
	var why []error
	fw4 := NewFW4(run)
	switch ok, err := fw4.present(ctx); {
	case ok:
		return fw4, nil
	case err != nil:
		why = append(why, err)
	}
	fw3 := NewFW3(run)
	switch ok, err := fw3.present(ctx); {
	case ok:
		return fw3, nil
	case err != nil:
		why = append(why, err)
	}
	if len(why) == 0 {
		return nil, ErrNoFirewall
	}
	return nil, fmt.Errorf("%w: %w", ErrNoFirewall, errors.Join(why...))
}

// Sync makes natmap's tagged rules exactly want: it adds the wanted rules
// that are missing (once each, whatever want repeats), then deletes every
// other tagged rule: duplicates, rules of sections no longer wanted, and
// rules left by a daemon that crashed. Adding first means a rule that stays
// wanted is never missing for a moment. Each rule is on its own: it goes on
// past a rule that is invalid or that it cannot add or delete, and returns
// every failure; a wanted rule's failure is a *RuleError (see
// SectionErrors).
func Sync(ctx context.Context, b Backend, want []Rule) error {
	var errs []error
	wanted := map[Rule]bool{}
	valid := want[:0:0]
	for _, r := range want {
		if err := r.validate(); err != nil {
			errs = append(errs, &RuleError{Rule: r.key(), Err: err})
			continue
		}
		wanted[r.key()] = true
		valid = append(valid, r)
	}
	have, err := b.List(ctx)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	present := map[Rule]bool{}
	var extra []Rule
	for _, r := range have {
		if k := r.key(); wanted[k] && !present[k] {
			present[k] = true
		} else {
			extra = append(extra, r)
		}
	}
	for _, r := range valid {
		if k := r.key(); !present[k] {
			present[k] = true
			if err := b.Add(ctx, k); err != nil {
				errs = append(errs, &RuleError{Rule: k, Err: err})
			}
		}
	}
	for _, r := range extra {
		if err := b.Delete(ctx, r); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// RuleError is a wanted rule that Sync could not put in place: invalid, or
// its command failed.
type RuleError struct {
	Rule Rule
	Err  error
}

func (e *RuleError) Error() string { return e.Err.Error() }
func (e *RuleError) Unwrap() error { return e.Err }

// SectionErrors sorts an error from Sync into the failures of each
// section's wanted rules and the rest (listing, deleting).
func SectionErrors(err error) (bySection map[string]error, other error) {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	var rest []error
	for _, e := range errs {
		var re *RuleError
		if errors.As(e, &re) {
			if bySection == nil {
				bySection = map[string]error{}
			}
			bySection[re.Rule.Section] = errors.Join(bySection[re.Rule.Section], re)
			continue
		}
		rest = append(rest, e)
	}
	return bySection, errors.Join(rest...)
}
