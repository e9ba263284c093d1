package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ParseMark reads an fwmark as C's strtoul(s, NULL, 0) does: hex with 0x,
// octal with a leading 0, else decimal.
func ParseMark(s string) (uint32, error) {
	base, digits := 10, s
	switch {
	case strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X"):
		base, digits = 16, s[2:]
	case len(s) > 1 && s[0] == '0':
		base, digits = 8, s[1:]
	}
	n, err := strconv.ParseUint(digits, base, 32)
	if err != nil || digits == "" || digits[0] == '+' || strings.Contains(digits, "_") {
		return 0, fmt.Errorf("%q is not a mark (hex: 0x1, dec: 1, oct: 01)", s)
	}
	return uint32(n), nil
}

// ParseInterface reads what -i (and UCI's option interface) names: like
// the C natmap, a local address when it parses as one, else an interface
// name.
func ParseInterface(s string) (addr netip.Addr, name string) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), ""
	}
	return netip.Addr{}, s
}

// Field is a setting of a mapping, for each front end to name in its own
// words (-s on the command line, option stun_server in UCI).
type Field int

// The fields a FieldError can name.
const (
	FieldSTUN Field = iota + 1 // the STUN servers
	FieldHTTP                  // the keep-alive HTTP server
)

// FieldError is a setting Validate rejects. Its message does not name the
// option: front ends do, with Word.
type FieldError struct {
	Field Field
	Err   error
}

func (e *FieldError) Error() string { return e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// Word returns err with the option that sets a FieldError's field named
// after it, as name words it ("" names nothing); other errors are returned
// as they are.
func Word(err error, name func(Field) string) error {
	var fe *FieldError
	if !errors.As(err, &fe) {
		return err
	}
	if n := name(fe.Field); n != "" {
		return fmt.Errorf("%w (%s)", err, n)
	}
	return err
}
