package po2lmo

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Message is one entry of a .po file.
type Message struct {
	Line     int    // where its msgid is, for errors
	Ctxt     string // msgctxt; empty: none
	ID       string // msgid; empty for the header
	IDPlural string // msgid_plural; empty: not a plural message
	Str      []string
	Fuzzy    bool // "#, fuzzy": a translation to be checked, not used
}

// Plural reports whether the message has plural forms.
func (m *Message) Plural() bool { return m.IDPlural != "" }

// Catalog is a parsed .po file.
type Catalog struct {
	Header   string // the header entry's msgstr (msgid ""), decoded
	Messages []*Message
}

// HeaderField returns a header field's value ("Plural-Forms" ->
// "nplurals=1; plural=0;"), matching the name case-insensitively.
func (c *Catalog) HeaderField(name string) (string, bool) {
	for _, line := range strings.Split(c.Header, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// ParsePO reads a .po file. It is strict: an unknown keyword, a string
// that is not properly quoted, an unknown escape or a msgstr without msgid
// is an error naming the line.
func ParsePO(r io.Reader) (*Catalog, error) {
	p := &poParser{cat: &Catalog{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		p.line++
		if err := p.feed(strings.TrimRight(sc.Text(), "\r")); err != nil {
			return nil, fmt.Errorf("line %d: %w", p.line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if err := p.flush(); err != nil {
		return nil, fmt.Errorf("line %d: %w", p.line, err)
	}
	return p.cat, nil
}

type poParser struct {
	cat     *Catalog
	line    int
	cur     *Message
	hasID   bool
	hasStr  bool
	fuzzy   bool    // the flags comment before the current entry said fuzzy
	target  *string // where continuation strings go
	sawCtxt bool
}

func (p *poParser) feed(line string) error {
	t := strings.TrimSpace(line)
	switch {
	case t == "":
		return nil
	case strings.HasPrefix(t, "#"):
		if strings.HasPrefix(t, "#,") {
			for _, f := range strings.Split(t[2:], ",") {
				if strings.TrimSpace(f) == "fuzzy" {
					if err := p.flushIfComplete(); err != nil {
						return err
					}
					p.fuzzy = true
				}
			}
		}
		return nil
	case strings.HasPrefix(t, `"`):
		if p.target == nil {
			return fmt.Errorf("string %s outside a msgid or msgstr", t)
		}
		s, err := unquote(t)
		if err != nil {
			return err
		}
		*p.target += s
		return nil
	}
	kw, rest, _ := strings.Cut(t, " ")
	s, err := unquote(strings.TrimSpace(rest))
	if err != nil {
		return fmt.Errorf("%s: %w", kw, err)
	}
	switch {
	case kw == "msgctxt":
		if err := p.flushIfComplete(); err != nil {
			return err
		}
		if p.cur == nil {
			p.start()
		}
		if p.sawCtxt || p.hasID {
			return fmt.Errorf("msgctxt twice")
		}
		p.sawCtxt = true
		p.cur.Ctxt = s
		p.target = &p.cur.Ctxt
	case kw == "msgid":
		if err := p.flushIfComplete(); err != nil {
			return err
		}
		if p.cur == nil {
			p.start()
		}
		if p.hasID {
			return fmt.Errorf("msgid without msgstr before it")
		}
		p.hasID = true
		p.cur.ID = s
		p.cur.Line = p.line
		p.target = &p.cur.ID
	case kw == "msgid_plural":
		if !p.hasID || p.hasStr {
			return fmt.Errorf("msgid_plural not right after a msgid")
		}
		p.cur.IDPlural = s
		p.target = &p.cur.IDPlural
	case kw == "msgstr" || strings.HasPrefix(kw, "msgstr["):
		if !p.hasID {
			return fmt.Errorf("%s without msgid", kw)
		}
		n := 0
		if kw != "msgstr" {
			idx, ok := strings.CutSuffix(kw[len("msgstr["):], "]")
			v, err := strconv.Atoi(idx)
			if !ok || err != nil || v < 0 || v > 99 {
				return fmt.Errorf("bad plural index in %s", kw)
			}
			n = v
			if !p.cur.Plural() {
				return fmt.Errorf("%s for a message without msgid_plural", kw)
			}
		} else if p.cur.Plural() {
			return fmt.Errorf("msgstr without index for a plural message")
		}
		if n != len(p.cur.Str) {
			return fmt.Errorf("%s out of order (want msgstr[%d])", kw, len(p.cur.Str))
		}
		p.hasStr = true
		p.cur.Str = append(p.cur.Str, s)
		p.target = &p.cur.Str[n]
	default:
		return fmt.Errorf("unknown keyword %q", kw)
	}
	return nil
}

func (p *poParser) start() {
	p.cur = &Message{Fuzzy: p.fuzzy}
	p.fuzzy = false
	p.hasID, p.hasStr, p.sawCtxt = false, false, false
}

// flushIfComplete ends the current entry if it has its msgstr.
func (p *poParser) flushIfComplete() error {
	if p.cur != nil && p.hasStr {
		return p.flush()
	}
	return nil
}

func (p *poParser) flush() error {
	if p.cur == nil {
		return nil
	}
	m := p.cur
	if !p.hasStr {
		return fmt.Errorf("entry at line %d has no msgstr", m.Line)
	}
	p.cur, p.target = nil, nil
	if m.ID == "" && m.Ctxt == "" {
		if p.cat.Header != "" {
			return fmt.Errorf("second header entry (msgid \"\") at line %d", m.Line)
		}
		p.cat.Header = m.Str[0]
		return nil
	}
	p.cat.Messages = append(p.cat.Messages, m)
	return nil
}

// unquote decodes one PO string literal: "..." with C escapes.
func unquote(s string) (string, error) {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return "", fmt.Errorf("want a quoted string, have %q", s)
	}
	s = s[1 : len(s)-1]
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '"' {
			return "", fmt.Errorf("unescaped quote in %q", s)
		}
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		i++
		if i == len(s) {
			return "", fmt.Errorf("string ends with a backslash")
		}
		switch e := s[i]; e {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'a':
			b.WriteByte('\a')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'v':
			b.WriteByte('\v')
		case '"', '\\', '\'', '?':
			b.WriteByte(e)
		case 'x':
			j := i + 1
			for j < len(s) && j < i+3 && strings.IndexByte("0123456789abcdefABCDEF", s[j]) >= 0 {
				j++
			}
			if j == i+1 {
				return "", fmt.Errorf(`\x without hex digits`)
			}
			v, _ := strconv.ParseUint(s[i+1:j], 16, 8)
			b.WriteByte(byte(v))
			i = j - 1
		case '0', '1', '2', '3', '4', '5', '6', '7':
			j := i
			for j < len(s) && j < i+3 && s[j] >= '0' && s[j] <= '7' {
				j++
			}
			v, err := strconv.ParseUint(s[i:j], 8, 8)
			if err != nil {
				return "", fmt.Errorf(`octal escape \%s out of range`, s[i:j])
			}
			b.WriteByte(byte(v))
			i = j - 1
		default:
			return "", fmt.Errorf(`unknown escape \%c`, e)
		}
	}
	return b.String(), nil
}
