package lab

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/testkit/tcpserve"
)

var kinds = []Kind{FullConePreserve, FullConeTranslate, RestrictedCone, Symmetric}

// isFullCone reports whether a NAT of kind lets every outside host reach a
// mapping (endpoint-independent filtering).
func isFullCone(kind Kind) bool {
	return kind == FullConePreserve || kind == FullConeTranslate
}

// family is one address family's view of a lab, so that a test can run the
// same checks over IPv4 and IPv6.
type family struct {
	name                string // "IPv4" or "IPv6"
	lan, public, client netip.Addr
	stun                []netip.AddrPort
	stunAlt             netip.AddrPort
	http                netip.AddrPort
}

func families(l *Lab) []family {
	return []family{
		{"IPv4", l.LANAddr, l.PublicAddr, l.ClientAddr, l.STUN, l.STUNAlt, l.HTTP},
		{"IPv6", l.LANAddr6, l.PublicAddr6, l.ClientAddr6, l.STUN6, l.STUNAlt6, l.HTTP6},
	}
}

// lanKeepAlive runs the lan service on local and, from its port, a
// keep-alive connection to the HTTP server, like natmap's, after one HEAD.
func lanKeepAlive(t *testing.T, l *Lab, f family, local netip.AddrPort) (net.Conn, *bufio.Reader) {
	t.Helper()
	lanService(t, l, local)
	keep := dialFrom(t, l, l.LAN, local, f.http)
	br := bufio.NewReader(keep)
	if err := httpHead(keep, br); err != nil {
		t.Fatal(err)
	}
	return keep, br
}

// eachKindAndFamily runs test in parallel subtests: one lab of each kind,
// and in it each address family (they share no address).
func eachKindAndFamily(t *testing.T, test func(*testing.T, *Lab, family)) {
	for _, kind := range kinds {
		t.Run(kind.String(), func(t *testing.T) {
			t.Parallel()
			l := New(t, kind)
			for _, f := range families(l) {
				t.Run(f.name, func(t *testing.T) {
					t.Parallel()
					test(t, l, f)
				})
			}
		})
	}
}

// dialFrom dials remote from local inside ns, sharing local's port like
// natmap does (SO_REUSEADDR + SO_REUSEPORT).
func dialFrom(t *testing.T, l *Lab, ns string, local, remote netip.AddrPort) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(local), Control: reuseControl, Timeout: 3 * time.Second}
	var c net.Conn
	if err := l.Do(ns, func() (err error) {
		c, err = d.Dial("tcp", remote.String())
		return err
	}); err != nil {
		t.Fatalf("dial %s from %s in %s: %v", remote, local, ns, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// serveRemoteAddr accepts connections on ln and writes each peer's address
// to it, then closes it: a tiny "what is my address" server.
func serveRemoteAddr(t *testing.T, ln net.Listener) {
	tcpserve.Each(t, ln, func(c net.Conn) { io.WriteString(c, c.RemoteAddr().String()) })
}

// readAddr reads everything from c and parses it as an ip:port.
func readAddr(t *testing.T, c net.Conn) netip.AddrPort {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read from %s: %v", c.RemoteAddr(), err)
	}
	ap, err := netip.ParseAddrPort(string(b))
	if err != nil {
		t.Fatalf("read from %s: %v", c.RemoteAddr(), err)
	}
	return ap
}

// reachable reports whether an outside client reaches the lan service behind
// public; if so, it checks the service saw the client's real address.
func reachable(t *testing.T, l *Lab, public netip.AddrPort) bool {
	t.Helper()
	return reachableAll(t, l, public)[0]
}

// reachableAll is reachable for several addresses at once, so that those
// that must time out cost one timeout together.
func reachableAll(t *testing.T, l *Lab, publics ...netip.AddrPort) []bool {
	t.Helper()
	// Unmapped traffic is dropped, so a failure shows up as a timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	conns := make([]net.Conn, len(publics))
	errs := make([]error, len(publics))
	var wg sync.WaitGroup
	for i, public := range publics {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conns[i], errs[i] = l.DialFromOutside(ctx, "tcp", public.String())
		}()
	}
	wg.Wait()
	got := make([]bool, len(publics))
	for i, c := range conns {
		if errs[i] != nil {
			var ne net.Error
			if !errors.As(errs[i], &ne) || !ne.Timeout() {
				t.Errorf("dial %s from outside: got %v, want a timeout (dropped, not refused)", publics[i], errs[i])
			}
			continue
		}
		defer c.Close()
		seen := readAddr(t, c)
		if seen != c.LocalAddr().(*net.TCPAddr).AddrPort() {
			t.Errorf("lan service saw the outside client as %s, want %s", seen, c.LocalAddr())
		}
		got[i] = true
	}
	return got
}

// lanService listens on local in the lan namespace (sharing the port) and
// tells every client its address.
func lanService(t *testing.T, l *Lab, local netip.AddrPort) {
	t.Helper()
	ln, err := l.Listen(l.LAN, "tcp", local.String(), true)
	if err != nil {
		t.Fatal(err)
	}
	serveRemoteAddr(t, ln)
}

func TestMapping(t *testing.T) {
	eachKindAndFamily(t, testMapping)
}

