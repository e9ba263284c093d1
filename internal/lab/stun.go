package lab

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"
)

// A minimal STUN (RFC 5389) binding client, enough to check that coturn
// answers and to learn the mapped address without a STUN library.

const (
	stunMagicCookie     = 0x2112A442
	stunBindingRequest  = 0x0001
	stunBindingSuccess  = 0x0101
	stunXORMappedAddr   = 0x0020
	stunHeaderLen       = 20
	stunFamilyIPv4      = 0x01
	stunFamilyIPv6      = 0x02
	stunMaxMessageBytes = 1500
)

// stunRequest returns a binding request with a random transaction ID.
func stunRequest() []byte {
	req := make([]byte, stunHeaderLen)
	binary.BigEndian.PutUint16(req[0:], stunBindingRequest)
	binary.BigEndian.PutUint32(req[4:], stunMagicCookie)
	rand.Read(req[8:20])
	return req
}

// stunMapped checks that resp answers req and returns its
// XOR-MAPPED-ADDRESS.
func stunMapped(req, resp []byte) (netip.AddrPort, error) {
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
		typ := binary.BigEndian.Uint16(attrs[0:])
		n := int(binary.BigEndian.Uint16(attrs[2:]))
		if 4+n > len(attrs) {
			break
		}
		v := attrs[4 : 4+n]
		if typ == stunXORMappedAddr && (n == 8 && v[1] == stunFamilyIPv4 || n == 20 && v[1] == stunFamilyIPv6) {
			port := binary.BigEndian.Uint16(v[2:]) ^ stunMagicCookie>>16
			// The address is XORed with the magic cookie and, for IPv6,
			// the transaction ID that follows it in the header.
			ip := make([]byte, n-4)
			for i := range ip {
				ip[i] = v[4+i] ^ resp[4+i]
			}
			addr, _ := netip.AddrFromSlice(ip)
			return netip.AddrPortFrom(addr, port), nil
		}
		attrs = attrs[4+(n+3)&^3:] // attributes are padded to 4 bytes
	}
	return netip.AddrPort{}, errors.New("stun: no XOR-MAPPED-ADDRESS in response")
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
