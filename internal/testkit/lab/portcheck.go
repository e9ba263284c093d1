package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// PortChecker is a port checker in the inet namespace speaking natmap's
// reachability URL contract (package portcheck): GET
// /check?ip=IP&port=PORT&proto=tcp|udp answers "1" when it could reach
// IP:PORT from ClientAddr (or ClientAddr6), "0" when not. It really tries:
// over TCP a handshake must complete; over UDP it sends a random nonce,
// which the service must echo back.
type PortChecker struct {
	URL    string // the URL template for natmap, with {ip} {port} {proto}
	checks atomic.Int64
	yes    atomic.Int64
}

// Checks returns how many checks it has run, and how many reached.
func (p *PortChecker) Checks() (all, reached int) {
	return int(p.checks.Load()), int(p.yes.Load())
}

// StartPortChecker runs a PortChecker on the HTTP server's address, port
// 8000, until the test ends.
func (l *Lab) StartPortChecker(t testing.TB) *PortChecker {
	t.Helper()
	addr := netip.AddrPortFrom(l.HTTP.Addr(), 8000)
	ln, err := l.Listen(l.Inet, "tcp", addr.String(), false)
	if err != nil {
		t.Fatal(err)
	}
	p := &PortChecker{URL: "http://" + addr.String() + "/check?ip={ip}&port={port}&proto={proto}"}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		ip, err := netip.ParseAddr(q.Get("ip"))
		port, perr := strconv.ParseUint(q.Get("port"), 10, 16)
		proto := q.Get("proto")
		if r.URL.Path != "/check" || err != nil || perr != nil || (proto != "tcp" && proto != "udp") {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		p.checks.Add(1)
		ok := l.reachFromOutside(r.Context(), proto, netip.AddrPortFrom(ip, uint16(port)))
		if ok {
			p.yes.Add(1)
			io.WriteString(w, "1")
			return
		}
		io.WriteString(w, "0")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return p
}

// reachFromOutside tries to reach addr from the outside client, for one
// second only: a check is a snapshot, and a longer one could end up
// measuring the next keep-alive instead (one SYN; over UDP, two datagrams).
func (l *Lab) reachFromOutside(ctx context.Context, proto string, addr netip.AddrPort) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	c, err := l.DialFromOutside(ctx, proto, addr.String())
	if err != nil {
		return false
	}
	defer c.Close()
	if proto == "tcp" {
		return true
	}
	nonce := make([]byte, 16)
	rand.Read(nonce)
	want := "natmap-check " + hex.EncodeToString(nonce)
	buf := make([]byte, 128)
	for range 2 {
		if _, err := c.Write([]byte(want)); err != nil {
			return false
		}
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		for {
			n, err := c.Read(buf)
			if err != nil {
				break
			}
			if string(buf[:n]) == want {
				return true
			}
		}
		if ctx.Err() != nil {
			return false
		}
	}
	return false
}
