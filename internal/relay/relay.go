// Package relay forwards what arrives on natmap's bind port to a target, for
// forward mode: every TCP connection (TCP) and every UDP client flow (UDP).
//
// Compared with the C natmap's relay: TCP moves by splice(2) in steps of up
// to 1 MiB (the C natmap: 8 KiB), about 3x its throughput, and passes
// half-closes on; UDP datagrams are relayed whole up to 64 KiB (not cut at
// 2048 bytes); a full fd table only delays new connections. The listen
// backlog is the caller's (Go's listeners use somaxconn, not 5). One
// goroutine per relay serves every connection and session from an epoll
// instance (poller.go): an idle one costs its sockets and a small record.
//
// The caller creates the sockets (port reuse, fwmark, congestion control:
// internal/sockopt); Serve closes them when it ends.
package relay

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Stats are a relay's live counters (atomics; read them any time). Bytes
// count as they are handed to the receiving socket.
type Stats struct {
	Active    atomic.Int64 // connections (TCP, dialing included) or sessions (UDP) open now
	Total     atomic.Int64 // connections accepted or sessions started, ever
	BytesUp   atomic.Int64 // payload bytes relayed client -> target
	BytesDown atomic.Int64 // payload bytes relayed target -> client
}

const (
	// DefaultIdleTimeout is the C natmap's -T default.
	DefaultIdleTimeout = 300 * time.Second
	// DefaultMaxSessions bounds UDP sessions (and so sockets) when
	// UDP.MaxSessions is 0.
	DefaultMaxSessions = 1024

	minBackoff = 5 * time.Millisecond
	maxBackoff = 500 * time.Millisecond
)

func idleTimeout(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultIdleTimeout
	}
	return d
}

func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

func stats(s *Stats) *Stats {
	if s == nil {
		return new(Stats)
	}
	return s
}

// temporary reports whether a socket error says "not now" rather than "never":
// out of fds or memory, or a peer that left before we got to it. Serve backs
// off and goes on after these instead of ending.
func temporary(err error) bool {
	for _, e := range []syscall.Errno{
		syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.EINTR,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// sweeper calls sweep on a timer: first after first, then after what each
// call returns, until stop. No goroutine waits between sweeps (an idle
// relay's stack would cost more than its record): the timer starts one
// for each sweep.
type sweeper struct {
	sweep func() time.Duration

	mu      sync.Mutex // guards t and stopped; held while sweep runs
	t       *time.Timer
	stopped bool
}

func startSweeps(first time.Duration, sweep func() time.Duration) *sweeper {
	w := &sweeper{sweep: sweep}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t = time.AfterFunc(first, w.run)
	return w
}

func (w *sweeper) run() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	w.t.Reset(w.sweep())
}

// stop ends the sweeps, after waiting for one under way.
func (w *sweeper) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	w.t.Stop()
}

// nextBackoff doubles d within [minBackoff, maxBackoff].
func nextBackoff(d time.Duration) time.Duration {
	return min(max(2*d, minBackoff), maxBackoff)
}

// rateLog lets one log line through per interval and counts the rest, so an
// event a client can trigger at will (a dead target, a full session table)
// cannot flood the log.
type rateLog struct {
	every time.Duration

	mu         sync.Mutex
	next       time.Time
	suppressed int
}

// allow reports whether to log now, and how many lines were held back since
// the last one that was logged.
func (l *rateLog) allow() (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if now.Before(l.next) {
		l.suppressed++
		return false, 0
	}
	l.next = now.Add(l.every)
	suppressed, l.suppressed = l.suppressed, 0
	return true, suppressed
}

// log logs msg at level if the rate allows it, with the count of lines held
// back since the last one.
func (l *rateLog) log(log *slog.Logger, level slog.Level, msg string, args ...any) {
	ok, suppressed := l.allow()
	if !ok {
		return
	}
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	log.Log(context.Background(), level, msg, args...)
}
