package stun

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/testkit/stunserver"
	pion "github.com/pion/stun/v3"
)

// The servers are internal/testkit/stunserver's, on 127.0.0.1, with replies
// each test scripts, so that hostile behaviour can be played exactly.

func dial(t *testing.T, network, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	// Closing the client also ends handlers that wait for it to go away.
	t.Cleanup(func() { c.Close() })
	return c
}

// peerAddr is the address a real server would report: the client's.
func peerAddr(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.AddrPort()
	case *net.UDPAddr:
		return a.AddrPort()
	}
	panic("unexpected address type")
}

func localAddr(c net.Conn) netip.AddrPort { return peerAddr(c.LocalAddr()) }

// waitClose blocks until the client closes (or the handler deadline hits).
func waitClose(c net.Conn) { io.Copy(io.Discard, c) }

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestBindTCP(t *testing.T) {
	tests := []struct {
		name  string
		serve func(c net.Conn, req *pion.Message)
		want  func(c net.Conn) netip.AddrPort // nil: the client's own address
		err   error
	}{
		{
			name: "xor-mapped-address",
			serve: func(c net.Conn, req *pion.Message) {
				c.Write(build(pion.BindingSuccess, req.TransactionID, pion.NewSoftware("test"), xorAddr(peerAddr(c.RemoteAddr())), pion.Fingerprint))
			},
		},
		{
			name: "mapped-address only",
			serve: func(c net.Conn, req *pion.Message) {
				c.Write(build(pion.BindingSuccess, req.TransactionID, mappedAddr(peerAddr(c.RemoteAddr()))))
			},
		},
		{
			name: "ipv6 xor-mapped-address",
			serve: func(c net.Conn, req *pion.Message) {
				c.Write(build(pion.BindingSuccess, req.TransactionID, xorAddr(v6Addr)))
			},
			want: func(net.Conn) netip.AddrPort { return v6Addr },
		},
		{
			name: "byte by byte, slowly",
			serve: func(c net.Conn, req *pion.Message) {
				for _, b := range build(pion.BindingSuccess, req.TransactionID, xorAddr(peerAddr(c.RemoteAddr()))) {
					if _, err := c.Write([]byte{b}); err != nil {
						return
					}
					time.Sleep(10 * time.Millisecond)
				}
			},
		},
		{
			name: "wrong transaction id",
			serve: func(c net.Conn, req *pion.Message) {
				c.Write(build(pion.BindingSuccess, otherTID, xorAddr(peerAddr(c.RemoteAddr()))))
			},
			err: ErrTransactionMismatch,
		},
		{
			name: "request echoed back",
			serve: func(c net.Conn, req *pion.Message) {
				c.Write(req.Raw)
			},
			err: ErrNotResponse,
		},
		{
			name: "wrong method",
			serve: func(c net.Conn, req *pion.Message) {
				c.Write(build(pion.NewType(pion.MethodRefresh, pion.ClassSuccessResponse), req.TransactionID, xorAddr(v4Addr)))
			},
			err: ErrWrongMethod,
		},
		{
			name: "not stun",
			serve: func(c net.Conn, req *pion.Message) {
				c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
			},
			err: ErrNotSTUN,
		},
		{
			name: "wrong magic cookie",
			serve: func(c net.Conn, req *pion.Message) {
				raw := build(pion.BindingSuccess, req.TransactionID, xorAddr(v4Addr))
				c.Write(patch(raw, func(b []byte) []byte { b[7] = 0; return b }))
			},
			err: ErrBadMagicCookie,
		},
		{
			name: "truncated header",
			serve: func(c net.Conn, req *pion.Message) {
				c.Write(build(pion.BindingSuccess, req.TransactionID, xorAddr(v4Addr))[:10])
			},
			err: ErrTruncated,
		},
		{
			name: "truncated body",
			serve: func(c net.Conn, req *pion.Message) {
				raw := build(pion.BindingSuccess, req.TransactionID, xorAddr(v4Addr))
				c.Write(raw[:len(raw)-3])
			},
			err: ErrTruncated,
		},
		{
			name: "length over cap, then endless data",
			serve: func(c net.Conn, req *pion.Message) {
				hdr := setLen(build(pion.BindingSuccess, req.TransactionID), 0xFFFC)
				if _, err := c.Write(hdr); err != nil {
					return
				}
				junk := make([]byte, 64<<10)
				for { // until the client hangs up
					if _, err := c.Write(junk); err != nil {
						return
					}
				}
			},
			err: ErrTooLarge,
		},
		{
			name: "attribute with bogus length",
			serve: func(c net.Conn, req *pion.Message) {
				raw := build(pion.BindingSuccess, req.TransactionID, xorAddr(v4Addr))
				binary.BigEndian.PutUint16(raw[headerSize+2:], 0x0400)
				c.Write(raw)
				waitClose(c)
			},
			err: ErrBadAttribute,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, "tcp", stunserver.TCP(t, tc.serve))
			got, err := BindTCP(ctxTimeout(t, 5*time.Second), c)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				t.Logf("error as reported: %v", err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := localAddr(c)
			if tc.want != nil {
				want = tc.want(c)
			}
			if got != want {
				t.Fatalf("got %v, want %v", got, want)
			}
		})
	}
}