// testMapping checks the TCP mappings of one address family: what two
// servers see, and whether the outside reaches the lan through them.
func testMapping(t *testing.T, l *Lab, f family) {
	kind := l.Kind
	var servers []netip.AddrPort
	for _, s := range f.stun {
		addr := netip.AddrPortFrom(s.Addr(), 7)
		ln, err := l.Listen(l.Inet, "tcp", addr.String(), false)
		if err != nil {
			t.Fatal(err)
		}
		serveRemoteAddr(t, ln)
		servers = append(servers, addr)
	}
	local := netip.AddrPortFrom(f.lan, 40000)
	lanService(t, l, local)

	var seen []netip.AddrPort
	for _, s := range servers {
		seen = append(seen, readAddr(t, dialFrom(t, l, l.LAN, local, s)))
	}
	t.Logf("%s seen by %v as %v", local, servers, seen)
	for _, s := range seen {
		if s.Addr() != f.public {
			t.Fatalf("server saw %s, want public address %s", s, f.public)
		}
	}
	inRandomRange := func(p uint16) bool { return p >= 20000 && p <= 29999 }
	switch kind {
	case FullConePreserve, RestrictedCone:
		if seen[0].Port() != local.Port() || seen[1].Port() != local.Port() {
			t.Errorf("public ports %v, want both %d", seen, local.Port())
		}
	case FullConeTranslate:
		if seen[0] != seen[1] || !inRandomRange(seen[0].Port()) {
			t.Errorf("public ports %v, want one port in 20000-29999 for both", seen)
		}
	case Symmetric:
		// Random ports from 10000: 1 in 10000 runs may see a repeat.
		if seen[0] == seen[1] || !inRandomRange(seen[0].Port()) || !inRandomRange(seen[1].Port()) {
			t.Errorf("public ports %v, want two different ports in 20000-29999", seen)
		}
	}

	// The outside client never heard from the lan: only a full cone
	// lets it in.
	fullCone := isFullCone(kind)
	unmapped := netip.AddrPortFrom(f.public, 40001)
	got := reachableAll(t, l, append(seen, unmapped)...)
	for i, s := range seen {
		if got[i] != fullCone {
			t.Errorf("outside client reaches lan service via %s: %v, want %v", s, got[i], fullCone)
		}
	}
	if got[len(seen)] {
		t.Errorf("outside client reached unmapped %s", unmapped)
	}
}

func TestSTUN(t *testing.T) {
	eachKindAndFamily(t, testSTUN)
}

