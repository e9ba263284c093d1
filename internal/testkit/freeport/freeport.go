// Package freeport finds ports nobody uses, for tests that must name a port
// before a server (coturn, a daemon) binds it.
package freeport

import (
	"net"
	"strconv"
	"strings"
	"testing"
)

// Get returns a port free on host for network ("tcp", "tcp4", "tcp6",
// "udp", "udp4", "udp6"): the kernel's pick, released at once. host ""
// means every address.
func Get(t testing.TB, network, host string) int {
	t.Helper()
	addr := net.JoinHostPort(host, "0")
	if strings.HasPrefix(network, "udp") {
		pc, err := net.ListenPacket(network, addr)
		if err != nil {
			t.Fatalf("freeport: %v", err)
		}
		defer pc.Close()
		return pc.LocalAddr().(*net.UDPAddr).Port
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatalf("freeport: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Both returns a port free on host for TCP and for UDP at once, as a STUN
// server needs.
func Both(t testing.TB, host string) int {
	t.Helper()
	for range 50 {
		port := Get(t, "tcp", host)
		pc, err := net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err == nil {
			pc.Close()
			return port
		}
	}
	t.Fatalf("freeport: no port free for both TCP and UDP on %s", host)
	return 0
}
