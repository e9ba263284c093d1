package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/natmap-go/natmap/internal/config"
	"github.com/natmap-go/natmap/internal/firewall"
	"github.com/natmap-go/natmap/internal/notify"
)

// firewallConfig is OpenWrt's firewall config, for the WAN zone.
const firewallConfig = "/etc/config/firewall"

// kernelResync puts the rule back if something removed it (a firewall
// reload, a flushed ruleset).
const kernelResync = time.Minute

// kernelForward sets up --forward-mode kernel for a command-line natmap:
// the kernel forwards to the target (DNAT), tagged with this process's pid.
// It returns the notify function to give the engine, which puts the rule
// in place before the script hears of the mapping (and moves it when -p 0
// follows a new public port), and stop, which removes the rule when natmap
// exits. Rules of command-line natmaps that died go at the start.
func kernelForward(ctx context.Context, m config.Mapping, log *slog.Logger, next func(notify.Mapping)) (func(notify.Mapping), func(), error) {
	b, err := firewall.DetectDNAT(ctx, firewall.Command)
	if err != nil {
		return nil, nil, fmt.Errorf("--forward-mode kernel: %w", err)
	}
	target, local, err := firewall.KernelTarget(ctx, m.ForwardTarget, m.IPv6)
	if err != nil {
		return nil, nil, fmt.Errorf("--forward-mode kernel: %w", err)
	}
	zone := ""
	if firewall.NeedsZone(b) {
		// A command-line natmap has no interface option: its flows come
		// in from the WAN zone.
		if zone, err = firewall.DefaultZone(firewallConfig); err != nil {
			return nil, nil, fmt.Errorf("--forward-mode kernel: %s: %w", b.Name(), err)
		}
	}
	pid := os.Getpid()
	scope := firewall.CLIScope(pid)

	var mu sync.Mutex // guards want, and runs one sync at a time
	var want []firewall.DNAT
	apply := func(ctx context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		return firewall.SyncDNAT(ctx, b, scope, want)
	}
	if err := apply(ctx); err != nil {
		return nil, nil, fmt.Errorf("--forward-mode kernel: %w", err)
	}
	log.Info("kernel forwarding", "firewall", b.Name(), "target", target, "local", local)

	resyncDone := make(chan struct{})
	rctx, cancel := context.WithCancel(ctx)
	go func() {
		defer close(resyncDone)
		tick := time.NewTicker(kernelResync)
		defer tick.Stop()
		for {
			select {
			case <-rctx.Done():
				return
			case <-tick.C:
				if err := apply(rctx); err != nil && rctx.Err() == nil {
					log.Warn("kernel forwarding rule", "err", err)
				}
			}
		}
	}()

	onMapping := func(nm notify.Mapping) {
		port := m.ForwardPort
		if port == 0 {
			port = nm.Public.Port()
		}
		d := firewall.DNAT{Owner: fmt.Sprintf("%s%d", firewall.CLIOwnerPrefix, pid), Zone: zone, Proto: m.Protocol(),
			Dst: nm.Private, To: netip.AddrPortFrom(target, port), Local: local}
		mu.Lock()
		want = []firewall.DNAT{d}
		mu.Unlock()
		if err := apply(ctx); err != nil {
			log.Error("kernel forwarding rule", "err", err)
		} else {
			log.Info("kernel forwarding rule in place", "from", d.Dst, "to", d.To, "protocol", d.Proto)
		}
		next(nm)
	}
	stop := func() {
		cancel()
		<-resyncDone
		mu.Lock()
		want = nil
		mu.Unlock()
		// ctx is over: the removal gets a context of its own.
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ccancel()
		if err := apply(cctx); err != nil {
			log.Warn("removing the kernel forwarding rule", "err", err)
		}
	}
	return onMapping, stop, nil
}
