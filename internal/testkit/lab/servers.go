package lab

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/natmap-go/natmap/internal/testkit/coturn"
)

// startSTUN starts one coturn per STUN address, listening on its IPv4 and
// IPv6 address; server 0 also on STUNAlt's and STUNAlt6's address and at
// their port, for RFC 5780 (one address per family for server 1: no RFC
// 5780). waitSTUN waits until they answer.
func (l *Lab) startSTUN() error {
	for i, addr := range l.STUN {
		c := coturn.Config{
			Addrs: []string{addr.Addr().String(), l.STUN6[i].Addr().String()}, // same port
			Port:  int(addr.Port()),
			NetNS: l.Inet,
			Dir:   filepath.Join(l.dir, fmt.Sprintf("stun%d", i)),
		}
		if i == 0 {
			c.AltAddrs = []string{l.STUNAlt.Addr().String(), l.STUNAlt6.Addr().String()}
			c.AltPort = int(l.STUNAlt.Port())
		}
		s, err := coturn.Launch(c)
		if err != nil {
			return err
		}
		l.stun = append(l.stun, s)
	}
	return nil
}

// waitSTUN waits until every STUN server answers binding requests over TCP
// and UDP on each of its addresses.
func (l *Lab) waitSTUN() error {
	deadline := time.Now().Add(10 * time.Second)
	for i, s := range l.stun {
		addrs := []netip.AddrPort{l.STUN[i], l.STUN6[i]}
		if i == 0 {
			// coturn opens the other address's sockets last; a reply
			// to a CHANGE-REQUEST leaves through one of them.
			addrs = append(addrs, l.STUNAlt, l.STUNAlt6)
		}
		for _, addr := range addrs {
			for _, network := range []string{"tcp", "udp"} {
				if err := l.waitSTUNAddr(network, addr, s, deadline); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// waitSTUNAddr polls until coturn answers a STUN binding request on addr
// over network ("tcp" or "udp").
func (l *Lab) waitSTUNAddr(network string, addr netip.AddrPort, s *coturn.Server, deadline time.Time) error {
	// A TCP connect before coturn listens is refused at once. A UDP
	// request has no handshake: one that goes astray while coturn starts
	// up would cost the whole timeout, so UDP waits for an answer only
	// briefly at first and asks again.
	timeout := time.Second
	if network == "udp" {
		timeout = 20 * time.Millisecond
	}
	for {
		err := l.Do(l.Inet, func() error {
			_, err := stunBindingDial(network, addr, timeout)
			return err
		})
		if err == nil {
			return nil
		}
		timeout = min(2*timeout, time.Second)
		select {
		case <-s.Done():
			return fmt.Errorf("turnserver on %s exited: %v\n%s", addr, s.Exit(), s.LogTail())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("turnserver on %s not answering over %s: %w\n%s", addr, network, err, s.LogTail())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// StopSTUN kills STUN server i (index into STUN and STUN6), so that
// connections to it are refused from then on, over IPv4 and IPv6; for
// server 0 on all its RFC 5780 addresses and ports too (STUNAlt, STUNAlt6:
// it is one coturn process). Stopping twice is fine.
func (l *Lab) StopSTUN(i int) {
	l.stun[i].Stop()
}

// SilenceSTUN makes STUN server i (STUN[i], TCP and UDP, IPv4) drop every
// packet sent to it, as a dead host behind a firewall does: queries time
// out instead of being refused (StopSTUN). UnsilenceSTUN undoes it.
func (l *Lab) SilenceSTUN(i int) {
	l.t.Helper()
	a := l.STUN[i]
	rules := fmt.Sprintf("table ip silence%[1]d {\n\tchain in {\n\t\ttype filter hook input priority -10; policy accept;\n"+
		"\t\tip daddr %[2]s tcp dport %[3]d drop\n\t\tip daddr %[2]s udp dport %[3]d drop\n\t}\n}\n", i, a.Addr(), a.Port())
	if err := run(l.Inet, rules, "nft", "-f", "-"); err != nil {
		l.t.Fatalf("lab: silence STUN server %d: %v", i, err)
	}
}

// UnsilenceSTUN makes STUN server i answer again after SilenceSTUN.
func (l *Lab) UnsilenceSTUN(i int) {
	l.t.Helper()
	if err := run(l.Inet, "", "nft", "delete", "table", "ip", fmt.Sprintf("silence%d", i)); err != nil {
		l.t.Fatalf("lab: unsilence STUN server %d: %v", i, err)
	}
}

// httpServer is the keep-alive HTTP server in the inet namespace, on HTTP
// and HTTP6.
type httpServer struct {
	srv      *http.Server
	requests atomic.Int64
	closing  atomic.Bool // close every connection after its answer

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func (l *Lab) startHTTP() (*httpServer, error) {
	ln, err := l.Listen(l.Inet, "tcp", l.HTTP.String(), false)
	if err != nil {
		return nil, err
	}
	ln6, err := l.Listen(l.Inet, "tcp", l.HTTP6.String(), false)
	if err != nil {
		ln.Close()
		return nil, err
	}
	h := &httpServer{conns: map[net.Conn]struct{}{}}
	h.srv = &http.Server{
		// No timeouts: connections stay open as long as the client wants.
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.requests.Add(1)
			if h.closing.Load() {
				w.Header().Set("Connection", "close")
			}
			w.WriteHeader(http.StatusOK)
		}),
		ConnState: h.track,
	}
	go h.srv.Serve(ln)
	go h.srv.Serve(ln6)
	return h, nil
}

// track remembers open connections so DropHTTP can close them.
func (h *httpServer) track(c net.Conn, s http.ConnState) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch s {
	case http.StateNew:
		h.conns[c] = struct{}{}
	case http.StateClosed, http.StateHijacked:
		delete(h.conns, c)
	}
}

func (h *httpServer) close() {
	h.srv.Close() // closes the listener and every connection
}

// HTTPRequests returns how many requests (any method, normally natmap's
// keep-alive HEAD /) the HTTP server has answered, over IPv4 and IPv6.
func (l *Lab) HTTPRequests() int {
	return int(l.http.requests.Load())
}

// CloseHTTPConnections makes the HTTP server close every connection after
// answering its first request, as some web servers do.
func (l *Lab) CloseHTTPConnections() {
	l.http.closing.Store(true)
}

// DropHTTP closes, from the server side, every connection currently open to
// the HTTP server (IPv4 and IPv6). The server keeps accepting new ones.
func (l *Lab) DropHTTP() {
	h := l.http
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.conns {
		c.Close()
	}
}
