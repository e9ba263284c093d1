package engine

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/natmap-go/natmap/internal/mapping"
	"github.com/natmap-go/natmap/internal/stun"
)

// filtering checks, once per public address, whether the NAT lets anyone
// reach a mapping (endpoint-independent filtering) or only the hosts it has
// sent to (restricted cones), which STUN alone cannot see. It needs a STUN
// server that answers from a second address (RFC 5780); most public servers
// cannot, and then the answer is FilteringUnknown. It runs over UDP from a
// port of its own, so the service on the bind port is not disturbed; NATs
// filter TCP the same way. Later calls for the same address return the
// first answer (and the server that gave it).
func (e *Engine) filtering(ctx context.Context, public netip.AddrPort) (stun.Filtering, string) {
	e.mu.Lock()
	if e.probedIP == public.Addr() {
		f, srv := e.probed, e.probedSrv
		e.mu.Unlock()
		return f, srv
	}
	e.mu.Unlock()
	f, srv := e.runFilteringProbe(ctx)
	if f == stun.FilteringUnknown && ctx.Err() != nil {
		return f, srv // cut short: the next session tries again
	}
	e.mu.Lock()
	e.probedIP, e.probed, e.probedSrv = public.Addr(), f, srv
	e.mu.Unlock()
	switch f {
	case stun.FilteringUnknown:
		e.log.Debug("NAT filtering not checked: no STUN server answers from a second address (RFC 5780)")
	case stun.EndpointIndependent:
		e.setNAT(mapping.FullCone)
		e.log.Info("NAT filtering is endpoint-independent: a full cone", "stun", srv)
	default:
		nat := mapping.RestrictedCone
		if f == stun.AddressPortDependent {
			nat = mapping.PortRestrictedCone
		}
		e.setNAT(nat)
		e.log.Warn("NAT is not full cone: its filtering is "+f.String()+
			"; only hosts this one has sent to can reach the public address, natmap needs a full-cone (NAT-1) NAT",
			"public", public, "stun", srv)
	}
	return f, srv
}

func (e *Engine) setNAT(nat mapping.NAT) {
	e.mu.Lock()
	e.status.NAT = nat
	e.mu.Unlock()
}

func (e *Engine) runFilteringProbe(ctx context.Context) (stun.Filtering, string) {
	network, ipnet := "udp4", "ip4"
	if e.cfg.IPv6 {
		network, ipnet = "udp6", "ip6"
	}
	lc := net.ListenConfig{Control: e.sock.Control}
	local := ""
	if e.cfg.BindAddr.IsValid() {
		local = e.cfg.BindAddr.String()
	}
	pc, err := lc.ListenPacket(ctx, network, net.JoinHostPort(local, "0"))
	if err != nil {
		e.log.Debug("NAT filtering not checked", "err", err)
		return stun.FilteringUnknown, ""
	}
	defer pc.Close()
	for _, srv := range e.cfg.STUN {
		ips, err := net.DefaultResolver.LookupNetIP(ctx, ipnet, srv.Host)
		if err != nil || len(ips) == 0 {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		f, err := stun.ProbeFiltering(pctx, pc.(*net.UDPConn), netip.AddrPortFrom(ips[0].Unmap(), srv.Port), udpRTO, 3)
		cancel()
		if err == nil && f != stun.FilteringUnknown {
			return f, srv.String()
		}
	}
	return stun.FilteringUnknown, ""
}
