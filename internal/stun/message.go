package stun

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// Message types and attributes natmap uses (RFC 8489, RFC 5780).
const (
	methodBinding      = 0x001
	typeBindingRequest = 0x0001

	attrMappedAddress    = 0x0001
	attrChangeRequest    = 0x0003
	attrErrorCode        = 0x0009
	attrXORMappedAddress = 0x0020
	// attrXORMappedAddressOld is the pre-RFC 5389 code point some servers
	// (draft-era and MS-TURN) still send; it is read as XOR-MAPPED-ADDRESS.
	attrXORMappedAddressOld = 0x8020
	attrOtherAddress        = 0x802C
)

// class is a message's class: the two bits the message type splits among
// the method's bits (RFC 8489 section 5).
type class uint16

const (
	classRequest class = iota
	classIndication
	classSuccessResponse
	classErrorResponse
)

func (c class) String() string {
	switch c {
	case classRequest:
		return "request"
	case classIndication:
		return "indication"
	case classSuccessResponse:
		return "success response"
	}
	return "error response"
}

// classOf and methodOf split a message type: C1 is bit 8, C0 bit 4, and the
// method's 12 bits fill the rest.
func classOf(typ uint16) class { return class((typ>>7)&0x2 | (typ>>4)&0x1) }

func methodOf(typ uint16) uint16 { return typ&0x000F | (typ>>1)&0x0070 | (typ>>2)&0x0F80 }

// newRequest encodes a Binding request with a fresh random transaction id.
// A change of 0 gives the bare request the C natmap sends, which every
// server accepts; other values add an RFC 5780 CHANGE-REQUEST with those
// flags.
func newRequest(change byte) ([]byte, [12]byte, error) {
	size := headerSize
	if change != 0 {
		size += 8
	}
	b := make([]byte, size)
	binary.BigEndian.PutUint16(b[0:2], typeBindingRequest)
	binary.BigEndian.PutUint16(b[2:4], uint16(size-headerSize))
	binary.BigEndian.PutUint32(b[4:8], magic)
	if err := randomID(b[8:headerSize]); err != nil {
		return nil, [12]byte{}, err
	}
	if change != 0 {
		binary.BigEndian.PutUint16(b[20:22], attrChangeRequest)
		binary.BigEndian.PutUint16(b[22:24], 4)
		b[27] = change
	}
	return b, [12]byte(b[8:headerSize]), nil
}

// randomID fills id from the kernel's CSPRNG: RFC 8489 asks for
// unguessable ids, since a guessable one lets an off-path host forge our
// mapped address. getrandom(2) directly, because crypto/rand would link
// Go's FIPS module and math/big, 0.2 MB of a router binary.
func randomID(id []byte) error {
	for len(id) > 0 {
		n, err := unix.Getrandom(id, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("stun: transaction id: getrandom: %w", err)
		}
		id = id[n:]
	}
	return nil
}

// checkAttributes checks that body, whose length is a multiple of 4, is a
// list of attributes each padded to 4 bytes and ending exactly at its end.
func checkAttributes(body []byte) error {
	for off := 0; off < len(body); {
		typ, n := binary.BigEndian.Uint16(body[off:]), int(binary.BigEndian.Uint16(body[off+2:]))
		if 4+(n+3)&^3 > len(body)-off {
			return fmt.Errorf("%w: attribute %#04x of %d bytes at offset %d runs past the %d-byte body", ErrBadAttribute, typ, n, off, len(body))
		}
		off += 4 + (n+3)&^3
	}
	return nil
}

// attribute returns the value of the first attribute of type typ in body,
// which checkAttributes has accepted.
func attribute(body []byte, typ uint16) ([]byte, bool) {
	for off := 0; off < len(body); {
		t, n := binary.BigEndian.Uint16(body[off:]), int(binary.BigEndian.Uint16(body[off+2:]))
		if t == attrXORMappedAddressOld {
			t = attrXORMappedAddress
		}
		if t == typ {
			return body[off+4 : off+4+n], true
		}
		off += 4 + (n+3)&^3
	}
	return nil, false
}
