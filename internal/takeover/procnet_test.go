package takeover

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
)

// Sample lines as an x86 (little-endian) kernel prints them.
const (
	tcpHeader  = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
	tcp6Header = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
	udpHeader  = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n"
)

func TestParseTable(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       []entry
	}{
		{"tcp listen and time-wait", tcpHeader +
			"   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1595 1 00000000db1a1a9b 100 0 0 10 0\n" +
			"   1: 0100007F:B842 0100007F:A967 06 00000000:00000000 03:0000142E 00000000     0        0 0 3 00000000a325973b\n" +
			"  12: 0201A8C0:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 987654321 1 0000000000000000 100 0 0 10 0\n",
			[]entry{
				{netip.MustParseAddrPort("0.0.0.0:8080"), 0x0A, 0, 1595},
				{netip.MustParseAddrPort("127.0.0.1:47170"), 0x06, 0, 0},
				{netip.MustParseAddrPort("192.168.1.2:80"), 0x0A, 1000, 987654321},
			}},
		{"tcp6", tcp6Header +
			"   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2001 1 0000000000000000 100 0 0 10 0\n" +
			"   1: 00000000000000000000000001000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2002 1 0000000000000000 100 0 0 10 0\n" +
			"   2: 0000000000000000FFFF00000100007F:0035 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000   101        0 2003 1 0000000000000000 100 0 0 10 0\n" +
			"   3: B80D0120000000000000000001000000:01BB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2004 1 0000000000000000 100 0 0 10 0\n",
			[]entry{
				{netip.MustParseAddrPort("[::]:8080"), 0x0A, 0, 2001},
				{netip.MustParseAddrPort("[::1]:22"), 0x0A, 0, 2002},
				{netip.MustParseAddrPort("[::ffff:127.0.0.1]:53"), 0x0A, 101, 2003},
				{netip.MustParseAddrPort("[2001:db8::1]:443"), 0x0A, 0, 2004},
			}},
		{"udp", udpHeader +
			"  793: 00000000:1F90 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 31337 2 0000000000000000 0\n" +
			" 1024: 0100007F:0035 0200A8C0:0D96 01 00000000:00000000 00:00000000 00000000   100        0 31338 2 0000000000000000 5\n",
			[]entry{
				{netip.MustParseAddrPort("0.0.0.0:8080"), 0x07, 0, 31337},
				{netip.MustParseAddrPort("127.0.0.1:53"), 0x01, 100, 31338},
			}},
		{"header only", tcpHeader, nil},
		{"trailing blank line", tcpHeader + "\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseTable(strings.NewReader(tc.text), binary.LittleEndian)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d entries %v, want %v", len(got), got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("entry %d: got %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

// A big-endian router (MIPS) prints the same address words the other way
// round.
func TestParseBigEndian(t *testing.T) {
	got, err := parseTable(strings.NewReader(tcpHeader+
		"   0: C0A80102:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 7 1 0000000000000000 100 0 0 10 0\n"+
		"   1: 20010DB8000000000000000000000001:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 8 1 0000000000000000 100 0 0 10 0\n"),
		binary.BigEndian)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Local != netip.MustParseAddrPort("192.168.1.2:8080") ||
		got[1].Local != netip.MustParseAddrPort("[2001:db8::1]:8080") {
		t.Fatalf("got %+v", got)
	}
}

func TestParseMalformed(t *testing.T) {
	const ok = "   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1595 1 0000000000000000 100 0 0 10 0"
	for _, tc := range []struct{ name, text, want string }{
		{"empty", "", "empty table"},
		{"no header", ok + "\n", "line 1: unexpected header"},
		{"truncated", tcpHeader + "   0: 00000000:1F90 00000000:0000 0A 00000000:00000000\n", "line 2: 5 fields"},
		{"slot without colon", tcpHeader + strings.Replace(ok, "0:", "0 ", 1) + "\n", "bad slot"},
		{"short address", tcpHeader + strings.Replace(ok, "00000000:1F90", "000000:1F90", 1) + "\n", "local address: bad address"},
		{"odd ipv6 length", tcpHeader + strings.Replace(ok, "00000000:1F90", "0000000000000000000000000000000:1F90", 1) + "\n", "local address: bad address"},
		{"not hex", tcpHeader + strings.Replace(ok, "00000000:1F90", "0000000G:1F90", 1) + "\n", "local address: bad address"},
		{"no port", tcpHeader + strings.Replace(ok, "00000000:1F90", "00000000", 1) + "\n", "local address: bad address"},
		{"short port", tcpHeader + strings.Replace(ok, "00000000:1F90", "00000000:F90", 1) + "\n", "local address: bad address"},
		{"bad port", tcpHeader + strings.Replace(ok, "00000000:1F90", "00000000:1FZ0", 1) + "\n", "local address: bad port"},
		{"bad remote", tcpHeader + strings.Replace(ok, "00000000:0000", "x:0000", 1) + "\n", "remote address"},
		{"bad state", tcpHeader + strings.Replace(ok, " 0A ", " 0AA ", 1) + "\n", "bad state"},
		{"bad uid", tcpHeader + strings.Replace(ok, "     0        0 1595", "    -1        0 1595", 1) + "\n", "bad uid"},
		{"bad inode", tcpHeader + strings.Replace(ok, " 1595 ", " 15x5 ", 1) + "\n", "bad inode"},
		{"garbage after good line", tcpHeader + ok + "\nhello\n", "line 3: 1 fields"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseTable(strings.NewReader(tc.text), binary.LittleEndian)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one containing %q", err, tc.want)
			}
		})
	}
}
