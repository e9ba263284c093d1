// Package po2lmo compiles gettext .po catalogs into LuCI's .lmo format and
// reads .lmo files back.
//
// The LMO format (as LuCI's C po2lmo writes it and its lmo.c and cbi.js
// read it) is, all integers big-endian:
//
//	value strings, each padded with NULs to a multiple of 4 bytes
//	index: one 16-byte entry per string, sorted by key:
//	    key    uint32  hash of the canonical message key (0: the Plural-Forms header)
//	    val    uint32  number of msgstr forms of the message (0 for the header)
//	    offset uint32  where the string starts, from the start of the file
//	    length uint32  string length in bytes, without padding
//	trailer: uint32 offset of the index
//
// The message key is the msgid, prefixed with "msgctxt\x01" when the message
// has a context, and suffixed with "\x02N" for plural form N of a message
// with a msgid_plural. Whitespace runs are collapsed to one space and the
// ends trimmed, as LuCI does before it looks a string up (trimws in cbi.js,
// lmo_canon_hash in lmo.c). The hash is Paul Hsieh's SuperFastHash seeded
// with the key's length, over its UTF-8 bytes.
package po2lmo

import "strconv"

// Hash is LuCI's sfh_hash(data, len, len): SuperFastHash with the length as
// the initial value. Bytes of a 1- or 3-byte tail are read as signed chars,
// as the C code (and cbi.js, which copies it) does; the empty string hashes
// to 0.
func Hash(data []byte) uint32 {
	n := len(data)
	if n == 0 {
		return 0
	}
	get16 := func(i int) uint32 { return uint32(data[i]) | uint32(data[i+1])<<8 }
	signed := func(i int) uint32 { return uint32(int32(int8(data[i]))) }

	h := uint32(n)
	i := 0
	for k := n >> 2; k > 0; k-- {
		h += get16(i)
		tmp := get16(i+2)<<11 ^ h
		h = h<<16 ^ tmp
		h += h >> 11
		i += 4
	}
	switch n & 3 {
	case 3:
		h += get16(i)
		h ^= h << 16
		h ^= signed(i+2) << 18
		h += h >> 11
	case 2:
		h += get16(i)
		h ^= h << 11
		h += h >> 17
	case 1:
		h += signed(i)
		h ^= h << 10
		h += h >> 1
	}
	h ^= h << 3
	h += h >> 5
	h ^= h << 4
	h += h >> 17
	h ^= h << 25
	h += h >> 6
	return h
}

// isSpace is C's isspace in the "C" locale.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// canon collapses whitespace runs to one space and trims both ends.
func canon(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if isSpace(s[i]) {
			if len(out) > 0 && out[len(out)-1] != ' ' {
				out = append(out, ' ')
			}
			continue
		}
		out = append(out, s[i])
	}
	if len(out) > 0 && out[len(out)-1] == ' ' {
		out = out[:len(out)-1]
	}
	return string(out)
}

// Key is the canonical lookup key of a message: ctx may be empty (no
// context); plural is the plural form index, or -1 for a message without
// msgid_plural.
func Key(ctx, id string, plural int) string {
	k := canon(id)
	if ctx != "" {
		k = canon(ctx) + "\x01" + k
	}
	if plural >= 0 {
		k += "\x02" + strconv.Itoa(plural)
	}
	return k
}

// KeyHash is Hash(Key(ctx, id, plural)), the key an LMO index holds.
func KeyHash(ctx, id string, plural int) uint32 {
	return Hash([]byte(Key(ctx, id, plural)))
}
