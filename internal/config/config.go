// Package config holds the settings of one mapping, shared by the command
// line, the UCI reader and the engine, with the C natmap's defaults.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/natmap-go/natmap/internal/portcheck"
	"github.com/natmap-go/natmap/internal/portspec"
)

// The C natmap's defaults.
const (
	DefaultSTUNPort       = 3478
	DefaultHTTPPort       = 80
	DefaultTCPKeepalive   = 30 * time.Second
	DefaultUDPKeepalive   = 10 * time.Second
	DefaultStunCycle      = 10
	DefaultForwardTimeout = 300 * time.Second
)

// Mapping is one port mapping: what to keep open, whom to ask, whom to tell.
type Mapping struct {
	IPv6      bool          // -6: map an IPv6 address (IP4P is then empty)
	UDP       bool          // -u
	Device    string        // -i NAME: bind every socket to this interface
	BindAddr  netip.Addr    // -i IP: bind every socket to this local address
	Keepalive time.Duration // -k
	StunCycle int           // -c: UDP forward mode checks STUN every N intervals
	STUN      []HostPort    // -s, tried in order
	HTTP      HostPort      // -h: TCP keep-alive server
	Script    string        // -e: notify script; empty prints to stdout
	Mark      uint32        // -f: SO_MARK on every socket
	Ports     portspec.Spec // -b

	// Forward mode (-t/-p): natmap listens on the bind port and relays.
	ForwardTarget  string        // -t; empty is bind mode
	ForwardPort    uint16        // -p; 0 means the current public port
	ForwardTimeout time.Duration // -T
	Congestion     string        // -C
	// Kernel: the kernel forwards (DNAT rules, internal/firewall) instead
	// of the relay; the engine then only keeps the mapping, as in bind mode.
	Kernel bool

	// UPnP: ask the router in front (a double NAT) to forward the bind
	// port, with PCP, NAT-PMP or UPnP IGD (--upnp; UCI option upnp).
	UPnP UPnPMode

	// ReachabilityURL (--reachability-url): a port checker asked whether
	// the public address is reachable (see package portcheck); "" is none.
	ReachabilityURL string
}

// UPnPMode says whether natmap asks the router in front to forward the
// port.
type UPnPMode string

const (
	UPnPOff  UPnPMode = "off"  // never: the command line's default
	UPnPAuto UPnPMode = "auto" // when the gateway is a private address and answers: UCI's default
	UPnPOn   UPnPMode = "on"   // and a session fails when no router in front forwards the port
)

// ParseUPnPMode reads auto, on or off; UCI's booleans (1/0, yes/no, ...)
// mean on and off.
func ParseUPnPMode(s string) (UPnPMode, error) {
	switch strings.ToLower(s) {
	case "auto":
		return UPnPAuto, nil
	case "on", "1", "yes", "true", "enabled":
		return UPnPOn, nil
	case "off", "0", "no", "false", "disabled":
		return UPnPOff, nil
	}
	return "", fmt.Errorf("%q: want auto, on (1) or off (0)", s)
}

// Protocol is "tcp" or "udp", as the notify script receives it.
func (m *Mapping) Protocol() string {
	if m.UDP {
		return "udp"
	}
	return "tcp"
}

// Network is the Go network name for this mapping's sockets.
func (m *Mapping) Network() string {
	n := m.Protocol()
	if m.IPv6 {
		return n + "6"
	}
	return n + "4"
}

// Forward reports whether natmap forwards to a target (forward mode).
func (m *Mapping) Forward() bool { return m.ForwardTarget != "" }

// Relay reports whether natmap relays forward mode's connections itself
// (not the kernel).
func (m *Mapping) Relay() bool { return m.Forward() && !m.Kernel }

// SetDefaults fills in what the C natmap fills in when an option is absent
// or zero.
func (m *Mapping) SetDefaults() {
	if m.Keepalive <= 0 {
		m.Keepalive = DefaultTCPKeepalive
		if m.UDP {
			m.Keepalive = DefaultUDPKeepalive
		}
	}
	if m.StunCycle <= 0 {
		m.StunCycle = DefaultStunCycle
	}
	if m.ForwardTimeout <= 0 {
		m.ForwardTimeout = DefaultForwardTimeout
	}
	if m.UPnP == "" {
		m.UPnP = UPnPOff
	}
}

