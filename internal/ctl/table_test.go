package ctl

import (
	"strings"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/mapping"
)

func TestWriteTable(t *testing.T) {
	now := time.Unix(1700000000, 0)
	ms := []MappingStatus{{
		Section: "web", Enabled: true, State: mapping.Mapped, Protocol: "tcp", Mode: "bind",
		PrivateIP: "192.168.1.2", PrivatePort: 8080, PublicIP: "198.51.100.1", PublicPort: 24936,
		Since:     now.Add(-3*time.Hour - 12*time.Minute - 7*time.Second).Unix(),
		LastError: "old news: not shown",
	}, {
		Section: "game", Enabled: true, State: mapping.Mapped, Protocol: "udp", Mode: "forward",
		PrivateIP: "2001:db8::2", PrivatePort: 3074, PublicIP: "2001:db8::1", PublicPort: 3074,
		Since: now.Add(-50 * time.Hour).Unix(),
		Relay: &RelayStats{Active: 3, Total: 120, BytesUp: 1234567, BytesDown: 42 << 30}, ForwardMode: "relay",
	}, {
		Section: "nas", Enabled: true, State: mapping.Mapped, Protocol: "tcp", Mode: "forward", ForwardMode: "kernel",
		PrivateIP: "192.168.1.2", PrivatePort: 5000, PublicIP: "198.51.100.1", PublicPort: 5000,
		Since: now.Add(-10 * time.Second).Unix(),
	}, {
		Section: "bad\tname", Enabled: true, State: mapping.Error, Protocol: "tcp", Mode: "bind",
		Since:     now.Add(-5 * time.Second).Unix(),
		LastError: "option stun_server: lookup stun.example.invalid on 127.0.0.1:53: no such host\nand more",
	}, {
		Section: "flaky", Enabled: true, State: mapping.Retrying, Protocol: "tcp", Mode: "bind",
		PrivatePort: 8443, Retries: 4, Since: now.Add(-75 * time.Second).Unix(),
		LastError: "keep-alive: connection reset by peer",
	}, {
		Section: "old", State: mapping.Disabled, Protocol: "tcp", Mode: "bind",
	}}
	var b strings.Builder
	if err := WriteTable(&b, ms, now); err != nil {
		t.Fatal(err)
	}
	want := `SECTION   STATE         PROTO        PRIVATE             PUBLIC              FOR    RELAY                   ERROR
web       mapped        tcp          192.168.1.2:8080    198.51.100.1:24936  3h12m  -                       -
game      mapped        udp/forward  [2001:db8::2]:3074  [2001:db8::1]:3074  2d02h  3/120 up 1.2M down 42G  -
nas       mapped        tcp/kernel   192.168.1.2:5000    198.51.100.1:5000   10s    -                       -
bad name  error         tcp          -                   -                   5s     -                       option stun_server: lookup stun.example.invalid on 127.0....
flaky     retrying (4)  tcp          *:8443              -                   1m15s  -                       keep-alive: connection reset by peer
old       disabled      tcp          -                   -                   -      -                       -
`
	if got := b.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestBytesize(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0B", 1023: "1023B", 1024: "1.0K", 1536: "1.5K", 10 << 10: "10K",
		1000 << 20: "1000M", 5 << 40: "5.0T", 1 << 62: "4.0E",
	} {
		if got := bytesize(n); got != want {
			t.Errorf("bytesize(%d) = %s, want %s", n, got, want)
		}
	}
}

func TestWriteDetail(t *testing.T) {
	m := MappingStatus{
		Metrics: &Metrics{Sessions: 3, Failures: 2, AddressChanges: 1},
		History: []Event{
			{Time: 1700000000, State: mapping.Mapped, PublicIP: "203.0.113.7", PublicPort: 4000},
			{Time: 1700000060, State: mapping.Retrying, Error: "keep-alive:\tEOF"},
		},
	}
	var b strings.Builder
	if err := WriteDetail(&b, m, time.UTC); err != nil {
		t.Fatal(err)
	}
	want := `
sessions 3, failed 2, addresses 1

TIME                 STATE     PUBLIC            ERROR
2023-11-14 22:13:20  mapped    203.0.113.7:4000  -
2023-11-14 22:14:20  retrying  -                 keep-alive: EOF
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	if err := WriteDetail(&b, MappingStatus{}, time.UTC); err != nil || b.String() != "" {
		t.Errorf("a section with neither: %q (%v)", b.String(), err)
	}
}

// A mapping that works but whose notify script failed says so.
func TestWriteTableScriptError(t *testing.T) {
	var b strings.Builder
	WriteTable(&b, []MappingStatus{{Section: "web", State: mapping.Mapped, ScriptError: "exit status 3", LastError: "old"}}, time.Unix(0, 0))
	if !strings.Contains(b.String(), "notify script: exit status 3") {
		t.Fatalf("table:\n%s", b.String())
	}
}

func TestWriteTableUpdaters(t *testing.T) {
	now := time.Unix(1000, 0)
	ms := []MappingStatus{{Section: "nas", State: mapping.Mapped, Updaters: []UpdaterStatus{
		{Name: "dns", Type: "rfc2136", State: "ok", LastRun: 990, Attempts: 1},
		{Name: "hook", Type: "webhook", State: "retrying", LastRun: 995, Attempts: 3, LastError: "webhook: connection refused"},
		{Name: "gone", State: "error", LastError: "updater gone: no \"config updater 'gone'\" section"},
	}}}
	var b strings.Builder
	if err := WriteTable(&b, ms, now); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"UPDATER", "nas      dns      rfc2136  ok            10s", "hook     webhook  retrying (3)  5s   webhook: connection refused", "gone     -        error"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

// A port the router in front forwards shows the protocol and the lease end.
func TestWriteTableFront(t *testing.T) {
	now := time.Unix(1700000000, 0)
	end := now.Add(time.Hour)
	var b strings.Builder
	err := WriteTable(&b, []MappingStatus{
		{Section: "a", State: mapping.Mapped, Protocol: "tcp", Mode: "bind", Front: "upnp", FrontLeaseEnd: end.Unix()},
		{Section: "b", State: mapping.Mapped, Protocol: "udp", Mode: "forward", Front: "pcp"},
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"tcp via upnp to " + end.Format("15:04"), "udp/forward via pcp "} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("no %q in:\n%s", want, b.String())
		}
	}
}
