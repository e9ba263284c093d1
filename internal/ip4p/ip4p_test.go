package ip4p

import (
	"net/netip"
	"testing"
)

func TestFormat(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		// The example from the issue: port 55642 = 0xd95a, big-endian.
		{"117.62.214.217:55642", "2001::d95a:753e:d6d9"},
		{"1.2.3.4:80", "2001::0050:0102:0304"},
		{"0.0.0.0:0", "2001::0000:0000:0000"},
		{"255.255.255.255:65535", "2001::ffff:ffff:ffff"},
		{"[::ffff:1.2.3.4]:80", "2001::0050:0102:0304"},
		{"[2001:db8::1]:443", ""},
	} {
		got := Format(netip.MustParseAddrPort(tc.in))
		if got != tc.want {
			t.Errorf("Format(%s) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseRoundTrip(t *testing.T) {
	for _, s := range []string{"117.62.214.217:55642", "1.2.3.4:80", "10.0.0.1:1"} {
		ap := netip.MustParseAddrPort(s)
		got, err := Parse(Format(ap))
		if err != nil || got != ap {
			t.Errorf("Parse(Format(%s)) = %v, %v", s, got, err)
		}
	}
	for _, bad := range []string{"", "1.2.3.4", "2001:db8::1", "2002::1:2:3", "2001:0:0:1::1:2:3", "x"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q): want error", bad)
		}
	}
}
