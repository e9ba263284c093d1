package portmap

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"
)

// PCP (RFC 6887) wire format.
const (
	pcpPort       = 5351
	pcpVersion    = 2
	pcpOpAnnounce = 0
	pcpOpMap      = 1
	pcpHeaderSz   = 24
	pcpMapSz      = 36
	pcpMaxSz      = 1100
	pcpProtoTCP   = 6
	pcpProtoUDP   = 17
	pcpUnsuppVer  = 1
)

var pcpResults = map[int]string{
	1:  "unsupported version",
	2:  "not authorized",
	3:  "malformed request",
	4:  "unsupported opcode",
	5:  "unsupported option",
	6:  "malformed option",
	7:  "network failure",
	8:  "no resources",
	9:  "unsupported protocol",
	10: "user quota exceeded",
	11: "cannot provide external port",
	12: "address mismatch",
	13: "excessive remote peers",
}

// pcpResponse is a parsed PCP MAP reply.
type pcpResponse struct {
	Version      byte // 0: a NAT-PMP server's "unsupported version"
	Op           byte // pcpOpMap or pcpOpAnnounce
	Result       byte
	Lifetime     uint32
	Epoch        uint32
	Nonce        [12]byte
	Protocol     byte
	InternalPort uint16
	ExternalPort uint16
	External     netip.Addr
}

// parsePCP reads a PCP reply. It is strict: a reply to MAP, a length that
// is a multiple of 4 within the RFC's bounds, options well framed. A
// NAT-PMP server answers a PCP request with version 0 and result 1 (RFC
// 6887 9), which is returned, not an error, so the caller can fall back.
func parsePCP(b []byte) (pcpResponse, error) {
	var r pcpResponse
	if len(b) >= 4 && b[0] == 0 {
		// NAT-PMP's reply to an unknown version: [0, 128+op, 0, 1, epoch].
		if len(b) >= 4 && binary.BigEndian.Uint16(b[2:4]) == pcpUnsuppVer {
			r.Version, r.Result = 0, pcpUnsuppVer
			return r, nil
		}
		return r, errors.New("pcp: version 0 reply is not an unsupported-version error")
	}
	if len(b) < pcpHeaderSz {
		return r, fmt.Errorf("pcp: reply of %d bytes is too short", len(b))
	}
	if len(b) > pcpMaxSz || len(b)%4 != 0 {
		return r, fmt.Errorf("pcp: reply of %d bytes", len(b))
	}
	r.Version = b[0]
	if b[1]&0x80 == 0 {
		return r, errors.New("pcp: a request, not a reply")
	}
	r.Result = b[3]
	r.Lifetime = binary.BigEndian.Uint32(b[4:8])
	r.Epoch = binary.BigEndian.Uint32(b[8:12])
	if r.Version != pcpVersion {
		if r.Result == pcpUnsuppVer {
			return r, nil
		}
		return r, fmt.Errorf("pcp: reply version %d", r.Version)
	}
	r.Op = b[1] & 0x7f
	switch r.Op {
	case pcpOpAnnounce:
		return r, checkPCPOptions(b[pcpHeaderSz:])
	case pcpOpMap:
	default:
		return r, fmt.Errorf("pcp: reply to opcode %d", r.Op)
	}
	if len(b) < pcpHeaderSz+pcpMapSz {
		if r.Result != 0 {
			return r, nil // some servers cut error replies short
		}
		return r, fmt.Errorf("pcp: MAP reply of %d bytes is too short", len(b))
	}
	m := b[pcpHeaderSz:]
	copy(r.Nonce[:], m[0:12])
	r.Protocol = m[12]
	r.InternalPort = binary.BigEndian.Uint16(m[16:18])
	r.ExternalPort = binary.BigEndian.Uint16(m[18:20])
	ext := netip.AddrFrom16([16]byte(m[20:36]))
	if ext.Is4In6() {
		ext = ext.Unmap()
	}
	r.External = ext
	return r, checkPCPOptions(m[pcpMapSz:])
}

// checkPCPOptions checks that options are well framed; natmap uses none.
func checkPCPOptions(opts []byte) error {
	for len(opts) > 0 {
		if len(opts) < 4 {
			return errors.New("pcp: truncated option header")
		}
		n := int(binary.BigEndian.Uint16(opts[2:4]))
		padded := (n + 3) &^ 3
		if 4+padded > len(opts) {
			return fmt.Errorf("pcp: option %d of %d bytes overruns the reply", opts[0], n)
		}
		opts = opts[4+padded:]
	}
	return nil
}

