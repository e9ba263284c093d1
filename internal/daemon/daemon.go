// Package daemon runs natmap on OpenWrt: one mapping per enabled section of
// /etc/config/natmap, reloaded in place (only changed sections restart),
// re-punched when the network changes, with status and control for the
// unix socket. Serve is `natmap daemon`: it supervises all of it.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/natmap-go/natmap/internal/ctl"
	"github.com/natmap-go/natmap/internal/engine"
	"github.com/natmap-go/natmap/internal/firewall"
	"github.com/natmap-go/natmap/internal/ip4p"
	"github.com/natmap-go/natmap/internal/logx"
	"github.com/natmap-go/natmap/internal/mapping"
	"github.com/natmap-go/natmap/internal/memtune"
	"github.com/natmap-go/natmap/internal/notify"
	"github.com/natmap-go/natmap/internal/uciconf"
)

// Options configure a Daemon.
type Options struct {
	ConfigPath string
	Log        *slog.Logger
	// ResolveInterface maps a section's interface option (a logical
	// network such as "wan", or a device) to a device name.
	ResolveInterface func(ctx context.Context, name string) (string, error)
	// NotifyTimeout bounds a notify script run (0: notify's default).
	NotifyTimeout time.Duration
	// Firewall makes the daemon open its ports in fw4/fw3 (see firewall.go),
	// reading zones from FirewallConfig (/etc/config/firewall).
	Firewall       bool
	FirewallConfig string
	// StatusDir gets a file per mapped section, as the stock package
	// writes them (see statusfile.go); "": none.
	StatusDir string
	// Event, when set, is called with a section's status after each change
	// of its state or address (ubus event natmap.mapping); it must not block.
	Event func(ctl.MappingStatus)
	// UpdaterMinBackoff and UpdaterMaxBackoff pace the built-in updaters'
	// retries (0: package updater's defaults).
	UpdaterMinBackoff, UpdaterMaxBackoff time.Duration
}

// Daemon supervises the sections. Create it with New, then Run it.
type Daemon struct {
	opts Options
	log  *slog.Logger

	// reloadMu serialises whatever starts or stops sections: Reload,
	// Restart and the end of Run. So d.sections (or an element of it) is
	// only ever replaced under reloadMu, and a holder of reloadMu may let
	// go of mu and find the list as it left it.
	reloadMu sync.Mutex

	// mu guards ctx, sections, cfgErr and fw. Sections and cfgErr are
	// written under reloadMu too; readers that do not hold reloadMu
	// (Status, the firewall sync, the network watcher) take mu alone.
	mu sync.Mutex
	// ctx is Run's, set when Run starts: the sections and the work to
	// start one (resolving its interface, planning kernel forwarding) end
	// with it. Reload and Restart come from the control socket and
	// SIGHUP, outside Run, so they find it here.
	ctx      context.Context
	sections []*section // in config order
	cfgErr   error      // the config file could not be read
	fw       firewall.Backend

	// fwMu: one change of the firewall at a time (a sync, or the removal
	// of every rule at the end), so two syncs never interleave commands.
	fwMu sync.Mutex
	// fwClosed: the rules were removed at the end; a sync that comes later
	// (the firewall include's firewall-sync) must not add them again.
	// Guarded by fwMu.
	fwClosed bool
	fwKick   chan struct{}

	kf kernelFwd // kernel forwarding (kfwd.go)

	// memLimit is option memory_limit of the last load (MiB; 0: memtune's
	// default; -1 before the first); guarded by reloadMu.
	memLimit int
}

// section is one running (or not runnable) section.
type section struct {
	conf     uciconf.Section // with Mapping.Device resolved
	state    mapping.State   // for sections without an engine: Error, Disabled
	err      string
	since    time.Time
	eng      *engine.Engine
	notify   *notify.Notifier
	file     statusFile      // removed when the section stops
	updaters *updaterSet     // shared with the section that replaces this one when only its updaters change
	ctx      context.Context // the engine's, and the updaters'
	cancel   context.CancelFunc
	done     chan struct{}

	fwMu  sync.Mutex // guards fwErr
	fwErr string     // why its firewall rule is not in place, from the last sync
	kp    kernelPlan // who forwards, in forward mode
}

