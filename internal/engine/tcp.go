package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/natmap-go/natmap/internal/config"
	"github.com/natmap-go/natmap/internal/keepalive"
	"github.com/natmap-go/natmap/internal/portspec"
	"github.com/natmap-go/natmap/internal/sockopt"
	"github.com/natmap-go/natmap/internal/stun"
)

// tcpSession is one life of a TCP mapping: connect the keep-alive from the
// bind port, learn the public address, then keep both fresh until the
// keep-alive fails. Every outbound socket is closed with a reset
// (sockopt.Abort) so the next session can reuse the same 4-tuples at once.
func (e *Engine) tcpSession(ctx context.Context, ports *portspec.Picker) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	ka, err := e.dial(ctx, netip.AddrPortFrom(e.cfg.BindAddr, ports.Port()), e.cfg.HTTP, e.dialTimeout())
	if err != nil {
		return &connectError{fmt.Errorf("keep-alive connect to %s: %w", e.cfg.HTTP, err)}
	}
	defer sockopt.Abort(ka)
	local := addrPort(ka.LocalAddr())
	ports.Keep(local.Port())

	kaDone := make(chan error, 1)
	go func() { kaDone <- keepalive.Run(ctx, ka, httpHost(e.cfg.HTTP), e.cfg.Keepalive) }()
	defer func() {
		cancel()
		<-kaDone
	}()

	// The first check asks two servers when it can, to catch a NAT whose
	// mapping depends on the destination.
	public, server, err := e.discover(ctx, local, true)
	if err != nil {
		return err
	}
	e.mapped(local, public, server)

	// Unlike the C natmap, recheck STUN every interval, so a mapping that
	// changed under a live keep-alive is noticed within one interval.
	tick := time.NewTicker(e.cfg.Keepalive)
	defer tick.Stop()
	for {
		select {
		case err := <-kaDone:
			kaDone <- err // for the deferred wait
			return err
		case <-tick.C:
			public, server, err := e.discover(ctx, local, false)
			if err != nil {
				if ctx.Err() == nil {
					e.log.Warn("STUN recheck failed; keeping the mapping while the keep-alive lives", "err", err)
				}
				continue
			}
			e.mapped(local, public, server)
		}
	}
}

// discover asks the STUN servers, in order from the one that answered last,
// for local's public address. With checkNAT and two or more servers, a
// second server must agree, else the NAT is not full cone.
func (e *Engine) discover(ctx context.Context, local netip.AddrPort, checkNAT bool) (netip.AddrPort, string, error) {
	servers := e.cfg.STUN
	e.mu.Lock()
	pref := e.stunPref
	e.mu.Unlock()

	var (
		first    netip.AddrPort
		firstSrv string
		errs     []error
	)
	for i := range servers {
		idx := (pref + i) % len(servers)
		srv := servers[idx]
		public, err := e.queryTCP(ctx, local, srv)
		if err != nil {
			if ctx.Err() != nil {
				return netip.AddrPort{}, "", ctx.Err()
			}
			e.log.Warn("STUN server failed", "stun", srv, "err", err)
			errs = append(errs, err)
			continue
		}
		if !first.IsValid() {
			first, firstSrv = public, srv.String()
			e.mu.Lock()
			e.stunPref = idx
			e.mu.Unlock()
			if !checkNAT || len(servers) < 2 {
				return first, firstSrv, nil
			}
			continue
		}
		if public != first {
			return netip.AddrPort{}, "", &natError{a: first, srvA: firstSrv, b: public, srvB: srv.String()}
		}
		e.log.Debug("NAT mapping is endpoint-independent", "stun", firstSrv, "stun2", srv)
		return first, firstSrv, nil
	}
	if first.IsValid() {
		e.log.Info("only one STUN server answered: could not check that the NAT is full cone", "stun", firstSrv)
		return first, firstSrv, nil
	}
	return netip.AddrPort{}, "", fmt.Errorf("no STUN server answered: %w", errors.Join(errs...))
}

// queryTCP runs one Binding transaction over a fresh connection from local.
func (e *Engine) queryTCP(ctx context.Context, local netip.AddrPort, srv config.HostPort) (netip.AddrPort, error) {
	ctx, cancel := context.WithTimeout(ctx, e.dialTimeout())
	defer cancel()
	c, err := e.dial(ctx, local, srv, 0)
	if err != nil {
		return netip.AddrPort{}, err
	}
	defer sockopt.Abort(c)
	public, err := stun.BindTCP(ctx, c)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if public.Addr().Is6() != e.cfg.IPv6 {
		return netip.AddrPort{}, fmt.Errorf("STUN server %s answered with %s, of the other address family", srv, public)
	}
	return public, nil
}

// dial connects from local (port 0: the kernel picks) with natmap's
// socket options.
func (e *Engine) dial(ctx context.Context, local netip.AddrPort, srv config.HostPort, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{
		LocalAddr: net.TCPAddrFromAddrPort(local),
		Control:   e.sock.Control,
		Timeout:   timeout,
		KeepAlive: -1, // the application keep-alive is the one that matters
	}
	if !local.Addr().IsValid() {
		d.LocalAddr = &net.TCPAddr{Port: int(local.Port())}
	}
	network := "tcp4"
	if e.cfg.IPv6 {
		network = "tcp6"
	}
	return d.DialContext(ctx, network, srv.String())
}

// dialTimeout bounds a connect or a STUN exchange: long enough for a slow
// path, short enough to fail over within an interval.
func (e *Engine) dialTimeout() time.Duration {
	return min(max(e.cfg.Keepalive, 3*time.Second), 10*time.Second)
}

func addrPort(a net.Addr) netip.AddrPort {
	ap := a.(*net.TCPAddr).AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// httpHost is the Host header: the C natmap sends the bare host; a
// non-default port is added as HTTP/1.1 asks.
func httpHost(h config.HostPort) string {
	if h.Port == config.DefaultHTTPPort {
		return h.Host
	}
	return net.JoinHostPort(h.Host, strconv.Itoa(int(h.Port)))
}
