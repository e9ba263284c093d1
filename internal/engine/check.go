package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/natmap-go/natmap/internal/config"
	"github.com/natmap-go/natmap/internal/stun"
)

// NATReport is what CheckNAT learned about the NAT in front of this host.
type NATReport struct {
	Local   netip.AddrPort // the port the queries came from
	Answers []STUNAnswer   // every server asked, in order
	// Mapping: MappingIndependent when the servers saw the same public
	// address, from Local and again from Recheck's port, MappingDependent
	// when they did not, MappingUnknown when fewer than two answered.
	Mapping NATMapping
	// Recheck: the same question from a second local port, asked when
	// the servers agreed about Local (see CheckNAT); nil when not asked.
	Recheck *Binding
	// Filtering is RFC 5780's test over UDP, FilteringUnknown when no
	// server supports it; FilteringServer is the one that ran it.
	Filtering       stun.Filtering
	FilteringServer string
	// Reach: whether an outside host reached the held port (see
	// checkHeldPort); State is "" when the mapping depends on the
	// destination (nothing to check).
	Reach Reach
}

// Binding is what the servers asked saw of one local port.
type Binding struct {
	Local   netip.AddrPort
	Answers []STUNAnswer
}

// STUNAnswer is one server's view of the local port.
type STUNAnswer struct {
	Server string
	Public netip.AddrPort // invalid when Err is set
	Err    error
}

// NATMapping is a NAT's mapping behaviour (RFC 4787).
type NATMapping int

// Mapping behaviours.
const (
	MappingUnknown     NATMapping = iota
	MappingIndependent            // endpoint-independent: one public port for all destinations
	MappingDependent              // endpoint-dependent: a symmetric NAT
)

// Public is the public address the first answering server saw.
func (r *NATReport) Public() (netip.AddrPort, bool) {
	for _, a := range r.Answers {
		if a.Err == nil {
			return a.Public, true
		}
	}
	return netip.AddrPort{}, false
}

// CheckNAT asks every one of cfg's STUN servers for the public address of
// one local port (all of them: the user listed them to see each one's
// answer, and after the first they are asked at once, so more cost no
// time), over cfg's protocol and family; when they agree, asks two of
// them again from a second local port (see Recheck); then runs the
// filtering test, as a session's first check does: a one-off diagnosis for
// `natmap check`, with no keep-alive and nothing notified. An error means
// no server answered.
func CheckNAT(ctx context.Context, cfg config.Mapping, log *slog.Logger) (*NATReport, error) {
	if len(cfg.STUN) == 0 {
		return nil, errors.New("no STUN server")
	}
	e := New(cfg, log, nil)
	local, held, err := e.holdPort(ctx)
	if err != nil {
		return nil, err
	}
	defer held.Close()

	r := &NATReport{Local: local, Answers: e.askAll(ctx, local, cfg.STUN)}
	seen, agreeing := publics(r.Answers)
	switch {
	case len(seen) == 0:
		return r, errors.New("no STUN server answered (see each one's error)")
	case len(seen) == 1:
		r.Mapping = MappingUnknown
	case !agreeing:
		r.Mapping = MappingDependent
	default:
		r.Mapping = MappingIndependent
		// Servers agreeing is what an endpoint-independent mapping does,
		// and what a symmetric NAT does by chance when it picks the same
		// port twice (at random, or by preserving the local port while
		// it is free). The same question from another local port tells
		// them apart: chance agreeing twice is negligible. Asked of two
		// servers that answered; if they do not both answer again, the
		// first agreement stands.
		var again []config.HostPort
		for i, a := range r.Answers {
			if a.Err == nil && len(again) < 2 {
				again = append(again, cfg.STUN[i])
			}
		}
		r.Recheck = e.recheck(ctx, again)
		if r.Recheck != nil {
			if seen, agreeing := publics(r.Recheck.Answers); len(seen) == 2 && !agreeing {
				r.Mapping = MappingDependent
			}
		}
	}
	if r.Mapping != MappingDependent { // a symmetric NAT fails already
		r.Filtering, r.FilteringServer = e.runFilteringProbe(ctx)
		public, _ := r.Public()
		r.Reach = e.checkHeldPort(ctx, held, local, public, r.Filtering, r.FilteringServer)
	}
	return r, nil
}

// holdPort holds a local port of cfg's protocol for CheckNAT's queries,
// which all come from it.
func (e *Engine) holdPort(ctx context.Context) (netip.AddrPort, io.Closer, error) {
	network, addr := "tcp4", "0.0.0.0:0"
	if e.cfg.IPv6 {
		network, addr = "tcp6", "[::]:0"
	}
	if e.cfg.BindAddr.IsValid() {
		addr = netip.AddrPortFrom(e.cfg.BindAddr, 0).String()
	}
	lc := net.ListenConfig{Control: e.sock.Control}
	if e.cfg.UDP {
		pc, err := lc.ListenPacket(ctx, "udp"+network[3:], addr)
		if err != nil {
			return netip.AddrPort{}, nil, fmt.Errorf("hold a local port: %w", err)
		}
		return addrPort(pc.LocalAddr()), pc, nil
	}
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(ctx, network, addr)
	if err != nil {
		return netip.AddrPort{}, nil, fmt.Errorf("hold a local port: %w", err)
	}
	return addrPort(ln.Addr()), ln, nil
}

// askAll asks each server for local's public address. The first query
// goes alone, so that it alone creates the mapping (two first packets at
// once can race in a NAT), the others together.
func (e *Engine) askAll(ctx context.Context, local netip.AddrPort, servers []config.HostPort) []STUNAnswer {
	answers := make([]STUNAnswer, len(servers))
	ask := func(i int) {
		public, err := e.query(ctx, local, servers[i])
		answers[i] = STUNAnswer{Server: servers[i].String(), Public: public, Err: err}
	}
	ask(0)
	var wg sync.WaitGroup
	for i := 1; i < len(servers); i++ {
		wg.Go(func() { ask(i) })
	}
	wg.Wait()
	return answers
}

// recheck asks servers about a second local port, held meanwhile; nil
// when no port could be held.
func (e *Engine) recheck(ctx context.Context, servers []config.HostPort) *Binding {
	local, held, err := e.holdPort(ctx)
	if err != nil {
		e.log.Debug("mapping not rechecked from a second port", "err", err)
		return nil
	}
	defer held.Close()
	return &Binding{Local: local, Answers: e.askAll(ctx, local, servers)}
}

// publics lists the public addresses the answers saw and whether they
// are all the same.
func publics(answers []STUNAnswer) (seen []netip.AddrPort, agreeing bool) {
	for _, a := range answers {
		if a.Err == nil {
			seen = append(seen, a.Public)
		}
	}
	return seen, !slices.ContainsFunc(seen, func(p netip.AddrPort) bool { return p != seen[0] })
}
