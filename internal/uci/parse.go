package uci

import "fmt"

// parser holds one Parse: the input, the place of the next byte, and what
// has been built so far.
type parser struct {
	src       []byte
	pos       int
	line, col int // of src[pos]

	file      *File
	sec       *Section            // where option and list statements go
	named     map[string]*Section // by name
	generated map[string]*Section // anonymous sections, by the name libuci gives them
	perType   map[string]int      // sections so far per type, for Index
	allocated int                 // libuci's n_section: sections created so far
	pkgLine   int                 // of the package statement, 0 without one
	options   map[optionKey]int   // where each option is in its section's Options
}

type optionKey struct {
	sec  *Section
	name string
}

// word is one argument of a statement, unquoted and unescaped.
type word struct {
	s         string
	line, col int
}

func (p *parser) errAt(line, col int, format string, args ...any) error {
	return &ParseError{File: p.file.Name, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) errHere(format string, args ...any) error {
	return p.errAt(p.line, p.col, format, args...)
}

// checkBytes refuses, before any parsing, what can only be damage: NUL,
// control characters, a CR that does not end a line, huge lines. libuci
// would read most of these into values; natmap has no use for them.
func (p *parser) checkBytes() error {
	line, col := 1, 1
	for i, c := range p.src {
		switch {
		case c == '\n':
			line, col = line+1, 1
			continue
		case c == 0:
			return p.errAt(line, col, "NUL byte, expected text")
		case c == '\r':
			if i+1 == len(p.src) || p.src[i+1] != '\n' {
				return p.errAt(line, col, "carriage return without a line feed, expected LF or CRLF line endings")
			}
		case c < ' ' && c != '\t' || c == 0x7f:
			return p.errAt(line, col, "control character 0x%02x, expected text", c)
		}
		if col > maxLineSize && c != '\r' {
			return p.errAt(line, col, "line longer than %d bytes, expected a shorter line", maxLineSize)
		}
		col++
	}
	return nil
}

func (p *parser) eof() bool { return p.pos >= len(p.src) }

// advance moves past one byte, keeping line and col.
func (p *parser) advance() {
	if p.src[p.pos] == '\n' {
		p.line, p.col = p.line+1, 1
	} else {
		p.col++
	}
	p.pos++
}

// atBreak reports whether a line break (LF or CRLF) starts at pos. A CR is
// always followed by LF: checkBytes saw to it.
func (p *parser) atBreak() bool {
	return !p.eof() && (p.src[p.pos] == '\n' || p.src[p.pos] == '\r')
}

// skipBreak moves past the line break at pos.
func (p *parser) skipBreak() {
	if p.src[p.pos] == '\r' {
		p.advance()
	}
	p.advance()
}

func (p *parser) skipBlanks() {
	for !p.eof() && (p.src[p.pos] == ' ' || p.src[p.pos] == '\t') {
		p.advance()
	}
}

// atEnd reports whether the statement ends here: end of file, a line
// break, or a comment.
func (p *parser) atEnd() bool {
	return p.eof() || p.atBreak() || p.src[p.pos] == '#'
}

// endLine moves past a comment, if any, and the line break.
func (p *parser) endLine() {
	for !p.eof() && !p.atBreak() {
		p.advance()
	}
	if !p.eof() {
		p.skipBreak()
	}
}

// statement parses one line (more with quotes or continuations).
func (p *parser) statement() error {
	p.skipBlanks()
	if p.atEnd() {
		p.endLine()
		return nil
	}
	// libuci splits the keyword off with strtok(" \t"): it is raw bytes up
	// to a blank, with no quoting, and the whole word must match.
	line, col, start := p.line, p.col, p.pos
	for !p.eof() && !p.atBreak() && p.src[p.pos] != ' ' && p.src[p.pos] != '\t' {
		p.advance()
	}
	var handle func(line, col int, args []word) error
	switch kw := string(p.src[start:p.pos]); kw {
	case "package", "p":
		handle = p.pkg
	case "config", "c":
		handle = p.config
	case "option", "o":
		handle = func(line, col int, args []word) error { return p.option(line, col, args, false) }
	case "list", "l":
		handle = func(line, col int, args []word) error { return p.option(line, col, args, true) }
	default:
		return p.errAt(line, col, "invalid keyword %q, expected package, config, option or list", kw)
	}
	args, err := p.args()
	if err != nil {
		return err
	}
	return handle(line, col, args)
}

// args reads the arguments up to the end of the statement, and the line
// break after it.
func (p *parser) args() ([]word, error) {
	var args []word
	for {
		p.skipBlanks()
		if p.atEnd() {
			p.endLine()
			return args, nil
		}
		if p.src[p.pos] == ';' {
			// libuci ends the argument at ';', then either reads the rest of
			// the line as the next statement, drops it silently (after an
			// unquoted word: the ';' is overwritten), or fails on the line
			// break (a trailing ';' after quotes). Too fragile to accept.
			return nil, p.errHere("';' outside quotes, expected one statement per line (quote a literal ';')")
		}
		w, err := p.word()
		if err != nil {
			return nil, err
		}
		args = append(args, w)
	}
}

// word reads one argument: adjacent quoted and unquoted pieces.
func (p *parser) word() (word, error) {
	w := word{line: p.line, col: p.col}
	var b []byte
	for !p.eof() {
		var err error
		switch c := p.src[p.pos]; c {
		case ' ', '\t', '\n', '\r', '#', ';':
			w.s = string(b)
			return w, nil
		case '\'':
			b, err = p.singleQuoted(b)
		case '"':
			b, err = p.doubleQuoted(b)
		case '\\':
			line, col := p.line, p.col
			var ok bool
			if b, ok = p.escape(b); !ok {
				err = p.errAt(line, col, "backslash at end of file, expected a character to escape or a line break")
			}
		default:
			b = append(b, c)
			p.advance()
		}
		if err != nil {
			return word{}, err
		}
	}
	w.s = string(b)
	return w, nil
}

// escape handles a backslash outside single quotes: before a line break it
// joins the lines; before anything else it stands for that byte, with no
// decoding ("\n" is "n"), as libuci's parse_backslash. It reports false at
// end of file.
func (p *parser) escape(b []byte) ([]byte, bool) {
	p.advance()
	switch {
	case p.eof():
		return b, false
	case p.atBreak():
		p.skipBreak()
	default:
		b = append(b, p.src[p.pos])
		p.advance()
	}
	return b, true
}

// singleQuoted reads '...': every byte as is, line breaks included.
func (p *parser) singleQuoted(b []byte) ([]byte, error) {
	line, col := p.line, p.col
	p.advance()
	for {
		switch {
		case p.eof():
			return nil, p.errAt(line, col, "unterminated quote, expected '")
		case p.src[p.pos] == '\'':
			p.advance()
			return b, nil
		case p.src[p.pos] == '\r':
			return nil, p.errHere("carriage return inside quotes, expected LF line endings in a multi-line value")
		}
		b = append(b, p.src[p.pos])
		p.advance()
	}
}

// doubleQuoted reads "...": bytes as is but for backslash escapes.
func (p *parser) doubleQuoted(b []byte) ([]byte, error) {
	line, col := p.line, p.col
	p.advance()
	for {
		if p.eof() {
			return nil, p.errAt(line, col, "unterminated quote, expected \"")
		}
		switch c := p.src[p.pos]; c {
		case '"':
			p.advance()
			return b, nil
		case '\\':
			b, _ = p.escape(b) // at end of file, the loop reports the quote
		case '\r':
			return nil, p.errHere("carriage return inside quotes, expected LF line endings in a multi-line value")
		default:
			b = append(b, c)
			p.advance()
		}
	}
}

// pkg handles "package NAME". libuci's loader parses and then ignores it;
// `uci import` starts a new package with it, which File cannot hold, so
// only one is accepted, before the sections.
func (p *parser) pkg(line, col int, args []word) error {
	if len(args) == 0 || args[0].s == "" {
		return p.missing(line, col, args, "missing package name, expected package NAME")
	}
	if len(args) > 1 {
		return p.errAt(args[1].line, args[1].col, "too many arguments, expected end of line after package NAME")
	}
	name := args[0]
	if !validPackage(name.s) {
		return p.errAt(name.line, name.col, "invalid package name %q, expected letters, digits, _ and -", name.s)
	}
	if p.pkgLine != 0 {
		return p.errAt(line, col, "second package statement (the first is on line %d), expected one", p.pkgLine)
	}
	if len(p.file.Sections) > 0 {
		return p.errAt(line, col, "package statement after a config section, expected it before the first config")
	}
	p.file.Package, p.pkgLine = name.s, line
	return nil
}

// config handles "config TYPE ['NAME']" (libuci's uci_parse_config).
func (p *parser) config(line, col int, args []word) error {
	if len(args) == 0 || args[0].s == "" {
		return p.missing(line, col, args, "missing section type, expected config TYPE ['NAME']")
	}
	if len(args) > 2 {
		return p.errAt(args[2].line, args[2].col, "too many arguments, expected end of line after config TYPE 'NAME'")
	}
	typ := args[0]
	if !validType(typ.s) {
		return p.errAt(typ.line, typ.col, "invalid section type %q, expected printable ASCII without spaces", typ.s)
	}
	if len(args) == 1 || args[1].s == "" {
		p.sec = p.newSection(typ.s, "", line)
		return nil
	}
	name := args[1]
	if !validName(name.s) {
		return p.errAt(name.line, name.col, "invalid section name %q, expected letters, digits and _", name.s)
	}
	if s, ok := p.named[name.s]; ok {
		// libuci adds to the existing section, and refuses (in its default
		// strict mode) to change its type.
		if s.Type != typ.s {
			return p.errAt(typ.line, typ.col, "section %q redeclared as type %q, expected its type %q from line %d", name.s, typ.s, s.Type, s.Line)
		}
		p.sec = s
		return nil
	}
	if s, ok := p.generated[name.s]; ok {
		// libuci would find the anonymous section by this name and add to
		// it (or fail on another type): not what the file seems to say.
		return p.errAt(name.line, name.col, "section name %q is the name libuci gives %s (line %d), expected another name", name.s, s.Ref(), s.Line)
	}
	p.sec = p.newSection(typ.s, name.s, line)
	p.named[name.s] = p.sec
	return nil
}

func (p *parser) newSection(typ, name string, line int) *Section {
	s := &Section{Type: typ, Name: name, Index: p.perType[typ], Line: line}
	p.perType[typ]++
	p.allocated++
	p.file.Sections = append(p.file.Sections, s)
	s.ID = name
	if name == "" {
		s.ID = generatedName(p.allocated, typ)
		p.generated[s.ID] = s
	}
	return s
}

// generatedName is the name libuci gives a new anonymous section (list.c,
// uci_add_section and uci_fixup_section): "cfg", the count of sections so
// far, and djbhash of the type (the section has no options yet), so that a
// named section can be told from it.
func generatedName(count int, typ string) string {
	h := uint32(5381)
	for i := 0; i < len(typ); i++ {
		h = h<<5 + h + uint32(typ[i]) // types are ASCII: C's char signedness does not matter
	}
	return fmt.Sprintf("cfg%02x%04x", count, h&0xffff)
}

// option handles "option NAME ['VALUE']" and "list NAME ['VALUE']".
func (p *parser) option(line, col int, args []word, list bool) error {
	kw := "option"
	if list {
		kw = "list"
	}
	if p.sec == nil {
		return p.errAt(line, col, "%s before the first section, expected config TYPE ['NAME'] first", kw)
	}
	if len(args) == 0 || args[0].s == "" {
		return p.missing(line, col, args, "missing %s name, expected %s NAME 'VALUE'", kw, kw)
	}
	if len(args) > 2 {
		return p.errAt(args[2].line, args[2].col, "too many arguments, expected end of line after %s NAME 'VALUE'", kw)
	}
	name := args[0]
	if !validName(name.s) {
		return p.errAt(name.line, name.col, "invalid %s name %q, expected letters, digits and _", kw, name.s)
	}
	value := "" // libuci reads a missing value as ""
	if len(args) == 2 {
		value = args[1].s
	}
	p.set(name.s, value, list, line)
	return nil
}

// set applies an option or list statement to the current section with
// libuci's rules (list.c: uci_set, uci_add_list); see Option.
func (p *parser) set(name, value string, list bool, line int) {
	s := p.sec
	k := optionKey{s, name}
	i, ok := p.options[k]
	if ok && unset(s.Options[i]) && (list || value != "") {
		// libuci never stored it: the new value comes last, like a new
		// option. The hole is closed at the end, keeping this O(1).
		s.Options[i] = nil
		ok = false
	}
	switch {
	case !ok:
		p.options[k] = len(s.Options)
		s.Options = append(s.Options, &Option{Name: name, Values: []string{value}, List: list, Line: line})
	case list:
		o := s.Options[i]
		o.Values = append(o.Values, value)
		o.List = true
	case value == "":
		// uci_set ignores an empty value: the earlier value stays.
	default:
		o := s.Options[i]
		o.Values, o.List, o.Line = []string{value}, false, line
	}
}

// unset reports whether o is an empty option, which libuci does not store.
func unset(o *Option) bool {
	return !o.List && len(o.Values) == 1 && o.Values[0] == ""
}

// missing reports a missing argument where the empty one is, or at the
// keyword when there is none.
func (p *parser) missing(line, col int, args []word, format string, a ...any) error {
	if len(args) > 0 {
		line, col = args[0].line, args[0].col
	}
	return p.errAt(line, col, format, a...)
}

// validName is libuci's uci_validate_name, for section and option names.
func validName(s string) bool {
	return validChars(s, func(c byte) bool { return false })
}

// validPackage is libuci's uci_validate_package: names, and '-'.
func validPackage(s string) bool {
	return validChars(s, func(c byte) bool { return c == '-' })
}

// validType is libuci's uci_validate_type: any printable ASCII but space.
func validType(s string) bool {
	return validChars(s, func(c byte) bool { return c > ' ' && c < 0x7f })
}

func validChars(s string, extra func(byte) bool) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || extra(c)) {
			return false
		}
	}
	return true
}
