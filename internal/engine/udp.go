package engine

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/natmap-go/natmap/internal/portspec"
)

// udpSession is one life of a UDP mapping. STUN is the keep-alive: a
// Binding request from the bind port every interval (bind mode). In forward
// mode the relay's socket owns the port: it sends a one-byte datagram to the
// STUN server each interval and STUN checks run every StunCycle intervals,
// as in the C natmap. A failed STUN check ends the session: over UDP it is
// the only proof that the mapping lives.
func (e *Engine) udpSession(ctx context.Context, ports *portspec.Picker) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Bind and connect once to learn the local address and port (and to
	// fail early on a port in use, which moves on to the next port).
	bind := netip.AddrPortFrom(e.cfg.BindAddr, ports.Port())
	local, err := e.udpProbe(ctx, bind)
	if err != nil {
		return &connectError{err}
	}
	ports.Keep(local.Port())

	closeFront, err := e.openFront(ctx, local)
	if err != nil {
		return err
	}
	defer closeFront()

	var seen checks
	fwd, err := e.establish(ctx, local, &seen)
	if err != nil {
		return err
	}
	defer fwd.wait()

	tick := time.NewTicker(e.cfg.Keepalive)
	defer tick.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-fwd.done:
			return fmt.Errorf("forward: %w", fwd.err)
		case <-e.kick:
			return errRepunch
		case <-tick.C:
		}
		if fwd.udp != nil && n%e.cfg.StunCycle != 0 {
			e.udpKeepalive(ctx, fwd.udp)
			continue
		}
		public, server, err := e.discover(ctx, local, false)
		if err != nil {
			return err
		}
		if err := e.observe(&seen, local, public, server); err != nil {
			return err
		}
	}
}

// udpProbe binds a UDP socket to local and connects it to the first STUN
// server, returning the concrete local address.
func (e *Engine) udpProbe(ctx context.Context, local netip.AddrPort) (netip.AddrPort, error) {
	srv := e.cfg.STUN[e.firstSTUN()]
	c, err := e.dial(ctx, local, srv, e.dialTimeout())
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bind UDP port %d: %w", local.Port(), err)
	}
	defer c.Close()
	return addrPort(c.LocalAddr()), nil
}

// udpKeepalive sends the C natmap's one-byte keep-alive from the relay's
// socket to the STUN server; the server ignores it, the NAT sees traffic.
func (e *Engine) udpKeepalive(ctx context.Context, conn *net.UDPConn) {
	srv := e.cfg.STUN[e.firstSTUN()]
	ips, err := net.DefaultResolver.LookupNetIP(ctx, e.ipNetwork(), srv.Host)
	if err == nil && len(ips) == 0 {
		err = fmt.Errorf("no address")
	}
	if err == nil {
		_, err = conn.WriteToUDPAddrPort([]byte("k"), netip.AddrPortFrom(ips[0].Unmap(), srv.Port))
	}
	if err != nil && ctx.Err() == nil {
		e.log.Warn("UDP keep-alive failed", "stun", srv, "err", err)
	}
}

func (e *Engine) ipNetwork() string {
	if e.cfg.IPv6 {
		return "ip6"
	}
	return "ip4"
}
