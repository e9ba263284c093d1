package engine

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/natmap-go/natmap/internal/config"
	"github.com/natmap-go/natmap/internal/sockopt"
	"github.com/natmap-go/natmap/internal/stun"
)

// discover asks the STUN servers, in order from the one that answered last,
// for local's public address. With checkNAT and two or more servers, two
// servers must agree, else the NAT is not full cone. In TCP mode they are
// asked at once, so the check costs no extra round trip: the keep-alive
// connection has already made the mapping. Over UDP the first request is the
// first packet from the port, so the second waits for it: two first packets
// at once could race in the NAT's mapping table and look like a symmetric
// NAT.
func (e *Engine) discover(ctx context.Context, local netip.AddrPort, checkNAT bool) (netip.AddrPort, string, error) {
	servers := e.cfg.STUN
	pref := e.preferredSTUN()
	need := 1
	if checkNAT && len(servers) >= 2 {
		need = 2
	}
	type answer struct {
		idx    int
		public netip.AddrPort
		err    error
	}
	var (
		got  []answer
		errs []error
		next int
	)
	for len(got) < need && next < len(servers) {
		batch := make([]answer, min(need-len(got), len(servers)-next))
		if e.cfg.UDP && len(got) == 0 {
			batch = batch[:1]
		}
		var wg sync.WaitGroup
		for i := range batch {
			idx := (pref + next + i) % len(servers)
			wg.Add(1)
			go func() {
				defer wg.Done()
				public, err := e.query(ctx, local, servers[idx])
				batch[i] = answer{idx, public, err}
			}()
		}
		wg.Wait()
		next += len(batch)
		if ctx.Err() != nil {
			return netip.AddrPort{}, "", ctx.Err()
		}
		for _, a := range batch {
			if a.err != nil {
				e.log.Warn("STUN server failed", "stun", servers[a.idx], "err", a.err)
				errs = append(errs, a.err)
				continue
			}
			got = append(got, a)
		}
	}
	if len(got) == 0 {
		return netip.AddrPort{}, "", fmt.Errorf("no STUN server answered: %w", errors.Join(errs...))
	}
	first := got[0]
	e.mu.Lock()
	e.stunPref = first.idx
	e.mu.Unlock()
	srv := servers[first.idx].String()
	switch {
	case len(got) == 2 && got[1].public != first.public:
		return netip.AddrPort{}, "", &natError{a: first.public, srvA: srv, b: got[1].public, srvB: servers[got[1].idx].String()}
	case len(got) == 2:
		e.log.Debug("NAT mapping is endpoint-independent", "stun", srv, "stun2", servers[got[1].idx])
	case need == 2:
		e.log.Info("only one STUN server answered: could not check that the NAT is full cone", "stun", srv)
	}
	return first.public, srv, nil
}

// preferredSTUN is the index of the STUN server that answered last.
func (e *Engine) preferredSTUN() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stunPref
}

// query runs one Binding transaction with srv over a fresh socket from
// local: a TCP connection (closed with a reset, so the same 4-tuple is free
// for the next check) or a UDP socket connected to srv.
func (e *Engine) query(ctx context.Context, local netip.AddrPort, srv config.HostPort) (netip.AddrPort, error) {
	ctx, cancel := context.WithTimeout(ctx, e.dialTimeout())
	defer cancel()
	c, err := e.dial(ctx, local, srv, 0)
	if err != nil {
		return netip.AddrPort{}, err
	}
	var public netip.AddrPort
	if e.cfg.UDP {
		public, err = stun.BindUDP(ctx, c, udpRTO)
		c.Close()
	} else {
		public, err = stun.BindTCP(ctx, c)
		sockopt.Abort(c)
	}
	if err != nil {
		return netip.AddrPort{}, err
	}
	if public.Addr().Is6() != e.cfg.IPv6 {
		return netip.AddrPort{}, fmt.Errorf("STUN server %s answered with %s, of the other address family", srv, public)
	}
	return public, nil
}

// udpRTO is the first STUN retransmission timeout over UDP (RFC 8489
// suggests 500 ms); it doubles on each retry within the exchange's timeout.
const udpRTO = 500 * time.Millisecond

// natError says the NAT maps one local port to different public ports
// depending on the destination: nobody outside can use the address.
type natError struct {
	a, b       netip.AddrPort
	srvA, srvB string
}

func (e *natError) Error() string {
	return fmt.Sprintf("NAT is not full cone (endpoint-dependent mapping, symmetric NAT): "+
		"STUN server %s saw %s but %s saw %s; an outside client cannot reach this port, "+
		"natmap needs a full-cone (NAT-1) NAT", e.srvA, e.a, e.srvB, e.b)
}
