package openwrt_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/natmap-go/natmap/internal/pkgtools/po2lmo"
)

// arches are the packages `make ipk` builds, with what their binary must be.
var arches = []struct {
	name      string
	machine   elf.Machine
	class     elf.Class
	order     binary.ByteOrder
	goarch    string
	goSetting [2]string // a build setting the binary must carry
}{
	{"x86_64", elf.EM_X86_64, elf.ELFCLASS64, binary.LittleEndian, "amd64", [2]string{"GOAMD64", "v1"}}, // as OpenWrt builds Go
	{"aarch64_generic", elf.EM_AARCH64, elf.ELFCLASS64, binary.LittleEndian, "arm64", [2]string{}},
	{"arm_cortex-a7_neon-vfpv4", elf.EM_ARM, elf.ELFCLASS32, binary.LittleEndian, "arm", [2]string{"GOARM", "7"}},
	{"mipsel_24kc", elf.EM_MIPS, elf.ELFCLASS32, binary.LittleEndian, "mipsle", [2]string{"GOMIPS", "softfloat"}},
	{"mips_24kc", elf.EM_MIPS, elf.ELFCLASS32, binary.BigEndian, "mips", [2]string{"GOMIPS", "softfloat"}},
}

// natmapData is the natmap package's data: every path, with its mode.
var natmapData = []struct {
	path string
	mode fs.FileMode
}{
	{"./", fs.ModeDir | 0o755},
	{"./etc/", fs.ModeDir | 0o755},
	{"./etc/config/", fs.ModeDir | 0o755},
	{"./etc/config/natmap", 0o600},
	{"./etc/init.d/", fs.ModeDir | 0o755},
	{"./etc/init.d/natmap", 0o755},
	{"./etc/uci-defaults/", fs.ModeDir | 0o755},
	{"./etc/uci-defaults/99-natmap", 0o644},
	{"./usr/", fs.ModeDir | 0o755},
	{"./usr/bin/", fs.ModeDir | 0o755},
	{"./usr/bin/natmap", 0o755},
	{"./usr/lib/", fs.ModeDir | 0o755},
	{"./usr/lib/lua/", fs.ModeDir | 0o755},
	{"./usr/lib/lua/prometheus-collectors/", fs.ModeDir | 0o755},
	{"./usr/lib/lua/prometheus-collectors/natmap.lua", 0o644},
	{"./usr/libexec/", fs.ModeDir | 0o755},
	{"./usr/libexec/rpcd/", fs.ModeDir | 0o755},
	{"./usr/libexec/rpcd/natmap", 0o755},
	{"./usr/share/", fs.ModeDir | 0o755},
	{"./usr/share/natmap/", fs.ModeDir | 0o755},
	{"./usr/share/natmap/firewall.include", 0o644},
}

// Control fields in OpenWrt's order (include/package-pack.mk); the first
// ones and those marked are required.
var controlOrder = []string{"Package", "Version", "Depends", "Conflicts", "Provides", "Source", "SourceName",
	"License", "LicenseFiles", "Section", "SourceDateEpoch", "URL", "Maintainer", "Architecture",
	"Installed-Size", "Description"}

var requiredFields = []string{"Package", "Version", "Depends", "Source", "SourceName", "License", "Section",
	"URL", "Maintainer", "Architecture", "Installed-Size", "Description"}

