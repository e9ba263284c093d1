// Package portmap asks the router in front of natmap (a home router behind
// the ISP's NAT: a double NAT) to forward a port, with PCP (RFC 6887 MAP),
// NAT-PMP (RFC 6886) or UPnP IGD (WANIPConnection / WANPPPConnection v1 and
// v2). It only ever speaks to one gateway, which must be a private address,
// and parses every reply strictly.
package portmap

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Method names, as status and logs show them.
const (
	PCP    = "pcp"
	NATPMP = "nat-pmp"
	UPnP   = "upnp"
)

// Request asks for a mapping of InternalPort on natmap's host.
type Request struct {
	Protocol     string        // "tcp" or "udp"
	InternalPort uint16        // natmap's bind port
	ExternalPort uint16        // wanted port on the router; 0: any
	Lifetime     time.Duration // wanted lease
}

// Mapping is what the router granted.
type Mapping struct {
	Method       string // PCP, NATPMP or UPnP
	Protocol     string
	InternalPort uint16
	External     netip.AddrPort // the router's external address (address invalid when it did not say)
	Lifetime     time.Duration  // 0: permanent (UPnP routers that only allow that)
	Expires      time.Time      // zero when permanent
	// Epoch is the router's seconds since its mappings were last lost
	// (PCP, NAT-PMP); 0 for UPnP.
	Epoch uint32
}

// Client speaks one protocol to one router.
type Client interface {
	Method() string
	// Map creates or renews a mapping.
	Map(ctx context.Context, r Request) (Mapping, error)
	// Unmap deletes a mapping that Map returned.
	Unmap(ctx context.Context, m Mapping) error
}

// RefusedError is a router's clear "no" (as opposed to silence).
type RefusedError struct {
	Method string
	Code   int
	Text   string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("%s: router refused: %s (%d)", e.Method, e.Text, e.Code)
}

// refusal is the error for a PCP or NAT-PMP result code; nil for success.
func refusal(method string, code int, texts map[int]string) error {
	if code == 0 {
		return nil
	}
	text := texts[code]
	if text == "" {
		text = "unknown result"
	}
	return &RefusedError{Method: method, Code: code, Text: text}
}

// pick is a protocol's name or number in one of the protocols' terms.
func pick[T any](proto string, tcp, udp T) (T, error) {
	switch proto {
	case "tcp":
		return tcp, nil
	case "udp":
		return udp, nil
	}
	var zero T
	return zero, fmt.Errorf("protocol %q: want tcp or udp", proto)
}

// ErrNoAnswer is returned when the router does not speak the protocol.
var ErrNoAnswer = errors.New("no answer from the router")

// CheckGateway refuses to speak to anything but a private IPv4 address: a
// public gateway means there is no home router in front to ask.
func CheckGateway(gw netip.Addr) error {
	if !gw.IsValid() {
		return errors.New("no default gateway")
	}
	if !gw.Is4() || !gw.IsPrivate() {
		return fmt.Errorf("gateway %s is not a private IPv4 address: no router in front to ask", gw)
	}
	return nil
}

// EpochTracker tells from successive PCP / NAT-PMP epochs whether the
// router lost its mappings (rebooted) since the last answer (RFC 6887
// 8.5, RFC 6886 3.6).
type EpochTracker struct {
	valid  bool
	server uint32
	client time.Time
}

// Observe records an epoch received at now and reports whether the router
// lost its state since the previous one.
func (t *EpochTracker) Observe(epoch uint32, now time.Time) (lost bool) {
	if t.valid {
		if epoch+1 < t.server {
			lost = true
		} else {
			cd := now.Sub(t.client).Seconds()
			sd := float64(epoch) - float64(t.server)
			// The server's clock may run at most 1/16 slower than ours,
			// with two seconds of slack.
			if sd+2 < cd-cd/16 {
				lost = true
			}
		}
	}
	t.valid, t.server, t.client = true, epoch, now
	return lost
}
