// Package e2e proves natmap end to end: the real binary runs behind a real
// (nftables) NAT in a namespace lab, asks a real STUN server (coturn), and an
// outside client reaches the service through the address natmap reported.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/testkit/lab"
	"github.com/natmap-go/natmap/internal/testkit/tcpserve"
	"github.com/natmap-go/natmap/internal/testkit/wait"
)

var natmapBin string

func TestMain(m *testing.M) {
	if port := os.Getenv(holdEnv); port != "" {
		holdPort(port) // this process is a port holder (see holdPortAs)
		return
	}
	dir, err := os.MkdirTemp("", "natmap-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	natmapBin = filepath.Join(dir, "natmap")
	build := exec.Command("go", "build", "-o", natmapBin, "../cmd/natmap")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building natmap:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuf collects a process's output while the test reads it.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// notification is one run of the notify script: its six arguments.
type notification struct {
	PublicIP, PublicPort, IP4P, PrivatePort, Protocol, PrivateIP string
}

func (n notification) Public() netip.AddrPort {
	return netip.MustParseAddrPort(net.JoinHostPort(n.PublicIP, n.PublicPort))
}

// natmap is a running natmap process in the lab's lan namespace.
type natmap struct {
	t      testing.TB
	cmd    *exec.Cmd
	stderr *syncBuf
	notes  string // file the notify script appends to
	done   chan struct{}
}

// startNatmap runs natmap in the lan namespace with a notify script that
// records its arguments, and stops it at the end of the test.
func startNatmap(t testing.TB, l *lab.Lab, args ...string) *natmap {
	t.Helper()
	return startBinary(t, l, natmapBin, args...)
}

// startBinary is startNatmap for another natmap binary (the C natmap, for
// comparisons).
func startBinary(t testing.TB, l *lab.Lab, bin string, args ...string) *natmap {
	t.Helper()
	return startIn(t, l, l.LAN, bin, args...)
}

// startIn is startBinary in namespace ns (a host behind a home router).
func startIn(t testing.TB, l *lab.Lab, ns, bin string, args ...string) *natmap {
	t.Helper()
	dir := t.TempDir()
	notes := filepath.Join(dir, "notes")
	script := filepath.Join(dir, "notify.sh")
	body := "#!/bin/sh\nprintf '%s|' \"$@\" >> " + notes + "\necho >> " + notes + "\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return runIn(t, l, ns, "", notes, bin, append(args, "-e", script)...)
}

// runIn runs bin with args in namespace ns, in directory dir ("": the
// test's), with a notify script that appends to notes, and stops it at the
// end of the test.
func runIn(t testing.TB, l *lab.Lab, ns, dir, notes, bin string, args ...string) *natmap {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := l.Command(ctx, ns, bin, args...)
	cmd.Dir = dir
	n := &natmap{t: t, cmd: cmd, stderr: &syncBuf{}, notes: notes, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = n.stderr, n.stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(n.done) }()
	t.Cleanup(func() {
		cancel()
		<-n.done
		if t.Failed() || testing.Verbose() {
			t.Logf("natmap output:\n%s", n.stderr.String())
		}
	})
	return n
}

// stop ends natmap now (the test's cleanup would otherwise).
func (n *natmap) stop() {
	n.cmd.Process.Signal(os.Interrupt)
	<-n.done
}

// notifications returns the script runs so far.
func (n *natmap) notifications() []notification {
	b, _ := os.ReadFile(n.notes)
	var out []notification
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "|")
		if len(f) != 7 { // six arguments and the trailing separator
			n.t.Fatalf("notify script got %d arguments: %q", len(f)-1, sc.Text())
		}
		out = append(out, notification{f[0], f[1], f[2], f[3], f[4], f[5]})
	}
	return out
}