// New prepares a daemon.
func New(opts Options) *Daemon {
	if opts.ResolveInterface == nil {
		opts.ResolveInterface = ResolveInterface
	}
	if opts.FirewallConfig == "" {
		opts.FirewallConfig = "/etc/config/firewall"
	}
	d := &Daemon{opts: opts, log: opts.Log, fwKick: make(chan struct{}, 1), memLimit: -1}
	d.kf.kick = make(chan struct{}, 1)
	return d
}

// Run loads the config, runs its sections and keeps them until ctx ends;
// then it stops every section and returns. A config that cannot be read is
// logged and reported in the status, and the daemon waits for a reload.
func (d *Daemon) Run(ctx context.Context) {
	d.mu.Lock()
	d.ctx = ctx
	d.mu.Unlock()
	clearStatusFiles(d.opts.StatusDir)
	if err := d.Reload(); err != nil {
		d.log.Error("config not loaded; waiting for a reload", "err", err)
	}
	fwDone := make(chan struct{})
	go func() {
		defer close(fwDone)
		if d.opts.Firewall {
			d.runFirewall(ctx)
		}
	}()
	kernelDone, sectionsStopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(kernelDone)
		d.runKernel(ctx, sectionsStopped)
	}()
	<-ctx.Done()
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	d.mu.Lock()
	secs := d.sections
	d.sections = nil
	d.mu.Unlock()
	for _, s := range secs {
		s.stop()
	}
	close(sectionsStopped)
	<-fwDone     // removes the rules
	<-kernelDone // and the kernel forwarding rules
}

// Reload re-reads the config: sections whose settings changed restart,
// new ones start, removed ones stop, and unchanged ones keep running (and
// keep their public port). A config that cannot be read changes nothing.
func (d *Daemon) Reload() error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	ctx, err := d.runCtx()
	if err != nil {
		return err
	}
	cfg, err := uciconf.Load(d.opts.ConfigPath)
	d.mu.Lock()
	d.cfgErr = err
	old := d.sections
	d.mu.Unlock()
	if err != nil {
		return fmt.Errorf("load %s: %w", d.opts.ConfigPath, err)
	}
	for _, w := range cfg.Warnings {
		d.log.Warn("config: " + w)
	}
	d.applyMemoryLimit(cfg.MemoryLimitMiB)

	byRef := map[string]*section{}
	for _, s := range old {
		byRef[s.conf.Ref] = s
	}
	var next []*section
	var started, restarted, kept int
	for _, c := range cfg.Sections {
		d.resolve(ctx, &c)
		if s, ok := byRef[c.Ref]; ok {
			delete(byRef, c.Ref)
			if reflect.DeepEqual(s.conf, c) {
				next = append(next, s)
				kept++
				continue
			}
			if ns := d.replaceUpdaters(s, c); ns != nil {
				next = append(next, ns)
				kept++
				continue
			}
			s.stop()
			restarted++
		} else {
			started++
		}
		next = append(next, d.start(ctx, c))
	}
	for _, s := range byRef {
		s.stop()
		d.log.Info("section removed", "section", s.conf.Ref)
	}
	d.mu.Lock()
	d.sections = next
	d.mu.Unlock()
	d.kickFirewall()
	d.log.Info("config loaded", "path", d.opts.ConfigPath, "sections", len(next),
		"started", started, "restarted", restarted, "unchanged", kept, "stopped", len(byRef))
	return nil
}

// applyMemoryLimit sets the runtime's soft memory limit from option
// memory_limit (MiB; 0: an eighth of the RAM, within 8 and 64 MiB) at the
// first load and whenever the option changes; GOMEMLIMIT in the
// environment decides over both. d.reloadMu must be held.
func (d *Daemon) applyMemoryLimit(mib int) {
	if d.memLimit == mib {
		return
	}
	d.memLimit = mib
	limit, from := memtune.LimitTo(mib)
	if from == memtune.FromEnv {
		if mib != 0 {
			d.log.Warn("option memory_limit ignored: GOMEMLIMIT in the environment decides")
		}
		return
	}
	d.log.Info("memory limit", "mib", limit>>20, "from", from)
}

