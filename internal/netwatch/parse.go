package netwatch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// The parser is our own: golang.org/x/sys/unix has no
// ParseNetlinkMessage/ParseNetlinkRouteAttr, and the standard library's
// syscall.ParseNetlinkRouteAttr panics on a last attribute whose padding is
// missing (and on a payload shorter than its fixed header). Netlink is in
// host byte order.

// RFC 2863 operational states (IF_OPER_* in linux/if.h; not in x/sys).
const (
	operUnknown = 0
	operUp      = 6
)

// nlmsg is one netlink message; data is its payload, aliasing the buffer.
type nlmsg struct {
	typ, flags uint16
	seq, pid   uint32
	data       []byte
}

// update is one link or address message reduced to what the watcher needs.
type update struct {
	link   bool // a link message; otherwise an address message
	del    bool // RTM_DELLINK or RTM_DELADDR
	index  int
	name   string       // link: IFLA_IFNAME; address: IFA_LABEL (IPv4 only); "" if absent
	up     bool         // link: operationally up
	prefix netip.Prefix // address: the local address with its prefix length
	usable bool         // address: neither tentative (unless optimistic) nor DAD-failed
}

// splitMessages splits one datagram into netlink messages. Every length is
// checked against what is left, so no input can make it read out of bounds.
func splitMessages(b []byte) ([]nlmsg, error) {
	var msgs []nlmsg
	for len(b) > 0 {
		if len(b) < unix.NLMSG_HDRLEN {
			return nil, fmt.Errorf("netlink: %d trailing bytes, shorter than a header", len(b))
		}
		n := binary.NativeEndian.Uint32(b)
		// Compared as uint64 so a huge length cannot wrap a 32-bit int.
		if n < unix.NLMSG_HDRLEN || uint64(n) > uint64(len(b)) {
			return nil, fmt.Errorf("netlink: message length %d with %d bytes left", n, len(b))
		}
		msgs = append(msgs, nlmsg{
			typ:   binary.NativeEndian.Uint16(b[4:]),
			flags: binary.NativeEndian.Uint16(b[6:]),
			seq:   binary.NativeEndian.Uint32(b[8:]),
			pid:   binary.NativeEndian.Uint32(b[12:]),
			data:  b[unix.NLMSG_HDRLEN:n],
		})
		// The last message may lack its alignment padding.
		b = b[min(align(int(n)), len(b)):]
	}
	return msgs, nil
}

// parse parses a datagram of rtnetlink notifications. Messages other than
// links and IPv4/IPv6 addresses are skipped; a malformed one is an error.
func parse(b []byte) ([]update, error) {
	msgs, err := splitMessages(b)
	if err != nil {
		return nil, err
	}
	var us []update
	for _, m := range msgs {
		u, ok, err := parseMessage(m)
		if err != nil {
			return nil, err
		}
		if ok {
			us = append(us, u)
		}
	}
	return us, nil
}

// parseMessage parses a link or address message; ok is false for any other
// message, or one to ignore.
func parseMessage(m nlmsg) (u update, ok bool, err error) {
	switch m.typ {
	case unix.RTM_NEWLINK, unix.RTM_DELLINK:
		return parseLink(m)
	case unix.RTM_NEWADDR, unix.RTM_DELADDR:
		return parseAddr(m)
	}
	return update{}, false, nil
}

// parseLink parses an ifinfomsg with its attributes.
func parseLink(m nlmsg) (update, bool, error) {
	d := m.data
	if len(d) < unix.SizeofIfInfomsg {
		return update{}, false, fmt.Errorf("netlink: link message of %d bytes", len(d))
	}
	// Only AF_UNSPEC messages describe the interface itself. The bridge
	// sends AF_BRIDGE ones to the same group for its ports, and its
	// RTM_DELLINK there means "left the bridge", not "gone".
	if d[0] != unix.AF_UNSPEC {
		return update{}, false, nil
	}
	u := update{link: true, del: m.typ == unix.RTM_DELLINK}
	index := int32(binary.NativeEndian.Uint32(d[4:]))
	if index <= 0 {
		return update{}, false, fmt.Errorf("netlink: link message for interface index %d", index)
	}
	u.index = int(index)
	flags := binary.NativeEndian.Uint32(d[8:])
	oper := byte(operUnknown)
	err := eachAttr(d[unix.SizeofIfInfomsg:], func(typ uint16, v []byte) error {
		switch typ {
		case unix.IFLA_IFNAME:
			u.name = cString(v)
		case unix.IFLA_OPERSTATE:
			if len(v) != 1 {
				return fmt.Errorf("IFLA_OPERSTATE of %d bytes", len(v))
			}
			oper = v[0]
		}
		return nil
	})
	if err != nil {
		return update{}, false, fmt.Errorf("netlink: link %d: %w", u.index, err)
	}
	// IFF_RUNNING is the kernel's own summary of the operational state (set
	// when it is up or unknown, as for dummy and ppp devices); the operstate
	// check only guards against the two disagreeing within one message.
	u.up = flags&unix.IFF_UP != 0 && flags&unix.IFF_RUNNING != 0 &&
		(oper == operUp || oper == operUnknown)
	return u, true, nil
}

