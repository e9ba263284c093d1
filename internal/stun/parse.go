// Package stun is a small STUN (RFC 5389/8489) Binding client.
//
// It asks a STUN server for the public (mapped) address of a TCP or UDP
// socket. Unlike the C natmap it is strict about what it accepts: a reply
// must carry the request's transaction id, be a Binding response, and be
// well formed and small. Nothing a hostile server sends can make it panic,
// block past the caller's context, or allocate more than maxBodySize.
//
// The codec is our own, small and strict: natmap needs one request shape
// and three attributes. github.com/pion/stun/v3 is the reference it is
// tested and fuzzed against; linking pion would pull in crypto/tls and
// pion/dtls, a quarter of the binary on a router (see the README).
package stun

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

const (
	headerSize = 20
	magic      = 0x2112A442

	// maxBodySize caps the body of a reply. A Binding response holds a few
	// address attributes (at most 24 bytes each), SOFTWARE (at most 767) and
	// FINGERPRINT; an error response adds ERROR-CODE (at most 767). Real
	// replies stay well under 1 KiB, so 2 KiB leaves room for extensions
	// while bounding what a hostile server can make us read and keep.
	maxBodySize = 2048

	// maxReasonSize is the RFC 8489 limit for an ERROR-CODE reason phrase
	// (128 characters, up to 763 bytes); longer ones are cut in errors.
	maxReasonSize = 763
)

// Errors returned by ParseResponse, BindTCP and BindUDP; test with errors.Is.
// An error response from the server is reported as *ResponseError instead.
var (
	// ErrTruncated: the message is shorter than its header or than the
	// body length its header announces, or (BindTCP) the stream ended
	// mid-message.
	ErrTruncated = errors.New("stun: truncated message")
	// ErrTooLarge: the header announces a body longer than maxBodySize.
	ErrTooLarge = errors.New("stun: message too large")
	// ErrLengthMismatch: the header's body length is not a multiple of 4
	// or the data runs past it.
	ErrLengthMismatch = errors.New("stun: body length disagrees with data")
	// ErrNotSTUN: the two leading bits of the message are not zero.
	ErrNotSTUN = errors.New("stun: not a STUN message")
	// ErrBadMagicCookie: the magic cookie is not 0x2112A442 (for example a
	// reply from an RFC 3489-only server, or garbage).
	ErrBadMagicCookie = errors.New("stun: wrong magic cookie")
	// ErrTransactionMismatch: the reply belongs to another transaction.
	ErrTransactionMismatch = errors.New("stun: transaction id mismatch")
	// ErrNotResponse: a request or indication arrived instead of a response.
	ErrNotResponse = errors.New("stun: message is not a response")
	// ErrWrongMethod: a response for a method other than Binding.
	ErrWrongMethod = errors.New("stun: response is not for a Binding request")
	// ErrBadAttribute: the attribute list (or one attribute) is malformed.
	ErrBadAttribute = errors.New("stun: malformed attribute")
	// ErrBadAddress: an address attribute has a bad family or length, or
	// holds an address that cannot be a mapping (unspecified, port 0).
	ErrBadAddress = errors.New("stun: bad address attribute")
	// ErrNoAddress: a success response without (XOR-)MAPPED-ADDRESS.
	ErrNoAddress = errors.New("stun: response has no mapped address")
)

// ResponseError is a Binding error response for our transaction.
// Code is 0 when the response carried no well-formed ERROR-CODE.
type ResponseError struct {
	Code   int
	Reason string
}

func (e *ResponseError) Error() string {
	if e.Code == 0 {
		return "stun: Binding error response without a valid ERROR-CODE"
	}
	// %q because the reason is server-controlled text headed for logs.
	return fmt.Sprintf("stun: Binding error response %d %q", e.Code, e.Reason)
}

// ParseResponse checks a whole STUN message raw (header and body) against
// the request's transaction id tid and returns the mapped address.
//
// XOR-MAPPED-ADDRESS is preferred; MAPPED-ADDRESS is accepted from old
// servers that send only that. An IPv4-mapped IPv6 address is unmapped so
// callers compare like with like. A Binding error response yields a
// *ResponseError; every other rejection wraps one of the Err* sentinels.
//
// The checks run in a fixed order: the "not for us" ones (ErrTruncated for
// a short header, ErrNotSTUN, ErrBadMagicCookie, ErrTransactionMismatch,
// ErrNotResponse) come before anything that judges our own reply, which
// lets BindUDP skip strays and fail on a broken answer.
func ParseResponse(raw []byte, tid [12]byte) (netip.AddrPort, error) {
	if len(raw) < headerSize {
		return netip.AddrPort{}, fmt.Errorf("%w: %d bytes, the header alone is %d", ErrTruncated, len(raw), headerSize)
	}
	bodyLen, err := checkHeader(raw[:headerSize], tid)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if got := len(raw) - headerSize; got < bodyLen {
		return netip.AddrPort{}, fmt.Errorf("%w: body is %d bytes, header says %d", ErrTruncated, got, bodyLen)
	} else if got > bodyLen {
		return netip.AddrPort{}, fmt.Errorf("%w: body is %d bytes, header says %d", ErrLengthMismatch, got, bodyLen)
	}

	body := raw[headerSize:]
	if err := checkAttributes(body); err != nil {
		return netip.AddrPort{}, err
	}
	if classOf(binary.BigEndian.Uint16(raw[0:2])) == classErrorResponse {
		return netip.AddrPort{}, responseError(body)
	}
	return mappedAddress(body, tid)
}

