package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/natmap-go/natmap/internal/firewall"
	"github.com/natmap-go/natmap/internal/uciconf"
)

// Kernel forwarding (option forward_mode): a forward-mode section whose
// flows the kernel forwards (DNAT, see firewall.DNAT) instead of the relay.
// Its rule follows the section's mapping: it is put in place before the
// notify script hears of a mapping, moves with the public port (forward_port
// empty or 0), and goes when the section stops or the daemon exits. Every
// sync makes the rules exactly those of the running sections, so a crashed
// daemon's rules go at the next start; a firewall reload's loss is repaired
// by firewall-sync (the firewall's include) and a periodic sync.

// kernelPlan is who forwards a section's flows, decided when it starts.
type kernelPlan struct {
	mode   uciconf.ForwardMode // ForwardKernel or ForwardRelay; "" in bind mode
	why    string              // why the relay forwards under forward_mode 'auto'
	target netip.Addr          // the target's address (kernel)
	local  bool                // the target is this host
	zone   string              // the zone the flows come in from (fw4, fw3)
}

// kernelFwd is the daemon's kernel forwarding state.
type kernelFwd struct {
	mu       sync.Mutex // guards the fields below, and runs one sync at a time
	detected bool
	b        firewall.DNATBackend
	err      error // why there is no backend

	kick chan struct{}
}

// dnatBackend finds where kernel forwarding rules go, once.
func (d *Daemon) dnatBackend(ctx context.Context) (firewall.DNATBackend, error) {
	k := &d.kf
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.detected {
		k.detected = true
		if !d.opts.Firewall {
			k.err = errors.New("the daemon manages no firewall rules (--firewall=false)")
		} else {
			k.b, k.err = firewall.DetectDNAT(ctx, firewall.Command)
		}
	}
	return k.b, k.err
}

// planForward decides who forwards section c's flows. With forward_mode
// 'kernel' a reason the kernel cannot is an error (the section does not
// run); with 'auto' the relay forwards and the plan says why.
func (d *Daemon) planForward(ctx context.Context, c uciconf.Section) (kernelPlan, error) {
	if !c.Mapping.Forward() {
		return kernelPlan{}, nil
	}
	if c.ForwardMode == uciconf.ForwardRelay {
		return kernelPlan{mode: uciconf.ForwardRelay}, nil
	}
	p, err := d.kernelPlan(ctx, c)
	if err == nil {
		return p, nil
	}
	if c.ForwardMode == uciconf.ForwardKernel {
		return kernelPlan{}, fmt.Errorf("option forward_mode 'kernel': %w", err)
	}
	return kernelPlan{mode: uciconf.ForwardRelay, why: err.Error()}, nil
}

func (d *Daemon) kernelPlan(ctx context.Context, c uciconf.Section) (kernelPlan, error) {
	b, err := d.dnatBackend(ctx)
	if err != nil {
		return kernelPlan{}, err
	}
	zone := ""
	if firewall.NeedsZone(b) {
		zone, _, err = d.zone(c.Interface)
		switch {
		case err != nil:
			return kernelPlan{}, err
		case zone == "":
			return kernelPlan{}, fmt.Errorf("%s: the section's interface is in no firewall zone", b.Name())
		}
	}
	target, local, err := firewall.KernelTarget(ctx, c.Mapping.ForwardTarget, c.Mapping.IPv6)
	if err != nil {
		return kernelPlan{}, err
	}
	if target.IsLoopback() && c.ForwardMode == uciconf.ForwardAuto {
		// A redirect reaches the service through the address the flows
		// come in on: not one that listens on loopback only, as the relay
		// would reach it.
		return kernelPlan{}, fmt.Errorf("forward target %s is a loopback address, which the kernel forwards only to services listening on every address (set forward_mode 'kernel' for that)", target)
	}
	return kernelPlan{mode: uciconf.ForwardKernel, target: target, local: local, zone: zone}, nil
}

// wantDNAT is the kernel forwarding rule a running section needs now.
func wantDNAT(s *section) (firewall.DNAT, bool) {
	if s.kp.mode != uciconf.ForwardKernel || s.eng == nil {
		return firewall.DNAT{}, false
	}
	c := s.conf.Mapping
	st := s.eng.Status()
	port := c.ForwardPort
	if port == 0 {
		port = st.Public.Port() // forward_port empty or 0: the public port
	}
	if !st.Private.IsValid() || port == 0 {
		return firewall.DNAT{}, false // not mapped yet
	}
	return firewall.DNAT{Owner: s.conf.Ref, Zone: s.kp.zone, Proto: c.Protocol(),
		Dst: st.Private, To: netip.AddrPortFrom(s.kp.target, port), Local: s.kp.local}, true
}

// KernelSync makes the kernel forwarding rules those of the running
// sections now. Without a backend (none detected, or none needed yet) it
// does nothing.
func (d *Daemon) KernelSync(ctx context.Context) error {
	d.mu.Lock()
	secs := slices.Clone(d.sections)
	d.mu.Unlock()
	var want []firewall.DNAT
	for _, s := range secs {
		if r, ok := wantDNAT(s); ok {
			want = append(want, r)
		}
	}
	return d.syncDNAT(ctx, want)
}

func (d *Daemon) syncDNAT(ctx context.Context, want []firewall.DNAT) error {
	k := &d.kf
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.b == nil {
		return nil
	}
	return firewall.SyncDNAT(ctx, k.b, firewall.DaemonScope, want)
}

// kernelNotify wraps a kernel-forwarding section's notify: the rule is in
// place before the script hears of the mapping.
func (d *Daemon) kernelNotify(log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.KernelSync(ctx); err != nil {
		log.Error("kernel forwarding rules", "err", err)
	}
}

// runKernel keeps the kernel forwarding rules in step until ctx ends, then
// removes them (after the sections have stopped). Its first sync removes
// what a crashed daemon left.
func (d *Daemon) runKernel(ctx context.Context, sectionsStopped <-chan struct{}) {
	if _, err := d.dnatBackend(ctx); err != nil {
		d.log.Info("no kernel forwarding: forward-mode sections relay", "err", err)
		return
	}
	tick := time.NewTicker(firewallPeriod)
	defer tick.Stop()
	for {
		if err := d.KernelSync(ctx); err != nil && ctx.Err() == nil {
			d.log.Warn("kernel forwarding rules", "err", err)
		}
		select {
		case <-ctx.Done():
			<-sectionsStopped
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := d.syncDNAT(cctx, nil); err != nil {
				d.log.Warn("removing kernel forwarding rules", "err", err)
			}
			return
		case <-d.kf.kick:
			time.Sleep(100 * time.Millisecond) // let a burst of changes settle
		case <-tick.C:
		}
	}
}

// kickKernel asks for a sync soon; it never blocks.
func (d *Daemon) kickKernel() {
	select {
	case d.kf.kick <- struct{}{}:
	default:
	}
}
