package portmap

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// Options are shared by every client.
type Options struct {
	// Control sets socket options (interface, fwmark) on every socket.
	Control func(network, address string, c syscall.RawConn) error
	// Timeout bounds one exchange, retransmissions included (default 3s).
	Timeout time.Duration

	// Tests run fake routers on loopback: other ports, and a loopback
	// gateway allowed.
	testPMPPort, testSSDPPort uint16
}

func (o Options) pmpPort() uint16 {
	if o.testPMPPort != 0 {
		return o.testPMPPort
	}
	return pcpPort
}

func (o Options) ssdpPort() uint16 {
	if o.testSSDPPort != 0 {
		return o.testSSDPPort
	}
	return ssdpPort
}

func (o Options) timeout() time.Duration {
	if o.Timeout > 0 {
		return o.Timeout
	}
	return 3 * time.Second
}

// exchanger sends a UDP request to one server and waits for the reply,
// retransmitting with doubling intervals from 250ms (RFC 6886 3.1, RFC 6887
// 8.1.1), over a socket connected to the server so nothing else is heard.
type exchanger struct {
	server netip.AddrPort
	opts   Options
}

func newExchanger(server netip.AddrPort, o Options) *exchanger {
	return &exchanger{server: server, opts: o}
}

// exchange sends req until accept takes a reply (true) or fails; a reply
// that accept neither takes nor rejects is ignored.
func (x *exchanger) exchange(ctx context.Context, req []byte, accept func([]byte) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, x.opts.timeout())
	defer cancel()
	d := net.Dialer{Control: x.opts.Control}
	c, err := d.DialContext(ctx, "udp4", x.server.String())
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
	defer stop()

	buf := make([]byte, 1500)
	wait := 250 * time.Millisecond
	var lastErr error
	for ctx.Err() == nil {
		if _, err := c.Write(req); err != nil {
			return err
		}
		deadline := time.Now().Add(wait)
		c.SetReadDeadline(deadline)
		for {
			n, err := c.Read(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				if errors.Is(err, syscall.ECONNREFUSED) {
					return fmt.Errorf("%s: port closed: %w", x.server, ErrNoAnswer)
				}
				return err
			}
			ok, err := accept(buf[:n])
			if err != nil {
				lastErr = err // a malformed reply: wait for a good one
				continue
			}
			if ok {
				return nil
			}
		}
		wait *= 2
	}
	if lastErr != nil {
		return fmt.Errorf("%s: %w (last reply: %v)", x.server, ErrNoAnswer, lastErr)
	}
	return fmt.Errorf("%s: %w", x.server, ErrNoAnswer)
}
