package relay

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/testkit/fds"
	"github.com/natmap-go/natmap/internal/testkit/wait"
)

func TestTCPRelaysBothWays(t *testing.T) {
	for _, m := range dialModes {
		t.Run(m.name, func(t *testing.T) {
			target := newServer(t, echo)
			r := m.to(&TCP{}, target.addr())
			addr, _ := startTCP(t, r)

			const size = 4 << 20
			data := make([]byte, size)
			rand.Read(data)
			for range 2 {
				c := dial(t, addr)
				go func() {
					c.Write(data)
					c.CloseWrite()
				}()
				got, err := readAll(t, c, 10*time.Second)
				if err != nil {
					t.Fatalf("read: %v after %d bytes", err, len(got))
				}
				if !bytes.Equal(got, data) {
					t.Fatalf("got %d bytes back, want the %d sent", len(got), size)
				}
				c.Close()
			}
			wait.For(t, 3*time.Second, "no active connection", func() bool { return r.Stats.Active.Load() == 0 })
			if got := r.Stats.Total.Load(); got != 2 {
				t.Errorf("Total = %d, want 2", got)
			}
			if up, down := r.Stats.BytesUp.Load(), r.Stats.BytesDown.Load(); up != 2*size || down != 2*size {
				t.Errorf("BytesUp, BytesDown = %d, %d, want %d each", up, down, 2*size)
			}
		})
	}
}

func TestTCPHalfClose(t *testing.T) {
	for _, m := range dialModes {
		t.Run(m.name, func(t *testing.T) {
			// The target answers only after the client's EOF, then closes.
			target := newServer(t, func(c net.Conn) {
				b, err := io.ReadAll(c)
				if err != nil {
					return
				}
				time.Sleep(100 * time.Millisecond) // the reply comes well after the FIN
				fmt.Fprintf(c, "got %q", b)
			})
			r := m.to(&TCP{}, target.addr())
			addr, _ := startTCP(t, r)

			c := dial(t, addr)
			c.Write([]byte("hello"))
			if err := c.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			got, err := readAll(t, c, 5*time.Second)
			if err != nil {
				t.Fatalf("read after CloseWrite: %v (got %q)", err, got)
			}
			if want := `got "hello"`; string(got) != want {
				t.Fatalf("reply %q, want %q then EOF", got, want)
			}
			wait.For(t, 3*time.Second, "no active connection", func() bool { return r.Stats.Active.Load() == 0 })
			if up, down := r.Stats.BytesUp.Load(), r.Stats.BytesDown.Load(); up != 5 || down != int64(len(got)) {
				t.Errorf("BytesUp, BytesDown = %d, %d, want 5, %d", up, down, len(got))
			}
		})
	}
}

func TestTCPTargetResetPropagates(t *testing.T) {
	for _, m := range dialModes {
		t.Run(m.name, func(t *testing.T) {
			target := newServer(t, func(c net.Conn) {
				io.ReadFull(c, make([]byte, 1))
				c.(*net.TCPConn).SetLinger(0) // reset
			})
			addr, _ := startTCP(t, m.to(&TCP{}, target.addr()))
			c := dial(t, addr)
			c.Write([]byte("x"))
			_, err := readAll(t, c, 5*time.Second)
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("client read after the target's reset: %v, want a reset", err)
			}
		})
	}
}

func TestTCPTargetRefuses(t *testing.T) {
	for _, m := range dialModes {
		t.Run(m.name, func(t *testing.T) {
			l := listenTCP(t)
			refusing := l.Addr().String()
			l.Close()
			log, logs := newLog()
			r := m.to(&TCP{Log: log}, refusing)
			addr, _ := startTCP(t, r)

			// On loopback the reset can beat the end of the client's connect.
			c, err := net.Dial("tcp4", addr)
			var got []byte
			if err == nil {
				got, err = readAll(t, c, 5*time.Second)
				c.Close()
			}
			if len(got) != 0 || !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("client: %q, %v; want a reset", got, err)
			}
			wait.For(t, 3*time.Second, "no active connection", func() bool { return r.Stats.Active.Load() == 0 })
			if n := logs.count("target dial failed"); n != 1 || logs.count("connection refused") != 1 {
				t.Fatalf("want one log line with the reason, got:\n%s", logs)
			}
			if got := r.Stats.Total.Load(); got != 1 {
				t.Errorf("Total = %d, want 1", got)
			}
		})
	}
}

func TestTCPIdleTimeout(t *testing.T) {
	for _, m := range dialModes {
		t.Run(m.name, func(t *testing.T) {
			target := newServer(t, echo)
			log, logs := newLog()
			const idle = time.Second
			r := m.to(&TCP{IdleTimeout: idle, Log: log}, target.addr())
			addr, _ := startTCP(t, r)

			c := dial(t, addr)
			c.Write([]byte("x"))
			if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
				t.Fatal(err)
			}
			last := time.Now()
			got, err := readAll(t, c, 3*idle)
			took := time.Since(last)
			if err != nil || len(got) != 0 {
				t.Fatalf("idle connection: read %q, %v; want EOF", got, err)
			}
			// TCP_INFO counts in jiffies (up to 10 ms with HZ=100). The reaper
			// closes within ~10 ms of the timeout; the slack is for loaded test
			// machines.
			if took < idle-20*time.Millisecond || took > idle+idle/2 {
				t.Fatalf("idle connection closed after %v, want %v", took, idle)
			}
			t.Logf("closed %v after the last byte (IdleTimeout %v)", took, idle)
			wait.For(t, 3*time.Second, "one idle close logged", func() bool { return logs.count("idle connection closed") == 1 })
		})
	}
}

