package daemon

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/natmap-go/natmap/internal/engine"
	"github.com/natmap-go/natmap/internal/mapping"
	"github.com/natmap-go/natmap/internal/netwatch"
)

// settle is how long the daemon waits after a network event for the rest
// of its burst (a PPPoE redial brings the link, then addresses) before it
// acts once.
const settle = time.Second

// WatchNetwork re-punches the mappings that address and link changes
// affect, at once instead of when their keep-alive fails, until ctx ends.
func (d *Daemon) WatchNetwork(ctx context.Context) error {
	events, err := netwatch.Watch(ctx)
	if err != nil {
		return err
	}
	var batch []netwatch.Event
	var timer <-chan time.Time
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return ctx.Err()
			}
			if ev.LinkLocal || ev.Name == "lo" {
				continue
			}
			d.log.Debug("network event", "event", ev.String())
			batch = append(batch, ev)
			if timer == nil {
				timer = time.After(settle)
			}
		case <-timer:
			timer = nil
			d.repunch(batch)
			batch = nil
		}
	}
}

// repunch kicks the sections a batch of events affects. Needless kicks are
// not free: a re-established session may get a new public port from a
// port-translating NAT, so a mapped section is kicked only when its own
// device or local address changed; a section that is retrying anyway is
// kicked by any new address or link, to retry now.
func (d *Daemon) repunch(batch []netwatch.Event) {
	d.mu.Lock()
	secs := slices.Clone(d.sections)
	d.mu.Unlock()
	var names []string
	for _, s := range secs {
		if s.eng != nil && affected(batch, s.conf.Mapping.Device, s.eng.Status()) {
			s.eng.Repunch()
			names = append(names, s.conf.Ref)
		}
	}
	if len(names) > 0 {
		sort.Strings(names)
		d.log.Info("network changed: re-establishing mappings", "sections", strings.Join(names, ","))
	}
}

func affected(batch []netwatch.Event, device string, st engine.Status) bool {
	local := st.Private.Addr()
	for _, ev := range batch {
		switch {
		case ev.Kind == netwatch.Overrun:
			return true // events were lost: assume the worst
		case device != "" && ev.Name == device:
			return true
		case st.State != mapping.Mapped && (ev.Kind == netwatch.AddrAdded || ev.Kind == netwatch.LinkUp):
			return true
		case ev.Kind == netwatch.AddrRemoved && ev.Addr.Addr() == local:
			return true
		case ev.Kind == netwatch.LinkDown && holds(ev.Name, local):
			return true
		}
	}
	return false
}

// holds reports whether interface name has address a.
func holds(name string, a netip.Addr) bool {
	ifi, err := net.InterfaceByName(name)
	if err != nil || !a.IsValid() {
		return false
	}
	addrs, _ := ifi.Addrs()
	for _, x := range addrs {
		if p, err := netip.ParsePrefix(x.String()); err == nil && p.Addr().Unmap() == a {
			return true
		}
	}
	return false
}
