package lab

import (
	"bufio"
	"context"
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
)

var kinds = []Kind{FullConePreserve, FullConeTranslate, Symmetric}

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
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, c.RemoteAddr().String())
			c.Close()
		}
	}()
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
	// Unmapped traffic is dropped, so a failure shows up as a timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	c, err := l.DialFromOutside(ctx, "tcp", public.String())
	if err != nil {
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("dial %s from outside: got %v, want a timeout (dropped, not refused)", public, err)
		}
		return false
	}
	defer c.Close()
	seen := readAddr(t, c)
	if seen != c.LocalAddr().(*net.TCPAddr).AddrPort() {
		t.Errorf("lan service saw the outside client as %s, want %s", seen, c.LocalAddr())
	}
	return true
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
	for _, kind := range kinds {
		t.Run(kind.String(), func(t *testing.T) {
			t.Parallel()
			l := New(t, kind)
			var servers []netip.AddrPort
			for _, s := range l.STUN {
				addr := netip.AddrPortFrom(s.Addr(), 7)
				ln, err := l.Listen(l.Inet, "tcp", addr.String(), false)
				if err != nil {
					t.Fatal(err)
				}
				serveRemoteAddr(t, ln)
				servers = append(servers, addr)
			}
			local := netip.AddrPortFrom(l.LANAddr, 40000)
			lanService(t, l, local)

			var seen []netip.AddrPort
			for _, s := range servers {
				seen = append(seen, readAddr(t, dialFrom(t, l, l.LAN, local, s)))
			}
			t.Logf("%s seen by %v as %v", local, servers, seen)
			for _, s := range seen {
				if s.Addr() != l.PublicAddr {
					t.Fatalf("server saw %s, want public address %s", s, l.PublicAddr)
				}
			}
			inRandomRange := func(p uint16) bool { return p >= 20000 && p <= 29999 }
			switch kind {
			case FullConePreserve:
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

			fullCone := kind != Symmetric
			for _, s := range seen {
				if got := reachable(t, l, s); got != fullCone {
					t.Errorf("outside client reaches lan service via %s: %v, want %v", s, got, fullCone)
				}
			}
			unmapped := netip.AddrPortFrom(l.PublicAddr, 40001)
			if reachable(t, l, unmapped) {
				t.Errorf("outside client reached unmapped %s", unmapped)
			}
		})
	}
}

