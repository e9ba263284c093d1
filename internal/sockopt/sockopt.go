// Package sockopt sets the socket options every natmap socket shares: port
// reuse (so the keep-alive, STUN and service sockets can all use port B),
// the interface (-i), the fwmark (-f), the congestion control (-C) and, after
// a takeover of another user's socket, the owner.
package sockopt

import (
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// Options are applied to a socket before bind.
type Options struct {
	Device     string // SO_BINDTODEVICE
	Mark       uint32 // SO_MARK; 0 leaves it unset
	Congestion string // TCP_CONGESTION; "" leaves the system default
	// Owner is the uid the socket is given (fchown, needs CAP_CHOWN); 0
	// leaves it as created. SO_REUSEPORT shares a port only between sockets
	// of one uid, the one fchown sets on a socket (sk_uid, Linux >= 4.10):
	// so natmap, as root, shares port B with a service of another user.
	Owner uint32
}

// Control is a net.Dialer / net.ListenConfig Control function.
func (o Options) Control(network, address string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = o.apply(int(fd), network)
	})
	if err != nil {
		return err
	}
	return serr
}

func (o Options) apply(fd int, network string) error {
	for _, opt := range []int{unix.SO_REUSEADDR, unix.SO_REUSEPORT} {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt, 1); err != nil {
			return fmt.Errorf("set port reuse: %w", err)
		}
	}
	if o.Device != "" {
		if err := unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, o.Device); err != nil {
			return fmt.Errorf("bind to interface %s: %w", o.Device, err)
		}
	}
	if o.Mark != 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, int(o.Mark)); err != nil {
			return fmt.Errorf("set fwmark %#x: %w", o.Mark, err)
		}
	}
	if o.Congestion != "" && (network == "tcp" || network == "tcp4" || network == "tcp6") {
		if err := unix.SetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_CONGESTION, o.Congestion); err != nil {
			return fmt.Errorf("set congestion control %q: %w", o.Congestion, err)
		}
	}
	if o.Owner != 0 {
		// An MPTCP socket (what Go's ListenConfig makes by default) binds
		// through a TCP subflow, which keeps its creator's uid: say so
		// rather than chown in vain.
		if p, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PROTOCOL); err == nil && p == unix.IPPROTO_MPTCP {
			return fmt.Errorf("give the socket to uid %d: an MPTCP socket's TCP subflow would keep its uid", o.Owner)
		}
		if err := unix.Fchown(fd, int(o.Owner), -1); err != nil {
			return fmt.Errorf("give the socket to uid %d, to share the port with its sockets (needs root): %w", o.Owner, err)
		}
	}
	return nil
}

// Abort closes a TCP connection with a reset instead of a FIN. natmap
// reconnects from the same local port to the same servers: an orderly close
// would leave the 4-tuple in TIME_WAIT or FIN_WAIT, and the next connect
// would fail with EADDRNOTAVAIL for minutes (the C natmap's slow recovery).
func Abort(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}