func TestTCPSlowTrickleStaysOpen(t *testing.T) {
	const idle, every, lasting = time.Second, 200 * time.Millisecond, 3 * time.Second
	t.Run("client sends", func(t *testing.T) {
		t.Parallel()
		var got atomic.Int64
		target := newServer(t, func(c net.Conn) {
			n, _ := io.Copy(io.Discard, c)
			got.Add(n)
		})
		addr, _ := startTCP(t, &TCP{Dial: dialTCP(target.addr()), IdleTimeout: idle})
		c := dial(t, addr)
		var sent int64
		for end := time.Now().Add(lasting); time.Now().Before(end); sent++ {
			if _, err := c.Write([]byte("k")); err != nil {
				t.Fatalf("write after %d bytes: %v", sent, err)
			}
			time.Sleep(every)
		}
		c.CloseWrite()
		if _, err := readAll(t, c, 3*time.Second); err != nil {
			t.Fatalf("connection broken by the trickle's end: %v", err)
		}
		wait.For(t, 3*time.Second, "the target to get every byte", func() bool { return got.Load() == sent })
	})
	t.Run("target sends", func(t *testing.T) {
		t.Parallel()
		var sent atomic.Int64
		target := newServer(t, func(c net.Conn) {
			for end := time.Now().Add(lasting); time.Now().Before(end); sent.Add(1) {
				if _, err := c.Write([]byte("k")); err != nil {
					return
				}
				time.Sleep(every)
			}
		})
		addr, _ := startTCP(t, &TCP{Dial: dialTCP(target.addr()), IdleTimeout: idle})
		start := time.Now()
		c := dial(t, addr)
		got, err := readAll(t, c, 2*lasting)
		if took := time.Since(start); err != nil || int64(len(got)) != sent.Load() || took < lasting {
			t.Fatalf("read %d bytes of %d, %v, after %v; want all then EOF after %v", len(got), sent.Load(), err, took, lasting)
		}
	})
}

func TestTCPLiveByteCounters(t *testing.T) {
	// A connection that stays open shows its bytes as they move.
	target := newServer(t, echo)
	r := &TCP{Dial: dialTCP(target.addr())}
	addr, _ := startTCP(t, r)
	const size = 1 << 20
	c := dial(t, addr)
	go c.Write(make([]byte, size))
	if _, err := io.ReadFull(c, make([]byte, size)); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 3*sweepEvery, "live counters", func() bool {
		return r.Stats.BytesUp.Load() == size && r.Stats.BytesDown.Load() == size
	})
	c.Write([]byte("x"))
	io.ReadFull(c, make([]byte, 1))
	c.Close()
	wait.For(t, 3*time.Second, "exact counters at the end", func() bool {
		return r.Stats.Active.Load() == 0 && r.Stats.BytesUp.Load() == size+1 && r.Stats.BytesDown.Load() == size+1
	})
}

func TestTCPServeEndClosesEverything(t *testing.T) {
	goroutines, openFDs := runtime.NumGoroutine(), fds.Count(t)
	func() {
		// Echoes, and holds a half-closed connection open.
		hold := make(chan struct{})
		target := newServer(t, func(c net.Conn) {
			io.Copy(c, c)
			<-hold
		})
		defer target.close()
		defer close(hold)
		dialing := make(chan struct{})
		var dials atomic.Int32
		r := &TCP{
			Dial: func(ctx context.Context) (net.Conn, error) {
				if dials.Add(1) == 3 { // hangs until Serve ends
					close(dialing)
					<-ctx.Done()
					return nil, ctx.Err()
				}
				return dialTCP(target.addr())(ctx)
			},
			Listener: listenTCP(t),
			Stats:    new(Stats),
		}
		stop := serve(t, r.Serve)
		addr := r.Listener.Addr().String()

		active := dial(t, addr)
		active.Write([]byte("x"))
		io.ReadFull(active, make([]byte, 1))
		halfClosed := dial(t, addr)
		halfClosed.CloseWrite()
		hanging := dial(t, addr)
		<-dialing
		wait.For(t, 3*time.Second, "three connections up", func() bool { return r.Stats.Active.Load() == 3 })

		if err := stop(); !errors.Is(err, context.Canceled) {
			t.Errorf("Serve = %v, want context.Canceled", err)
		}
		for _, c := range []*net.TCPConn{active, halfClosed, hanging} {
			if _, err := readAll(t, c, 3*time.Second); errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("connection %v still open after Serve returned", c.LocalAddr())
			}
			c.Close()
		}
		if n := r.Stats.Active.Load(); n != 0 {
			t.Errorf("Active = %d after Serve returned", n)
		}
		if c, err := net.Dial("tcp4", addr); err == nil {
			c.Close()
			t.Error("listener still open after Serve returned")
		}
	}()
	checkNoLeaks(t, goroutines, openFDs)
}

