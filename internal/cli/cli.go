// Package cli reads the C natmap's command line: the same option letters,
// defaults and getopt rules (clustered flags, attached or separate values,
// "--" ends the options), with stricter checks on the values.
package cli

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/natmap-go/natmap/internal/config"
	"github.com/natmap-go/natmap/internal/portspec"
)

// Usage is the C natmap's help text, with this natmap's extensions noted.
const Usage = `Usage:
 natmap [options]
 natmap daemon [--config FILE]     run every section of /etc/config/natmap
 natmap status [--json] [SECTION] | reload | restart SECTION

Options:
 -4                  use IPv4
 -6                  use IPv6
 -u                  UDP mode
 -d                  run as daemon
 -i <interface>      network interface or IP address
 -k <interval>       seconds between each keep-alive
 -c <count>          UDP STUN check cycle (every <count> intervals)
 -s <addr>[:port]    domain name or address of STUN server
                     (repeat, or separate with commas, for failover)
 -h <addr>[:port]    domain name or address of HTTP server
 -e <path>           script path for notify mapped address
 -f <mark>           fwmark value (hex: 0x1, dec: 1, oct: 01)

Bind options:
 -b                  port number range for binding
                     - <0>: random allocation
                     - <port>: specified
                     - <port>~<port>: random allocation within the range
                     - <port>-<port>: sequential allocation within the range

Forward options:
 -C <congestion>     TCP congestion control algorithm
 -T <timeout>        port forwarding timeout in seconds
 -t <address>        domain name or address of forward target
 -p <port>           port number of forward target (0: use public port)
 --forward-mode <m>  relay: natmap relays (default); kernel: the kernel
                     forwards (DNAT), and the target sees the client's address

Double NAT:
 --upnp auto|on|off  ask the router in front to forward the port (PCP,
                     NAT-PMP, UPnP IGD); on: fail when none does (default off)

Reachability:
 --reachability-url <url>  a port checker proving the public address reachable:
                     http(s)://HOST[:PORT]/PATH with {ip} {port} {proto}, answering 1 or 0
`

// Command is a parsed classic natmap command line.
type Command struct {
	Mapping config.Mapping
	Daemon  bool // -d
}

// optstring is the C natmap's getopt string: letters followed by ':' take a value.
const optstring = "46udk:c:s:h:e:f:b:C:T:t:p:i:"

// Parse reads args (without the program name). The result has the C
// natmap's defaults filled in and is validated.
func Parse(args []string) (*Command, error) {
	var (
		c     Command
		m     = &c.Mapping
		iface string
		tport = -1
	)
	m.Ports = portspec.Spec{}
	set := func(opt byte, val string) error {
		var err error
		switch opt {
		case '4':
			m.IPv6 = false
		case '6':
			m.IPv6 = true
		case 'u':
			m.UDP = true
		case 'd':
			c.Daemon = true
		case 'k':
			m.Keepalive, err = seconds(val)
		case 'c':
			m.StunCycle, err = count(val)
		case 's':
			var l []config.HostPort
			l, err = config.ParseHostPortList(val, config.DefaultSTUNPort)
			m.STUN = append(m.STUN, l...)
		case 'h':
			m.HTTP, err = config.ParseHostPort(val, config.DefaultHTTPPort)
		case 'e':
			if val == "" {
				err = errors.New("empty script path")
			}
			m.Script = val
		case 'f':
			m.Mark, err = config.ParseMark(val)
		case 'b':
			m.Ports, err = portspec.Parse(val)
		case 'C':
			if val == "" || strings.ContainsAny(val, " /\t") {
				err = fmt.Errorf("%q is not a congestion control algorithm name", val)
			}
			m.Congestion = val
		case 'T':
			m.ForwardTimeout, err = seconds(val)
		case 't':
			if val == "" {
				err = errors.New("empty target address")
			}
			m.ForwardTarget = val
		case 'p':
			var n uint64
			n, err = strconv.ParseUint(val, 10, 16)
			if err != nil || val[0] == '+' {
				err = fmt.Errorf("%q is not a port number from 0 to 65535", val)
			}
			tport = int(n)
		case 'i':
			if val == "" {
				err = errors.New("empty interface")
			}
			iface = val
		case longForwardMode:
			switch val {
			case "relay":
				m.Kernel = false
			case "kernel":
				m.Kernel = true
			default:
				return fmt.Errorf("--forward-mode: %q: want kernel or relay", val)
			}
		case longReachURL:
			m.ReachabilityURL = val
		case longUPnP:
			switch mode := config.UPnPMode(val); mode {
			case config.UPnPAuto, config.UPnPOn, config.UPnPOff:
				m.UPnP = mode
			default:
				return fmt.Errorf("--upnp: %q: want auto, on or off", val)
			}
		}
		if err != nil {
			return fmt.Errorf("-%c: %w", opt, err)
		}
		return nil
	}
	if err := getopt(args, set); err != nil {
		return nil, err
	}

	if (m.ForwardTarget == "") != (tport < 0) {
		return nil, errors.New("-t and -p go together")
	}
	if tport >= 0 {
		m.ForwardPort = uint16(tport)
	}
	if m.Kernel && m.ForwardTarget == "" {
		return nil, errors.New("--forward-mode kernel needs -t and -p")
	}
	m.BindAddr, m.Device = config.ParseInterface(iface)
	if err := m.Validate(); err != nil {
		return nil, config.Word(err, flagName)
	}
	m.SetDefaults()
	return &c, nil
}

