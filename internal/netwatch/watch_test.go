package netwatch

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/testkit/fds"
	"github.com/natmap-go/natmap/internal/testkit/netns"
	"github.com/natmap-go/natmap/internal/testkit/testgate"
	"golang.org/x/sys/unix"
)

// These tests make real changes in throw-away network namespaces and check
// the events the kernel's notifications turn into. The host's namespace is
// never touched.

var netnsSeq atomic.Int64

// newNetns creates a network namespace that t's cleanup deletes.
func newNetns(t *testing.T) string {
	t.Helper()
	ns := fmt.Sprintf("nwt%d-%d", os.Getpid(), netnsSeq.Add(1))
	ip(t, "", "netns", "add", ns)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", ns, err, out)
		}
	})
	return ns
}

// ip runs ip(8) in namespace ns ("" for the current one).
func ip(t *testing.T, ns string, args ...string) {
	t.Helper()
	if err := ipErr(ns, args...); err != nil {
		t.Fatal(err)
	}
}

func ipErr(ns string, args ...string) error {
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// addLink adds an interface name that is operationally up as soon as it is
// set up: a dummy, or an ifb on kernels built without dummy.
func addLink(t *testing.T, ns, name string) {
	t.Helper()
	err := ipErr(ns, "link", "add", name, "type", "dummy")
	if err != nil && strings.Contains(err.Error(), "Unknown device type") {
		t.Log("no dummy interfaces in this kernel; using ifb")
		err = ipErr(ns, "link", "add", name, "type", "ifb")
	}
	if err != nil {
		t.Fatal(err)
	}
}

// watchIn starts Watch in namespace ns.
func watchIn(t *testing.T, ctx context.Context, ns string) <-chan Event {
	t.Helper()
	var ch <-chan Event
	if err := netns.Do(ns, func() (err error) {
		ch, err = Watch(ctx)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return ch
}

func linkIndex(t *testing.T, ns, name string) int {
	t.Helper()
	var index int
	if err := netns.Do(ns, func() error {
		ifi, err := net.InterfaceByName(name)
		if err == nil {
			index = ifi.Index
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return index
}

// stream reads a watcher's events, setting link-local address events aside
// (they come and go with IPv6 on every link, on the kernel's schedule).
type stream struct {
	t         *testing.T
	ch        <-chan Event
	linkLocal []Event
}

// next returns the next event that is not about a link-local address.
func (s *stream) next() Event {
	s.t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case ev, ok := <-s.ch:
			if !ok {
				s.t.Fatal("channel closed")
			}
			if ev.LinkLocal {
				s.linkLocal = append(s.linkLocal, ev)
				continue
			}
			return ev
		case <-timeout:
			s.t.Fatal("no event within 5s")
		}
	}
}

// expect checks that the next events are want, in order.
func (s *stream) expect(want ...Event) {
	s.t.Helper()
	for _, w := range want {
		if got := s.next(); got != w {
			s.t.Fatalf("got event %v, want %v", got, w)
		}
	}
}

func TestWatch(t *testing.T) {
	testgate.Netns(t, "netwatch")
	ns := newNetns(t)
	addLink(t, ns, "d0")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := &stream{t: t, ch: watchIn(t, ctx, ns)}
	d0 := linkIndex(t, ns, "d0")
	ev := func(k Kind, prefix string) Event {
		e := Event{Kind: k, Index: d0, Name: "d0"}
		if prefix != "" {
			e.Addr = netip.MustParsePrefix(prefix)
		}
		return e
	}

	ip(t, ns, "link", "set", "d0", "up")
	s.expect(ev(LinkUp, ""))
	ip(t, ns, "addr", "add", "192.0.2.1/24", "dev", "d0")
	s.expect(ev(AddrAdded, "192.0.2.1/24"))
	ip(t, ns, "addr", "add", "2001:db8::1/64", "dev", "d0", "nodad")
	s.expect(ev(AddrAdded, "2001:db8::1/64"))
	ip(t, ns, "addr", "del", "192.0.2.1/24", "dev", "d0")
	s.expect(ev(AddrRemoved, "192.0.2.1/24"))
	// Without keep_addr_on_down the kernel drops IPv6 addresses on down.
	ip(t, ns, "link", "set", "d0", "down")
	s.expect(ev(LinkDown, ""), ev(AddrRemoved, "2001:db8::1/64"))
	// An MTU change makes an RTM_NEWLINK but no event: the next event is
	// the marker's.
	ip(t, ns, "link", "set", "d0", "mtu", "1400")
	ip(t, ns, "addr", "add", "192.0.2.2/24", "dev", "d0")
	s.expect(ev(AddrAdded, "192.0.2.2/24"))

	// IPv6 gave d0 a link-local address when it came up, and took it away
	// when it went down.
	kinds := ""
	for _, e := range s.linkLocal {
		if e.Index != d0 || !e.Addr.Addr().Is6() || !e.Addr.Addr().IsLinkLocalUnicast() {
			t.Errorf("link-local event %v", e)
		}
		kinds += e.Kind.String() + " "
	}
	if kinds != "AddrAdded AddrRemoved " {
		t.Errorf("link-local events %v, want one added and removed", s.linkLocal)
	}
}

// A carrier loss (a WAN cable pulled, the PPPoE peer gone) is a LinkDown
// although the link stays administratively up; a bridge taking a port and
// letting it go is nothing.
func TestWatchCarrier(t *testing.T) {
	testgate.Netns(t, "netwatch")
	ns, peer := newNetns(t), newNetns(t)
	// Distinct indexes: the kernel delays carrier news for a veth whose
	// peer has its own index (see internal/testkit/lab).
	ip(t, ns, "link", "add", "v0", "index", "10", "type", "veth", "peer", "name", "v0p", "netns", peer, "index", "11")
	ip(t, ns, "link", "add", "br0", "type", "bridge")
	ip(t, peer, "link", "set", "v0p", "up")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := &stream{t: t, ch: watchIn(t, ctx, ns)}
	v0 := Event{Index: 10, Name: "v0"}
	with := func(k Kind) Event { e := v0; e.Kind = k; return e }

	ip(t, ns, "link", "set", "v0", "up")
	s.expect(with(LinkUp))
	ip(t, peer, "link", "set", "v0p", "down")
	s.expect(with(LinkDown))
	ip(t, peer, "link", "set", "v0p", "up")
	s.expect(with(LinkUp))
	ip(t, ns, "link", "set", "v0", "master", "br0")
	ip(t, ns, "link", "set", "v0", "nomaster")
	ip(t, ns, "link", "del", "v0")
	s.expect(with(LinkDown))
}

// A consumer that falls behind gets Overrun, and the events after it are
// exact again.
func TestWatchOverrun(t *testing.T) {
	testgate.Netns(t, "netwatch")
	ns := newNetns(t)
	addLink(t, ns, "d0")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var w *watcher
	if err := netns.Do(ns, func() (err error) {
		w, err = open()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// The smallest receive buffer, so that a few notifications overflow it.
	var serr error
	if err := w.raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 0)
	}); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	if err := w.resync(); err != nil {
		t.Fatal(err)
	}
	s := &stream{t: t, ch: w.start(ctx)}

	// Far more changes than the channel and the socket hold, read by no one.
	var batch strings.Builder
	const n = 300
	for i := range n {
		fmt.Fprintf(&batch, "addr add 198.18.%d.%d/32 dev d0\n", i/250, i%250+1)
	}
	cmd := exec.Command("ip", "-n", ns, "-batch", "-")
	cmd.Stdin = strings.NewReader(batch.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ip -batch: %v\n%s", err, out)
	}
	// The watcher reads while ip adds, so it may overflow, resync and go on
	// (even more than once) while the adds go on. Until it is quiet: each
	// address is reported at most once, and there was an Overrun.
	added, overruns := map[netip.Prefix]bool{}, 0
	for quiet := false; !quiet; {
		select {
		case ev := <-s.ch:
			switch {
			case ev.Kind == Overrun:
				t.Logf("Overrun after %d of %d events: %v", len(added), n, ev.Err)
				overruns++
			case ev.Kind != AddrAdded || added[ev.Addr]:
				t.Fatalf("event %v", ev)
			default:
				added[ev.Addr] = true
			}
		case <-time.After(time.Second):
			quiet = true
		}
	}
	if overruns == 0 {
		t.Fatalf("%d of %d events and no Overrun", len(added), n)
	}
	// After the resync the state is exact: it knows this address, whatever
	// became of its event.
	ip(t, ns, "addr", "del", "198.18.1.50/32", "dev", "d0")
	s.expect(Event{Kind: AddrRemoved, Index: linkIndex(t, ns, "d0"), Name: "d0", Addr: netip.MustParsePrefix("198.18.1.50/32")})
}

// Cancelling ctx ends the goroutine, closes the channel and both sockets,
// also while the goroutine waits for a consumer that does not read.
func TestWatchCancel(t *testing.T) {
	testgate.Netns(t, "netwatch")
	ns := newNetns(t)
	addLink(t, ns, "d0")
	// The runtime's poller has its own descriptors; have them before
	// counting.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	w.Close()

	for _, busy := range []bool{false, true} {
		t.Run(fmt.Sprintf("busy=%v", busy), func(t *testing.T) {
			before := fds.Count(t)
			ctx, cancel := context.WithCancel(context.Background())
			ch := watchIn(t, ctx, ns)
			if busy {
				// More events than the channel holds, so the goroutine
				// waits to send.
				for i := range bufferedEvents + 10 {
					ip(t, ns, "addr", "add", fmt.Sprintf("198.18.0.%d/32", i+1), "dev", "d0")
				}
				time.Sleep(100 * time.Millisecond)
			}
			cancel()
			timeout := time.After(2 * time.Second)
			for open := true; open; {
				select {
				case _, open = <-ch:
				case <-timeout:
					t.Fatal("channel still open 2s after cancel")
				}
			}
			if after := fds.Count(t); after != before {
				t.Errorf("%d open descriptors before Watch, %d after it ended", before, after)
			}
		})
	}
}

// With a ctx already cancelled, Watch still succeeds and its channel closes
// at once.
func TestWatchCancelledContext(t *testing.T) {
	testgate.Netns(t, "netwatch")
	ns := newNetns(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ch := watchIn(t, ctx, ns)
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("event after cancel")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("channel still open")
	}
}
