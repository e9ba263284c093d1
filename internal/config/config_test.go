package config

import (
	"errors"
	"net/netip"
	"testing"
)

func TestParseHostPort(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want HostPort
	}{
		{"stun.example.org", HostPort{"stun.example.org", 3478}},
		{"stun.example.org:19302", HostPort{"stun.example.org", 19302}},
		{"192.0.2.1", HostPort{"192.0.2.1", 3478}},
		{"192.0.2.1:1", HostPort{"192.0.2.1", 1}},
		{"2001:db8::1", HostPort{"2001:db8::1", 3478}},
		{"[2001:db8::1]", HostPort{"2001:db8::1", 3478}},
		{"[2001:db8::1]:5349", HostPort{"2001:db8::1", 5349}},
	} {
		got, err := ParseHostPort(tc.in, 3478)
		if err != nil || got != tc.want {
			t.Errorf("ParseHostPort(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", ":80", "host:", "host:0", "host:65536", "host:x", "host:+80",
		"[2001:db8::1", "[2001:db8::1]x", "[2001:db8::1]:", "[nothost]:80", "a:b:c", "ho st", "a,b"} {
		if got, err := ParseHostPort(bad, 3478); err == nil {
			t.Errorf("ParseHostPort(%q) = %+v, want error", bad, got)
		}
	}
	if s := (HostPort{"2001:db8::1", 80}).String(); s != "[2001:db8::1]:80" {
		t.Errorf("String() = %q", s)
	}
}

func TestParseHostPortList(t *testing.T) {
	got, err := ParseHostPortList("a, b:1,[::1]:2", 3478)
	if err != nil || len(got) != 3 || got[1] != (HostPort{"b", 1}) || got[2] != (HostPort{"::1", 2}) {
		t.Fatalf("got %+v, %v", got, err)
	}
	if _, err := ParseHostPortList("a,,b", 3478); err == nil {
		t.Fatal("empty entry: want error")
	}
}

func TestDefaultsAndValidate(t *testing.T) {
	m := Mapping{STUN: []HostPort{{"s", 3478}}, HTTP: HostPort{"h", 80}}
	m.SetDefaults()
	if m.Keepalive != DefaultTCPKeepalive || m.StunCycle != 10 || m.ForwardTimeout != DefaultForwardTimeout {
		t.Fatalf("defaults: %+v", m)
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	u := Mapping{UDP: true, STUN: m.STUN}
	u.SetDefaults()
	if u.Keepalive != DefaultUDPKeepalive || u.Validate() != nil {
		t.Fatalf("udp defaults: %+v", u)
	}
	for name, bad := range map[string]Mapping{
		"no stun":     {HTTP: m.HTTP},
		"no http":     {STUN: m.STUN},
		"v4 addr -6":  {IPv6: true, UDP: true, STUN: m.STUN, BindAddr: netip.MustParseAddr("10.0.0.1")},
		"v6 addr -4":  {UDP: true, STUN: m.STUN, BindAddr: netip.MustParseAddr("::1")},
		"long device": {UDP: true, STUN: m.STUN, Device: "abcdefghijklmnop"},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%s: want error", name)
		}
	}
}

func TestMark(t *testing.T) {
	for in, want := range map[string]uint32{"0x1": 1, "0XfF": 255, "1": 1, "01": 1, "010": 8, "0": 0, "4294967295": 1<<32 - 1} {
		got, err := ParseMark(in)
		if err != nil || got != want {
			t.Errorf("ParseMark(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0x", "08", "x1", "1_0", "0b1", "4294967296", "-1", "+1", "0x+1"} {
		if _, err := ParseMark(bad); err == nil {
			t.Errorf("ParseMark(%q): want error", bad)
		}
	}
}

func TestParseInterface(t *testing.T) {
	if a, n := ParseInterface("::ffff:192.0.2.1"); a != netip.MustParseAddr("192.0.2.1") || n != "" {
		t.Errorf("an address: %v %q", a, n)
	}
	if a, n := ParseInterface("pppoe-wan"); a.IsValid() || n != "pppoe-wan" {
		t.Errorf("a name: %v %q", a, n)
	}
	if a, n := ParseInterface(""); a.IsValid() || n != "" {
		t.Errorf("nothing: %v %q", a, n)
	}
}

func TestWordNamesTheField(t *testing.T) {
	name := func(f Field) string {
		if f == FieldSTUN {
			return "-s"
		}
		return ""
	}
	err := (&Mapping{}).Validate()
	if got := Word(err, name).Error(); got != "a STUN server is required (-s)" {
		t.Errorf("got %q", got)
	}
	err = (&Mapping{STUN: []HostPort{{"s", 3478}}}).Validate()
	if got := Word(err, name).Error(); got != "TCP mode needs a keep-alive HTTP server" {
		t.Errorf("a field without a name: %q", got)
	}
	plain := errors.New("plain")
	if Word(plain, name) != plain {
		t.Error("an error that is not a FieldError changed")
	}
}
