// Command mkfeed writes an opkg feed from the .ipk packages of a directory,
// as OpenWrt's build does (scripts/ipkg-make-index.sh, then usign):
//
//	mkfeed index [-s SECRET_KEY] DIR   DIR/Packages, Packages.gz and, with a
//	                                   usign secret key, Packages.sig
//	mkfeed keygen -s SECRET -p PUBLIC  a new usign key pair (unencrypted)
//	                                   and its apk twin (see below)
//	mkfeed apk-keygen -s SECRET -p PUBLIC
//	                                   a new apk key pair only
//	mkfeed verify -p PUBLIC DIR        checks DIR/Packages.sig against
//	                                   DIR/Packages, as opkg does (usign -V)
//
// Packages has each package's control fields, with Filename, Size and
// SHA256sum before Description, packages in name order, a blank line after
// each. Without -s no Packages.sig is written (a stale one is removed):
// opkg with signature checks then refuses the feed, so sign it for routers.
//
// The apk repository index (packages.adb, OpenWrt 25) is signed by
// apk-tools itself (`apk mkndx --sign-key`, scripts/ipk.sh), with a key
// of OpenSSL's kind (internal/pkgtools/apk.Key): keygen writes one beside
// the usign pair, SECRET less ".sec" plus ".apk.sec" (the secret) and
// PUBLIC less ".pub" plus ".pem" (for the router's /etc/apk/keys/). No
// file is overwritten: a feed's key is not lost to a second keygen.
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/natmap-go/natmap/internal/pkgtools/apk"
	"github.com/natmap-go/natmap/internal/pkgtools/usign"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

const usage = "usage: mkfeed index [-s SECRET_KEY] DIR | mkfeed keygen -s SECRET -p PUBLIC | mkfeed apk-keygen -s SECRET -p PUBLIC | mkfeed verify -p PUBLIC DIR"

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	fs := flag.NewFlagSet("mkfeed "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	secret := fs.String("s", "", "usign secret key file")
	public := fs.String("p", "", "public key file (keygen, apk-keygen, verify)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	var err error
	switch {
	case args[0] == "index" && fs.NArg() == 1:
		err = index(fs.Arg(0), *secret, stdout)
	case args[0] == "keygen" && fs.NArg() == 0 && *secret != "" && *public != "":
		err = keygen(*secret, *public, stdout)
	case args[0] == "apk-keygen" && fs.NArg() == 0 && *secret != "" && *public != "":
		err = apkKeygen(*secret, *public, stdout)
	case args[0] == "verify" && fs.NArg() == 1 && *public != "":
		err = verify(fs.Arg(0), *public, stdout)
	default:
		fmt.Fprintln(stderr, usage)
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "mkfeed:", err)
		return 1
	}
	return 0
}

// apkKeyFiles names the apk key pair that keygen writes beside a usign
// pair (scripts/ipk.sh finds the secret the same way from FEED_KEY).
func apkKeyFiles(secret, public string) (apkSecret, apkPublic string) {
	return strings.TrimSuffix(secret, ".sec") + ".apk.sec", strings.TrimSuffix(public, ".pub") + ".pem"
}

func keygen(secret, public string, stdout io.Writer) error {
	apkSecret, apkPublic := apkKeyFiles(secret, public)
	if err := absent(secret, public, apkSecret, apkPublic); err != nil {
		return err
	}
	k, err := usign.Generate(nil)
	if err != nil {
		return err
	}
	if err := writeNew(secret, k.MarshalSecret(), 0o600); err != nil {
		return err
	}
	if err := writeNew(public, k.MarshalPublic(), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "key %s: secret %s, public %s (install it as /etc/opkg/keys/%s)\n",
		k.FingerprintHex(), secret, public, k.FingerprintHex())
	return apkKeygen(apkSecret, apkPublic, stdout)
}

