package stun

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestProbeFilteringSilentServer(t *testing.T) {
	silent, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	c, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	defer c.Close()
	got, err := ProbeFiltering(context.Background(), c, netip.MustParseAddrPort(silent.LocalAddr().String()), 20*time.Millisecond, 2)
	if err == nil || got != FilteringUnknown {
		t.Fatalf("silent server: %v, %v", got, err)
	}
}
