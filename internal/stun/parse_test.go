package stun

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"

	pion "github.com/pion/stun/v3"
)

var (
	testTID  = [12]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	otherTID = [12]byte{12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1}
	v4Addr   = netip.MustParseAddrPort("203.0.113.7:40000")
	v6Addr   = netip.MustParseAddrPort("[2001:db8::1]:443")
)

// build encodes a message with pion's builder; attrs add attributes. It
// panics on error (a bug in the test) so responder goroutines can use it.
func build(typ pion.MessageType, tid [12]byte, attrs ...pion.Setter) []byte {
	m, err := pion.Build(append([]pion.Setter{typ, pion.NewTransactionIDSetter(tid)}, attrs...)...)
	if err != nil {
		panic("building test message: " + err.Error())
	}
	return m.Raw
}

func xorAddr(a netip.AddrPort) pion.Setter {
	return &pion.XORMappedAddress{IP: net.IP(a.Addr().AsSlice()), Port: int(a.Port())}
}

func mappedAddr(a netip.AddrPort) pion.Setter {
	return &pion.MappedAddress{IP: net.IP(a.Addr().AsSlice()), Port: int(a.Port())}
}

func rawAttr(typ pion.AttrType, value []byte) pion.Setter {
	return pion.RawAttribute{Type: typ, Value: value}
}

// xorValue encodes an XOR-MAPPED-ADDRESS value by hand, for families and
// addresses pion's encoder normalizes (it writes IPv4-mapped IPv6 as IPv4).
func xorValue(family uint16, ip []byte, port uint16, tid [12]byte) []byte {
	v := make([]byte, 4+len(ip))
	binary.BigEndian.PutUint16(v[0:2], family)
	binary.BigEndian.PutUint16(v[2:4], port^(magic>>16))
	var key [16]byte
	binary.BigEndian.PutUint32(key[0:4], magic)
	copy(key[4:], tid[:])
	for i := range ip {
		v[4+i] = ip[i] ^ key[i%16]
	}
	return v
}

// patch returns a copy of raw with f applied.
func patch(raw []byte, f func(b []byte) []byte) []byte {
	return f(append([]byte(nil), raw...))
}

func setLen(b []byte, n int) []byte {
	binary.BigEndian.PutUint16(b[2:4], uint16(n))
	return b
}

