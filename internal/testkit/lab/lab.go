// Package lab builds a small, throw-away internet out of Linux network
// namespaces so end-to-end tests can prove with real packets that natmap
// works behind a NAT.
//
// Every Lab has three namespaces joined by veth pairs:
//
//	lan  (10.77.0.2)     --lan0--  nat (10.77.0.1     | 198.51.100.1)     --wan0--  inet (198.51.100.x)
//	     (2001:db8:77::2)              (2001:db8:77::1 | 2001:db8:100::1)                (2001:db8:100::x)
//
// Every link is dual stack. The nat namespace runs an nftables NAT of the
// selected Kind, for IPv4 and (as NAT66, with the same behaviour) for IPv6.
// The inet namespace hosts two coturn STUN servers, a keep-alive HTTP server
// and an outside client address, each with an IPv4 and an IPv6 address; the
// first STUN server has a second address of each family for RFC 5780 NAT
// behaviour discovery (see Lab.STUNAlt). The root namespace gets no routes
// to any of it, so no lab traffic can leave the machine; all addresses are
// from documentation ranges.
//
// Labs need root, ip (iproute2), nft (nftables) and turnserver (coturn); see
// Require.
package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/testkit/coturn"
	"github.com/natmap-go/natmap/internal/testkit/netns"
	"golang.org/x/sys/unix"
)

// Kind selects the behaviour of the lab's NAT.
type Kind int

const (
	// FullConePreserve maps endpoint-independently, filters
	// endpoint-independently and keeps the private port as public port.
	FullConePreserve Kind = iota
	// FullConeTranslate is FullConePreserve with a random public port
	// (20000-29999) per private ip:port.
	FullConeTranslate
	// Symmetric gives every new connection its own random public port and
	// drops all unsolicited inbound traffic.
	Symmetric
	// RestrictedCone maps like FullConePreserve (endpoint-independent,
	// keeping the private port) but filters address-dependently: an
	// inbound packet reaches the lan only if the private ip:port has sent
	// something to the packet's source address (any port) within the
	// mapping timeout. A restricted cone NAT in RFC 3489's terms.
	RestrictedCone
)

