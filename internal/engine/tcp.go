package engine

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/natmap-go/natmap/internal/config"
	"github.com/natmap-go/natmap/internal/keepalive"
	"github.com/natmap-go/natmap/internal/portspec"
	"github.com/natmap-go/natmap/internal/sockopt"
)

// tcpSession is one life of a TCP mapping: connect the keep-alive from the
// bind port, learn the public address, then keep both fresh until the
// keep-alive fails. Every outbound socket is closed with a reset
// (sockopt.Abort) so the next session can reuse the same 4-tuples at once.
func (e *Engine) tcpSession(ctx context.Context, ports *portspec.Picker) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	bind := netip.AddrPortFrom(e.cfg.BindAddr, ports.Port())
	ka, err := e.dial(ctx, bind, e.cfg.HTTP, e.dialTimeout())
	if err != nil {
		return &connectError{fmt.Errorf("keep-alive connect to %s: %w", e.cfg.HTTP, err)}
	}
	defer sockopt.Abort(ka)
	local := addrPort(ka.LocalAddr())
	ports.Keep(local.Port())

	closeFront, err := e.openFront(ctx, local)
	if err != nil {
		return err
	}
	defer closeFront()

	kaDone := make(chan error, 1)
	go func() { kaDone <- keepalive.Run(ctx, ka, httpHost(e.cfg.HTTP), e.cfg.Keepalive) }()
	defer func() {
		cancel()
		<-kaDone
	}()

	var seen checks
	fwd, err := e.establish(ctx, local, &seen)
	if err != nil {
		return err
	}
	defer fwd.wait()

	// Unlike the C natmap, recheck STUN every interval, so a mapping that
	// changed under a live keep-alive is noticed within one interval.
	tick := time.NewTicker(e.cfg.Keepalive)
	defer tick.Stop()
	for {
		select {
		case err := <-kaDone:
			kaDone <- err // for the deferred wait
			return err
		case <-fwd.done:
			return fmt.Errorf("forward: %w", fwd.err)
		case <-e.kick:
			return errRepunch
		case <-tick.C:
			public, server, err := e.discover(ctx, local, false)
			if err != nil {
				if ctx.Err() == nil {
					e.log.Warn("STUN recheck failed; keeping the mapping while the keep-alive lives", "err", err)
				}
				continue
			}
			if err := e.observe(&seen, local, public, server); err != nil {
				return err
			}
		}
	}
}

// httpHost is the Host header: the C natmap sends the bare host; a
// non-default port is added as HTTP/1.1 asks.
func httpHost(h config.HostPort) string {
	if h.Port == config.DefaultHTTPPort {
		return h.Host
	}
	return net.JoinHostPort(h.Host, strconv.Itoa(int(h.Port)))
}
