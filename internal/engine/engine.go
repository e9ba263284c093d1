// Package engine runs one mapping: it keeps a NAT mapping from a local port
// alive, learns the public address through STUN, tells the notifier when it
// changes, and re-establishes it when it is lost.
package engine

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/natmap-go/natmap/internal/config"
	"github.com/natmap-go/natmap/internal/mapping"
	"github.com/natmap-go/natmap/internal/notify"
	"github.com/natmap-go/natmap/internal/portspec"
	"github.com/natmap-go/natmap/internal/relay"
	"github.com/natmap-go/natmap/internal/sockopt"
	"github.com/natmap-go/natmap/internal/stun"
)

// Status is a snapshot of a mapping, for logs, the status API and LuCI.
type Status struct {
	State      mapping.State // Starting, Mapped or Retrying
	Protocol   string
	Private    netip.AddrPort // local address the NAT maps
	Public     netip.AddrPort // what the STUN server saw
	STUNServer string         // the server that answered last
	Since      time.Time      // when State was entered
	Changed    time.Time      // when Public last changed
	LastError  string
	Retries    int         // sessions that failed in a row
	NAT        mapping.NAT // the NAT's type as far as natmap could tell; "" if untested
	Counters   Counters
	History    []Event // the last HistoryLen events, oldest first

	// The router in front (double NAT), when it forwards the port: the
	// protocol (portmap.PCP, NATPMP or UPnP), its external address and
	// when its lease ends (zero: permanent).
	Front         string
	FrontExternal netip.AddrPort
	FrontLeaseEnd time.Time

	Reach Reach // whether outside hosts can reach Public (reach.go)
}

// Engine runs one mapping. Create it with New, then call Run once.
type Engine struct {
	cfg    config.Mapping
	log    *slog.Logger
	notify func(notify.Mapping)
	sock   sockopt.Options

	mu       sync.Mutex
	status   Status
	notified notify.Mapping // last mapping handed to notify
	stunDown []bool         // by STUN server: failed its last query (see stunOrder)
	// stunRechecking: a background query to servers that failed is under way.
	stunRechecking bool
	owner          portOwner // the uid of natmap's sockets on the bind port, after a takeover

	relayStats relay.Stats // forward mode, over every session

	hist    history     // guarded by mu
	onEvent func(Event) // set before Run

	kick chan struct{} // Repunch: end the session and start again now

	// brief counts the sessions in a row that were mapped but ended
	// within one interval: a keep-alive server that closes every
	// connection. From the second one natmap backs off and logs quietly.
	brief int // guarded by mu
	// perDest: the public address changed at consecutive checks of one
	// session (see observe); nothing is notified until one holds.
	perDest bool // guarded by mu

	probes    sync.WaitGroup // reachability checks and STUN queries; Run waits for them
	probedIP  netip.Addr     // public address whose NAT filtering was probed; guarded by mu
	probed    stun.Filtering // its filtering; guarded by mu
	probedSrv string         // the STUN server that tested it; guarded by mu

	reach reacher // reachability checks (reach.go)

	frontNone   netip.Addr // gateway where no router in front answered (guarded by mu)
	frontNoneAt time.Time  // when
}

// Retry pacing: quick first, so a lost mapping is back within one interval,
// then doubling up to the keep-alive interval so a hopeless situation (no
// network, EADDRNOTAVAIL) never becomes a hot loop.
const minRetry = time.Second

// New prepares an engine for cfg, which must be validated and have its
// defaults set. notify is called, never blocking, each time the mapping
// changes.
func New(cfg config.Mapping, log *slog.Logger, notify func(notify.Mapping)) *Engine {
	return &Engine{
		cfg:    cfg,
		log:    log,
		notify: notify,
		sock:   sockopt.Options{Device: cfg.Device, Mark: cfg.Mark},
		status: Status{State: mapping.Starting, Protocol: cfg.Protocol(), Since: time.Now()},
		kick:   make(chan struct{}, 1),
		reach:  newReacher(cfg),

		stunDown: make([]bool, len(cfg.STUN)),
	}
}

// Repunch ends the current session and starts a new one at once, without
// waiting for the keep-alive to fail: the network changed under it (new WAN
// address, interface down and up).
func (e *Engine) Repunch() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// errRepunch ends a session on Repunch.
var errRepunch = errors.New("network changed: re-establishing the mapping")

// RelayStats returns the forward-mode relay's counters over all sessions.
func (e *Engine) RelayStats() (active, total, up, down int64) {
	s := &e.relayStats
	return s.Active.Load(), s.Total.Load(), s.BytesUp.Load(), s.BytesDown.Load()
}

// Status returns a snapshot of the mapping.
func (e *Engine) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.status
	s.History = e.hist.list()
	return s
}

