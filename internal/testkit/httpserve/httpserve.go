// Package httpserve runs a test's HTTP server (natmap's keep-alive server,
// a feed, a webhook) until the test ends.
package httpserve

import (
	"net"
	"net/http"
	"testing"
)

// Serve serves h on ln until the test ends. A nil h answers every request
// with 200 and no body, as the keep-alive server natmap's -h names needs.
func Serve(t testing.TB, ln net.Listener, h http.Handler) {
	if h == nil {
		h = http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	}
	srv := &http.Server{Handler: h}
	done := make(chan struct{})
	go func() { srv.Serve(ln); close(done) }()
	t.Cleanup(func() {
		srv.Close() // closes ln and every connection
		<-done
	})
}

// Listen serves h (nil: Serve's keep-alive server) on a port of host until
// the test ends, and returns its address.
func Listen(t testing.TB, host string, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("httpserve: %v", err)
	}
	Serve(t, ln, h)
	return ln.Addr().String()
}
