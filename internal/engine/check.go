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
	// address, MappingDependent when they did not, MappingUnknown when
	// fewer than two answered.
	Mapping NATMapping
	// Filtering is RFC 5780's test over UDP, FilteringUnknown when no
	// server supports it; FilteringServer is the one that ran it.
	Filtering       stun.Filtering
	FilteringServer string
	// Reach: whether an outside host reached the held port (see
	// checkHeldPort); State is "" when the mapping depends on the
	// destination (nothing to check).
	Reach Reach
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
// time), over cfg's protocol and family, then runs the
// filtering test, as a session's first check does: a one-off diagnosis for
// `natmap check`, with no keep-alive and nothing notified. The first query
// goes alone, so that it alone creates the mapping (two first packets at
// once can race in a NAT), the others together. An error means no server
// answered.
func CheckNAT(ctx context.Context, cfg config.Mapping, log *slog.Logger) (*NATReport, error) {
	if len(cfg.STUN) == 0 {
		return nil, errors.New("no STUN server")
	}
	e := New(cfg, log, nil)
	// Hold a port for the queries: every one of them must come from it.
	network, addr := "tcp4", "0.0.0.0:0"
	if cfg.IPv6 {
		network, addr = "tcp6", "[::]:0"
	}
	if cfg.BindAddr.IsValid() {
		addr = netip.AddrPortFrom(cfg.BindAddr, 0).String()
	}
	lc := net.ListenConfig{Control: e.sock.Control}
	var (
		local netip.AddrPort
		held  io.Closer
	)
	if cfg.UDP {
		network = "udp" + network[3:]
		pc, err := lc.ListenPacket(ctx, network, addr)
		if err != nil {
			return nil, fmt.Errorf("hold a local port: %w", err)
		}
		defer pc.Close()
		local, held = addrPort(pc.LocalAddr()), pc
	} else {
		lc.SetMultipathTCP(false)
		ln, err := lc.Listen(ctx, network, addr)
		if err != nil {
			return nil, fmt.Errorf("hold a local port: %w", err)
		}
		defer ln.Close()
		local, held = addrPort(ln.Addr()), ln
	}

	servers := cfg.STUN
	r := &NATReport{Local: local, Answers: make([]STUNAnswer, len(servers))}
	ask := func(i int) {
		public, err := e.query(ctx, local, servers[i])
		r.Answers[i] = STUNAnswer{Server: servers[i].String(), Public: public, Err: err}
	}
	ask(0)
	var wg sync.WaitGroup
	for i := 1; i < len(servers); i++ {
		wg.Go(func() { ask(i) })
	}
	wg.Wait()
	var seen []netip.AddrPort
	for _, a := range r.Answers {
		if a.Err == nil {
			seen = append(seen, a.Public)
		}
	}
	switch {
	case len(seen) == 0:
		return r, errors.New("no STUN server answered (see each one's error)")
	case len(seen) == 1:
		r.Mapping = MappingUnknown
	case slices.ContainsFunc(seen, func(p netip.AddrPort) bool { return p != seen[0] }):
		r.Mapping = MappingDependent
	default:
		r.Mapping = MappingIndependent
	}
	if r.Mapping != MappingDependent { // a symmetric NAT fails already
		r.Filtering, r.FilteringServer = e.runFilteringProbe(ctx)
		public, _ := r.Public()
		r.Reach = e.checkHeldPort(ctx, held, local, public, r.Filtering, r.FilteringServer)
	}
	return r, nil
}
