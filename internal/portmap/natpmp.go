package portmap

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// NAT-PMP (RFC 6886) wire format.
const (
	natpmpOpAddr     = 0
	natpmpOpUDP      = 1
	natpmpOpTCP      = 2
	natpmpAddrRespSz = 12
	natpmpMapRespSz  = 16
)

var natpmpResults = map[int]string{
	1: "unsupported version",
	2: "not authorized / refused",
	3: "network failure",
	4: "out of resources",
	5: "unsupported opcode",
}

// natpmpResponse is a parsed NAT-PMP reply.
type natpmpResponse struct {
	Op           byte // request opcode the reply answers
	Result       uint16
	Epoch        uint32
	External     netip.Addr // opcode 0
	InternalPort uint16     // opcodes 1, 2
	ExternalPort uint16
	Lifetime     uint32
}

// parseNATPMP reads a NAT-PMP reply. It is strict: version 0, a reply
// opcode, and exactly the size its opcode calls for (or the 8-byte error
// form with a non-zero result code).
func parseNATPMP(b []byte) (natpmpResponse, error) {
	var r natpmpResponse
	if len(b) < 8 {
		return r, fmt.Errorf("nat-pmp: reply of %d bytes is too short", len(b))
	}
	if b[0] != 0 {
		return r, fmt.Errorf("nat-pmp: reply version %d, want 0", b[0])
	}
	if b[1] < 128 || b[1] > 128+natpmpOpTCP {
		return r, fmt.Errorf("nat-pmp: unexpected opcode %d", b[1])
	}
	r.Op = b[1] - 128
	r.Result = binary.BigEndian.Uint16(b[2:4])
	r.Epoch = binary.BigEndian.Uint32(b[4:8])
	want := natpmpMapRespSz
	if r.Op == natpmpOpAddr {
		want = natpmpAddrRespSz
	}
	if r.Result != 0 {
		if len(b) != 8 && len(b) != want {
			return r, fmt.Errorf("nat-pmp: error reply of %d bytes", len(b))
		}
		return r, nil
	}
	if len(b) != want {
		return r, fmt.Errorf("nat-pmp: reply of %d bytes, want %d", len(b), want)
	}
	if r.Op == natpmpOpAddr {
		r.External = netip.AddrFrom4([4]byte(b[8:12]))
		return r, nil
	}
	r.InternalPort = binary.BigEndian.Uint16(b[8:10])
	r.ExternalPort = binary.BigEndian.Uint16(b[10:12])
	r.Lifetime = binary.BigEndian.Uint32(b[12:16])
	return r, nil
}

func natpmpMapRequest(op byte, internal, external uint16, lifetime uint32) []byte {
	b := make([]byte, 12)
	b[1] = op
	binary.BigEndian.PutUint16(b[4:6], internal)
	binary.BigEndian.PutUint16(b[6:8], external)
	binary.BigEndian.PutUint32(b[8:12], lifetime)
	return b
}

// NATPMPClient speaks NAT-PMP to one gateway.
type NATPMPClient struct {
	ex *exchanger
}

// NewNATPMP returns a NAT-PMP client for gw.
func NewNATPMP(gw netip.Addr, o Options) *NATPMPClient {
	return &NATPMPClient{ex: newExchanger(netip.AddrPortFrom(gw, o.pmpPort()), o)}
}

func (c *NATPMPClient) Method() string { return NATPMP }

func (c *NATPMPClient) exchange(ctx context.Context, req []byte) (natpmpResponse, error) {
	var resp natpmpResponse
	err := c.ex.exchange(ctx, req, func(b []byte) (bool, error) {
		r, err := parseNATPMP(b)
		if err != nil {
			return false, err
		}
		if r.Op != req[1] {
			return false, nil // an answer to something else: keep waiting
		}
		if r.Op != natpmpOpAddr && r.InternalPort != binary.BigEndian.Uint16(req[4:6]) && r.Result == 0 {
			return false, nil
		}
		resp = r
		return true, nil
	})
	if err != nil {
		return resp, fmt.Errorf("nat-pmp: %w", err)
	}
	return resp, refusal(NATPMP, int(resp.Result), natpmpResults)
}

// ExternalAddress asks for the router's external address.
func (c *NATPMPClient) ExternalAddress(ctx context.Context) (netip.Addr, uint32, error) {
	r, err := c.exchange(ctx, []byte{0, natpmpOpAddr})
	return r.External, r.Epoch, err
}

func natpmpOp(proto string) (byte, error) {
	return pick(proto, byte(natpmpOpTCP), byte(natpmpOpUDP))
}

// Map creates or renews a mapping.
func (c *NATPMPClient) Map(ctx context.Context, r Request) (Mapping, error) {
	op, err := natpmpOp(r.Protocol)
	if err != nil {
		return Mapping{}, err
	}
	if r.InternalPort == 0 {
		return Mapping{}, errors.New("nat-pmp: internal port 0")
	}
	life := lifetimeSeconds(r.Lifetime)
	if life == 0 {
		life = 1 // 0 would delete
	}
	resp, err := c.exchange(ctx, natpmpMapRequest(op, r.InternalPort, r.ExternalPort, life))
	if err != nil {
		return Mapping{}, err
	}
	if resp.ExternalPort == 0 || resp.Lifetime == 0 {
		return Mapping{}, fmt.Errorf("nat-pmp: router granted port %d for %ds", resp.ExternalPort, resp.Lifetime)
	}
	m := Mapping{
		Method: NATPMP, Protocol: r.Protocol, InternalPort: r.InternalPort,
		Lifetime: time.Duration(resp.Lifetime) * time.Second, Epoch: resp.Epoch,
	}
	m.Expires = time.Now().Add(m.Lifetime)
	addr := netip.IPv4Unspecified()
	if a, _, err := c.ExternalAddress(ctx); err == nil {
		addr = a
	}
	m.External = netip.AddrPortFrom(addr, resp.ExternalPort)
	return m, nil
}

// Unmap deletes a mapping (lifetime 0, RFC 6886 3.4).
func (c *NATPMPClient) Unmap(ctx context.Context, m Mapping) error {
	op, err := natpmpOp(m.Protocol)
	if err != nil {
		return err
	}
	_, err = c.exchange(ctx, natpmpMapRequest(op, m.InternalPort, 0, 0))
	return err
}

func lifetimeSeconds(d time.Duration) uint32 {
	s := d / time.Second
	if s < 0 {
		return 0
	}
	if s > 1<<31 {
		return 1 << 31
	}
	return uint32(s)
}
