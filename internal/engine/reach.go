package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/natmap-go/natmap/internal/config"
	"github.com/natmap-go/natmap/internal/portcheck"
	"github.com/natmap-go/natmap/internal/stun"
)

// ReachState says whether outside hosts can reach the public address.
type ReachState string

// Reachability states; "" is not checked yet.
const (
	Reachable    ReachState = "reachable"
	Unreachable  ReachState = "unreachable"
	ReachNotSure ReachState = "unknown" // no method could tell
)

// Reach methods, the values of Reach.Method.
const (
	MethodRFC5780   = "rfc5780"    // STUN filtering test, from a port of its own
	MethodPortCheck = "port-check" // the reachability URL's checker reached the address
	MethodHairpin   = "hairpin"    // a TCP connection to the public address from this host completed
)

// Reach is the last reachability check of the public address.
type Reach struct {
	State    ReachState
	Method   string         // what decided State; "" when nothing could
	Public   netip.AddrPort // the address checked
	Checked  time.Time      // when the last check ended
	Verified time.Time      // when Public was last proven reachable (zero: never)
	Detail   string         // why not reachable, or why nobody could tell
}

// Summary is the one-line verdict the log, status and LuCI show.
func (r Reach) Summary() string {
	switch r.State {
	case Reachable:
		return fmt.Sprintf("reachable (verified %s, %s)", r.Verified.Format("15:04"), r.Method)
	case Unreachable:
		return "NOT reachable from outside: " + r.Detail
	case ReachNotSure:
		return "reachability not verified: " + r.Detail
	}
	return ""
}

// reachEvery is how many keep-alive intervals pass between two checks of
// the same address.
const reachEvery = 5

// reachTimeout bounds one check: a checker that connects back needs a few
// seconds for a TCP handshake that may never be answered.
const reachTimeout = 20 * time.Second

// reacher holds the reachability check's settings and wake-up.
type reacher struct {
	url *portcheck.URL // the reachability URL; nil when not configured
	now chan struct{}  // a new public address: check at once
}

func newReacher(cfg config.Mapping) reacher {
	r := reacher{now: make(chan struct{}, 1)}
	if cfg.ReachabilityURL != "" {
		r.url, _ = portcheck.ParseURL(cfg.ReachabilityURL) // Validate has checked it
	}
	return r
}

// newAddressLocked forgets the verdict about the previous public address
// and asks for a check of the new one. e.mu is held.
func (e *Engine) newAddressLocked() {
	e.status.Reach = Reach{}
	select {
	case e.reach.now <- struct{}{}:
	default:
	}
}

// watchReach checks, for the rest of the session, that outside hosts can
// reach the public address: at once, then three quarters of an interval
// later, then every reachEvery intervals, each time a quarter of an
// interval before the keep-alive refreshes the mapping. A mapping that the
// NAT forgets when idle for less than that is seen dead there, as an
// outside client would find it. A new public address is checked at once.
func (e *Engine) watchReach(ctx context.Context, local netip.AddrPort) {
	select {
	case <-e.reach.now: // this session's first address: checked below
	default:
	}
	e.probes.Add(1)
	go func() {
		defer e.probes.Done()
		t := time.NewTimer(0)
		defer t.Stop()
		wait := e.cfg.Keepalive * 3 / 4
		for {
			select {
			case <-ctx.Done():
				return
			case <-e.reach.now:
			case <-t.C:
			}
			e.checkReach(ctx, local)
			t.Reset(wait)
			wait = reachEvery * e.cfg.Keepalive
		}
	}()
}