// Run keeps the mapping until ctx ends.
func (e *Engine) Run(ctx context.Context) {
	defer e.probes.Wait()
	ports := portspec.NewPicker(e.cfg.Ports)
	delay := minRetry
	for {
		e.mu.Lock()
		e.status.Counters.Sessions++
		e.mu.Unlock()
		var err error
		start := time.Now()
		if e.cfg.UDP {
			err = e.udpSession(ctx, ports)
		} else {
			err = e.tcpSession(ctx, ports)
		}
		if ctx.Err() != nil {
			return
		}
		var ce *connectError
		if errors.As(err, &ce) {
			// The C natmap's rule: only a failed bind or connect moves on
			// to the next port; a lost session retries the same one.
			ports.Advance()
		}
		if e.Status().State == mapping.Mapped {
			delay = minRetry // the session worked: come back fast
			if brief := e.countBrief(time.Since(start) < e.cfg.Keepalive && !errors.Is(err, errRepunch)); brief >= 2 {
				// ...unless it keeps ending at once: double the wait
				// with each one, up to the interval.
				delay = min(minRetry<<min(brief-1, 16), max(e.cfg.Keepalive, minRetry))
			}
		}
		if errors.As(err, new(*perDestError)) {
			delay = max(e.cfg.Keepalive, minRetry) // no use asking again soon
		}
		wait := delay
		if errors.Is(err, errRepunch) {
			wait = 0
		}
		e.retrying(err, wait, ports.Port())
		select {
		case <-ctx.Done():
			return
		case <-e.kick:
		case <-time.After(wait):
		}
		delay = min(2*delay, max(e.cfg.Keepalive, minRetry))
	}
}

// connectError marks a session that could not even bind and connect its
// keep-alive connection.
type connectError struct{ err error }

func (e *connectError) Error() string { return e.err.Error() }
func (e *connectError) Unwrap() error { return e.err }

// countBrief counts a mapped session that ended within one interval
// (brief) or not, and returns how many such ended in a row.
func (e *Engine) countBrief(brief bool) int {
	e.mu.Lock()
	n := e.brief
	if brief {
		e.brief++
	} else {
		e.brief = 0
	}
	e.mu.Unlock()
	if n >= 2 && !brief {
		e.log.Info("the keep-alive connection lasted an interval again")
	}
	return e.brief
}

func (e *Engine) retrying(err error, delay time.Duration, port uint16) {
	e.mu.Lock()
	brief := e.brief
	wasMapped := e.status.State == mapping.Mapped
	e.status.State = mapping.Retrying
	e.status.Since = time.Now()
	e.status.LastError = err.Error()
	e.status.Retries++
	e.status.Counters.Failures++
	if errors.As(err, new(*natError)) || errors.As(err, new(*perDestError)) {
		e.status.NAT = mapping.Symmetric
	}
	retries := e.status.Retries
	ev := Event{Time: e.status.Since, State: mapping.Retrying, Error: e.status.LastError}
	e.hist.add(ev)
	e.mu.Unlock()
	e.event(ev)
	msg := "session failed"
	if wasMapped {
		msg = "mapping lost"
	}
	switch {
	case wasMapped && brief == 2:
		e.log.Warn("the keep-alive server (-h) keeps closing the connection within an interval: "+
			"reconnecting less and less often, up to once an interval, and logging it at debug level; "+
			"use a server that keeps connections open longer than the interval (-k)",
			"err", err, "retry_in", delay, "port", port)
	case wasMapped && brief > 2:
		e.log.Debug(msg, "err", err, "retry_in", delay, "port", port, "retries", retries)
	default:
		e.log.Warn(msg, "err", err, "retry_in", delay, "port", port, "retries", retries)
	}
}

// mapped records a public address learned through STUN, and notifies when
// it differs from the last one notified (the C natmap's rule: a
// re-established mapping with the same address runs no script).
func (e *Engine) mapped(private, public netip.AddrPort, server string) {
	m := notify.Mapping{Public: public, Private: private, Protocol: e.cfg.Protocol()}
	now := time.Now()
	e.mu.Lock()
	old := e.status
	brief := e.brief
	changed := m != e.notified
	if changed {
		e.notified = m
		e.status.Changed = now
		e.status.Counters.AddressChanges++
		e.newAddressLocked()
	}
	if old.State != mapping.Mapped {
		e.status.State = mapping.Mapped
		e.status.Since = now
	}
	e.status.Private, e.status.Public, e.status.STUNServer = private, public, server
	e.status.Retries = 0
	var ev Event
	if changed || old.State != mapping.Mapped {
		ev = Event{Time: now, State: mapping.Mapped, Public: public}
		e.hist.add(ev)
	}
	e.mu.Unlock()
	if ev.State != "" {
		e.event(ev)
	}

	log := e.log.With("public", public, "private", private, "stun", server)
	switch {
	case changed && old.Public.IsValid():
		log.Info("mapping changed", "old", old.Public)
	case changed:
		log.Info("mapping up")
	case old.State != mapping.Mapped && brief >= 2:
		log.Debug("mapping re-established, unchanged") // said once in retrying
	case old.State != mapping.Mapped:
		log.Info("mapping re-established, unchanged")
	}
	if changed {
		e.notify(m)
	}
}