var versionRE = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*-r[0-9]+$`)

// ipkScript runs scripts/ipk.sh with env, into a new directory.
func ipkScript(t testing.TB, env []string, args ...string) (string, string, error) {
	dir, err := os.MkdirTemp("", "natmap-ipk-")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("scripts/ipk.sh", append([]string{"-o", dir}, args...)...)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), env...)
	if g, err := exec.LookPath("go"); err == nil { // go test puts its go first in PATH
		cmd.Env = append(cmd.Env, "GO="+g)
	}
	out, err := cmd.CombinedOutput()
	return dir, string(out), err
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

var (
	buildOnce sync.Once
	buildDir  string
	buildOut  string
	buildErr  error
)

// built runs `make ipk`'s script once for every test (into a temporary
// directory, not dist/), building the .apk packages too (apk_test.go).
func built(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildOut, buildErr = ipkScript(t, nil, "-f", "all")
	})
	if buildErr != nil {
		t.Fatalf("scripts/ipk.sh: %v\n%s", buildErr, buildOut)
	}
	return buildDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// member is one entry of a tar.
type member struct {
	hdr  *tar.Header
	data []byte
}

func untargz(t *testing.T, name string, b []byte) []member {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if zr.Name != "" || !zr.ModTime.IsZero() {
		t.Errorf("%s: gzip header has a name %q or time %v (want gzip -n)", name, zr.Name, zr.ModTime)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	tr := tar.NewReader(bytes.NewReader(raw))
	var out []member
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, member{h, data})
	}
	return out
}

func rawSize(t *testing.T, b []byte) int {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, zr)
	if err != nil {
		t.Fatal(err)
	}
	return int(n)
}

// ipk is an unpacked package.
type ipk struct {
	file    string
	outer   []member
	control []member
	data    []member
	dataRaw int // bytes of the uncompressed data tar
	fields  map[string]string
	order   []string // field names as they come
}

func (p *ipk) controlFile(name string) (member, bool) {
	for _, m := range p.control {
		if m.hdr.Name == "./"+name {
			return m, true
		}
	}
	return member{}, false
}

func (p *ipk) dataFile(path string) (member, bool) {
	for _, m := range p.data {
		if m.hdr.Name == path {
			return m, true
		}
	}
	return member{}, false
}

func openIPK(t *testing.T, path string) *ipk {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p := &ipk{file: filepath.Base(path), outer: untargz(t, path, b)}
	var names []string
	for _, m := range p.outer {
		names = append(names, m.hdr.Name)
	}
	// scripts/ipkg-build's order: debian-binary, data, control.
	if want := []string{"./debian-binary", "./data.tar.gz", "./control.tar.gz"}; !slices.Equal(names, want) {
		t.Fatalf("%s: members %q, want %q", p.file, names, want)
	}
	if string(p.outer[0].data) != "2.0\n" {
		t.Errorf("%s: debian-binary %q", p.file, p.outer[0].data)
	}
	p.data = untargz(t, path+" data", p.outer[1].data)
	p.dataRaw = rawSize(t, p.outer[1].data)
	p.control = untargz(t, path+" control", p.outer[2].data)
	cf, ok := p.controlFile("control")
	if !ok {
		t.Fatalf("%s: no control file", p.file)
	}
	p.fields = map[string]string{}
	var last string
	sc := bufio.NewScanner(bytes.NewReader(cf.data))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, " ") && last != "" {
			p.fields[last] += "\n" + line[1:]
			continue
		}
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			t.Errorf("%s: control line %q", p.file, line)
			continue
		}
		if _, dup := p.fields[k]; dup {
			t.Errorf("%s: field %s twice", p.file, k)
		}
		p.fields[k], last = v, k
		p.order = append(p.order, k)
	}
	return p
}

// checkCommon checks what every package shares: ownership, times, order,
// the control fields and scripts.
func checkCommon(t *testing.T, p *ipk, name, arch string) {
	t.Helper()
	for _, set := range [][]member{p.outer, p.control, p.data} {
		var prev string
		for i, m := range set {
			h := m.hdr
			if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
				t.Errorf("%s: %s owned by %d(%s):%d(%s), want numeric root", p.file, h.Name, h.Uid, h.Uname, h.Gid, h.Gname)
			}
			if h.Format != tar.FormatGNU {
				t.Errorf("%s: %s: format %v, want GNU", p.file, h.Name, h.Format)
			}
			if want := p.fields["SourceDateEpoch"]; want != fmt.Sprint(h.ModTime.Unix()) {
				t.Errorf("%s: %s: mtime %d, want SourceDateEpoch %s", p.file, h.Name, h.ModTime.Unix(), want)
			}
			if h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeDir {
				t.Errorf("%s: %s: type %c", p.file, h.Name, h.Typeflag)
			}
			// GNU tar --sort=name: a depth-first walk, names sorted
			// bytewise in each directory.
			if set[0].hdr.Name == "./" && i > 0 && !walkOrdered(prev, h.Name) {
				t.Errorf("%s: %s after %s: not sorted", p.file, h.Name, prev)
			}
			prev = h.Name
		}
	}

	for _, f := range requiredFields {
		if p.fields[f] == "" {
			t.Errorf("%s: no %s field", p.file, f)
		}
	}
	pos := -1
	for _, k := range p.order {
		i := slices.Index(controlOrder, k)
		if i < 0 {
			t.Errorf("%s: unexpected field %s", p.file, k)
		} else if i < pos {
			t.Errorf("%s: field %s out of OpenWrt's order %q", p.file, k, p.order)
		}
		pos = max(pos, i)
	}
	f := p.fields
	if f["Package"] != name || f["SourceName"] != name || f["Architecture"] != arch {
		t.Errorf("%s: Package %q SourceName %q Architecture %q", p.file, f["Package"], f["SourceName"], f["Architecture"])
	}
	if !versionRE.MatchString(f["Version"]) {
		t.Errorf("%s: Version %q is not an opkg version as OpenWrt writes them (UPSTREAM-rRELEASE)", p.file, f["Version"])
	}
	if want := name + "_" + f["Version"] + "_" + arch + ".ipk"; p.file != want {
		t.Errorf("file %s, want %s", p.file, want)
	}
	if f["Installed-Size"] != fmt.Sprint(p.dataRaw) {
		t.Errorf("%s: Installed-Size %s, want %d (the uncompressed data tar, as ipkg-build counts)", p.file, f["Installed-Size"], p.dataRaw)
	}
	if strings.Contains(f["Depends"], "libc") {
		t.Errorf("%s: Depends %q: the binary is static", p.file, f["Depends"])
	}

	var names []string
	for _, m := range p.control {
		names = append(names, m.hdr.Name)
		mode := m.hdr.FileInfo().Mode()
		switch m.hdr.Name {
		case "./":
			if mode != fs.ModeDir|0o755 {
				t.Errorf("%s: control ./ mode %v", p.file, mode)
			}
		case "./control", "./conffiles":
			if mode != 0o644 {
				t.Errorf("%s: %s mode %v, want 0644", p.file, m.hdr.Name, mode)
			}
		default:
			if mode != 0o755 {
				t.Errorf("%s: %s mode %v, want 0755", p.file, m.hdr.Name, mode)
			}
			if !bytes.HasPrefix(m.data, []byte("#!/bin/sh\n")) {
				t.Errorf("%s: %s has no #!/bin/sh", p.file, m.hdr.Name)
			}
		}
	}
	for _, want := range []string{"./", "./control", "./postinst", "./postinst-pkg", "./postrm", "./prerm"} {
		if !slices.Contains(names, want) {
			t.Errorf("%s: no %s in control.tar.gz (%q)", p.file, want, names)
		}
	}
}

// walkOrdered says whether b may follow a in a sorted depth-first walk.
func walkOrdered(a, b string) bool {
	ta, tb := strings.TrimSuffix(a, "/"), strings.TrimSuffix(b, "/")
	if strings.HasPrefix(tb, ta+"/") || ta == "." {
		return true // b is inside a
	}
	return ta < tb
}

func ipkFiles(t *testing.T, dir, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestIPKNatmap(t *testing.T) {
	dir := built(t)
	files := ipkFiles(t, dir, "natmap_*.ipk")
	if len(files) != len(arches) {
		t.Fatalf("natmap packages %q, want one per arch (%d)", files, len(arches))
	}
	var version string
	for _, a := range arches {
		t.Run(a.name, func(t *testing.T) {
			m := ipkFiles(t, dir, "natmap_*_"+a.name+".ipk")
			if len(m) != 1 {
				t.Fatalf("no package for %s", a.name)
			}
			p := openIPK(t, m[0])
			checkCommon(t, p, "natmap", a.name)
			if version == "" {
				version = p.fields["Version"]
			} else if p.fields["Version"] != version {
				t.Errorf("Version %q, others %q", p.fields["Version"], version)
			}
			if c, _ := p.controlFile("conffiles"); string(c.data) != "/etc/config/natmap\n" {
				t.Errorf("conffiles %q", c.data)
			}
			f := p.fields
			if f["Section"] != "net" || f["Source"] != "openwrt/natmap" || f["Depends"] != "jshn" {
				t.Errorf("Section %q Source %q Depends %q", f["Section"], f["Source"], f["Depends"])
			}

			var got []string
			for _, m := range p.data {
				got = append(got, m.hdr.Name)
			}
			var want []string
			for _, d := range natmapData {
				want = append(want, d.path)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("data:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			for _, d := range natmapData {
				m, _ := p.dataFile(d.path)
				if mode := m.hdr.FileInfo().Mode(); mode != d.mode {
					t.Errorf("%s: mode %v, want %v", d.path, mode, d.mode)
				}
			}
			bin, _ := p.dataFile("./usr/bin/natmap")
			checkBinary(t, bin.data, a.machine, a.class, a.order, a.goarch, a.goSetting, f["Version"])
			size := fileSize(t, m[0])
			t.Logf("%s: %d bytes, installed %s", p.file, size, f["Installed-Size"])
			// Routers have 8-32 MB of flash. The budget has room for
			// growth but not for a library that drags in crypto/tls.
			if a.name == "mipsel_24kc" && size > maxMipselIPK {
				t.Errorf("%s: %d bytes, over the %d-byte (1.5 MiB) budget", p.file, size, maxMipselIPK)
			}
		})
	}
}

const maxMipselIPK = 3 << 19 // 1.5 MiB

func fileSize(t *testing.T, p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func checkBinary(t *testing.T, b []byte, machine elf.Machine, class elf.Class, order binary.ByteOrder, goarch string, setting [2]string, version string) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("natmap is not ELF: %v", err)
	}
	if f.Machine != machine || f.Class != class || f.ByteOrder != order || f.Type != elf.ET_EXEC {
		t.Errorf("ELF %v %v %v %v, want %v %v %v EXEC", f.Machine, f.Class, f.ByteOrder, f.Type, machine, class, order)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("program header %v: not a static binary", p.Type)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) != 0 {
		t.Errorf("needs %q", libs)
	}
	for _, s := range f.Sections {
		if s.Name == ".symtab" || strings.HasPrefix(s.Name, ".debug_") || strings.HasPrefix(s.Name, ".zdebug_") {
			t.Errorf("section %s: not stripped", s.Name)
		}
	}
	if machine == elf.EM_MIPS {
		// The FP ABI of .MIPS.abiflags (Elf_MIPS_ABIFlags_v0.fp_abi, at
		// byte 7): 3 is soft float (e_flags say nothing about it).
		s := f.Section(".MIPS.abiflags")
		if s == nil {
			t.Error("no .MIPS.abiflags")
		} else if d, err := s.Data(); err != nil || len(d) < 8 || d[7] != 3 {
			t.Errorf(".MIPS.abiflags %x: want fp_abi 3 (soft float)", d)
		}
	}
	bi, err := buildinfo.Read(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("build info: %v", err)
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	want := map[string]string{"GOOS": "linux", "GOARCH": goarch, "CGO_ENABLED": "0", "-trimpath": "true"}
	if setting[0] != "" {
		want[setting[0]] = setting[1]
	}
	for k, v := range want {
		if settings[k] != v {
			t.Errorf("built with %s=%q, want %q", k, settings[k], v)
		}
	}
	// Go leaves -ldflags out of the build info of a -trimpath build; the
	// sections above show -s -w, and -X main.version leaves its string.
	if !bytes.Contains(b, []byte(version)) {
		t.Errorf("the binary does not contain its version %s", version)
	}
	if bi.Path != "github.com/natmap-go/natmap/cmd/natmap" {
		t.Errorf("binary of %s", bi.Path)
	}
	if goarch == runtime.GOARCH && runtime.GOOS == "linux" {
		exe := filepath.Join(t.TempDir(), "natmap")
		writeFile(t, exe, string(b), 0o755)
		out, _, code := run(t, nil, "", exe, "--version")
		if code != 0 || out != "natmap "+version+"\n" {
			t.Errorf("natmap --version: %q exit %d, want natmap %s", out, code, version)
		}
	}
}

// The data is what the feed Makefile installs: same paths, modes and
// files.
func TestIPKMatchesFeedMakefile(t *testing.T) {
	dir := built(t)
	m := ipkFiles(t, dir, "natmap_*_x86_64.ipk")
	if len(m) != 1 {
		t.Fatal("no x86_64 package")
	}
	p := openIPK(t, m[0])
	install := regexp.MustCompile(`^\t\$\((INSTALL_BIN|INSTALL_CONF|INSTALL_DATA)\) (\S+) \$\(1\)(\S+)$`)
	modes := map[string]fs.FileMode{"INSTALL_BIN": 0o755, "INSTALL_CONF": 0o600, "INSTALL_DATA": 0o644}
	installed := map[string]bool{}
	inDefine := false
	for _, line := range strings.Split(readFile(t, feedMakefile), "\n") {
		switch {
		case line == "define Package/natmap/install":
			inDefine = true
		case line == "endef":
			inDefine = false
		case inDefine && strings.Contains(line, "GoPackage/Package/Install/Bin"):
			installed["./usr/bin/natmap"] = true
		case inDefine:
			sm := install.FindStringSubmatch(line)
			if sm == nil {
				continue
			}
			path := "." + sm[3]
			installed[path] = true
			f, ok := p.dataFile(path)
			if !ok {
				t.Errorf("the Makefile installs %s; the ipk does not", path)
				continue
			}
			if mode := f.hdr.FileInfo().Mode(); mode != modes[sm[1]] {
				t.Errorf("%s: mode %v in the ipk, %s in the Makefile", path, mode, sm[1])
			}
			if src := readFile(t, filepath.Join("natmap", sm[2])); string(f.data) != src {
				t.Errorf("%s differs from %s", path, sm[2])
			}
		}
	}
	for _, f := range p.data {
		if f.hdr.Typeflag == tar.TypeReg && !installed[f.hdr.Name] {
			t.Errorf("the ipk has %s; the Makefile does not install it", f.hdr.Name)
		}
	}
	// The scripts are the Makefile's too.
	for script, define := range map[string]string{"postinst-pkg": "postinst", "postrm": "postrm", "conffiles": "conffiles"} {
		c, _ := p.controlFile(script)
		want := makeDefine(t, "Package/natmap/"+define)
		if strings.TrimSpace(string(c.data)) != strings.TrimSpace(want) {
			t.Errorf("%s:\n%s\nMakefile's:\n%s", script, c.data, want)
		}
	}
}

func makeDefine(t *testing.T, name string) string {
	var out []string
	on := false
	for _, line := range strings.Split(readFile(t, feedMakefile), "\n") {
		switch {
		case line == "define "+name:
			on = true
		case on && line == "endef":
			return strings.Join(out, "\n")
		case on:
			out = append(out, strings.ReplaceAll(line, "$$", "$"))
		}
	}
	t.Fatalf("no define %s in %s", name, feedMakefile)
	return ""
}

// TestIPKScripts runs the control scripts as opkg would, with stand-ins
// for lib/functions.sh and the router's commands.
func TestIPKScripts(t *testing.T) {
	dir := built(t)
	pkgs := ipkFiles(t, dir, "natmap_*_x86_64.ipk")
	pkgs = append(pkgs, ipkFiles(t, dir, "luci-app-natmap_*_all.ipk")...)
	for _, path := range pkgs {
		p := openIPK(t, path)
		name := p.fields["Package"]
		for _, sh := range shells(t) {
			t.Run(name+"/"+shellName(sh), func(t *testing.T) {
				for _, c := range p.control {
					if c.hdr.Name == "./control" || c.hdr.Name == "./conffiles" || c.hdr.Name == "./" {
						continue
					}
					if _, stderr, code := run(t, nil, string(c.data), sh[0], append(sh[1:], "-n")...); code != 0 {
						t.Errorf("%s -n %s: %s", shellName(sh), c.hdr.Name, stderr)
					}
				}
				checkScriptsInstroot(t, sh, p, name)
				if name == "natmap" {
					checkNatmapScriptsLive(t, sh, p)
				}
			})
		}
	}
}

// installRoot makes an image-build root: the control files where opkg
// puts them, and lib/functions.sh whose default_postinst/default_prerm
// record their call and source the package's -pkg script, as OpenWrt's do.
func installRoot(t *testing.T, p *ipk, name string, rec *recorder, withFunctions bool) string {
	root := t.TempDir()
	info := filepath.Join(root, "usr/lib/opkg/info")
	for _, c := range p.control {
		if c.hdr.Typeflag == tar.TypeReg {
			writeFile(t, filepath.Join(info, name+"."+strings.TrimPrefix(c.hdr.Name, "./")), string(c.data), c.hdr.FileInfo().Mode())
		}
	}
	if withFunctions {
		writeFile(t, filepath.Join(root, "lib/functions.sh"), `
