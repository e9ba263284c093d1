package openwrt_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/natmap-go/natmap/internal/pkgtools/apk"
	"github.com/natmap-go/natmap/internal/pkgtools/usign"
	"github.com/natmap-go/natmap/internal/testkit/owlab"
)

// releaseClone clones this repository's HEAD into a temporary directory
// with this checkout's release and packaging scripts laid over it, so a
// release can be made there without touching the real tags.
func releaseClone(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	top, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(top, ".git")); err != nil {
		t.Skip("not a git checkout: nothing to release")
	}
	dir := filepath.Join(t.TempDir(), "natmap")
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=test", "GIT_AUTHOR_EMAIL=test@invalid",
			"GIT_COMMITTER_NAME=test", "GIT_COMMITTER_EMAIL=test@invalid")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out, err := exec.Command("git", "clone", "-q", "--no-hardlinks", top, dir).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	git("config", "user.name", "test")
	git("config", "user.email", "test@invalid")
	for _, f := range []string{"Makefile", "scripts/release.sh", "scripts/ipk.sh", "openwrt/natmap/Makefile", "LICENSE"} {
		b, err := os.ReadFile(filepath.Join(top, f))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, f), string(b), map[bool]os.FileMode{true: 0o755, false: 0o644}[strings.HasSuffix(f, ".sh")])
	}
	git("add", "-A")
	if git("status", "--porcelain") != "" {
		git("commit", "-q", "-m", "test: this checkout's scripts")
	}
	return dir
}

// The source tarball is the same bytes every time from the same commit,
// with the forge's layout: natmap-VERSION/ at the top.
func TestReleaseTarballReproducible(t *testing.T) {
	dir := releaseClone(t)
	var sums []string
	for i := range 2 {
		out := filepath.Join(t.TempDir(), "natmap.tar.gz")
		cmd := exec.Command("scripts/release.sh", "tarball", "1.0", "HEAD", out)
		cmd.Dir = dir
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("release.sh tarball (%d): %v\n%s", i, err, b)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		sums = append(sums, hex.EncodeToString(sum[:]))
		if i == 0 {
			names := tarNames(t, b)
			for _, want := range []string{"natmap-1.0/LICENSE", "natmap-1.0/go.mod", "natmap-1.0/cmd/natmap/main.go", "natmap-1.0/openwrt/natmap/Makefile"} {
				if !names[want] {
					t.Errorf("tarball lacks %s", want)
				}
			}
			for n := range names {
				if !strings.HasPrefix(n, "natmap-1.0/") {
					t.Errorf("tarball entry %s outside natmap-1.0/", n)
				}
			}
		}
	}
	if sums[0] != sums[1] {
		t.Errorf("two tarballs of one commit differ: %s, %s", sums[0], sums[1])
	}
}