// waitNotification waits for the script's count-th run.
func (n *natmap) waitNotification(count int, within time.Duration) notification {
	n.t.Helper()
	deadline := time.Now().Add(within)
	for {
		if got := n.notifications(); len(got) >= count {
			return got[count-1]
		}
		select {
		case <-n.done:
			n.t.Fatalf("natmap exited early: %v", n.cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("no notification #%d within %v", count, within)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitNotificationDetached is waitNotification for a natmap that has
// detached (-d): its process's exit says nothing.
func (n *natmap) waitNotificationDetached(count int, within time.Duration) notification {
	n.t.Helper()
	var got []notification
	wait.For(n.t, within, fmt.Sprintf("notification #%d", count), func() bool {
		got = n.notifications()
		return len(got) >= count
	})
	return got[count-1]
}

// findProcess returns the pid of the one process whose command line
// contains s.
func findProcess(t testing.TB, s string) int {
	t.Helper()
	var pid int
	wait.For(t, 5*time.Second, fmt.Sprintf("a process with %q in its command line", s), func() bool {
		dirs, _ := os.ReadDir("/proc")
		for _, d := range dirs {
			p, err := strconv.Atoi(d.Name())
			if err != nil || p == os.Getpid() {
				continue
			}
			b, _ := os.ReadFile("/proc/" + d.Name() + "/cmdline")
			if bytes.Contains(b, []byte(s)) && !bytes.Contains(b, []byte("netns")) {
				pid = p
				return true
			}
		}
		return false
	})
	return pid
}

// waitLog waits until natmap's log contains s.
func (n *natmap) waitLog(s string, within time.Duration) {
	n.t.Helper()
	wait.For(n.t, within, fmt.Sprintf("natmap to log %q", s), func() bool { return strings.Contains(n.stderr.String(), s) })
}

// serve runs the user's service on the lan host: it listens on port with
// SO_REUSEPORT (as bind mode requires) and greets every client.
func serve(t testing.TB, l *lab.Lab, port uint16) string {
	t.Helper()
	ln, err := l.Listen(l.LAN, "tcp4", fmt.Sprintf("0.0.0.0:%d", port), true)
	if err != nil {
		t.Fatal(err)
	}
	return greet(t, ln, fmt.Sprintf("hello from the service on port %d\n", port))
}

// greet writes greeting to every connection accepted on ln and closes it,
// until the test ends.
func greet(t testing.TB, ln net.Listener, greeting string) string {
	tcpserve.Each(t, ln, func(c net.Conn) { io.WriteString(c, greeting) })
	return greeting
}

// roundTrip connects from the outside client to addr (a relay in front of
// an echo service) and passes one byte through, leaving the connection open.
func roundTrip(t testing.TB, l *lab.Lab, addr netip.AddrPort) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := l.DialFromOutside(ctx, "tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.Write([]byte("x"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	return c
}

// reach dials addr from the outside client and returns what it reads.
func reach(t testing.TB, l *lab.Lab, addr netip.AddrPort) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := l.DialFromOutside(ctx, "tcp", addr.String())
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	b, err := io.ReadAll(c)
	return string(b), err
}

func mustReach(t testing.TB, l *lab.Lab, addr netip.AddrPort, want string) {
	t.Helper()
	got, err := reach(t, l, addr)
	if err != nil || got != want {
		t.Fatalf("outside client at %s -> %s: got %q, %v; want %q", l.ClientAddr, addr, got, err, want)
	}
}

func stunArgs(l *lab.Lab) []string {
	var a []string
	for _, s := range l.STUN {
		a = append(a, "-s", s.String())
	}
	return a
}

// serveUDP runs a UDP echo service in namespace ns on addr (reusePort as
// bind mode requires) and returns its address.
func serveUDP(t testing.TB, l *lab.Lab, ns, addr string, reusePort bool) *net.UDPConn {
	t.Helper()
	c, err := l.ListenPacket(ns, "udp", addr, reusePort)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			c.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	t.Cleanup(func() { c.Close() })
	return c
}

// echoUDP sends payload from the outside client to addr and returns the
// echoed reply, retrying a few times (UDP may drop the first datagram).
func echoUDP(t testing.TB, l *lab.Lab, addr netip.AddrPort, payload []byte) ([]byte, error) {
	t.Helper()
	network := "udp4"
	if addr.Addr().Is6() {
		network = "udp6"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := l.DialFromOutside(ctx, network, addr.String())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	buf := make([]byte, 65536)
	for range 3 {
		if _, err := c.Write(payload); err != nil {
			return nil, err
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		n, err := c.Read(buf)
		if err == nil {
			return buf[:n], nil
		}
	}
	return nil, fmt.Errorf("no UDP reply from %s", addr)
}

// serveEcho runs a TCP echo server in namespace ns on addr.
func serveEcho(t testing.TB, l *lab.Lab, ns, addr string) net.Listener {
	t.Helper()
	ln, err := l.Listen(ns, "tcp", addr, false)
	if err != nil {
		t.Fatal(err)
	}
	tcpserve.Each(t, ln, func(c net.Conn) { io.Copy(c, c) })
	return ln
}

const holdEnv = "NATMAP_E2E_HOLD_PORT"

// holdPortAs starts a process in the lan namespace that, as uid, listens
// on addr (with SO_REUSEPORT or not) and greets every client, like a
// service of another user than natmap's; it returns the greeting.
func holdPortAs(t testing.TB, l *lab.Lab, addr string, uid int, reusePort bool) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := l.Command(ctx, l.LAN, os.Args[0])
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d %t", holdEnv, addr, uid, reusePort))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("port holder: %q %v", line, err)
	}
	return holdGreeting(uid)
}

func holdGreeting(uid int) string { return fmt.Sprintf("hello from uid %d\n", uid) }

func holdPort(spec string) {
	var addr string
	var uid int
	var reusePort bool
	fmt.Sscanf(spec, "%s %d %t", &addr, &uid, &reusePort)
	if err := syscall.Setuid(uid); err != nil {
		fmt.Println("setuid:", err)
		os.Exit(1)
	}
	var lc net.ListenConfig
	if reusePort {
		lc.Control = func(_, _ string, rc syscall.RawConn) error {
			return rc.Control(func(fd uintptr) {
				syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, 0xf /* SO_REUSEPORT */, 1)
			})
		}
	}
	ln, err := lc.Listen(context.Background(), "tcp4", addr)
	if err != nil {
		fmt.Println("listen:", err)
		os.Exit(1)
	}
	defer ln.Close()
	fmt.Println("ready")
	for { // until the test kills it
		c, err := ln.Accept()
		if err != nil {
			return
		}
		io.WriteString(c, holdGreeting(uid))
		c.Close()
	}
}
