package updater

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// A DNS UPDATE message (RFC 2136) signed with TSIG (RFC 8945), as nsupdate
// sends one: the zone, no prerequisites, and for each record a delete of
// its RRset and an add; and the parser of the answer.

const (
	opUpdate  = 5
	classIN   = 1
	classANY  = 255
	classNONE = 254
	typeSOA   = 6
	typeTSIG  = 250
	tsigFudge = 300
)

// tsigAlg is the TSIG algorithm natmap signs with: BIND's default
// (tsig-keygen) and the one RFC 8945 requires.
const tsigAlg = "hmac-sha256"

// tsigKey is a TSIG key; Secret is never shown.
type tsigKey struct {
	Name      string // lowercase FQDN without the final dot
	Algorithm string // one of tsigAlgs
	Secret    []byte
}

// appendName appends a domain name in wire form, uncompressed.
func appendName(b []byte, name string) ([]byte, error) {
	name = strings.TrimSuffix(name, ".")
	n := 1
	if name != "" {
		for _, l := range strings.Split(name, ".") {
			if l == "" || len(l) > 63 {
				return nil, fmt.Errorf("bad domain name %q: empty or long label", name)
			}
			b = append(b, byte(len(l)))
			b = append(b, l...)
			n += 1 + len(l)
		}
	}
	if n > 255 {
		return nil, fmt.Errorf("domain name %q longer than 255 bytes", name)
	}
	return append(b, 0), nil
}

func appendRR(b []byte, name string, typ, class uint16, ttl uint32, rdata []byte) ([]byte, error) {
	b, err := appendName(b, name)
	if err != nil {
		return nil, err
	}
	b = binary.BigEndian.AppendUint16(b, typ)
	b = binary.BigEndian.AppendUint16(b, class)
	b = binary.BigEndian.AppendUint32(b, ttl)
	b = binary.BigEndian.AppendUint16(b, uint16(len(rdata)))
	return append(b, rdata...), nil
}

func rdata(r record) ([]byte, error) {
	switch r.Type {
	case typeA:
		a := r.Addr.As4()
		return a[:], nil
	case typeAAAA:
		a := r.Addr.As16()
		return a[:], nil
	case typeTXT:
		if len(r.Text) > 255 {
			return nil, errors.New("TXT string longer than 255 bytes")
		}
		return append([]byte{byte(len(r.Text))}, r.Text...), nil
	case typeSRV:
		b := binary.BigEndian.AppendUint16(nil, r.SRV.Priority)
		b = binary.BigEndian.AppendUint16(b, r.SRV.Weight)
		b = binary.BigEndian.AppendUint16(b, r.SRV.Port)
		return appendName(b, r.SRV.Target)
	}
	return nil, fmt.Errorf("record type %d", r.Type)
}

