package netwatch

import (
	"testing"
)

// FuzzParse feeds arbitrary datagrams to the parser and the state: no
// input may panic, and whatever parses must be sane.
func FuzzParse(f *testing.F) {
	var all []byte
	for _, name := range capturedNames {
		b := captured(f, name)
		f.Add(b)
		f.Add(b[:len(b)/2])
		all = append(all, b...)
	}
	f.Add(all)
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, b []byte) {
		us, err := parse(b)
		if err != nil {
			return
		}
		s := newState(nil)
		for _, u := range us {
			if u.index <= 0 {
				t.Fatalf("update for interface index %d", u.index)
			}
			if !u.link && !u.prefix.IsValid() {
				t.Fatalf("address update with invalid prefix %v", u.prefix)
			}
			if ev, ok := s.apply(u); ok && ev.Index != u.index {
				t.Fatalf("event %v for update of interface %d", ev, u.index)
			}
		}
	})
}