func TestParseResponse(t *testing.T) {
	ok := build(pion.BindingSuccess, testTID, xorAddr(v4Addr))
	mapped4in6 := netip.MustParseAddr("::ffff:198.51.100.9").As16()

	tests := []struct {
		name string
		raw  []byte
		want netip.AddrPort
		err  error // sentinel; nil means success unless code is set
		code int   // expected *ResponseError code
	}{
		{name: "xor ipv4", raw: ok, want: v4Addr},
		{name: "xor ipv6", raw: build(pion.BindingSuccess, testTID, xorAddr(v6Addr)), want: v6Addr},
		{name: "mapped ipv4 only", raw: build(pion.BindingSuccess, testTID, mappedAddr(v4Addr)), want: v4Addr},
		{name: "mapped ipv6 only", raw: build(pion.BindingSuccess, testTID, mappedAddr(v6Addr)), want: v6Addr},
		{
			name: "xor preferred over mapped",
			raw:  build(pion.BindingSuccess, testTID, mappedAddr(v6Addr), xorAddr(v4Addr)),
			want: v4Addr,
		},
		{
			name: "ipv4-mapped ipv6 is unmapped",
			raw:  build(pion.BindingSuccess, testTID, rawAttr(pion.AttrXORMappedAddress, xorValue(2, mapped4in6[:], 5000, testTID))),
			want: netip.MustParseAddrPort("198.51.100.9:5000"),
		},
		{
			name: "with software, other attrs and fingerprint",
			raw: build(pion.BindingSuccess, testTID,
				pion.NewSoftware("Coturn-4.6"), xorAddr(v4Addr),
				&pion.ResponseOrigin{IP: net.IPv4(127, 0, 0, 1), Port: 3478},
				rawAttr(0x0005, []byte{0, 1, 0, 80, 10, 0, 0, 1}), // RFC 3489 CHANGED-ADDRESS
				pion.Fingerprint),
			want: v4Addr,
		},
		{
			name: "error 420",
			raw: build(pion.BindingError, testTID,
				pion.ErrorCodeAttribute{Code: pion.CodeUnknownAttribute, Reason: []byte("Unknown Attribute")}),
			code: 420,
		},
		{name: "error without ERROR-CODE", raw: build(pion.BindingError, testTID), code: -1},
		{name: "error with truncated ERROR-CODE", raw: build(pion.BindingError, testTID, rawAttr(pion.AttrErrorCode, []byte{0, 0})), code: -1},
		{name: "wrong transaction id", raw: build(pion.BindingSuccess, otherTID, xorAddr(v4Addr)), err: ErrTransactionMismatch},
		{name: "wrong magic cookie", raw: patch(ok, func(b []byte) []byte { b[4] ^= 0xff; return b }), err: ErrBadMagicCookie},
		{name: "leading bits set", raw: patch(ok, func(b []byte) []byte { b[0] |= 0x80; return b }), err: ErrNotSTUN},
		{name: "binding request", raw: build(pion.BindingRequest, testTID, xorAddr(v4Addr)), err: ErrNotResponse},
		{name: "binding indication", raw: build(pion.NewType(pion.MethodBinding, pion.ClassIndication), testTID), err: ErrNotResponse},
		{name: "allocate success", raw: build(pion.NewType(pion.MethodAllocate, pion.ClassSuccessResponse), testTID, xorAddr(v4Addr)), err: ErrWrongMethod},
		{name: "empty", raw: nil, err: ErrTruncated},
		{name: "short header", raw: ok[:10], err: ErrTruncated},
		{name: "body shorter than length", raw: ok[:len(ok)-4], err: ErrTruncated},
		{name: "trailing data", raw: append(append([]byte(nil), ok...), 0, 0, 0, 0), err: ErrLengthMismatch},
		{name: "length not multiple of 4", raw: patch(ok, func(b []byte) []byte { return setLen(b, len(b)-headerSize-1)[:len(b)-1] }), err: ErrLengthMismatch},
		{
			name: "length over cap",
			raw:  patch(ok, func(b []byte) []byte { return setLen(append(b[:headerSize], make([]byte, 4096)...), 4096) }),
			err:  ErrTooLarge,
		},
		{name: "no address", raw: build(pion.BindingSuccess, testTID, pion.NewSoftware("x")), err: ErrNoAddress},
		{
			name: "attribute length past body",
			raw:  patch(ok, func(b []byte) []byte { binary.BigEndian.PutUint16(b[headerSize+2:], 200); return b }),
			err:  ErrBadAttribute,
		},
		{
			name: "empty optional attribute is fine",
			raw:  patch(ok, func(b []byte) []byte { return setLen(append(b, 0x80, 0x99, 0, 0), len(b)+4-headerSize) }),
			want: v4Addr,
		},
		{name: "xor bad family", raw: build(pion.BindingSuccess, testTID, rawAttr(pion.AttrXORMappedAddress, xorValue(3, []byte{1, 2, 3, 4}, 1, testTID))), err: ErrBadAddress},
		{name: "xor ipv6 family with 4 bytes", raw: build(pion.BindingSuccess, testTID, rawAttr(pion.AttrXORMappedAddress, xorValue(2, []byte{1, 2, 3, 4}, 1, testTID))), err: ErrBadAddress},
		{name: "xor value too short", raw: build(pion.BindingSuccess, testTID, rawAttr(pion.AttrXORMappedAddress, []byte{0, 1})), err: ErrBadAddress},
		{name: "mapped ipv4 family with 16 bytes", raw: build(pion.BindingSuccess, testTID, rawAttr(pion.AttrMappedAddress, append([]byte{0, 1, 0, 80}, make([]byte, 16)...))), err: ErrBadAddress},
		{
			name: "malformed xor does not fall back to mapped",
			raw:  build(pion.BindingSuccess, testTID, mappedAddr(v4Addr), rawAttr(pion.AttrXORMappedAddress, xorValue(2, []byte{1, 2, 3, 4}, 1, testTID))),
			err:  ErrBadAddress,
		},
		{name: "unspecified address", raw: build(pion.BindingSuccess, testTID, xorAddr(netip.MustParseAddrPort("0.0.0.0:1234"))), err: ErrBadAddress},
		{name: "port zero", raw: build(pion.BindingSuccess, testTID, mappedAddr(netip.MustParseAddrPort("192.0.2.1:0"))), err: ErrBadAddress},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseResponse(tc.raw, testTID)
			switch {
			case tc.code != 0:
				var re *ResponseError
				if !errors.As(err, &re) {
					t.Fatalf("err = %v, want *ResponseError", err)
				}
				if want := max(tc.code, 0); re.Code != want {
					t.Fatalf("code = %d, want %d (%v)", re.Code, want, err)
				}
				if !strings.HasPrefix(err.Error(), "stun: ") || (tc.code == 420 && !strings.Contains(err.Error(), "420")) {
					t.Errorf("error text %q lacks code or prefix", err)
				}
				if tc.code == 420 && re.Reason != "Unknown Attribute" {
					t.Errorf("reason = %q", re.Reason)
				}
			case tc.err != nil:
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				if !strings.HasPrefix(err.Error(), "stun: ") {
					t.Errorf("error %q lacks the stun: prefix", err)
				}
			default:
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
			}
			if got != tc.want {
				t.Errorf("addr = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestResponseErrorReasonIsCapped(t *testing.T) {
	raw := build(pion.BindingError, testTID, rawAttr(pion.AttrErrorCode, append([]byte{0, 0, 4, 20}, strings.Repeat("x", 1500)...)))
	_, err := ParseResponse(raw, testTID)
	var re *ResponseError
	if !errors.As(err, &re) || re.Code != 420 || len(re.Reason) != maxReasonSize {
		t.Fatalf("err = %v (reason %d bytes), want code 420 with %d-byte reason", err, len(re.Reason), maxReasonSize)
	}
}

// TestNewRequest checks our requests with pion's decoder: a bare Binding
// request, or one with exactly one CHANGE-REQUEST carrying the flags.
func TestNewRequest(t *testing.T) {
	for _, change := range []byte{0, changePort, changeIP | changePort} {
		raw, tid, err := newRequest(change)
		if err != nil {
			t.Fatal(err)
		}
		var m pion.Message
		if err := pion.Decode(raw, &m); err != nil {
			t.Fatalf("change %#x: pion cannot decode %x: %v", change, raw, err)
		}
		if m.Type != pion.BindingRequest || m.TransactionID != tid {
			t.Fatalf("request %x: type %v tid %x, want Binding request with tid %x", raw, m.Type, m.TransactionID, tid)
		}
		v, err := m.Get(pion.AttrChangeRequest)
		switch {
		case change == 0 && (len(raw) != headerSize || len(m.Attributes) != 0):
			t.Fatalf("bare request %x has attributes", raw)
		case change != 0 && (err != nil || len(m.Attributes) != 1 || !bytes.Equal(v, []byte{0, 0, 0, change})):
			t.Fatalf("request %x: CHANGE-REQUEST %x (%v), want flags %#x alone", raw, v, err, change)
		}
		if _, tid2, _ := newRequest(change); tid2 == tid {
			t.Fatal("two requests share a transaction id")
		}
	}
}

func TestMessageType(t *testing.T) {
	for _, typ := range []pion.MessageType{pion.BindingRequest, pion.BindingSuccess, pion.BindingError,
		pion.NewType(pion.MethodRefresh, pion.ClassIndication), pion.NewType(pion.Method(0xFFF), pion.ClassErrorResponse)} {
		v := typ.Value()
		if c, m := classOf(v), methodOf(v); uint16(c) != uint16(typ.Class) || m != uint16(typ.Method) {
			t.Errorf("type %#04x: class %v method %#x, pion says %v %#x", v, c, m, typ.Class, uint16(typ.Method))
		}
	}
	for v := range uint16(0x4000) {
		var typ pion.MessageType
		typ.ReadValue(v)
		if uint16(classOf(v)) != uint16(typ.Class) || methodOf(v) != uint16(typ.Method) {
			t.Fatalf("type %#04x: class %v method %#x, pion says %v %#x", v, classOf(v), methodOf(v), typ.Class, uint16(typ.Method))
		}
	}
}

func BenchmarkParseResponse(b *testing.B) {
	raw := build(pion.BindingSuccess, testTID, pion.NewSoftware("bench"), xorAddr(v6Addr), mappedAddr(v6Addr), pion.Fingerprint)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseResponse(raw, testTID); err != nil {
			b.Fatal(err)
		}
	}
}
