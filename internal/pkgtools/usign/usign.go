// Package usign reads and writes the Ed25519 keys and signatures of
// OpenWrt's usign (those of OpenBSD's signify), with which opkg checks a
// feed's Packages against Packages.sig and the keys in /etc/opkg/keys/.
//
// Each file is two lines: "untrusted comment: ..." and the base64 of
//
//	secret key: "Ed" "BK" kdfrounds(4, big-endian) salt(16) checksum(8) fingerprint(8) key(64)
//	public key: "Ed" fingerprint(8) key(32)
//	signature:  "Ed" fingerprint(8) signature(64)
//
// The fingerprint is random, shared by a key pair and its signatures, and
// names the public key's file in /etc/opkg/keys/ (16 hex digits). The
// checksum is the first 8 bytes of the SHA-512 of the secret key. Only
// unencrypted secret keys (kdfrounds 0, as `usign -G` writes) are read.
package usign

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
)

const commentPrefix = "untrusted comment: "

// Key is a secret key with its fingerprint.
type Key struct {
	Fingerprint [8]byte
	Private     ed25519.PrivateKey
}

// Generate makes a key pair from random (crypto/rand.Reader when nil).
func Generate(random io.Reader) (*Key, error) {
	if random == nil {
		random = rand.Reader
	}
	k := &Key{}
	if _, err := io.ReadFull(random, k.Fingerprint[:]); err != nil {
		return nil, fmt.Errorf("usign: fingerprint: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(random)
	if err != nil {
		return nil, fmt.Errorf("usign: generate: %w", err)
	}
	k.Private = priv
	return k, nil
}

// FingerprintHex is the fingerprint as usign prints it (and names the
// public key's file in /etc/opkg/keys/).
func (k *Key) FingerprintHex() string { return hex.EncodeToString(k.Fingerprint[:]) }

func file(comment string, blob []byte) []byte {
	return []byte(commentPrefix + comment + "\n" + base64.StdEncoding.EncodeToString(blob) + "\n")
}

// MarshalSecret is the secret key file.
func (k *Key) MarshalSecret() []byte {
	var b bytes.Buffer
	b.WriteString("EdBK")
	binary.Write(&b, binary.BigEndian, uint32(0)) // kdfrounds: not encrypted
	b.Write(make([]byte, 16))                     // salt, unused without a KDF
	sum := sha512.Sum512(k.Private)
	b.Write(sum[:8])
	b.Write(k.Fingerprint[:])
	b.Write(k.Private)
	return file("private key "+k.FingerprintHex(), b.Bytes())
}

// MarshalPublic is the public key file.
func (k *Key) MarshalPublic() []byte {
	blob := append([]byte("Ed"), k.Fingerprint[:]...)
	blob = append(blob, k.Private.Public().(ed25519.PublicKey)...)
	return file("public key "+k.FingerprintHex(), blob)
}

// Sign is the signature file of msg.
func (k *Key) Sign(msg []byte) []byte {
	blob := append([]byte("Ed"), k.Fingerprint[:]...)
	blob = append(blob, ed25519.Sign(k.Private, msg)...)
	return file("signed by key "+k.FingerprintHex(), blob)
}

// decode returns the base64 payload of a usign file, which must be n bytes
// and start with "Ed".
func decode(data []byte, n int, what string) ([]byte, error) {
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], commentPrefix) {
		return nil, fmt.Errorf("usign: %s: want an %q line and a base64 line", what, commentPrefix)
	}
	blob, err := base64.StdEncoding.DecodeString(strings.TrimSpace(lines[1]))
	if err != nil {
		return nil, fmt.Errorf("usign: %s: %w", what, err)
	}
	if len(blob) != n || string(blob[:2]) != "Ed" {
		return nil, fmt.Errorf("usign: %s: %d bytes, want %d starting with Ed", what, len(blob), n)
	}
	return blob, nil
}

// ParseSecret reads a secret key file.
func ParseSecret(data []byte) (*Key, error) {
	blob, err := decode(data, 104, "secret key")
	if err != nil {
		return nil, err
	}
	if string(blob[2:4]) != "BK" {
		return nil, errors.New("usign: secret key: unknown KDF")
	}
	if binary.BigEndian.Uint32(blob[4:8]) != 0 {
		return nil, errors.New("usign: secret key: encrypted with a password, which is not supported")
	}
	k := &Key{Private: ed25519.PrivateKey(bytes.Clone(blob[40:104]))}
	copy(k.Fingerprint[:], blob[32:40])
	if sum := sha512.Sum512(k.Private); !bytes.Equal(sum[:8], blob[24:32]) {
		return nil, errors.New("usign: secret key: checksum mismatch")
	}
	return k, nil
}

// Verify checks a signature file of msg against a public key file.
func Verify(public, signature, msg []byte) error {
	pub, err := decode(public, 42, "public key")
	if err != nil {
		return err
	}
	sig, err := decode(signature, 74, "signature")
	if err != nil {
		return err
	}
	if !bytes.Equal(pub[2:10], sig[2:10]) {
		return fmt.Errorf("usign: signed by key %x, not by %x", sig[2:10], pub[2:10])
	}
	if !ed25519.Verify(ed25519.PublicKey(pub[10:]), msg, sig[10:]) {
		return errors.New("usign: bad signature")
	}
	return nil
}
