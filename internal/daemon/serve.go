package daemon

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/natmap-go/natmap/internal/ctl"
	"github.com/natmap-go/natmap/internal/ubusevent"
)

// ServeOptions configure Serve: the daemon's Options, and what runs around
// it.
type ServeOptions struct {
	Options
	Socket  string // the control socket's path
	Version string // reported in the status
	// Watch re-punches mappings when addresses or links change (netlink).
	Watch bool
}

// Serve is natmap daemon: it opens the control socket (an error, before
// anything runs, when another daemon holds it), then runs the sections
// until ctx ends, reloading on SIGHUP, re-punching on network changes and
// sending ubus events when ubus is there. It returns once everything it
// started has ended.
func Serve(ctx context.Context, opts ServeOptions) error {
	log := opts.Log
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel: everything started here ends
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if ev := ubusevent.New("natmap.mapping", log); ev != nil {
		opts.Event = func(m ctl.MappingStatus) { ev.Send(m) }
		wg.Go(func() { ev.Run(ctx) })
	}
	d := New(opts.Options)

	// The socket first: a second daemon must fail before it runs anything.
	ready := make(chan struct{})
	srvErr := make(chan error, 1)
	srv := &ctl.Server{Path: opts.Socket, Handler: d.Control(), Log: log, Version: opts.Version, Ready: func() { close(ready) }}
	wg.Go(func() { srvErr <- srv.Serve(ctx) })
	select {
	case err := <-srvErr:
		log.Error("control socket", "err", err)
		return err
	case <-ready:
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := d.Reload(); err != nil {
					log.Error("reload failed; running sections unchanged", "err", err)
				}
			}
		}
	})
	if opts.Watch {
		wg.Go(func() {
			if err := d.WatchNetwork(ctx); err != nil && ctx.Err() == nil {
				log.Warn("not watching the network: mappings re-punch on keep-alive failure only", "err", err)
			}
		})
	}
	log.Info("natmap daemon starting", "version", opts.Version, "config", opts.ConfigPath, "socket", opts.Socket)
	d.Run(ctx)
	cancel()
	log.Info("natmap daemon stopped")
	return nil
}
