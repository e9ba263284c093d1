package firewall

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
)

// Kernel forwarding (forward mode without the relay): new inbound flows to
// natmap's bind address and port are DNATed to the forward target, so the
// kernel forwards them and the target sees the client's own address.
// natmap's own flows from that port (keep-alive, STUN) are outbound, and
// their replies belong to them in conntrack: a nat chain only sees the first
// packet of a new flow, so they are never translated.
//
// A DNAT becomes one or more rules (the translation, and where a firewall
// drops what it does not accept, an accept for the translated flow), all
// carrying the comment "natmap-dnat:OWNER#HASH": OWNER is the daemon's
// section (or "pid:N" for a natmap started from the command line), HASH is
// a digest of everything the rules say. So a rule is identified by its
// comment alone, a changed DNAT (a new public port for -p 0) has a new
// comment, and a rule edited by hand stops matching only if its comment is
// edited too. The accept rules' "natmap:" tag is a different prefix: the
// two syncs never touch each other's rules.

// DNATTagPrefix starts the comment of every kernel forwarding rule.
const DNATTagPrefix = "natmap-dnat:"

// CLIOwnerPrefix starts the owner of a command-line natmap's rules: its pid
// follows.
const CLIOwnerPrefix = "pid:"

// DNAT forwards new inbound Proto flows to Dst (natmap's bind address and
// port) to To. A loopback To (127.0.0.1, ::1) redirects to the address the
// flow came in on, at To's port: a service on the router itself.
type DNAT struct {
	Owner string         // section name, or CLIOwnerPrefix+pid
	Zone  string         // fw4/fw3: the zone the flows come in from; unused by the nftables table
	Proto string         // tcp or udp
	Dst   netip.AddrPort // natmap's bind address and port
	To    netip.AddrPort // the target
	// Local: To is an address of this host, so the translated flow goes
	// to the input path instead of being forwarded (see TargetIsLocal).
	Local bool
}

func (d DNAT) String() string {
	return fmt.Sprintf("%s %s -> %s (%s)", d.Proto, d.Dst, d.To, d.Owner)
}

// tag is the comment of every rule of d.
func (d DNAT) tag() string {
	h := fnv.New32a()
	fmt.Fprintf(h, "%s|%s|%s|%s|%t", d.Zone, d.Proto, d.Dst, d.To, d.Local)
	return fmt.Sprintf("%s%s#%08x", DNATTagPrefix, d.Owner, h.Sum32())
}

func (d DNAT) ipv6() bool { return d.Dst.Addr().Is6() }

// redirect: the target is the host itself at a loopback address, which a
// DNAT cannot reach from outside (martian); a redirect reaches the same
// service through the address the flow came in on.
func (d DNAT) redirect() bool { return d.To.Addr().IsLoopback() }

// validate checks what goes into commands.
func (d DNAT) validate() error {
	owner, pid := strings.CutPrefix(d.Owner, CLIOwnerPrefix)
	if pid {
		if owner == "" || strings.Trim(owner, "0123456789") != "" {
			return fmt.Errorf("kernel forward %s: owner %q: want pid:NUMBER", d, d.Owner)
		}
	} else if err := checkName("section", d.Owner, "@[]"); err != nil {
		return err
	}
	if d.Zone != "" {
		if err := checkName("zone", d.Zone, ""); err != nil {
			return err
		}
	}
	if d.Proto != "tcp" && d.Proto != "udp" {
		return fmt.Errorf("kernel forward %s: protocol %q: want tcp or udp", d, d.Proto)
	}
	if !d.Dst.IsValid() || d.Dst.Port() == 0 || !d.To.IsValid() || d.To.Port() == 0 {
		return fmt.Errorf("kernel forward %s: want addresses with ports", d)
	}
	if d.Dst.Addr().Zone() != "" || d.To.Addr().Zone() != "" {
		return fmt.Errorf("kernel forward %s: scoped addresses are not supported", d)
	}
	if d.Dst.Addr().Is4In6() || d.To.Addr().Is4In6() || d.Dst.Addr().Is6() != d.To.Addr().Is6() {
		return fmt.Errorf("kernel forward %s: the target must be of the mapping's family", d)
	}
	return nil
}

