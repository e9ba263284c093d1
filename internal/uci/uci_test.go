package uci

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"testing/iotest"
)

// dump prints a File compactly: one line per section and option, with
// their lines, so that a table can say what a parse gives.
func dump(f *File) string {
	var b strings.Builder
	if f.Package != "" {
		fmt.Fprintf(&b, "package %s\n", f.Package)
	}
	for _, s := range f.Sections {
		fmt.Fprintf(&b, "%d config %s %s #%d\n", s.Line, s.Type, s.Ref(), s.Index)
		for _, o := range s.Options {
			kw := "option"
			if o.List {
				kw = "list"
			}
			fmt.Fprintf(&b, "%d  %s %s %q\n", o.Line, kw, o.Name, o.Values)
		}
	}
	return b.String()
}

func lines(l ...string) string { return strings.Join(l, "\n") + "\n" }

func parse(t *testing.T, in string) *File {
	t.Helper()
	f, err := Parse("test", strings.NewReader(in))
	if err != nil {
		t.Fatalf("Parse(%q): %v", in, err)
	}
	return f
}

func TestGrammar(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"empty file", "", ""},
		{"comments and blanks only", "# a\n\n \t\n\t# b", ""},
		{"package and anonymous section", "package natmap\nconfig natmap\n\toption enable '1'\n",
			lines("package natmap", "2 config natmap @natmap[0] #0", `3  option enable ["1"]`)},
		{"package name with -", "package my-pkg_2\n", "package my-pkg_2\n"},
		{"named section", "config zone 'lan'\n option name lan\n",
			lines("1 config zone lan #0", `2  option name ["lan"]`)},
		{"quoted type, option name and section name", "config 'zone' \"lan\"\n\toption 'name' \"x\"\n",
			lines("1 config zone lan #0", `2  option name ["x"]`)},
		{"empty section name is anonymous", "config zone ''\nconfig zone \"\"\n",
			lines("1 config zone @zone[0] #0", "2 config zone @zone[1] #1")},
		{"section without options", "config a\nconfig b n\n", lines("1 config a @a[0] #0", "2 config b n #0")},
		{"type with punctuation", "config my-type.x+1 n\nconfig 'a#b'\n",
			lines("1 config my-type.x+1 n #0", "2 config a#b @a#b[0] #0")},
		{"section named like a keyword", "config t option\n", "1 config t option #0\n"},
		{"abbreviated keywords", "p pk\nc t n\no a 1\nl b 2\n",
			lines("package pk", "2 config t n #0", `3  option a ["1"]`, `4  list b ["2"]`)},
		{"unquoted value", "config t\noption a b.c:d/e=f\n", lines("1 config t @t[0] #0", `2  option a ["b.c:d/e=f"]`)},
		{"adjacent pieces concatenate", "config t\noption a 'a'\"b\"c\noption b x'y z'\"w\"\n",
			lines("1 config t @t[0] #0", `2  option a ["abc"]`, `3  option b ["xy zw"]`)},
		{"single quotes have no escapes", `config t` + "\n" + `option a 'a\b\'` + "\n",
			lines("1 config t @t[0] #0", `2  option a ["a\\b\\"]`)},
		{"double quotes take the byte after a backslash", `config t` + "\n" + `option a "q\"b\\s\n\'"` + "\n",
			lines("1 config t @t[0] #0", `2  option a ["q\"b\\sn'"]`)},
		{"unquoted escapes", `config t` + "\n" + `option a a\ b\#c\;d\'e\"f\\g` + "\n",
			lines("1 config t @t[0] #0", `2  option a ["a b#c;d'e\"f\\g"]`)},
		{"quotes keep # ; and blanks", "config t\noption a '#x; y'\noption b \"#x; y\"\n",
			lines("1 config t @t[0] #0", `2  option a ["#x; y"]`, `3  option b ["#x; y"]`)},
		{"comments", "# whole\n  # indented\nconfig t # after\n\toption a b#c\n\toption d 'e'#f\n\toption g '#h' # x\n",
			lines("3 config t @t[0] #0", `4  option a ["b"]`, `5  option d ["e"]`, `6  option g ["#h"]`)},
		{"comment right after a name leaves no value", "config t\noption a#b c\n",
			lines("1 config t @t[0] #0", `2  option a [""]`)},
		{"blanks and tabs", "\n\n \t\nconfig\tt\t \tn \n\n\t option  a \t 'b'  \n",
			lines("4 config t n #0", `6  option a ["b"]`)},
		{"CRLF line endings", "config t n\r\n\toption a 'b'\r\n\toption c d\r\n# c\r\n\r\n\toption e\r\n",
			lines("1 config t n #0", `2  option a ["b"]`, `3  option c ["d"]`, `6  option e [""]`)},
		{"no final line break", "config t\noption a b", lines("1 config t @t[0] #0", `2  option a ["b"]`)},
		{"continuation in an unquoted word", "config t\noption a b\\\nc\noption d e\n",
			lines("1 config t @t[0] #0", `2  option a ["bc"]`, `4  option d ["e"]`)},
		{"continuation in double quotes", "config t\noption a \"x\\\ny\"\n",
			lines("1 config t @t[0] #0", `2  option a ["xy"]`)},
		{"continuation with CRLF", "config t\r\noption a x\\\r\ny\r\n",
			lines("1 config t @t[0] #0", `2  option a ["xy"]`)},
		{"continuation between quotes", "config t\noption a 'b'\\\n\"c\"\n",
			lines("1 config t @t[0] #0", `2  option a ["bc"]`)},
		{"continuation before an argument", "config \\\nt\noption a \\\n'b'\n",
			lines("1 config t @t[0] #0", `3  option a ["b"]`)},
		{"single quotes keep backslash and line break", "config t\noption a 'x\\\ny'\n",
			lines("1 config t @t[0] #0", `2  option a ["x\\\ny"]`)},
		{"multi-line quoted values", "config t\noption a 'l1\nl2'\n\toption b \"m1\n\tm2\"\noption c d\n",
			lines("1 config t @t[0] #0", `2  option a ["l1\nl2"]`, `4  option b ["m1\n\tm2"]`, `6  option c ["d"]`)},
		{"tabs and UTF-8 in values", "config t\noption a 'x\ty'\noption b 'héllo ✓'\n",
			lines("1 config t @t[0] #0", `2  option a ["x\ty"]`, `3  option b ["héllo ✓"]`)},
		// libuci's own import test (tests/shunit2/references/import.data),
		// with the values its import.result shows.
		{"libuci import test", "package 'import-test'\n\nconfig 'type' 'section'\n\toption 'opt' 'val'\n" +
			"\tlist 'list_opt' 'val0'\n\tlist 'list_opt' 'val1'\n" +
			"\toption mul_line_opt_sq \\''line 1\nline 2 \\\nline 3'\\'\n" +
			"\toption mul_line_opt_dq \"\\\"Hello, \\\nWorld.\\'\n\"\n",
			lines("package import-test", "3 config type section #0", `4  option opt ["val"]`,
				`5  list list_opt ["val0" "val1"]`,
				`7  option mul_line_opt_sq ["'line 1\nline 2 \\\nline 3'"]`,
				`10  option mul_line_opt_dq ["\"Hello, World.'\n"]`)},

		// Repeated names, as libuci's uci_set and uci_add_list treat them.
		{"empty options are kept as unset", "config t\n\toption a ''\n\toption b\n\toption c \"\"\n",
			lines("1 config t @t[0] #0", `2  option a [""]`, `3  option b [""]`, `4  option c [""]`)},
		{"an empty option does not replace a value", "config t\noption a x\noption a ''\noption a\n",
			lines("1 config t @t[0] #0", `2  option a ["x"]`)},
		{"an empty option does not replace a list", "config t\nlist a x\noption a ''\n",
			lines("1 config t @t[0] #0", `2  list a ["x"]`)},
		{"a value after an empty option comes last", "config t\noption a ''\noption b 1\noption a 2\n",
			lines("1 config t @t[0] #0", `3  option b ["1"]`, `4  option a ["2"]`)},
		{"a list after an empty option starts afresh", "config t\noption a ''\noption b 1\nlist a x\n",
			lines("1 config t @t[0] #0", `3  option b ["1"]`, `4  list a ["x"]`)},
		{"a later option replaces in place", "config t\noption a 1\noption b 2\noption a 3\n",
			lines("1 config t @t[0] #0", `4  option a ["3"]`, `3  option b ["2"]`)},
		{"list appends, empty values too", "config t\nlist a 1\nlist a ''\nlist a\n",
			lines("1 config t @t[0] #0", `2  list a ["1" "" ""]`)},
		{"option replaces a list", "config t\nlist a 1\nlist a 2\noption b x\noption a 3\n",
			lines("1 config t @t[0] #0", `5  option a ["3"]`, `4  option b ["x"]`)},
		{"list turns an option into a list", "config t\noption a 1\nlist a 2\n",
			lines("1 config t @t[0] #0", `2  list a ["1" "2"]`)},
		{"same section name again adds to it", "config t n\n\toption a 1\nconfig u\nconfig t n\n\toption b 2\n\toption a 3\n",
			lines("1 config t n #0", `6  option a ["3"]`, `5  option b ["2"]`, "3 config u @u[0] #0")},
		{"index counts named and anonymous sections of a type", "config t a\nconfig t\nconfig u\nconfig t\nconfig t 'b'\n",
			lines("1 config t a #0", "2 config t @t[1] #1", "3 config u @u[0] #0", "4 config t @t[2] #2", "5 config t b #3")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := dump(parse(t, tc.in)); got != tc.want {
				t.Errorf("Parse(%q):\n%s\nwant:\n%s", tc.in, got, tc.want)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	long := strings.Repeat("x", maxLineSize)
	for _, tc := range []struct {
		name, in  string
		line, col int
		msg       string
	}{
		{"unterminated single quote", "config t\n\toption a 'x\n", 2, 11, "unterminated quote, expected '"},
		{"unterminated double quote", "config t\noption a \"x\ny\n", 2, 10, `unterminated quote, expected "`},
		{"unterminated quote in a type", "config 'natmap\n", 1, 8, "unterminated quote, expected '"},
		{"backslash at end of file in double quotes", "config t\noption a \"x\\", 2, 10, `unterminated quote, expected "`},
		{"backslash at end of file", "config t\noption a x\\", 2, 11, "backslash at end of file, expected a character to escape or a line break"},

		{"unknown keyword", "config t\n  options a b\n", 2, 3, `invalid keyword "options", expected package, config, option or list`},
		{"keywords are case sensitive", "Config t\n", 1, 1, `invalid keyword "Config"`},
		{"quoted keyword", "'config' t\n", 1, 1, `invalid keyword "'config'"`},
		{"keyword glued to a quote", "config't'\n", 1, 1, `invalid keyword "config't'"`},
		{"keyword glued to a comment", "config#x\n", 1, 1, `invalid keyword "config#x"`},
		{"byte order mark", "\xef\xbb\xbfconfig t\n", 1, 1, `invalid keyword "\ufeffconfig"`},
		{"other abbreviation", "conf t\n", 1, 1, `invalid keyword "conf"`},

		{"missing type", "config\n", 1, 1, "missing section type, expected config TYPE ['NAME']"},
		{"missing type at end of file", "config", 1, 1, "missing section type"},
		{"missing type before CRLF", "config \r\n", 1, 1, "missing section type"},
		{"missing type before a comment", "config # t\n", 1, 1, "missing section type"},
		{"empty type", "config ''\n", 1, 8, "missing section type"},
		{"missing package name", "package\n", 1, 1, "missing package name, expected package NAME"},
		{"empty package name", "package ''\n", 1, 9, "missing package name"},
		{"missing option name", "config t\noption\n", 2, 1, "missing option name, expected option NAME 'VALUE'"},
		{"empty list name", "config t\nlist '' x\n", 2, 6, "missing list name, expected list NAME 'VALUE'"},

		{"invalid package name", "package a.b\n", 1, 9, `invalid package name "a.b", expected letters, digits, _ and -`},
		{"type with a space", "config 'a b'\n", 1, 8, `invalid section type "a b", expected printable ASCII without spaces`},
		{"type with non-ASCII", "config tÿpe\n", 1, 8, "invalid section type"},
		{"section name with -", "config t a-b\n", 1, 10, `invalid section name "a-b", expected letters, digits and _`},
		{"section name with .", "config t 'a.b'\n", 1, 10, "invalid section name"},
		{"option name with -", "config t\noption a-b x\n", 2, 8, `invalid option name "a-b", expected letters, digits and _`},
		{"list name with a space", "config t\nlist 'a b' x\n", 2, 6, `invalid list name "a b"`},
		{"option name with non-ASCII", "config t\noption é x\n", 2, 8, "invalid option name"},

		{"too many option arguments", "config t\noption a b c\n", 2, 12, "too many arguments, expected end of line after option NAME 'VALUE'"},
		{"too many list arguments", "config t\nlist a b c\n", 2, 10, "too many arguments, expected end of line after list NAME 'VALUE'"},
		{"too many config arguments", "config t n x\n", 1, 12, "too many arguments, expected end of line after config TYPE 'NAME'"},
		{"too many package arguments", "package a b\n", 1, 11, "too many arguments, expected end of line after package NAME"},
		// libuci reads these as two statements: a trailing empty argument
		// ends its statement.
		{"two statements on a line", "config t\noption a b '' option c d\n", 2, 12, "too many arguments"},
		{"continuation then a blank", "config t\noption a \\\n 'b'\n", 3, 2, "too many arguments"},
		{"continuation after the value", "config t\noption a 'b' \\\n\n", 2, 14, "too many arguments"},

		{"option before config", "option a b\n", 1, 1, "option before the first section, expected config TYPE ['NAME'] first"},
		{"list before config", "# c\n\tlist a b\n", 2, 2, "list before the first section"},
		{"section redeclared with another type", "config t n\nconfig u n\n", 2, 8, `section "n" redeclared as type "u", expected its type "t" from line 1`},
		// libuci names the first anonymous dnsmasq section cfg01411c (as
		// seen on every OpenWrt router): this one would add to it.
		{"name of an anonymous section", "config dnsmasq\nconfig dnsmasq 'cfg01411c'\n", 2, 16, `section name "cfg01411c" is the name libuci gives @dnsmasq[0] (line 1), expected another name`},
		{"second package", "package a\npackage b\n", 2, 1, "second package statement (the first is on line 1), expected one"},
		{"package after config", "config t\npackage a\n", 2, 1, "package statement after a config section, expected it before the first config"},

		{"; after an unquoted word", "config t\noption a b; option c d\n", 2, 11, "';' outside quotes, expected one statement per line (quote a literal ';')"},
		{"; after quotes", "config t 'n';\n", 1, 13, "';' outside quotes"},
		{"; after a blank", "config t ;option a b\n", 1, 10, "';' outside quotes"},

		{"NUL byte", "config t\x00\n", 1, 9, "NUL byte, expected text"},
		{"control character in a value", "config t\noption a '\x01'\n", 2, 11, "control character 0x01, expected text"},
		{"DEL", "config t\noption a x\x7f\n", 2, 11, "control character 0x7f"},
		{"escape in a comment", "# \x1b[31m\n", 1, 3, "control character 0x1b"},
		{"lone carriage return", "config t\rn\n", 1, 9, "carriage return without a line feed, expected LF or CRLF line endings"},
		{"carriage return at end of file", "config t\r", 1, 9, "carriage return without a line feed"},
		{"CRLF inside quotes", "config t\r\noption a 'x\r\ny'\r\n", 2, 12, "carriage return inside quotes, expected LF line endings in a multi-line value"},
		{"CRLF inside double quotes", "config t\r\noption a \"x\r\ny\"\r\n", 2, 12, "carriage return inside quotes"},
		{"line too long", "config t\n# " + long + "\n", 2, maxLineSize + 1, "line longer than 65536 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse("/etc/config/natmap", strings.NewReader(tc.in))
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse(%q) = %v, %v; want a ParseError", tc.in, f, err)
			}
			if f != nil || pe.File != "/etc/config/natmap" || pe.Line != tc.line || pe.Col != tc.col || !strings.Contains(pe.Msg, tc.msg) {
				t.Errorf("Parse(%q): %v; want /etc/config/natmap:%d:%d: %s", tc.in, err, tc.line, tc.col, tc.msg)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	// A line of exactly the limit, CRLF included, is fine.
	parse(t, "config t\r\n#"+strings.Repeat("x", maxLineSize-1)+"\r\n")

	big := "config t\n" + strings.Repeat("# "+strings.Repeat("x", 1000)+"\n", maxFileSize/1000)
	_, err := Parse("big", strings.NewReader(big))
	if err == nil || err.Error() != "big: file larger than 1 MiB, expected a small config file" {
		t.Errorf("Parse(%d bytes) = %v, want file too large", len(big), err)
	}

	boom := errors.New("boom")
	_, err = Parse("/etc/config/natmap", iotest.ErrReader(boom))
	var pe *ParseError
	if !errors.Is(err, boom) || errors.As(err, &pe) || err.Error() != "read /etc/config/natmap: boom" {
		t.Errorf("read error: got %v", err)
	}
}

func TestParseErrorString(t *testing.T) {
	e := &ParseError{File: "/etc/config/natmap", Line: 12, Col: 8, Msg: "unterminated quote, expected '"}
	if got, want := e.Error(), "/etc/config/natmap:12:8: unterminated quote, expected '"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestValidNames(t *testing.T) {
	// libuci's uci_validate_str: names are [A-Za-z0-9_], package names add
	// '-', types take any printable ASCII but space; none may be empty.
	for _, tc := range []struct {
		s              string
		name, pkg, typ bool
	}{
		{"", false, false, false},
		{"a_Z9", true, true, true},
		{"a-b", false, true, true},
		{`a.b@[0]#'\"`, false, false, true},
		{"a b", false, false, false},
		{"~", false, false, true},
		{"é", false, false, false},
		{"\x7f", false, false, false},
	} {
		if validName(tc.s) != tc.name || validPackage(tc.s) != tc.pkg || validType(tc.s) != tc.typ {
			t.Errorf("%q: name %v, package %v, type %v; want %v %v %v", tc.s,
				validName(tc.s), validPackage(tc.s), validType(tc.s), tc.name, tc.pkg, tc.typ)
		}
	}
}

func TestGeneratedName(t *testing.T) {
	// Names libuci gives the first anonymous sections of stock OpenWrt
	// configs (dhcp, firewall, system), as routers show them.
	for _, tc := range []struct {
		n         int
		typ, want string
	}{{1, "dnsmasq", "cfg01411c"}, {1, "defaults", "cfg01e63d"}, {2, "zone", "cfg02dc81"}, {1, "system", "cfg01e48a"}} {
		if got := generatedName(tc.n, tc.typ); got != tc.want {
			t.Errorf("generatedName(%d, %q) = %q, want %q", tc.n, tc.typ, got, tc.want)
		}
	}
}

func TestStockConfig(t *testing.T) {
	data, err := os.ReadFile("testdata/stock-natmap.config")
	if err != nil {
		t.Fatal(err)
	}
	f := parse(t, string(data))
	if len(f.Sections) != 1 || f.Package != "" {
		t.Fatalf("got %d sections, package %q; want 1, none", len(f.Sections), f.Package)
	}
	s := f.Sections[0]
	if s.Type != "natmap" || s.Name != "" || s.Index != 0 || s.Ref() != "@natmap[0]" || s.Line != 1 {
		t.Errorf("section %+v, ref %s; want @natmap[0] on line 1", s, s.Ref())
	}
	if got := f.Typed("natmap"); len(got) != 1 || got[0] != s {
		t.Errorf("Typed(natmap) = %v", got)
	}
	want := [][2]string{
		{"enable", "0"}, {"family", ""}, {"udp_mode", "1"}, {"interface", ""}, {"interval", ""},
		{"stun_cycle", ""}, {"stun_server", "stunserver.stunprotocol.org"}, {"http_server", "example.com"},
		{"fwmark", ""}, {"port", "8080"}, {"forward_target", ""}, {"forward_port", ""},
		{"forward_timeout", ""}, {"forward_congestion", ""}, {"notify_script", ""},
		{"log_stdout", "1"}, {"log_stderr", "1"},
	}
	if len(s.Options) != len(want) {
		t.Fatalf("%d options, want %d:\n%s", len(s.Options), len(want), dump(f))
	}
	for i, w := range want {
		o := s.Options[i]
		if o.Name != w[0] || o.List || len(o.Values) != 1 || o.Values[0] != w[1] || o.Line != i+2 {
			t.Errorf("option %d = %+v, want %s %q on line %d", i, o, w[0], w[1], i+2)
		}
		if g, ok := s.Get(w[0]); !ok || g != o {
			t.Errorf("Get(%q) = %v, %v", w[0], g, ok)
		}
	}
	if o, ok := s.Get("nope"); ok {
		t.Errorf("Get(nope) = %v", o)
	}
}

const realistic = `# natmap mappings, as LuCI and hand edits leave them
package natmap

config natmap 'web'
	option enable '1'
	option family 'ipv4'
	option interface "wan"    # the uplink
	option interval 25
	list stun_server 'stun.example.org'
	list stun_server "stun2.example.org:3478"
	option http_server 'example.com'
	option port '8080'
	option notify_script '/etc/natmap/notify.sh'

config natmap
	option enable 1
	option udp_mode '1'
	option port "10000~10100"
	option notify_script '/usr/bin/say "it'\''s up"'

# disabled for now
config natmap 'ssh'
	option enable '0'
	option port 22
	option stun_server 'stun.example.org'

config natmap
	option enable '0'
`

func TestRealisticConfig(t *testing.T) {
	f := parse(t, realistic)
	want := lines(
		"package natmap",
		"4 config natmap web #0",
		`5  option enable ["1"]`,
		`6  option family ["ipv4"]`,
		`7  option interface ["wan"]`,
		`8  option interval ["25"]`,
		`9  list stun_server ["stun.example.org" "stun2.example.org:3478"]`,
		`11  option http_server ["example.com"]`,
		`12  option port ["8080"]`,
		`13  option notify_script ["/etc/natmap/notify.sh"]`,
		"15 config natmap @natmap[1] #1",
		`16  option enable ["1"]`,
		`17  option udp_mode ["1"]`,
		`18  option port ["10000~10100"]`,
		`19  option notify_script ["/usr/bin/say \"it's up\""]`,
		"22 config natmap ssh #2",
		`23  option enable ["0"]`,
		`24  option port ["22"]`,
		`25  option stun_server ["stun.example.org"]`,
		"27 config natmap @natmap[3] #3",
		`28  option enable ["0"]`,
	)
	if got := dump(f); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if got := f.Typed("natmap"); len(got) != 4 || got[2].Ref() != "ssh" {
		t.Errorf("Typed(natmap) = %v", got)
	}
	if got := f.Typed("other"); got != nil {
		t.Errorf("Typed(other) = %v", got)
	}
}

// write is a test-only writer in the style of `uci export`: every word in
// single quotes; a quote in a word closes the quotes, is escaped with a
// backslash, and opens them again.
func write(f *File) string {
	q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
	var b strings.Builder
	if f.Package != "" {
		fmt.Fprintf(&b, "package %s\n", q(f.Package))
	}
	for _, s := range f.Sections {
		fmt.Fprintf(&b, "\nconfig %s", q(s.Type))
		if s.Name != "" {
			fmt.Fprintf(&b, " %s", q(s.Name))
		}
		b.WriteString("\n")
		for _, o := range s.Options {
			kw := "option"
			if o.List {
				kw = "list"
			}
			for _, v := range o.Values {
				fmt.Fprintf(&b, "\t%s %s %s\n", kw, q(o.Name), q(v))
			}
		}
	}
	return b.String()
}

// withoutLines is f without line numbers, to compare parses of different
// texts.
func withoutLines(f *File) File {
	c := File{Package: f.Package}
	for _, s := range f.Sections {
		cs := &Section{Type: s.Type, Name: s.Name, Index: s.Index}
		for _, o := range s.Options {
			cs.Options = append(cs.Options, &Option{Name: o.Name, Values: o.Values, List: o.List})
		}
		c.Sections = append(c.Sections, cs)
	}
	return c
}

var tricky = []string{
	"", "it's", `a"b`, `back\slash`, `\`, `'`, `''`, `"`, "#hash", "semi;colon", "multi\nline",
	"trailing newline\n", "tab\there", "  spaces  ", "héllo ✓", `\'`, `$(reboot)`, "a\\\nb",
}

func TestRoundTrip(t *testing.T) {
	// Values through single quotes, the way uci export writes them...
	f := &File{Package: "p", Sections: []*Section{{Type: "t", Name: "n"}, {Type: "odd'type\\", Index: 0}}}
	for i, v := range tricky {
		name := fmt.Sprintf("o%d", i)
		if v != "" { // an empty option is kept, but not replaced by the list below
			f.Sections[0].Options = append(f.Sections[0].Options, &Option{Name: name, Values: []string{v}})
		}
	}
	f.Sections[1].Options = append(f.Sections[1].Options, &Option{Name: "l", Values: tricky, List: true})
	text := write(f)
	if got, want := withoutLines(parse(t, text)), withoutLines(f); !reflect.DeepEqual(got, want) {
		t.Errorf("round trip of\n%s\ngave %s", text, dump(parse(t, text)))
	}

	// ...and through double quotes, escaping \ and ".
	for _, v := range tricky {
		dq := `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
		s := parse(t, "config t\noption v "+dq+"\n").Sections[0]
		if o, _ := s.Get("v"); o == nil || o.Values[0] != v {
			t.Errorf("double-quoted %s gave %+v, want %q", dq, o, v)
		}
	}
}

var (
	nameRE = regexp.MustCompile(`^[A-Za-z0-9_]+$`)
	pkgRE  = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	typeRE = regexp.MustCompile(`^[!-~]+$`)
)

func FuzzParse(f *testing.F) {
	stock, err := os.ReadFile("testdata/stock-natmap.config")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(stock)
	f.Add([]byte(realistic))
	f.Add([]byte("package 'import-test'\n\nconfig 'type' 'section'\n\toption mul_line_opt_sq \\''line 1\nline 2 \\\nline 3'\\'\n" +
		"\toption mul_line_opt_dq \"\\\"Hello, \\\nWorld.\\'\n\"\n"))
	f.Add([]byte("c t n\r\no a ''\nl a x\\\ny\no a 'b'\"c\"d#e\nconfig t n\nconfig dnsmasq\nconfig x cfg01411c\n"))
	f.Add([]byte("config t\noption a b; option c d\n"))
	for _, v := range tricky {
		f.Add([]byte(write(&File{Sections: []*Section{{Type: "t", Options: []*Option{{Name: "v", Values: []string{v}}}}}})))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("fuzz", strings.NewReader(string(data)))
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.File != "fuzz" || pe.Msg == "" ||
				pe.Line < 1 || pe.Line > strings.Count(string(data), "\n")+1 || pe.Col < 1 {
				t.Fatalf("bad error for %q: %#v", data, err)
			}
			return
		}
		if file.Package != "" && !pkgRE.MatchString(file.Package) {
			t.Fatalf("invalid package %q from %q", file.Package, data)
		}
		perType, names := map[string]int{}, map[string]bool{}
		for _, s := range file.Sections {
			if !typeRE.MatchString(s.Type) || s.Name != "" && !nameRE.MatchString(s.Name) {
				t.Fatalf("invalid section %q %q from %q", s.Type, s.Name, data)
			}
			if s.Name != "" && names[s.Name] {
				t.Fatalf("section %q twice from %q", s.Name, data)
			}
			names[s.Name] = s.Name != ""
			if s.Index != perType[s.Type] {
				t.Fatalf("section %s has index %d, want %d", s.Ref(), s.Index, perType[s.Type])
			}
			perType[s.Type]++
			opts := map[string]bool{}
			for _, o := range s.Options {
				if !nameRE.MatchString(o.Name) || opts[o.Name] || len(o.Values) == 0 || !o.List && len(o.Values) != 1 {
					t.Fatalf("invalid option %+v from %q", o, data)
				}
				opts[o.Name] = true
			}
		}
		text := write(file)
		again, err := Parse("again", strings.NewReader(text))
		if err != nil {
			t.Fatalf("written form of %q does not parse: %v\n%s", data, err, text)
		}
		if got, want := withoutLines(again), withoutLines(file); !reflect.DeepEqual(got, want) {
			t.Fatalf("round trip of %q:\n%s\ngave:\n%s", data, dump(file), dump(again))
		}
	})
}

// TestLargeInputs parses inputs near the size limit built to hurt a
// quadratic parser: many options, many empty options replaced later, many
// sections. It would take minutes if options were looked up by scanning.
func TestLargeInputs(t *testing.T) {
	var many, replaced, sections strings.Builder
	many.WriteString("config t\n")
	n := 0
	for ; many.Len() < maxFileSize-20; n++ {
		fmt.Fprintf(&many, "o a%d x\n", n)
	}
	if f := parse(t, many.String()); len(f.Sections[0].Options) != n {
		t.Errorf("%d options, want %d", len(f.Sections[0].Options), n)
	}

	replaced.WriteString("config t\n")
	n = 0
	for ; replaced.Len() < maxFileSize/3; n++ {
		fmt.Fprintf(&replaced, "o a%d\n", n)
	}
	for i := range n {
		fmt.Fprintf(&replaced, "o a%d %d\n", n-1-i, i)
	}
	f := parse(t, replaced.String())
	if opts := f.Sections[0].Options; len(opts) != n || opts[0].Name != fmt.Sprintf("a%d", n-1) || opts[n-1].Values[0] != fmt.Sprint(n-1) {
		t.Errorf("%d options, want %d in the order of their values", len(opts), n)
	}

	for sections.Len() < maxFileSize-5 {
		sections.WriteString("c t\n")
	}
	if f := parse(t, sections.String()); len(f.Sections) != maxFileSize/4-1 || f.Sections[len(f.Sections)-1].Ref() != fmt.Sprintf("@t[%d]", maxFileSize/4-2) {
		t.Errorf("%d sections", len(f.Sections))
	}
}

// A section's ID is its name, or libuci's name for an anonymous one, as
// config_foreach passes it to init scripts.
func TestSectionID(t *testing.T) {
	f, err := Parse("t", strings.NewReader("config defaults\nconfig zone 'lan'\nconfig zone\n"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range f.Sections {
		got = append(got, s.ID)
	}
	if want := "cfg01e63d lan cfg03dc81"; strings.Join(got, " ") != want {
		t.Fatalf("IDs %q, want %q", got, want)
	}
}
