// Package initramfs writes a Linux initramfs: a cpio archive in the "newc"
// format the kernel unpacks into its root file system at boot. Written
// directly, so that a test can put a device node (/dev/console) in it
// without being root.
package initramfs

import (
	"fmt"
	"io"
	"io/fs"
	"strings"
)

// Entry is one file of the archive.
type Entry struct {
	Name string      // path without the leading slash, e.g. "bin/natmap"
	Mode fs.FileMode // type and permission bits
	Data []byte      // a regular file's contents, a symlink's target
	// Major and Minor are a device node's numbers.
	Major, Minor uint32
}

// File, Dir, Symlink and CharDev make the entries of each kind.
func File(name string, perm fs.FileMode, data []byte) Entry {
	return Entry{Name: name, Mode: perm, Data: data}
}
func Dir(name string) Entry { return Entry{Name: name, Mode: fs.ModeDir | 0o755} }
func Symlink(name, target string) Entry {
	return Entry{Name: name, Mode: fs.ModeSymlink | 0o777, Data: []byte(target)}
}
func CharDev(name string, perm fs.FileMode, major, minor uint32) Entry {
	return Entry{Name: name, Mode: fs.ModeDevice | fs.ModeCharDevice | perm, Major: major, Minor: minor}
}

// Write writes the entries, in order (a directory before what is in it),
// and the trailer. Owners are root, times 0.
func Write(w io.Writer, entries []Entry) error {
	for i, e := range entries {
		mode, err := cpioMode(e.Mode)
		if err != nil {
			return fmt.Errorf("initramfs: %s: %w", e.Name, err)
		}
		if err := writeEntry(w, uint32(i+1), e.Name, mode, e.Major, e.Minor, e.Data); err != nil {
			return err
		}
	}
	return writeEntry(w, 0, "TRAILER!!!", 0, 0, 0, nil)
}

// cpioMode is mode in st_mode's encoding.
func cpioMode(m fs.FileMode) (uint32, error) {
	perm := uint32(m.Perm())
	switch {
	case m.IsRegular():
		return 0o100000 | perm, nil
	case m.IsDir():
		return 0o040000 | perm, nil
	case m&fs.ModeSymlink != 0:
		return 0o120000 | perm, nil
	case m&fs.ModeCharDevice != 0:
		return 0o020000 | perm, nil
	}
	return 0, fmt.Errorf("unsupported file mode %v", m)
}

// writeEntry writes one header ("070701" and thirteen 8-digit hex fields),
// the NUL-terminated name and the data, each padded to 4 bytes.
func writeEntry(w io.Writer, ino uint32, name string, mode, major, minor uint32, data []byte) error {
	name = strings.TrimPrefix(name, "/")
	nlink := uint32(1)
	if mode&0o170000 == 0o040000 {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		ino, mode, 0, 0, nlink, 0, len(data), 0, 0, major, minor, len(name)+1, 0)
	buf := append([]byte(hdr), name...)
	buf = append(buf, 0)
	buf = pad(buf)
	buf = append(buf, data...)
	buf = pad(buf)
	_, err := w.Write(buf)
	return err
}

func pad(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}