// buildUpdate builds the UPDATE message for zone with id. For each record,
// its RRset is deleted, then the record added.
func buildUpdate(id uint16, zone string, recs []record) ([]byte, error) {
	b := make([]byte, 12)
	binary.BigEndian.PutUint16(b[0:], id)
	binary.BigEndian.PutUint16(b[2:], opUpdate<<11)
	binary.BigEndian.PutUint16(b[4:], 1)                   // ZOCOUNT
	binary.BigEndian.PutUint16(b[8:], uint16(2*len(recs))) // UPCOUNT
	b, err := appendName(b, zone)
	if err != nil {
		return nil, err
	}
	b = binary.BigEndian.AppendUint16(b, typeSOA)
	b = binary.BigEndian.AppendUint16(b, classIN)
	for _, r := range recs {
		if b, err = appendRR(b, r.Name, r.Type, classANY, 0, nil); err != nil {
			return nil, err
		}
		rd, err := rdata(r)
		if err != nil {
			return nil, err
		}
		if b, err = appendRR(b, r.Name, r.Type, classIN, r.TTL, rd); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// tsigVars are the TSIG variables hashed after the message (RFC 8945 4.3.3).
func tsigVars(k *tsigKey, timeSigned uint64, fudge, tsigErr uint16, other []byte) []byte {
	b, _ := appendName(nil, strings.ToLower(k.Name))
	b = binary.BigEndian.AppendUint16(b, classANY)
	b = binary.BigEndian.AppendUint32(b, 0)
	b, _ = appendName(b, k.Algorithm)
	b = appendTime48(b, timeSigned)
	b = binary.BigEndian.AppendUint16(b, fudge)
	b = binary.BigEndian.AppendUint16(b, tsigErr)
	b = binary.BigEndian.AppendUint16(b, uint16(len(other)))
	return append(b, other...)
}

func appendTime48(b []byte, t uint64) []byte {
	return append(b, byte(t>>40), byte(t>>32), byte(t>>24), byte(t>>16), byte(t>>8), byte(t))
}

// sign appends a TSIG record to msg and returns the signed message and its
// MAC (to check the answer's).
func sign(msg []byte, k *tsigKey, now uint64) ([]byte, []byte, error) {
	if k.Algorithm != tsigAlg {
		return nil, nil, fmt.Errorf("TSIG algorithm %q", k.Algorithm)
	}
	mac := hmacSHA256(k.Secret, msg, tsigVars(k, now, tsigFudge, 0, nil))

	rd, _ := appendName(nil, k.Algorithm)
	rd = appendTime48(rd, now)
	rd = binary.BigEndian.AppendUint16(rd, tsigFudge)
	rd = binary.BigEndian.AppendUint16(rd, uint16(len(mac)))
	rd = append(rd, mac...)
	rd = append(rd, msg[0], msg[1]) // original ID
	rd = binary.BigEndian.AppendUint16(rd, 0)
	rd = binary.BigEndian.AppendUint16(rd, 0)
	out := append([]byte(nil), msg...)
	out, err := appendRR(out, k.Name, typeTSIG, classANY, 0, rd)
	if err != nil {
		return nil, nil, err
	}
	binary.BigEndian.PutUint16(out[10:], binary.BigEndian.Uint16(out[10:])+1) // ARCOUNT
	return out, mac, nil
}

// answer is what natmap needs of an UPDATE's answer.
type answer struct {
	ID        uint16
	Rcode     int
	Truncated bool
	TSIG      *tsigRR // the last additional record, when it is a TSIG
	tsigStart int     // offset of the TSIG record in the message
}

type tsigRR struct {
	Name       string
	Algorithm  string
	TimeSigned uint64
	Fudge      uint16
	MAC        []byte
	OrigID     uint16
	Error      uint16
	Other      []byte
}

var errShort = errors.New("DNS answer: truncated message")

// parseAnswer reads a DNS message's header and, skipping every record, its
// final TSIG record if any.
func parseAnswer(b []byte) (*answer, error) {
	if len(b) < 12 {
		return nil, errShort
	}
	flags := binary.BigEndian.Uint16(b[2:])
	if flags&0x8000 == 0 {
		return nil, errors.New("DNS answer: not a response")
	}
	if op := flags >> 11 & 0xf; op != opUpdate {
		return nil, fmt.Errorf("DNS answer: opcode %d, want UPDATE", op)
	}
	a := &answer{ID: binary.BigEndian.Uint16(b), Rcode: int(flags & 0xf), Truncated: flags&0x200 != 0}
	counts := [4]int{}
	for i := range counts {
		counts[i] = int(binary.BigEndian.Uint16(b[4+2*i:]))
	}
	off := 12
	var err error
	for range counts[0] {
		if _, off, err = readName(b, off); err != nil {
			return nil, err
		}
		if off += 4; off > len(b) {
			return nil, errShort
		}
	}
	total := counts[1] + counts[2] + counts[3]
	for i := range total {
		start := off
		var name string
		if name, off, err = readName(b, off); err != nil {
			return nil, err
		}
		if off+10 > len(b) {
			return nil, errShort
		}
		typ := binary.BigEndian.Uint16(b[off:])
		rdlen := int(binary.BigEndian.Uint16(b[off+8:]))
		off += 10
		if off+rdlen > len(b) {
			return nil, errShort
		}
		if typ == typeTSIG {
			if i != total-1 {
				return nil, errors.New("DNS answer: TSIG record not last")
			}
			t, err := parseTSIG(b, off, off+rdlen)
			if err != nil {
				return nil, err
			}
			t.Name = name
			a.TSIG, a.tsigStart = t, start
		}
		off += rdlen
	}
	if off != len(b) {
		return nil, errors.New("DNS answer: bytes after the last record")
	}
	return a, nil
}

func parseTSIG(b []byte, off, end int) (*tsigRR, error) {
	alg, off, err := readName(b[:end], off)
	if err != nil {
		return nil, err
	}
	t := &tsigRR{Algorithm: alg}
	if off+10 > end {
		return nil, errShort
	}
	for _, c := range b[off : off+6] {
		t.TimeSigned = t.TimeSigned<<8 | uint64(c)
	}
	t.Fudge = binary.BigEndian.Uint16(b[off+6:])
	macLen := int(binary.BigEndian.Uint16(b[off+8:]))
	off += 10
	if off+macLen+6 > end {
		return nil, errShort
	}
	t.MAC = b[off : off+macLen]
	off += macLen
	t.OrigID = binary.BigEndian.Uint16(b[off:])
	t.Error = binary.BigEndian.Uint16(b[off+2:])
	otherLen := int(binary.BigEndian.Uint16(b[off+4:]))
	off += 6
	if off+otherLen != end {
		return nil, errors.New("DNS answer: bad TSIG record length")
	}
	t.Other = b[off:end]
	return t, nil
}

// readName reads a possibly compressed name at off; it returns the name
// (lowercase, no final dot) and the offset after it.
func readName(b []byte, off int) (string, int, error) {
	var labels []string
	end := -1 // where the name ends in place, after the first pointer
	for jumps := 0; ; {
		if off >= len(b) {
			return "", 0, errShort
		}
		c := int(b[off])
		switch {
		case c == 0:
			if end < 0 {
				end = off + 1
			}
			return strings.ToLower(strings.Join(labels, ".")), end, nil
		case c&0xc0 == 0xc0:
			if off+1 >= len(b) {
				return "", 0, errShort
			}
			if jumps++; jumps > 64 {
				return "", 0, errors.New("DNS answer: compression loop")
			}
			if end < 0 {
				end = off + 2
			}
			off = (c&0x3f)<<8 | int(b[off+1])
		case c&0xc0 != 0:
			return "", 0, errors.New("DNS answer: bad label type")
		default:
			if off+1+c > len(b) {
				return "", 0, errShort
			}
			labels = append(labels, string(b[off+1:off+1+c]))
			if len(labels) > 128 {
				return "", 0, errors.New("DNS answer: name too long")
			}
			off += 1 + c
		}
	}
}

// verify checks the answer's TSIG against the request's MAC (RFC 8945
// 5.3): the MAC covers the request MAC, the answer without its TSIG record
// (ARCOUNT one less, the original ID), and the TSIG variables.
func verify(msg []byte, a *answer, k *tsigKey, reqMAC []byte) error {
	t := a.TSIG
	if t == nil {
		return errors.New("answer not signed")
	}
	if t.Name != strings.ToLower(k.Name) || t.Algorithm != k.Algorithm {
		return fmt.Errorf("answer signed with key %s (%s)", t.Name, t.Algorithm)
	}
	var l [2]byte
	binary.BigEndian.PutUint16(l[:], uint16(len(reqMAC)))
	head := append([]byte(nil), msg[:a.tsigStart]...)
	binary.BigEndian.PutUint16(head, t.OrigID)
	binary.BigEndian.PutUint16(head[10:], binary.BigEndian.Uint16(head[10:])-1)
	mac := hmacSHA256(k.Secret, l[:], reqMAC, head, tsigVars(k, t.TimeSigned, t.Fudge, t.Error, t.Other))
	if !macEqual(mac, t.MAC) {
		return errors.New("answer's TSIG signature does not match")
	}
	return nil
}

var rcodeNames = []string{"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE"}

func rcodeName(r int) string {
	if r < len(rcodeNames) {
		return rcodeNames[r]
	}
	return fmt.Sprintf("RCODE%d", r)
}

func tsigErrorName(e uint16) string {
	switch e {
	case 16:
		return "BADSIG (wrong key secret)"
	case 17:
		return "BADKEY (the server does not know this key name and algorithm)"
	case 18:
		return "BADTIME (this clock and the server's differ by more than 5 minutes)"
	case 22:
		return "BADTRUNC"
	}
	return fmt.Sprintf("TSIG error %d", e)
}
