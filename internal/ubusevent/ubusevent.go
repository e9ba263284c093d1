// Package ubusevent publishes events on OpenWrt's ubus (`ubus send`), so
// other services and hotplug-style scripts (`ubus listen natmap.mapping`)
// can react to a mapping's changes. Sending never blocks the caller: events
// wait in a short queue, the oldest dropped first when ubus is slow.
package ubusevent

import (
	"context"
	"encoding/json"
	"log/slog"
	"os/exec"
	"sync"
	"time"
)

// queueLen bounds the events waiting for ubus; sendTimeout one `ubus send`.
const (
	queueLen    = 64
	sendTimeout = 5 * time.Second
)

// Sender sends events of one type. Create it with New, then Run it.
type Sender struct {
	bin  string // the ubus command
	typ  string // the event type, e.g. natmap.mapping
	log  *slog.Logger
	wake chan struct{}

	mu      sync.Mutex // guards queue and dropped
	queue   [][]byte
	dropped int
}

// New returns a Sender for events of type typ, or nil when this system
// has no ubus command (not OpenWrt).
func New(typ string, log *slog.Logger) *Sender {
	bin, err := exec.LookPath("ubus")
	if err != nil {
		return nil
	}
	return &Sender{bin: bin, typ: typ, log: log, wake: make(chan struct{}, 1)}
}

// Send queues v, marshalled to a JSON object, for Run to send.
func (s *Sender) Send(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.log.Warn("ubus event not sent", "type", s.typ, "err", err)
		return
	}
	s.mu.Lock()
	if len(s.queue) == queueLen {
		s.queue = s.queue[1:]
		s.dropped++
	}
	s.queue = append(s.queue, b)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run sends queued events in order until ctx ends.
func (s *Sender) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		}
		for {
			s.mu.Lock()
			if len(s.queue) == 0 {
				s.mu.Unlock()
				break
			}
			b, dropped := s.queue[0], s.dropped
			s.queue, s.dropped = s.queue[1:], 0
			s.mu.Unlock()
			if dropped > 0 {
				s.log.Warn("ubus events dropped: ubus is too slow", "type", s.typ, "dropped", dropped)
			}
			s.send(ctx, b)
		}
	}
}

func (s *Sender) send(ctx context.Context, b []byte) {
	ctx, cancel := context.WithTimeout(ctx, sendTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, s.bin, "send", s.typ, string(b)).CombinedOutput()
	if err != nil && ctx.Err() == nil {
		s.log.Debug("ubus send failed", "type", s.typ, "err", err, "output", string(out))
	}
}
