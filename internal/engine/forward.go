package engine

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/natmap-go/natmap/internal/relay"
	"github.com/natmap-go/natmap/internal/sockopt"
)

// forwarder is a session's relay in forward mode. In bind mode it is
// empty: done never closes and wait returns at once.
type forwarder struct {
	done chan struct{} // closed when the relay has ended; then err says why
	err  error
	udp  *net.UDPConn // the UDP relay's socket on the bind port
	stop func()       // ends the relay
}

// wait ends the relay and waits until it has closed everything.
func (f *forwarder) wait() {
	if f.stop == nil {
		return
	}
	f.stop()
	<-f.done
}

// serve runs the relay until it ends.
func (f *forwarder) serve(ctx context.Context, serve func(context.Context) error) {
	f.done = make(chan struct{})
	go func() {
		defer close(f.done)
		f.err = serve(ctx)
	}()
}

// establish learns the new session's public address and starts the relay
// (forward mode). The first check asks two STUN servers when it can, to
// catch a NAT whose mapping depends on the destination; seen follows the
// session's checks (see observe).
func (e *Engine) establish(ctx context.Context, local netip.AddrPort, seen *checks) (*forwarder, error) {
	public, server, err := e.discover(ctx, local, true)
	if err != nil {
		return nil, err
	}
	// Listen before telling anyone: a client acting on the notification
	// must find the relay up, not a refused connection.
	fwd, err := e.startForward(ctx, local)
	if err != nil {
		return nil, err
	}
	if err := e.observe(seen, local, public, server); err != nil {
		fwd.wait()
		return nil, err
	}
	e.watchReach(ctx, local)
	return fwd, nil
}

// startForward listens on local and relays to the target for the rest of
// the session (forward mode); it does nothing in bind mode, nor when the
// kernel forwards (its rules follow the notified mapping).
func (e *Engine) startForward(ctx context.Context, local netip.AddrPort) (*forwarder, error) {
	f := &forwarder{}
	if !e.cfg.Relay() {
		return f, nil
	}
	ctx, f.stop = context.WithCancel(ctx)
	lc := net.ListenConfig{
		Control: sockopt.Options{
			Device: e.cfg.Device, Mark: e.cfg.Mark, Congestion: e.cfg.Congestion,
		}.Control,
		// No TCP keep-alive on relayed connections, as in the C natmap: the
		// idle timeout (-T) ends dead ones, and Go's default costs four
		// setsockopt calls per socket.
		KeepAlive: -1,
	}
	// Plain TCP, as clients speak it: Go's listeners default to MPTCP
	// where the kernel has it, whose fallback sockets add a layer under
	// splice and TCP_INFO for nothing.
	lc.SetMultipathTCP(false)
	addr := e.localAddr(local).String()

	if e.cfg.UDP {
		// The relay dials a session on its receive loop, which must not
		// wait for DNS: resolve the target once per session.
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", e.cfg.ForwardTarget)
		if err != nil || len(ips) == 0 {
			f.stop()
			return nil, fmt.Errorf("forward: resolve target %s: %w", e.cfg.ForwardTarget, err)
		}
		target := ips[0].Unmap()
		pc, err := lc.ListenPacket(ctx, e.cfg.Network(), addr)
		if err != nil {
			f.stop()
			return nil, fmt.Errorf("forward: listen on %s: %w", addr, err)
		}
		f.udp = pc.(*net.UDPConn)
		setBuffers(f.udp)
		r := &relay.UDP{
			Conn:        f.udp,
			Dial:        func(context.Context) (*net.UDPConn, error) { return e.dialTargetUDP(target) },
			IdleTimeout: e.cfg.ForwardTimeout,
			Log:         e.log,
			Stats:       &e.relayStats,
		}
		f.serve(ctx, r.Serve)
		return f, nil
	}

	ln, err := lc.Listen(ctx, e.cfg.Network(), addr)
	if err != nil {
		f.stop()
		return nil, fmt.Errorf("forward: listen on %s: %w", addr, err)
	}
	r := &relay.TCP{
		Listener:    ln.(*net.TCPListener),
		Dial:        e.dialTargetTCP,
		IdleTimeout: e.cfg.ForwardTimeout,
		Log:         e.log,
		Stats:       &e.relayStats,
	}
	// A target given as an address (the usual LAN host) needs no lookup:
	// the relay connects to it itself, with no goroutine or garbage per
	// connection. A name is looked up at each connection, as before.
	if ip, err := netip.ParseAddr(e.cfg.ForwardTarget); err == nil && ip.Zone() == "" {
		r.Target = func() netip.AddrPort { return netip.AddrPortFrom(ip.Unmap(), e.targetPort()) }
	}
	f.serve(ctx, r.Serve)
	return f, nil
}

// targetPort is the forward target's port; -p 0 means the current
// public port, so it is read at each connection.
func (e *Engine) targetPort() uint16 {
	if e.cfg.ForwardPort != 0 {
		return e.cfg.ForwardPort
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.status.Public.Port()
}

// The target is usually on the LAN: its sockets get no interface or mark
// (as in the C natmap), which are meant for the path to the internet.
func (e *Engine) dialTargetTCP(ctx context.Context) (net.Conn, error) {
	d := net.Dialer{KeepAlive: -1} // as on the client side (startForward)
	return d.DialContext(ctx, "tcp", net.JoinHostPort(e.cfg.ForwardTarget, strconv.Itoa(int(e.targetPort()))))
}

func (e *Engine) dialTargetUDP(target netip.Addr) (*net.UDPConn, error) {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(target, e.targetPort())))
	if err != nil {
		return nil, err
	}
	setBuffers(c)
	return c, nil
}

// setBuffers makes room for bursts of datagrams up to 64 KiB: the default
// buffers hold only about three of them. Best effort: the kernel caps it.
func setBuffers(c *net.UDPConn) {
	_ = c.SetReadBuffer(1 << 20)
	_ = c.SetWriteBuffer(1 << 20)
}
