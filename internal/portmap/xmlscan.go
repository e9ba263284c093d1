package portmap

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// A small, strict XML scanner for the router's device description and
// SOAP replies: elements, text and CDATA; comments and processing
// instructions skipped; no DTD, no entities beyond XML's five and
// character references. encoding/xml would add about 20 KB to the mipsel
// package, whose budget is nearly spent.

type xmlKind int

const (
	xmlStart xmlKind = iota + 1 // Name; a self-closing tag gives xmlStart then xmlEnd
	xmlEnd                      // Name
	xmlText                     // Text, entities decoded
)

type xmlToken struct {
	Kind xmlKind
	Name string // local name, without its prefix
	Text string
}

type xmlScanner struct {
	b       []byte
	pos     int
	stack   []string // open elements (qualified names)
	pending *xmlToken
	sawRoot bool
}

func newXMLScanner(b []byte) *xmlScanner { return &xmlScanner{b: b} }

var errXMLEnd = errors.New("end of XML")

// Next returns the next token, errXMLEnd after the root element closes
// (only whitespace, comments and processing instructions may follow).
func (s *xmlScanner) Next() (xmlToken, error) {
	if s.pending != nil {
		t := *s.pending
		s.pending = nil
		return t, nil
	}
	for {
		if s.pos >= len(s.b) {
			if len(s.stack) > 0 {
				return xmlToken{}, fmt.Errorf("XML: <%s> not closed", truncate(s.stack[len(s.stack)-1]))
			}
			if !s.sawRoot {
				return xmlToken{}, errors.New("XML: no root element")
			}
			return xmlToken{}, errXMLEnd
		}
		if s.b[s.pos] != '<' {
			end := bytes.IndexByte(s.b[s.pos:], '<')
			if end < 0 {
				end = len(s.b) - s.pos
			}
			raw := string(s.b[s.pos : s.pos+end])
			s.pos += end
			if len(s.stack) == 0 {
				if strings.TrimSpace(raw) != "" {
					return xmlToken{}, errors.New("XML: text outside the root element")
				}
				continue
			}
			text, err := xmlUnescape(raw)
			if err != nil {
				return xmlToken{}, err
			}
			return xmlToken{Kind: xmlText, Text: text}, nil
		}
		rest := s.b[s.pos:]
		switch {
		case bytes.HasPrefix(rest, []byte("<?")):
			end := bytes.Index(rest, []byte("?>"))
			if end < 0 {
				return xmlToken{}, errors.New("XML: unterminated processing instruction")
			}
			s.pos += end + 2
		case bytes.HasPrefix(rest, []byte("<!--")):
			end := bytes.Index(rest[4:], []byte("-->"))
			if end < 0 {
				return xmlToken{}, errors.New("XML: unterminated comment")
			}
			s.pos += 4 + end + 3
		case bytes.HasPrefix(rest, []byte("<![CDATA[")):
			if len(s.stack) == 0 {
				return xmlToken{}, errors.New("XML: CDATA outside the root element")
			}
			end := bytes.Index(rest[9:], []byte("]]>"))
			if end < 0 {
				return xmlToken{}, errors.New("XML: unterminated CDATA")
			}
			text := string(rest[9 : 9+end])
			s.pos += 9 + end + 3
			if !utf8.ValidString(text) {
				return xmlToken{}, errors.New("XML: invalid UTF-8")
			}
			return xmlToken{Kind: xmlText, Text: text}, nil
		case bytes.HasPrefix(rest, []byte("<!")):
			return xmlToken{}, errors.New("XML: DTDs and declarations are not accepted")
		case bytes.HasPrefix(rest, []byte("</")):
			end := bytes.IndexByte(rest, '>')
			if end < 0 {
				return xmlToken{}, errors.New("XML: unterminated end tag")
			}
			name := strings.TrimRight(string(rest[2:end]), " \t\r\n")
			s.pos += end + 1
			if len(s.stack) == 0 || s.stack[len(s.stack)-1] != name {
				return xmlToken{}, fmt.Errorf("XML: unexpected </%s>", truncate(name))
			}
			s.stack = s.stack[:len(s.stack)-1]
			return xmlToken{Kind: xmlEnd, Name: localName(name)}, nil
		default:
			return s.startTag()
		}
	}
}

