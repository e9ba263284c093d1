package vmplan

import (
	"reflect"
	"testing"
)

func TestLineRoundTrip(t *testing.T) {
	for _, l := range []Line{
		{Machine: &Machine{Machine: "mips", CPUModel: "MIPS 24Kc V0.0", MemTotal: "114404 kB"}},
		{Result: &Result{Run: "16mappings", Procs: 1, VmRSS: 7000, Problems: []string{`level=WARN msg="x"`}}},
		{Result: &Result{Run: "inline-1", Procs: 1, Transfers: []Transfer{{Dir: "up", MiB: 64, Seconds: 3.5, UserTicks: 12, SysTicks: 80}}}},
		{Error: "run 16mappings: 3 of 16 mappings not notified"},
		{Done: true},
	} {
		got, ok, err := Parse(l.String() + "\r")
		if !ok || err != nil || !reflect.DeepEqual(got, l) {
			t.Errorf("Parse(%q) = %+v, %v, %v", l.String(), got, ok, err)
		}
	}
	if _, ok, _ := Parse("[    0.000000] Linux version 6.1.0"); ok {
		t.Error("a kernel message parsed as vminit's")
	}
	if _, ok, err := Parse("vminit: {"); !ok || err == nil {
		t.Errorf("a cut line: ok %v, err %v; want an error", ok, err)
	}
}