func TestBindTCPErrorResponse(t *testing.T) {
	addr := stunserver.TCP(t, func(c net.Conn, req *pion.Message) {
		c.Write(build(pion.BindingError, req.TransactionID, pion.ErrorCodeAttribute{Code: 420, Reason: []byte("Unknown Attribute")}))
	})
	_, err := BindTCP(ctxTimeout(t, 5*time.Second), dial(t, "tcp", addr))
	var re *ResponseError
	if !errors.As(err, &re) || re.Code != 420 || re.Reason != "Unknown Attribute" {
		t.Fatalf("err = %v, want Binding error response 420", err)
	}
}

// checkPrompt asserts that err is ctx's error and came soon after start+d.
func checkPrompt(t *testing.T, err, want error, start time.Time, d time.Duration) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
	if el := time.Since(start); el < d || el > d+time.Second {
		t.Fatalf("returned after %v, want about %v", el, d)
	}
}

func TestBindTCPSilentServer(t *testing.T) {
	addr := stunserver.TCP(t, func(c net.Conn, _ *pion.Message) { waitClose(c) })
	c := dial(t, "tcp", addr)
	start := time.Now()
	_, err := BindTCP(ctxTimeout(t, 200*time.Millisecond), c)
	checkPrompt(t, err, context.DeadlineExceeded, start, 200*time.Millisecond)
}

func TestBindTCPCancel(t *testing.T) {
	addr := stunserver.TCP(t, func(c net.Conn, _ *pion.Message) { waitClose(c) })
	c := dial(t, "tcp", addr)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(150*time.Millisecond, cancel)
	start := time.Now()
	_, err := BindTCP(ctx, c)
	checkPrompt(t, err, context.Canceled, start, 150*time.Millisecond)
}

func TestBindTCPContextAlreadyDone(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	addr := stunserver.TCP(t, func(c net.Conn, _ *pion.Message) { waitClose(c) })
	if _, err := BindTCP(ctx, dial(t, "tcp", addr)); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// After BindTCP, conn must carry no deadline: natmap keeps using it.
func TestBindTCPClearsDeadline(t *testing.T) {
	addr := stunserver.TCP(t, func(c net.Conn, req *pion.Message) {
		c.Write(build(pion.BindingSuccess, req.TransactionID, xorAddr(peerAddr(c.RemoteAddr()))))
		time.Sleep(400 * time.Millisecond) // past the ctx deadline below
		c.Write([]byte{'!'})
	})
	c := dial(t, "tcp", addr)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := BindTCP(ctx, c); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read after BindTCP: %v (deadline left on conn?)", err)
	}
}