// Restart stops and starts one section with its current settings.
func (d *Daemon) Restart(ref string) error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	ctx, err := d.runCtx()
	if err != nil {
		return err
	}
	d.mu.Lock()
	var refs []string
	for i, s := range d.sections {
		if s.conf.Ref == ref {
			// Without mu while the section stops (Status must not wait
			// for it); reloadMu keeps d.sections[i] the same meanwhile.
			d.mu.Unlock()
			s.stop()
			ns := d.start(ctx, s.conf)
			d.mu.Lock()
			d.sections[i] = ns
			d.mu.Unlock()
			d.kickFirewall()
			return nil
		}
		refs = append(refs, s.conf.Ref)
	}
	d.mu.Unlock()
	return fmt.Errorf("no section %q (sections: %s)", ref, strings.Join(refs, ", "))
}

// runCtx returns Run's context, or why no section can start now: Run has
// not started, or it is ending (then a section started would outlive it).
// The caller holds reloadMu.
func (d *Daemon) runCtx() (context.Context, error) {
	d.mu.Lock()
	ctx := d.ctx
	d.mu.Unlock()
	switch {
	case ctx == nil:
		return nil, errors.New("the daemon is still starting")
	case ctx.Err() != nil:
		return nil, errors.New("the daemon is stopping")
	}
	return ctx, nil
}

// resolve turns the section's interface into a device; failing that, the
// section cannot run.
func (d *Daemon) resolve(ctx context.Context, c *uciconf.Section) {
	if c.Err != nil || c.Interface == "" {
		return
	}
	dev, err := d.opts.ResolveInterface(ctx, c.Interface)
	if err != nil {
		c.Err = fmt.Errorf("option interface: %w", err)
		return
	}
	c.Mapping.Device = dev
}

// start runs a section under ctx (or records why it cannot run).
func (d *Daemon) start(ctx context.Context, c uciconf.Section) *section {
	s := &section{conf: c, since: time.Now()}
	log := d.log.With("section", c.Ref)
	err := c.Err
	switch {
	case !c.Enabled:
		// Disabled; a problem is still reported, for whoever enables it.
		s.state = mapping.Disabled
		if err != nil {
			s.err = err.Error()
		}
		return s
	case err != nil:
		s.state, s.err = mapping.Error, err.Error()
		log.Error("section not started", "err", err)
		return s
	}
	kp, err := d.planForward(ctx, c)
	if err != nil {
		s.state, s.err = mapping.Error, err.Error()
		log.Error("section not started", "err", err)
		return s
	}
	s.kp = kp
	m := c.Mapping
	m.Kernel = kp.mode == uciconf.ForwardKernel
	if kp.why != "" {
		log.Warn("forwarding with the relay, not the kernel", "why", kp.why)
	}
	for _, w := range c.Mapping.Ignored() {
		log.Warn("ignored: " + w)
	}

	n := d.notifier(c, log)
	if err := n.Check(); err != nil {
		// As with the stock package, the mapping runs anyway; the
		// script is tried at each change, in case it gets fixed.
		log.Error("notify script cannot run; mapping without it", "script", c.Mapping.Script, "err", err)
	}
	s.notify = n
	s.file = newStatusFile(d.opts.StatusDir, c)
	s.eng = engine.New(m, log, func(m notify.Mapping) {
		if s.kp.mode == uciconf.ForwardKernel {
			d.kernelNotify(log) // the rule first, then the script
		}
		// Before the script runs, as the stock wrapper writes it.
		if err := s.file.write(m); err != nil {
			log.Warn("status file not written", "err", err)
		}
		n.Notify(m)
		d.kickFirewall() // the port may be new (-b 0 or a range)
	})
	if d.opts.Event != nil {
		s.eng.OnEvent(func(engine.Event) { d.opts.Event(s.status()) })
	}
	sctx, cancel := context.WithCancel(ctx)
	s.ctx, s.cancel = sctx, cancel
	s.updaters = &updaterSet{section: c.Ref, comment: c.Comment}
	s.updaters.replace(sctx, d.updaters(c, log))
	n.After = s.updaters.update
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); n.Run(sctx) }()
		s.eng.Run(sctx)
		wg.Wait()
		s.updaters.replace(nil, nil) // waits for them
	}()
	log.Info("section started", "protocol", c.Mapping.Protocol(), "port", c.Mapping.Ports.String(), "mode", mode(c), "forward_mode", string(kp.mode))
	return s
}

