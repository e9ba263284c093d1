package lab

import (
	"net/netip"
	"testing"

	"github.com/natmap-go/natmap/internal/testkit/httpserve"
	"github.com/natmap-go/natmap/internal/testkit/portchecker"
)

// PortChecker is a port checker (package portchecker) in the inet
// namespace: it reaches the checked address from ClientAddr (or
// ClientAddr6).
type PortChecker struct {
	URL string // the URL template for natmap, with {ip} {port} {proto}
	*portchecker.Checker
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
	c := portchecker.New(l.DialFromOutside)
	httpserve.Serve(t, ln, c)
	return &PortChecker{URL: portchecker.URL(addr.String()), Checker: c}
}
