package openwrt_test

// Tests of the apk v3 packages `make apk` builds (scripts/ipk.sh -f apk),
// read with a decoder written here from apk-tools' format description
// (doc/apk-v3.5, src/adb.h, src/apk_adb.h), not with internal/pkgtools/apk.

import (
	"archive/tar"
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// adb is a decoded ADB block.
type adb struct {
	t   *testing.T
	buf []byte
}

const (
	vSpecial = 0x0
	vInt     = 0x1
	vInt32   = 0x2
	vInt64   = 0x3
	vBlob8   = 0x8
	vBlob16  = 0x9
	vBlob32  = 0xa
	vArray   = 0xd
	vObject  = 0xe
)

func (a *adb) at(off, n, align int, what string) []byte {
	a.t.Helper()
	if off%align != 0 {
		a.t.Errorf("%s at %d: not %d-aligned", what, off, align)
	}
	if off < 8 || off+n > len(a.buf) {
		a.t.Fatalf("%s at %d+%d: outside the %d-byte database", what, off, n, len(a.buf))
	}
	return a.buf[off : off+n]
}

func (a *adb) blob(v uint32) []byte {
	a.t.Helper()
	off := int(v & (1<<28 - 1))
	switch v >> 28 {
	case vSpecial:
		if v != 0 {
			a.t.Errorf("special value %#x where a blob or null belongs", v)
		}
		return nil
	case vBlob8:
		n := int(a.at(off, 1, 1, "blob8")[0])
		return a.at(off+1, n, 1, "blob8 data")
	case vBlob16:
		n := int(binary.LittleEndian.Uint16(a.at(off, 2, 2, "blob16")))
		return a.at(off+2, n, 1, "blob16 data")
	case vBlob32:
		n := int(binary.LittleEndian.Uint32(a.at(off, 4, 4, "blob32")))
		return a.at(off+4, n, 1, "blob32 data")
	}
	a.t.Fatalf("value %#x is not a blob", v)
	return nil
}

func (a *adb) str(v uint32) string { return string(a.blob(v)) }

func (a *adb) int(v uint32) uint64 {
	a.t.Helper()
	off := int(v & (1<<28 - 1))
	switch v >> 28 {
	case vSpecial:
		return 0
	case vInt:
		return uint64(off)
	case vInt32:
		return uint64(binary.LittleEndian.Uint32(a.at(off, 4, 4, "int32")))
	case vInt64:
		return binary.LittleEndian.Uint64(a.at(off, 8, 4, "int64"))
	}
	a.t.Fatalf("value %#x is not an integer", v)
	return 0
}

// obj returns an object's or array's slots, slot i at index i (slot 0, the
// count, included); null is an empty object.
func (a *adb) obj(v uint32) []uint32 {
	a.t.Helper()
	if v == 0 {
		return []uint32{1}
	}
	if k := v >> 28; k != vObject && k != vArray {
		a.t.Fatalf("value %#x is not an object or array", v)
	}
	off := int(v & (1<<28 - 1))
	n := int(binary.LittleEndian.Uint32(a.at(off, 4, 4, "object")))
	if n < 2 {
		a.t.Errorf("object at %d: %d slots (a stored object has a value)", off, n)
	}
	raw := a.at(off, 4*n, 4, "object")
	slots := make([]uint32, n)
	for i := range slots {
		slots[i] = binary.LittleEndian.Uint32(raw[4*i:])
	}
	if slots[n-1] == 0 {
		a.t.Errorf("object at %d ends with null (apk cuts trailing nulls)", off)
	}
	return slots
}

// field is slot i of an object, or null.
func field(o []uint32, i int) uint32 {
	if i < len(o) {
		return o[i]
	}
	return 0
}

// apkEntry is one path of a package's tree.
type apkEntry struct {
	dir         bool
	mode        uint64
	user, group string
	size        uint64
	mtime       uint64
	sum         []byte
	data        []byte // from the DATA block
}

// apkPkg is a decoded package.
type apkPkg struct {
	file       string
	compressed bool
	db         *adb
	info       map[string]string
	depends    []string
	provides   []string
	installed  uint64
	hashes     []byte
	hashOff    int
	scripts    map[string]string
	paths      map[string]*apkEntry // "./etc/", "./etc/config/natmap"
	order      []string
}

var scriptSlots = []string{"", "trigger", "pre-install", "post-install", "pre-deinstall", "post-deinstall", "pre-upgrade", "post-upgrade"}

func openAPK(t *testing.T, path string) *apkPkg {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p := &apkPkg{file: filepath.Base(path), info: map[string]string{}, scripts: map[string]string{}, paths: map[string]*apkEntry{}}
	if bytes.HasPrefix(raw, []byte("ADBd")) {
		p.compressed = true
		if raw, err = io.ReadAll(flate.NewReader(bytes.NewReader(raw[4:]))); err != nil {
			t.Fatalf("%s: inflate: %v", p.file, err)
		}
	}
	if len(raw) < 8 || string(raw[:4]) != "ADB." || string(raw[4:8]) != "pckg" {
		t.Fatalf("%s: header %q, want ADB.pckg", p.file, raw[:min(8, len(raw))])
	}
	// Blocks: ADB first, then DATA (no SIG: unsigned), each padded to 8.
	type blk struct {
		typ  uint32
		body []byte
	}
	var blocks []blk
	for off := 8; off < len(raw); {
		if off+4 > len(raw) {
			t.Fatalf("%s: truncated block header at %d", p.file, off)
		}
		w := binary.LittleEndian.Uint32(raw[off:])
		typ, size := w>>30, int(w&0x3fffffff)
		if typ == 3 || size < 4 || off+size > len(raw) {
			t.Fatalf("%s: block at %d: type %d size %d", p.file, off, typ, size)
		}
		blocks = append(blocks, blk{typ, raw[off+4 : off+size]})
		next := off + (size+7)&^7
		if next > len(raw) {
			t.Fatalf("%s: block at %d: padding past the end", p.file, off)
		}
		if !bytes.Equal(raw[off+size:next], make([]byte, next-off-size)) {
			t.Errorf("%s: block at %d: padding not zero", p.file, off)
		}
		off = next
	}
	if len(blocks) == 0 || blocks[0].typ != 0 {
		t.Fatalf("%s: no ADB block first", p.file)
	}
	for i, b := range blocks[1:] {
		if b.typ != 2 {
			t.Fatalf("%s: block %d has type %d, want DATA (2)", p.file, i+1, b.typ)
		}
	}
	a := &adb{t: t, buf: blocks[0].body}
	p.db = a
	if len(a.buf) < 8 || a.buf[0] != 0 || a.buf[1] != 0 {
		t.Fatalf("%s: ADB header % x, want compat 0 version 0", p.file, a.buf[:min(8, len(a.buf))])
	}
	pkg := a.obj(binary.LittleEndian.Uint32(a.buf[4:]))
	info := a.obj(field(pkg, 1))
	names := []string{"", "name", "version", "hashes", "description", "arch", "license", "origin", "maintainer", "url",
		"repo-commit", "build-time", "installed-size", "file-size", "provider-priority", "depends", "provides"}
	for i, n := range names {
		switch n {
		case "", "hashes", "build-time", "installed-size", "file-size", "provider-priority", "depends", "provides", "repo-commit":
		default:
			if v := field(info, i); v != 0 {
				p.info[n] = a.str(v)
			}
		}
	}
	if len(info) > 17 {
		t.Errorf("%s: info fields past provides: %d slots", p.file, len(info))
	}
	p.installed = a.int(field(info, 12))
	if h := field(info, 3); h != 0 {
		p.hashes = a.blob(h)
		p.hashOff = int(h&(1<<28-1)) + 1
	}
	deps := func(v uint32) (out []string) {
		arr := a.obj(v)
		for _, d := range arr[1:] {
			dep := a.obj(d)
			if len(dep) != 2 {
				t.Errorf("%s: dependency with a version or match: %v", p.file, dep)
			}
			out = append(out, a.str(field(dep, 1)))
		}
		return out
	}
	p.depends, p.provides = deps(field(info, 15)), deps(field(info, 16))

	scripts := a.obj(field(pkg, 3))
	for i := 1; i < len(scripts); i++ {
		if scripts[i] != 0 {
			p.scripts[scriptSlots[i]] = a.str(scripts[i])
		}
	}
	if len(pkg) > 4 {
		t.Errorf("%s: package fields past scripts (triggers...): %d slots", p.file, len(pkg))
	}

	acl := func(e *apkEntry, v uint32) {
		o := a.obj(v)
		e.mode, e.user, e.group = a.int(field(o, 1)), a.str(field(o, 2)), a.str(field(o, 3))
		if len(o) > 4 {
			t.Errorf("%s: xattrs", p.file)
		}
	}
	// Directories sorted by name (bytewise, the root "" first), files in
	// each sorted by name: the order apk expects the DATA blocks in.
	type want struct{ dir, file int }
	var expect []want
	var dataOf []*apkEntry
	dirs := a.obj(field(pkg, 2))
	prevDir := ""
	for di := 1; di < len(dirs); di++ {
		d := a.obj(dirs[di])
		name := a.str(field(d, 1))
		if di > 1 && name <= prevDir {
			t.Errorf("%s: directory %q after %q: not sorted", p.file, name, prevDir)
		}
		if di == 1 && name != "" {
			t.Errorf("%s: first directory %q, want the root", p.file, name)
		}
		prevDir = name
		key := "./"
		if name != "" {
			key = "./" + name + "/"
		}
		e := &apkEntry{dir: true}
		acl(e, field(d, 2))
		p.paths[key] = e
		p.order = append(p.order, key)
		files := a.obj(field(d, 3))
		prev := ""
		for fi := 1; fi < len(files); fi++ {
			f := a.obj(files[fi])
			fname := a.str(field(f, 1))
			if fi > 1 && fname <= prev {
				t.Errorf("%s: %s/%s after %s: not sorted", p.file, name, fname, prev)
			}
			prev = fname
			fe := &apkEntry{size: a.int(field(f, 3)), mtime: a.int(field(f, 4)), sum: a.blob(field(f, 5))}
			acl(fe, field(f, 2))
			if field(f, 6) != 0 {
				t.Errorf("%s: %s/%s has a target (link or device)", p.file, name, fname)
			}
			path := key + fname
			p.paths[path] = fe
			p.order = append(p.order, path)
			if fe.size > 0 {
				expect = append(expect, want{di, fi})
				dataOf = append(dataOf, fe)
			}
		}
	}
	if len(blocks)-1 != len(expect) {
		t.Fatalf("%s: %d DATA blocks for %d non-empty files", p.file, len(blocks)-1, len(expect))
	}
	for i, b := range blocks[1:] {
		if len(b.body) < 8 {
			t.Fatalf("%s: DATA block %d too short", p.file, i)
		}
		di, fi := binary.LittleEndian.Uint32(b.body), binary.LittleEndian.Uint32(b.body[4:])
		if int(di) != expect[i].dir || int(fi) != expect[i].file {
			t.Errorf("%s: DATA block %d for %d/%d, want %d/%d", p.file, i, di, fi, expect[i].dir, expect[i].file)
		}
		dataOf[i].data = b.body[8:]
	}
	return p
}

// apkVersion is scripts/ipk.sh's mapping of an ipk version onto apk's
// grammar, redone here.
func apkVersion(ipkVersion string) string {
	v := strings.Replace(ipkVersion, ".dirty-r", "-r", 1)
	if m := regexp.MustCompile(`^(.*)\+git([0-9]+)\.([0-9a-f]+)(-r[0-9]+)$`).FindStringSubmatch(v); m != nil {
		v = m[1] + "_git" + m[2] + "~" + m[3] + m[4]
	}
	return v
}

// apk-tools doc/apk-package.5: number{.number}...{letter}{_suffix{number}}...{~hash}{-r#}
var apkVersionRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*[a-z]?(_(alpha|beta|pre|rc|cvs|svn|git|hg|p)[0-9]*)*(~[0-9a-f]+)?-r[0-9]+$`)

// checkAPKMatchesIPK checks an apk against the ipk of the same package:
// the same files (contents, modes, root-owned), OpenWrt's
// lib/apk/packages/NAME.* files, the same metadata and equivalent scripts.
func checkAPKMatchesIPK(t *testing.T, p *apkPkg, q *ipk, name, arch string) {
	t.Helper()
	if !p.compressed {
		t.Errorf("%s: not compressed (apk mkpkg compresses)", p.file)
	}
	f := q.fields
	version := apkVersion(f["Version"])
	if !apkVersionRE.MatchString(version) {
		t.Errorf("%s: version %q is not an apk version", p.file, version)
	}
	if want := fmt.Sprintf("%s_%s_%s.apk", name, version, arch); p.file != want {
		t.Errorf("file %s, want %s", p.file, want)
	}
	desc := strings.Join(strings.Fields(f["Description"]), " ")
	wantInfo := map[string]string{"name": name, "version": version, "arch": arch, "description": desc,
		"license": f["License"], "origin": f["Source"], "url": f["URL"], "maintainer": f["Maintainer"]}
	for k, v := range wantInfo {
		if p.info[k] != v {
			t.Errorf("%s: %s %q, want %q", p.file, k, p.info[k], v)
		}
	}
	if len(p.info) != len(wantInfo) {
		t.Errorf("%s: info %q", p.file, p.info)
	}
	if want := strings.Split(f["Depends"], ", "); !slices.Equal(p.depends, want) {
		t.Errorf("%s: depends %q, want %q", p.file, p.depends, want)
	}
	if want := []string{name + "-any"}; !slices.Equal(p.provides, want) {
		t.Errorf("%s: provides %q, want %q (OpenWrt's implicit virtual provide)", p.file, p.provides, want)
	}
	// The unique id: SHA-256 of the database with it zeroed, cut to 20.
	if len(p.hashes) != 20 {
		t.Errorf("%s: hashes %x", p.file, p.hashes)
	} else {
		db := slices.Clone(p.db.buf)
		copy(db[p.hashOff:], make([]byte, 20))
		if sum := sha256.Sum256(db); !bytes.Equal(sum[:20], p.hashes) {
			t.Errorf("%s: hashes %x, want %x", p.file, p.hashes, sum[:20])
		}
	}

	epoch := f["SourceDateEpoch"]
	var installed uint64
	wantPaths := map[string]bool{}
	var listed []string
	for _, m := range q.data {
		wantPaths[m.hdr.Name] = true
		e, ok := p.paths[m.hdr.Name]
		if !ok {
			t.Errorf("%s: no %s (in the ipk)", p.file, m.hdr.Name)
			continue
		}
		if mode := fs.FileMode(e.mode); mode != m.hdr.FileInfo().Mode().Perm() {
			t.Errorf("%s: %s mode %o, ipk %v", p.file, m.hdr.Name, e.mode, m.hdr.FileInfo().Mode())
		}
		if m.hdr.Typeflag != tar.TypeReg {
			continue
		}
		listed = append(listed, strings.TrimPrefix(m.hdr.Name, "."))
		sum := sha256.Sum256(m.data)
		if !bytes.Equal(e.sum, sum[:]) || e.size != uint64(len(m.data)) || !bytes.Equal(e.data, m.data) {
			t.Errorf("%s: %s: size %d hash %x, ipk's %d bytes differ", p.file, m.hdr.Name, e.size, e.sum, len(m.data))
		}
	}
	// OpenWrt's files: the file list (default_postinst reads it), the
	// conffiles and their checksums.
	pk := "./lib/apk/packages/"
	extra := map[string]string{pk + name + ".list": ""}
	for _, d := range []string{"./lib/", "./lib/apk/", pk} {
		wantPaths[d] = true
	}
	slices.Sort(listed)
	extra[pk+name+".list"] = strings.Join(listed, "\n") + "\n"
	if c, ok := q.controlFile("conffiles"); ok {
		extra[pk+name+".conffiles"] = string(c.data)
		var static strings.Builder
		for _, cf := range strings.Fields(string(c.data)) {
			m, _ := q.dataFile("." + cf)
			fmt.Fprintf(&static, "%s %x\n", cf, sha256.Sum256(m.data))
		}
		extra[pk+name+".conffiles_static"] = static.String()
	}
	for path, content := range extra {
		wantPaths[path] = true
		e, ok := p.paths[path]
		if !ok {
			t.Errorf("%s: no %s", p.file, path)
			continue
		}
		if string(e.data) != content || e.mode != 0o644 {
			t.Errorf("%s: %s (mode %o):\n%s\nwant:\n%s", p.file, path, e.mode, e.data, content)
		}
	}
	for _, path := range p.order {
		e := p.paths[path]
		if !wantPaths[path] {
			t.Errorf("%s: %s is not in the ipk", p.file, path)
		}
		if e.user != "root" || e.group != "root" {
			t.Errorf("%s: %s owned by %s:%s", p.file, path, e.user, e.group)
		}
		if e.dir {
			if e.mode != 0o755 {
				t.Errorf("%s: %s mode %o", p.file, path, e.mode)
			}
			continue
		}
		installed += e.size
		if fmt.Sprint(e.mtime) != epoch {
			t.Errorf("%s: %s mtime %d, want SourceDateEpoch %s", p.file, path, e.mtime, epoch)
		}
		if sum := sha256.Sum256(e.data); !bytes.Equal(sum[:], e.sum) || uint64(len(e.data)) != e.size {
			t.Errorf("%s: %s: DATA block does not match its size and hash", p.file, path)
		}
	}
	if p.installed != installed {
		t.Errorf("%s: installed-size %d, want %d (the files' sizes)", p.file, p.installed, installed)
	}

	// Scripts, as OpenWrt 25's package-pack.mk writes them.
	body := func(script string) string {
		c, ok := q.controlFile(script)
		if !ok {
			return ""
		}
		var out []string
		for _, l := range strings.SplitAfter(string(c.data), "\n") {
			if !strings.HasPrefix(strings.TrimSpace(l), "#!") {
				out = append(out, l)
			}
		}
		return strings.Join(out, "")
	}
	postinst := `#!/bin/sh
[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s "${IPKG_INSTROOT}/lib/functions.sh" ] || exit 0
. "${IPKG_INSTROOT}/lib/functions.sh"
export root="${IPKG_INSTROOT}"
export pkgname="` + name + `"
add_group_and_user
default_postinst
` + body("postinst-pkg")
	prerm := `#!/bin/sh
[ -s "${IPKG_INSTROOT}/lib/functions.sh" ] || exit 0
. "${IPKG_INSTROOT}/lib/functions.sh"
export root="${IPKG_INSTROOT}"
export pkgname="` + name + `"
default_prerm
` + body("prerm-pkg")
	want := map[string]string{
		"post-install":  postinst,
		"post-upgrade":  "#!/bin/sh\nexport PKG_UPGRADE=1\n" + strings.TrimPrefix(postinst, "#!/bin/sh\n"),
		"pre-deinstall": prerm,
	}
	if c, ok := q.controlFile("postrm"); ok {
		want["post-deinstall"] = string(c.data)
	}
	for k, v := range want {
		if p.scripts[k] != v {
			t.Errorf("%s: %s:\n%s\nwant:\n%s", p.file, k, p.scripts[k], v)
		}
	}
	if len(p.scripts) != len(want) {
		t.Errorf("%s: scripts %q", p.file, slices.Sorted(func(yield func(string) bool) {
			for k := range p.scripts {
				if !yield(k) {
					return
				}
			}
		}))
	}
}

func apkFor(t *testing.T, dir, name, arch string) *apkPkg {
	t.Helper()
	m := ipkFiles(t, dir, name+"_*_"+arch+".apk")
	if len(m) != 1 {
		t.Fatalf("apk packages for %s %s: %q", name, arch, m)
	}
	return openAPK(t, m[0])
}

func TestAPKNatmap(t *testing.T) {
	dir := built(t)
	if m := ipkFiles(t, dir, "natmap_*.apk"); len(m) != len(arches) {
		t.Fatalf("natmap apks %q, want one per arch (%d)", m, len(arches))
	}
	for _, a := range arches {
		t.Run(a.name, func(t *testing.T) {
			q := openIPK(t, ipkFiles(t, dir, "natmap_*_"+a.name+".ipk")[0])
			p := apkFor(t, dir, "natmap", a.name)
			checkAPKMatchesIPK(t, p, q, "natmap", a.name)
			bin := p.paths["./usr/bin/natmap"]
			if bin == nil {
				t.Fatal("no /usr/bin/natmap")
			}
			checkBinary(t, bin.data, a.machine, a.class, a.order, a.goarch, a.goSetting, q.fields["Version"])
			size := fileSize(t, filepath.Join(dir, p.file))
			t.Logf("%s: %d bytes, installed %d", p.file, size, p.installed)
			if a.name == "mipsel_24kc" && size > maxMipselIPK {
				t.Errorf("%s: %d bytes, over the %d-byte (1.5 MiB) budget", p.file, size, maxMipselIPK)
			}
		})
	}
}

func TestAPKLuci(t *testing.T) {
	dir := built(t)
	if !fileExists("../luci-app-natmap") {
		t.Skip("no luci-app-natmap/")
	}
	q := openIPK(t, ipkFiles(t, dir, "luci-app-natmap_*_all.ipk")[0])
	checkAPKMatchesIPK(t, apkFor(t, dir, "luci-app-natmap", "noarch"), q, "luci-app-natmap", "noarch")
}

// TestAPKScripts runs the apk scripts at image build time (IPKG_INSTROOT
// set) against a stand-in lib/functions.sh: the generic steps run for the
// right package, nothing else; and parses them with every shell.
func TestAPKScripts(t *testing.T) {
	dir := built(t)
	for _, pkg := range []struct{ name, arch string }{{"natmap", "x86_64"}, {"luci-app-natmap", "noarch"}} {
		if pkg.name == "luci-app-natmap" && !fileExists("../luci-app-natmap") {
			continue
		}
		p := apkFor(t, dir, pkg.name, pkg.arch)
		for _, sh := range shells(t) {
			t.Run(pkg.name+"/"+shellName(sh), func(t *testing.T) {
				root := t.TempDir()
				rec := newRecorder(t)
				for _, cmd := range []string{"killall", "uci", "rm", "logger", "ubus"} {
					rec.stub(t, cmd, "exit 0")
				}
				log := filepath.Join(root, "calls")
				writeFile(t, filepath.Join(root, "lib/functions.sh"), `
add_group_and_user() { echo "add_group_and_user $pkgname $root" >>`+shq(log)+`; }
default_postinst() { echo "default_postinst $pkgname $root $PKG_UPGRADE" >>`+shq(log)+`; }
default_prerm() { echo "default_prerm $pkgname $root" >>`+shq(log)+`; }
`, 0o644)
				for _, s := range []string{"post-install", "post-upgrade", "pre-deinstall", "post-deinstall"} {
					if _, stderr, code := run(t, nil, p.scripts[s], sh[0], append(sh[1:], "-n")...); code != 0 {
						t.Errorf("%s -n %s: %s", shellName(sh), s, stderr)
					}
					path := filepath.Join(t.TempDir(), s)
					writeFile(t, path, p.scripts[s], 0o755)
					if _, stderr, code := run(t, []string{rec.path(), "IPKG_INSTROOT=" + root}, "", sh[0], append(sh[1:], path)...); code != 0 {
						t.Errorf("%s under IPKG_INSTROOT exited %d: %s", s, code, stderr)
					}
				}
				want := fmt.Sprintf("add_group_and_user %[1]s %[2]s\ndefault_postinst %[1]s %[2]s \n"+
					"add_group_and_user %[1]s %[2]s\ndefault_postinst %[1]s %[2]s 1\ndefault_prerm %[1]s %[2]s\n", pkg.name, root)
				if got := readFile(t, log); got != want {
					t.Errorf("calls:\n%s\nwant:\n%s", got, want)
				}
				if c := rec.calls(t); len(c) != 0 {
					t.Errorf("commands run at image build time: %q", c)
				}
			})
		}
	}
}

// Two builds from the same sources give the same bytes; the LuCI fixture's
// apk has its conffiles.
func TestAPKReproducible(t *testing.T) {
	luci := t.TempDir()
	writeFile(t, filepath.Join(luci, "Makefile"), luciFixtureMakefile, 0o644)
	writeFile(t, filepath.Join(luci, "htdocs/luci-static/resources/view/natmap.js"), "'use strict';\n", 0o644)
	writeFile(t, filepath.Join(luci, "root/etc/config/natmap-luci"), "config x\n", 0o644)
	env := []string{"LUCI_DIR=" + luci, "SOURCE_DATE_EPOCH=1700000000", "IPK_VERSION=v1.2.3", "IPK_RELEASE=4"}
	var sums []string
	for i := 0; i < 2; i++ {
		dir, out, err := ipkScript(t, env, "-f", "apk", "x86_64")
		defer os.RemoveAll(dir)
		if err != nil {
			t.Fatalf("scripts/ipk.sh -f apk: %v\n%s", err, out)
		}
		if m := ipkFiles(t, dir, "*.ipk"); len(m) != 0 {
			t.Errorf("-f apk built ipks: %q", m)
		}
		var sum strings.Builder
		for _, f := range []string{"natmap_1.2.3-r4_x86_64.apk", "luci-app-natmap_1.2.3-r4_noarch.apk"} {
			b, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&sum, "%x %s\n", sha256.Sum256(b), f)
		}
		sums = append(sums, sum.String())
		if i == 0 {
			p := openAPK(t, filepath.Join(dir, "luci-app-natmap_1.2.3-r4_noarch.apk"))
			cf := p.paths["./lib/apk/packages/luci-app-natmap.conffiles"]
			if cf == nil || string(cf.data) != "/etc/config/natmap-luci\n" {
				t.Errorf("conffiles %v", cf)
			}
			if e := p.paths["./etc/config/natmap-luci"]; e == nil || e.mode != 0o600 || e.mtime != 1700000000 {
				t.Errorf("config %+v", e)
			}
			if got := readFile(t, filepath.Join(dir, "sha256sums")); !strings.Contains(got, "luci-app-natmap_1.2.3-r4_noarch.apk") {
				t.Errorf("sha256sums:\n%s", got)
			}
		}
	}
	if sums[0] != sums[1] {
		t.Errorf("two builds differ:\n%s\n%s", sums[0], sums[1])
	}
}

// Versions apk cannot take are refused (before anything is built), unless
// APK_VERSION says what to use.
func TestAPKVersionRejected(t *testing.T) {
	dir, out, err := ipkScript(t, []string{"IPK_VERSION=1.2.3~rc1"}, "-f", "apk", "x86_64")
	os.RemoveAll(dir)
	if err == nil || !strings.Contains(out, "APK_VERSION") {
		t.Errorf("IPK_VERSION=1.2.3~rc1: %v\n%s", err, out)
	}
	dir, out, err = ipkScript(t, nil, "-f", "deb")
	os.RemoveAll(dir)
	if err == nil {
		t.Errorf("-f deb accepted\n%s", out)
	}
}

// TestAPKTools checks the packages with the real apk-tools v3 (the one
// APK_TOOLS_BIN names, else the OpenWrt lab's): adbdump, verify (unsigned:
// with --allow-untrusted), install into a scratch root, list, remove; and
// that cmd/mkapk writes what `apk mkpkg` writes for the same tree.
func TestAPKTools(t *testing.T) {
	apk := apkTools(t)
	dir := built(t)
	natmap := apkFor(t, dir, "natmap", "x86_64")
	pkgs := []string{filepath.Join(dir, natmap.file)}
	if m := ipkFiles(t, dir, "luci-app-natmap_*_noarch.apk"); len(m) == 1 {
		pkgs = append(pkgs, m[0])
	}
	apkRun := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(apk, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("apk %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	for _, p := range pkgs {
		dump := apkRun("adbdump", p)
		if !strings.Contains(dump, "#%SCHEMA: 676B6370") || !strings.Contains(dump, "post-install: |") {
			t.Errorf("adbdump %s:\n%s", p, dump)
		}
		apkRun("verify", "--allow-untrusted", p)
		if out, err := exec.Command(apk, "verify", p).CombinedOutput(); err == nil || !strings.Contains(string(out), "UNTRUSTED") {
			t.Errorf("apk verify of an unsigned package: %v %s", err, out)
		}
	}

	// Stand-ins for the dependencies, built with mkapk.
	mkapk := filepath.Join(t.TempDir(), "mkapk")
	build := exec.Command("go", "build", "-o", mkapk, "../cmd/mkapk") // go test puts its go first in PATH
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build cmd/mkapk: %v\n%s", err, out)
	}
	empty := t.TempDir()
	stubs := t.TempDir()
	for _, n := range append(natmap.depends, "luci-base") {
		out, err := exec.Command(mkapk, "--info", "name:"+n, "--info", "version:1-r1", "--info", "arch:noarch",
			"--files", empty, "--output", filepath.Join(stubs, n+".apk")).CombinedOutput()
		if err != nil {
			t.Fatalf("mkapk %s: %v\n%s", n, err, out)
		}
		pkgs = append([]string{filepath.Join(stubs, n+".apk")}, pkgs...)
	}
	root := t.TempDir()
	apkRun(append([]string{"--root", root, "--initdb", "--allow-untrusted", "--no-scripts", "--arch", "x86_64", "add"}, pkgs...)...)
	for path, e := range natmap.paths {
		fi, err := os.Lstat(filepath.Join(root, path))
		if err != nil {
			t.Errorf("installed: %v", err)
			continue
		}
		if uint64(fi.Mode().Perm()) != e.mode || (!e.dir && fi.Size() != int64(e.size)) {
			t.Errorf("installed %s: %v %d bytes, package %o %d", path, fi.Mode(), fi.Size(), e.mode, e.size)
		}
	}
	list := apkRun("--root", root, "info", "-L", "natmap")
	for _, f := range []string{"usr/bin/natmap", "etc/config/natmap", "lib/apk/packages/natmap.list"} {
		if !strings.Contains(list, "\n"+f+"\n") {
			t.Errorf("info -L natmap lacks %s:\n%s", f, list)
		}
	}
	if info := apkRun("--root", root, "info", "-a", "natmap"); !strings.Contains(info, "natmap-any") {
		t.Errorf("info -a natmap:\n%s", info)
	}
	apkRun("--root", root, "--no-scripts", "del", "luci-app-natmap", "natmap")
	if fileExists(filepath.Join(root, "usr/bin/natmap")) {
		t.Error("usr/bin/natmap left after apk del")
	}

	// mkapk and apk mkpkg write the same package, but for the compression.
	tree := t.TempDir()
	writeFile(t, filepath.Join(tree, "usr/bin/tool"), "#!/bin/sh\necho hi\n", 0o755)
	writeFile(t, filepath.Join(tree, "etc/config/tool"), "config tool\n", 0o600)
	writeFile(t, filepath.Join(tree, "usr/share/tool/empty"), "", 0o644)
	if err := os.Symlink("../bin/tool", filepath.Join(tree, "usr/share/tool/link")); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(t.TempDir(), "post-install")
	writeFile(t, script, "#!/bin/sh\ntrue\n", 0o755)
	args := []string{"--info", "name:tool", "--info", "version:1.0_git3~abc-r2", "--info", "arch:x86_64",
		"--info", "description:A tool", "--info", "depends:b a", "--info", "provides:tool-any",
		"--script", "post-install:" + script, "--files", tree}
	ref, ours := filepath.Join(t.TempDir(), "ref.apk"), filepath.Join(t.TempDir(), "ours.apk")
	env := append(os.Environ(), "SOURCE_DATE_EPOCH=1700000000")
	cmd := exec.Command(apk, append([]string{"--compression", "none", "mkpkg", "--output", ref}, args...)...)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("apk mkpkg: %v\n%s", err, out)
	}
	cmd = exec.Command(mkapk, append([]string{"--no-compress", "--output", ours}, args...)...)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mkapk: %v\n%s", err, out)
	}
	a, b := readFile(t, ref), readFile(t, ours)
	if a != b {
		t.Errorf("mkapk's package differs from apk mkpkg's (%d and %d bytes)\n%s\n%s", len(b), len(a),
			hex.Dump([]byte(a[:min(len(a), 256)])), hex.Dump([]byte(b[:min(len(b), 256)])))
	}
}