func (k Kind) String() string {
	switch k {
	case FullConePreserve:
		return "FullConePreserve"
	case FullConeTranslate:
		return "FullConeTranslate"
	case Symmetric:
		return "Symmetric"
	case RestrictedCone:
		return "RestrictedCone"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Fixed addressing. Every lab lives in its own namespaces, so all labs can
// share these (documentation/test ranges only).
var (
	lanAddr    = netip.MustParseAddr("10.77.0.2")
	natLANAddr = netip.MustParseAddr("10.77.0.1")
	publicAddr = netip.MustParseAddr("198.51.100.1")
	stunAddrs  = []netip.AddrPort{
		netip.MustParseAddrPort("198.51.100.11:3478"),
		netip.MustParseAddrPort("198.51.100.12:3478"),
	}
	// STUN server 0's other address and its alternate port (coturn's
	// default: the listening port plus one).
	stunAltAddr = netip.MustParseAddrPort("198.51.100.13:3479")
	httpAddr    = netip.MustParseAddrPort("198.51.100.20:80")
	clientAddr  = netip.MustParseAddr("198.51.100.30")

	// IPv6 mirrors IPv4 inside 2001:db8::/32: the lan link is
	// 2001:db8:77::/64 (for 10.77.0.0/24), the wan link 2001:db8:100::/64
	// (for 198.51.100.0/24), with the same host numbers.
	lanAddr6    = netip.MustParseAddr("2001:db8:77::2")
	natLANAddr6 = netip.MustParseAddr("2001:db8:77::1")
	publicAddr6 = netip.MustParseAddr("2001:db8:100::1")
	stunAddrs6  = []netip.AddrPort{
		netip.MustParseAddrPort("[2001:db8:100::11]:3478"),
		netip.MustParseAddrPort("[2001:db8:100::12]:3478"),
	}
	stunAltAddr6 = netip.MustParseAddrPort("[2001:db8:100::13]:3479")
	httpAddr6    = netip.MustParseAddrPort("[2001:db8:100::20]:80")
	clientAddr6  = netip.MustParseAddr("2001:db8:100::30")
)

// Interface names inside the namespaces; fixed because each lab has its own
// namespaces.
const (
	lanIf = "lan0"
	wanIf = "wan0"
)

// nameSeq makes namespace names unique within this process; the pid makes
// them unique across concurrently running test binaries.
var nameSeq atomic.Uint64

// Option configures New.
type Option func(*config)

type config struct {
	mappingTimeout time.Duration
	strictTCP      bool
	wanRate        string // tc rate; "" for no limit
}

// MappingTimeout sets how long an idle NAT mapping survives (default 60s).
// Outbound traffic on a mapping refreshes it. Resolution is milliseconds.
func MappingTimeout(d time.Duration) Option {
	return func(c *config) { c.mappingTimeout = d }
}

// StrictTCP makes the NAT drop TCP packets of connections it does not
// track (conntrack's loose pickup off, invalid packets dropped), as many
// home and carrier NATs do: after ForgetMappings, packets of an existing
// connection vanish instead of creating a new mapping, and neither end
// hears a reset.
func StrictTCP() Option {
	return func(c *config) { c.strictTCP = true }
}

// WANRate limits the NAT's wan link to rate in each direction (upload and
// download separately, IPv4 and IPv6 together), so that throughput measured
// through the NAT is bound by a WAN-like link instead of by the CPU copying
// packets between veths. rate is a tc(8) rate such as "100mbit" or "1gbit".
// Without WANRate the link is unlimited.
//
// The limiter is a token bucket (tc-tbf) on each end of the wan link. What
// it does to latency:
//   - An idle link adds only each packet's serialisation at the rate (1500
//     bytes: 12 µs at 1gbit, 120 µs at 100mbit); bursts of up to 1 ms worth
//     of the rate (at least 4 KiB) even pass at veth speed.
//   - A saturated link queues up to 20 ms worth of the rate and drops the
//     rest. A bulk TCP transfer fills that queue up to the drop point again
//     and again, so meanwhile other packets in the same direction
//     (keep-alives, STUN) wait longer: by up to 20 ms, on average about
//     3.5 ms behind one upload at 100mbit and 1-1.5 ms at 1gbit (measured
//     in the lab). A bounded, moderate bufferbloat, as on an access link.
func WANRate(rate string) Option {
	return func(c *config) { c.wanRate = rate }
}

// Lab is one running lab. Its exported fields are read-only.
//
// Close sockets and stop processes a test creates in the lab before the lab's
// cleanup runs (cleanups registered after New run before it), or the
// namespaces linger until they are gone. The NAT does no hairpinning: the lan
// cannot reach itself through PublicAddr or PublicAddr6.
//
// Every address has an IPv6 twin (the fields ending in 6): STUN[i] and
// STUN6[i] are the same server, HTTP and HTTP6 the same server.
//
// STUN server 0 supports RFC 5780 (NAT behaviour discovery): it listens on
// two addresses per family, STUN[0].Addr() and STUNAlt.Addr(), at two
// ports on each, STUN[0].Port() and STUNAlt.Port(). Its responses to
// binding requests sent to STUN[0] carry OTHER-ADDRESS = STUNAlt (and
// RESPONSE-ORIGIN). It answers a request with CHANGE-REQUEST from the other
// address and/or port: with change IP and port from STUNAlt, with change
// port only from STUN[0].Addr() at STUNAlt.Port(), with change IP only from
// STUNAlt.Addr() at STUN[0].Port(). The same holds for STUN6[0] and
// STUNAlt6. (Send such requests to STUN[0]: for requests sent to STUNAlt's
// address coturn names that same address as the other one.) STUN server 1
// does not support RFC 5780, as most public servers: its responses carry
// no OTHER-ADDRESS, and it answers a CHANGE-REQUEST with error 420
// (unknown attribute).
type Lab struct {
	Kind Kind // the NAT's behaviour, for IPv4 and IPv6 alike

	LAN, NAT, Inet string // network namespace names, for Command and Do

	LANAddr    netip.Addr       // the host behind the NAT (10.77.0.2)
	PublicAddr netip.Addr       // the NAT's public address (198.51.100.1)
	STUN       []netip.AddrPort // two coturn STUN servers (TCP and UDP)
	STUNAlt    netip.AddrPort   // STUN server 0's other address and port, for RFC 5780 (198.51.100.13:3479)
	HTTP       netip.AddrPort   // keep-alive HTTP server
	ClientAddr netip.Addr       // outside client address used by DialFromOutside

	LANAddr6    netip.Addr       // the host behind the NAT (2001:db8:77::2)
	PublicAddr6 netip.Addr       // the NAT's public IPv6 address (2001:db8:100::1)
	STUN6       []netip.AddrPort // the two STUN servers over IPv6 (TCP and UDP)
	STUNAlt6    netip.AddrPort   // STUN server 0's other IPv6 address and port ([2001:db8:100::13]:3479)
	HTTP6       netip.AddrPort   // the keep-alive HTTP server over IPv6
	ClientAddr6 netip.Addr       // outside client IPv6 address used by DialFromOutside

	t    testing.TB
	cfg  config
	rate rateSpec // parsed cfg.wanRate
	dir  string
	stun []*coturn.Server
	http *httpServer
}

// New builds a lab with a NAT of the given kind and tears it down in
// t.Cleanup. It calls Require first, so tests need no gate of their own.
func New(t testing.TB, kind Kind, opts ...Option) *Lab {
	t.Helper()
	Require(t)
	cfg := config{mappingTimeout: 60 * time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.mappingTimeout < time.Millisecond {
		t.Fatalf("lab: mapping timeout %v is below nftables' 1ms resolution", cfg.mappingTimeout)
	}
	var rate rateSpec
	if cfg.wanRate != "" {
		var err error
		if rate, err = parseRate(cfg.wanRate); err != nil {
			t.Fatalf("lab: WANRate: %v", err)
		}
	}
	prefix := fmt.Sprintf("nml%d-%d", os.Getpid(), nameSeq.Add(1))
	l := &Lab{
		Kind:       kind,
		LAN:        prefix + "-lan",
		NAT:        prefix + "-nat",
		Inet:       prefix + "-inet",
		LANAddr:    lanAddr,
		PublicAddr: publicAddr,
		STUN:       append([]netip.AddrPort(nil), stunAddrs...),
		STUNAlt:    stunAltAddr,
		HTTP:       httpAddr,
		ClientAddr: clientAddr,

		LANAddr6:    lanAddr6,
		PublicAddr6: publicAddr6,
		STUN6:       append([]netip.AddrPort(nil), stunAddrs6...),
		STUNAlt6:    stunAltAddr6,
		HTTP6:       httpAddr6,
		ClientAddr6: clientAddr6,

		t:    t,
		cfg:  cfg,
		rate: rate,
		dir:  t.TempDir(),
	}
	// Registered before anything exists so a half-built lab is torn down too.
	t.Cleanup(l.close)
	if err := l.start(); err != nil {
		t.Fatalf("lab: %v", err)
	}
	return l
}

func (l *Lab) start() error {
	// coturn takes longest to start up: as soon as its addresses exist,
	// so that the rest of the setup overlaps with it.
	if err := l.setupNetwork(l.startSTUN); err != nil {
		return err
	}
	if err := l.setupNAT(); err != nil {
		return err
	}
	if err := l.setupWANRate(); err != nil {
		return err
	}
	h, err := l.startHTTP()
	if err != nil {
		return err
	}
	l.http = h
	if err := l.waitSTUN(); err != nil {
		return err
	}
	// Last, so that it mostly overlaps with coturn starting up.
	return l.waitIPv6()
}

// setupNetwork creates the namespaces, links, addresses and routes. It sets
// up the inet namespace first and then calls inetReady, so that servers
// there can start up while it sets up the rest.
func (l *Lab) setupNetwork(inetReady func() error) error {
	// Creating the veths with "netns" puts both ends straight into their
	// namespaces, so no interface ever appears in the root namespace.
	//
	// The explicit, distinct ifindexes matter for IPv6: each namespace
	// numbers its interfaces from 1, so both ends of a veth would get the
	// same ifindex, and then the kernel (linkwatch_urgent_event) takes the
	// carrier coming up for a non-urgent event and may sit on it for up to
	// a second. IPv6 configures a link only once it hears of its carrier,
	// and until then drops neighbour solicitations (see waitIPv6).
	root := fmt.Sprintf(`netns add %[1]s
netns add %[2]s
netns add %[3]s
link add %[4]s netns %[1]s index 10 type veth peer name %[4]s netns %[2]s index 11
link add %[5]s netns %[2]s index 12 type veth peer name %[5]s netns %[3]s index 13
`, l.LAN, l.NAT, l.Inet, lanIf, wanIf)
	if err := run("", root, "ip", "-batch", "-"); err != nil {
		return err
	}
	// IPv6 addresses get "nodad", so they are usable at once instead of
	// tentative for a second or more of duplicate address detection.
	lan := fmt.Sprintf(`link set lo up
addr add %[1]s/24 dev %[3]s
addr add %[2]s/64 dev %[3]s nodad
link set %[3]s up
route add default via %[4]s
route add ::/0 via %[5]s
`, l.LANAddr, l.LANAddr6, lanIf, natLANAddr, natLANAddr6)
	nat := fmt.Sprintf(`link set lo up
addr add %[1]s/24 dev %[3]s
addr add %[2]s/64 dev %[3]s nodad
link set %[3]s up
addr add %[4]s/24 dev %[6]s
addr add %[5]s/64 dev %[6]s nodad
link set %[6]s up
`, natLANAddr, natLANAddr6, lanIf, l.PublicAddr, l.PublicAddr6, wanIf)
	inet := "link set lo up\n"
	for _, a := range []netip.Addr{l.STUN[0].Addr(), l.STUN[1].Addr(), l.STUNAlt.Addr(), l.HTTP.Addr(), l.ClientAddr} {
		inet += fmt.Sprintf("addr add %s/24 dev %s\n", a, wanIf)
	}
	for _, a := range []netip.Addr{l.STUN6[0].Addr(), l.STUN6[1].Addr(), l.STUNAlt6.Addr(), l.HTTP6.Addr(), l.ClientAddr6} {
		inet += fmt.Sprintf("addr add %s/64 dev %s nodad\n", a, wanIf)
	}
	inet += "link set " + wanIf + " up\n"

	// Before the links go up: no duplicate address detection for the
	// link-local addresses either (the NAT needs its own to resolve
	// neighbours when it forwards), and no router advertisements, so the
	// addresses and routes above are all there is. The nat namespace
	// forwards both families.
	ipv6Host := func(ifs ...string) map[string]string {
		s := map[string]string{"ipv6/conf/all/accept_dad": "0", "ipv6/conf/all/accept_ra": "0"}
		for _, i := range ifs {
			s["ipv6/conf/"+i+"/accept_dad"] = "0"
			s["ipv6/conf/"+i+"/accept_ra"] = "0"
		}
		return s
	}
	natSysctls := ipv6Host(lanIf, wanIf)
	natSysctls["ipv4/ip_forward"] = "1"
	natSysctls["ipv6/conf/all/forwarding"] = "1"
	for _, ns := range []struct {
		name    string
		sysctls map[string]string
		batch   string
	}{
		{l.Inet, ipv6Host(wanIf), inet},
		{l.LAN, ipv6Host(lanIf), lan},
		{l.NAT, natSysctls, nat},
	} {
		if err := l.Do(ns.name, func() error { return writeSysctls(ns.sysctls) }); err != nil {
			return fmt.Errorf("sysctls in %s: %w", ns.name, err)
		}
		if err := run(ns.name, ns.batch, "ip", "-batch", "-"); err != nil {
			return err
		}
		if ns.name == l.Inet {
			if err := inetReady(); err != nil {
				return err
			}
		}
	}
	return nil
}

// waitIPv6 waits until IPv6 is up on every lab interface. A veth's
// carrier-up reaches IPv6 asynchronously (through linkwatch), and only then
// does the interface get its link-local address and its multicast route;
// until then it drops neighbour solicitations ("no route"), and the first
// connection through the NAT would stall for a one-second neighbour
// discovery retransmit. A link-local address that is no longer tentative
// marks the end of that. With distinct ifindexes (setupNetwork) this
// normally finds everything up already.
func (l *Lab) waitIPv6() error {
	deadline := time.Now().Add(5 * time.Second)
	for _, ns := range []struct {
		name string
		ifs  []string
	}{{l.LAN, []string{lanIf}}, {l.NAT, []string{lanIf, wanIf}}, {l.Inet, []string{wanIf}}} {
		if err := l.Do(ns.name, func() error { return waitLinkLocal(ns.ifs, deadline) }); err != nil {
			return fmt.Errorf("IPv6 in %s: %w", ns.name, err)
		}
	}
	return nil
}

// waitLinkLocal polls until each interface in ifs, in the calling thread's
// namespace, has a usable link-local address.
func waitLinkLocal(ifs []string, deadline time.Time) error {
	for {
		// "address ifindex prefixlen scope flags name", all hex but name.
		b, err := os.ReadFile("/proc/thread-self/net/if_inet6")
		if err != nil {
			return err
		}
		ready := map[string]bool{}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) != 6 || !strings.HasPrefix(f[0], "fe80") {
				continue
			}
			flags, err := strconv.ParseUint(f[4], 16, 32)
			if err == nil && flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) == 0 {
				ready[f[5]] = true
			}
		}
		missing := slices.DeleteFunc(slices.Clone(ifs), func(i string) bool { return ready[i] })
		if len(missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no usable link-local address on %v:\n%s", missing, b)
		}
		time.Sleep(time.Millisecond)
	}
}

