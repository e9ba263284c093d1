// Package netwatch reports network changes that invalidate NAT mappings:
// interfaces going down or up and addresses coming and going (a PPPoE
// redial, a DHCP renew with a new address), so that natmap re-punches at
// once instead of waiting for a keep-alive to fail (C natmap issues 4 and
// 85).
//
// It listens to the kernel's rtnetlink notifications and reports only
// changes of state: an interface's operational state flipping, an address
// becoming usable or going away. Nothing is delayed; see Watch.
package netwatch

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// Kind is what happened.
type Kind int

const (
	// AddrAdded means an address became usable on an interface: it was
	// added, or its duplicate address detection (DAD) ended.
	AddrAdded Kind = iota + 1
	// AddrRemoved means a usable address was deleted, or failed DAD.
	AddrRemoved
	// LinkUp means an interface became operationally up: administratively
	// up and IFF_RUNNING (carrier, operstate up or unknown).
	LinkUp
	// LinkDown means an interface that was operationally up no longer is,
	// or was deleted.
	LinkDown
	// Overrun means events were lost (the kernel's socket buffer
	// overflowed): re-check everything. Only Kind and Err are set.
	Overrun
)

func (k Kind) String() string {
	switch k {
	case AddrAdded:
		return "AddrAdded"
	case AddrRemoved:
		return "AddrRemoved"
	case LinkUp:
		return "LinkUp"
	case LinkDown:
		return "LinkDown"
	case Overrun:
		return "Overrun"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Event is one change.
type Event struct {
	Kind  Kind
	Index int    // interface index
	Name  string // interface name; "" if unknown
	// Addr is the address with its prefix length (192.0.2.1/24, not
	// masked), for AddrAdded and AddrRemoved. On a point-to-point link it
	// is the local end, not the peer.
	Addr netip.Prefix
	// LinkLocal marks an address event for fe80::/10 or 169.254.0.0/16:
	// IPv6 brings those up with every link, and they never carry a NAT
	// mapping, so consumers usually ignore them.
	LinkLocal bool
	// Err is why events were lost, for Overrun.
	Err error
}

func (e Event) String() string {
	switch e.Kind {
	case AddrAdded, AddrRemoved:
		ll := ""
		if e.LinkLocal {
			ll = " (link-local)"
		}
		return fmt.Sprintf("%v %v on %s (%d)%s", e.Kind, e.Addr, e.Name, e.Index, ll)
	case Overrun:
		return fmt.Sprintf("Overrun: %v", e.Err)
	}
	return fmt.Sprintf("%v %s (%d)", e.Kind, e.Name, e.Index)
}

// bufferedEvents is the channel's capacity: a PPPoE redial's burst (a few
// link and address events) fits without the watcher waiting.
const bufferedEvents = 64

// Watch subscribes to link and IPv4/IPv6 address notifications
// (RTMGRP_LINK, RTMGRP_IPV4_IFADDR, RTMGRP_IPV6_IFADDR) in the network
// namespace of the calling thread, and sends changes on the returned
// channel until ctx ends. Then it closes its sockets and the channel; its
// goroutine always ends.
//
// Watch first reads the interface and address tables, as a baseline:
// only changes from it are sent. Changes racing with Watch's start may
// still be reported although the baseline already shows them.
//
// What is coalesced: notifications that change nothing a mapping depends
// on are dropped. The kernel sends RTM_NEWLINK also for MTU, name, flag and
// statistics changes, and RTM_NEWADDR also for lifetime refreshes (every
// IPv6 router advertisement) and flag changes; only an operational state
// flip (LinkUp, LinkDown) or an address becoming usable or not (AddrAdded,
// AddrRemoved) is an event. What is not: nothing is delayed or merged in
// time. A PPPoE redial arrives as a burst (LinkDown, AddrRemoved, LinkUp,
// AddrAdded...) as fast as the kernel sends it; the consumer debounces
// (waits for a quiet moment) before acting.
//
// Link-local addresses are reported with LinkLocal set. Messages from
// anyone but the kernel are ignored.
//
// If the consumer falls behind by more than the channel's buffer, Watch
// stops reading, the kernel's socket buffer overflows and drops
// notifications, and the consumer later gets an Overrun event (so do
// truncated or malformed messages): Watch then re-reads the tables as the
// new baseline, so later events are again exact.
func Watch(ctx context.Context) (<-chan Event, error) {
	w, err := open()
	if err != nil {
		return nil, err
	}
	if err := w.resync(); err != nil {
		w.close()
		return nil, err
	}
	return w.start(ctx), nil
}

// start runs the watcher in its own goroutine until ctx ends.
func (w *watcher) start(ctx context.Context) <-chan Event {
	out := make(chan Event, bufferedEvents)
	go w.run(ctx, out)
	return out
}

// run reads notifications and sends the resulting events until ctx ends.
func (w *watcher) run(ctx context.Context, out chan<- Event) {
	defer close(out)
	defer w.close()
	// Unblocks the read at once; ctx.Err() then tells it from a real error.
	stop := context.AfterFunc(ctx, func() { w.events.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	for {
		us, err := w.read()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if !errors.Is(err, unix.ENOBUFS) && !errors.Is(err, errTruncated) {
				// Unexpected from a netlink socket; do not spin on it.
				if !sleep(ctx, time.Second) {
					return
				}
			}
			// Whatever was lost, the tables tell the current state:
			// read after the queue is empty (see drain).
			for w.drain() != nil || w.resync() != nil {
				if !sleep(ctx, time.Second) {
					return
				}
			}
			if !send(ctx, out, Event{Kind: Overrun, Err: err}) {
				return
			}
			continue
		}
		for _, u := range us {
			if ev, ok := w.state.apply(u); ok && !send(ctx, out, ev) {
				return
			}
		}
	}
}

// send sends ev unless ctx ends first.
func send(ctx context.Context, out chan<- Event, ev Event) bool {
	select {
	case out <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

// sleep waits for d unless ctx ends first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// state is what the kernel last told about links and addresses, so that
// only changes become events.
type state struct {
	links map[int]link
	addrs map[addrKey]bool // usable addresses
}

type link struct {
	name string
	up   bool
}

type addrKey struct {
	index  int
	prefix netip.Prefix
}

// newState builds a baseline from a table dump, without events.
func newState(us []update) state {
	s := state{links: map[int]link{}, addrs: map[addrKey]bool{}}
	for _, u := range us {
		s.apply(u)
	}
	return s
}

// apply records u and returns the event it makes, if any. An interface not
// seen before counts as down.
func (s *state) apply(u update) (Event, bool) {
	if u.link {
		old := s.links[u.index]
		ev := Event{Index: u.index, Name: u.name}
		if ev.Name == "" {
			ev.Name = old.name
		}
		if u.del {
			delete(s.links, u.index)
			// The kernel removes addresses first, but never leak them.
			for k := range s.addrs {
				if k.index == u.index {
					delete(s.addrs, k)
				}
			}
			ev.Kind = LinkDown
			return ev, old.up
		}
		s.links[u.index] = link{name: ev.Name, up: u.up}
		ev.Kind = LinkUp
		if !u.up {
			ev.Kind = LinkDown
		}
		return ev, u.up != old.up
	}

	k := addrKey{u.index, u.prefix}
	had, has := s.addrs[k], !u.del && u.usable
	if had == has {
		return Event{}, false
	}
	ev := Event{
		Kind:      AddrAdded,
		Index:     u.index,
		Name:      s.links[u.index].name,
		Addr:      u.prefix,
		LinkLocal: u.prefix.Addr().IsLinkLocalUnicast(),
	}
	if ev.Name == "" {
		ev.Name = u.name // IPv4's label: the name, unless it is an alias
	}
	if has {
		s.addrs[k] = true
	} else {
		delete(s.addrs, k)
		ev.Kind = AddrRemoved
	}
	return ev, true
}
