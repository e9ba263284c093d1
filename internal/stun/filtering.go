package stun

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"
)

// Filtering is a NAT's filtering behaviour (RFC 4787): which outside hosts
// may send to a mapping.
type Filtering int

const (
	// FilteringUnknown: the server cannot run the test (no OTHER-ADDRESS in
	// its reply: it has one address, as most public servers).
	FilteringUnknown Filtering = iota
	// EndpointIndependent: anyone may send (full cone).
	EndpointIndependent
	// AddressDependent: only addresses the mapping has sent to
	// (restricted cone).
	AddressDependent
	// AddressPortDependent: only address and port pairs it has sent to
	// (port-restricted cone).
	AddressPortDependent
)

func (f Filtering) String() string {
	switch f {
	case EndpointIndependent:
		return "endpoint-independent (full cone)"
	case AddressDependent:
		return "address-dependent (restricted cone)"
	case AddressPortDependent:
		return "address and port-dependent (port-restricted cone)"
	}
	return "unknown"
}

// CHANGE-REQUEST flags (RFC 5780 section 7.2).
const (
	changeIP   = 0x04
	changePort = 0x02
)

// ProbeFiltering runs RFC 5780's filtering test (section 4.4) from conn, an
// unconnected UDP socket, against server: a plain Binding request, whose
// reply must carry OTHER-ADDRESS (else FilteringUnknown); then one asking
// the server to answer from its other address and port, which only an
// endpoint-independent NAT lets through; then one asking for the other port
// only. A request goes out tries times, rto apart, before the test counts
// as not answered. ctx bounds it all.
func ProbeFiltering(ctx context.Context, conn *net.UDPConn, server netip.AddrPort, rto time.Duration, tries int) (Filtering, error) {
	body, _, err := exchange(ctx, conn, server, 0, rto, tries)
	if err != nil {
		return FilteringUnknown, fmt.Errorf("stun: filtering test: %w", err)
	}
	if v, ok := attribute(body, attrOtherAddress); !ok {
		return FilteringUnknown, nil
	} else if _, err := decodeAddress(v, nil, "OTHER-ADDRESS"); err != nil {
		return FilteringUnknown, fmt.Errorf("stun: filtering test: %w", err)
	}
	if _, _, err := exchange(ctx, conn, server, changeIP|changePort, rto, tries); err == nil {
		return EndpointIndependent, nil
	} else if !errors.Is(err, errNoReply) {
		return FilteringUnknown, fmt.Errorf("stun: filtering test: %w", err)
	}
	if _, _, err := exchange(ctx, conn, server, changePort, rto, tries); err == nil {
		return AddressDependent, nil
	} else if !errors.Is(err, errNoReply) {
		return FilteringUnknown, fmt.Errorf("stun: filtering test: %w", err)
	}
	return AddressPortDependent, nil
}

var errNoReply = errors.New("no reply")

// exchange sends a Binding request (with CHANGE-REQUEST flags when change
// is not 0) to server and returns the body of the matching success
// response, from wherever it comes: a changed request is answered from
// another address.
func exchange(ctx context.Context, conn *net.UDPConn, server netip.AddrPort, change byte, rto time.Duration, tries int) ([]byte, netip.AddrPort, error) {
	req, tid, err := newRequest(change)
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	w := watch(ctx, conn)
	defer w.release()
	buf := make([]byte, headerSize+maxBodySize+1)
	for range tries {
		if err := w.set(time.Now().Add(rto)); err != nil {
			return nil, netip.AddrPort{}, err
		}
		if _, err := conn.WriteToUDPAddrPort(req, server); err != nil {
			return nil, netip.AddrPort{}, w.ioError("UDP: sending request", err)
		}
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) && w.err() == nil {
					break
				}
				return nil, netip.AddrPort{}, w.ioError("UDP: reading response", err)
			}
			if _, err := ParseResponse(buf[:n], tid); err != nil {
				if notForUs(buf[:n], err) {
					continue
				}
				return nil, netip.AddrPort{}, err
			}
			return buf[headerSize:n], from, nil
		}
	}
	return nil, netip.AddrPort{}, errNoReply
}