func pcpMapRequest(client netip.Addr, nonce [12]byte, proto byte, internal, external uint16, lifetime uint32) []byte {
	b := make([]byte, pcpHeaderSz+pcpMapSz)
	b[0] = pcpVersion
	b[1] = pcpOpMap
	binary.BigEndian.PutUint32(b[4:8], lifetime)
	c16 := client.As16() // IPv4 in its IPv4-mapped form, as PCP wants
	copy(b[8:24], c16[:])
	m := b[pcpHeaderSz:]
	copy(m[0:12], nonce[:])
	m[12] = proto
	binary.BigEndian.PutUint16(m[16:18], internal)
	binary.BigEndian.PutUint16(m[18:20], external)
	// Suggested external address: all zeros in IPv4-mapped form, "any".
	m[30], m[31] = 0xff, 0xff
	return b
}

// PCPClient speaks PCP to one gateway. Its nonce is kept for the client's
// life, so renewals and deletion refer to the same mapping (RFC 6887 11.1).
type PCPClient struct {
	ex     *exchanger
	client netip.Addr // our address as the gateway sees it
	nonce  [12]byte
}

// NewPCP returns a PCP client for gw; client is natmap's address on the
// gateway's link (PCP servers check it against the packet's source).
func NewPCP(gw, client netip.Addr, o Options) *PCPClient {
	c := &PCPClient{ex: newExchanger(netip.AddrPortFrom(gw, o.pmpPort()), o), client: client}
	// Not crypto/rand, which would add a tenth of the package size; the
	// runtime's generator (ChaCha8, seeded by the kernel) is unpredictable
	// enough for a nonce that only an on-path host could see anyway.
	for i := range c.nonce {
		c.nonce[i] = byte(rand.Uint32())
	}
	return c
}

func (c *PCPClient) Method() string { return PCP }

func pcpProto(proto string) (byte, error) {
	return pick(proto, byte(pcpProtoTCP), byte(pcpProtoUDP))
}

func (c *PCPClient) exchange(ctx context.Context, req []byte) (pcpResponse, error) {
	var resp pcpResponse
	err := c.ex.exchange(ctx, req, func(b []byte) (bool, error) {
		r, err := parsePCP(b)
		if err != nil {
			return false, err
		}
		if r.Version == pcpVersion && r.Op != req[1] {
			return false, nil
		}
		if r.Version == pcpVersion && r.Result == 0 && r.Op == pcpOpMap {
			m := req[pcpHeaderSz:]
			if r.Nonce != [12]byte(m[0:12]) || r.Protocol != m[12] ||
				r.InternalPort != binary.BigEndian.Uint16(m[16:18]) {
				return false, nil // not ours (RFC 6887 11.4)
			}
		}
		resp = r
		return true, nil
	})
	if err != nil {
		return resp, fmt.Errorf("pcp: %w", err)
	}
	return resp, refusal(PCP, int(resp.Result), pcpResults)
}

// Map creates or renews a mapping.
func (c *PCPClient) Map(ctx context.Context, r Request) (Mapping, error) {
	proto, err := pcpProto(r.Protocol)
	if err != nil {
		return Mapping{}, err
	}
	if r.InternalPort == 0 {
		return Mapping{}, errors.New("pcp: internal port 0")
	}
	life := lifetimeSeconds(r.Lifetime)
	if life == 0 {
		life = 1
	}
	resp, err := c.exchange(ctx, pcpMapRequest(c.client, c.nonce, proto, r.InternalPort, r.ExternalPort, life))
	if err != nil {
		return Mapping{}, err
	}
	if resp.ExternalPort == 0 || resp.Lifetime == 0 {
		return Mapping{}, fmt.Errorf("pcp: router granted port %d for %ds", resp.ExternalPort, resp.Lifetime)
	}
	m := Mapping{
		Method: PCP, Protocol: r.Protocol, InternalPort: r.InternalPort,
		External: netip.AddrPortFrom(resp.External, resp.ExternalPort),
		Lifetime: time.Duration(resp.Lifetime) * time.Second, Epoch: resp.Epoch,
	}
	m.Expires = time.Now().Add(m.Lifetime)
	return m, nil
}

// Unmap deletes a mapping (lifetime 0, RFC 6887 11.2).
func (c *PCPClient) Unmap(ctx context.Context, m Mapping) error {
	proto, err := pcpProto(m.Protocol)
	if err != nil {
		return err
	}
	// The granted external port too: miniupnpd finds the mapping by it.
	_, err = c.exchange(ctx, pcpMapRequest(c.client, c.nonce, proto, m.InternalPort, m.External.Port(), 0))
	return err
}

// Announce asks the router whether it speaks PCP, without mapping anything
// (the ANNOUNCE opcode, RFC 6887 14.1).
func (c *PCPClient) Announce(ctx context.Context) error {
	req := make([]byte, pcpHeaderSz)
	req[0], req[1] = pcpVersion, pcpOpAnnounce
	c16 := c.client.As16()
	copy(req[8:24], c16[:])
	_, err := c.exchange(ctx, req)
	return err
}
