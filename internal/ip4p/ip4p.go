// Package ip4p formats the IP4P address: an IPv6 address that carries an
// IPv4 address and a port, so both can be published in one DNS AAAA record.
package ip4p

import (
	"fmt"
	"net/netip"
)

// Format returns the IP4P form of an IPv4 address and port exactly as the C
// natmap prints it: "2001::PPPP:AABB:CCDD", four lowercase hex digits per
// group, port big-endian. It returns "" for an IPv6 address, which has no
// IP4P form (the C natmap passes an empty argument then).
func Format(ap netip.AddrPort) string {
	a := ap.Addr().Unmap()
	if !a.Is4() {
		return ""
	}
	b := a.As4()
	p := ap.Port()
	return fmt.Sprintf("2001::%02x%02x:%02x%02x:%02x%02x", byte(p>>8), byte(p), b[0], b[1], b[2], b[3])
}

// Parse decodes an IP4P address back into the IPv4 address and port, for
// tools and tests that read what natmap published.
func Parse(s string) (netip.AddrPort, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("ip4p: %w", err)
	}
	b := a.As16()
	if !a.Is6() || a.Is4In6() || b[0] != 0x20 || b[1] != 0x01 {
		return netip.AddrPort{}, fmt.Errorf("ip4p: %s is not an IP4P address (2001::port:ipv4)", s)
	}
	for _, x := range b[2:10] {
		if x != 0 {
			return netip.AddrPort{}, fmt.Errorf("ip4p: %s is not an IP4P address (2001::port:ipv4)", s)
		}
	}
	port := uint16(b[10])<<8 | uint16(b[11])
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}), port), nil
}
