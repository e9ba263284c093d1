package relay

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/testkit/fds"
	"github.com/natmap-go/natmap/internal/testkit/wait"
)

// server runs handle for every connection accepted on 127.0.0.1 until the
// test ends, then closes everything and waits for its goroutines.
type server struct {
	l     net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]bool
}

func newServer(t testing.TB, handle func(net.Conn)) *server {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{l: l, conns: map[net.Conn]bool{}}
	s.wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = true
			s.mu.Unlock()
			s.wg.Go(func() {
				defer c.Close()
				handle(c)
			})
		}
	})
	t.Cleanup(s.close)
	return s
}

func (s *server) addr() string { return s.l.Addr().String() }

func (s *server) close() {
	s.l.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// echo writes back what it reads and closes at EOF.
func echo(c net.Conn) { io.Copy(c, c) }

func dialTCP(addr string) func(context.Context) (net.Conn, error) {
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp4", addr)
	}
}

func listenTCP(t testing.TB) *net.TCPListener {
	t.Helper()
	l, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// serve runs r.Serve in the background; stop ends it and returns its error.
func serve(t testing.TB, run func(context.Context) error) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Serve did not return within 5 s of its context's end")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

// startTCP starts r (Listener, Stats filled in when nil) and returns the
// relay's address.
func startTCP(t testing.TB, r *TCP) (addr string, stop func() error) {
	t.Helper()
	if r.Listener == nil {
		r.Listener = listenTCP(t)
	}
	if r.Stats == nil {
		r.Stats = new(Stats)
	}
	return r.Listener.Addr().String(), serve(t, r.Serve)
}

func dial(t testing.TB, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// logs is a goroutine-safe log sink.
type logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logs) count(s string) int { return strings.Count(l.String(), s) }

func newLog() (*slog.Logger, *logs) {
	l := new(logs)
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug})), l
}

// checkNoLeaks fails unless goroutines and fds come back to the counts
// before. The runtime keeps splice pipes in a sync.Pool: only GCs free them.
func checkNoLeaks(t testing.TB, goroutines, openFDs int) {
	t.Helper()
	wait.For(t, 5*time.Second, "goroutines and fds back to their counts before (else a leak)", func() bool {
		runtime.GC()
		return runtime.NumGoroutine() <= goroutines && fds.Count(t) <= openFDs
	})
}

// readAll reads c to its end, failing after d.
func readAll(t testing.TB, c net.Conn, d time.Duration) ([]byte, error) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	return io.ReadAll(c)
}

// dialModes are the two ways a TCP relay reaches its target: Dial (a
// net.Conn from the caller, dialed on a goroutine) and Target (the relay's
// own connect, from its event loop).
var dialModes = []struct {
	name string
	to   func(r *TCP, addr string) *TCP
}{
	{"Dial", func(r *TCP, addr string) *TCP { r.Dial = dialTCP(addr); return r }},
	{"Target", func(r *TCP, addr string) *TCP {
		ap := netip.MustParseAddrPort(addr)
		r.Target = func() netip.AddrPort { return ap }
		return r
	}},
}
