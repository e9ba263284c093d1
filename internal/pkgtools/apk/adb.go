// Package apk writes apk-tools v3 packages (the "ADB" format that OpenWrt
// 25's apk installs), without apk-tools.
//
// The format, as apk-tools documents it (doc/apk-v3.5) and reads it
// (src/adb.h, src/apk_adb.h, src/extract_v3.c):
//
//   - A file is "ADB." and a 32-bit schema id ("pckg" for a package), then
//     blocks, each 8-byte aligned: a little-endian word of 2 type bits (0
//     ADB, 1 SIG, 2 DATA) and 30 bits of size (this word included), the
//     payload, zero padding. A package is one ADB block, no SIG block here
//     (unsigned), then one DATA block per non-empty regular file.
//   - The ADB block is a database: 8 header bytes (compat version 0,
//     version 0, 2 reserved, the root value), then the values it points at.
//     A value is a 32-bit word: 4 type bits and 28 bits of an immediate
//     (integers below 2^28, null) or of an offset into the block (blobs with
//     an 8-, 16- or 32-bit length first, aligned to that length's size;
//     32/64-bit integers; objects and arrays, 4-aligned vectors of values
//     whose first slot is their own length, trailing nulls cut).
//   - The package object holds the package info (name, version, ...), the
//     directories (sorted by name; each with its ACL and its files, sorted by
//     name, each with ACL, size, mtime and SHA-256) and the scripts.
//   - A DATA block is the directory's and the file's 1-based indexes (two
//     32-bit words) and the file's bytes, in the order of the tree.
//   - The whole stream may be compressed: "ADBd" and raw deflate of the rest,
//     what `apk mkpkg` writes by default.
package apk

import (
	"encoding/binary"
	"fmt"
)

// Value types: the high 4 bits of a value.
const (
	typeSpecial = 0x0 << 28
	typeInt     = 0x1 << 28
	typeInt32   = 0x2 << 28
	typeInt64   = 0x3 << 28
	typeBlob8   = 0x8 << 28
	typeBlob16  = 0x9 << 28
	typeBlob32  = 0xa << 28
	typeArray   = 0xd << 28
	typeObject  = 0xe << 28

	valueMask = 1<<28 - 1
	null      = uint32(typeSpecial)
)

// Block types: the high 2 bits of a block's first word.
const (
	blockADB  = 0
	blockSig  = 1
	blockData = 2

	blockAlign   = 8
	blockMaxSize = 0x3fffffff
)

// Schema ids (little-endian ASCII) and the file magic.
const (
	magic         = "ADB."
	magicDeflate  = "ADBd"
	schemaPackage = 0x676b6370 // "pckg"
)

// db builds an ADB block. Equal data at a suitable alignment is stored once,
// as apk-tools does.
type db struct {
	buf  []byte
	seen map[string]uint32
}

func newDB() *db {
	return &db{buf: make([]byte, 8), seen: map[string]uint32{}} // the header; root set last
}

// data appends b aligned to align (or finds it already there) and returns
// its offset.
func (d *db) data(b []byte, align int, shared bool) uint32 {
	if shared {
		if off, ok := d.seen[string(b)]; ok && int(off)%align == 0 {
			return off
		}
	}
	for len(d.buf)%align != 0 {
		d.buf = append(d.buf, 0)
	}
	off := uint32(len(d.buf))
	d.buf = append(d.buf, b...)
	if shared {
		if _, ok := d.seen[string(b)]; !ok {
			d.seen[string(b)] = off
		}
	}
	return off
}

func (d *db) val(typ uint32, off uint32) uint32 {
	if off > valueMask {
		panic(fmt.Sprintf("apk: database over %d bytes", valueMask))
	}
	return typ | off
}

// blob stores b with its length; an empty blob is null.
func (d *db) blob(b []byte) uint32 { return d.blobAt(b, true) }

func (d *db) blobAt(b []byte, shared bool) uint32 {
	n := len(b)
	switch {
	case n == 0:
		return null
	case n <= 0xff:
		return d.val(typeBlob8, d.data(append([]byte{byte(n)}, b...), 1, shared))
	case n <= 0xffff:
		return d.val(typeBlob16, d.data(append(binary.LittleEndian.AppendUint16(nil, uint16(n)), b...), 2, shared))
	default:
		return d.val(typeBlob32, d.data(append(binary.LittleEndian.AppendUint32(nil, uint32(n)), b...), 4, shared))
	}
}

func (d *db) str(s string) uint32 { return d.blob([]byte(s)) }

func (d *db) int(v uint64) uint32 {
	switch {
	case v < 1<<28:
		return typeInt | uint32(v)
	case v < 1<<32:
		return d.val(typeInt32, d.data(binary.LittleEndian.AppendUint32(nil, uint32(v)), 4, true))
	default:
		return d.val(typeInt64, d.data(binary.LittleEndian.AppendUint64(nil, v), 4, true))
	}
}

// object stores fields (fields[i] is slot i+1) as an object, array stores
// items as an array; trailing nulls are left out, and nothing at all is
// null. An array is tagged as an object, as apk mkpkg tags the arrays it
// writes (paths, files, depends: adb_wo_obj and schema fromstring go
// through adb_w_obj); readers take either tag.
func (d *db) object(fields []uint32) uint32 { return d.vector(typeObject, fields) }
func (d *db) array(items []uint32) uint32   { return d.vector(typeObject, items) }

func (d *db) vector(typ uint32, slots []uint32) uint32 {
	n := len(slots)
	for n > 0 && slots[n-1] == null {
		n--
	}
	if n == 0 {
		return null
	}
	b := binary.LittleEndian.AppendUint32(nil, uint32(n+1))
	for _, v := range slots[:n] {
		b = binary.LittleEndian.AppendUint32(b, v)
	}
	return d.val(typ, d.data(b, 4, true))
}

// block frames payload as a block of type typ, padded to 8 bytes.
func block(typ uint32, payload ...[]byte) ([]byte, error) {
	n := 4
	for _, p := range payload {
		n += len(p)
	}
	if n > blockMaxSize {
		return nil, fmt.Errorf("apk: a block of %d bytes needs the extended block form, not written here", n)
	}
	b := binary.LittleEndian.AppendUint32(make([]byte, 0, n+blockAlign), typ<<30|uint32(n))
	for _, p := range payload {
		b = append(b, p...)
	}
	for len(b)%blockAlign != 0 {
		b = append(b, 0)
	}
	return b, nil
}
