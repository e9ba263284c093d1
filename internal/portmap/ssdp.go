package portmap

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/natmap-go/natmap/internal/httpc"
	"golang.org/x/sys/unix"
)

const (
	ssdpPort = 1900
	igdST    = "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
)

// ssdpReply is what natmap needs from an M-SEARCH reply.
type ssdpReply struct {
	Location httpURL
	ST       string
}

// parseSSDP reads an M-SEARCH reply: "HTTP/1.1 200 OK", a LOCATION that is
// an http URL on an IPv4 address, and an ST naming an Internet gateway.
func parseSSDP(b []byte) (ssdpReply, error) {
	var r ssdpReply
	if len(b) > maxHeaderBytes {
		return r, errors.New("ssdp: reply too long")
	}
	resp, err := httpc.ReadResponse(bufio.NewReader(bytes.NewReader(b)), true, limits)
	if err != nil {
		return r, fmt.Errorf("ssdp: %w", err)
	}
	if resp.Proto != "HTTP/1.1" || resp.Status != 200 {
		return r, fmt.Errorf("ssdp: status %s %d", resp.Proto, resp.Status)
	}
	r.ST = resp.Get("ST")
	if !strings.HasPrefix(r.ST, "urn:schemas-upnp-org:device:InternetGatewayDevice:") &&
		!strings.HasPrefix(r.ST, "urn:schemas-upnp-org:service:WANIPConnection:") &&
		!strings.HasPrefix(r.ST, "urn:schemas-upnp-org:service:WANPPPConnection:") {
		return r, fmt.Errorf("ssdp: ST %q is not an Internet gateway", truncate(r.ST))
	}
	if r.Location, err = parseHTTPURL(resp.Get("Location")); err != nil {
		return r, fmt.Errorf("ssdp: LOCATION: %w", err)
	}
	return r, nil
}

// ssdpGroup is SSDP's multicast group (UDA 1.1 1.1.2).
var ssdpGroup = netip.AddrFrom4([4]byte{239, 255, 255, 250})

// ssdpSearch sends an M-SEARCH for an Internet gateway to gw, and returns
// the first valid reply from gw whose LOCATION is on gw; replies from
// anyone else are ignored. It asks gw alone first, unicast (UDA 1.1
// 1.3.2); from the second try on it also asks SSDP's multicast group, out
// of local's interface only, for the many UDA 1.0 routers that answer
// nothing else (every device on that link hears it, so not first).
func ssdpSearch(ctx context.Context, gw, local netip.Addr, o Options) (ssdpReply, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout())
	defer cancel()
	lc := net.ListenConfig{Control: o.Control}
	pc, err := lc.ListenPacket(ctx, "udp4", ":0")
	if err != nil {
		return ssdpReply{}, fmt.Errorf("ssdp: %w", err)
	}
	defer pc.Close()
	stop := context.AfterFunc(ctx, func() { pc.SetReadDeadline(time.Now()) })
	defer stop()
	c := pc.(*net.UDPConn)
	// Without local's interface the group would be asked on the default
	// route's, which may not be gw's link.
	multicast := local.Is4() && setMulticastIf(c, local) == nil

	search := func(to netip.AddrPort) []byte {
		return []byte("M-SEARCH * HTTP/1.1\r\nHOST: " + to.String() + "\r\n" +
			"MAN: \"ssdp:discover\"\r\nMX: 1\r\nST: " + igdST + "\r\n\r\n")
	}
	to := netip.AddrPortFrom(gw, o.ssdpPort())
	buf := make([]byte, maxHeaderBytes+1)
	var lastErr error
	wait := 250 * time.Millisecond
	group := netip.AddrPortFrom(ssdpGroup, o.ssdpPort())
	for try := 0; ctx.Err() == nil; try++ {
		if _, err := c.WriteToUDPAddrPort(search(to), to); err != nil {
			return ssdpReply{}, fmt.Errorf("ssdp: %w", err)
		}
		if multicast && try > 0 {
			// A link without multicast fails here: unicast goes on.
			_, _ = c.WriteToUDPAddrPort(search(group), group)
		}
		c.SetReadDeadline(time.Now().Add(wait))
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				break
			}
			if from.Addr().Unmap() != gw {
				continue
			}
			r, err := parseSSDP(buf[:n])
			if err != nil {
				lastErr = err
				continue
			}
			if r.Location.Host.Addr() != gw {
				lastErr = fmt.Errorf("ssdp: LOCATION %s is not on the gateway %s", r.Location, gw)
				continue
			}
			return r, nil
		}
		wait *= 2
	}
	if lastErr != nil {
		return ssdpReply{}, fmt.Errorf("ssdp: %w (last reply: %v)", ErrNoAnswer, lastErr)
	}
	return ssdpReply{}, fmt.Errorf("ssdp: %w", ErrNoAnswer)
}

// setMulticastIf sends c's multicast out of the interface that has local,
// with SSDP's TTL of 2 (UDA 1.1 1.1.2).
func setMulticastIf(c *net.UDPConn, local netip.Addr) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInet4Addr(int(fd), unix.IPPROTO_IP, unix.IP_MULTICAST_IF, local.As4())
		if serr == nil {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, 2)
		}
	})
	return cmp.Or(err, serr)
}