// testSTUN asks both STUN servers over TCP and UDP in one address family,
// then checks which outside UDP datagrams reach the lan.
func testSTUN(t *testing.T, l *Lab, f family) {
	kind := l.Kind
	// TCP, from one local port to both servers, as natmap does.
	local := netip.AddrPortFrom(f.lan, 40000)
	var tcp []netip.AddrPort
	for _, s := range f.stun {
		mapped, err := stunBinding(dialFrom(t, l, l.LAN, local, s), 3*time.Second)
		if err != nil {
			t.Fatalf("STUN over TCP to %s: %v", s, err)
		}
		tcp = append(tcp, mapped)
	}
	checkMapped(t, kind, f.public, local, tcp)

	// UDP, one socket to both servers.
	local = netip.AddrPortFrom(f.lan, 40002)
	pc, err := l.ListenPacket(l.LAN, "udp", local.String(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var udp []netip.AddrPort
	for _, s := range f.stun {
		mapped, err := stunBindingUDP(pc, s)
		if err != nil {
			t.Fatalf("STUN over UDP to %s: %v", s, err)
		}
		udp = append(udp, mapped)
	}
	checkMapped(t, kind, f.public, local, udp)

	// A datagram from a never-contacted outside host gets through
	// exactly when the NAT is full cone (not restricted cone). A lan
	// socket that never sent anything has no mapping, whatever its port:
	// nothing reaches it.
	idle, err := l.ListenPacket(l.LAN, "udp", netip.AddrPortFrom(f.lan, 40003).String(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	unmapped := netip.AddrPortFrom(f.public, 40003)
	sendFromOutside(t, l, udp[0])
	sendFromOutside(t, l, unmapped)
	// One deadline for both, so that the datagrams that must not arrive
	// cost one timeout together.
	deadline := time.Now().Add(500 * time.Millisecond)
	got, from := received(t, pc, deadline)
	if fullCone := isFullCone(kind); got != fullCone {
		t.Errorf("outside UDP datagram to %s arrived: %v, want %v", udp[0], got, fullCone)
	}
	if got && from.Addr() != f.client {
		t.Errorf("lan saw outside datagram from %s, want %s", from, f.client)
	}
	if got, _ := received(t, idle, deadline); got {
		t.Errorf("outside UDP datagram to unmapped %s arrived", unmapped)
	}
}

// sendFromOutside sends the datagram "hi" from the outside client to public.
func sendFromOutside(t *testing.T, l *Lab, public netip.AddrPort) {
	t.Helper()
	c, err := l.DialFromOutside(context.Background(), "udp", public.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
}

// received reports whether the outside datagram arrives at pc by deadline,
// and from where.
func received(t *testing.T, pc *net.UDPConn, deadline time.Time) (bool, netip.AddrPort) {
	t.Helper()
	pc.SetReadDeadline(deadline)
	defer pc.SetReadDeadline(time.Time{})
	buf := make([]byte, 100)
	n, from, err := pc.ReadFromUDPAddrPort(buf)
	if err != nil {
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("read outside datagram: %v, want a timeout or the datagram", err)
		}
		return false, netip.AddrPort{}
	}
	if string(buf[:n]) != "hi" {
		t.Errorf("lan read %q from %s, want the outside datagram", buf[:n], from)
	}
	return true, from
}

// stunBindingUDP sends a binding request from pc to server and returns the
// mapped address.
func stunBindingUDP(pc *net.UDPConn, server netip.AddrPort) (netip.AddrPort, error) {
	req := stunRequest()
	if _, err := pc.WriteToUDPAddrPort(req, server); err != nil {
		return netip.AddrPort{}, err
	}
	pc.SetReadDeadline(time.Now().Add(3 * time.Second))
	defer pc.SetReadDeadline(time.Time{})
	buf := make([]byte, stunMaxMessageBytes)
	n, _, err := pc.ReadFromUDPAddrPort(buf)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return stunMapped(req, buf[:n])
}

// checkMapped checks the addresses two STUN servers reported for local.
func checkMapped(t *testing.T, kind Kind, public netip.Addr, local netip.AddrPort, mapped []netip.AddrPort) {
	t.Helper()
	t.Logf("%s mapped to %v", local, mapped)
	for _, m := range mapped {
		if m.Addr() != public {
			t.Errorf("mapped %s, want address %s", m, public)
		}
	}
	switch same := mapped[0] == mapped[1]; {
	case (kind == FullConePreserve || kind == RestrictedCone) && (!same || mapped[0].Port() != local.Port()):
		t.Errorf("mapped %v, want port %d from both", mapped, local.Port())
	case kind == FullConeTranslate && (!same || mapped[0].Port() == local.Port()):
		t.Errorf("mapped %v, want the same translated port from both", mapped)
	case kind == Symmetric && same:
		t.Errorf("mapped %v, want different ports", mapped)
	}
}

func TestRestrictedCone(t *testing.T) {
	t.Parallel()
	l := New(t, RestrictedCone)
	for _, f := range families(l) {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel() // the families share no address
			t.Run("UDP", func(t *testing.T) {
				t.Parallel() // different ports
				testRestrictedUDP(t, l, f)
			})
			t.Run("TCP", func(t *testing.T) {
				t.Parallel()
				testRestrictedTCP(t, l, f)
			})
		})
	}
}

// testRestrictedUDP checks the address-dependent filtering of UDP: a
// mapping lets an outside host in only after the lan socket sent to the
// host's address, and then from any port of it; other hosts stay out.
func testRestrictedUDP(t *testing.T, l *Lab, f family) {
	local := netip.AddrPortFrom(f.lan, 40010)
	pc, err := l.ListenPacket(l.LAN, "udp", local.String(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	mapped, err := stunBindingUDP(pc, f.stun[0])
	if err != nil {
		t.Fatalf("STUN over UDP to %s: %v", f.stun[0], err)
	}
	if want := netip.AddrPortFrom(f.public, local.Port()); mapped != want {
		t.Fatalf("%s mapped to %s, want %s", local, mapped, want)
	}
	sendFromOutside(t, l, mapped)
	if got, _ := received(t, pc, time.Now().Add(500*time.Millisecond)); got {
		t.Fatalf("datagram from %s reached %s before the lan sent to it", f.client, mapped)
	}

	// One datagram to the client's address, at a port the client does
	// not send from.
	if _, err := pc.WriteToUDPAddrPort([]byte("open"), netip.AddrPortFrom(f.client, 9)); err != nil {
		t.Fatal(err)
	}
	// Another outside host first: were it let in, its datagram would
	// arrive first.
	other, err := l.ListenPacket(l.Inet, "udp", netip.AddrPortFrom(f.http.Addr(), 0).String(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.WriteToUDPAddrPort([]byte("hi"), mapped); err != nil {
		t.Fatal(err)
	}
	sendFromOutside(t, l, mapped)
	got, from := received(t, pc, time.Now().Add(3*time.Second))
	if !got || from.Addr() != f.client {
		t.Fatalf("after the lan sent to %s: first datagram at %s from %v (arrived %v), want one from %s", f.client, mapped, from, got, f.client)
	}
	if got, from := received(t, pc, time.Now().Add(200*time.Millisecond)); got {
		t.Errorf("datagram from %s, never sent to, reached %s", from, mapped)
	}
}

// testRestrictedTCP is testRestrictedUDP for TCP: an outside connect
// attempt gets through once the lan service's port has connected to the
// client's address.
func testRestrictedTCP(t *testing.T, l *Lab, f family) {
	local := netip.AddrPortFrom(f.lan, 40011)
	lanService(t, l, local)
	mapped, err := stunBinding(dialFrom(t, l, l.LAN, local, f.stun[0]), 3*time.Second)
	if err != nil {
		t.Fatalf("STUN over TCP to %s: %v", f.stun[0], err)
	}
	if want := netip.AddrPortFrom(f.public, local.Port()); mapped != want {
		t.Fatalf("%s mapped to %s, want %s", local, mapped, want)
	}
	if reachable(t, l, mapped) {
		t.Fatalf("%s reached %s before the lan sent to it", f.client, mapped)
	}

	client := netip.AddrPortFrom(f.client, 7)
	ln, err := l.Listen(l.Inet, "tcp", client.String(), false)
	if err != nil {
		t.Fatal(err)
	}
	serveRemoteAddr(t, ln)
	if seen := readAddr(t, dialFrom(t, l, l.LAN, local, client)); seen != mapped {
		t.Fatalf("%s saw %s as %s, want %s", client, local, seen, mapped)
	}
	if !reachable(t, l, mapped) {
		t.Errorf("%s cannot reach %s after the lan connected to it", f.client, mapped)
	}
	// Another outside host still cannot.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(f.http.Addr(), 0))}
	err = l.Do(l.Inet, func() error {
		c, err := d.DialContext(ctx, "tcp", mapped.String())
		if err == nil {
			c.Close()
		}
		return err
	})
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("dial %s from %s: %v, want a timeout (dropped)", mapped, f.http.Addr(), err)
	}
}

// TestRFC5780 runs RFC 5780's filtering test (section 4.4) against STUN
// server 0 behind each kind of NAT, as natmap does: from one unconnected UDP
// socket, a plain binding request, then one asking for the answer from the
// other address and port, then one asking for the other port only. STUN
// server 1 has no RFC 5780.
func TestRFC5780(t *testing.T) {
	eachKindAndFamily(t, testRFC5780)
}

func testRFC5780(t *testing.T, l *Lab, f family) {
	kind := l.Kind
	local := netip.AddrPortFrom(f.lan, 40020)
	pc, err := l.ListenPacket(l.LAN, "udp", local.String(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()

	req := stunRequest()
	resp, from, ok := stunExchangeUDP(t, pc, f.stun[0], req, 3*time.Second)
	if !ok {
		t.Fatalf("no answer from %s", f.stun[0])
	}
	mapped, err := stunMapped(req, resp)
	if err != nil || from != f.stun[0] {
		t.Fatalf("answer from %s: mapped %v (%v), want an answer from %s", from, mapped, err, f.stun[0])
	}
	other, err := stunAddrAttr(req, resp, stunOtherAddress)
	t.Logf("%s mapped to %s; OTHER-ADDRESS %v (%v)", local, mapped, other, err)
	if err != nil || other != f.stunAlt {
		t.Fatalf("OTHER-ADDRESS from %s: %v (%v), want %s", f.stun[0], other, err, f.stunAlt)
	}

	for _, tc := range []struct {
		name    string
		flags   byte
		from    netip.AddrPort // where the answer comes from
		arrives bool
	}{
		{"change IP and port", stunChangeIP | stunChangePort, f.stunAlt, isFullCone(kind)},
		{"change port", stunChangePort, netip.AddrPortFrom(f.stun[0].Addr(), f.stunAlt.Port()), kind != Symmetric},
	} {
		req := stunRequestChange(tc.flags)
		wait := 500 * time.Millisecond // for an answer that must not arrive
		if tc.arrives {
			wait = 3 * time.Second
		}
		resp, from, ok := stunExchangeUDP(t, pc, f.stun[0], req, wait)
		if ok != tc.arrives {
			t.Errorf("%s: answer arrived %v (from %v), want %v", tc.name, ok, from, tc.arrives)
			continue
		}
		if !ok {
			continue
		}
		if m, err := stunMapped(req, resp); err != nil || from != tc.from || m != mapped {
			t.Errorf("%s: answer from %s, mapped %v (%v); want an answer from %s, mapped %s", tc.name, from, m, err, tc.from, mapped)
		}
		if origin, err := stunAddrAttr(req, resp, stunResponseOrigin); err != nil || origin != from {
			t.Errorf("%s: RESPONSE-ORIGIN %v (%v), want %s", tc.name, origin, err, from)
		}
	}

	// STUN server 1: no OTHER-ADDRESS, and an error for CHANGE-REQUEST.
	req = stunRequest()
	resp, _, ok = stunExchangeUDP(t, pc, f.stun[1], req, 3*time.Second)
	if !ok {
		t.Fatalf("no answer from %s", f.stun[1])
	}
	if other, err := stunAddrAttr(req, resp, stunOtherAddress); !errors.Is(err, errNoSTUNAttr) {
		t.Errorf("OTHER-ADDRESS from %s: %v (%v), want none", f.stun[1], other, err)
	}
	req = stunRequestChange(stunChangeIP | stunChangePort)
	resp, from, ok = stunExchangeUDP(t, pc, f.stun[1], req, 3*time.Second)
	if code := stunErrorCode(resp); !ok || from != f.stun[1] || code != 420 {
		t.Errorf("CHANGE-REQUEST to %s: answer %v from %v, error %d; want error 420 from it", f.stun[1], ok, from, code)
	}
}

// stunExchangeUDP sends req from pc to server and waits up to wait for the
// answer, from wherever it comes. It skips answers to other requests (a late
// one).
func stunExchangeUDP(t *testing.T, pc *net.UDPConn, server netip.AddrPort, req []byte, wait time.Duration) ([]byte, netip.AddrPort, bool) {
	t.Helper()
	if _, err := pc.WriteToUDPAddrPort(req, server); err != nil {
		t.Fatal(err)
	}
	pc.SetReadDeadline(time.Now().Add(wait))
	defer pc.SetReadDeadline(time.Time{})
	buf := make([]byte, stunMaxMessageBytes)
	for {
		n, from, err := pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Errorf("read STUN answer: %v, want a timeout or the answer", err)
			}
			return nil, netip.AddrPort{}, false
		}
		if n >= stunHeaderLen && string(buf[4:20]) == string(req[4:20]) {
			return buf[:n], from, true
		}
	}
}

// stunErrorCode returns the code in a STUN error response's ERROR-CODE
// attribute (RFC 5389 section 15.6), or 0.
func stunErrorCode(resp []byte) int {
	const errorCode = 0x0009
	if len(resp) < stunHeaderLen {
		return 0
	}
	for attrs := resp[stunHeaderLen:]; len(attrs) >= 4; {
		typ := binary.BigEndian.Uint16(attrs[0:])
		n := int(binary.BigEndian.Uint16(attrs[2:]))
		if 4+n > len(attrs) {
			break
		}
		if typ == errorCode && n >= 4 {
			return int(attrs[6]&7)*100 + int(attrs[7])
		}
		attrs = attrs[4+(n+3)&^3:]
	}
	return 0
}

// httpHead sends a HEAD request on c and reads the response.
func httpHead(c net.Conn, br *bufio.Reader) error {
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "HEAD / HTTP/1.1\r\nHost: lab\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodHead})
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	return nil
}

func TestForgetMappings(t *testing.T) {
	t.Run("Translate", func(t *testing.T) {
		t.Parallel()
		l := New(t, FullConeTranslate)
		type mapping struct {
			f      family
			keep   net.Conn
			br     *bufio.Reader
			local  netip.AddrPort
			before netip.AddrPort
		}
		var ms []mapping
		for _, f := range families(l) {
			local := netip.AddrPortFrom(f.lan, 40000)
			keep, br := lanKeepAlive(t, l, f, local)
			before, err := stunBinding(dialFrom(t, l, l.LAN, local, f.stun[0]), 3*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			ms = append(ms, mapping{f, keep, br, local, before})
		}

		if err := l.ForgetMappings(); err != nil {
			t.Fatal(err)
		}
		var befores, afters []netip.AddrPort
		for _, m := range ms {
			// The NAT now translates the old connection to a new port,
			// which the server does not know: it must break.
			if err := httpHead(m.keep, m.br); err == nil {
				t.Errorf("%s: keep-alive connection survived ForgetMappings", m.f.name)
			}
			after, err := stunBinding(dialFrom(t, l, l.LAN, m.local, m.f.stun[1]), 3*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: mapping before %s, after %s", m.f.name, m.before, after)
			if after == m.before {
				t.Errorf("mapping %s survived ForgetMappings", after)
			}
			befores, afters = append(befores, m.before), append(afters, after)
		}
		got := reachableAll(t, l, append(befores, afters...)...)
		for i, before := range befores {
			if got[i] {
				t.Errorf("forgotten mapping %s still reaches the lan", before)
			}
		}
		for i, after := range afters {
			if !got[len(befores)+i] {
				t.Errorf("new mapping %s does not reach the lan", after)
			}
		}
	})
	t.Run("Preserve", func(t *testing.T) {
		t.Parallel()
		l := New(t, FullConePreserve)
		var keeps []net.Conn
		var brs []*bufio.Reader
		var publics []netip.AddrPort
		for _, f := range families(l) {
			local := netip.AddrPortFrom(f.lan, 40000)
			keep, br := lanKeepAlive(t, l, f, local)
			public := netip.AddrPortFrom(f.public, local.Port())
			if !reachable(t, l, public) {
				t.Fatalf("%s unreachable before ForgetMappings", public)
			}
			keeps, brs, publics = append(keeps, keep), append(brs, br), append(publics, public)
		}
		if err := l.ForgetMappings(); err != nil {
			t.Fatal(err)
		}
		for i, got := range reachableAll(t, l, publics...) {
			if got {
				t.Errorf("%s reachable after ForgetMappings without new outbound traffic", publics[i])
			}
		}
		for i, public := range publics {
			// The NAT picks the same public port again, so the old
			// connection survives, and its traffic restores the mapping.
			if err := httpHead(keeps[i], brs[i]); err != nil {
				t.Errorf("keep-alive connection to %s broke: %v", keeps[i].RemoteAddr(), err)
			}
			if !reachable(t, l, public) {
				t.Errorf("%s unreachable after new outbound traffic", public)
			}
		}
	})
	t.Run("Restricted", func(t *testing.T) {
		t.Parallel()
		l := New(t, RestrictedCone)
		type mapping struct {
			f      family
			pc     *net.UDPConn
			mapped netip.AddrPort
		}
		var ms []mapping
		for _, f := range families(l) {
			pc, err := l.ListenPacket(l.LAN, "udp", netip.AddrPortFrom(f.lan, 40000).String(), false)
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			mapped, err := stunBindingUDP(pc, f.stun[0])
			if err != nil {
				t.Fatal(err)
			}
			if _, err := pc.WriteToUDPAddrPort([]byte("open"), netip.AddrPortFrom(f.client, 9)); err != nil {
				t.Fatal(err)
			}
			sendFromOutside(t, l, mapped)
			if got, _ := received(t, pc, time.Now().Add(3*time.Second)); !got {
				t.Fatalf("%s: outside datagram to %s did not arrive before ForgetMappings", f.name, mapped)
			}
			ms = append(ms, mapping{f, pc, mapped})
		}
		if err := l.ForgetMappings(); err != nil {
			t.Fatal(err)
		}
		// Traffic to the STUN server restores the mapping, but not the
		// permission for the client.
		for _, m := range ms {
			if mapped, err := stunBindingUDP(m.pc, m.f.stun[0]); err != nil || mapped != m.mapped {
				t.Fatalf("%s: mapped to %v (%v) after ForgetMappings, want %s", m.f.name, mapped, err, m.mapped)
			}
			sendFromOutside(t, l, m.mapped)
		}
		deadline := time.Now().Add(500 * time.Millisecond)
		for _, m := range ms {
			if got, _ := received(t, m.pc, deadline); got {
				t.Errorf("%s: outside datagram to %s arrived after ForgetMappings", m.f.name, m.mapped)
			}
		}
	})
	t.Run("Symmetric", func(t *testing.T) {
		t.Parallel()
		l := New(t, Symmetric)
		if err := l.ForgetMappings(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestMappingTimeout(t *testing.T) {
	t.Parallel()
	const timeout = 500 * time.Millisecond
	l := New(t, FullConePreserve, MappingTimeout(timeout))
	var keeps []net.Conn
	var brs []*bufio.Reader
	var publics []netip.AddrPort
	for _, f := range families(l) {
		local := netip.AddrPortFrom(f.lan, 40000)
		lanService(t, l, local)
		publics = append(publics, netip.AddrPortFrom(f.public, local.Port()))
		keep := dialFrom(t, l, l.LAN, local, f.http)
		keeps, brs = append(keeps, keep), append(brs, bufio.NewReader(keep))
	}

	// Traffic more often than the timeout keeps the mappings.
	for range 6 {
		for i := range keeps {
			if err := httpHead(keeps[i], brs[i]); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(timeout / 3)
	}
	for i, got := range reachableAll(t, l, publics...) {
		if !got {
			t.Fatalf("%s unreachable while refreshed", publics[i])
		}
	}
	// Idle longer than the timeout loses them.
	time.Sleep(timeout + 300*time.Millisecond)
	for i, got := range reachableAll(t, l, publics...) {
		if got {
			t.Errorf("%s still reachable after idling past the timeout", publics[i])
		}
	}
}

func TestHTTP(t *testing.T) {
	t.Parallel()
	l := New(t, FullConePreserve)
	c := dialFrom(t, l, l.LAN, netip.AddrPortFrom(l.LANAddr, 40000), l.HTTP)
	br := bufio.NewReader(c)
	for range 3 {
		if err := httpHead(c, br); err != nil {
			t.Fatal(err)
		}
	}
	c6 := dialFrom(t, l, l.LAN, netip.AddrPortFrom(l.LANAddr6, 40000), l.HTTP6)
	br6 := bufio.NewReader(c6)
	if err := httpHead(c6, br6); err != nil {
		t.Fatal(err)
	}
	if n := l.HTTPRequests(); n != 4 {
		t.Errorf("HTTPRequests = %d, want 4", n)
	}
	l.DropHTTP()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	c6.SetReadDeadline(time.Now().Add(2 * time.Second))
	for _, r := range []*bufio.Reader{br, br6} {
		if _, err := r.ReadByte(); err != io.EOF {
			t.Errorf("read after DropHTTP: %v, want EOF", err)
		}
	}
	// The server still accepts new connections.
	c = dialFrom(t, l, l.LAN, netip.AddrPortFrom(l.LANAddr, 40001), l.HTTP)
	if err := httpHead(c, bufio.NewReader(c)); err != nil {
		t.Errorf("new connection after DropHTTP: %v", err)
	}
}

func TestStopSTUN(t *testing.T) {
	t.Parallel()
	l := New(t, FullConePreserve)
	l.StopSTUN(0)
	l.StopSTUN(0) // idempotent
	for _, f := range families(l) {
		// Every address and port of server 0, RFC 5780's included.
		for _, s := range []netip.AddrPort{
			f.stun[0], f.stunAlt,
			netip.AddrPortFrom(f.stun[0].Addr(), f.stunAlt.Port()),
			netip.AddrPortFrom(f.stunAlt.Addr(), f.stun[0].Port()),
		} {
			err := l.Do(l.LAN, func() error {
				_, err := stunBindingTCP(s, 2*time.Second)
				return err
			})
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("STUN to stopped server at %s: %v, want connection refused", s, err)
			}
		}
		err := l.Do(l.LAN, func() error {
			_, err := stunBindingTCP(f.stun[1], 2*time.Second)
			return err
		})
		if err != nil {
			t.Errorf("STUN to the other server %s: %v", f.stun[1], err)
		}
	}
}

func TestCommand(t *testing.T) {
	t.Parallel()
	l := New(t, Symmetric)
	out, err := l.Command(context.Background(), l.LAN, "ip", "-br", "addr", "show", "dev", "lan0").CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !strings.Contains(string(out), l.LANAddr.String()+"/24") {
		t.Errorf("lan0 in %s: %s, want %s/24", l.LAN, out, l.LANAddr)
	}
}

// TestDualStack checks the IPv6 plumbing: every address usable at once (no
// duplicate address detection pending), no routes from router
// advertisements, and the lan's IPv6 default route via the NAT.
func TestDualStack(t *testing.T) {
	t.Parallel()
	l := New(t, FullConePreserve)
	for ns, want := range map[string][]netip.Addr{
		l.LAN:  {l.LANAddr6},
		l.NAT:  {natLANAddr6, l.PublicAddr6},
		l.Inet: {l.STUN6[0].Addr(), l.STUN6[1].Addr(), l.STUNAlt6.Addr(), l.HTTP6.Addr(), l.ClientAddr6},
	} {
		out, err := l.Command(context.Background(), ns, "ip", "-6", "addr", "show").CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		for _, a := range want {
			if !strings.Contains(string(out), " "+a.String()+"/64 ") {
				t.Errorf("%s lacks %s/64:\n%s", ns, a, out)
			}
		}
		// Link-local addresses too: the NAT needs its own to resolve
		// neighbours when it forwards.
		if strings.Contains(string(out), "tentative") || strings.Contains(string(out), "dadfailed") {
			t.Errorf("%s has addresses not yet usable:\n%s", ns, out)
		}
		out, err = l.Command(context.Background(), ns, "ip", "-6", "route", "show").CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if strings.Contains(string(out), "proto ra") {
			t.Errorf("%s has routes from router advertisements:\n%s", ns, out)
		}
		if ns == l.LAN && !strings.Contains(string(out), "default via "+natLANAddr6.String()+" dev "+lanIf) {
			t.Errorf("%s: no IPv6 default route via %s:\n%s", ns, natLANAddr6, out)
		}
	}
}

func TestDialFromOutside(t *testing.T) {
	t.Parallel()
	l := New(t, FullConePreserve)
	ln4, err := l.Listen(l.Inet, "tcp4", netip.AddrPortFrom(l.HTTP.Addr(), 7).String(), false)
	if err != nil {
		t.Fatal(err)
	}
	serveRemoteAddr(t, ln4)
	ln6, err := l.Listen(l.Inet, "tcp6", netip.AddrPortFrom(l.HTTP6.Addr(), 7).String(), false)
	if err != nil {
		t.Fatal(err)
	}
	serveRemoteAddr(t, ln6)
	for _, tc := range []struct {
		network string
		to      netip.Addr
		from    netip.Addr // invalid: the dial must fail
	}{
		{"tcp", l.HTTP.Addr(), l.ClientAddr},
		{"tcp4", l.HTTP.Addr(), l.ClientAddr},
		{"tcp", l.HTTP6.Addr(), l.ClientAddr6},
		{"tcp6", l.HTTP6.Addr(), l.ClientAddr6},
		{"tcp4", l.HTTP6.Addr(), netip.Addr{}},
		{"tcp6", l.HTTP.Addr(), netip.Addr{}},
	} {
		to := netip.AddrPortFrom(tc.to, 7)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		c, err := l.DialFromOutside(ctx, tc.network, to.String())
		cancel()
		if !tc.from.IsValid() {
			if err == nil {
				c.Close()
				t.Errorf("DialFromOutside(%s, %s) worked, want an error", tc.network, to)
			}
			continue
		}
		if err != nil {
			t.Errorf("DialFromOutside(%s, %s): %v", tc.network, to, err)
			continue
		}
		if seen := readAddr(t, c); seen.Addr() != tc.from {
			t.Errorf("DialFromOutside(%s, %s) came from %s, want %s", tc.network, to, seen, tc.from)
		}
		c.Close()
	}
	// UDP: the inet namespace has no NAT, so an echo there shows the
	// client address.
	for _, tc := range []struct {
		network string
		echo    netip.AddrPort
		from    netip.Addr
	}{
		{"udp", netip.AddrPortFrom(l.HTTP.Addr(), 7), l.ClientAddr},
		{"udp4", netip.AddrPortFrom(l.HTTP.Addr(), 7), l.ClientAddr},
		{"udp", netip.AddrPortFrom(l.HTTP6.Addr(), 7), l.ClientAddr6},
		{"udp6", netip.AddrPortFrom(l.HTTP6.Addr(), 7), l.ClientAddr6},
	} {
		echo, err := l.ListenPacket(l.Inet, "udp", tc.echo.String(), false)
		if err != nil {
			t.Fatal(err)
		}
		c, err := l.DialFromOutside(context.Background(), tc.network, tc.echo.String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("x"))
		echo.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, from, err := echo.ReadFromUDPAddrPort(make([]byte, 10))
		if err != nil || from.Addr() != tc.from {
			t.Errorf("DialFromOutside(%s, %s): datagram from %s (%v), want from %s", tc.network, tc.echo, from, err, tc.from)
		}
		c.Close()
		echo.Close()
	}
	if _, err := l.DialFromOutside(context.Background(), "ip4:icmp", l.HTTP.Addr().String()); err == nil {
		t.Error("DialFromOutside(ip4:icmp) worked, want unsupported network")
	}
}

func TestListenPacket(t *testing.T) {
	t.Parallel()
	l := New(t, Symmetric)
	for _, f := range families(l) {
		addr := netip.AddrPortFrom(f.lan, 40000).String()
		a, err := l.ListenPacket(l.LAN, "udp", addr, true)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		// reusePort lets a second socket share the port, as natmap's
		// sockets share the service's.
		b, err := l.ListenPacket(l.LAN, "udp", addr, true)
		if err != nil {
			t.Errorf("second socket with reusePort on %s: %v", addr, err)
		} else {
			b.Close()
		}
		if c, err := l.ListenPacket(l.LAN, "udp", addr, false); !errors.Is(err, syscall.EADDRINUSE) {
			if err == nil {
				c.Close()
			}
			t.Errorf("second socket without reusePort on %s: %v, want address in use", addr, err)
		}
		// The socket lives in the lan namespace: it reaches the STUN
		// server through the NAT.
		mapped, err := stunBindingUDP(a, f.stun[0])
		if err != nil || mapped.Addr() != f.public {
			t.Errorf("STUN from %s: %v, %v; want address %s", addr, mapped, err, f.public)
		}
	}
	if _, err := l.ListenPacket(l.LAN, "tcp", ":0", false); err == nil {
		t.Error("ListenPacket(tcp) worked, want unsupported network")
	}
}

// transfer sends n bytes over c and reports how long until the peer, which
// reads everything and then answers one byte, has them all.
func transfer(c net.Conn, n int) (time.Duration, error) {
	start := time.Now()
	c.SetDeadline(start.Add(20 * time.Second))
	if _, err := c.Write(make([]byte, n)); err != nil {
		return 0, err
	}
	c.(*net.TCPConn).CloseWrite()
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// sink accepts connections on ln, reads each to EOF and then answers one
// byte.
func sink(t *testing.T, ln net.Listener) {
	tcpserve.Each(t, ln, func(c net.Conn) {
		io.Copy(io.Discard, c)
		c.Write([]byte{1})
	})
}

func TestWANRate(t *testing.T) {
	t.Parallel()
	const (
		size = 10 << 20 // bytes: 0.84 s at 100mbit
		min  = 700 * time.Millisecond
		max  = 5 * time.Second // far off means a broken limiter
	)
	l := New(t, FullConePreserve, WANRate("100mbit"))
	// Upload over IPv4 (lan -> inet) and download over IPv6 (inet ->
	// lan) at once: each direction has its own limiter.
	up, err := l.Listen(l.Inet, "tcp", netip.AddrPortFrom(l.HTTP.Addr(), 5001).String(), false)
	if err != nil {
		t.Fatal(err)
	}
	sink(t, up)
	down, err := l.Listen(l.LAN, "tcp", netip.AddrPortFrom(l.LANAddr6, 5001).String(), true)
	if err != nil {
		t.Fatal(err)
	}
	sink(t, down)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	// The download starts from the outside, through a full-cone mapping
	// that the lan opens first.
	dialFrom(t, l, l.LAN, netip.AddrPortFrom(l.LANAddr6, 5001), l.HTTP6).Close()
	downConn, err := l.DialFromOutside(ctx, "tcp", netip.AddrPortFrom(l.PublicAddr6, 5001).String())
	if err != nil {
		t.Fatal(err)
	}
	defer downConn.Close()
	upConn := dialFrom(t, l, l.LAN, netip.AddrPortFrom(l.LANAddr, 0), netip.AddrPortFrom(l.HTTP.Addr(), 5001))

	var wg sync.WaitGroup
	names := []string{"upload (IPv4)", "download (IPv6)"}
	took := make([]time.Duration, 2)
	errs := make([]error, 2)
	for i, c := range []net.Conn{upConn, downConn} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			took[i], errs[i] = transfer(c, size)
		}()
	}
	wg.Wait()
	for i, d := range took {
		name := names[i]
		if errs[i] != nil {
			t.Errorf("%s: %v", name, errs[i])
			continue
		}
		t.Logf("%s: %d MB in %v = %.0f Mbit/s", name, size>>20, d.Round(time.Millisecond), float64(size*8)/d.Seconds()/1e6)
		if d < min || d > max {
			t.Errorf("%s of %d MB at 100mbit took %v, want %v to %v", name, size>>20, d, min, max)
		}
	}
}

func TestParseRate(t *testing.T) {
	for s, want := range map[string]rateSpec{
		"100mbit": 100e6, "1gbit": 1e9, "1Gbit": 1e9, "2.5gbit": 2.5e9, "800kbit": 800e3,
		"1000000": 1e6, "125mbps": 1e9, "1mibit": 1 << 20, "10bit": 10,
	} {
		if got, err := parseRate(s); err != nil || got != want {
			t.Errorf("parseRate(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "fast", "1bit", "0mbit", "-1mbit", "100mb", "1e9gbit", "nanbit", "infbit", "mbit"} {
		if got, err := parseRate(s); err == nil {
			t.Errorf("parseRate(%q) = %d, want an error", s, got)
		}
	}
}

// netnsID identifies the network namespace of the calling thread.
func netnsID() string {
	id, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		return err.Error()
	}
	return id
}

func TestDo(t *testing.T) {
	t.Parallel()
	l := New(t, Symmetric)
	runtime.LockOSThread()
	home := netnsID()
	runtime.UnlockOSThread()

	var inLAN string
	if err := l.Do(l.LAN, func() error {
		inLAN = netnsID()
		_, err := net.InterfaceByName(lanIf)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if inLAN == home {
		t.Fatal("Do did not switch namespaces")
	}
	if err := l.Do(l.Inet, func() error { return errors.New("boom") }); err == nil || err.Error() != "boom" {
		t.Errorf("Do returned %v, want fn's error", err)
	}
	func() {
		defer func() {
			if p := recover(); p != "pop" {
				t.Errorf("recovered %v, want fn's panic", p)
			}
		}()
		l.Do(l.Inet, func() error { panic("pop") })
	}()

	// Many Do calls at once, then many threads: none may be left in a lab
	// namespace.
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.Do(l.LAN, func() error { time.Sleep(time.Millisecond); return nil })
		}()
	}
	wg.Wait()
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			if id := netnsID(); id != home {
				t.Errorf("thread left in netns %s, want %s", id, home)
			}
			time.Sleep(time.Millisecond)
		}()
	}
	wg.Wait()
}

// fakeTB records how Require gives up instead of ending the test.
type fakeTB struct {
	testing.TB
	how, msg string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Skip(args ...any) {
	if f.how == "" {
		f.how, f.msg = "skip", fmt.Sprint(args...)
	}
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	if f.how == "" {
		f.how, f.msg = "fatal", fmt.Sprintf(format, args...)
	}
}

func TestRequire(t *testing.T) {
	// Not parallel: t.Setenv changes the whole process.
	t.Setenv("PATH", "")
	for ci, want := range map[string]string{"": "skip", "false": "skip", "true": "fatal"} {
		t.Setenv("CI", ci)
		f := &fakeTB{TB: t}
		Require(f)
		if f.how != want || !strings.Contains(f.msg, "turnserver (Debian package coturn)") {
			t.Errorf("CI=%q: Require did %s(%q), want %s naming what is missing", ci, f.how, f.msg, want)
		}
	}
}

func TestTeardown(t *testing.T) {
	var l *Lab
	t.Run("lab", func(t *testing.T) { l = New(t, FullConeTranslate) })
	for _, ns := range []string{l.LAN, l.NAT, l.Inet} {
		if _, err := os.Stat("/var/run/netns/" + ns); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("netns %s still exists after cleanup (stat: %v)", ns, err)
		}
	}
	for i, s := range l.stun {
		select {
		case <-s.Done():
		default:
			t.Errorf("STUN server %d still running after cleanup", i)
		}
	}
}

// BenchmarkNew measures lab setup; teardown runs after the timed loop.
func BenchmarkNew(b *testing.B) {
	for range b.N {
		New(b, FullConeTranslate)
	}
}