// startTag reads "<name attr='v' ...>" or "<name .../>".
func (s *xmlScanner) startTag() (xmlToken, error) {
	i := s.pos + 1
	for i < len(s.b) && !strings.ContainsRune(" \t\r\n/>", rune(s.b[i])) {
		i++
	}
	name := string(s.b[s.pos+1 : i])
	if !validXMLName(name) {
		return xmlToken{}, fmt.Errorf("XML: bad element name %q", truncate(name))
	}
	// Attributes: name="value" or name='value', skipped.
	for {
		for i < len(s.b) && strings.ContainsRune(" \t\r\n", rune(s.b[i])) {
			i++
		}
		if i >= len(s.b) {
			return xmlToken{}, errors.New("XML: unterminated start tag")
		}
		if s.b[i] == '>' || (s.b[i] == '/' && i+1 < len(s.b) && s.b[i+1] == '>') {
			break
		}
		eq := bytes.IndexByte(s.b[i:], '=')
		if eq <= 0 || !validXMLName(strings.TrimRight(string(s.b[i:i+eq]), " \t\r\n")) {
			return xmlToken{}, errors.New("XML: bad attribute")
		}
		i += eq + 1
		for i < len(s.b) && strings.ContainsRune(" \t\r\n", rune(s.b[i])) {
			i++
		}
		if i >= len(s.b) || (s.b[i] != '"' && s.b[i] != '\'') {
			return xmlToken{}, errors.New("XML: unquoted attribute value")
		}
		end := bytes.IndexByte(s.b[i+1:], s.b[i])
		if end < 0 || bytes.IndexByte(s.b[i+1:i+1+end], '<') >= 0 {
			return xmlToken{}, errors.New("XML: bad attribute value")
		}
		i += 1 + end + 1
	}
	if len(s.stack) == 0 && s.sawRoot {
		return xmlToken{}, errors.New("XML: a second root element")
	}
	if len(s.stack) >= maxXMLDepth {
		return xmlToken{}, errors.New("XML: nested too deep")
	}
	s.sawRoot = true
	t := xmlToken{Kind: xmlStart, Name: localName(name)}
	if s.b[i] == '/' {
		s.pos = i + 2
		s.pending = &xmlToken{Kind: xmlEnd, Name: t.Name}
		return t, nil
	}
	s.pos = i + 1
	s.stack = append(s.stack, name)
	return t, nil
}

func localName(name string) string {
	if i := strings.IndexByte(name, ':'); i >= 0 {
		return name[i+1:]
	}
	return name
}

func validXMLName(n string) bool {
	if n == "" || strings.Count(n, ":") > 1 || n[0] == ':' || n[len(n)-1] == ':' {
		return false
	}
	for i, r := range n {
		ok := r == '_' || r == ':' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= 0x80 && r != utf8.RuneError ||
			i > 0 && (r == '-' || r == '.' || r >= '0' && r <= '9')
		if !ok {
			return false
		}
	}
	return true
}

// xmlUnescape decodes XML's five entities and character references.
func xmlUnescape(s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", errors.New("XML: invalid UTF-8")
	}
	if !strings.Contains(s, "&") {
		return s, nil
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '&')
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], ';')
		if end < 0 {
			return "", errors.New("XML: unterminated entity")
		}
		ent := s[i+1 : i+end]
		s = s[i+end+1:]
		switch ent {
		case "lt":
			b.WriteByte('<')
		case "gt":
			b.WriteByte('>')
		case "amp":
			b.WriteByte('&')
		case "quot":
			b.WriteByte('"')
		case "apos":
			b.WriteByte('\'')
		default:
			var n uint64
			var err error
			switch {
			case strings.HasPrefix(ent, "#x"):
				n, err = strconv.ParseUint(ent[2:], 16, 32)
			case strings.HasPrefix(ent, "#"):
				n, err = strconv.ParseUint(ent[1:], 10, 32)
			default:
				err = errors.New("unknown")
			}
			if err != nil || n == 0 || n > utf8.MaxRune || !utf8.ValidRune(rune(n)) || len(ent) < 2 || ent[1] == '+' || (len(ent) > 2 && ent[2] == '+') {
				return "", fmt.Errorf("XML: entity &%s;", truncate(ent))
			}
			b.WriteRune(rune(n))
		}
	}
}

var xmlEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&apos;")
