// Package portchecker is a test's port checker speaking natmap's
// reachability URL contract (package portcheck): GET
// /check?ip=IP&port=PORT&proto=tcp|udp answers "1" when it could reach
// IP:PORT, "0" when not. It really tries, from wherever its dialer dials:
// over TCP a handshake must complete; over UDP it sends a random nonce,
// which the service must echo back.
package portchecker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/testkit/httpserve"
)

// Dialer dials the checked address: from outside the NAT under test.
type Dialer func(ctx context.Context, network, addr string) (net.Conn, error)

// Checker is the checker's HTTP handler.
type Checker struct {
	dial   Dialer
	checks atomic.Int64 // requests that asked for a check
	yes    atomic.Int64 // checks that reached the address
}

// New is a Checker that reaches addresses with dial.
func New(dial Dialer) *Checker { return &Checker{dial: dial} }

// URL is the URL template for natmap (with {ip} {port} {proto}) of a
// Checker served at addr (host:port).
func URL(addr string) string {
	return "http://" + addr + "/check?ip={ip}&port={port}&proto={proto}"
}

// Listen serves a Checker that dials from this host (any local address) on
// a port of host until the test ends, and returns it with its URL.
func Listen(t testing.TB, host string) (*Checker, string) {
	t.Helper()
	var d net.Dialer
	c := New(d.DialContext)
	return c, URL(httpserve.Listen(t, host, c))
}

// Checks returns how many checks it has run, and how many reached.
func (c *Checker) Checks() (all, reached int) {
	return int(c.checks.Load()), int(c.yes.Load())
}

func (c *Checker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ip, err := netip.ParseAddr(q.Get("ip"))
	port, perr := strconv.ParseUint(q.Get("port"), 10, 16)
	proto := q.Get("proto")
	if r.URL.Path != "/check" || err != nil || perr != nil || (proto != "tcp" && proto != "udp") {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	c.checks.Add(1)
	if c.reach(r.Context(), proto, netip.AddrPortFrom(ip, uint16(port))) {
		c.yes.Add(1)
		io.WriteString(w, "1")
		return
	}
	io.WriteString(w, "0")
}

// reach tries to reach addr for one second only: a check is a snapshot,
// and a longer one could end up measuring the next keep-alive instead
// (one SYN; over UDP, two datagrams).
func (c *Checker) reach(ctx context.Context, proto string, addr netip.AddrPort) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	conn, err := c.dial(ctx, proto, addr.String())
	if err != nil {
		return false
	}
	defer conn.Close()
	if proto == "tcp" {
		return true
	}
	nonce := make([]byte, 16)
	rand.Read(nonce)
	want := "natmap-check " + hex.EncodeToString(nonce)
	buf := make([]byte, 128)
	for range 2 {
		if _, err := conn.Write([]byte(want)); err != nil {
			return false
		}
		conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		for {
			n, err := conn.Read(buf)
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
