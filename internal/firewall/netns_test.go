package firewall

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/testkit/netns"
	"github.com/natmap-go/natmap/internal/testkit/tcpserve"
	"github.com/natmap-go/natmap/internal/testkit/testgate"
)

// The test router and its wan side: two network namespaces joined by a
// veth pair (wan0 on both ends), dual stack, documentation addresses only.
var (
	routerAddr  = netip.MustParseAddr("192.0.2.1")
	wanAddr     = netip.MustParseAddr("192.0.2.2")
	routerAddr6 = netip.MustParseAddr("2001:db8:f::1")
	wanAddr6    = netip.MustParseAddr("2001:db8:f::2")
)

const testPort = 40000 // the natmap port the tests open

var nsSeq atomic.Uint64

// router is a namespace with a firewall to test, and a wan namespace to
// send packets from.
type router struct {
	t       *testing.T
	ns, wan string
	// tools maps a command to the binary to run for it (iptables to
	// iptables-legacy, say); a missing entry runs the command itself.
	tools map[string]string
}

// newRouter builds the two namespaces and removes them in t.Cleanup.
func newRouter(t *testing.T, tools map[string]string) *router {
	t.Helper()
	testgate.Netns(t, "firewall", "nft", "iptables", "ip6tables")
	name := fmt.Sprintf("fwt%d-%d", os.Getpid(), nsSeq.Add(1))
	r := &router{t: t, ns: name, wan: name + "w", tools: tools}
	t.Cleanup(func() {
		for _, ns := range []string{r.ns, r.wan} {
			if _, err := os.Stat("/var/run/netns/" + ns); err == nil {
				if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
					t.Errorf("ip netns del %s: %v: %s", ns, err, out)
				}
			}
		}
	})
	// Distinct ifindexes, so that the carrier comes up at once and IPv6
	// is usable without waiting (see lab.setupNetwork).
	r.ip("", "netns", "add", r.ns)
	r.ip("", "netns", "add", r.wan)
	r.ip("", "link", "add", "wan0", "netns", r.ns, "index", "10", "type", "veth",
		"peer", "name", "wan0", "netns", r.wan, "index", "11")
	for _, side := range []struct {
		ns          string
		addr, addr6 netip.Addr
	}{{r.ns, routerAddr, routerAddr6}, {r.wan, wanAddr, wanAddr6}} {
		// No ICMP rate limit, so every rejected probe gets its answer; no
		// duplicate address detection or router advertisements, so IPv6
		// is usable at once and has only the addresses below.
		must(t, netns.Do(side.ns, func() error {
			return writeSysctls(map[string]string{
				"ipv4/icmp_ratelimit":       "0",
				"ipv6/icmp/ratelimit":       "0",
				"ipv6/conf/wan0/accept_dad": "0",
				"ipv6/conf/wan0/accept_ra":  "0",
			})
		}))
		r.ip(side.ns, "link", "set", "lo", "up")
		r.ip(side.ns, "addr", "add", side.addr.String()+"/24", "dev", "wan0")
		r.ip(side.ns, "addr", "add", side.addr6.String()+"/64", "dev", "wan0", "nodad")
		r.ip(side.ns, "link", "set", "wan0", "up")
	}
	return r
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// ip runs ip(8), in namespace ns unless it is "".
func (r *router) ip(ns string, args ...string) {
	r.t.Helper()
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		r.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// run is the Exec the backends get: the command, inside the router.
func (r *router) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	if tool, ok := r.tools[name]; ok {
		name = tool
	}
	return Command(ctx, "ip", append([]string{"netns", "exec", r.ns, name}, args...)...)
}

// do runs a command in the router, with stdin, and fails the test on error.
func (r *router) do(stdin string, name string, args ...string) string {
	r.t.Helper()
	if tool, ok := r.tools[name]; ok {
		name = tool
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", r.ns, name}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		r.t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return string(out)
}

// serve listens on testPort, TCP and UDP, both families, in the router: the
// TCP server says "ok" and hangs up, the UDP server echoes.
func (r *router) serve() {
	r.t.Helper()
	var ln net.Listener
	var pc net.PacketConn
	must(r.t, netns.Do(r.ns, func() error {
		var err error
		if ln, err = net.Listen("tcp", fmt.Sprintf(":%d", testPort)); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp", fmt.Sprintf(":%d", testPort))
		return err
	}))
	r.t.Cleanup(func() { pc.Close() })
	tcpserve.Each(r.t, ln, func(c net.Conn) { c.Write([]byte("ok")) })
	go func() {
		buf := make([]byte, 64)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
}

// Probe outcomes.
const (
	open    = "open"    // the service answered
	refused = "refused" // the firewall rejected (TCP reset, ICMP unreachable)
)

// probe connects from the wan side to the router's testPort with network
// (tcp or udp) over IPv4 or IPv6, and says what happened: open, refused,
// or the error.
func (r *router) probe(network string, ipv6 bool) string {
	dst := netip.AddrPortFrom(routerAddr, testPort)
	if ipv6 {
		dst = netip.AddrPortFrom(routerAddr6, testPort)
	}
	return r.probeAt(network, dst)
}

// probeAt connects from the wan side to dst with network (tcp or udp)
// and says what happened: open, refused, or the error.
func (r *router) probeAt(network string, dst netip.AddrPort) string {
	var got string
	err := netns.Do(r.wan, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		var d net.Dialer
		c, err := d.DialContext(ctx, network, dst.String())
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		if network == "udp" {
			if _, err := c.Write([]byte("ok")); err != nil {
				return err
			}
		}
		buf := make([]byte, 8)
		n, err := c.Read(buf)
		got = string(buf[:n])
		return err
	})
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return refused
	case err != nil:
		return err.Error()
	case got == "ok":
		return open
	}
	return fmt.Sprintf("unexpected reply %q", got)
}

// expect checks the probes of every protocol and family: want4 for IPv4,
// want6 for IPv6.
func (r *router) expect(when, want4, want6 string) {
	r.t.Helper()
	for _, ipv6 := range []bool{false, true} {
		want := want4
		if ipv6 {
			want = want6
		}
		for _, network := range []string{"tcp", "udp"} {
			if got := r.probe(network, ipv6); got != want {
				r.t.Errorf("%s: %s over IPv%s from the wan side: %s, want %s", when, network, map[bool]string{false: "4", true: "6"}[ipv6], got, want)
			}
		}
	}
}

// writeSysctls writes /proc/sys/net/<key>, which follows the netns of the
// calling thread.
func writeSysctls(s map[string]string) error {
	for k, v := range s {
		if err := os.WriteFile("/proc/sys/net/"+k, []byte(v), 0o644); err != nil {
			return fmt.Errorf("sysctl net/%s: %w", k, err)
		}
	}
	return nil
}