// Validate reports the first thing that makes the mapping unusable; a
// missing setting is a FieldError, for the front end to name its option.
func (m *Mapping) Validate() error {
	if len(m.STUN) == 0 {
		return &FieldError{FieldSTUN, errors.New("a STUN server is required")}
	}
	if !m.UDP && m.HTTP.Host == "" {
		return &FieldError{FieldHTTP, errors.New("TCP mode needs a keep-alive HTTP server")}
	}
	if m.BindAddr.IsValid() {
		if m.BindAddr.Is4() == m.IPv6 {
			return fmt.Errorf("local address %s is not an %s address", m.BindAddr, m.family())
		}
	}
	// An address literal of the other family could never be reached from
	// this mapping's sockets: say so now rather than at the first query.
	for _, h := range m.STUN {
		if err := m.checkFamily("STUN server", h); err != nil {
			return err
		}
	}
	if err := m.checkFamily("keep-alive HTTP server", m.HTTP); err != nil {
		return err
	}
	if m.Device != "" {
		if err := checkDevice(m.Device); err != nil {
			return err
		}
	}
	if m.ReachabilityURL != "" {
		if _, err := portcheck.ParseURL(m.ReachabilityURL); err != nil {
			return err
		}
	}
	return nil
}

// Ignored lists settings that have no effect in this mapping's mode, as
// the C natmap silently ignores them; callers warn about them.
func (m *Mapping) Ignored() []string {
	var out []string
	if m.Congestion != "" && (m.UDP || !m.Relay()) {
		out = append(out, "congestion control (-C) applies to TCP forward mode's relay only")
	}
	return out
}

// checkFamily fails when h is an address literal not of m's family.
func (m *Mapping) checkFamily(what string, h HostPort) error {
	a, err := netip.ParseAddr(h.Host)
	if err != nil || a.Unmap().Is4() != m.IPv6 {
		return nil
	}
	return fmt.Errorf("%s %s is not an %s address", what, h, m.family())
}

func (m *Mapping) family() string {
	if m.IPv6 {
		return "IPv6"
	}
	return "IPv4"
}

func checkDevice(name string) error {
	// IFNAMSIZ is 16 with the NUL; the kernel rejects '/', ':' and spaces.
	if len(name) > 15 || strings.ContainsAny(name, "/: \t\n") {
		return fmt.Errorf("interface %q: not a valid interface name or IP address", name)
	}
	return nil
}

// HostPort is a server address as the user wrote it; the host is resolved
// at each connection, so a DNS change is followed.
type HostPort struct {
	Host string
	Port uint16
}

func (h HostPort) String() string {
	return net.JoinHostPort(h.Host, strconv.Itoa(int(h.Port)))
}

// ParseHostPort reads "host", "host:port", "[v6]:port" or a bare IPv6
// address, with defPort when no port is given.
func ParseHostPort(s string, defPort uint16) (HostPort, error) {
	host, port := s, ""
	switch {
	case strings.HasPrefix(s, "["):
		end := strings.Index(s, "]")
		if end < 0 {
			return HostPort{}, fmt.Errorf("%q: missing ']'", s)
		}
		host, port = s[1:end], s[end+1:]
		if port != "" {
			if port[0] != ':' {
				return HostPort{}, fmt.Errorf("%q: want [address]:port", s)
			}
			port = port[1:]
			if port == "" {
				return HostPort{}, fmt.Errorf("%q: empty port", s)
			}
		}
		if _, err := netip.ParseAddr(host); err != nil {
			return HostPort{}, fmt.Errorf("%q: %q is not an IPv6 address", s, host)
		}
	case strings.Count(s, ":") == 1:
		i := strings.IndexByte(s, ':')
		host, port = s[:i], s[i+1:]
		if port == "" {
			return HostPort{}, fmt.Errorf("%q: empty port", s)
		}
	case strings.Count(s, ":") > 1:
		if _, err := netip.ParseAddr(s); err != nil {
			return HostPort{}, fmt.Errorf("%q: not a host, host:port or IPv6 address", s)
		}
	}
	if host == "" {
		return HostPort{}, fmt.Errorf("%q: empty host", s)
	}
	if strings.ContainsAny(host, " \t\r\n/,") {
		return HostPort{}, fmt.Errorf("%q: %q is not a host name or address", s, host)
	}
	hp := HostPort{Host: host, Port: defPort}
	if port != "" {
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 || port[0] == '+' {
			return HostPort{}, fmt.Errorf("%q: port %q is not a number from 1 to 65535", s, port)
		}
		hp.Port = uint16(n)
	}
	return hp, nil
}

// ParseHostPortList reads a comma-separated list of servers.
func ParseHostPortList(s string, defPort uint16) ([]HostPort, error) {
	var out []HostPort
	for _, f := range strings.Split(s, ",") {
		hp, err := ParseHostPort(strings.TrimSpace(f), defPort)
		if err != nil {
			return nil, err
		}
		out = append(out, hp)
	}
	return out, nil
}
