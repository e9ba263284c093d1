package usign

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	k, err := Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	sec := k.MarshalSecret()
	k2, err := ParseSecret(sec)
	if err != nil {
		t.Fatal(err)
	}
	if k2.Fingerprint != k.Fingerprint || !bytes.Equal(k2.Private, k.Private) {
		t.Fatal("secret key changed on the way")
	}
	msg := []byte("Package: natmap\n")
	sig := k2.Sign(msg)
	if !strings.HasPrefix(string(sig), "untrusted comment: signed by key "+k.FingerprintHex()+"\n") {
		t.Errorf("signature file: %q", sig)
	}
	if err := Verify(k.MarshalPublic(), sig, msg); err != nil {
		t.Errorf("verify: %v", err)
	}
	if err := Verify(k.MarshalPublic(), sig, []byte("Package: other\n")); err == nil {
		t.Error("a changed message verifies")
	}
	other, _ := Generate(nil)
	if err := Verify(other.MarshalPublic(), sig, msg); err == nil || !strings.Contains(err.Error(), "signed by key") {
		t.Errorf("another key: %v", err)
	}

	// The layout, byte by byte: "Ed", fingerprint, key.
	pub, _ := base64.StdEncoding.DecodeString(strings.Split(string(k.MarshalPublic()), "\n")[1])
	if len(pub) != 42 || string(pub[:2]) != "Ed" || !bytes.Equal(pub[2:10], k.Fingerprint[:]) ||
		!bytes.Equal(pub[10:], k.Private.Public().(ed25519.PublicKey)) {
		t.Errorf("public key blob %x", pub)
	}
}

func TestParseSecretRejects(t *testing.T) {
	k, _ := Generate(nil)
	good := k.MarshalSecret()
	blob, _ := base64.StdEncoding.DecodeString(strings.Split(string(good), "\n")[1])
	enc := func(b []byte) []byte {
		return []byte("untrusted comment: x\n" + base64.StdEncoding.EncodeToString(b) + "\n")
	}
	bad := map[string][]byte{
		"empty":     nil,
		"no base64": []byte("untrusted comment: x\n!!!\n"),
		"short":     enc(blob[:50]),
		"encrypted": enc(append(append(bytes.Clone(blob[:4]), 0, 0, 0, 42), blob[8:]...)),
		"checksum":  enc(append(bytes.Clone(blob[:103]), blob[103]^1)),
	}
	for name, b := range bad {
		if _, err := ParseSecret(b); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

func FuzzParseSecret(f *testing.F) {
	k, _ := Generate(nil)
	f.Add(k.MarshalSecret())
	f.Add([]byte("untrusted comment: x\nRWQ=\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if k, err := ParseSecret(b); err == nil {
			if _, err := ParseSecret(k.MarshalSecret()); err != nil {
				t.Fatalf("re-parse: %v", err)
			}
		}
	})
}
