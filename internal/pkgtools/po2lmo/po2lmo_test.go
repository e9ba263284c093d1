package po2lmo

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// Hashes computed with LuCI's C sfh_hash (lmo.c, built on its own as a
// reference), key = the bytes, init = their length. They cover every tail
// length (0-3 bytes after the 4-byte blocks) and tails with bytes >= 0x80,
// which the C code reads as signed chars.
var refHashes = []struct {
	in   string
	want uint32
}{
	{"a", 0x115ea782},
	{"ab", 0x516b8b44},
	{"abc", 0xd2be198a},
	{"abcd", 0xdad8b8db},
	{"abcde", 0x51ed072e},
	{"Enable", 0x78c2105b},
	{"NATMap", 0x1fce21a9},
	{"保活间隔", 0x253dffce},
	{"é", 0xc4fba554},
	{"xé", 0xe9df37d1},
	{"xyé", 0xef01f340},
	{"端", 0xf36a449f},
	{"Plural\x022", 0x93cbacbd},
	{"ctx\x01Save", 0x540e50b0},
	{"%d item\x020", 0xbb76ed64},
	{"button\x01Save", 0xf2116bf9},
	{"%d mapping\x020", 0xeff7d7c4},
	{"%d mapping\x021", 0xd850747d},
	{"Line one line two", 0x61580491},
	{"nplurals=2; plural=(n != 1);", 0x5ee2e75b},
}

func TestHashMatchesLuCI(t *testing.T) {
	for _, c := range refHashes {
		if got := Hash([]byte(c.in)); got != c.want {
			t.Errorf("Hash(%q) = %08x, want %08x", c.in, got, c.want)
		}
	}
	if Hash(nil) != 0 {
		t.Errorf("Hash(empty) = %08x, want 0", Hash(nil))
	}
}

func TestKey(t *testing.T) {
	cases := []struct {
		ctx, id string
		plural  int
		want    string
	}{
		{"", "Enable", -1, "Enable"},
		{"", "  Line one\n\tline  two \n", -1, "Line one line two"},
		{"button", "Save", -1, "button\x01Save"},
		{" a  b ", "x", 1, "a b\x01x\x021"},
		{"", "%d mapping", 0, "%d mapping\x020"},
		{"", "   ", -1, ""},
	}
	for _, c := range cases {
		if got := Key(c.ctx, c.id, c.plural); got != c.want {
			t.Errorf("Key(%q, %q, %d) = %q, want %q", c.ctx, c.id, c.plural, got, c.want)
		}
	}
}

const samplePO = `# A comment
#, fuzzy
msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\n"
"Plural-Forms: nplurals=2; plural=(n != 1);\n"

#: view.js:1
msgid "Enable"
msgstr "启用"

msgctxt "button"
msgid "Save"
msgstr "保存"

msgid "%d mapping"
msgid_plural "%d mappings"
msgstr[0] "%d Zuordnung"
msgstr[1] "%d Zuordnungen"

msgid "Untranslated"
msgstr ""

msgid "NATMap"
msgstr "NATMap"

#, fuzzy, c-format
msgid "Old"
msgstr "旧"

msgid "Line one\n"
"line two"
msgstr "第一行\n"
"第二行 \"引号\""

#~ msgid "Obsolete"
#~ msgstr "废弃"
`

// TestCompileLayout checks the compiled bytes against the layout written
// out by hand: strings in .po order, NUL-padded to 4 bytes; the index
// sorted by key hash (hashes from the C reference above); the index offset.
func TestCompileLayout(t *testing.T) {
	cat, err := ParsePO(strings.NewReader(samplePO))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Compile(cat)
	if err != nil {
		t.Fatal(err)
	}

	type str struct {
		key, val uint32
		s        string
	}
	// In file order. Left out: the untranslated message, the one
	// translated as itself, the fuzzy one, the obsolete one.
	strs := []str{
		{0, 0, "nplurals=2; plural=(n != 1);"},
		{0x78c2105b, 1, "启用"},
		{0xf2116bf9, 1, "保存"},
		{0xeff7d7c4, 2, "%d Zuordnung"},
		{0xd850747d, 2, "%d Zuordnungen"},
		{0x61580491, 1, "第一行\n第二行 \"引号\""},
	}
	var want []byte
	offsets := map[uint32]uint32{}
	for _, s := range strs {
		offsets[s.key] = uint32(len(want))
		want = append(want, s.s...)
		for len(want)%4 != 0 {
			want = append(want, 0)
		}
	}
	indexAt := uint32(len(want))
	if indexAt != 28+8+8+12+16+28 {
		t.Fatalf("string area is %d bytes, want %d", indexAt, 28+8+8+12+16+28)
	}
	sorted := []uint32{0, 0x61580491, 0x78c2105b, 0xd850747d, 0xeff7d7c4, 0xf2116bf9}
	for _, k := range sorted {
		for _, s := range strs {
			if s.key == k {
				want = binary.BigEndian.AppendUint32(want, s.key)
				want = binary.BigEndian.AppendUint32(want, s.val)
				want = binary.BigEndian.AppendUint32(want, offsets[k])
				want = binary.BigEndian.AppendUint32(want, uint32(len(s.s)))
			}
		}
	}
	want = binary.BigEndian.AppendUint32(want, indexAt)
	if !bytes.Equal(got, want) {
		t.Fatalf("compiled\n%x\nwant\n%x", got, want)
	}

	// Read it back as LuCI does.
	a, err := Read(got)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Entries) != len(strs) {
		t.Fatalf("read %d entries, want %d", len(a.Entries), len(strs))
	}
	lookups := []struct {
		ctx, id string
		plural  int
		want    string
		ok      bool
	}{
		{"", "Enable", -1, "启用", true},
		{"button", "Save", -1, "保存", true},
		{"", "Save", -1, "", false},
		{"", "%d mapping", 0, "%d Zuordnung", true},
		{"", "%d mapping", 1, "%d Zuordnungen", true},
		{"", "Line one\nline two", -1, "第一行\n第二行 \"引号\"", true},
		{"", "Line one  line two", -1, "第一行\n第二行 \"引号\"", true},
		{"", "Untranslated", -1, "", false},
		{"", "NATMap", -1, "", false},
		{"", "Old", -1, "", false},
		{"", "Obsolete", -1, "", false},
	}
	for _, l := range lookups {
		s, ok := a.Translate(l.ctx, l.id, l.plural)
		if s != l.want || ok != l.ok {
			t.Errorf("Translate(%q, %q, %d) = %q, %v; want %q, %v", l.ctx, l.id, l.plural, s, ok, l.want, l.ok)
		}
	}
	if pf, ok := a.PluralForms(); !ok || pf != "nplurals=2; plural=(n != 1);" {
		t.Errorf("PluralForms() = %q, %v", pf, ok)
	}
}

