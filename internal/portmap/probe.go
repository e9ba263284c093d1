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
	Detail string // the UPnP service, the external address
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
		a, _, err := NewNATPMP(gw, o).ExternalAddress(ctx)
		out[1].Err = err
		if err == nil {
			out[1].Detail = "external address " + a.String()
		}
	})
	wg.Go(func() {
		c, err := DiscoverUPnP(ctx, gw, local, o)
		if err != nil {
			out[2].Err = err
			return
		}
		out[2].Detail = c.Service()
		if a, err := c.ExternalAddress(ctx); err == nil {
			out[2].Detail += ", external address " + a.String()
		}
	})
	wg.Wait()
	return out
}