// apkKeygen writes a new apk key pair.
func apkKeygen(secret, public string, stdout io.Writer) error {
	if err := absent(secret, public); err != nil {
		return err
	}
	k, err := apk.GenerateKey(nil)
	if err != nil {
		return err
	}
	if err := writeNew(secret, k.Private, 0o600); err != nil {
		return err
	}
	if err := writeNew(public, k.Public, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "apk key %s: secret %s, public %s (install it as /etc/apk/keys/%s)\n",
		k.ID, secret, public, filepath.Base(public))
	return nil
}

// absent fails when one of the files exists: keygen replaces no key.
func absent(names ...string) error {
	for _, n := range names {
		if _, err := os.Lstat(n); err == nil {
			return fmt.Errorf("%s exists: not overwriting a key", n)
		}
	}
	return nil
}

// writeNew writes a file that must not exist yet.
func writeNew(name string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// verify checks a feed's signature with a public key, as opkg does.
func verify(dir, public string, stdout io.Writer) error {
	var files [3][]byte
	for i, name := range []string{public, filepath.Join(dir, "Packages.sig"), filepath.Join(dir, "Packages")} {
		b, err := os.ReadFile(name)
		if err != nil {
			return err
		}
		files[i] = b
	}
	if err := usign.Verify(files[0], files[1], files[2]); err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(dir, "Packages.sig"), err)
	}
	fmt.Fprintf(stdout, "%s: good signature\n", filepath.Join(dir, "Packages"))
	return nil
}

func index(dir, secret string, stdout io.Writer) error {
	var key *usign.Key
	if secret != "" {
		b, err := os.ReadFile(secret)
		if err != nil {
			return err
		}
		if key, err = usign.ParseSecret(b); err != nil {
			return fmt.Errorf("%s: %w", secret, err)
		}
	}
	names, err := filepath.Glob(filepath.Join(dir, "*.ipk"))
	if err != nil {
		return err
	}
	sort.Strings(names)
	var out bytes.Buffer
	for _, name := range names {
		entry, err := packageEntry(name)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		out.WriteString(entry)
	}
	if err := os.WriteFile(filepath.Join(dir, "Packages"), out.Bytes(), 0o644); err != nil {
		return err
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	zw.Write(out.Bytes())
	if err := zw.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "Packages.gz"), gz.Bytes(), 0o644); err != nil {
		return err
	}
	sig := filepath.Join(dir, "Packages.sig")
	if key == nil {
		if err := os.Remove(sig); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		fmt.Fprintf(stdout, "%s: %d packages, unsigned\n", filepath.Join(dir, "Packages"), len(names))
		return nil
	}
	if err := os.WriteFile(sig, key.Sign(out.Bytes()), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %d packages, signed by key %s\n", filepath.Join(dir, "Packages"), len(names), key.FingerprintHex())
	return nil
}

// packageEntry is a package's paragraph of Packages.
func packageEntry(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	inner, err := member(b, "./control.tar.gz")
	if err != nil {
		return "", err
	}
	control, err := member(inner, "./control")
	if err != nil {
		return "", fmt.Errorf("control.tar.gz: %w", err)
	}
	text := strings.TrimRight(string(control), "\n") + "\n"
	if !strings.HasPrefix(text, "Package: ") {
		return "", errors.New("control does not start with Package:")
	}
	sum := sha256.Sum256(b)
	extra := "Filename: " + filepath.Base(path) + "\nSize: " + strconv.Itoa(len(b)) + "\nSHA256sum: " + hex.EncodeToString(sum[:]) + "\n"
	if i := strings.Index(text, "\nDescription:"); i >= 0 {
		text = text[:i+1] + extra + text[i+1:]
	} else {
		text += extra
	}
	return text + "\n", nil
}

// member returns a file of a gzip'd tar.
func member(targz []byte, name string) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(targz))
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, fmt.Errorf("no %s", name)
		}
		if err != nil {
			return nil, err
		}
		if h.Name == name {
			return io.ReadAll(io.LimitReader(tr, 16<<20))
		}
	}
}