func TestBindUDP(t *testing.T) {
	big := make([]byte, 4096)
	tests := []struct {
		name  string
		reply func(n int, from netip.AddrPort, req *pion.Message) [][]byte
		want  netip.AddrPort // zero: the client's own address
		err   error
		code  int
	}{
		{
			name: "xor-mapped-address",
			reply: func(_ int, from netip.AddrPort, req *pion.Message) [][]byte {
				return [][]byte{build(pion.BindingSuccess, req.TransactionID, xorAddr(from), pion.Fingerprint)}
			},
		},
		{
			name: "mapped-address only",
			reply: func(_ int, from netip.AddrPort, req *pion.Message) [][]byte {
				return [][]byte{build(pion.BindingSuccess, req.TransactionID, mappedAddr(from))}
			},
		},
		{
			name: "ipv6 xor-mapped-address",
			reply: func(_ int, _ netip.AddrPort, req *pion.Message) [][]byte {
				return [][]byte{build(pion.BindingSuccess, req.TransactionID, xorAddr(v6Addr))}
			},
			want: v6Addr,
		},
		{
			name: "strays skipped, then the right reply",
			reply: func(_ int, from netip.AddrPort, req *pion.Message) [][]byte {
				good := build(pion.BindingSuccess, req.TransactionID, xorAddr(from))
				return [][]byte{
					build(pion.BindingSuccess, otherTID, xorAddr(v4Addr)), // wrong transaction
					[]byte("garbage"), // shorter than a header
					patch(good, func(b []byte) []byte { b[5] ^= 1; return b }),    // bad cookie
					patch(good, func(b []byte) []byte { b[0] |= 0x40; return b }), // not STUN
					req.Raw, // our own request reflected
					good,
				}
			},
		},
		{
			name: "error response is fatal",
			reply: func(_ int, _ netip.AddrPort, req *pion.Message) [][]byte {
				return [][]byte{build(pion.BindingError, req.TransactionID, pion.ErrorCodeAttribute{Code: 420, Reason: []byte("Unknown Attribute")})}
			},
			code: 420,
		},
		{
			name: "wrong method for our transaction is fatal",
			reply: func(_ int, _ netip.AddrPort, req *pion.Message) [][]byte {
				return [][]byte{build(pion.NewType(pion.MethodAllocate, pion.ClassSuccessResponse), req.TransactionID, xorAddr(v4Addr))}
			},
			err: ErrWrongMethod,
		},
		{
			name: "length over cap",
			reply: func(_ int, _ netip.AddrPort, req *pion.Message) [][]byte {
				return [][]byte{setLen(append(build(pion.BindingSuccess, req.TransactionID), big...), len(big))}
			},
			err: ErrTooLarge,
		},
		{
			name: "truncated body",
			reply: func(_ int, _ netip.AddrPort, req *pion.Message) [][]byte {
				raw := build(pion.BindingSuccess, req.TransactionID, xorAddr(v4Addr))
				return [][]byte{raw[:len(raw)-4]}
			},
			err: ErrTruncated,
		},
		{
			name: "attribute with bogus length",
			reply: func(_ int, _ netip.AddrPort, req *pion.Message) [][]byte {
				raw := build(pion.BindingSuccess, req.TransactionID, xorAddr(v4Addr))
				binary.BigEndian.PutUint16(raw[headerSize+2:], 0xFFFF)
				return [][]byte{raw}
			},
			err: ErrBadAttribute,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, "udp", stunserver.UDP(t, tc.reply))
			start := time.Now()
			got, err := BindUDP(ctxTimeout(t, 5*time.Second), c, time.Second)
			if time.Since(start) > 900*time.Millisecond {
				t.Errorf("took %v: the first reply should have settled it", time.Since(start))
			}
			switch {
			case tc.code != 0:
				var re *ResponseError
				if !errors.As(err, &re) || re.Code != tc.code {
					t.Fatalf("err = %v, want error response %d", err, tc.code)
				}
			case tc.err != nil:
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				want := tc.want
				if !want.IsValid() {
					want = localAddr(c)
				}
				if got != want {
					t.Fatalf("got %v, want %v", got, want)
				}
			}
		})
	}
}