// make release: a tag, a changelog entry, PKG_VERSION and PKG_HASH that
// agree with the tarball, and packages whose binary, control data and
// version agree.
func TestRelease(t *testing.T) {
	dir := releaseClone(t)
	const version = "20991231"
	// With apk-tools v3 (APK_TOOLS_BIN, or the OpenWrt lab's), the apk
	// index too, signed with FEED_KEY's apk twin. CI always checks it.
	var apkBin string
	if os.Getenv("APK_TOOLS_BIN") != "" || owlab.Usable() || os.Getenv("CI") == "true" {
		apkBin = apkTools(t)
	}
	secret, key, apkKey := feedKeys(t, apkBin != "")
	cmd := exec.Command("make", "release", "VERSION="+version, "RELEASE_ARCHES=x86_64")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "FEED_KEY="+secret)
	if apkBin != "" {
		cmd.Env = append(cmd.Env, "APK_TOOLS_BIN="+apkBin)
	} else {
		t.Log("no apk-tools v3 (APK_TOOLS_BIN, or root and ../shared/openwrt-lab): the apk index is not made")
	}
	if g, err := exec.LookPath("go"); err == nil {
		cmd.Env = append(cmd.Env, "GO="+g)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make release: %v\n%s", err, out)
	}
	rel := filepath.Join(dir, "dist", "release")
	tarball := filepath.Join(rel, "natmap-"+version+".tar.gz")
	b, err := os.ReadFile(tarball)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	hash := hex.EncodeToString(sum[:])

	mk := readFile(t, filepath.Join(dir, "openwrt", feedMakefile))
	makeVar := func(name string) string {
		m := regexp.MustCompile(`(?m)^` + name + `:=(.*)$`).FindStringSubmatch(mk)
		if m == nil {
			t.Fatalf("feed Makefile has no %s", name)
		}
		return m[1]
	}
	if v := makeVar("PKG_VERSION"); v != version {
		t.Errorf("PKG_VERSION %q, want %q", v, version)
	}
	if v := makeVar("PKG_HASH"); v != hash {
		t.Errorf("PKG_HASH %q, want the tarball's %s", v, hash)
	}
	if v := makeVar("PKG_LICENSE"); v != "MIT" {
		t.Errorf("PKG_LICENSE %q", v)
	}
	// The tarball is the tag's archive, by the name the feed downloads.
	if v := makeVar("PKG_SOURCE"); v != "$(PKG_NAME)-$(PKG_VERSION).tar.gz" {
		t.Errorf("PKG_SOURCE %q", v)
	}
	again := filepath.Join(t.TempDir(), "again.tar.gz")
	c := exec.Command("scripts/release.sh", "tarball", version, "v"+version, again)
	c.Dir = dir
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("tarball of the tag: %v\n%s", err, out)
	}
	if b2, _ := os.ReadFile(again); !bytes.Equal(b, b2) {
		t.Error("the tag's archive is not the released tarball")
	}
	names := tarNames(t, b)
	if !names["natmap-"+version+"/LICENSE"] {
		t.Error("tarball has no LICENSE")
	}
	// The tagged commit has the new PKG_VERSION, and the changelog its entry.
	tagged, err := exec.Command("git", "-C", dir, "show", "v"+version+":"+"openwrt/"+feedMakefile).Output()
	if err != nil || !strings.Contains(string(tagged), "PKG_VERSION:="+version+"\n") {
		t.Errorf("tag v%s: feed Makefile without PKG_VERSION:=%s (%v)", version, version, err)
	}
	if cl := readFile(t, filepath.Join(dir, "CHANGELOG.md")); !strings.Contains(cl, "## "+version+" (") {
		t.Errorf("CHANGELOG.md has no entry for %s:\n%s", version, cl)
	}

	// The packages: one version everywhere, MIT, and the binary says it.
	p := openIPK(t, filepath.Join(rel, "natmap_"+version+"-r1_x86_64.ipk"))
	if p.fields["Version"] != version+"-r1" || p.fields["License"] != "MIT" || p.fields["LicenseFiles"] != "LICENSE" {
		t.Errorf("ipk control: Version %q License %q LicenseFiles %q", p.fields["Version"], p.fields["License"], p.fields["LicenseFiles"])
	}
	bin, ok := p.dataFile("./usr/bin/natmap")
	if !ok {
		t.Fatal("ipk has no /usr/bin/natmap")
	}
	exe := filepath.Join(t.TempDir(), "natmap")
	writeFile(t, exe, string(bin.data), 0o755)
	out, err := exec.Command(exe, "--version").Output()
	if err != nil || strings.TrimSpace(string(out)) != "natmap "+version+"-r1" {
		t.Errorf("natmap --version: %q (%v), want natmap %s-r1", out, err, version)
	}
	if _, err := os.Stat(filepath.Join(rel, "natmap_"+version+"-r1_x86_64.apk")); err != nil {
		t.Errorf("no apk: %v", err)
	}
	// The feed of the release, signed with FEED_KEY, lists that version.
	packages := readFile(t, filepath.Join(rel, "Packages"))
	if err := usign.Verify(key.MarshalPublic(), []byte(readFile(t, filepath.Join(rel, "Packages.sig"))), []byte(packages)); err != nil {
		t.Errorf("the release feed's signature: %v", err)
	}
	if !strings.Contains(packages, "Package: natmap\nVersion: "+version+"-r1\n") {
		t.Errorf("Packages:\n%s", packages)
	}
	if apkKey != nil {
		checkAPKIndex(t, apkBin, filepath.Join(rel, "packages.adb"), apkKey, "natmap", version+"-r1")
	}
	// A second release of the same version is refused.
	cmd = exec.Command("scripts/release.sh", version)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "exists") {
		t.Errorf("releasing %s twice: %v\n%s", version, err, out)
	}
}

func tarNames(t *testing.T, b []byte) map[string]bool {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	names := map[string]bool{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeXGlobalHeader { // git's commit id
			names[h.Name] = true
		}
	}
}

// checkAPKIndex checks an apk index with apk-tools: signed by key (OK with
// its public half as the only trusted key, UNTRUSTED with none), listing
// the package at that version.
func checkAPKIndex(t *testing.T, apkBin, index string, key *apk.Key, name, version string) {
	t.Helper()
	dump := func(keys string) string {
		t.Helper()
		out, err := exec.Command(apkBin, "adbdump", "--keys-dir", keys, index).CombinedOutput()
		if err != nil {
			t.Fatalf("apk adbdump %s: %v\n%s", index, err, out)
		}
		return string(out)
	}
	keys := t.TempDir()
	writeFile(t, filepath.Join(keys, "natmap-feed.pem"), string(key.Public), 0o644)
	sig := regexp.MustCompile(`(?m)^# sig v00 h04 ([0-9a-f]{32})[0-9a-f]*\.*: (.*)$`)
	out := dump(keys)
	if m := sig.FindStringSubmatch(out); m == nil || m[1] != key.ID || m[2] != "OK" {
		t.Errorf("%s: signature %q, want key %s and OK:\n%s", index, m, key.ID, out)
	}
	if !strings.Contains(out, "- name: "+name+"\n    version: "+version+"\n") {
		t.Errorf("%s lacks %s %s:\n%s", index, name, version, out)
	}
	if m := sig.FindStringSubmatch(dump(t.TempDir())); m == nil || m[2] != "UNTRUSTED signature" {
		t.Errorf("%s without its key: %q, want UNTRUSTED", index, m)
	}
}
