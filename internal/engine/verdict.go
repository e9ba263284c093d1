package engine

import (
	"fmt"
	"net/netip"

	"github.com/natmap-go/natmap/internal/mapping"
	"github.com/natmap-go/natmap/internal/stun"
)

// Verdict is what a NATReport means for natmap, as natmap check --json
// spells it.
type Verdict string

// The verdicts.
const (
	VerdictFullCone      Verdict = "full-cone"       // tested: natmap can open a port here
	VerdictMaybeFullCone Verdict = "maybe-full-cone" // mapping fine, filtering not testable: natmap can work if the NAT lets anyone in
	VerdictNotFullCone   Verdict = "not-full-cone"   // symmetric or restricted: natmap cannot open a port here
	VerdictNoNAT         Verdict = "no-nat"          // the servers see this host's own address
	VerdictUnknown       Verdict = "unknown"         // no answer, or too few to tell
)

// Verdicts lists every Verdict, in the order above.
func Verdicts() []Verdict {
	return []Verdict{VerdictFullCone, VerdictMaybeFullCone, VerdictNotFullCone, VerdictNoNAT, VerdictUnknown}
}

// Judgement is what a report means for natmap, in words.
type Judgement struct {
	Lines   []string // the text report's lines after the servers' answers
	Summary string   // one line for humans
	Verdict Verdict
	NAT     mapping.NAT // "" when not known
	// Unreachable: an outside host was asked to reach the port and did
	// not get in; natmap cannot work here, whatever the NAT's type.
	Unreachable bool
}

// Judge tells what r means for natmap; isLocal reports whether an address
// is this host's own.
func Judge(r *NATReport, isLocal func(netip.Addr) bool) Judgement {
	j := judgeNAT(r, isLocal)
	if r.Reach.State == "" || j.Verdict == VerdictNoNAT {
		return j
	}
	j.Lines = append(j.Lines, "reach:     "+r.Reach.Summary())
	if r.Reach.State == Unreachable {
		// Whatever the NAT's type looked like, an outside host did not get in.
		j.Summary += "; " + r.Reach.Summary()
		j.Unreachable = true
	}
	return j
}

// judgeNAT is Judge's verdict on the NAT's type alone.
func judgeNAT(r *NATReport, isLocal func(netip.Addr) bool) Judgement {
	public, _ := r.Public()
	if isLocal(public.Addr()) {
		s := fmt.Sprintf("no NAT: %s is this host's own address; open the port in the firewall instead", public.Addr())
		return Judgement{Lines: []string{s}, Summary: s, Verdict: VerdictNoNAT}
	}
	port := "translated"
	if public.Port() == r.Local.Port() {
		port = "preserved"
	}
	switch r.Mapping {
	case MappingUnknown:
		return Judgement{
			Lines:   []string{"mapping:   not checked: only one STUN server answered, two are needed"},
			Summary: "cannot tell: only one STUN server answered, two are needed",
			Verdict: VerdictUnknown,
		}
	case MappingDependent:
		s := "symmetric NAT: nobody outside can use a mapping, natmap cannot open a port here"
		how := "each destination sees another public port"
		if r.Recheck != nil {
			how = fmt.Sprintf("from local port %d the servers saw different public ports (their agreement about port %d was chance)",
				r.Recheck.Local.Port(), r.Local.Port())
		}
		return Judgement{
			Lines:   []string{"mapping:   endpoint-dependent: " + how, s},
			Summary: s, Verdict: VerdictNotFullCone, NAT: mapping.Symmetric,
		}
	}
	mapLine := fmt.Sprintf("mapping:   endpoint-independent, public port %s", port)
	switch r.Filtering {
	case stun.FilteringUnknown:
		s := "natmap can open a port here if the NAT lets anyone in (a full cone); give an RFC 5780 server to be sure"
		return Judgement{
			Lines:   []string{mapLine, "filtering: not tested: no STUN server here answers from a second address (RFC 5780)", s},
			Summary: s, Verdict: VerdictMaybeFullCone,
		}
	case stun.EndpointIndependent:
		s := "full cone (NAT-1): natmap can open a port here"
		return Judgement{
			Lines:   []string{mapLine, fmt.Sprintf("filtering: endpoint-independent (tested over UDP with %s)", r.FilteringServer), s},
			Summary: s, Verdict: VerdictFullCone, NAT: mapping.FullCone,
		}
	}
	s := "not a full cone: only hosts this one has sent to get in, natmap cannot open a port here"
	nat := mapping.RestrictedCone
	if r.Filtering == stun.AddressPortDependent {
		nat = mapping.PortRestrictedCone
	}
	return Judgement{
		Lines:   []string{mapLine, fmt.Sprintf("filtering: %s (tested over UDP with %s)", r.Filtering, r.FilteringServer), s},
		Summary: s, Verdict: VerdictNotFullCone, NAT: nat,
	}
}
