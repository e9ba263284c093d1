package portmap

import (
	"context"
	"net/netip"
	"sync"
)

// Offer is whether the router in front speaks one protocol.
type Offer struct {
	Method string
	Err    error  // nil: it answered
	Detail string // the UPnP service
	// External is the router's external address, when the protocol
	// tells (NAT-PMP, UPnP).
	External netip.Addr
}

// Probe asks the router at gw, without mapping anything, which of PCP,
// NAT-PMP and UPnP IGD it answers, all at once.
func Probe(ctx context.Context, gw, local netip.Addr, o Options) []Offer {
	out := []Offer{{Method: PCP}, {Method: NATPMP}, {Method: UPnP}}
	var wg sync.WaitGroup
	wg.Go(func() {
		out[0].Err = NewPCP(gw, local, o).Announce(ctx)
	})
	wg.Go(func() {
		out[1].External, _, out[1].Err = NewNATPMP(gw, o).ExternalAddress(ctx)
	})
	wg.Go(func() {
		c, err := DiscoverUPnP(ctx, gw, local, o)
		if err != nil {
			out[2].Err = err
			return
		}
		out[2].Detail = c.Service()
		if a, err := c.ExternalAddress(ctx); err == nil {
			out[2].External = a
		}
	})
	wg.Wait()
	return out
}
