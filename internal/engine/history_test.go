package engine

import (
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"testing"

	"github.com/natmap-go/natmap/internal/config"
	"github.com/natmap-go/natmap/internal/mapping"
	"github.com/natmap-go/natmap/internal/notify"
)

// The history keeps the last HistoryLen events, oldest first; the counters
// count every session, failure and new address; OnEvent sees each event.
func TestHistoryAndCounters(t *testing.T) {
	cfg := config.Mapping{STUN: []config.HostPort{{Host: "127.0.0.1", Port: 3478}}, HTTP: config.HostPort{Host: "127.0.0.1", Port: 80}}
	cfg.SetDefaults()
	notified := 0
	e := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), func(notify.Mapping) { notified++ })
	var seen []Event
	e.OnEvent(func(ev Event) { seen = append(seen, ev) })

	private := netip.MustParseAddrPort("192.168.1.2:4000")
	pub := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr("203.0.113.7"), port) }
	e.mapped(private, pub(1000), "stun")
	e.mapped(private, pub(1000), "stun") // a recheck: nothing new
	e.retrying(errors.New("keep-alive: EOF"), 0, 4000)
	e.mapped(private, pub(1000), "stun") // back, same address: an event, not a change
	for i := range 25 {
		e.mapped(private, pub(uint16(2000+i)), "stun")
	}

	st := e.Status()
	if st.Counters.Failures != 1 || st.Counters.AddressChanges != 26 || notified != 26 {
		t.Errorf("counters %+v, %d notified; want 1 failure, 26 changes", st.Counters, notified)
	}
	if len(st.History) != HistoryLen {
		t.Fatalf("%d events kept, want %d", len(st.History), HistoryLen)
	}
	if first, last := st.History[0], st.History[HistoryLen-1]; first.Public != pub(2005) || last.Public != pub(2024) || last.State != mapping.Mapped {
		t.Errorf("history from %+v to %+v, want 2005 .. 2024", first, last)
	}
	if len(seen) != 28 {
		t.Fatalf("OnEvent saw %d events, want 28", len(seen))
	}
	if ev := seen[1]; ev.State != mapping.Retrying || ev.Error != "keep-alive: EOF" {
		t.Errorf("second event %+v", ev)
	}
	if ev := seen[2]; ev.State != mapping.Mapped || ev.Public != pub(1000) {
		t.Errorf("third event %+v", ev)
	}
	// The snapshot is a copy.
	st.History[0].Error = "x"
	if e.Status().History[0].Error != "" {
		t.Error("Status shares its history with the engine")
	}
}