// checkReach runs the methods that can tell, in order, and records the
// first definite answer:
//
//  1. RFC 5780's filtering test says "restricted": only hosts natmap has
//     sent to get in, whatever the port; that settles it.
//  2. The reachability URL: a checker outside connects to the very public
//     address, now.
//  3. Hairpinning (TCP only): a connection from this host to the public
//     address completes only if the NAT forwards it to the bind port.
//  4. RFC 5780 says "endpoint-independent": anyone can reach a mapping.
//     It tested another port of its own, so it cannot see a mapping the NAT
//     forgets between keep-alives; 2 and 3 can, so they go first.
//
// A check that cannot tell does not overturn a definite verdict about the
// same address; it only notes why in Detail.
func (e *Engine) checkReach(ctx context.Context, local netip.AddrPort) {
	public := e.Status().Public
	if !public.IsValid() {
		return
	}
	f, srv := e.filtering(ctx, public)
	r := e.judge(ctx, public, f, srv, nil, func() error { return e.hairpin(ctx, local, public) })
	if ctx.Err() != nil {
		return // the session ended: its verdict no longer matters
	}
	now := r.Checked
	e.log.Debug("reachability checked", "public", public, "state", r.State, "method", r.Method, "detail", r.Detail)

	e.mu.Lock()
	if e.status.Public != public {
		e.mu.Unlock()
		// The address changed meanwhile (its own check follows), but the
		// notify script was told this one: say what became of it.
		if r.State == Unreachable {
			e.log.Warn(r.Summary()+"; the notify script was still told", "public", public, "method", r.Method)
		}
		return
	}
	old := e.status.Reach
	if r.State == ReachNotSure && old.Public == public && (old.State == Reachable || old.State == Unreachable) {
		old.Checked, old.Detail = now, "last check could not tell: "+r.Detail
		r = old
	}
	e.status.Reach = r
	e.mu.Unlock()

	if old.State == r.State && old.Method == r.Method && old.Public == public {
		return // say it once per change, not at every check
	}
	log := e.log.With("public", public, "method", r.Method)
	switch r.State {
	case Reachable:
		log.Info(r.Summary())
	case Unreachable:
		log.Warn(r.Summary() + "; the notify script was still told")
	default:
		log.Warn(r.Summary())
	}
}

// dialChecker connects to the port checker with natmap's socket options,
// so the request leaves by the interface the mapping uses.
func (e *Engine) dialChecker(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Control: e.sock.Control, KeepAlive: -1}
	if e.cfg.BindAddr.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: e.cfg.BindAddr.AsSlice()}
	}
	if e.cfg.IPv6 {
		network += "6"
	} else {
		network += "4"
	}
	return d.DialContext(ctx, network, addr)
}

// hairpin connects from this host (another port) to the public address;
// nil means the connection completed, through the NAT, to the bind port.
// That is the user's service in bind mode, natmap's relay in forward mode:
// either way what an outside client would reach; the service sees a
// connection that closes at once, as from any port checker.
//
// Only over TCP: a completed handshake can only come from a listener on
// the bind port. A UDP datagram sent there goes to the user's service in
// bind mode, or through the relay to the target in forward mode, and
// neither hands it back to natmap, so nothing would prove it arrived. A
// NAT that does not hairpin (most do not) gives no answer, not a "no".
func (e *Engine) hairpin(ctx context.Context, local, public netip.AddrPort) error {
	if e.cfg.UDP {
		return errors.New("hairpin: not testable over UDP")
	}
	c, from, err := e.hairpinDial(ctx, local, public)
	if err != nil {
		return err
	}
	defer c.Close()
	// Something answered at the public address, but the NAT box itself
	// may listen on that port (a router's web server): only a connection
	// that arrived on the bind port, from the port it was made from (a
	// hairpinning NAT keeps it, as masquerading does), is proof.
	arrived, err := tcpArrived(local.Port(), from.Port())
	if err != nil {
		return fmt.Errorf("hairpin: %w", err)
	}
	if !arrived {
		return fmt.Errorf("hairpin: %s answered, but not on local port %d", public, local.Port())
	}
	return nil
}

// hairpinDial connects from local's address (another port) to public.
func (e *Engine) hairpinDial(ctx context.Context, local, public netip.AddrPort) (net.Conn, netip.AddrPort, error) {
	d := net.Dialer{
		LocalAddr: &net.TCPAddr{IP: local.Addr().AsSlice()},
		Control:   e.sock.Control,
		Timeout:   3 * time.Second,
		KeepAlive: -1,
	}
	c, err := d.DialContext(ctx, e.cfg.Network(), public.String())
	if err != nil {
		return nil, netip.AddrPort{}, errors.New("hairpin: the NAT does not loop back to its public address")
	}
	from := addrPort(c.LocalAddr())
	// A public address that is this host's own proves nothing: the
	// connection never left it.
	if from.Addr() == public.Addr() {
		c.Close()
		return nil, netip.AddrPort{}, errors.New("hairpin: the public address is this host's own")
	}
	return c, from, nil
}

// tcpArrived reports whether this host has a TCP connection on local port
// port from remote port from, as listed in /proc/net/tcp and tcp6 (lines
// "sl local_address rem_address st ...", addresses as HEX_IP:HEX_PORT).
func tcpArrived(port, from uint16) (bool, error) {
	want := fmt.Sprintf(":%04X", port)
	wantFrom := fmt.Sprintf(":%04X", from)
	for _, f := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		b, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue // no IPv6
		}
		if err != nil {
			return false, err
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) > 3 && strings.HasSuffix(fs[1], want) && strings.HasSuffix(fs[2], wantFrom) {
				return true, nil
			}
		}
	}
	return false, nil
}

