package stun

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"

	pion "github.com/pion/stun/v3"
)

// FuzzParseResponse feeds arbitrary messages and transaction ids to
// ParseResponse: it must not panic, and an address (or an error response)
// may only come from a well-framed response carrying the given id.
func FuzzParseResponse(f *testing.F) {
	for _, s := range parseSeeds() {
		f.Add(s, testTID[:])
	}
	f.Fuzz(func(t *testing.T, raw, tidBytes []byte) {
		var tid [12]byte
		copy(tid[:], tidBytes)
		addr, err := ParseResponse(raw, tid)

		var re *ResponseError
		if err != nil && !errors.As(err, &re) {
			if addr.IsValid() {
				t.Fatalf("address %v returned with error %v", addr, err)
			}
			if !strings.HasPrefix(err.Error(), "stun: ") {
				t.Fatalf("error without stun: prefix: %v", err)
			}
			return
		}
		// Success or an error response: both claim to answer our request.
		switch {
		case len(raw) < headerSize:
			t.Fatalf("accepted %d-byte message", len(raw))
		case !bytes.Equal(raw[8:20], tid[:]):
			t.Fatalf("accepted transaction %x, want %x", raw[8:20], tid)
		case binary.BigEndian.Uint32(raw[4:8]) != magic:
			t.Fatal("accepted bad magic cookie")
		case int(binary.BigEndian.Uint16(raw[2:4])) != len(raw)-headerSize || len(raw) > headerSize+maxBodySize:
			t.Fatalf("accepted body length %d for %d bytes", binary.BigEndian.Uint16(raw[2:4]), len(raw))
		}
		var m pion.Message
		if derr := pion.Decode(raw, &m); derr != nil {
			t.Fatalf("accepted a message pion cannot decode: %v", derr)
		}
		if re != nil {
			if m.Type != pion.BindingError || addr.IsValid() {
				t.Fatalf("error response %v from type %v with address %v", re, m.Type, addr)
			}
			return
		}
		if m.Type != pion.BindingSuccess {
			t.Fatalf("address from message type %v", m.Type)
		}
		if !addr.IsValid() || addr.Addr().Is4In6() || addr.Addr().IsUnspecified() || addr.Port() == 0 {
			t.Fatalf("bad address %v accepted", addr)
		}
	})
}

// parseSeeds are the fuzz tests' starting points: good replies of every
// shape, error responses, strays, and broken framing.
func parseSeeds() [][]byte {
	mapped4in6 := netip.MustParseAddr("::ffff:198.51.100.9").As16()
	ok := build(pion.BindingSuccess, testTID, xorAddr(v4Addr))
	return [][]byte{
		ok,
		build(pion.BindingSuccess, testTID, xorAddr(v6Addr)),
		build(pion.BindingSuccess, testTID, mappedAddr(v4Addr)),
		build(pion.BindingSuccess, testTID, mappedAddr(v6Addr)),
		build(pion.BindingSuccess, testTID, rawAttr(pion.AttrXORMappedAddress, xorValue(2, mapped4in6[:], 5000, testTID))),
		build(pion.BindingSuccess, testTID, pion.NewSoftware("Coturn-4.6"), mappedAddr(v4Addr), xorAddr(v4Addr), pion.Fingerprint),
		build(pion.BindingError, testTID, pion.ErrorCodeAttribute{Code: 420, Reason: []byte("Unknown Attribute")}),
		build(pion.BindingError, testTID),
		build(pion.BindingError, testTID, rawAttr(pion.AttrErrorCode, []byte{0, 0, 4})),
		build(pion.BindingSuccess, testTID, rawAttr(0x8020, xorValue(1, v4Addr.Addr().AsSlice(), v4Addr.Port(), testTID))),
		build(pion.BindingSuccess, testTID, rawAttr(0x8020, xorValue(1, v4Addr.Addr().AsSlice(), 1, testTID)), xorAddr(v6Addr)),
		build(pion.BindingRequest, testTID),
		build(pion.BindingSuccess, otherTID, xorAddr(v4Addr)),
		build(pion.BindingSuccess, testTID, pion.NewSoftware("no address")),
		patch(ok, func(b []byte) []byte { binary.BigEndian.PutUint16(b[headerSize+2:], 0xFFFF); return b }),
		patch(ok, func(b []byte) []byte { return setLen(b, 0xFFFC) }),
		ok[:headerSize-1],
		nil,
	}
}