// placed is a kernel forwarding rule as a backend found it: its comment
// and whatever the backend needs to delete exactly it.
type placed struct {
	tag    string
	table  string // fw3: the iptables table (nat or filter)
	chain  string
	handle uint64 // nftables
	line   string // iptables -S
	ipv6   bool
}

// DNATBackend installs kernel forwarding rules in one firewall. Its
// methods are called one at a time (SyncDNAT's caller serialises them).
type DNATBackend interface {
	// Name is "nftables", "fw4" or "fw3".
	Name() string
	// list returns every rule whose comment starts with DNATTagPrefix.
	list(ctx context.Context) ([]placed, error)
	// rules is how many rules add(d) makes: a DNAT with fewer present
	// is incomplete and made again.
	rules(d DNAT) int
	// add installs every rule of d.
	add(ctx context.Context, d DNAT) error
	// remove deletes rules found by list.
	remove(ctx context.Context, ps []placed) error
}

// tagOwner is the owner in a kernel forwarding rule's comment.
func tagOwner(tag string) string {
	s, _ := strings.CutPrefix(tag, DNATTagPrefix)
	owner, _, _ := strings.Cut(s, "#")
	return owner
}

// SyncDNAT makes the kernel forwarding rules of the owners in scope
// exactly want: it adds what is missing (a DNAT whose rules are not all
// there is made again), then removes every other rule of an owner in
// scope: changed DNATs, stopped owners, duplicates and what a crashed
// natmap left. Rules of owners out of scope (another natmap) are left
// alone. It goes on past a failure and returns them all; an invalid DNAT
// in want is an error before anything changes.
func SyncDNAT(ctx context.Context, b DNATBackend, scope func(owner string) bool, want []DNAT) error {
	wanted := map[string]DNAT{}
	for _, d := range want {
		if err := d.validate(); err != nil {
			return err
		}
		if !scope(d.Owner) {
			return fmt.Errorf("kernel forward %s: owner out of scope", d)
		}
		wanted[d.tag()] = d
	}
	have, err := b.list(ctx)
	if err != nil {
		return err
	}
	byTag := map[string][]placed{}
	for _, p := range have {
		if scope(tagOwner(p.tag)) {
			byTag[p.tag] = append(byTag[p.tag], p)
		}
	}
	var errs []error
	var stale []placed
	for tag, ps := range byTag {
		if d, ok := wanted[tag]; !ok || len(ps) != b.rules(d) {
			stale = append(stale, ps...)
		}
	}
	// Remove the incomplete ones before adding them again; the rest after
	// adding, so that a DNAT that changed is never missing for a moment.
	var incomplete, rest []placed
	for _, p := range stale {
		if _, ok := wanted[p.tag]; ok {
			incomplete = append(incomplete, p)
		} else {
			rest = append(rest, p)
		}
	}
	if len(incomplete) > 0 {
		if err := b.remove(ctx, incomplete); err != nil {
			errs = append(errs, err)
		}
	}
	tags := make([]string, 0, len(wanted))
	for tag := range wanted {
		tags = append(tags, tag)
	}
	slices.Sort(tags) // a stable order, for logs and tests
	for _, tag := range tags {
		d := wanted[tag]
		if ps, ok := byTag[tag]; ok && len(ps) == b.rules(d) {
			continue
		}
		if err := b.add(ctx, d); err != nil {
			errs = append(errs, fmt.Errorf("%s: add %s: %w", b.Name(), d, err))
		}
	}
	if len(rest) > 0 {
		if err := b.remove(ctx, rest); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// CLIScope is the scope of the command-line natmap with process id pid:
// its own rules, and those of command-line natmaps that are gone (a crash
// leaves its rules behind). Other running natmaps' rules are theirs.
func CLIScope(pid int) func(owner string) bool {
	own := fmt.Sprintf("%s%d", CLIOwnerPrefix, pid)
	return func(owner string) bool {
		if owner == own {
			return true
		}
		p, ok := strings.CutPrefix(owner, CLIOwnerPrefix)
		if !ok {
			return false
		}
		_, err := os.Stat("/proc/" + p)
		return errors.Is(err, os.ErrNotExist)
	}
}

// DaemonScope is the daemon's scope: every section's rules (any owner but
// a command-line natmap's).
func DaemonScope(owner string) bool { return !strings.HasPrefix(owner, CLIOwnerPrefix) }

// DetectDNAT finds where kernel forwarding rules go: fw4's table when fw4
// runs, fw3's iptables chains when fw3 runs, else natmap's own nftables
// table when nft works. The error says why none is usable.
func DetectDNAT(ctx context.Context, run Exec) (DNATBackend, error) {
	if b, err := Detect(ctx, run); err == nil {
		if b.Name() == "fw4" {
			return NewFW4DNAT(run), nil
		}
		return NewFW3DNAT(run), nil
	}
	if _, err := run(ctx, "nft", "list", "tables"); err != nil {
		return nil, fmt.Errorf("no usable nftables: %w", err)
	}
	return NewNFTDNAT(run), nil
}

// TargetIsLocal reports whether a is an address of this host (loopback
// included): the translated flows then go to the input path.
func TargetIsLocal(a netip.Addr) (bool, error) {
	if a.IsLoopback() {
		return true, nil
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false, fmt.Errorf("list local addresses: %w", err)
	}
	for _, ia := range addrs {
		if n, ok := ia.(*net.IPNet); ok {
			if la, ok := netip.AddrFromSlice(n.IP); ok && la.Unmap() == a {
				return true, nil
			}
		}
	}
	return false, nil
}

// CheckForwarding reports why the kernel would not forward to a target on
// another host: forwarding is off for the family (net.ipv4.ip_forward,
// net.ipv6.conf.all.forwarding).
func CheckForwarding(ipv6 bool) error {
	path := "/proc/sys/net/ipv4/ip_forward"
	if ipv6 {
		path = "/proc/sys/net/ipv6/conf/all/forwarding"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if strings.TrimSpace(string(b)) != "1" {
		return fmt.Errorf("the kernel does not forward (%s is %s)", path, strings.TrimSpace(string(b)))
	}
	return nil
}

// KernelTarget resolves a forward target (-t, forward_target) for kernel
// forwarding: an address of the mapping's family (a DNAT cannot change the
// family, as the relay can), whether it is this host's own, and, for
// another host, whether the kernel forwards at all.
func KernelTarget(ctx context.Context, host string, ipv6 bool) (netip.Addr, bool, error) {
	network := "ip4"
	if ipv6 {
		network = "ip6"
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, network, host)
	if err == nil && len(ips) == 0 {
		err = errors.New("no address")
	}
	if err != nil {
		return netip.Addr{}, false, fmt.Errorf("forward target %s: no %s address: %w", host, map[bool]string{false: "IPv4", true: "IPv6"}[ipv6], err)
	}
	target := ips[0].Unmap()
	local, err := TargetIsLocal(target)
	if err != nil {
		return netip.Addr{}, false, err
	}
	if !local {
		if err := CheckForwarding(ipv6); err != nil {
			return netip.Addr{}, false, fmt.Errorf("forward target %s is another host, but %w", host, err)
		}
	}
	return target, local, nil
}

// NeedsZone reports whether b's rules go into a firewall zone's chains
// (fw4, fw3): DNAT.Zone must then be set.
func NeedsZone(b DNATBackend) bool { return b.Name() != "nftables" }

// DefaultZone is the zone of a mapping without an interface: it follows
// the default route, so the first WAN zone of the firewall config at
// configPath, "wan" when there is one.
func DefaultZone(configPath string) (string, error) {
	zones, err := WANZones(configPath)
	if err != nil {
		return "", err
	}
	if len(zones) == 0 {
		return "", fmt.Errorf("%s has no WAN zone", configPath)
	}
	if slices.Contains(zones, "wan") {
		return "wan", nil
	}
	return zones[0], nil
}
