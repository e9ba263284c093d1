package stun

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"testing"

	pion "github.com/pion/stun/v3"
)

// pionParseResponse is ParseResponse written on top of pion/stun/v3: pion
// decodes the message and its attributes, and our rules (framing, size
// caps, exact address lengths, what counts as a mapping) are applied to
// what it decoded. Our own codec must agree with it on every input; the
// fuzz test below holds it to that.
func pionParseResponse(raw []byte, tid [12]byte) (netip.AddrPort, error) {
	if len(raw) < headerSize {
		return netip.AddrPort{}, ErrTruncated
	}
	bodyLen, err := checkHeader(raw[:headerSize], tid)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if got := len(raw) - headerSize; got < bodyLen {
		return netip.AddrPort{}, ErrTruncated
	} else if got > bodyLen {
		return netip.AddrPort{}, ErrLengthMismatch
	}
	m := pion.Message{Raw: raw}
	if err := m.Decode(); err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: %w", ErrBadAttribute, err)
	}
	if m.Type.Class == pion.ClassErrorResponse {
		var ec pion.ErrorCodeAttribute
		if err := ec.GetFrom(&m); err != nil {
			return netip.AddrPort{}, &ResponseError{}
		}
		return netip.AddrPort{}, &ResponseError{Code: int(ec.Code), Reason: string(ec.Reason[:min(len(ec.Reason), maxReasonSize)])}
	}
	get := func(typ pion.AttrType, a interface{ GetFrom(*pion.Message) error }, ip *[]byte, port *int) (netip.AddrPort, bool, error) {
		v, err := m.Get(typ)
		if err != nil {
			return netip.AddrPort{}, false, nil
		}
		if len(v) < 4 {
			return netip.AddrPort{}, true, ErrBadAddress
		}
		switch f := binary.BigEndian.Uint16(v); {
		case f == 1 && len(v) == 8, f == 2 && len(v) == 20:
		default:
			return netip.AddrPort{}, true, ErrBadAddress
		}
		if err := a.GetFrom(&m); err != nil {
			return netip.AddrPort{}, true, fmt.Errorf("%w: %w", ErrBadAddress, err)
		}
		addr, _ := netip.AddrFromSlice(*ip)
		addr = addr.Unmap()
		if addr.IsUnspecified() || *port == 0 {
			return netip.AddrPort{}, true, ErrBadAddress
		}
		return netip.AddrPortFrom(addr, uint16(*port)), true, nil
	}
	var x pion.XORMappedAddress
	if a, ok, err := get(pion.AttrXORMappedAddress, &x, (*[]byte)(&x.IP), &x.Port); ok {
		return a, err
	}
	var p pion.MappedAddress
	if a, ok, err := get(pion.AttrMappedAddress, &p, (*[]byte)(&p.IP), &p.Port); ok {
		return a, err
	}
	return netip.AddrPort{}, ErrNoAddress
}

// sentinel is the Err* an error wraps, or the *ResponseError it is.
func sentinel(err error) any {
	var re *ResponseError
	if errors.As(err, &re) {
		return *re
	}
	for _, s := range []error{ErrTruncated, ErrTooLarge, ErrLengthMismatch, ErrNotSTUN, ErrBadMagicCookie,
		ErrTransactionMismatch, ErrNotResponse, ErrWrongMethod, ErrBadAttribute, ErrBadAddress, ErrNoAddress} {
		if errors.Is(err, s) {
			return s
		}
	}
	return err
}

// FuzzParseResponseAgreesWithPion holds our codec to pion's reading of
// every message: the same address, or the same kind of rejection.
func FuzzParseResponseAgreesWithPion(f *testing.F) {
	for _, s := range parseSeeds() {
		f.Add(s, testTID[:])
	}
	f.Fuzz(func(t *testing.T, raw, tidBytes []byte) {
		var tid [12]byte
		copy(tid[:], tidBytes)
		got, gotErr := ParseResponse(raw, tid)
		want, wantErr := pionParseResponse(raw, tid)
		if got != want || !reflect.DeepEqual(sentinel(gotErr), sentinel(wantErr)) {
			t.Fatalf("message %x:\nours: %v, %v\npion: %v, %v", raw, got, gotErr, want, wantErr)
		}
	})
}