func TestSTUN(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind.String(), func(t *testing.T) {
			t.Parallel()
			l := New(t, kind)

			// TCP, from one local port to both servers, as natmap does.
			local := netip.AddrPortFrom(l.LANAddr, 40000)
			var tcp []netip.AddrPort
			for _, s := range l.STUN {
				mapped, err := stunBinding(dialFrom(t, l, l.LAN, local, s), 3*time.Second)
				if err != nil {
					t.Fatalf("STUN over TCP to %s: %v", s, err)
				}
				tcp = append(tcp, mapped)
			}
			checkMapped(t, l, kind, local, tcp)

			// UDP, one socket to both servers.
			local = netip.AddrPortFrom(l.LANAddr, 40002)
			var pc *net.UDPConn
			if err := l.Do(l.LAN, func() (err error) {
				pc, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(local))
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			var udp []netip.AddrPort
			for _, s := range l.STUN {
				mapped, err := stunBindingUDP(pc, s)
				if err != nil {
					t.Fatalf("STUN over UDP to %s: %v", s, err)
				}
				udp = append(udp, mapped)
			}
			checkMapped(t, l, kind, local, udp)

			// A datagram from a never-contacted outside host gets through
			// exactly when the NAT is full cone.
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			c, err := l.DialFromOutside(ctx, "udp", udp[0].String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write([]byte("hi")); err != nil {
				t.Fatal(err)
			}
			pc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			buf := make([]byte, 100)
			n, from, err := pc.ReadFromUDPAddrPort(buf)
			got := err == nil && string(buf[:n]) == "hi"
			if fullCone := kind != Symmetric; got != fullCone {
				t.Errorf("outside UDP datagram to %s arrived: %v (from %v, err %v), want %v", udp[0], got, from, err, fullCone)
			}
			if got && from.Addr() != l.ClientAddr {
				t.Errorf("lan saw outside datagram from %s, want %s", from, l.ClientAddr)
			}
		})
	}
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
func checkMapped(t *testing.T, l *Lab, kind Kind, local netip.AddrPort, mapped []netip.AddrPort) {
	t.Helper()
	t.Logf("%s mapped to %v", local, mapped)
	for _, m := range mapped {
		if m.Addr() != l.PublicAddr {
			t.Errorf("mapped %s, want address %s", m, l.PublicAddr)
		}
	}
	switch same := mapped[0] == mapped[1]; {
	case kind == FullConePreserve && (!same || mapped[0].Port() != local.Port()):
		t.Errorf("mapped %v, want port %d from both", mapped, local.Port())
	case kind == FullConeTranslate && (!same || mapped[0].Port() == local.Port()):
		t.Errorf("mapped %v, want the same translated port from both", mapped)
	case kind == Symmetric && same:
		t.Errorf("mapped %v, want different ports", mapped)
	}
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
		local := netip.AddrPortFrom(l.LANAddr, 40000)
		lanService(t, l, local)
		// A keep-alive connection, like natmap's.
		keep := dialFrom(t, l, l.LAN, local, l.HTTP)
		br := bufio.NewReader(keep)
		if err := httpHead(keep, br); err != nil {
			t.Fatal(err)
		}
		before, err := stunBinding(dialFrom(t, l, l.LAN, local, l.STUN[0]), 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}

		if err := l.ForgetMappings(); err != nil {
			t.Fatal(err)
		}
		// The NAT now translates the old connection to a new port, which
		// the server does not know: it must break.
		if err := httpHead(keep, br); err == nil {
			t.Error("keep-alive connection survived ForgetMappings")
		}
		after, err := stunBinding(dialFrom(t, l, l.LAN, local, l.STUN[1]), 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("mapping before %s, after %s", before, after)
		if after == before {
			t.Errorf("mapping %s survived ForgetMappings", after)
		}
		if reachable(t, l, before) {
			t.Errorf("forgotten mapping %s still reaches the lan", before)
		}
		if !reachable(t, l, after) {
			t.Errorf("new mapping %s does not reach the lan", after)
		}
	})
	t.Run("Preserve", func(t *testing.T) {
		t.Parallel()
		l := New(t, FullConePreserve)
		local := netip.AddrPortFrom(l.LANAddr, 40000)
		lanService(t, l, local)
		keep := dialFrom(t, l, l.LAN, local, l.HTTP)
		br := bufio.NewReader(keep)
		if err := httpHead(keep, br); err != nil {
			t.Fatal(err)
		}
		public := netip.AddrPortFrom(l.PublicAddr, local.Port())
		if !reachable(t, l, public) {
			t.Fatalf("%s unreachable before ForgetMappings", public)
		}
		if err := l.ForgetMappings(); err != nil {
			t.Fatal(err)
		}
		if reachable(t, l, public) {
			t.Errorf("%s reachable after ForgetMappings without new outbound traffic", public)
		}
		// The NAT picks the same public port again, so the old connection
		// survives, and its traffic restores the mapping.
		if err := httpHead(keep, br); err != nil {
			t.Errorf("keep-alive connection broke: %v", err)
		}
		if !reachable(t, l, public) {
			t.Errorf("%s unreachable after new outbound traffic", public)
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
	local := netip.AddrPortFrom(l.LANAddr, 40000)
	lanService(t, l, local)
	public := netip.AddrPortFrom(l.PublicAddr, local.Port())

	// Traffic more often than the timeout keeps the mapping.
	keep := dialFrom(t, l, l.LAN, local, l.HTTP)
	br := bufio.NewReader(keep)
	for range 6 {
		if err := httpHead(keep, br); err != nil {
			t.Fatal(err)
		}
		time.Sleep(timeout / 3)
	}
	if !reachable(t, l, public) {
		t.Fatalf("%s unreachable while refreshed", public)
	}
	// Idle longer than the timeout loses it.
	time.Sleep(timeout + 300*time.Millisecond)
	if reachable(t, l, public) {
		t.Errorf("%s still reachable after idling past the timeout", public)
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
	if n := l.HTTPRequests(); n != 3 {
		t.Errorf("HTTPRequests = %d, want 3", n)
	}
	l.DropHTTP()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("read after DropHTTP: %v, want EOF", err)
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
	err := l.Do(l.LAN, func() error {
		_, err := stunBindingTCP(l.STUN[0], 2*time.Second)
		return err
	})
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("STUN to stopped server: %v, want connection refused", err)
	}
	err = l.Do(l.LAN, func() error {
		_, err := stunBindingTCP(l.STUN[1], 2*time.Second)
		return err
	})
	if err != nil {
		t.Errorf("STUN to the other server: %v", err)
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
		if s.cmd.ProcessState == nil {
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
