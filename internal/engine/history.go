package engine

import (
	"net/netip"
	"time"

	"github.com/natmap-go/natmap/internal/mapping"
)

// Event is one step in a mapping's life: it entered a state, or its public
// address changed.
type Event struct {
	Time   time.Time
	State  mapping.State
	Public netip.AddrPort // the address it was mapped to (mapping.Mapped)
	Error  string         // why the session ended (mapping.Retrying)
}

// Counters count what happened to a mapping since its engine started.
type Counters struct {
	Sessions       int64 // sessions started
	Failures       int64 // sessions that ended in an error
	AddressChanges int64 // public addresses notified (the first one too)
}

// HistoryLen is how many events a mapping keeps.
const HistoryLen = 20

// history is a ring of the last HistoryLen events.
type history struct {
	ev   [HistoryLen]Event
	next int // where the next event goes
	n    int // events kept, at most HistoryLen
}

func (h *history) add(ev Event) {
	h.ev[h.next] = ev
	h.next = (h.next + 1) % HistoryLen
	h.n = min(h.n+1, HistoryLen)
}

// list returns the events, oldest first.
func (h *history) list() []Event {
	out := make([]Event, 0, h.n)
	for i := range h.n {
		out = append(out, h.ev[(h.next-h.n+i+HistoryLen)%HistoryLen])
	}
	return out
}

// OnEvent sets a function called, never under the engine's lock, after each
// event is recorded. Call it before Run.
func (e *Engine) OnEvent(f func(Event)) { e.onEvent = f }

// event passes a recorded event on; e.mu must not be held.
func (e *Engine) event(ev Event) {
	if e.onEvent != nil {
		e.onEvent(ev)
	}
}