// Long options, which the C natmap does not have, are passed to set as
// bytes that are no option letter.
const (
	longForwardMode = 0x80 // --forward-mode
	longUPnP        = 0x81 // --upnp
	longReachURL    = 0x82 // --reachability-url
)

var longOptions = map[string]byte{"forward-mode": longForwardMode, "upnp": longUPnP, "reachability-url": longReachURL}

// getopt walks args as POSIX getopt does with optstring and calls set for
// each option; it also takes this natmap's long options, "--name value" or
// "--name=value". Stray arguments are an error: the C natmap ignores them,
// but they are always a mistake.
func getopt(args []string, set func(opt byte, val string) error) error {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			if i+1 < len(args) {
				return fmt.Errorf("unexpected argument %q", args[i+1])
			}
			return nil
		}
		if long, ok := strings.CutPrefix(a, "--"); ok {
			name, val, hasVal := strings.Cut(long, "=")
			opt, known := longOptions[name]
			if !known {
				return fmt.Errorf("unknown option --%s", name)
			}
			if !hasVal {
				if i+1 >= len(args) {
					return fmt.Errorf("option --%s needs a value", name)
				}
				i++
				val = args[i]
			}
			if err := set(opt, val); err != nil {
				return err
			}
			continue
		}
		if len(a) < 2 || a[0] != '-' {
			return fmt.Errorf("unexpected argument %q", a)
		}
		if a[1] == '-' { // getopt has no long options but --
			return fmt.Errorf("unknown option %s", a)
		}
		for j := 1; j < len(a); j++ {
			opt := a[j]
			k := strings.IndexByte(optstring, opt)
			if k < 0 || opt == ':' {
				return fmt.Errorf("unknown option -%c", opt)
			}
			if k+1 < len(optstring) && optstring[k+1] == ':' {
				val := a[j+1:]
				if val == "" {
					if i+1 >= len(args) {
						return fmt.Errorf("option -%c needs a value", opt)
					}
					i++
					val = args[i]
				}
				if err := set(opt, val); err != nil {
					return err
				}
				break
			}
			if err := set(opt, ""); err != nil {
				return err
			}
		}
	}
	return nil
}

// seconds reads a whole number of seconds; 0 keeps the default, as in the
// C natmap.
func seconds(s string) (time.Duration, error) {
	n, err := count(s)
	return time.Duration(n) * time.Second, err
}

func count(s string) (int, error) {
	n, err := strconv.ParseUint(s, 10, 31)
	if errors.Is(err, strconv.ErrRange) && s[0] != '+' {
		return 0, fmt.Errorf("%s is out of range (at most %d)", s, maxCount)
	}
	if err != nil || s[0] == '+' {
		return 0, fmt.Errorf("%q is not a whole number", s)
	}
	return int(n), nil
}

// maxCount is the largest value count accepts (31 bits: an int everywhere).
const maxCount = 1<<31 - 1

// flagName names the flag that sets a field.
func flagName(f config.Field) string {
	switch f {
	case config.FieldSTUN:
		return "-s"
	case config.FieldHTTP:
		return "-h"
	}
	return ""
}
