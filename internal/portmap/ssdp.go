package portmap

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/natmap-go/natmap/internal/httpc"
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

// ssdpSearch sends an M-SEARCH for an Internet gateway to gw only, unicast
// (UDA 1.1 1.3.2; never to the SSDP multicast group, which every device on
// the link hears), and returns the first valid reply from gw whose LOCATION
// is on gw. Replies from anyone else are ignored.
func ssdpSearch(ctx context.Context, gw netip.Addr, o Options) (ssdpReply, error) {
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

	search := func(to netip.AddrPort) []byte {
		return []byte("M-SEARCH * HTTP/1.1\r\nHOST: " + to.String() + "\r\n" +
			"MAN: \"ssdp:discover\"\r\nMX: 1\r\nST: " + igdST + "\r\n\r\n")
	}
	to := netip.AddrPortFrom(gw, o.ssdpPort())
	buf := make([]byte, maxHeaderBytes+1)
	var lastErr error
	wait := 250 * time.Millisecond
	for ctx.Err() == nil {
		if _, err := c.WriteToUDPAddrPort(search(to), to); err != nil {
			return ssdpReply{}, fmt.Errorf("ssdp: %w", err)
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
