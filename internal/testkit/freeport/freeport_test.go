package freeport

import (
	"net"
	"strconv"
	"testing"
)

func TestBoth(t *testing.T) {
	port := Both(t, "127.0.0.1")
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("TCP on the free port: %v", err)
	}
	defer ln.Close()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("UDP on the free port: %v", err)
	}
	pc.Close()
	if p := Get(t, "udp4", ""); p <= 0 || p > 65535 {
		t.Errorf("Get udp4: port %d", p)
	}
}
