package daemon

import (
	"net/netip"
	"testing"

	"github.com/natmap-go/natmap/internal/engine"
	"github.com/natmap-go/natmap/internal/mapping"
	"github.com/natmap-go/natmap/internal/netwatch"
)

func TestAffected(t *testing.T) {
	mapped := engine.Status{State: mapping.Mapped, Private: netip.MustParseAddrPort("192.0.2.7:8080")}
	retrying := engine.Status{State: mapping.Retrying}
	ev := func(k netwatch.Kind, name, addr string) netwatch.Event {
		e := netwatch.Event{Kind: k, Name: name}
		if addr != "" {
			e.Addr = netip.MustParsePrefix(addr)
		}
		return e
	}
	for _, tc := range []struct {
		name   string
		ev     netwatch.Event
		device string
		st     engine.Status
		want   bool
	}{
		{"our address removed", ev(netwatch.AddrRemoved, "pppoe-wan", "192.0.2.7/32"), "", mapped, true},
		{"another address removed", ev(netwatch.AddrRemoved, "br-lan", "192.168.1.1/24"), "", mapped, false},
		{"an address added elsewhere, mapped", ev(netwatch.AddrAdded, "br-lan", "192.168.1.2/24"), "", mapped, false},
		{"an address added, retrying", ev(netwatch.AddrAdded, "pppoe-wan", "192.0.2.8/32"), "", retrying, true},
		{"link up, retrying", ev(netwatch.LinkUp, "pppoe-wan", ""), "", retrying, true},
		{"link up, mapped", ev(netwatch.LinkUp, "lan1", ""), "", mapped, false},
		{"our device changed", ev(netwatch.AddrAdded, "eth1", "192.0.2.9/24"), "eth1", mapped, true},
		{"another device changed", ev(netwatch.LinkDown, "eth2", ""), "eth1", mapped, false},
		{"events lost", netwatch.Event{Kind: netwatch.Overrun}, "eth1", mapped, true},
	} {
		if got := affected([]netwatch.Event{tc.ev}, tc.device, tc.st); got != tc.want {
			t.Errorf("%s: affected = %v, want %v", tc.name, got, tc.want)
		}
	}
}
