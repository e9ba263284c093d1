package updater

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Runner states, the values of Status.State.
const (
	StateIdle     = "idle"     // not run yet: no address so far
	StateRunning  = "running"  // an attempt is under way
	StateOK       = "ok"       // the last attempt worked
	StateRetrying = "retrying" // the last attempt failed; another is due at NextRetry
	StateFailed   = "failed"   // the last attempt failed for good; the next address tries again
)

// Status is a Runner's result, for the status API. It never holds a
// secret: errors are the updaters' own, which never quote one.
type Status struct {
	Name      string
	Type      string
	State     string
	Public    string    // the address of the last attempt
	LastRun   time.Time // when the last attempt ended
	LastOK    time.Time
	LastError string // of the last attempt; "" after a success
	Attempts  int    // for the current address
	NextRetry time.Time
}

// Default backoff: the first retry soon, then doubling up to MaxBackoff so
// a server that is down for hours sees a few requests an hour at most.
const (
	DefaultMinBackoff = 5 * time.Second
	DefaultMaxBackoff = 10 * time.Minute
)

// Runner runs one updater for one mapping, one attempt at a time, without
// ever blocking its caller. A newer address supersedes a pending one, and a
// retry for an older one.
type Runner struct {
	b          *Built
	log        *slog.Logger
	minBackoff time.Duration
	maxBackoff time.Duration

	mu      sync.Mutex // guards pending and status
	pending *Fields
	status  Status
	wake    chan struct{}
}

// NewRunner prepares a runner for b; backoffs of 0 are the defaults.
func NewRunner(b *Built, log *slog.Logger, minBackoff, maxBackoff time.Duration) *Runner {
	if minBackoff <= 0 {
		minBackoff = DefaultMinBackoff
	}
	if maxBackoff <= 0 {
		maxBackoff = DefaultMaxBackoff
	}
	return &Runner{
		b:          b,
		log:        log.With("updater", b.Name, "type", b.Type),
		minBackoff: minBackoff,
		maxBackoff: max(maxBackoff, minBackoff),
		status:     Status{Name: b.Name, Type: b.Type, State: StateIdle},
		wake:       make(chan struct{}, 1),
	}
}

// Update queues f and returns at once.
func (r *Runner) Update(f Fields) {
	r.mu.Lock()
	r.pending = &f
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Status returns a snapshot.
func (r *Runner) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

// Run runs queued updates until ctx ends.
func (r *Runner) Run(ctx context.Context) {
	var cur *Fields // the address being published, nil when done
	delay := r.minBackoff
	for {
		if cur == nil {
			select {
			case <-ctx.Done():
				return
			case <-r.wake:
			}
		}
		r.mu.Lock()
		if r.pending != nil {
			cur, r.pending = r.pending, nil
			delay = r.minBackoff
			r.status.Attempts = 0
		}
		r.mu.Unlock()
		if cur == nil {
			continue
		}
		err := r.attempt(ctx, *cur)
		if ctx.Err() != nil {
			return
		}
		if err == nil || IsPermanent(err) {
			cur = nil
			continue
		}
		r.mu.Lock()
		r.status.State = StateRetrying
		r.status.NextRetry = time.Now().Add(delay)
		r.mu.Unlock()
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-r.wake: // a newer address, taken at the top
		case <-t.C:
		}
		t.Stop()
		delay = min(2*delay, r.maxBackoff)
	}
}

func (r *Runner) attempt(ctx context.Context, f Fields) error {
	r.mu.Lock()
	r.status.State = StateRunning
	r.status.Public = f.Public.String()
	r.status.Attempts++
	r.status.NextRetry = time.Time{}
	n := r.status.Attempts
	r.mu.Unlock()

	actx, cancel := context.WithTimeout(ctx, r.b.Timeout)
	start := time.Now()
	err := r.b.Updater.Update(actx, f)
	if err != nil && actx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
		err = &timeoutError{r.b.Timeout, err}
	}
	cancel()

	now := time.Now()
	log := r.log.With("public", f.Public, "attempt", n, "took", now.Sub(start).Round(time.Millisecond))
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status.LastRun = now
	switch {
	case ctx.Err() != nil:
		r.status.State = StateIdle
	case err == nil:
		r.status.State, r.status.LastOK, r.status.LastError = StateOK, now, ""
		log.Info("updater done")
	case IsPermanent(err):
		r.status.State, r.status.LastError = StateFailed, err.Error()
		log.Error("updater failed; not retrying until the address changes", "err", err)
	default:
		r.status.State, r.status.LastError = StateRetrying, err.Error()
		log.Warn("updater failed; will retry", "err", err)
	}
	return err
}

type timeoutError struct {
	d   time.Duration
	err error
}

func (e *timeoutError) Error() string {
	return "timed out after " + e.d.String() + ": " + e.err.Error()
}
func (e *timeoutError) Unwrap() error { return e.err }
