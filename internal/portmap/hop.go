package portmap

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// SecondHop sends one UDP datagram towards dst with a TTL of 2 and returns
// the router whose "time exceeded" comes back: the hop after the gateway.
// A private address there means the router in front sits behind another
// private network (a double NAT), whatever external address it claims.
func SecondHop(ctx context.Context, dst netip.AddrPort, o Options) (netip.Addr, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout())
	defer cancel()
	d := net.Dialer{Control: func(network, address string, c syscall.RawConn) error {
		if o.Control != nil {
			if err := o.Control(network, address, c); err != nil {
				return err
			}
		}
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = errors.Join(unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_RECVERR, 1),
				unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TTL, 2))
		})
		return errors.Join(err, serr)
	}}
	c, err := d.DialContext(ctx, "udp4", dst.String())
	if err != nil {
		return netip.Addr{}, fmt.Errorf("second hop: %w", err)
	}
	defer c.Close()
	rc, err := c.(*net.UDPConn).SyscallConn()
	if err != nil {
		return netip.Addr{}, err
	}
	var hop netip.Addr
	buf, oob := make([]byte, 64), make([]byte, 512)
	// Three tries, a third of the time each: a router may rate-limit its
	// ICMP.
	for try := 0; try < 3 && !hop.IsValid() && ctx.Err() == nil; try++ {
		if _, err := c.Write([]byte{0}); err != nil && !errors.Is(err, syscall.EHOSTUNREACH) {
			return netip.Addr{}, fmt.Errorf("second hop: %w", err)
		}
		c.SetReadDeadline(time.Now().Add(o.timeout() / 3))
		_ = rc.Read(func(fd uintptr) bool {
			_, oobn, _, _, err := unix.Recvmsg(int(fd), buf, oob, unix.MSG_ERRQUEUE)
			if err == unix.EAGAIN {
				return false // wait for the error queue (or the deadline)
			}
			if err == nil {
				hop = parseTimeExceeded(oob[:oobn])
			}
			return true
		})
	}
	if !hop.IsValid() {
		return hop, errors.New("second hop: no time-exceeded reply")
	}
	return hop, nil
}

// parseTimeExceeded reads an IP_RECVERR control message: the offender's
// address of an ICMP time exceeded, or the zero Addr.
func parseTimeExceeded(oob []byte) netip.Addr {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return netip.Addr{}
	}
	for _, m := range msgs {
		// struct sock_extended_err (16 bytes), then the offender's
		// struct sockaddr_in.
		d := m.Data
		if m.Header.Level != unix.SOL_IP || m.Header.Type != unix.IP_RECVERR || len(d) < 16+8 {
			continue
		}
		const originICMP, timeExceeded = 2, 11
		if d[4] != originICMP || d[5] != timeExceeded {
			continue
		}
		if binary.NativeEndian.Uint16(d[16:18]) != unix.AF_INET {
			continue
		}
		return netip.AddrFrom4([4]byte(d[20:24]))
	}
	return netip.Addr{}
}
