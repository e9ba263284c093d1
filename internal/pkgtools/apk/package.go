package apk

import (
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// Package is what goes into a package: its info, its files (the tree under
// Root, owned by root:root whoever owns it here) and its scripts.
type Package struct {
	Name        string
	Version     string // an apk version (ValidVersion)
	Description string
	Arch        string
	License     string
	Origin      string
	Maintainer  string
	URL         string
	Depends     []string // package names
	Provides    []string // package names, no version: virtual provides
	// Scripts by apk's names: pre-install, post-install, pre-deinstall,
	// post-deinstall, pre-upgrade, post-upgrade, trigger.
	Scripts map[string][]byte
	Root    string
	// MTime is every file's modification time (SOURCE_DATE_EPOCH).
	MTime uint64
	// Compress: "ADBd" and deflate, as apk mkpkg writes by default.
	Compress bool
}

// Field numbers of apk-tools' schemas (src/apk_adb.h).
const (
	pkgInfo    = 1
	pkgPaths   = 2
	pkgScripts = 3

	piName          = 1
	piVersion       = 2
	piHashes        = 3
	piDescription   = 4
	piArch          = 5
	piLicense       = 6
	piOrigin        = 7
	piMaintainer    = 8
	piURL           = 9
	piInstalledSize = 12
	piDepends       = 15
	piProvides      = 16
	piMax           = 22

	depName = 1

	aclMode  = 1
	aclUser  = 2
	aclGroup = 3

	fiName   = 1
	fiACL    = 2
	fiSize   = 3
	fiMTime  = 4
	fiHashes = 5
	fiTarget = 6

	diName  = 1
	diACL   = 2
	diFiles = 3
)

// ScriptNames are the script slots of the package's scripts object, in
// field order (1-based).
var ScriptNames = []string{"trigger", "pre-install", "post-install", "pre-deinstall", "post-deinstall", "pre-upgrade", "post-upgrade"}

// The apk version grammar (apk-tools doc/apk-package.5, src/version.c):
// number{.number}...{letter}{_suffix{number}}...{~hash}{-r#}.
var versionRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*[a-z]?(_(alpha|beta|pre|rc|cvs|svn|git|hg|p)[0-9]*)*(~[0-9a-f]+)?(-r[0-9]+)?$`)

// ValidVersion says whether v is a version apk accepts.
func ValidVersion(v string) bool { return versionRE.MatchString(v) }

// Package names: [a-zA-Z0-9.+_-], alphanumeric first.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.+_-]*$`)

type file struct {
	name   string
	mode   fs.FileMode
	size   int64
	target string // symlinks
	sum    [32]byte
	path   string
}

type dir struct {
	name  string // "" for the root
	mode  fs.FileMode
	files []file
}

// scan lists root's directories (sorted by path, root first) and their files
// (sorted by name): the order apk reads them in.
func scan(root string) ([]dir, error) {
	var dirs []dir
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel == "." {
			rel = ""
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, dir{name: rel, mode: info.Mode()})
			return nil
		}
		f := file{name: d.Name(), mode: info.Mode(), size: info.Size(), path: path}
		switch {
		case info.Mode().IsRegular():
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			f.sum, f.size = sha256.Sum256(b), int64(len(b))
		case info.Mode()&fs.ModeSymlink != 0:
			if f.target, err = os.Readlink(path); err != nil {
				return err
			}
			f.size = int64(len(f.target))
		default:
			return fmt.Errorf("%s: neither a file, a directory nor a symlink", path)
		}
		parent := filepath.ToSlash(filepath.Dir(rel))
		if parent == "." {
			parent = ""
		}
		for i := range dirs {
			if dirs[i].name == parent {
				dirs[i].files = append(dirs[i].files, f)
				return nil
			}
		}
		return fmt.Errorf("%s: directory %q not seen", path, parent)
	})
	if err != nil {
		return nil, err
	}
	// Bytewise, a prefix first: apk-tools' blob order.
	slices.SortFunc(dirs, func(a, b dir) int { return strings.Compare(a.name, b.name) })
	for i := range dirs {
		slices.SortFunc(dirs[i].files, func(a, b file) int { return strings.Compare(a.name, b.name) })
	}
	return dirs, nil
}

// unixMode is mode's permission bits, setuid, setgid and sticky as in
// st_mode.
func unixMode(m fs.FileMode) uint64 {
	v := uint64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		v |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		v |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		v |= 0o1000
	}
	return v
}

