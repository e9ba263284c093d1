package apk

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
)

// Key is a key pair that apk-tools v3 signs repository indexes and
// packages with (`apk mkndx --sign-key`, `apk adbsign --sign-key`) and
// verifies them with, the public half in /etc/apk/keys/ (any file name).
// apk-tools reads both halves with OpenSSL (PEM_read_bio_PrivateKey,
// PEM_read_bio_PUBKEY) and signs a SHA-512 digest with EVP_DigestSign,
// which rules out Ed25519 (OpenSSL signs it only without a digest); the
// key is ECDSA P-256, as OpenWrt's build makes its apk key (openssl
// ecparam -name prime256v1).
type Key struct {
	Private []byte // PEM "PRIVATE KEY" (PKCS #8): the secret, for --sign-key
	Public  []byte // PEM "PUBLIC KEY" (PKIX): for /etc/apk/keys/
	ID      string // apk-tools' key id, in hex (see KeyID)
}

// GenerateKey makes a key pair from random (crypto/rand.Reader when nil).
func GenerateKey(random io.Reader) (*Key, error) {
	if random == nil {
		random = rand.Reader
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), random)
	if err != nil {
		return nil, fmt.Errorf("apk key: generate: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("apk key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("apk key: %w", err)
	}
	id, err := KeyID(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
	if err != nil {
		return nil, err
	}
	return &Key{
		Private: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		Public:  pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}),
		ID:      id,
	}, nil
}

// KeyID is the id apk-tools gives an ECDSA public key (PEM) and writes in
// each signature it makes with it: the first 16 bytes of the SHA-512 of
// i2d_PublicKey's encoding, for an EC key the uncompressed point.
func KeyID(public []byte) (string, error) {
	b, _ := pem.Decode(public)
	if b == nil || b.Type != "PUBLIC KEY" {
		return "", errors.New("apk key: not a PEM public key")
	}
	k, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		return "", fmt.Errorf("apk key: %w", err)
	}
	ec, ok := k.(*ecdsa.PublicKey)
	if !ok {
		return "", fmt.Errorf("apk key: a %T, want ECDSA", k)
	}
	point, err := ec.ECDH()
	if err != nil {
		return "", fmt.Errorf("apk key: %w", err)
	}
	sum := sha512.Sum512(point.Bytes())
	return hex.EncodeToString(sum[:16]), nil
}
