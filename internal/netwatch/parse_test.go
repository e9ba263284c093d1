package netwatch

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// captured reads testdata/name.hex: a message captured from a netlink
// socket (little-endian, as the machine it was captured on), as hex with
// "#" comment lines.
func captured(tb testing.TB, name string) []byte {
	tb.Helper()
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		tb.Skip("the captured messages are little-endian, netlink is in host byte order")
	}
	raw, err := os.ReadFile(filepath.Join("testdata", name+".hex"))
	if err != nil {
		tb.Fatal(err)
	}
	var h strings.Builder
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "#") {
			h.WriteString(strings.TrimSpace(line))
		}
	}
	b, err := hex.DecodeString(h.String())
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	return b
}

// capturedNames lists the captured messages in the order they were captured
// (ifb d0 is index 2, veth v0 index 3).
var capturedNames = []string{
	"newlink_up", "newaddr6_linklocal", "newaddr4", "newaddr6_nodad",
	"newaddr6_tentative", "newaddr6_dad_done", "deladdr4", "newlink_down",
	"deladdr6_on_down", "newlink_mtu", "newlink_nocarrier", "newlink_carrier_lost",
	"newlink_carrier", "dellink_bridge_port", "dellink",
}

func TestParseCaptured(t *testing.T) {
	p := netip.MustParsePrefix
	d0 := func(u update) update { u.index = 2; return u }
	v0 := func(u update) update { u.link, u.index, u.name = true, 3, "v0"; return u }
	tests := map[string][]update{
		"newlink_up":           {d0(update{link: true, name: "d0", up: true})},
		"newaddr6_linklocal":   {d0(update{prefix: p("fe80::bc00:1fff:fe20:2249/64"), usable: true})},
		"newaddr4":             {d0(update{name: "d0", prefix: p("192.0.2.1/24"), usable: true})},
		"newaddr6_nodad":       {d0(update{prefix: p("2001:db8::1/64"), usable: true})},
		"newaddr6_tentative":   {d0(update{prefix: p("2001:db8::2/64")})},
		"newaddr6_dad_done":    {d0(update{prefix: p("2001:db8::2/64"), usable: true})},
		"deladdr4":             {d0(update{del: true, name: "d0", prefix: p("192.0.2.1/24"), usable: true})},
		"newlink_down":         {d0(update{link: true, name: "d0"})},
		"deladdr6_on_down":     {d0(update{del: true, prefix: p("2001:db8::1/64"), usable: true})},
		"newlink_mtu":          {d0(update{link: true, name: "d0"})},
		"newlink_nocarrier":    {v0(update{})}, // IFF_UP without IFF_RUNNING
		"newlink_carrier_lost": {v0(update{})},
		"newlink_carrier":      {v0(update{up: true})},
		"dellink_bridge_port":  nil, // AF_BRIDGE: skipped
		"dellink":              {d0(update{link: true, del: true, name: "d0"})},
	}
	if len(tests) != len(capturedNames) {
		t.Fatalf("%d cases for %d captured messages", len(tests), len(capturedNames))
	}
	for _, name := range capturedNames {
		got, err := parse(captured(t, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		want := tests[name]
		if len(got) != len(want) || (len(got) == 1 && got[0] != want[0]) {
			t.Errorf("%s:\n got %+v\nwant %+v", name, got, want)
		}
	}
}

// Several messages in one datagram, as the kernel batches dumps.
func TestParseBatch(t *testing.T) {
	var b []byte
	for _, name := range capturedNames {
		b = append(b, captured(t, name)...)
	}
	us, err := parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(us) != len(capturedNames)-1 { // less the bridge's
		t.Fatalf("%d updates from %d messages", len(us), len(capturedNames))
	}
}

// Every truncation of every captured message is an error, never a panic,
// both with the original length (the framing says more) and with the length
// patched to match (the payload is cut short).
func TestParseTruncated(t *testing.T) {
	for _, name := range capturedNames {
		full := captured(t, name)
		for n := 1; n < len(full); n++ {
			if _, err := parse(full[:n]); err == nil {
				t.Errorf("%s cut to %d bytes: no error", name, n)
			}
			b := bytes.Clone(full[:n])
			if n < unix.NLMSG_HDRLEN {
				continue
			}
			binary.NativeEndian.PutUint32(b, uint32(n))
			// Cut between attributes is a valid, shorter message; what
			// matters is that a cut inside the fixed header or an
			// attribute is caught.
			_, err := parse(b)
			hdr := unix.NLMSG_HDRLEN + unix.SizeofIfAddrmsg
			if b[4] == unix.RTM_NEWLINK || b[4] == unix.RTM_DELLINK {
				hdr = unix.NLMSG_HDRLEN + unix.SizeofIfInfomsg
			}
			if n < hdr && err == nil {
				t.Errorf("%s with payload cut to %d bytes: no error", name, n)
			}
		}
	}
}

func TestParseMalformed(t *testing.T) {
	addr4 := captured(t, "newaddr4")
	// Offsets in newaddr4: ifaddrmsg at 16 (prefix length 17, index
	// 20); IFA_ADDRESS at 24, IFA_LOCAL at 32 (4-byte headers).
	link := captured(t, "newlink_up")
	patch := func(b []byte, off int, v ...byte) []byte {
		b = bytes.Clone(b)
		copy(b[off:], v)
		return b
	}
	tests := map[string][]byte{
		"short header":             addr4[:15],
		"message length 15":        patch(addr4, 0, 15, 0, 0, 0),
		"message length too large": patch(addr4, 0, 0xff, 0xff, 0xff, 0xff),
		"trailing bytes":           append(bytes.Clone(addr4), 1, 2, 3),
		"prefix length 33":         patch(addr4, 17, 33),
		"interface index 0":        patch(addr4, 20, 0, 0, 0, 0),
		"attribute length 3":       patch(addr4, 24, 3, 0),
		"attribute length too big": patch(addr4, 24, 200, 0),
		"IFA_ADDRESS of 3 bytes":   patch(addr4, 24, 7, 0),
		"IFA_LOCAL of 5 bytes":     patch(addr4, 32, 9, 0),
		"link index -1":            patch(link, 20, 0xff, 0xff, 0xff, 0xff),
		"IFLA_OPERSTATE of 2 bytes": func() []byte {
			i := attrOffset(t, link, unix.SizeofIfInfomsg, unix.IFLA_OPERSTATE)
			return patch(link, i, 6, 0)
		}(),
	}
	for name, b := range tests {
		if us, err := parse(b); err == nil {
			t.Errorf("%s: no error, got %+v", name, us)
		}
	}

	// Without an address attribute at all.
	noAddr := patch(addr4, 26, 0xff, 0x3f) // IFA_ADDRESS -> unknown type
	noAddr = patch(noAddr, 34, 0xff, 0x3f) // IFA_LOCAL -> unknown type
	if _, err := parse(noAddr); err == nil {
		t.Error("address message without an address: no error")
	}
}

// attrOffset finds attribute typ in a captured message, at its header.
func attrOffset(t *testing.T, msg []byte, fixed int, typ uint16) int {
	t.Helper()
	off := unix.NLMSG_HDRLEN + fixed
	for off+4 <= len(msg) {
		if binary.NativeEndian.Uint16(msg[off+2:]) == typ {
			return off
		}
		off += align(int(binary.NativeEndian.Uint16(msg[off:])))
	}
	t.Fatalf("attribute %d not found", typ)
	return 0
}

// The kernel pads every attribute, but a last one without padding (its
// message length not a multiple of 4) is still read, as the kernel's own
// parser does.
func TestParseUnpaddedLastAttribute(t *testing.T) {
	b := captured(t, "newaddr4")
	// Append IFA_LABEL "x\x00" + "y" (7 bytes, unpadded).
	b = append(b, 7, 0, unix.IFA_LABEL, 0, 'x', 'y', 'z')
	binary.NativeEndian.PutUint32(b, uint32(len(b)))
	us, err := parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(us) != 1 || us[0].name != "xyz" {
		t.Fatalf("got %+v, want the label xyz", us)
	}
}

// Replaying the captured sequence through the state gives the events a
// consumer should see: one per real change.
func TestReplay(t *testing.T) {
	s := newState(nil)
	var got []string
	for _, name := range capturedNames {
		us, err := parse(captured(t, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range us {
			if ev, ok := s.apply(u); ok {
				got = append(got, ev.String())
			}
		}
	}
	want := []string{
		"LinkUp d0 (2)",
		"AddrAdded fe80::bc00:1fff:fe20:2249/64 on d0 (2) (link-local)",
		"AddrAdded 192.0.2.1/24 on d0 (2)",
		"AddrAdded 2001:db8::1/64 on d0 (2)",
		"AddrAdded 2001:db8::2/64 on d0 (2)", // after DAD, not while tentative
		"AddrRemoved 192.0.2.1/24 on d0 (2)",
		"LinkDown d0 (2)",
		"AddrRemoved 2001:db8::1/64 on d0 (2)",
		// MTU: nothing. v0 up without carrier, then losing it: nothing.
		"LinkUp v0 (3)",
		// Leaving the bridge: nothing. Deleting d0, already down: nothing.
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Only v0 is left: deleting d0 also dropped its addresses whose removal
	// is not in the capture (the link-local one and 2001:db8::2).
	if len(s.links) != 1 || len(s.addrs) != 0 {
		t.Errorf("state left: links %v, addresses %v", s.links, s.addrs)
	}
}

func TestApply(t *testing.T) {
	p := netip.MustParsePrefix
	link := func(index int, name string, up, del bool) update {
		return update{link: true, index: index, name: name, up: up, del: del}
	}
	addr := func(index int, prefix string, usable, del bool) update {
		return update{index: index, prefix: p(prefix), usable: usable, del: del}
	}
	s := newState([]update{link(1, "lo", true, false), link(2, "wan", true, false), addr(2, "198.51.100.7/24", true, false)})

	steps := []struct {
		u    update
		want string // "" for no event
	}{
		{link(2, "wan", true, false), ""},               // statistics, MTU...
		{link(2, "", false, false), "LinkDown wan (2)"}, // name from the table
		{link(2, "wan", false, false), ""},
		{addr(2, "198.51.100.7/24", true, false), ""}, // lifetime refresh
		{addr(2, "198.51.100.7/24", true, true), "AddrRemoved 198.51.100.7/24 on wan (2)"},
		{addr(2, "198.51.100.7/24", true, true), ""}, // not known any more
		{link(2, "wan", true, false), "LinkUp wan (2)"},
		{addr(2, "198.51.100.9/24", true, false), "AddrAdded 198.51.100.9/24 on wan (2)"},
		{addr(2, "169.254.1.1/16", true, false), "AddrAdded 169.254.1.1/16 on wan (2) (link-local)"},
		{addr(9, "192.0.2.1/24", true, false), "AddrAdded 192.0.2.1/24 on  (9)"}, // unknown link
		{update{index: 9, name: "eth9:1", prefix: p("192.0.2.2/24"), usable: true}, "AddrAdded 192.0.2.2/24 on eth9:1 (9)"},
		{link(5, "ppp0", false, false), ""}, // new, down: as before
		{link(5, "ppp0", true, false), "LinkUp ppp0 (5)"},
		{link(5, "ppp0", false, true), "LinkDown ppp0 (5)"},                                  // deleted while up
		{link(6, "ppp1", false, true), ""},                                                   // deleted, never up
		{addr(2, "198.51.100.9/24", false, false), "AddrRemoved 198.51.100.9/24 on wan (2)"}, // DAD failed
		{link(2, "wan", false, true), "LinkDown wan (2)"},
	}
	for i, st := range steps {
		ev, ok := s.apply(st.u)
		got := ""
		if ok {
			got = ev.String()
		}
		if got != st.want {
			t.Errorf("step %d (%+v): got %q, want %q", i, st.u, got, st.want)
		}
	}
	for k := range s.addrs {
		if k.index == 2 {
			t.Errorf("address %v of deleted link 2 still known", k.prefix)
		}
	}
}
