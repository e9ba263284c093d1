package engine

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/natmap-go/natmap/internal/config"
	"github.com/natmap-go/natmap/internal/portmap"
)

// The router in front (a double NAT): before the keep-alive and STUN,
// ask it to forward the bind port (PCP, NAT-PMP or UPnP IGD), so that the
// outer NAT's mapping reaches natmap's host. See internal/portmap.

// frontTimeout bounds each protocol's question to the router: a router on
// the local link answers within milliseconds, and in auto mode a router
// that speaks none of them must not hold up the mapping for long.
const frontTimeout = time.Second

// frontRetryNone is how long auto mode leaves a gateway alone after none
// of the protocols answered there.
const frontRetryNone = 10 * time.Minute

// openFront maps local's port on the router in front per cfg.UPnP and
// returns what ends it (deletes the mapping). In auto mode every failure
// is logged and the session goes on without; in on mode it ends the
// session.
func (e *Engine) openFront(ctx context.Context, local netip.AddrPort) (func(), error) {
	mode := e.cfg.UPnP
	if mode == "" || mode == config.UPnPOff || e.cfg.IPv6 {
		return func() {}, nil
	}
	fail := func(err error) (func(), error) {
		if mode == config.UPnPOn {
			return nil, fmt.Errorf("router in front: %w", err)
		}
		return func() {}, nil
	}
	gw, _, err := portmap.DefaultGateway(e.cfg.Device)
	if err == nil {
		err = portmap.CheckGateway(gw)
	}
	if err != nil {
		e.log.Debug("not asking a router in front", "err", err)
		return fail(err)
	}
	e.mu.Lock()
	skip := mode == config.UPnPAuto && e.frontNone == gw && time.Since(e.frontNoneAt) < frontRetryNone
	e.mu.Unlock()
	if skip {
		return func() {}, nil
	}
	opts := portmap.Options{Control: e.sock.Control, Timeout: frontTimeout}
	ip := local.Addr()
	if !ip.IsValid() || ip.IsUnspecified() {
		if ip, err = portmap.LocalAddr(ctx, gw, opts); err != nil {
			return fail(err)
		}
	}
	h, err := portmap.Hold(ctx, portmap.HoldConfig{
		Gateway:  gw,
		Local:    ip,
		Request:  portmap.Request{Protocol: e.cfg.Protocol(), InternalPort: local.Port()},
		Options:  opts,
		Refresh:  max(e.cfg.Keepalive, 5*time.Second),
		Log:      e.log.With("router", gw),
		OnChange: e.frontChanged,
	})
	if err != nil {
		if errors.Is(err, portmap.ErrNoAnswer) && !hasRefusal(err) {
			e.mu.Lock()
			e.frontNone, e.frontNoneAt = gw, time.Now()
			e.mu.Unlock()
		}
		if mode == config.UPnPOn {
			return fail(err)
		}
		e.log.Info("no router in front forwards the port; going on without", "err", err)
		return func() {}, nil
	}
	return func() {
		h.Close()
		e.frontChanged(portmap.Mapping{})
	}, nil
}

// hasRefusal reports whether some router said no (rather than nothing).
func hasRefusal(err error) bool {
	var re *portmap.RefusedError
	return errors.As(err, &re)
}

// frontChanged records the mapping on the router in front for Status.
func (e *Engine) frontChanged(m portmap.Mapping) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.status.Front, e.status.FrontExternal, e.status.FrontLeaseEnd = m.Method, m.External, m.Expires
}
