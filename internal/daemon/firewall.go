package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/natmap-go/natmap/internal/firewall"
	"github.com/natmap-go/natmap/internal/uciconf"
)

// The daemon opens its ports in OpenWrt's firewall (fw4 or fw3) itself: an
// accept rule for each running section's bind port, in the input chain of
// the section's zone after the zone's own rules, tagged natmap:SECTION.
// Rules follow the sections (start, stop, reload, a new port) and go away
// when the daemon exits; stale ones from a crash are removed by the first
// sync. A firewall reload drops them: the firewall's include script then
// runs `natmap firewall-sync`, and a periodic sync catches anything else.
// The firewall is looked for at each sync until one is found: one that was
// restarting when natmap started (fw4 deletes its table, then makes it
// again) is managed from its include's sync.
//
// Which sections: firewall '1' always, '0' never, unset ("auto") when the
// section's zone is a WAN zone (named wan, or masquerading). A section
// without an interface follows the default route: its zone is the first WAN
// zone.

const firewallPeriod = time.Minute

// runFirewall keeps the rules in step until ctx ends, then removes them.
func (d *Daemon) runFirewall(ctx context.Context) {
	tick := time.NewTicker(firewallPeriod)
	defer tick.Stop()
	var absent bool // said so once
	for {
		err := d.FirewallSync(ctx)
		switch {
		case ctx.Err() != nil:
		case errors.Is(err, firewall.ErrNoFirewall):
			if !absent {
				d.log.Info("not managing firewall rules yet: looking again at each change and every minute", "err", err)
				absent = true
			}
		case err != nil:
			d.log.Warn("firewall rules", "err", err)
		}
		select {
		case <-ctx.Done():
			// The sections have stopped or are stopping: remove every rule,
			// with a context of its own since ctx is over, and let no sync
			// add one again.
			d.fwMu.Lock()
			defer d.fwMu.Unlock()
			d.fwClosed = true
			d.mu.Lock()
			b := d.fw
			d.mu.Unlock()
			if b == nil {
				return
			}
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := firewall.Sync(cctx, b, nil); err != nil {
				d.log.Warn("removing firewall rules", "err", err)
			}
			return
		case <-d.fwKick:
			// Let a burst of changes (a reload) settle.
			time.Sleep(100 * time.Millisecond)
		case <-tick.C:
		}
	}
}

// firewallBackend is the firewall the daemon manages: the first one a call
// finds, then that one.
func (d *Daemon) firewallBackend(ctx context.Context) (firewall.Backend, error) {
	d.mu.Lock()
	b := d.fw
	d.mu.Unlock()
	if b != nil {
		return b, nil
	}
	b, err := firewall.Detect(ctx, firewall.Command)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fw == nil {
		d.fw = b
		d.log.Info("managing firewall rules", "firewall", b.Name())
	}
	return d.fw, nil
}

// kickFirewall asks for a sync soon, of the kernel forwarding rules too;
// it never blocks.
func (d *Daemon) kickFirewall() {
	d.kickKernel()
	select {
	case d.fwKick <- struct{}{}:
	default:
	}
}

// FirewallSync makes the firewall rules match the running sections now.
func (d *Daemon) FirewallSync(ctx context.Context) error {
	b, err := d.firewallBackend(ctx)
	if err != nil {
		return err
	}
	d.mu.Lock()
	secs := slices.Clone(d.sections)
	d.mu.Unlock()
	// Each section's rule is on its own: one that cannot be added (a bad
	// zone, a name too long for the tag) is that section's error, shown in
	// its status, and the others still sync.
	var want []firewall.Rule
	ruleErr := map[*section]error{}
	for _, s := range secs {
		r, ok, err := d.firewallRule(s)
		if err != nil {
			ruleErr[s] = err
		}
		if ok {
			want = append(want, r)
		}
	}
	d.fwMu.Lock()
	defer d.fwMu.Unlock()
	if d.fwClosed {
		return nil // the daemon is ending: its rules are gone for good
	}
	bySection, other := firewall.SectionErrors(firewall.Sync(ctx, b, want))
	errs := []error{other}
	for _, s := range secs {
		err := errors.Join(ruleErr[s], bySection[s.conf.Ref])
		if s.setFirewallError(err) && err != nil {
			d.log.Warn("firewall rule not in place", "section", s.conf.Ref, "err", err)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("section %s: %w", s.conf.Ref, err))
		}
	}
	return errors.Join(errs...)
}

// firewallRule is the rule a section needs, if any.
func (d *Daemon) firewallRule(s *section) (firewall.Rule, bool, error) {
	c := s.conf
	if s.eng == nil || c.Firewall == uciconf.FirewallOff {
		return firewall.Rule{}, false, nil
	}
	port := s.eng.Status().Private.Port()
	if port == 0 && c.Mapping.Ports.Lo == c.Mapping.Ports.Hi {
		port = c.Mapping.Ports.Lo // a fixed port: open it before the first session binds
	}
	if port == 0 {
		return firewall.Rule{}, false, nil
	}
	zone, wan, err := d.zone(c.Interface)
	switch {
	case err != nil:
		return firewall.Rule{}, false, err
	case zone == "" && c.Firewall == uciconf.FirewallOn:
		return firewall.Rule{}, false, errors.New("firewall '1' but its interface is in no firewall zone")
	case zone == "" || (!wan && c.Firewall == uciconf.FirewallAuto):
		return firewall.Rule{}, false, nil
	}
	return firewall.Rule{Section: c.Ref, Zone: zone, Proto: c.Mapping.Protocol(), Port: port, IPv6: c.Mapping.IPv6}, true, nil
}

// zone is the firewall zone of a logical network, or the first WAN zone for
// a section without one.
func (d *Daemon) zone(network string) (string, bool, error) {
	if network != "" {
		return firewall.ZoneOf(d.opts.FirewallConfig, network)
	}
	zones, err := firewall.WANZones(d.opts.FirewallConfig)
	if err != nil || len(zones) == 0 {
		return "", false, err
	}
	if slices.Contains(zones, "wan") {
		return "wan", true, nil
	}
	return zones[0], true, nil
}

// setFirewallError records why the section's firewall rule is not in place
// (nil: it is, or none is needed), and reports whether that changed.
func (s *section) setFirewallError(err error) bool {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	s.fwMu.Lock()
	defer s.fwMu.Unlock()
	changed := msg != s.fwErr
	s.fwErr = msg
	return changed
}

// firewallError is why the section's firewall rule is not in place, or "".
func (s *section) firewallError() string {
	s.fwMu.Lock()
	defer s.fwMu.Unlock()
	return s.fwErr
}