// echoUserSpace echoes through user space: io.Copy would splice with pipes
// of its own, which tests counting the relay's pipes must not see.
func echoUserSpace(c net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if err != nil {
			if tc, ok := c.(*net.TCPConn); ok && err == io.EOF {
				tc.CloseWrite()
			}
			return
		}
		if _, err := c.Write(buf[:n]); err != nil {
			return
		}
	}
}

// pipeCount is how many pipe fds this process has open.
func pipeCount(t testing.TB) int {
	t.Helper()
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range es {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(l, "pipe:") {
			n++
		}
	}
	return n
}

// TestTCPIdleConnectionsHoldNoPipes: a direction holds a splice pipe only
// while bytes are in flight, so many idle relayed connections cost their
// sockets alone, and the relay keeps few spare pipes.
func TestTCPIdleConnectionsHoldNoPipes(t *testing.T) {
	for _, m := range dialModes {
		t.Run(m.name, func(t *testing.T) {
			target := newServer(t, echoUserSpace)
			r := m.to(&TCP{}, target.addr())
			addr, stop := startTCP(t, r)
			before := pipeCount(t)

			const conns = 3 * maxIdlePipes
			var cs []*net.TCPConn
			for range conns {
				c := dial(t, addr)
				cs = append(cs, c)
				if _, err := c.Write([]byte("x")); err != nil {
					t.Fatal(err)
				}
			}
			for _, c := range cs {
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
					t.Fatal(err)
				}
			}
			wait.For(t, 3*time.Second, "the relay to hold at most its idle pipes", func() bool {
				return pipeCount(t)-before <= 2*maxIdlePipes // two fds a pipe
			})
			if err := stop(); err != nil && !errors.Is(err, context.Canceled) {
				t.Fatal(err)
			}
			if n := pipeCount(t) - before; n > 0 {
				t.Errorf("%d pipe fds left open after Serve returned", n)
			}
		})
	}
}

// TestTCPTargetNotASocket: a Dial that returns something other than a
// socket (a net.Pipe here) is relayed through user space, both ways.
func TestTCPTargetNotASocket(t *testing.T) {
	r := &TCP{Dial: func(context.Context) (net.Conn, error) {
		a, b := net.Pipe()
		go func() {
			echo(b)
			b.Close()
		}()
		return a, nil
	}}
	addr, _ := startTCP(t, r)
	c := dial(t, addr)
	const msg = "through user space"
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg)) // a net.Pipe cannot be half-closed: no EOF
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
		t.Fatalf("got %q, %v; want %q", got, err, msg)
	}
	wait.For(t, 3*time.Second, "byte counters", func() bool {
		return r.Stats.BytesUp.Load() == int64(len(msg)) && r.Stats.BytesDown.Load() == int64(len(msg))
	})
}

// TestTCPManyAtOnce: connections relayed at once share the pipe free list
// without mixing their bytes; afterwards the relay keeps few spare pipes.
func TestTCPManyAtOnce(t *testing.T) {
	for _, m := range dialModes {
		t.Run(m.name, func(t *testing.T) {
			target := newServer(t, echoUserSpace)
			r := m.to(&TCP{}, target.addr())
			addr, stop := startTCP(t, r)
			before := pipeCount(t)
			const conns, size = 64, 256 << 10
			errs := make(chan error, conns)
			for range conns {
				go func() {
					errs <- func() error {
						c, err := net.Dial("tcp4", addr)
						if err != nil {
							return err
						}
						defer c.Close()
						data := make([]byte, size)
						rand.Read(data)
						go func() {
							c.Write(data)
							c.(*net.TCPConn).CloseWrite()
						}()
						c.SetReadDeadline(time.Now().Add(20 * time.Second))
						got, err := io.ReadAll(c)
						if err != nil {
							return err
						}
						if !bytes.Equal(got, data) {
							return fmt.Errorf("got %d bytes back, not the %d sent", len(got), size)
						}
						return nil
					}()
				}()
			}
			for range conns {
				if err := <-errs; err != nil {
					t.Error(err)
				}
			}
			wait.For(t, 3*time.Second, "no active connection", func() bool { return r.Stats.Active.Load() == 0 })
			if up, down := r.Stats.BytesUp.Load(), r.Stats.BytesDown.Load(); up != conns*size || down != conns*size {
				t.Errorf("BytesUp, BytesDown = %d, %d, want %d each", up, down, conns*size)
			}
			if n := pipeCount(t) - before; n > 2*maxIdlePipes {
				t.Errorf("%d pipe fds open with no connection left, want at most %d", n, 2*maxIdlePipes)
			}
			if err := stop(); err != nil && !errors.Is(err, context.Canceled) {
				t.Fatal(err)
			}
		})
	}
}
