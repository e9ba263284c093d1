package updater

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
)

func TestHMACSHA256(t *testing.T) {
	for _, n := range []int{0, 1, 55, 56, 63, 64, 65, 119, 200, 1000} {
		msg := []byte(strings.Repeat("natmap", n)[:n])
		for _, key := range [][]byte{nil, []byte("k"), []byte(strings.Repeat("x", 64)), []byte(strings.Repeat("y", 100))} {
			m := hmac.New(sha256.New, key)
			m.Write(msg)
			if got := hmacSHA256(key, msg[:n/2], msg[n/2:]); !hmac.Equal(got, m.Sum(nil)) {
				t.Fatalf("len %d key %d: MAC differs from crypto/hmac", n, len(key))
			}
		}
		if sha256Sum(msg) != sha256.Sum256(msg) {
			t.Fatalf("len %d: SHA-256 differs", n)
		}
	}
}

// signedAnswer is what a server signing with key k answers to a request
// whose MAC is reqMAC.
func signedAnswer(k *tsigKey, id uint16, reqMAC []byte, rcode int) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint16(b, id)
	binary.BigEndian.PutUint16(b[2:], 0x8000|opUpdate<<11|uint16(rcode))
	binary.BigEndian.PutUint16(b[4:], 1)
	b, _ = appendName(b, "example.test")
	b = binary.BigEndian.AppendUint16(b, typeSOA)
	b = binary.BigEndian.AppendUint16(b, classIN)
	var l [2]byte
	binary.BigEndian.PutUint16(l[:], uint16(len(reqMAC)))
	mac := hmacSHA256(k.Secret, l[:], reqMAC, b, tsigVars(k, 1000, 300, 0, nil))
	rd, _ := appendName(nil, k.Algorithm)
	rd = appendTime48(rd, 1000)
	rd = binary.BigEndian.AppendUint16(rd, 300)
	rd = binary.BigEndian.AppendUint16(rd, uint16(len(mac)))
	rd = append(rd, mac...)
	rd = binary.BigEndian.AppendUint16(rd, id)
	rd = append(rd, 0, 0, 0, 0)
	// The key name compressed as a pointer to the zone's name, as servers may.
	b = append(b, 3, 'k', 'e', 'y', 0xc0, 12)
	b = binary.BigEndian.AppendUint16(b, typeTSIG)
	b = binary.BigEndian.AppendUint16(b, classANY)
	b = binary.BigEndian.AppendUint32(b, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(len(rd)))
	b = append(b, rd...)
	binary.BigEndian.PutUint16(b[10:], 1)
	return b
}

func TestSignAndVerify(t *testing.T) {
	k := &tsigKey{Name: "key.example.test", Algorithm: tsigAlg, Secret: []byte("secret")}
	recs := []record{{Name: "nas.example.test", Type: typeA, TTL: 60, Addr: netip.MustParseAddr("192.0.2.1")}}
	msg, err := buildUpdate(7, "example.test", recs)
	if err != nil {
		t.Fatal(err)
	}
	signed, mac, err := sign(msg, k, 1000)
	if err != nil || binary.BigEndian.Uint16(signed[10:]) != 1 || len(mac) != 32 {
		t.Fatalf("sign: %v", err)
	}
	ans := signedAnswer(k, 7, mac, 0)
	a, err := parseAnswer(ans)
	if err != nil || a.ID != 7 || a.Rcode != 0 || a.TSIG == nil || a.TSIG.Name != k.Name {
		t.Fatalf("parse: %v %+v", err, a)
	}
	if err := verify(ans, a, k, mac); err != nil {
		t.Errorf("verify: %v", err)
	}
	ans[len(ans)-10] ^= 1 // in the MAC
	if a, err := parseAnswer(ans); err != nil || verify(ans, a, k, mac) == nil {
		t.Errorf("a changed MAC verifies (%v)", err)
	}
}

func TestParseAnswerRejects(t *testing.T) {
	k := &tsigKey{Name: "key.example.test", Algorithm: tsigAlg, Secret: []byte("secret")}
	good := signedAnswer(k, 1, nil, 0)
	for i := range len(good) {
		if _, err := parseAnswer(good[:i]); err == nil {
			t.Errorf("accepted %d of %d bytes", i, len(good))
		}
	}
	loop := append([]byte(nil), good[:12]...)
	loop = append(loop, 0xc0, 12, 0, 6, 0, 1)
	if _, err := parseAnswer(loop); err == nil {
		t.Error("accepted a compression loop")
	}
}

func FuzzParseAnswer(f *testing.F) {
	k := &tsigKey{Name: "key.example.test", Algorithm: tsigAlg, Secret: []byte("secret")}
	f.Add(signedAnswer(k, 1, []byte("mac"), 0))
	f.Add(signedAnswer(k, 2, nil, 9))
	msg, _ := buildUpdate(3, "example.test", []record{{Name: "a.example.test", Type: typeSRV, SRV: srvData{Port: 1, Target: "t.example.test"}}})
	msg[2] |= 0x80
	f.Add(msg)
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := parseAnswer(b)
		if err != nil {
			return
		}
		if a.TSIG != nil {
			if a.tsigStart < 12 || a.tsigStart >= len(b) {
				t.Fatalf("TSIG at %d of %d", a.tsigStart, len(b))
			}
			verify(b, a, k, []byte("mac"))
		}
	})
}
