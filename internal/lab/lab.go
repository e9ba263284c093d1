// Package lab builds a small, throw-away internet out of Linux network
// namespaces so end-to-end tests can prove with real packets that natmap
// works behind a NAT.
//
// Every Lab has three namespaces joined by veth pairs:
//
//	lan  (10.77.0.2)  --lan0--  nat (10.77.0.1 | 198.51.100.1)  --wan0--  inet (198.51.100.x)
//
// The nat namespace runs an nftables NAT of the selected Kind. The inet
// namespace hosts two coturn STUN servers, a keep-alive HTTP server and an
// outside client address. The root namespace gets no routes to any of it, so
// no lab traffic can leave the machine.
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
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

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
)

func (k Kind) String() string {
	switch k {
	case FullConePreserve:
		return "FullConePreserve"
	case FullConeTranslate:
		return "FullConeTranslate"
	case Symmetric:
		return "Symmetric"
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
	httpAddr   = netip.MustParseAddrPort("198.51.100.20:80")
	clientAddr = netip.MustParseAddr("198.51.100.30")
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
}

// MappingTimeout sets how long an idle NAT mapping survives (default 60s).
// Outbound traffic on a mapping refreshes it. Resolution is milliseconds.
func MappingTimeout(d time.Duration) Option {
	return func(c *config) { c.mappingTimeout = d }
}

// Lab is one running lab. Its exported fields are read-only.
//
// Close sockets and stop processes a test creates in the lab before the lab's
// cleanup runs (cleanups registered after New run before it), or the
// namespaces linger until they are gone. The NAT does no hairpinning: the lan
// cannot reach itself through PublicAddr.
type Lab struct {
	Kind Kind // the NAT's behaviour

	LAN, NAT, Inet string // network namespace names, for Command and Do

	LANAddr    netip.Addr       // the host behind the NAT (10.77.0.2)
	PublicAddr netip.Addr       // the NAT's public address (198.51.100.1)
	STUN       []netip.AddrPort // two coturn STUN servers (TCP and UDP)
	HTTP       netip.AddrPort   // keep-alive HTTP server
	ClientAddr netip.Addr       // outside client address used by DialFromOutside

	t    testing.TB
	cfg  config
	dir  string
	stun []*stunServer
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
	prefix := fmt.Sprintf("nml%d-%d", os.Getpid(), nameSeq.Add(1))
	l := &Lab{
		Kind:       kind,
		LAN:        prefix + "-lan",
		NAT:        prefix + "-nat",
		Inet:       prefix + "-inet",
		LANAddr:    lanAddr,
		PublicAddr: publicAddr,
		STUN:       append([]netip.AddrPort(nil), stunAddrs...),
		HTTP:       httpAddr,
		ClientAddr: clientAddr,
		t:          t,
		cfg:        cfg,
		dir:        t.TempDir(),
	}
	// Registered before anything exists so a half-built lab is torn down too.
	t.Cleanup(l.close)
	if err := l.start(); err != nil {
		t.Fatalf("lab: %v", err)
	}
	return l
}

func (l *Lab) start() error {
	if err := l.setupNetwork(); err != nil {
		return err
	}
	if err := l.setupNAT(); err != nil {
		return err
	}
	h, err := l.startHTTP()
	if err != nil {
		return err
	}
	l.http = h
	return l.startSTUN()
}

// setupNetwork creates the namespaces, links, addresses and routes.
func (l *Lab) setupNetwork() error {
	// Creating the veths with "netns" puts both ends straight into their
	// namespaces, so no interface ever appears in the root namespace.
	root := fmt.Sprintf(`netns add %[1]s
netns add %[2]s
netns add %[3]s
link add %[4]s netns %[1]s type veth peer name %[4]s netns %[2]s
link add %[5]s netns %[2]s type veth peer name %[5]s netns %[3]s
`, l.LAN, l.NAT, l.Inet, lanIf, wanIf)
	if err := run("", root, "ip", "-batch", "-"); err != nil {
		return err
	}
	lan := fmt.Sprintf(`link set lo up
addr add %s/24 dev %s
link set %[2]s up
route add default via %s
`, l.LANAddr, lanIf, natLANAddr)
	nat := fmt.Sprintf(`link set lo up
addr add %s/24 dev %s
link set %[2]s up
addr add %s/24 dev %s
link set %[4]s up
`, natLANAddr, lanIf, l.PublicAddr, wanIf)
	inet := "link set lo up\n"
	for _, a := range []netip.Addr{l.STUN[0].Addr(), l.STUN[1].Addr(), l.HTTP.Addr(), l.ClientAddr} {
		inet += fmt.Sprintf("addr add %s/24 dev %s\n", a, wanIf)
	}
	inet += "link set " + wanIf + " up\n"
	for ns, batch := range map[string]string{l.LAN: lan, l.NAT: nat, l.Inet: inet} {
		if err := run("", batch, "ip", "-n", ns, "-batch", "-"); err != nil {
			return err
		}
	}
	return l.Do(l.NAT, func() error {
		// /proc/sys/net follows the netns of the calling thread.
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644)
	})
}

// close tears the lab down; it runs in t.Cleanup even when the test failed.
func (l *Lab) close() {
	if l.t.Failed() {
		l.dumpNAT()
	}
	for _, s := range l.stun {
		s.stop()
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
	return doIn(ns, fn)
}

func doIn(ns string, fn func() error) error {
	target, err := unix.Open("/var/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", ns, err)
	}
	defer unix.Close(target)

	type result struct {
		err   error
		panic any
	}
	done := make(chan result, 1)
	// A fresh goroutine, so the caller's thread is never switched.
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("open current netns: %w", err)}
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("setns %s: %w", ns, err)}
			return
		}
		var res result
		func() {
			defer func() { res.panic = recover() }()
			res.err = fn()
		}()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			// Stay locked: the runtime then discards this thread when the
			// goroutine exits instead of reusing it in the wrong netns.
			res.err = errors.Join(res.err, fmt.Errorf("restore netns after %s: %w", ns, err))
			done <- res
			return
		}
		runtime.UnlockOSThread()
		done <- res
	}()
	res := <-done
	if res.panic != nil {
		panic(res.panic)
	}
	return res.err
}

// Listen listens on addr inside namespace ns. With reusePort the socket gets
// SO_REUSEADDR and SO_REUSEPORT, so it can share its port with natmap's
// outbound sockets. network is "tcp" or "tcp4".
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

// DialFromOutside dials addr from ClientAddr in the inet namespace, like a
// random host on the internet would. network is "tcp", "tcp4", "udp" or
// "udp4". Unsolicited traffic the NAT drops makes TCP dials hang until ctx
// ends, so pass a ctx with a deadline.
func (l *Lab) DialFromOutside(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{}
	switch network {
	case "tcp", "tcp4":
		d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(l.ClientAddr, 0))
	case "udp", "udp4":
		d.LocalAddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(l.ClientAddr, 0))
	default:
		return nil, fmt.Errorf("dial from outside: unsupported network %q", network)
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
		err = doIn(ns, exe)
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
