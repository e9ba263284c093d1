// Package uci reads OpenWrt UCI configuration files (/etc/config/NAME) as
// libuci reads them (openwrt/uci, file.c and list.c), and strictly: whatever
// it accepts means what it means to libuci, so natmap runs what `uci show`
// shows. Where libuci's parser reads something by accident (a ';' that can
// drop the rest of its line, an empty argument that starts a new statement),
// this reader refuses it with an error that says what was expected.
//
// The grammar, one statement per line:
//
//	package NAME
//	config TYPE ['NAME']
//	option NAME ['VALUE']
//	list NAME ['VALUE']
//
// The keywords may be abbreviated to p, c, o and l, as libuci allows. An
// argument is a word made of adjacent pieces, concatenated: 'single quoted'
// (no escapes), "double quoted" (a backslash takes the next byte as is), and
// unquoted bytes (the same backslash rule). A backslash before a line break
// joins the lines (not inside single quotes); quotes may span lines, keeping
// the line breaks. A '#' outside quotes starts a comment to the end of the
// line. Lines end in LF or CRLF.
package uci

import (
	"fmt"
	"io"
	"slices"
)

const (
	maxFileSize = 1 << 20  // a config of natmap mappings is a few KiB
	maxLineSize = 64 << 10 // per physical line, without its line break
)

// File is a parsed config file.
type File struct {
	Name     string     // as given to Parse, for messages
	Package  string     // from a "package NAME" statement; "" without one
	Sections []*Section // in file order
}

// Section is a config section. A "config" statement naming a section that
// exists (same type) adds to it, as libuci does; it is not a new section.
type Section struct {
	Type, Name string    // Name is "" for an anonymous section
	ID         string    // Name, or the cfgNNHHHH name libuci gives an anonymous section (as config_foreach passes it)
	Index      int       // position among the sections of Type, named or not, from 0
	Line       int       // of the first config statement
	Options    []*Option // in file order
}

// Option is an option or a list of a section, after libuci's rules for a
// repeated name: a later option replaces the value (and turns a list into an
// option); a list appends (and turns an option into a list of its value and
// the new one).
//
// An option with an empty value, quoted or missing ("option NAME"), is kept
// as Values [""], so that it can be seen, but libuci does not store it
// (uci_set does nothing with an empty value while parsing) and `uci show`
// does not show it: callers should read "" as unset. For the same reason
// an empty option never replaces an earlier value, and a later option or
// list of the same name replaces it as if it were not there. A list may
// hold "".
type Option struct {
	Name   string
	Values []string // one for an option; one or more for a list
	List   bool
	Line   int // of the statement that set the first value
}

// ParseError is a syntax error, or a statement libuci would refuse or read
// differently.
type ParseError struct {
	File      string
	Line, Col int // from 1, Col in bytes; both 0 when about the whole file
	Msg       string
}

func (e *ParseError) Error() string {
	if e.Line == 0 {
		return e.File + ": " + e.Msg
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// Parse reads a UCI config file; name is used in errors. It refuses files
// over 1 MiB, physical lines over 64 KiB, NUL bytes and control characters
// other than tab, LF and the CR of CRLF. Syntax errors are *ParseError.
func Parse(name string, r io.Reader) (*File, error) {
	src, err := io.ReadAll(io.LimitReader(r, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(src) > maxFileSize {
		return nil, &ParseError{File: name, Msg: "file larger than 1 MiB, expected a small config file"}
	}
	p := &parser{
		src:       src,
		line:      1,
		col:       1,
		file:      &File{Name: name},
		named:     map[string]*Section{},
		generated: map[string]*Section{},
		perType:   map[string]int{},
		options:   map[optionKey]int{},
	}
	if err := p.checkBytes(); err != nil {
		return nil, err
	}
	for p.pos < len(p.src) {
		if err := p.statement(); err != nil {
			return nil, err
		}
	}
	for _, s := range p.file.Sections {
		s.Options = slices.DeleteFunc(s.Options, func(o *Option) bool { return o == nil })
	}
	return p.file, nil
}

// Ref is how `uci show` addresses the section: its name, or "@TYPE[i]" for
// an anonymous section.
func (s *Section) Ref() string {
	if s.Name != "" {
		return s.Name
	}
	return fmt.Sprintf("@%s[%d]", s.Type, s.Index)
}

// Get returns the option or list called name.
func (s *Section) Get(name string) (*Option, bool) {
	for _, o := range s.Options {
		if o.Name == name {
			return o, true
		}
	}
	return nil, false
}

// Typed returns the sections of type typ, in file order.
func (f *File) Typed(typ string) []*Section {
	var out []*Section
	for _, s := range f.Sections {
		if s.Type == typ {
			out = append(out, s)
		}
	}
	return out
}
