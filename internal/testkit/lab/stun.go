package lab

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"time"
)

// A minimal STUN (RFC 5389) binding client, enough to check that coturn
// answers and to learn the mapped address without a STUN library, plus
// RFC 5780's CHANGE-REQUEST and OTHER-ADDRESS to check NAT filtering.

const (
	stunMagicCookie     = 0x2112A442
	stunBindingRequest  = 0x0001
	stunBindingSuccess  = 0x0101
	stunXORMappedAddr   = 0x0020
	stunChangeRequest   = 0x0003 // RFC 5780
	stunResponseOrigin  = 0x802B // RFC 5780
	stunOtherAddress    = 0x802C // RFC 5780
	stunHeaderLen       = 20
	stunFamilyIPv4      = 0x01
	stunFamilyIPv6      = 0x02
	stunMaxMessageBytes = 1500
)

// CHANGE-REQUEST flags (RFC 5780 section 7.2).
const (
	stunChangeIP   = 0x04
	stunChangePort = 0x02
)

// stunRequest returns a binding request with a random transaction ID.
func stunRequest() []byte {
	req := make([]byte, stunHeaderLen)
	binary.BigEndian.PutUint16(req[0:], stunBindingRequest)
	binary.BigEndian.PutUint32(req[4:], stunMagicCookie)
	rand.Read(req[8:20])
	return req
}

// stunRequestChange returns a binding request with a CHANGE-REQUEST
// attribute carrying flags (stunChangeIP, stunChangePort).
func stunRequestChange(flags byte) []byte {
	req := stunRequest()
	binary.BigEndian.PutUint16(req[2:], 8) // message length: one attribute
	attr := make([]byte, 8)
	binary.BigEndian.PutUint16(attr[0:], stunChangeRequest)
	binary.BigEndian.PutUint16(attr[2:], 4)
	attr[7] = flags
	return append(req, attr...)
}

// stunMapped checks that resp answers req and returns its
// XOR-MAPPED-ADDRESS.
func stunMapped(req, resp []byte) (netip.AddrPort, error) {
	return stunAddrAttr(req, resp, stunXORMappedAddr)
}

// errNoSTUNAttr is stunAddrAttr's error for a response without the
// attribute.
var errNoSTUNAttr = errors.New("stun: attribute not in response")

// stunAddrAttr checks that resp answers req and returns its address
// attribute typ: XOR-MAPPED-ADDRESS (decoded), OTHER-ADDRESS or
// RESPONSE-ORIGIN (plain, as MAPPED-ADDRESS).
func stunAddrAttr(req, resp []byte, typ uint16) (netip.AddrPort, error) {
	if len(resp) < stunHeaderLen {
		return netip.AddrPort{}, fmt.Errorf("stun: short response (%d bytes)", len(resp))
	}
	if t := binary.BigEndian.Uint16(resp[0:]); t != stunBindingSuccess {
		return netip.AddrPort{}, fmt.Errorf("stun: response type %#04x, want binding success", t)
	}
	if string(resp[4:20]) != string(req[4:20]) {
		return netip.AddrPort{}, errors.New("stun: response for another transaction")
	}
	attrs := resp[stunHeaderLen:]
	if n := int(binary.BigEndian.Uint16(resp[2:])); n <= len(attrs) {
		attrs = attrs[:n]
	}
	for len(attrs) >= 4 {
		n := int(binary.BigEndian.Uint16(attrs[2:]))
		if 4+n > len(attrs) {
			break
		}
		v := attrs[4 : 4+n]
		if binary.BigEndian.Uint16(attrs[0:]) == typ && (n == 8 && v[1] == stunFamilyIPv4 || n == 20 && v[1] == stunFamilyIPv6) {
			port := binary.BigEndian.Uint16(v[2:])
			ip := slices.Clone(v[4:])
			if typ == stunXORMappedAddr {
				// The address is XORed with the magic cookie and, for
				// IPv6, the transaction ID that follows it in the
				// header.
				port ^= stunMagicCookie >> 16
				for i := range ip {
					ip[i] ^= resp[4+i]
				}
			}
			addr, _ := netip.AddrFromSlice(ip)
			return netip.AddrPortFrom(addr, port), nil
		}
		attrs = attrs[4+(n+3)&^3:] // attributes are padded to 4 bytes
	}
	return netip.AddrPort{}, fmt.Errorf("%w: %#04x", errNoSTUNAttr, typ)
}

// stunBinding sends a binding request over an established connection (TCP
// or connected UDP) and returns the mapped address the server saw.
func stunBinding(c net.Conn, timeout time.Duration) (netip.AddrPort, error) {
	c.SetDeadline(time.Now().Add(timeout))
	defer c.SetDeadline(time.Time{})
	req := stunRequest()
	if _, err := c.Write(req); err != nil {
		return netip.AddrPort{}, fmt.Errorf("stun: %w", err)
	}
	if _, ok := c.(*net.UDPConn); ok {
		buf := make([]byte, stunMaxMessageBytes)
		n, err := c.Read(buf)
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("stun: %w", err)
		}
		return stunMapped(req, buf[:n])
	}
	// Over TCP, messages are framed by the length in their header.
	resp := make([]byte, stunHeaderLen)
	if _, err := io.ReadFull(c, resp); err != nil {
		return netip.AddrPort{}, fmt.Errorf("stun: %w", err)
	}
	attrs := make([]byte, binary.BigEndian.Uint16(resp[2:]))
	if _, err := io.ReadFull(c, attrs); err != nil {
		return netip.AddrPort{}, fmt.Errorf("stun: %w", err)
	}
	return stunMapped(req, append(resp, attrs...))
}

// stunBindingTCP asks the STUN server at addr, over a new TCP connection from
// the calling thread's namespace, for the caller's mapped address.
func stunBindingTCP(addr netip.AddrPort, timeout time.Duration) (netip.AddrPort, error) {
	return stunBindingDial("tcp", addr, timeout)
}

// stunBindingDial is stunBindingTCP over network "tcp" or "udp".
func stunBindingDial(network string, addr netip.AddrPort, timeout time.Duration) (netip.AddrPort, error) {
	c, err := net.DialTimeout(network, addr.String(), timeout)
	if err != nil {
		return netip.AddrPort{}, err
	}
	defer c.Close()
	return stunBinding(c, timeout)
}
