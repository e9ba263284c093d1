package po2lmo

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
)

// Entry is one string of an LMO archive.
type Entry struct {
	Key    uint32 // KeyHash of the message key; 0 for the Plural-Forms header
	Val    uint32 // number of msgstr forms of the message; 0 for the header
	Offset uint32
	Length uint32
}

const entrySize = 16

// ErrEmpty is returned by Compile for a catalog with nothing to write (no
// translated message, no Plural-Forms): LuCI's po2lmo writes no file then.
var ErrEmpty = errors.New("nothing to compile: no translated message")

// Compile turns a catalog into an LMO archive. As LuCI's po2lmo does, it
// leaves out messages without translation and translations equal to their
// key, and stores the header's Plural-Forms expression under key 0. Unlike
// it, it skips fuzzy messages (as msgfmt does), decodes escapes, and hashes
// the canonical key that LuCI looks up (whitespace collapsed), so a msgid
// with a line break or double space is found too. Two messages with the same
// key (a duplicate or a hash collision) are an error.
func Compile(c *Catalog) ([]byte, error) {
	var (
		data    []byte
		entries []Entry
		seen    = map[uint32]string{}
	)
	add := func(key, val uint32, s, what string) error {
		if prev, dup := seen[key]; dup {
			return fmt.Errorf("%s: same key hash %08x as %s", what, key, prev)
		}
		seen[key] = what
		entries = append(entries, Entry{Key: key, Val: val, Offset: uint32(len(data)), Length: uint32(len(s))})
		data = append(data, s...)
		for len(data)%4 != 0 {
			data = append(data, 0)
		}
		return nil
	}
	if pf, ok := c.HeaderField("Plural-Forms"); ok && pf != "" {
		if err := add(0, 0, pf, "Plural-Forms header"); err != nil {
			return nil, err
		}
	}
	for _, m := range c.Messages {
		if m.Fuzzy || m.ID == "" {
			continue
		}
		for i, s := range m.Str {
			if s == "" {
				continue
			}
			plural := -1
			if m.Plural() {
				plural = i
			}
			key := KeyHash(m.Ctxt, m.ID, plural)
			if key == Hash([]byte(s)) {
				continue // translated as itself: LuCI falls back to the key anyway
			}
			what := fmt.Sprintf("msgid %q (line %d)", m.ID, m.Line)
			if plural >= 0 {
				what = fmt.Sprintf("msgstr[%d] of %s", i, what)
			}
			if err := add(key, uint32(len(m.Str)), s, what); err != nil {
				return nil, err
			}
		}
	}
	if len(entries) == 0 {
		return nil, ErrEmpty
	}
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].Key < entries[j].Key })
	out := make([]byte, 0, len(data)+len(entries)*entrySize+4)
	out = append(out, data...)
	for _, e := range entries {
		out = binary.BigEndian.AppendUint32(out, e.Key)
		out = binary.BigEndian.AppendUint32(out, e.Val)
		out = binary.BigEndian.AppendUint32(out, e.Offset)
		out = binary.BigEndian.AppendUint32(out, e.Length)
	}
	out = binary.BigEndian.AppendUint32(out, uint32(len(data)))
	return out, nil
}

// Archive is a read LMO file.
type Archive struct {
	data    []byte
	Entries []Entry // in file order (sorted by key)
}

// Read checks and indexes an LMO file.
func Read(b []byte) (*Archive, error) {
	if len(b) < 4 {
		return nil, errors.New("lmo: too short")
	}
	idx := binary.BigEndian.Uint32(b[len(b)-4:])
	end := uint32(len(b) - 4)
	if idx > end || (end-idx)%entrySize != 0 {
		return nil, fmt.Errorf("lmo: index offset %d does not fit a %d-byte file", idx, len(b))
	}
	a := &Archive{data: b}
	for off := idx; off < end; off += entrySize {
		e := Entry{
			Key:    binary.BigEndian.Uint32(b[off:]),
			Val:    binary.BigEndian.Uint32(b[off+4:]),
			Offset: binary.BigEndian.Uint32(b[off+8:]),
			Length: binary.BigEndian.Uint32(b[off+12:]),
		}
		if uint64(e.Offset)+uint64(e.Length) > uint64(idx) {
			return nil, fmt.Errorf("lmo: entry %08x points past the strings", e.Key)
		}
		if n := len(a.Entries); n > 0 && a.Entries[n-1].Key > e.Key {
			return nil, fmt.Errorf("lmo: index not sorted at %08x", e.Key)
		}
		a.Entries = append(a.Entries, e)
	}
	return a, nil
}

// String is an entry's text.
func (a *Archive) String(e Entry) string { return string(a.data[e.Offset : e.Offset+e.Length]) }

// Lookup finds a key hash by binary search, as lmo.c does.
func (a *Archive) Lookup(key uint32) (string, bool) {
	i := sort.Search(len(a.Entries), func(i int) bool { return a.Entries[i].Key >= key })
	if i < len(a.Entries) && a.Entries[i].Key == key {
		return a.String(a.Entries[i]), true
	}
	return "", false
}

// Translate looks a message up as LuCI's _(id, ctx) does; plural is the
// plural form index (what the Plural-Forms expression gave), or -1.
func (a *Archive) Translate(ctx, id string, plural int) (string, bool) {
	return a.Lookup(KeyHash(ctx, id, plural))
}

// PluralForms is the stored Plural-Forms expression, if any.
func (a *Archive) PluralForms() (string, bool) { return a.Lookup(0) }
