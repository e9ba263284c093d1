package engine

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/natmap-go/natmap/internal/config"
	"github.com/natmap-go/natmap/internal/notify"
	"github.com/natmap-go/natmap/internal/testkit/tcpserve"
)

func listenTCP(t *testing.T, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	tcpserve.Each(t, ln, func(net.Conn) {})
	return ln
}

// Hairpinning counts only when the connection arrives on the bind port:
// here loopback stands in for a NAT that loops 127.0.0.1 back to the
// service, and another listener for a NAT box answering on its own.
func TestHairpinProvesArrivalOnBindPort(t *testing.T) {
	svc := listenTCP(t, "127.0.0.1:0")
	other := listenTCP(t, "127.0.0.1:0")
	cfg := config.Mapping{STUN: []config.HostPort{{Host: "127.0.0.1", Port: 1}}, HTTP: config.HostPort{Host: "127.0.0.1", Port: 1}}
	cfg.SetDefaults()
	e := New(cfg, slog.New(slog.DiscardHandler), func(notify.Mapping) {})
	bind := addrPort(svc.Addr())
	local := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), bind.Port())
	if err := e.hairpin(context.Background(), local, bind); err != nil {
		t.Fatalf("hairpin to the service: %v", err)
	}
	err := e.hairpin(context.Background(), local, addrPort(other.Addr()))
	if err == nil || !strings.Contains(err.Error(), "not on local port") {
		t.Fatalf("hairpin answered by another listener: %v", err)
	}
	// From the public address itself: the connection never left the host.
	if err := e.hairpin(context.Background(), bind, bind); err == nil {
		t.Fatal("own address counted as hairpin")
	}
}

// A port checker's 1 makes the address reachable, its 0 unreachable with a
// warning (once, not at each check); an error after a verdict keeps it.
func TestCheckReachWithPortChecker(t *testing.T) {
	var answer atomic.Value
	answer.Store("1")
	var asked atomic.Value
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcpserve.Each(t, ln, func(c net.Conn) {
		buf := make([]byte, 512)
		n, _ := c.Read(buf)
		asked.Store(string(buf[:n]))
		a := answer.Load().(string)
		io.WriteString(c, fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(a), a))
	})
	cfg := config.Mapping{
		UDP:             true, // no hairpin over UDP: the checker decides
		STUN:            []config.HostPort{{Host: "127.0.0.1", Port: 1}},
		ReachabilityURL: "http://" + ln.Addr().String() + "/check?ip={ip}&port={port}&proto={proto}",
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := &syncBuf{}
	e := New(cfg, slog.New(slog.NewTextHandler(log, nil)), func(notify.Mapping) {})
	public := netip.MustParseAddrPort("198.51.100.1:4000")
	e.mapped(netip.MustParseAddrPort("10.77.0.2:4000"), public, "stun")
	ctx := context.Background()

	e.checkReach(ctx, netip.AddrPort{})
	r := e.Status().Reach
	if r.State != Reachable || r.Method != MethodPortCheck || r.Verified.IsZero() || r.Public != public {
		t.Fatalf("reach %+v", r)
	}
	if q := asked.Load().(string); !strings.HasPrefix(q, "GET /check?ip=198.51.100.1&port=4000&proto=udp HTTP/1.1\r\n") {
		t.Errorf("checker asked %q", q)
	}
	if !strings.Contains(log.String(), "reachable (verified ") {
		t.Errorf("log:\n%s", log)
	}

	answer.Store("0")
	e.checkReach(ctx, netip.AddrPort{})
	e.checkReach(ctx, netip.AddrPort{})
	r = e.Status().Reach
	if r.State != Unreachable || !strings.Contains(r.Summary(), "NOT reachable") {
		t.Fatalf("reach %+v", r)
	}
	if n := strings.Count(log.String(), "NOT reachable"); n != 1 {
		t.Errorf("%d warnings, want 1:\n%s", n, log)
	}

	answer.Store("maybe")
	e.checkReach(ctx, netip.AddrPort{})
	r = e.Status().Reach
	if r.State != Unreachable || !strings.Contains(r.Detail, "could not tell") {
		t.Fatalf("an unsure check overturned the verdict: %+v", r)
	}

	// A new address starts unchecked.
	e.mapped(netip.MustParseAddrPort("10.77.0.2:4000"), netip.MustParseAddrPort("198.51.100.1:4001"), "stun")
	if r := e.Status().Reach; r.State != "" {
		t.Fatalf("new address kept the old verdict: %+v", r)
	}
}
