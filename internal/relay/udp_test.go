package relay

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/testkit/fds"
	"github.com/natmap-go/natmap/internal/testkit/wait"
)

// bigBuffers lets loopback sockets queue several 64 KiB datagrams.
const bigBuffers = 1 << 20

func listenUDP(t testing.TB) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadBuffer(bigBuffers)
	c.SetWriteBuffer(bigBuffers)
	return c
}

// udpTarget answers every datagram with reply(datagram, sender) until the
// test ends.
func udpTarget(t testing.TB, reply func(b []byte, from net.Addr) []byte) string {
	t.Helper()
	addr, stop := newUDPTarget(t, reply)
	t.Cleanup(stop)
	return addr
}

// newUDPTarget is udpTarget until stop.
func newUDPTarget(t testing.TB, reply func(b []byte, from net.Addr) []byte) (addr string, stop func()) {
	t.Helper()
	c := listenUDP(t)
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, maxDatagram)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			c.WriteTo(reply(buf[:n], from), from)
		}
	})
	return c.LocalAddr().String(), func() {
		c.Close()
		wg.Wait()
	}
}

func udpEcho(b []byte, _ net.Addr) []byte { return b }

func dialUDP(addr string) func(context.Context) (*net.UDPConn, error) {
	return func(ctx context.Context) (*net.UDPConn, error) {
		raddr, err := net.ResolveUDPAddr("udp4", addr)
		if err != nil {
			return nil, err
		}
		c, err := net.DialUDP("udp4", nil, raddr)
		if err != nil {
			return nil, err
		}
		c.SetReadBuffer(bigBuffers)
		c.SetWriteBuffer(bigBuffers)
		return c, nil
	}
}

// startUDP starts r (Conn, Stats filled in when nil) and returns the relay's
// address.
func startUDP(t testing.TB, r *UDP) (addr string, stop func() error) {
	t.Helper()
	if r.Conn == nil {
		r.Conn = listenUDP(t)
	}
	if r.Stats == nil {
		r.Stats = new(Stats)
	}
	return r.Conn.LocalAddr().String(), serve(t, r.Serve)
}

func udpClient(t testing.TB, relay string) *net.UDPConn {
	t.Helper()
	c, err := dialUDP(relay)(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// exchange sends b and returns the answer, failing after 3 s.
func exchange(t testing.TB, c *net.UDPConn, b []byte) []byte {
	t.Helper()
	if _, err := c.Write(b); err != nil {
		t.Fatalf("send %d bytes: %v", len(b), err)
	}
	buf := make([]byte, maxDatagram)
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no answer to %d bytes: %v", len(b), err)
	}
	return buf[:n]
}

// silent fails if c receives anything within d.
func silent(t testing.TB, c *net.UDPConn, d time.Duration) {
	t.Helper()
	buf := make([]byte, maxDatagram)
	c.SetReadDeadline(time.Now().Add(d))
	if n, err := c.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("got %q, %v; want nothing", buf[:n], err)
	}
}

func TestUDPBigDatagramsWhole(t *testing.T) {
	r := &UDP{Dial: dialUDP(udpTarget(t, udpEcho))}
	addr, _ := startUDP(t, r)
	c := udpClient(t, addr)
	var total int64
	for _, size := range []int{1, 2048, 2049, 9000, 65000, 65507} { // 65507: IPv4's largest
		b := make([]byte, size)
		rand.Read(b)
		if got := exchange(t, c, b); !bytes.Equal(got, b) {
			t.Fatalf("sent %d bytes, got %d back, not the same", size, len(got))
		}
		total += int64(size)
	}
	if n := r.Stats.Total.Load(); n != 1 {
		t.Errorf("Total = %d, want 1 session", n)
	}
	// The relay counts a reply after sending it: the client may read it
	// first.
	wait.For(t, 3*time.Second, fmt.Sprintf("BytesUp and BytesDown %d each", total), func() bool {
		return r.Stats.BytesUp.Load() == total && r.Stats.BytesDown.Load() == total
	})
}

func TestUDPSessionPerClient(t *testing.T) {
	// The target names the source it saw: each session has its own.
	target := udpTarget(t, func(b []byte, from net.Addr) []byte {
		return fmt.Appendf(nil, "%s from %s", b, from)
	})
	r := &UDP{Dial: dialUDP(target)}
	addr, _ := startUDP(t, r)
	a, b := udpClient(t, addr), udpClient(t, addr)
	sources := map[string]string{}
	for i := range 3 {
		for name, c := range map[string]*net.UDPConn{"a": a, "b": b} {
			msg := fmt.Sprintf("%s%d", name, i)
			var got, from string
			fmt.Sscanf(string(exchange(t, c, []byte(msg))), "%s from %s", &got, &from)
			if got != msg {
				t.Fatalf("client %s sent %q, got %q", name, msg, got)
			}
			if old, ok := sources[name]; ok && old != from {
				t.Fatalf("client %s's session moved from %s to %s", name, old, from)
			}
			sources[name] = from
		}
	}
	if sources["a"] == sources["b"] {
		t.Fatalf("both clients reached the target from %s, want a session each", sources["a"])
	}
	silent(t, a, 100*time.Millisecond) // nothing of b's
	if total, active := r.Stats.Total.Load(), r.Stats.Active.Load(); total != 2 || active != 2 {
		t.Errorf("Total, Active = %d, %d, want 2, 2", total, active)
	}
}