// parseAddr parses an ifaddrmsg with its attributes.
func parseAddr(m nlmsg) (update, bool, error) {
	d := m.data
	if len(d) < unix.SizeofIfAddrmsg {
		return update{}, false, fmt.Errorf("netlink: address message of %d bytes", len(d))
	}
	var size int
	switch d[0] {
	case unix.AF_INET:
		size = 4
	case unix.AF_INET6:
		size = 16
	default:
		return update{}, false, nil
	}
	bits, flags := int(d[1]), uint32(d[2])
	u := update{del: m.typ == unix.RTM_DELADDR, index: int(binary.NativeEndian.Uint32(d[4:]))}
	if bits > size*8 || u.index <= 0 {
		return update{}, false, fmt.Errorf("netlink: address message with prefix length %d for interface %d", bits, u.index)
	}
	var local, address []byte
	err := eachAttr(d[unix.SizeofIfAddrmsg:], func(typ uint16, v []byte) error {
		switch typ {
		case unix.IFA_LOCAL, unix.IFA_ADDRESS:
			if len(v) != size {
				return fmt.Errorf("address attribute %d of %d bytes", typ, len(v))
			}
			if typ == unix.IFA_LOCAL {
				local = v
			} else {
				address = v
			}
		case unix.IFA_LABEL:
			u.name = cString(v)
		case unix.IFA_FLAGS: // all 32 flag bits; ifa_flags has only 8
			if len(v) != 4 {
				return fmt.Errorf("IFA_FLAGS of %d bytes", len(v))
			}
			flags = binary.NativeEndian.Uint32(v)
		}
		return nil
	})
	if err != nil {
		return update{}, false, fmt.Errorf("netlink: address on interface %d: %w", u.index, err)
	}
	// IFA_LOCAL is our end; on a point-to-point link (PPPoE) IFA_ADDRESS
	// is the peer's.
	a := local
	if a == nil {
		a = address
	}
	if a == nil {
		return update{}, false, fmt.Errorf("netlink: address message for interface %d without an address", u.index)
	}
	addr, _ := netip.AddrFromSlice(a) // len(a) == size, checked above
	u.prefix = netip.PrefixFrom(addr, bits)
	u.usable = flags&unix.IFA_F_DADFAILED == 0 &&
		(flags&unix.IFA_F_TENTATIVE == 0 || flags&unix.IFA_F_OPTIMISTIC != 0)
	return u, true, nil
}

// eachAttr calls fn for each route attribute in b, with the type's nested
// and byte-order flag bits cleared, and stops at fn's first error.
func eachAttr(b []byte, fn func(typ uint16, v []byte) error) error {
	for len(b) > 0 {
		if len(b) < unix.SizeofRtAttr {
			return fmt.Errorf("%d trailing bytes, shorter than an attribute header", len(b))
		}
		n := int(binary.NativeEndian.Uint16(b))
		if n < unix.SizeofRtAttr || n > len(b) {
			return fmt.Errorf("attribute length %d with %d bytes left", n, len(b))
		}
		const typeMask = 1<<14 - 1 // ^(NLA_F_NESTED | NLA_F_NET_BYTEORDER)
		if err := fn(binary.NativeEndian.Uint16(b[2:])&typeMask, b[unix.SizeofRtAttr:n]); err != nil {
			return err
		}
		b = b[min(align(n), len(b)):]
	}
	return nil
}

// align rounds n up to netlink's 4-byte alignment.
func align(n int) int {
	return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1)
}

// cString returns b up to its first NUL.
func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// errTruncated reports a datagram larger than the receive buffer.
var errTruncated = errors.New("netlink: message truncated")
