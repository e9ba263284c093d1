package apk

import (
	"crypto/ecdsa"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"testing"
)

// The key's two halves belong together, in the PEM forms OpenSSL reads,
// and its id is apk-tools': the SHA-512 of the uncompressed point, here
// read from the end of the public key's DER (an EC point is the last
// field of a SubjectPublicKeyInfo).
func TestGenerateKey(t *testing.T) {
	k, err := GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	sb, _ := pem.Decode(k.Private)
	pb, _ := pem.Decode(k.Public)
	if sb == nil || sb.Type != "PRIVATE KEY" || pb == nil || pb.Type != "PUBLIC KEY" {
		t.Fatalf("PEM blocks: %q %q", k.Private, k.Public)
	}
	priv, err := x509.ParsePKCS8PrivateKey(sb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.ParsePKIXPublicKey(pb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !priv.(*ecdsa.PrivateKey).PublicKey.Equal(pub) {
		t.Error("the public key is not the secret key's")
	}
	point := pb.Bytes[len(pb.Bytes)-65:]
	if point[0] != 4 {
		t.Fatalf("not an uncompressed point: %x", point)
	}
	sum := sha512.Sum512(point)
	if want := hex.EncodeToString(sum[:16]); k.ID != want {
		t.Errorf("key id %s, want %s", k.ID, want)
	}
	if _, err := KeyID([]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")); err == nil {
		t.Error("KeyID of garbage: no error")
	}
	if _, err := KeyID(k.Private); err == nil {
		t.Error("KeyID of a private key: no error")
	}
}
