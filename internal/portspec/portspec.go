// Package portspec parses the C natmap's bind port spec (-b) and picks the
// port to bind: "0" (the kernel picks), "N", "A-B" (sequential) and "A~B"
// (random within the range).
package portspec

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Spec is a parsed port spec. Lo == Hi == 0 means the kernel picks.
type Spec struct {
	Lo, Hi uint16
	Random bool
}

// Parse reads "0", "N", "A-B" or "A~B". Unlike the C natmap's sscanf, it
// rejects anything else instead of reading a prefix.
func Parse(s string) (Spec, error) {
	sep := strings.IndexAny(s, "-~")
	if sep < 0 {
		p, err := parsePort(s, true)
		if err != nil {
			return Spec{}, err
		}
		return Spec{Lo: p, Hi: p}, nil
	}
	lo, err := parsePort(s[:sep], false)
	if err != nil {
		return Spec{}, err
	}
	hi, err := parsePort(s[sep+1:], false)
	if err != nil {
		return Spec{}, err
	}
	if lo > hi {
		return Spec{}, fmt.Errorf("port range %q: start is above end", s)
	}
	return Spec{Lo: lo, Hi: hi, Random: s[sep] == '~'}, nil
}

func parsePort(s string, zeroOK bool) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || s == "" || s[0] == '+' {
		return 0, fmt.Errorf("port %q: want a number from 1 to 65535", s)
	}
	if n == 0 && !zeroOK {
		return 0, fmt.Errorf("port %q: a range starts at 1", s)
	}
	return uint16(n), nil
}

// String gives the spec back in the form Parse reads.
func (s Spec) String() string {
	switch {
	case s.Lo == s.Hi:
		return strconv.Itoa(int(s.Lo))
	case s.Random:
		return fmt.Sprintf("%d~%d", s.Lo, s.Hi)
	default:
		return fmt.Sprintf("%d-%d", s.Lo, s.Hi)
	}
}

// Picker walks a spec. A mapping keeps its port across sessions and moves
// on only when binding or connecting from it failed (the C natmap's rule
// since 20260214), so a public port that worked is not given up lightly.
type Picker struct {
	spec Spec
	cur  uint16
}

// NewPicker starts at the first port of the spec (a random one for A~B).
func NewPicker(s Spec) *Picker {
	p := &Picker{spec: s, cur: s.Lo}
	if s.Random {
		p.cur = p.random()
	}
	return p
}

// Port is the port to bind now; 0 lets the kernel pick.
func (p *Picker) Port() uint16 { return p.cur }

// Keep records the port the kernel picked for spec "0", so that a new
// session binds the same port again.
func (p *Picker) Keep(port uint16) {
	if p.spec.Lo == 0 {
		p.cur = port
	}
}

// Advance moves on after a bind or connect failure: the next port of a
// sequential range (wrapping), a new random one, or back to "kernel picks".
func (p *Picker) Advance() {
	switch {
	case p.spec.Lo == 0:
		p.cur = 0
	case p.spec.Random:
		p.cur = p.random()
	case p.cur >= p.spec.Hi:
		p.cur = p.spec.Lo
	default:
		p.cur++
	}
}

func (p *Picker) random() uint16 {
	return p.spec.Lo + uint16(rand.IntN(int(p.spec.Hi-p.spec.Lo)+1))
}