// notifier runs the section's script with the C natmap's six arguments,
// then the section name and comment (argv 7-8, and in the environment), so
// one script can serve many mappings. Without a script the log says it all.
func (d *Daemon) notifier(c uciconf.Section, log *slog.Logger) *notify.Notifier {
	n := &notify.Notifier{
		Script:    c.Mapping.Script,
		ExtraArgs: []string{c.Ref, c.Comment},
		Env:       []string{"NATMAP_SECTION=" + c.Ref, "NATMAP_COMMENT=" + c.Comment},
		Timeout:   d.opts.NotifyTimeout,
		Stdout:    io.Discard,
		Stderr:    io.Discard,
		Log:       log,
	}
	if c.LogStdout {
		n.Stdout = logx.LineWriter(log, slog.LevelInfo, "notify script output")
	}
	if c.LogStderr {
		n.Stderr = logx.LineWriter(log, slog.LevelWarn, "notify script error output")
	}
	if c.Mapping.Script == "" {
		n.Stdout = io.Discard
	}
	return n
}

func (s *section) stop() {
	if s.cancel != nil {
		s.cancel()
		<-s.done
		s.file.remove()
	}
}

func mode(c uciconf.Section) string {
	if c.Mapping.Forward() {
		return "forward"
	}
	return "bind"
}

// Status reports every section, in config order.
func (d *Daemon) Status() []ctl.MappingStatus {
	d.mu.Lock()
	secs := append([]*section(nil), d.sections...)
	cfgErr := d.cfgErr
	d.mu.Unlock()
	out := make([]ctl.MappingStatus, 0, len(secs)+1)
	if cfgErr != nil {
		out = append(out, ctl.MappingStatus{Section: "(config)", State: mapping.Error, LastError: cfgErr.Error(), Since: time.Now().Unix()})
	}
	for _, s := range secs {
		out = append(out, s.status())
	}
	return out
}

func (s *section) status() (st ctl.MappingStatus) {
	c := s.conf
	st = ctl.MappingStatus{
		Section:   c.Ref,
		Comment:   c.Comment,
		Enabled:   c.Enabled,
		Protocol:  c.Mapping.Protocol(),
		Mode:      mode(c),
		State:     s.state,
		LastError: s.err,
		Since:     s.since.Unix(),
	}
	if s.eng == nil {
		return st
	}
	defer func() { // the engine's error first, then the firewall's
		if fw := s.firewallError(); fw != "" {
			st.LastError = strings.TrimPrefix(st.LastError+"; ", "; ") + "port not opened in the firewall: " + fw
		}
	}()
	st.Updaters = s.updaters.status()
	es := s.eng.Status()
	st.State = es.State
	st.Since = es.Since.Unix()
	st.LastError = es.LastError
	st.Retries = es.Retries
	st.STUNServer = es.STUNServer
	st.NAT = es.NAT
	st.ScriptError = s.notify.LastError()
	st.Front = es.Front
	if es.Front != "" && !es.FrontLeaseEnd.IsZero() {
		st.FrontLeaseEnd = es.FrontLeaseEnd.Unix()
	}
	if r := es.Reach; r.State != "" && r.Public == es.Public {
		st.Reach = ctl.NewReach(string(r.State), r.Method, r.Detail, r.Summary(), r.Checked, r.Verified)
	}
	if es.Private.IsValid() {
		st.PrivateIP, st.PrivatePort = es.Private.Addr().String(), int(es.Private.Port())
	}
	if es.Public.IsValid() {
		st.PublicIP, st.PublicPort = es.Public.Addr().String(), int(es.Public.Port())
		st.IP4P = ip4p.Format(es.Public)
	}
	if !es.Changed.IsZero() {
		st.LastChange = es.Changed.Unix()
	}
	st.Metrics = &ctl.Metrics{Sessions: es.Counters.Sessions, Failures: es.Counters.Failures, AddressChanges: es.Counters.AddressChanges}
	for _, ev := range es.History {
		st.History = append(st.History, event(ev))
	}
	st.ForwardMode, st.ForwardModeReason = string(s.kp.mode), s.kp.why
	if s.kp.mode == uciconf.ForwardRelay {
		var r ctl.RelayStats
		r.Active, r.Total, r.BytesUp, r.BytesDown = s.eng.RelayStats()
		st.Relay = &r
	}
	return st
}

func event(ev engine.Event) ctl.Event {
	out := ctl.Event{Time: ev.Time.Unix(), State: ev.State, Error: ev.Error}
	if ev.Public.IsValid() {
		out.PublicIP, out.PublicPort = ev.Public.Addr().String(), int(ev.Public.Port())
	}
	return out
}
