package engine

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/natmap-go/natmap/internal/config"
	"github.com/natmap-go/natmap/internal/sockopt"
	"github.com/natmap-go/natmap/internal/stun"
)

// discover asks the STUN servers, those that answered last first (see
// stunOrder), for local's public address. With checkNAT and two or more
// servers, two servers must agree, else the NAT is not full cone. In TCP
// mode they are asked at once, so the check costs no extra round trip: the
// keep-alive connection has already made the mapping. Over UDP the first
// request is the first packet from the port, so the second waits for it:
// two first packets at once could race in the NAT's mapping table and look
// like a symmetric NAT. Once one server has answered, a slow second one
// gets stunGrace, then the check goes on without it (it is marked down
// unless it answers later).
func (e *Engine) discover(ctx context.Context, local netip.AddrPort, checkNAT bool) (netip.AddrPort, string, error) {
	servers := e.cfg.STUN
	order, up := e.stunOrder()
	e.recheckSTUN(ctx, local, order[0])
	need := 1
	if checkNAT && len(servers) >= 2 {
		need = 2
	}
	type answer struct {
		idx    int
		public netip.AddrPort
		err    error
	}
	// Buffered for every server: a query left behind never blocks.
	answers := make(chan answer, len(servers))
	asked := map[int]bool{} // asked and not answered yet
	next := 0
	ask := func() {
		idx := order[next]
		next++
		asked[idx] = true
		e.probes.Add(1)
		go func() {
			defer e.probes.Done()
			public, err := e.query(ctx, local, servers[idx])
			e.stunAnswered(ctx, idx, err)
			answers <- answer{idx, public, err}
		}()
	}
	var (
		got   []answer
		errs  []error
		grace <-chan time.Time
	)
wait:
	for {
		want := need - len(got) - len(asked)
		if e.cfg.UDP && len(got) == 0 {
			want = 1 - len(asked) // the first packet from the port goes alone
		}
		// Servers that failed last time only while none has answered:
		// recheckSTUN asks them in the background.
		for ; want > 0 && next < len(order) && (next < up || len(got)+len(asked) == 0); want-- {
			ask()
		}
		if len(got) >= need || len(asked) == 0 {
			break
		}
		if len(got) > 0 && grace == nil {
			grace = time.After(stunGrace)
		}
		select {
		case <-ctx.Done():
			return netip.AddrPort{}, "", ctx.Err()
		case <-grace:
			for idx := range asked {
				e.log.Warn("STUN server failed", "stun", servers[idx], "err", fmt.Sprintf("no answer within %v of another server's", stunGrace))
				e.stunAnswered(ctx, idx, errSlow)
			}
			break wait // with the one answer
		case a := <-answers:
			delete(asked, a.idx)
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
	// The preferred server's answer first, whichever came first.
	slices.SortFunc(got, func(a, b answer) int { return slices.Index(order, a.idx) - slices.Index(order, b.idx) })
	first := got[0]
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

// stunGrace is how long the NAT check waits for a second server once one
// has answered: answers come within a round trip, a dead server would hold
// the check for its whole timeout.
const stunGrace = time.Second

// errSlow marks a server down that did not answer within stunGrace.
var errSlow = errors.New("slower than another server")

// stunOrder is the order to ask the STUN servers in: the up ones, that
// answered last (not failed since), in configuration order, then the
// others. The first is the one natmap relies on.
func (e *Engine) stunOrder() (order []int, up int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var ups, down []int
	for i, d := range e.stunDown {
		if d {
			down = append(down, i)
		} else {
			ups = append(ups, i)
		}
	}
	return append(ups, down...), len(ups)
}

// firstSTUN is the STUN server natmap relies on: the first in stunOrder.
func (e *Engine) firstSTUN() int {
	order, _ := e.stunOrder()
	return order[0]
}

// stunAnswered records a server's answer (err nil) or failure; a query cut
// short by ctx says nothing about the server.
func (e *Engine) stunAnswered(ctx context.Context, idx int, err error) {
	if err != nil && ctx.Err() != nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stunDown[idx] = err != nil
}

// recheckSTUN asks, in the background, the servers configured before
// first that failed, so that natmap goes back to them once they answer
// again. One recheck at a time.
func (e *Engine) recheckSTUN(ctx context.Context, local netip.AddrPort, first int) {
	e.mu.Lock()
	if first == 0 || e.stunRechecking {
		e.mu.Unlock()
		return
	}
	e.stunRechecking = true
	e.mu.Unlock()
	e.probes.Add(1)
	go func() {
		defer e.probes.Done()
		defer func() {
			e.mu.Lock()
			e.stunRechecking = false
			e.mu.Unlock()
		}()
		for idx := range first {
			_, err := e.query(ctx, local, e.cfg.STUN[idx])
			e.stunAnswered(ctx, idx, err)
			if err == nil {
				e.log.Info("STUN server answers again: asking it first from now on", "stun", e.cfg.STUN[idx])
				return
			}
			e.log.Debug("STUN server still failing", "stun", e.cfg.STUN[idx], "err", err)
		}
	}()
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
