package portmap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"
)

// Lease is the lifetime natmap asks for. Mappings are renewed long before
// it ends (see HoldConfig.Refresh), so a natmap that dies without deleting
// its mapping leaves it open for at most this long.
const Lease = time.Hour

// HoldConfig describes a mapping to keep on the router in front.
type HoldConfig struct {
	Gateway netip.Addr // the router; must be private (CheckGateway)
	Local   netip.Addr // natmap's address on the router's link
	Request Request
	Options Options
	// Refresh is how often the mapping is renewed, at most: a router that
	// restarted is noticed within this time. Half the lease at most.
	Refresh time.Duration
	Log     *slog.Logger
	// Methods to try, in order; nil tries PCP, NAT-PMP, then UPnP.
	Methods []string
	// OnChange is called (from the holder's goroutine) each time the
	// mapping is renewed or re-created, and with a zero Mapping when it
	// is lost.
	OnChange func(Mapping)
}

// Holder keeps one mapping on the router in front.
type Holder struct {
	cfg  HoldConfig
	done chan struct{}
	stop context.CancelFunc

	mu     sync.Mutex // guards client, cur and epoch
	client Client
	cur    Mapping
	epoch  EpochTracker
}

// Hold maps cfg.Request on the router with the first protocol that
// answers and keeps it, renewing and re-creating it, until Close, which
// deletes it. It returns an error when no protocol mapped the port.
func Hold(ctx context.Context, cfg HoldConfig) (*Holder, error) {
	if err := CheckGateway(cfg.Gateway); err != nil && !(cfg.Options.testPMPPort != 0 && cfg.Gateway.IsLoopback()) {
		return nil, err
	}
	if cfg.Request.ExternalPort == 0 {
		cfg.Request.ExternalPort = cfg.Request.InternalPort
	}
	if cfg.Request.Lifetime <= 0 {
		cfg.Request.Lifetime = Lease
	}
	if cfg.Refresh <= 0 || cfg.Refresh > cfg.Request.Lifetime/2 {
		cfg.Refresh = cfg.Request.Lifetime / 2
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	h := &Holder{cfg: cfg, done: make(chan struct{})}
	if err := h.create(ctx); err != nil {
		return nil, err
	}
	ctx, h.stop = context.WithCancel(context.WithoutCancel(ctx))
	go h.run(ctx)
	return h, nil
}

// Mapping is the mapping held now; zero while it is lost.
func (h *Holder) Mapping() Mapping {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cur
}

// Close stops renewing and deletes the mapping.
func (h *Holder) Close() {
	h.stop()
	<-h.done
}

// create finds a protocol the router answers and maps the port with it.
func (h *Holder) create(ctx context.Context) error {
	var errs []error
	for _, m := range h.methodsInOrder() {
		var c Client
		switch m {
		case PCP:
			c = NewPCP(h.cfg.Gateway, h.cfg.Local, h.cfg.Options)
		case NATPMP:
			c = NewNATPMP(h.cfg.Gateway, h.cfg.Options)
		case UPnP:
			u, err := DiscoverUPnP(ctx, h.cfg.Gateway, h.cfg.Local, h.cfg.Options)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			c = u
		default:
			errs = append(errs, fmt.Errorf("unknown method %q", m))
			continue
		}
		m, err := h.mapWith(ctx, c)
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		h.mu.Lock()
		h.client, h.cur, h.epoch = c, m, EpochTracker{}
		h.epoch.Observe(m.Epoch, time.Now())
		h.mu.Unlock()
		leaseEnd := "permanent"
		if !m.Expires.IsZero() {
			leaseEnd = m.Expires.Format(time.TimeOnly)
		}
		h.cfg.Log.Info("router in front forwards the port", "method", m.Method,
			"external", m.External, "internal_port", m.InternalPort, "lease_end", leaseEnd)
		h.changed(m)
		return nil
	}
	return fmt.Errorf("router %s: %w", h.cfg.Gateway, errors.Join(errs...))
}

func (h *Holder) methodsInOrder() []string {
	if h.cfg.Methods != nil {
		return h.cfg.Methods
	}
	return []string{PCP, NATPMP, UPnP}
}

// mapWith asks c for the mapping and insists on the requested external
// port: the router's masquerade keeps natmap's source port, so a mapping
// on another port would forward a port the outer NAT never sees.
func (h *Holder) mapWith(ctx context.Context, c Client) (Mapping, error) {
	m, err := c.Map(ctx, h.cfg.Request)
	if err != nil {
		return m, err
	}
	if want := h.cfg.Request.ExternalPort; m.External.Port() != want {
		err := fmt.Errorf("%s: router offered external port %d, not %d", c.Method(), m.External.Port(), want)
		if uerr := c.Unmap(ctx, m); uerr != nil {
			err = fmt.Errorf("%w (and deleting it failed: %v)", err, uerr)
		}
		return Mapping{}, err
	}
	return m, nil
}

func (h *Holder) changed(m Mapping) {
	if h.cfg.OnChange != nil {
		h.cfg.OnChange(m)
	}
}

// run renews the mapping every Refresh, re-creates it (with whichever
// protocol answers) when a renewal fails, and deletes it at the end.
func (h *Holder) run(ctx context.Context) {
	defer close(h.done)
	defer h.unmap()
	wait := h.cfg.Refresh
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = h.cfg.Refresh
		if err := h.renew(ctx); err == nil {
			continue
		} else if ctx.Err() != nil {
			return
		} else {
			h.cfg.Log.Warn("renewing the port mapping on the router in front failed; re-creating it", "err", err)
		}
		if err := h.create(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			h.mu.Lock()
			lost := !h.cur.Expires.IsZero() && time.Now().After(h.cur.Expires)
			if lost {
				h.cur = Mapping{}
			}
			h.mu.Unlock()
			if lost {
				h.changed(Mapping{})
			}
			h.cfg.Log.Warn("router in front does not forward the port", "err", err)
			wait = min(h.cfg.Refresh, 5*time.Second)
		}
	}
}

// renew asks the same router with the same protocol again; for PCP and
// NAT-PMP the reply's epoch tells whether the router lost its mappings in
// between (the renewal re-created it).
func (h *Holder) renew(ctx context.Context) error {
	h.mu.Lock()
	c := h.client
	h.mu.Unlock()
	if c == nil {
		return errors.New("no mapping")
	}
	m, err := h.mapWith(ctx, c)
	if err != nil {
		return err
	}
	h.mu.Lock()
	rebooted := c.Method() != UPnP && h.epoch.Observe(m.Epoch, time.Now())
	h.cur = m
	h.mu.Unlock()
	if rebooted {
		h.cfg.Log.Warn("router in front lost its mappings (restarted); mapping re-created", "method", m.Method, "external", m.External)
	}
	h.changed(m)
	return nil
}

func (h *Holder) unmap() {
	h.mu.Lock()
	c, m := h.client, h.cur
	h.cur = Mapping{}
	h.mu.Unlock()
	if c == nil || m.Method == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.Options.timeout())
	defer cancel()
	err := c.Unmap(ctx, m)
	if err != nil && m.Method == UPnP {
		// The router may have restarted on another HTTP port since.
		if u, derr := DiscoverUPnP(ctx, h.cfg.Gateway, h.cfg.Local, h.cfg.Options); derr == nil {
			err = u.Unmap(ctx, m)
		}
	}
	if err != nil {
		h.cfg.Log.Warn("deleting the port mapping on the router in front failed", "err", err, "method", m.Method)
		return
	}
	h.cfg.Log.Info("port mapping on the router in front deleted", "method", m.Method, "external", m.External)
}
