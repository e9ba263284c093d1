package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/natmap-go/natmap/internal/pkgtools/apk"
	"github.com/natmap-go/natmap/internal/pkgtools/usign"
)

// targz packs files (name -> content) as ipkg-build does.
func targz(t *testing.T, files ...string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	tw := tar.NewWriter(zw)
	for i := 0; i < len(files); i += 2 {
		if err := tw.WriteHeader(&tar.Header{Name: files[i], Mode: 0o644, Size: int64(len(files[i+1]))}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(files[i+1]))
	}
	tw.Close()
	zw.Close()
	return b.Bytes()
}

func ipk(t *testing.T, dir, name, control string) []byte {
	t.Helper()
	b := targz(t, "./debian-binary", "2.0\n", "./data.tar.gz", "", "./control.tar.gz", string(targz(t, "./control", control)))
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestIndexAndKeygen(t *testing.T) {
	dir := t.TempDir()
	b := ipk(t, dir, "b_1_all.ipk", "Package: b\nVersion: 1\nArchitecture: all\nDescription: B\n more\n")
	ipk(t, dir, "a_1_all.ipk", "Package: a\nVersion: 1\nArchitecture: all\n")
	sec, pub := filepath.Join(dir, "k.sec"), filepath.Join(dir, "k.pub")
	var out, errb bytes.Buffer
	if rc := run([]string{"keygen", "-s", sec, "-p", pub}, &out, &errb); rc != 0 {
		t.Fatalf("keygen: %d %s", rc, errb.String())
	}
	if rc := run([]string{"index", "-s", sec, dir}, &out, &errb); rc != 0 {
		t.Fatalf("index: %d %s", rc, errb.String())
	}
	sum := sha256.Sum256(b)
	want := "Package: a\nVersion: 1\nArchitecture: all\nFilename: a_1_all.ipk\n"
	packages, _ := os.ReadFile(filepath.Join(dir, "Packages"))
	if !strings.HasPrefix(string(packages), want) || !strings.HasSuffix(string(packages),
		"Package: b\nVersion: 1\nArchitecture: all\nFilename: b_1_all.ipk\nSize: "+strconv.Itoa(len(b))+"\nSHA256sum: "+hex.EncodeToString(sum[:])+"\nDescription: B\n more\n\n") {
		t.Errorf("Packages:\n%s", packages)
	}
	gz, _ := os.ReadFile(filepath.Join(dir, "Packages.gz"))
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	if un, _ := io.ReadAll(zr); !bytes.Equal(un, packages) {
		t.Error("Packages.gz is not Packages")
	}
	p, _ := os.ReadFile(pub)
	s, _ := os.ReadFile(filepath.Join(dir, "Packages.sig"))
	if err := usign.Verify(p, s, packages); err != nil {
		t.Errorf("Packages.sig: %v", err)
	}
	out.Reset()
	if rc := run([]string{"verify", "-p", pub, dir}, &out, &errb); rc != 0 || !strings.Contains(out.String(), "good signature") {
		t.Errorf("verify: %d %s %s", rc, out.String(), errb.String())
	}
	// A Packages changed after signing, or another key: refused.
	os.WriteFile(filepath.Join(dir, "Packages"), append(packages, "Package: evil\n"...), 0o644)
	errb.Reset()
	if rc := run([]string{"verify", "-p", pub, dir}, &out, &errb); rc != 1 || !strings.Contains(errb.String(), "bad signature") {
		t.Errorf("verify of a changed Packages: %d %s", rc, errb.String())
	}
	sec2, pub2 := filepath.Join(dir, "k2.sec"), filepath.Join(dir, "k2.pub")
	run([]string{"keygen", "-s", sec2, "-p", pub2}, &out, &errb)
	errb.Reset()
	if rc := run([]string{"verify", "-p", pub2, dir}, &out, &errb); rc != 1 || !strings.Contains(errb.String(), "signed by key") {
		t.Errorf("verify with another key: %d %s", rc, errb.String())
	}
	// Unsigned: no stale signature left.
	if rc := run([]string{"index", dir}, &out, &errb); rc != 0 {
		t.Fatalf("index: %d %s", rc, errb.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "Packages.sig")); err == nil {
		t.Error("Packages.sig left by an unsigned index")
	}
	// Bad input: an error, not a feed.
	os.WriteFile(filepath.Join(dir, "c_1_all.ipk"), []byte("not a package"), 0o644)
	if rc := run([]string{"index", dir}, &out, &errb); rc != 1 || !strings.Contains(errb.String(), "c_1_all.ipk") {
		t.Errorf("a broken ipk: %d %s", rc, errb.String())
	}
	for _, args := range [][]string{nil, {"index"}, {"keygen", "-s", sec}, {"verify", dir}, {"bogus"}} {
		if rc := run(args, &out, &errb); rc != 2 {
			t.Errorf("%q: exit %d, want 2", args, rc)
		}
	}
}

// keygen writes the apk key pair beside the usign one, apk-keygen an apk
// pair alone, and neither replaces a key.
func TestKeygenAPK(t *testing.T) {
	dir := t.TempDir()
	sec, pub := filepath.Join(dir, "natmap-feed.sec"), filepath.Join(dir, "natmap-feed.pub")
	var out, errb bytes.Buffer
	if rc := run([]string{"keygen", "-s", sec, "-p", pub}, &out, &errb); rc != 0 {
		t.Fatalf("keygen: %d %s", rc, errb.String())
	}
	apkSec, apkPub := filepath.Join(dir, "natmap-feed.apk.sec"), filepath.Join(dir, "natmap-feed.pem")
	for name, mode := range map[string]os.FileMode{sec: 0o600, pub: 0o644, apkSec: 0o600, apkPub: 0o644} {
		if fi, err := os.Stat(name); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v, want mode %o", name, err, mode)
		}
	}
	p, _ := os.ReadFile(apkPub)
	id, err := apk.KeyID(p)
	if err != nil || !strings.Contains(out.String(), "apk key "+id+": ") || !strings.Contains(out.String(), "/etc/apk/keys/natmap-feed.pem") {
		t.Errorf("keygen said %q; key id %s (%v)", out.String(), id, err)
	}
	if s, _ := os.ReadFile(apkSec); !strings.HasPrefix(string(s), "-----BEGIN PRIVATE KEY-----\n") {
		t.Errorf("apk secret key:\n%s", s)
	}
	before, _ := os.ReadFile(sec)
	errb.Reset()
	if rc := run([]string{"keygen", "-s", sec, "-p", pub}, &out, &errb); rc != 1 || !strings.Contains(errb.String(), "exists") {
		t.Errorf("keygen over a key: %d %s", rc, errb.String())
	}
	if after, _ := os.ReadFile(sec); !bytes.Equal(before, after) {
		t.Error("keygen replaced a key")
	}
	// An apk key for a feed that has its usign key already.
	out.Reset()
	s2, p2 := filepath.Join(dir, "other.key"), filepath.Join(dir, "other.pem")
	if rc := run([]string{"apk-keygen", "-s", s2, "-p", p2}, &out, &errb); rc != 0 || !strings.Contains(out.String(), "apk key ") {
		t.Fatalf("apk-keygen: %d %s %s", rc, out.String(), errb.String())
	}
	if rc := run([]string{"apk-keygen", "-s", s2, "-p", p2}, &out, &errb); rc != 1 {
		t.Errorf("apk-keygen over a key: %d", rc)
	}
	if rc := run([]string{"apk-keygen", "-s", s2}, &out, &errb); rc != 2 {
		t.Errorf("apk-keygen without -p: %d", rc)
	}
}
