package daemon

import (
	"context"
	"log/slog"
	"reflect"
	"sync"
	"time"

	"github.com/natmap-go/natmap/internal/ctl"
	"github.com/natmap-go/natmap/internal/notify"
	"github.com/natmap-go/natmap/internal/uciconf"
	"github.com/natmap-go/natmap/internal/updater"
)

// updaterSet is a running section's updaters. When a reload changes only
// the updater sections, the set is replaced and the mapping keeps running
// (a restart could cost its public port).
type updaterSet struct {
	section, comment string

	mu     sync.Mutex // guards the fields below
	list   []sectionUpdater
	cancel context.CancelFunc
	wg     *sync.WaitGroup
	last   *updater.Fields // the last address delivered, for a replaced set
}

// sectionUpdater is one entry of a section's updater list: a runner, or
// why there is none (a missing section, a bad option).
type sectionUpdater struct {
	name, typ string
	run       *updater.Runner
	err       string
}

// replace stops the running updaters and, with a ctx, starts list under
// it, with the last address delivered if any.
func (s *updaterSet) replace(ctx context.Context, list []sectionUpdater) {
	s.mu.Lock()
	cancel, wg := s.cancel, s.wg
	s.list, s.cancel, s.wg = nil, nil, nil
	s.mu.Unlock()
	if cancel != nil {
		cancel()
		wg.Wait()
	}
	if ctx == nil {
		return
	}
	ctx, cancel = context.WithCancel(ctx)
	wg = &sync.WaitGroup{}
	for _, u := range list {
		if u.run != nil {
			wg.Go(func() { u.run.Run(ctx) })
		}
	}
	s.mu.Lock()
	s.list, s.cancel, s.wg = list, cancel, wg
	last := s.last
	s.mu.Unlock()
	if last != nil {
		s.runAll(list, *last)
	}
}

// update is the notifier's After: each updater runs with m.
func (s *updaterSet) update(m notify.Mapping) {
	f := updater.Fields{Public: m.Public, Private: m.Private, Protocol: m.Protocol, Section: s.section, Comment: s.comment}
	s.mu.Lock()
	s.last = &f
	list := s.list
	s.mu.Unlock()
	s.runAll(list, f)
}

func (s *updaterSet) runAll(list []sectionUpdater, f updater.Fields) {
	for _, u := range list {
		if u.run != nil {
			u.run.Update(f)
		}
	}
}

func (s *updaterSet) status() []ctl.UpdaterStatus {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	list := s.list
	s.mu.Unlock()
	var out []ctl.UpdaterStatus
	for _, u := range list {
		out = append(out, u.status())
	}
	return out
}

func (u sectionUpdater) status() ctl.UpdaterStatus {
	if u.run == nil {
		return ctl.UpdaterStatus{Name: u.name, Type: u.typ, State: "error", LastError: u.err}
	}
	r := u.run.Status()
	return ctl.UpdaterStatus{
		Name: r.Name, Type: r.Type, State: r.State, Public: r.Public,
		LastRun: unix(r.LastRun), LastOK: unix(r.LastOK), LastError: r.LastError,
		Attempts: r.Attempts, NextRetry: unix(r.NextRetry),
	}
}

// unix is t in unix seconds, 0 for the zero time.
func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// updaters builds the section's updaters; a bad one is reported in its
// status and the log, and never stops the others or the mapping.
func (d *Daemon) updaters(c uciconf.Section, log *slog.Logger) []sectionUpdater {
	var out []sectionUpdater
	for _, uc := range c.Updaters {
		b, err := updater.New(uc)
		if err != nil {
			log.Error("updater not started", "updater", uc.Name, "err", err)
			out = append(out, sectionUpdater{name: uc.Name, typ: uc.Type, err: err.Error()})
			continue
		}
		for _, w := range b.Warnings {
			log.Warn("config: " + w)
		}
		out = append(out, sectionUpdater{name: uc.Name, typ: uc.Type,
			run: updater.NewRunner(b, log, d.opts.UpdaterMinBackoff, d.opts.UpdaterMaxBackoff)})
	}
	return out
}

// replaceUpdaters handles a reload that changed only a running section's
// updaters: it returns the section with c's updaters, running with the
// current address, or nil when more than the updaters changed.
func (d *Daemon) replaceUpdaters(s *section, c uciconf.Section) *section {
	if s.eng == nil || s.updaters == nil {
		return nil
	}
	a, b := s.conf, c
	a.Updaters, b.Updaters = nil, nil
	if !reflect.DeepEqual(a, b) {
		return nil
	}
	log := d.log.With("section", c.Ref)
	ns := &section{conf: c, state: s.state, err: s.err, since: s.since, eng: s.eng, notify: s.notify, file: s.file,
		updaters: s.updaters, ctx: s.ctx, cancel: s.cancel, done: s.done, fwErr: s.firewallError(), kp: s.kp}
	ns.updaters.replace(s.ctx, d.updaters(c, log))
	log.Info("updaters changed; the mapping keeps running")
	return ns
}