func TestUDPIdleSessionReaped(t *testing.T) {
	log, logs := newLog()
	const idle = time.Second
	r := &UDP{Dial: dialUDP(udpTarget(t, udpEcho)), IdleTimeout: idle, Log: log}
	addr, _ := startUDP(t, r)
	quiet, busy := udpClient(t, addr), udpClient(t, addr)

	// busy keeps its session for 3*idle with a datagram every idle/5.
	exchange(t, busy, []byte("y"))
	busyDone := make(chan error, 1)
	go func() {
		buf := make([]byte, 16)
		for end := time.Now().Add(3 * idle); time.Now().Before(end); time.Sleep(idle / 5) {
			busy.Write([]byte("y"))
			busy.SetReadDeadline(time.Now().Add(3 * time.Second))
			if _, err := busy.Read(buf); err != nil {
				busyDone <- err
				return
			}
		}
		busyDone <- nil
	}()

	exchange(t, quiet, []byte("x"))
	last := time.Now()
	wait.For(t, 2*idle, "the idle session reaped", func() bool { return r.Stats.Active.Load() == 1 })
	// The slack is for loaded test machines.
	took := time.Since(last)
	if took < idle || took > idle+idle/2 {
		t.Errorf("idle session reaped after %v, want %v", took, idle)
	}
	t.Logf("reaped %v after the last datagram (IdleTimeout %v)", took, idle)
	if err := <-busyDone; err != nil {
		t.Fatalf("busy client: %v", err)
	}
	if n := logs.count("idle session closed"); n != 1 {
		t.Errorf("%d idle closes logged, want 1:\n%s", n, logs)
	}
	// The quiet client comes back: a new session; busy kept its first.
	exchange(t, quiet, []byte("x"))
	if total, active := r.Stats.Total.Load(), r.Stats.Active.Load(); total != 3 || active != 2 {
		t.Errorf("Total, Active = %d, %d, want 3, 2", total, active)
	}
}

func TestUDPMaxSessions(t *testing.T) {
	log, logs := newLog()
	r := &UDP{Dial: dialUDP(udpTarget(t, udpEcho)), MaxSessions: 1, Log: log}
	addr, _ := startUDP(t, r)
	first, second := udpClient(t, addr), udpClient(t, addr)
	exchange(t, first, []byte("1"))
	for range 5 {
		second.Write([]byte("2"))
	}
	silent(t, second, 200*time.Millisecond)
	exchange(t, first, []byte("1")) // unharmed
	if n := logs.count("session limit reached"); n != 1 {
		t.Errorf("%d session-limit lines logged for 5 drops, want 1:\n%s", n, logs)
	}
}

func TestUDPTargetDialFails(t *testing.T) {
	log, logs := newLog()
	r := &UDP{
		Dial: func(context.Context) (*net.UDPConn, error) { return nil, errors.New("no route today") },
		Log:  log,
	}
	addr, _ := startUDP(t, r)
	c := udpClient(t, addr)
	for range 5 {
		c.Write([]byte("x"))
	}
	silent(t, c, 100*time.Millisecond)
	if n := logs.count("target dial failed"); n != 1 || logs.count("no route today") != 1 {
		t.Errorf("want one dial failure line with the reason, got:\n%s", logs)
	}
}

func TestUDPServeEndClosesEverything(t *testing.T) {
	goroutines, openFDs := runtime.NumGoroutine(), fds.Count(t)
	func() {
		target, stopTarget := newUDPTarget(t, udpEcho)
		defer stopTarget()
		r := &UDP{Dial: dialUDP(target), Conn: listenUDP(t), Stats: new(Stats)}
		stop := serve(t, r.Serve)
		var clients []*net.UDPConn
		for range 3 {
			c := udpClient(t, r.Conn.LocalAddr().String())
			exchange(t, c, []byte("x"))
			clients = append(clients, c)
		}
		if err := stop(); !errors.Is(err, context.Canceled) {
			t.Errorf("Serve = %v, want context.Canceled", err)
		}
		if n := r.Stats.Active.Load(); n != 0 {
			t.Errorf("Active = %d after Serve returned", n)
		}
		for _, c := range clients {
			c.Close()
		}
	}()
	checkNoLeaks(t, goroutines, openFDs)
}

func TestUDPTargetComesBack(t *testing.T) {
	// While the target port is closed, ICMP errors reach the session's
	// socket; the session survives them and the first datagram after the
	// target is back is not lost to a stale error.
	down := listenUDP(t)
	target := down.LocalAddr().String()
	down.Close()
	r := &UDP{Dial: dialUDP(target)}
	addr, _ := startUDP(t, r)
	c := udpClient(t, addr)
	for range 3 {
		c.Write([]byte("anyone?"))
		time.Sleep(20 * time.Millisecond)
	}
	silent(t, c, 50*time.Millisecond)

	laddr, _ := net.ResolveUDPAddr("udp4", target)
	up, err := net.ListenUDP("udp4", laddr)
	if err != nil {
		t.Skipf("cannot take the target port back: %v", err)
	}
	defer up.Close()
	c.Write([]byte("hello"))
	buf := make([]byte, 64)
	up.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, from, err := up.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("target got %q, %v; want the first datagram after its return", buf[:n], err)
	}
	up.WriteTo([]byte("hi"), from)
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "hi" {
		t.Fatalf("client got %q, %v; want the reply", buf[:n], err)
	}
	if total := r.Stats.Total.Load(); total != 1 {
		t.Errorf("Total = %d, want the one session throughout", total)
	}
}