// Write writes p as an unsigned apk v3 package.
func Write(w io.Writer, p *Package) error {
	if !nameRE.MatchString(p.Name) {
		return fmt.Errorf("apk: bad package name %q", p.Name)
	}
	if !ValidVersion(p.Version) {
		return fmt.Errorf("apk: %q is not an apk version (number{.number}...{letter}{_suffix{number}}...{~hash}{-r#})", p.Version)
	}
	if p.Arch == "" {
		return errors.New("apk: no arch")
	}
	for _, list := range [][]string{p.Depends, p.Provides} {
		for _, n := range list {
			if !nameRE.MatchString(n) {
				return fmt.Errorf("apk: dependency or provide %q: only plain package names are supported", n)
			}
		}
	}
	for k := range p.Scripts {
		if !slices.Contains(ScriptNames, k) {
			return fmt.Errorf("apk: unknown script %q", k)
		}
	}
	dirs, err := scan(p.Root)
	if err != nil {
		return err
	}

	d := newDB()
	info := make([]uint32, piMax-1)
	set := func(i int, v uint32) { info[i-1] = v }
	set(piName, d.str(p.Name))
	set(piVersion, d.str(p.Version))
	set(piDescription, d.str(p.Description))
	set(piArch, d.str(p.Arch))
	set(piLicense, d.str(p.License))
	set(piOrigin, d.str(p.Origin))
	set(piMaintainer, d.str(p.Maintainer))
	set(piURL, d.str(p.URL))
	set(piDepends, deps(d, p.Depends))
	set(piProvides, deps(d, p.Provides))

	// Written in apk mkpkg's order, so that the database comes out as its
	// does: each directory's files, then the directory.
	acl := func(m fs.FileMode) uint32 {
		o := make([]uint32, aclGroup)
		o[aclMode-1] = d.int(unixMode(m))
		o[aclUser-1] = d.str("root")
		o[aclGroup-1] = d.str("root")
		return d.object(o)
	}
	var installed uint64
	var paths []uint32
	for _, di := range dirs {
		var files []uint32
		for _, f := range di.files {
			fo := make([]uint32, fiTarget)
			fo[fiName-1] = d.str(f.name)
			if f.target != "" {
				t := binary.LittleEndian.AppendUint16(nil, 0o120000) // S_IFLNK
				fo[fiTarget-1] = d.blob(append(t, f.target...))
			} else {
				fo[fiHashes-1] = d.blob(f.sum[:])
				installed += uint64(f.size)
			}
			fo[fiMTime-1] = d.int(p.MTime)
			fo[fiSize-1] = d.int(uint64(f.size))
			fo[fiACL-1] = acl(f.mode)
			files = append(files, d.object(fo))
		}
		do := make([]uint32, diFiles)
		do[diName-1] = d.str(di.name)
		do[diACL-1] = acl(di.mode)
		do[diFiles-1] = d.array(files)
		paths = append(paths, d.object(do))
	}
	if installed == 0 {
		installed = 1 // 0 would mean a meta package (apk mkpkg does the same)
	}
	set(piInstalledSize, d.int(installed))
	// The package's unique id: the first 20 bytes of the SHA-256 of the
	// database written with zeros there (apk mkpkg's "hashes").
	hashVal := d.blobAt(make([]byte, 20), false)
	set(piHashes, hashVal)

	pkg := []uint32{d.object(info), d.array(paths), null}
	if len(p.Scripts) > 0 {
		s := make([]uint32, len(ScriptNames))
		for i, n := range ScriptNames {
			s[i] = d.blob(p.Scripts[n])
		}
		pkg[pkgScripts-1] = d.object(s)
	}
	binary.LittleEndian.PutUint32(d.buf[4:], d.object(pkg))
	sum := sha256.Sum256(d.buf)
	copy(d.buf[hashVal&valueMask+1:], sum[:20])

	var out bytes.Buffer
	out.WriteString(magic)
	out.Write(binary.LittleEndian.AppendUint32(nil, schemaPackage))
	b, err := block(blockADB, d.buf)
	if err != nil {
		return err
	}
	out.Write(b)
	for i, di := range dirs {
		for j, f := range di.files {
			if f.target != "" || f.size == 0 {
				continue
			}
			content, err := os.ReadFile(f.path)
			if err != nil {
				return err
			}
			if sha256.Sum256(content) != f.sum {
				return fmt.Errorf("%s changed while packing", f.path)
			}
			hdr := binary.LittleEndian.AppendUint32(nil, uint32(i+1))
			hdr = binary.LittleEndian.AppendUint32(hdr, uint32(j+1))
			b, err := block(blockData, hdr, content)
			if err != nil {
				return err
			}
			out.Write(b)
		}
	}

	if !p.Compress {
		_, err := w.Write(out.Bytes())
		return err
	}
	if _, err := io.WriteString(w, magicDeflate); err != nil {
		return err
	}
	zw, err := flate.NewWriter(w, flate.BestCompression)
	if err != nil {
		return err
	}
	if _, err := zw.Write(out.Bytes()); err != nil {
		return err
	}
	return zw.Close()
}

// deps stores names as an array of dependency objects, sorted and unique as
// apk-tools keeps them; written in the order given, as apk mkpkg does.
func deps(d *db, names []string) uint32 {
	type dep struct {
		name string
		val  uint32
	}
	var list []dep
	for _, n := range names {
		o := make([]uint32, depName)
		o[depName-1] = d.str(n)
		list = append(list, dep{n, d.object(o)})
	}
	slices.SortStableFunc(list, func(a, b dep) int { return strings.Compare(a.name, b.name) })
	list = slices.CompactFunc(list, func(a, b dep) bool { return a.val == b.val })
	var items []uint32
	for _, x := range list {
		items = append(items, x.val)
	}
	return d.array(items)
}
