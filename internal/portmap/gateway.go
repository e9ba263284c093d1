package portmap

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// DefaultGateway returns the IPv4 default gateway of the current network
// namespace, on device when it is not "" (the section's interface), and
// the interface it is on.
func DefaultGateway(device string) (netip.Addr, string, error) {
	b, err := os.ReadFile("/proc/thread-self/net/route")
	if err != nil {
		if b, err = os.ReadFile("/proc/net/route"); err != nil {
			return netip.Addr{}, "", fmt.Errorf("read routes: %w", err)
		}
	}
	return parseRoutes(b, device, binary.NativeEndian)
}

// parseRoutes picks the default route with the lowest metric from the
// kernel's /proc/net/route table, whose addresses are printed as numbers in
// the host's byte order.
func parseRoutes(b []byte, device string, order binary.ByteOrder) (netip.Addr, string, error) {
	const rtfUp, rtfGateway = 0x1, 0x2
	var best netip.Addr
	var bestIf string
	bestMetric := -1
	sc := bufio.NewScanner(bytes.NewReader(b))
	for first := true; sc.Scan(); first = false {
		f := strings.Fields(sc.Text())
		if first || len(f) < 8 {
			continue // the header line, or not a route
		}
		if f[1] != "00000000" || f[7] != "00000000" {
			continue
		}
		if device != "" && f[0] != device {
			continue
		}
		flags, err1 := strconv.ParseUint(f[3], 16, 32)
		metric, err2 := strconv.Atoi(f[6])
		gw, err3 := strconv.ParseUint(f[2], 16, 32)
		if err1 != nil || err2 != nil || err3 != nil || len(f[2]) != 8 || metric < 0 {
			continue
		}
		if flags&(rtfUp|rtfGateway) != rtfUp|rtfGateway {
			continue
		}
		var a [4]byte
		order.PutUint32(a[:], uint32(gw))
		if bestMetric < 0 || metric < bestMetric {
			best, bestIf, bestMetric = netip.AddrFrom4(a), f[0], metric
		}
	}
	if !best.IsValid() {
		if device != "" {
			return best, "", fmt.Errorf("no IPv4 default route on %s", device)
		}
		return best, "", errors.New("no IPv4 default route")
	}
	return best, bestIf, nil
}

// LocalAddr is natmap's address towards gw: the source address the kernel
// picks for it (with the socket options in o, such as the interface).
func LocalAddr(ctx context.Context, gw netip.Addr, o Options) (netip.Addr, error) {
	d := net.Dialer{Control: o.Control}
	c, err := d.DialContext(ctx, "udp4", netip.AddrPortFrom(gw, pcpPort).String())
	if err != nil {
		return netip.Addr{}, fmt.Errorf("local address towards %s: %w", gw, err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}