// writeSysctls writes each value to /proc/sys/net/<key>, which follows the
// netns of the calling thread.
func writeSysctls(sysctls map[string]string) error {
	for key, value := range sysctls {
		if err := os.WriteFile("/proc/sys/net/"+key, []byte(value+"\n"), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// close tears the lab down; it runs in t.Cleanup even when the test failed.
func (l *Lab) close() {
	if l.t.Failed() {
		l.dumpNAT()
	}
	for _, s := range l.stun {
		s.Stop()
	}
	if l.http != nil {
		l.http.close()
	}
	var del string
	for _, ns := range []string{l.LAN, l.NAT, l.Inet} {
		if _, err := os.Stat("/var/run/netns/" + ns); err == nil {
			del += "netns del " + ns + "\n"
		}
	}
	if del != "" {
		if err := run("", del, "ip", "-force", "-batch", "-"); err != nil {
			l.t.Errorf("lab: teardown: %v", err)
		}
	}
}

// dumpNAT logs the NAT's ruleset (including the mapping maps) to help
// diagnose a failed test.
func (l *Lab) dumpNAT() {
	var out []byte
	err := l.Do(l.NAT, func() error {
		var err error
		out, err = exec.Command("nft", "list", "ruleset").CombinedOutput()
		return err
	})
	if err != nil {
		l.t.Logf("lab: nft list ruleset in %s: %v\n%s", l.NAT, err, out)
		return
	}
	l.t.Logf("lab: NAT ruleset in %s:\n%s", l.NAT, out)
}

// Command returns a command that runs name inside namespace ns
// (via "ip netns exec"). ctx kills it, as with exec.CommandContext.
func (l *Lab) Command(ctx context.Context, ns string, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// Do runs fn on an OS thread switched into namespace ns. Sockets created by
// fn stay in ns, so they can be used from any goroutine afterwards. Processes
// started by fn (exec.Cmd.Start) also start in ns.
func (l *Lab) Do(ns string, fn func() error) error {
	return netns.Do(ns, fn)
}

// Listen listens on addr inside namespace ns. With reusePort the socket gets
// SO_REUSEADDR and SO_REUSEPORT, so it can share its port with natmap's
// outbound sockets. network is "tcp", "tcp4" or "tcp6".
func (l *Lab) Listen(ns, network, addr string, reusePort bool) (net.Listener, error) {
	lc := net.ListenConfig{}
	if reusePort {
		lc.Control = reuseControl
	}
	var ln net.Listener
	err := l.Do(ns, func() error {
		var err error
		ln, err = lc.Listen(context.Background(), network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen %s %s in %s: %w", network, addr, ns, err)
	}
	return ln, nil
}

// ListenPacket opens a UDP socket on addr inside namespace ns, like Listen
// does for TCP: with reusePort the socket gets SO_REUSEADDR and
// SO_REUSEPORT. network is "udp", "udp4" or "udp6".
func (l *Lab) ListenPacket(ns, network, addr string, reusePort bool) (*net.UDPConn, error) {
	switch network {
	case "udp", "udp4", "udp6":
	default:
		return nil, fmt.Errorf("listen packet %s %s in %s: unsupported network", network, addr, ns)
	}
	lc := net.ListenConfig{}
	if reusePort {
		lc.Control = reuseControl
	}
	var pc net.PacketConn
	err := l.Do(ns, func() error {
		var err error
		pc, err = lc.ListenPacket(context.Background(), network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen packet %s %s in %s: %w", network, addr, ns, err)
	}
	return pc.(*net.UDPConn), nil
}

// reuseControl sets SO_REUSEADDR and SO_REUSEPORT on a socket before bind.
func reuseControl(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		if serr == nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}
	})
	return errors.Join(err, serr)
}

// DialFromOutside dials addr from ClientAddr or ClientAddr6 in the inet
// namespace, like a random host on the internet would. network is "tcp",
// "tcp4", "tcp6", "udp", "udp4" or "udp6"; with "tcp" and "udp" the family
// of addr picks the client address. Unsolicited traffic the NAT drops makes
// TCP dials hang until ctx ends, so pass a ctx with a deadline.
func (l *Lab) DialFromOutside(ctx context.Context, network, addr string) (net.Conn, error) {
	client := l.ClientAddr
	switch network {
	case "tcp", "udp":
		if ap, err := netip.ParseAddrPort(addr); err == nil && ap.Addr().Unmap().Is6() {
			client = l.ClientAddr6
		}
	case "tcp4", "udp4":
	case "tcp6", "udp6":
		client = l.ClientAddr6
	default:
		return nil, fmt.Errorf("dial from outside: unsupported network %q", network)
	}
	d := net.Dialer{}
	if strings.HasPrefix(network, "tcp") {
		d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(client, 0))
	} else {
		d.LocalAddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(client, 0))
	}
	var c net.Conn
	err := l.Do(l.Inet, func() error {
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dial %s %s from outside: %w", network, addr, err)
	}
	return c, nil
}

// run executes name with stdin, in namespace ns ("" for the current one),
// and wraps a failure with the command's combined output.
func run(ns, stdin string, name string, args ...string) error {
	var out bytes.Buffer
	exe := func() error {
		cmd := exec.Command(name, args...)
		cmd.Stdin = strings.NewReader(stdin)
		cmd.Stdout = &out
		cmd.Stderr = &out
		return cmd.Run()
	}
	var err error
	if ns == "" {
		err = exe()
	} else {
		// The child inherits the namespace of the locked thread that forks
		// it; cheaper than "ip netns exec".
		err = netns.Do(ns, exe)
	}
	if err != nil {
		where, input := "", ""
		if ns != "" {
			where = " in " + ns
		}
		if stdin != "" {
			input = "\ninput:\n" + stdin
		}
		return fmt.Errorf("%s %s%s: %w\n%s%s", name, strings.Join(args, " "), where, err, bytes.TrimSpace(out.Bytes()), input)
	}
	return nil
}
