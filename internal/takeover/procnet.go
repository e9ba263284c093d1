package takeover

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// tcpListen is the state /proc/net/tcp* prints for LISTEN (TCP_LISTEN).
const tcpListen = 0x0A

// entry is one socket of /proc/net/{tcp,tcp6,udp,udp6}.
type entry struct {
	Local netip.AddrPort
	State uint8
	UID   uint32
	Inode uint64 // 0 for sockets without a file (TIME_WAIT, SYN_RECV)
}

// parseTable parses a /proc/net/{tcp,tcp6,udp,udp6} table. The kernel
// prints each address as 32-bit words in host byte order, so order must be
// the machine's (binary.NativeEndian): big-endian MIPS routers print
// 127.0.0.1 as 7F000001, x86 as 0100007F. Any line that does not have the
// expected shape is an error: a misread table would change the wrong socket.
func parseTable(r io.Reader, order binary.ByteOrder) ([]entry, error) {
	sc := bufio.NewScanner(r)
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("empty table")
	}
	if f := strings.Fields(sc.Text()); len(f) < 2 || f[0] != "sl" || f[1] != "local_address" {
		return nil, fmt.Errorf("line 1: unexpected header %q", sc.Text())
	}
	var entries []entry
	for n := 2; sc.Scan(); n++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		e, err := parseLine(sc.Text(), order)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		entries = append(entries, e)
	}
	return entries, sc.Err()
}

// parseLine parses one socket line:
//
//	sl: local rem st tx:rx tr:when retrnsmt uid timeout inode [more...]
func parseLine(line string, order binary.ByteOrder) (entry, error) {
	f := strings.Fields(line)
	if len(f) < 10 {
		return entry{}, fmt.Errorf("%d fields, want at least 10: %q", len(f), line)
	}
	sl, ok := strings.CutSuffix(f[0], ":")
	if _, err := strconv.ParseUint(sl, 10, 32); !ok || err != nil {
		return entry{}, fmt.Errorf("bad slot %q", f[0])
	}
	local, err := parseAddrPort(f[1], order)
	if err != nil {
		return entry{}, fmt.Errorf("local address: %w", err)
	}
	if _, err := parseAddrPort(f[2], order); err != nil {
		return entry{}, fmt.Errorf("remote address: %w", err)
	}
	if len(f[3]) != 2 {
		return entry{}, fmt.Errorf("bad state %q", f[3])
	}
	st, err := strconv.ParseUint(f[3], 16, 8)
	if err != nil {
		return entry{}, fmt.Errorf("bad state %q", f[3])
	}
	uid, err := strconv.ParseUint(f[7], 10, 32)
	if err != nil {
		return entry{}, fmt.Errorf("bad uid %q", f[7])
	}
	inode, err := strconv.ParseUint(f[9], 10, 64)
	if err != nil {
		return entry{}, fmt.Errorf("bad inode %q", f[9])
	}
	return entry{Local: local, State: uint8(st), UID: uint32(uid), Inode: inode}, nil
}

// parseAddrPort parses "0100007F:1F90" (IPv4) or 32 hex digits and a port
// (IPv6).
func parseAddrPort(s string, order binary.ByteOrder) (netip.AddrPort, error) {
	a, p, ok := strings.Cut(s, ":")
	if !ok || len(p) != 4 || (len(a) != 8 && len(a) != 32) {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bad port in %q", s)
	}
	raw, err := hex.DecodeString(a)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
	}
	// Each 8-digit word is a host-order uint32 of network-order bytes.
	b := make([]byte, len(raw))
	for i := 0; i < len(raw); i += 4 {
		order.PutUint32(b[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	addr, _ := netip.AddrFromSlice(b) // 4 or 16 bytes: always ok
	return netip.AddrPortFrom(addr, uint16(port)), nil
}