func TestBindUDPRetransmits(t *testing.T) {
	const rto = 40 * time.Millisecond
	var (
		mu    sync.Mutex
		tids  [][12]byte
		times []time.Time
	)
	addr := stunserver.UDP(t, func(n int, from netip.AddrPort, req *pion.Message) [][]byte {
		mu.Lock()
		defer mu.Unlock()
		tids = append(tids, req.TransactionID)
		times = append(times, time.Now())
		if n < 3 {
			return nil // lost
		}
		return [][]byte{build(pion.BindingSuccess, req.TransactionID, xorAddr(from))}
	})
	c := dial(t, "udp", addr)
	got, err := BindUDP(ctxTimeout(t, 5*time.Second), c, rto)
	if err != nil {
		t.Fatal(err)
	}
	if got != localAddr(c) {
		t.Fatalf("got %v, want %v", got, localAddr(c))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(tids) != 3 || tids[0] != tids[1] || tids[1] != tids[2] {
		t.Fatalf("requests seen: %x, want 3 with one transaction id", tids)
	}
	// Timers never fire early, so lower bounds are safe to assert.
	if g1, g2 := times[1].Sub(times[0]), times[2].Sub(times[1]); g1 < rto || g2 < 2*rto {
		t.Fatalf("retransmission gaps %v, %v; want at least %v, %v", g1, g2, rto, 2*rto)
	}
}

func TestBindUDPBackoffIsCapped(t *testing.T) {
	const rto = 5 * time.Millisecond
	var (
		mu    sync.Mutex
		times []time.Time
	)
	addr := stunserver.UDP(t, func(int, netip.AddrPort, *pion.Message) [][]byte {
		mu.Lock()
		defer mu.Unlock()
		times = append(times, time.Now())
		return nil
	})
	// Uncapped, 5 ms doubling sends 8 requests in 1.2 s; capped at 80 ms, 18.
	_, err := BindUDP(ctxTimeout(t, 1200*time.Millisecond), dial(t, "udp", addr), rto)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(times) < 12 {
		t.Fatalf("%d requests in 1.2 s, want at least 12 with backoff capped at %v", len(times), maxBackoff*rto)
	}
}

func TestBindUDPSilentServer(t *testing.T) {
	addr := stunserver.UDP(t, func(int, netip.AddrPort, *pion.Message) [][]byte { return nil })
	start := time.Now()
	_, err := BindUDP(ctxTimeout(t, 300*time.Millisecond), dial(t, "udp", addr), 50*time.Millisecond)
	checkPrompt(t, err, context.DeadlineExceeded, start, 300*time.Millisecond)
}

func TestBindUDPCancel(t *testing.T) {
	addr := stunserver.UDP(t, func(int, netip.AddrPort, *pion.Message) [][]byte { return nil })
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(150*time.Millisecond, cancel)
	start := time.Now()
	_, err := BindUDP(ctx, dial(t, "udp", addr), time.Minute)
	checkPrompt(t, err, context.Canceled, start, 150*time.Millisecond)
}

// A flood of strays cannot keep BindUDP past its deadline.
func TestBindUDPStrayFlood(t *testing.T) {
	addr := stunserver.UDP(t, func(_ int, _ netip.AddrPort, req *pion.Message) [][]byte {
		stray := build(pion.BindingSuccess, otherTID, xorAddr(v4Addr))
		out := make([][]byte, 200)
		for i := range out {
			out[i] = stray
		}
		return out
	})
	start := time.Now()
	_, err := BindUDP(ctxTimeout(t, 300*time.Millisecond), dial(t, "udp", addr), 20*time.Millisecond)
	checkPrompt(t, err, context.DeadlineExceeded, start, 300*time.Millisecond)
}

func TestBindUDPConnectionRefused(t *testing.T) {
	// A port that was just free: the kernel answers with ICMP unreachable.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	start := time.Now()
	_, err = BindUDP(ctxTimeout(t, 5*time.Second), dial(t, "udp", addr), time.Second)
	if err == nil || errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("err = %v after %v, want a prompt refusal", err, time.Since(start))
	}
	t.Logf("error as reported: %v", err)
}

func TestBindUDPBadRTO(t *testing.T) {
	c := dial(t, "udp", "127.0.0.1:9")
	for _, rto := range []time.Duration{0, -time.Second} {
		if _, err := BindUDP(context.Background(), c, rto); err == nil {
			t.Errorf("rto %v: no error", rto)
		}
	}
}

func TestBindUDPClearsDeadline(t *testing.T) {
	addr := stunserver.UDP(t, func(_ int, from netip.AddrPort, req *pion.Message) [][]byte {
		return [][]byte{build(pion.BindingSuccess, req.TransactionID, xorAddr(from))}
	})
	c := dial(t, "udp", addr)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := BindUDP(ctx, c, time.Second); err != nil {
		t.Fatal(err)
	}
	<-ctx.Done()
	time.Sleep(50 * time.Millisecond)
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatalf("write after BindUDP: %v (deadline left on conn?)", err)
	}
}
