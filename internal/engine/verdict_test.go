package engine

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/natmap-go/natmap/internal/mapping"
	"github.com/natmap-go/natmap/internal/stun"
)

func TestJudge(t *testing.T) {
	lp := netip.MustParseAddrPort("0.0.0.0:40000")
	pub := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr("198.51.100.1"), port) }
	two := func(a, b netip.AddrPort) []STUNAnswer {
		return []STUNAnswer{{Server: "a:3478", Public: a}, {Server: "b:3478", Public: b}}
	}
	no := func(netip.Addr) bool { return false }
	for _, c := range []struct {
		name    string
		r       NATReport
		isLocal func(netip.Addr) bool
		verdict Verdict
		nat     mapping.NAT
	}{
		{"full cone", NATReport{Local: lp, Answers: two(pub(40000), pub(40000)), Mapping: MappingIndependent, Filtering: stun.EndpointIndependent}, no, VerdictFullCone, mapping.FullCone},
		{"filtering untested", NATReport{Local: lp, Answers: two(pub(5), pub(5)), Mapping: MappingIndependent}, no, VerdictMaybeFullCone, ""},
		{"symmetric", NATReport{Local: lp, Answers: two(pub(5), pub(6)), Mapping: MappingDependent}, no, VerdictNotFullCone, mapping.Symmetric},
		{"restricted", NATReport{Local: lp, Answers: two(pub(5), pub(5)), Mapping: MappingIndependent, Filtering: stun.AddressDependent}, no, VerdictNotFullCone, mapping.RestrictedCone},
		{"port-restricted", NATReport{Local: lp, Answers: two(pub(5), pub(5)), Mapping: MappingIndependent, Filtering: stun.AddressPortDependent}, no, VerdictNotFullCone, mapping.PortRestrictedCone},
		{"one answer", NATReport{Local: lp, Answers: []STUNAnswer{{Server: "a:3478", Err: errors.New("timeout")}, {Server: "b:3478", Public: pub(7)}}}, no, VerdictUnknown, ""},
		{"no NAT", NATReport{Local: lp, Answers: two(pub(5), pub(5)), Mapping: MappingIndependent}, func(netip.Addr) bool { return true }, VerdictNoNAT, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			j := Judge(&c.r, c.isLocal)
			if j.Verdict != c.verdict || j.NAT != c.nat {
				t.Errorf("verdict %q, NAT %q; want %q, %q", j.Verdict, j.NAT, c.verdict, c.nat)
			}
			if j.Summary == "" || len(j.Lines) == 0 {
				t.Errorf("no words: %+v", j)
			}
			if c.verdict != VerdictUnknown && !slices.Contains(j.Lines, j.Summary) {
				t.Errorf("the summary %q is not among the lines %q", j.Summary, j.Lines)
			}
		})
	}
}