// checkHeader validates a 20-byte header and returns the body length it
// announces (at most maxBodySize). It needs no body, so BindTCP can reject
// a reply before reading (and allocating for) the rest of it.
func checkHeader(h []byte, tid [12]byte) (int, error) {
	typ := binary.BigEndian.Uint16(h[0:2])
	if typ&0xC000 != 0 {
		return 0, fmt.Errorf("%w: type field %#04x", ErrNotSTUN, typ)
	}
	if c := binary.BigEndian.Uint32(h[4:8]); c != magic {
		return 0, fmt.Errorf("%w: %#08x", ErrBadMagicCookie, c)
	}
	if [12]byte(h[8:20]) != tid {
		return 0, fmt.Errorf("%w: got %x, want %x", ErrTransactionMismatch, h[8:20], tid)
	}
	switch c := classOf(typ); c {
	case classSuccessResponse, classErrorResponse:
	default:
		return 0, fmt.Errorf("%w: type %#04x is a %v", ErrNotResponse, typ, c)
	}
	if m := methodOf(typ); m != methodBinding {
		return 0, fmt.Errorf("%w: method %#03x", ErrWrongMethod, m)
	}
	n := int(binary.BigEndian.Uint16(h[2:4]))
	if n > maxBodySize {
		return 0, fmt.Errorf("%w: body of %d bytes, limit %d", ErrTooLarge, n, maxBodySize)
	}
	if n%4 != 0 {
		return 0, fmt.Errorf("%w: %d is not a multiple of 4", ErrLengthMismatch, n)
	}
	return n, nil
}

func responseError(body []byte) error {
	v, ok := attribute(body, attrErrorCode)
	if !ok || len(v) < 4 {
		return &ResponseError{}
	}
	// Class in the low 3 bits of byte 2, number in byte 3 (RFC 8489 14.8).
	code := int(v[2]&0x7)*100 + int(v[3])
	reason := v[4:]
	if len(reason) > maxReasonSize {
		reason = reason[:maxReasonSize]
	}
	return &ResponseError{Code: code, Reason: string(reason)}
}

// mappedAddress returns XOR-MAPPED-ADDRESS, or MAPPED-ADDRESS if the former
// is absent. A malformed XOR-MAPPED-ADDRESS is an error, not a reason to
// fall back: RFC 8489 says to use it when present.
func mappedAddress(body []byte, tid [12]byte) (netip.AddrPort, error) {
	if v, ok := attribute(body, attrXORMappedAddress); ok {
		return decodeAddress(v, &tid, "XOR-MAPPED-ADDRESS")
	}
	if v, ok := attribute(body, attrMappedAddress); ok {
		return decodeAddress(v, nil, "MAPPED-ADDRESS")
	}
	return netip.AddrPort{}, ErrNoAddress
}

// decodeAddress decodes a (XOR-)MAPPED-ADDRESS value, which must have the
// exact length for its family; tid is nil for the plain, unXORed form. An
// IPv4-mapped IPv6 address is unmapped so callers compare like with like.
func decodeAddress(v []byte, tid *[12]byte, name string) (netip.AddrPort, error) {
	if len(v) < 4 {
		return netip.AddrPort{}, fmt.Errorf("%w: %s: value of %d bytes", ErrBadAddress, name, len(v))
	}
	want := 0
	switch family := binary.BigEndian.Uint16(v[0:2]); family {
	case 1:
		want = 4 + 4
	case 2:
		want = 4 + 16
	default:
		return netip.AddrPort{}, fmt.Errorf("%w: %s: family %d", ErrBadAddress, name, family)
	}
	if len(v) != want {
		return netip.AddrPort{}, fmt.Errorf("%w: %s: value of %d bytes, family needs %d", ErrBadAddress, name, len(v), want)
	}
	port := binary.BigEndian.Uint16(v[2:4])
	var ip [16]byte
	n := copy(ip[:], v[4:])
	if tid != nil {
		// RFC 8489 14.2: the port is XORed with the cookie's top half, the
		// address with the cookie followed by the transaction id.
		var key [16]byte
		binary.BigEndian.PutUint32(key[0:4], magic)
		copy(key[4:], tid[:])
		port ^= magic >> 16
		for i := range n {
			ip[i] ^= key[i]
		}
	}
	addr, _ := netip.AddrFromSlice(ip[:n])
	addr = addr.Unmap()
	if addr.IsUnspecified() || port == 0 {
		return netip.AddrPort{}, fmt.Errorf("%w: %s: %v port %d cannot be a mapping", ErrBadAddress, name, addr, port)
	}
	return netip.AddrPortFrom(addr, port), nil
}