// checkHeldPort is natmap check's reachability test, run right after the
// STUN queries made the mapping: the port is held by CheckNAT itself (a
// TCP listener, or a UDP socket), so unlike in a session natmap sees what
// arrives. Hairpinning (TCP) counts only when the connection is accepted
// on the held port; over UDP the port checker's datagrams are echoed from
// the held socket for as long as the checker takes. The order is
// checkReach's.
func (e *Engine) checkHeldPort(ctx context.Context, held io.Closer, local, public netip.AddrPort, f stun.Filtering, srv string) Reach {
	pc, _ := held.(*net.UDPConn)
	ln, _ := held.(*net.TCPListener)
	var echo func(context.Context) func()
	if pc != nil {
		echo = func(ctx context.Context) func() {
			done := make(chan struct{})
			go echoUntil(ctx, pc, done)
			return func() { <-done }
		}
	}
	return e.judge(ctx, public, f, srv, echo, func() error {
		if ln == nil {
			return errors.New("hairpin: not testable over UDP")
		}
		return e.hairpinHeld(ctx, ln, local, public)
	})
}

// judge runs the reachability methods in checkReach's order and returns
// the first definite answer, or ReachNotSure with every method's reason.
// echo, when not nil, answers the port checker's datagrams while it runs
// (until its context ends; the func it returns waits for that).
func (e *Engine) judge(ctx context.Context, public netip.AddrPort, f stun.Filtering, srv string,
	echo func(context.Context) func(), hairpin func() error) Reach {
	r := Reach{Public: public}
	var unsure []string
	switch f {
	case stun.AddressDependent, stun.AddressPortDependent:
		r.State, r.Method = Unreachable, MethodRFC5780
		r.Detail = fmt.Sprintf("the NAT's filtering is %s, by RFC 5780's test with %s: only hosts this one has sent to get in", f, srv)
	case stun.FilteringUnknown:
		unsure = append(unsure, "no STUN server supports RFC 5780")
	}
	if r.State == "" && e.reach.url != nil {
		cctx, cancel := context.WithTimeout(ctx, reachTimeout)
		wait := func() {}
		if echo != nil {
			wait = echo(cctx)
		}
		ok, err := portcheck.Check(cctx, e.dialChecker, e.reach.url, public, e.cfg.Protocol())
		cancel()
		wait()
		switch {
		case err != nil:
			unsure = append(unsure, err.Error())
		case ok:
			r.State, r.Method = Reachable, MethodPortCheck
		default:
			r.State, r.Method = Unreachable, MethodPortCheck
			r.Detail = fmt.Sprintf("the port checker could not reach %s/%s (the NAT filters, or forgets the mapping before the next keep-alive)", public, e.cfg.Protocol())
		}
	}
	if r.State == "" {
		if err := hairpin(); err != nil {
			unsure = append(unsure, err.Error())
		} else {
			r.State, r.Method = Reachable, MethodHairpin
		}
	}
	if r.State == "" && f == stun.EndpointIndependent {
		r.State, r.Method = Reachable, MethodRFC5780
	}
	r.Checked = time.Now()
	switch r.State {
	case "":
		r.State, r.Detail = ReachNotSure, strings.Join(unsure, "; ")
	case Reachable:
		r.Verified = r.Checked
	}
	return r
}

// echoUntil sends back every datagram pc receives until ctx ends, then
// closes done.
func echoUntil(ctx context.Context, pc *net.UDPConn, done chan<- struct{}) {
	defer close(done)
	stop := context.AfterFunc(ctx, func() { pc.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	defer pc.SetReadDeadline(time.Time{})
	buf := make([]byte, 2048)
	for {
		n, from, err := pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		pc.WriteToUDPAddrPort(buf[:n], from)
	}
}

// hairpinHeld connects to public from another port of local's address and
// waits for the connection on ln, the held port: it proves the NAT loops
// back to this mapping.
func (e *Engine) hairpinHeld(ctx context.Context, ln *net.TCPListener, local, public netip.AddrPort) error {
	c, from, err := e.hairpinDial(ctx, local, public)
	if err != nil {
		return err
	}
	defer c.Close()
	ln.SetDeadline(time.Now().Add(2 * time.Second))
	defer ln.SetDeadline(time.Time{})
	for {
		a, err := ln.AcceptTCP()
		if err != nil {
			return fmt.Errorf("hairpin: %s answered, but not on local port %d", public, local.Port())
		}
		got := addrPort(a.RemoteAddr())
		a.Close()
		if got.Port() == from.Port() {
			return nil
		}
	}
}