default_postinst() {
	`+shq(rec.stub(t, "default_postinst", ""))+` "$@"
	[ ! -f "$IPKG_INSTROOT/usr/lib/opkg/info/`+name+`.postinst-pkg" ] || ( . "$IPKG_INSTROOT/usr/lib/opkg/info/`+name+`.postinst-pkg" )
}
default_prerm() {
	`+shq(rec.stub(t, "default_prerm", ""))+` "$@"
	[ ! -f "$IPKG_INSTROOT/usr/lib/opkg/info/`+name+`.prerm-pkg" ] || ( . "$IPKG_INSTROOT/usr/lib/opkg/info/`+name+`.prerm-pkg" )
}
`, 0o644)
	}
	return root
}

func checkScriptsInstroot(t *testing.T, sh []string, p *ipk, name string) {
	rec := newRecorder(t)
	for _, cmd := range []string{"killall", "uci", "rm", "logger", "ubus"} {
		rec.stub(t, cmd, "exit 0")
	}
	root := installRoot(t, p, name, rec, true)
	info := filepath.Join(root, "usr/lib/opkg/info", name+".")
	env := []string{rec.path(), "IPKG_INSTROOT=" + root}
	for _, script := range []string{"postinst", "prerm", "postrm"} {
		if _, stderr, code := run(t, env, "", sh[0], append(sh[1:], info+script, "configure")...); code != 0 {
			t.Errorf("%s under IPKG_INSTROOT exited %d: %s", script, code, stderr)
		}
	}
	calls := rec.calls(t)
	var names []string
	for _, c := range calls {
		names = append(names, c[0])
		if c[0] == "default_postinst" && (len(c) < 2 || c[1] != info+"postinst") {
			t.Errorf("default_postinst %q: want the script's path first", c)
		}
	}
	// At image build time only the generic steps run (they enable the init
	// script in the image); nothing touches the build machine.
	if want := []string{"default_postinst", "default_prerm"}; !slices.Equal(names, want) {
		t.Errorf("calls under IPKG_INSTROOT: %q, want only %q", calls, want)
	}

	// IPKG_NO_SCRIPT=1, or no lib/functions.sh (not OpenWrt): nothing.
	rec2 := newRecorder(t)
	root2 := installRoot(t, p, name, rec2, true)
	if _, _, code := run(t, []string{rec2.path(), "IPKG_INSTROOT=" + root2, "IPKG_NO_SCRIPT=1"}, "", sh[0],
		append(sh[1:], filepath.Join(root2, "usr/lib/opkg/info", name+".postinst"))...); code != 0 {
		t.Errorf("postinst with IPKG_NO_SCRIPT exited %d", code)
	}
	root3 := installRoot(t, p, name, rec2, false)
	for _, script := range []string{"postinst", "prerm"} {
		if _, _, code := run(t, []string{rec2.path(), "IPKG_INSTROOT=" + root3}, "", sh[0],
			append(sh[1:], filepath.Join(root3, "usr/lib/opkg/info", name+"."+script))...); code != 0 {
			t.Errorf("%s without lib/functions.sh exited %d", script, code)
		}
	}
	if c := rec2.calls(t); len(c) != 0 {
		t.Errorf("calls with IPKG_NO_SCRIPT or without lib/functions.sh: %q", c)
	}
}

// checkNatmapScriptsLive runs natmap's own scripts as on a router (no
// IPKG_INSTROOT), with stand-ins for uci and killall.
func checkNatmapScriptsLive(t *testing.T, sh []string, p *ipk) {
	postinst, _ := p.controlFile("postinst-pkg")
	postrm, _ := p.controlFile("postrm")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "postinst-pkg"), string(postinst.data), 0o755)
	writeFile(t, filepath.Join(dir, "postrm"), string(postrm.data), 0o755)

	rec := newRecorder(t)
	killall := rec.stub(t, "killall", "exit 0")
	// default_postinst sources postinst-pkg in a subshell. killall is a
	// function: a busybox built with its applets preferred to PATH (as
	// Debian's busybox-static) would run its own killall, not the stub.
	script := "killall() { " + shq(killall) + ` "$@"; }; ( . ` + shq(filepath.Join(dir, "postinst-pkg")) + " )"
	if _, stderr, code := run(t, []string{rec.path(), "IPKG_INSTROOT="}, "", sh[0], append(sh[1:], "-c", script)...); code != 0 {
		t.Errorf("postinst-pkg exited %d: %s", code, stderr)
	} else if c := rec.calls(t); len(c) != 1 || joinArgs(c[0]) != "killall -HUP rpcd" {
		t.Errorf("postinst-pkg calls %q, want rpcd told to reload", c)
	}

	ours := []string{"firewall.@defaults[0]=defaults", "firewall.natmap=include", "firewall.natmap.type=script",
		"firewall.natmap.path=/usr/share/natmap/firewall.include", "firewall.natmap.fw4_compatible=1"}
	for _, upgrade := range []bool{false, true} {
		rec := newRecorder(t)
		rec.stub(t, "killall", "exit 0")
		u := newFakeUci(t, rec, ours...)
		env := append(u.env(), "IPKG_INSTROOT=")
		if upgrade {
			env = append(env, "PKG_UPGRADE=1")
		}
		cmd := exec.Command(sh[0], append(sh[1:], "./postrm", "remove")...)
		cmd.Dir, cmd.Env = dir, append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("postrm: %v %s", err, out)
		}
		l := u.lines(t)
		if upgrade {
			if !sameSet(l, ours) {
				t.Errorf("postrm on upgrade changed the firewall config: %q", l)
			}
			continue
		}
		if !sameSet(l, ours[:1]) || u.commits(t) != 1 {
			t.Errorf("after removal the firewall config is %q (%d commits), want the include gone", l, u.commits(t))
		}
	}
}

// TestIPKLuci checks the LuCI package built from luci-app-natmap/ (when the
// directory exists): every file of htdocs/ under /www, of root/ under /.
func TestIPKLuci(t *testing.T) {
	dir := built(t)
	m := ipkFiles(t, dir, "luci-app-natmap_*.ipk")
	src := "../luci-app-natmap"
	if !fileExists(src) {
		if len(m) != 0 {
			t.Errorf("luci-app-natmap built without its directory: %q", m)
		}
		t.Skip("no luci-app-natmap/")
	}
	if len(m) != 1 {
		t.Fatalf("luci packages %q", m)
	}
	p := openIPK(t, m[0])
	checkCommon(t, p, "luci-app-natmap", "all")
	// Translations, compiled with the repository's po2lmo.
	lmo := map[string]string{}
	pos, _ := filepath.Glob(filepath.Join(src, "po", "*", "*.po"))
	for _, po := range pos {
		f, err := os.Open(po)
		if err != nil {
			t.Fatal(err)
		}
		cat, err := po2lmo.ParsePO(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", po, err)
		}
		b, err := po2lmo.Compile(cat)
		if errors.Is(err, po2lmo.ErrEmpty) {
			continue // nothing translated: po2lmo writes no file
		}
		if err != nil {
			t.Fatalf("%s: %v", po, err)
		}
		lmo[lmoPath(po)] = string(b)
	}
	checkLuciData(t, p, src, lmo)
}

// lmoPath is where luci.mk puts po/LANG/NAME.po: NAME.CODE.lmo, CODE
// being LuCI's code for the language.
func lmoPath(po string) string {
	lang := filepath.Base(filepath.Dir(po))
	alias := map[string]string{"bn_BD": "bn", "nb_NO": "no", "pt_BR": "pt-br", "zh_Hans": "zh-cn", "zh_Hant": "zh-tw"}
	if a, ok := alias[lang]; ok {
		lang = a
	}
	return "./usr/lib/lua/luci/i18n/" + strings.TrimSuffix(filepath.Base(po), ".po") + "." + lang + ".lmo"
}

// checkLuciData checks the LuCI package's data: src's htdocs/ under /www,
// root/ under /, and the translations lmo (path: content).
func checkLuciData(t *testing.T, p *ipk, src string, lmo map[string]string) {
	t.Helper()
	if d := p.fields["Depends"]; d != "luci-base, natmap" {
		t.Errorf("Depends %q", d)
	}
	if p.fields["Section"] != "luci" {
		t.Errorf("Section %q", p.fields["Section"])
	}
	want := map[string]string{}
	for from, to := range map[string]string{"htdocs": "./www/", "root": "./"} {
		base := filepath.Join(src, from)
		filepath.WalkDir(base, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(base, path)
			want[to+filepath.ToSlash(rel)] = path
			return nil
		})
	}
	got := map[string]bool{}
	for _, m := range p.data {
		if m.hdr.Typeflag != tar.TypeReg {
			if mode := m.hdr.FileInfo().Mode(); mode != fs.ModeDir|0o755 {
				t.Errorf("%s: mode %v", m.hdr.Name, mode)
			}
			continue
		}
		got[m.hdr.Name] = true
		if want, ok := lmo[m.hdr.Name]; ok {
			if string(m.data) != want {
				t.Errorf("%s is not its .po compiled", m.hdr.Name)
			}
			if mode := m.hdr.FileInfo().Mode(); mode != 0o644 {
				t.Errorf("%s: mode %v", m.hdr.Name, mode)
			}
			continue
		}
		path, ok := want[m.hdr.Name]
		if !ok {
			t.Errorf("%s: not from %s", m.hdr.Name, src)
			continue
		}
		fi, _ := os.Stat(path)
		wantMode := fs.FileMode(0o644)
		switch {
		case strings.HasPrefix(m.hdr.Name, "./etc/config/"):
			wantMode = 0o600
		case fi.Mode()&0o111 != 0:
			wantMode = 0o755
		}
		if mode := m.hdr.FileInfo().Mode(); mode != wantMode {
			t.Errorf("%s: mode %v, want %v", m.hdr.Name, mode, wantMode)
		}
		if string(m.data) != readFile(t, path) {
			t.Errorf("%s differs from %s", m.hdr.Name, path)
		}
	}
	for name := range want {
		if !got[name] {
			t.Errorf("%s is missing", name)
		}
	}
	for name := range lmo {
		if !got[name] {
			t.Errorf("translation %s is missing", name)
		}
	}
}

const luciFixtureMakefile = `include $(TOPDIR)/rules.mk

LUCI_TITLE:=LuCI support for natmap
LUCI_DESCRIPTION:=Mappings and their status.
LUCI_DEPENDS:=+natmap
LUCI_PKGARCH:=all

include ../../luci.mk
`

// A LuCI app with translations, a config file and an executable, built
// twice: same bytes.
func TestIPKLuciFixtureReproducible(t *testing.T) {
	luci := t.TempDir()
	writeFile(t, filepath.Join(luci, "Makefile"), luciFixtureMakefile, 0o644)
	writeFile(t, filepath.Join(luci, "htdocs/luci-static/resources/view/natmap.js"), "'use strict';\n", 0o644)
	writeFile(t, filepath.Join(luci, "root/usr/share/rpcd/acl.d/luci-app-natmap.json"), "{}\n", 0o644)
	writeFile(t, filepath.Join(luci, "root/etc/uci-defaults/40_luci-natmap"), "#!/bin/sh\nexit 0\n", 0o755)
	writeFile(t, filepath.Join(luci, "root/etc/config/natmap-luci"), "config x\n", 0o644)
	writeFile(t, filepath.Join(luci, "po/zh_Hans/natmap.po"), "msgid \"\"\nmsgstr \"zh\"\n", 0o644)
	writeFile(t, filepath.Join(luci, "po/de/natmap.po"), "msgid \"\"\nmsgstr \"de\"\n", 0o644)
	writeFile(t, filepath.Join(luci, "po/templates/natmap.pot"), "msgid \"\"\nmsgstr \"\"\n", 0o644)
	po2lmo := filepath.Join(t.TempDir(), "po2lmo")
	writeFile(t, po2lmo, "#!/bin/sh\ncp \"$1\" \"$2\"\n", 0o755)

	env := []string{"LUCI_DIR=" + luci, "PO2LMO=" + po2lmo, "SOURCE_DATE_EPOCH=1700000000", "IPK_VERSION=v1.2.3", "IPK_RELEASE=4"}
	var sums []string
	for i := 0; i < 2; i++ {
		dir, out, err := ipkScript(t, env, "x86_64")
		defer os.RemoveAll(dir)
		if err != nil {
			t.Fatalf("scripts/ipk.sh: %v\n%s", err, out)
		}
		var sum strings.Builder
		for _, f := range []string{"natmap_1.2.3-r4_x86_64.ipk", "luci-app-natmap_1.2.3-r4_all.ipk"} {
			b, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&sum, "%x %s\n", sha256.Sum256(b), f)
		}
		sums = append(sums, sum.String())
		if i > 0 {
			continue
		}
		p := openIPK(t, filepath.Join(dir, "luci-app-natmap_1.2.3-r4_all.ipk"))
		checkCommon(t, p, "luci-app-natmap", "all")
		checkLuciData(t, p, luci, map[string]string{ // the fake po2lmo copies
			"./usr/lib/lua/luci/i18n/natmap.zh-cn.lmo": "msgid \"\"\nmsgstr \"zh\"\n",
			"./usr/lib/lua/luci/i18n/natmap.de.lmo":    "msgid \"\"\nmsgstr \"de\"\n",
		})
		if p.fields["SourceDateEpoch"] != "1700000000" || p.fields["Source"] != filepath.Base(luci) {
			t.Errorf("fields %v", p.fields)
		}
		if d := p.fields["Description"]; d != "LuCI support for natmap\nMappings and their status." {
			t.Errorf("Description %q", d)
		}
		if c, _ := p.controlFile("conffiles"); string(c.data) != "/etc/config/natmap-luci\n" {
			t.Errorf("conffiles %q", c.data)
		}
		if sums, err := os.ReadFile(filepath.Join(dir, "sha256sums")); err != nil || !strings.Contains(string(sums), "luci-app-natmap_1.2.3-r4_all.ipk") {
			t.Errorf("sha256sums: %q %v", sums, err)
		}
	}
	if sums[0] != sums[1] {
		t.Errorf("two builds differ:\n%s\n%s", sums[0], sums[1])
	}
}

func TestIPKScriptRejects(t *testing.T) {
	for name, c := range map[string]struct {
		env  []string
		args []string
	}{
		"bad version":  {[]string{"IPK_VERSION=1 beta"}, []string{"x86_64"}},
		"unknown arch": {nil, []string{"sparc"}},
		"bad epoch":    {[]string{"SOURCE_DATE_EPOCH=yesterday"}, []string{"x86_64"}},
	} {
		dir, out, err := ipkScript(t, c.env, c.args...)
		os.RemoveAll(dir)
		if err == nil {
			t.Errorf("%s: accepted\n%s", name, out)
		}
	}
}
