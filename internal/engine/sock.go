package engine

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/natmap-go/natmap/internal/config"
)

// dial connects from local (port 0: the kernel picks; no address: any)
// with natmap's socket options, over the mapping's protocol and family.
// When the user's service holds the port without SO_REUSEPORT, it takes the
// port over (see takeOver) and tries once more: services such as iperf3
// re-open their socket, so this can be needed at any connect.
func (e *Engine) dial(ctx context.Context, local netip.AddrPort, srv config.HostPort, timeout time.Duration) (net.Conn, error) {
	dial := func() (net.Conn, error) {
		d := net.Dialer{
			LocalAddr: e.localAddr(local),
			Control:   e.sockOpts(local.Port()).Control, // read again after a takeover
			Timeout:   timeout,
			KeepAlive: -1, // the application keep-alive is the one that matters
		}
		return d.DialContext(ctx, e.cfg.Network(), srv.String())
	}
	c, err := dial()
	if err != nil && e.takeOver(err, local.Port()) {
		c, err = dial()
	}
	return c, err
}

// localAddr is local as a net.Addr of the mapping's protocol.
func (e *Engine) localAddr(local netip.AddrPort) net.Addr {
	var ip net.IP
	if local.Addr().IsValid() {
		ip = local.Addr().AsSlice()
	}
	if e.cfg.UDP {
		return &net.UDPAddr{IP: ip, Port: int(local.Port())}
	}
	return &net.TCPAddr{IP: ip, Port: int(local.Port())}
}

// dialTimeout bounds a connect or a STUN exchange: long enough for a slow
// path, short enough to fail over within an interval.
func (e *Engine) dialTimeout() time.Duration {
	return min(max(e.cfg.Keepalive, 3*time.Second), 10*time.Second)
}

// addrPort is a socket address without IPv4-in-IPv6 mapping.
func addrPort(a net.Addr) netip.AddrPort {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	case *net.UDPAddr:
		ap = a.AddrPort()
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
