package portspec

import "testing"

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Spec
	}{
		{"0", Spec{}},
		{"8080", Spec{Lo: 8080, Hi: 8080}},
		{"65535", Spec{Lo: 65535, Hi: 65535}},
		{"1000-1002", Spec{Lo: 1000, Hi: 1002}},
		{"1000~2000", Spec{Lo: 1000, Hi: 2000, Random: true}},
		{"5-5", Spec{Lo: 5, Hi: 5}},
	} {
		got, err := Parse(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		if s := got.String(); tc.in != "5-5" && s != tc.in {
			t.Errorf("String() = %q, want %q", s, tc.in)
		}
	}
	for _, bad := range []string{"", "x", "80x", "65536", "-1", "+80", "0-10", "10-", "-10", "20-10", "1~0", "1-2-3", "1~2~3", " 80", "80 "} {
		if got, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) = %+v, want error", bad, got)
		}
	}
}

func TestPickerSequential(t *testing.T) {
	p := NewPicker(Spec{Lo: 10, Hi: 12})
	var got []uint16
	for range 5 {
		got = append(got, p.Port())
		p.Advance()
	}
	want := []uint16{10, 11, 12, 10, 11}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("sequence %v, want %v", got, want)
		}
	}
	p.Keep(999) // only spec 0 keeps a kernel-picked port
	if p.Port() != 12 {
		t.Fatalf("Keep changed a fixed range: %d", p.Port())
	}
}

func TestPickerRandom(t *testing.T) {
	p := NewPicker(Spec{Lo: 100, Hi: 103, Random: true})
	seen := map[uint16]bool{}
	for range 200 {
		if port := p.Port(); port < 100 || port > 103 {
			t.Fatalf("port %d outside 100~103", port)
		}
		seen[p.Port()] = true
		p.Advance()
	}
	if len(seen) < 2 {
		t.Fatalf("random picker never moved: %v", seen)
	}
}

func TestPickerKernel(t *testing.T) {
	p := NewPicker(Spec{})
	if p.Port() != 0 {
		t.Fatal("spec 0 must start with the kernel picking")
	}
	p.Keep(40000)
	if p.Port() != 40000 {
		t.Fatalf("spec 0 must keep the port it got, have %d", p.Port())
	}
	p.Advance()
	if p.Port() != 0 {
		t.Fatal("after a failure spec 0 lets the kernel pick again")
	}
}