func TestCompileEmpty(t *testing.T) {
	cat, err := ParsePO(strings.NewReader("msgid \"\"\nmsgstr \"Language: de\\n\"\n\nmsgid \"a\"\nmsgstr \"\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Compile(cat); !errors.Is(err, ErrEmpty) {
		t.Fatalf("Compile = %v, want ErrEmpty", err)
	}
}

func TestCompileDuplicate(t *testing.T) {
	cat, err := ParsePO(strings.NewReader("msgid \"a\"\nmsgstr \"x\"\n\nmsgid \"a\"\nmsgstr \"y\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Compile(cat); err == nil || !strings.Contains(err.Error(), "same key hash") {
		t.Fatalf("Compile = %v, want a duplicate key error", err)
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct{ po, want string }{
		{"msgstr \"x\"\n", "line 1: msgstr without msgid"},
		{"msgid \"a\"\nmsgfoo \"x\"\n", "line 2: unknown keyword \"msgfoo\""},
		{"msgid \"a\nmsgstr \"x\"\n", "line 1: msgid: want a quoted string"},
		{"msgid \"a\\q\"\nmsgstr \"x\"\n", `line 1: msgid: unknown escape \q`},
		{"msgid \"a\"\nmsgstr[0] \"x\"\n", "line 2: msgstr[0] for a message without msgid_plural"},
		{"msgid \"a\"\nmsgid_plural \"b\"\nmsgstr[1] \"x\"\n", "line 3: msgstr[1] out of order"},
		{"msgid \"a\"\nmsgid_plural \"b\"\nmsgstr \"x\"\n", "line 3: msgstr without index"},
		{"msgid \"a\"\n\"b\" x\nmsgstr \"x\"\n", "line 2: want a quoted string"},
		{"\"x\"\n", "line 1: string \"x\" outside"},
		{"msgid \"a\"\n", "has no msgstr"},
		{"msgid \"a\"\nmsgid \"b\"\nmsgstr \"\"\n", "line 2: msgid without msgstr"},
	}
	for _, c := range cases {
		_, err := ParsePO(strings.NewReader(c.po))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParsePO(%q) = %v, want error containing %q", c.po, err, c.want)
		}
	}
}

func TestUnquoteEscapes(t *testing.T) {
	got, err := unquote(`"a\tb\\c\"d\x41\101\n"`)
	if err != nil || got != "a\tb\\c\"dAA\n" {
		t.Fatalf("unquote = %q, %v", got, err)
	}
}

func TestReadRejectsDamage(t *testing.T) {
	cat, _ := ParsePO(strings.NewReader(samplePO))
	good, _ := Compile(cat)
	for name, b := range map[string][]byte{
		"short":        good[:2],
		"index offset": append(append([]byte{}, good[:len(good)-4]...), 0xff, 0xff, 0xff, 0xff),
		"truncated":    good[4:],
	} {
		if _, err := Read(b); err == nil {
			t.Errorf("Read(%s) accepted a damaged file", name)
		}
	}
	// An entry pointing past the strings.
	bad := append([]byte{}, good...)
	idx := binary.BigEndian.Uint32(bad[len(bad)-4:])
	binary.BigEndian.PutUint32(bad[idx+12:], 1<<20)
	if _, err := Read(bad); err == nil {
		t.Error("Read accepted an entry longer than the file")
	}
}
