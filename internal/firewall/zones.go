package firewall

import (
	"fmt"
	"os"
	"strings"

	"github.com/natmap-go/natmap/internal/uci"
)

// zoneConf is a "config zone" section of /etc/config/firewall, read as fw4
// (fw4.uc, parse_zone) and fw3 (zones.c) read it.
type zoneConf struct {
	name     string
	networks []string // logical networks (interfaces of /etc/config/network)
	wan      bool
}

// ZoneOf returns the zone that holds logical network (e.g. "wan", an
// interface of /etc/config/network) in the firewall config at configPath,
// and whether it is a WAN zone (see WANZones). A network in no zone gives
// "" and no error. When several zones list it, the first wins, as it does
// for packets: its jump comes first in the input chain. Devices (option
// device) and zones that a protocol handler assigns at run time are not
// looked at.
func ZoneOf(configPath, network string) (zone string, wan bool, err error) {
	zones, err := readZones(configPath)
	if err != nil {
		return "", false, err
	}
	for _, z := range zones {
		for _, n := range z.networks {
			if n == network {
				return z.name, z.wan, nil
			}
		}
	}
	return "", false, nil
}

// WANZones returns the WAN zones of the firewall config at configPath, in
// file order: a zone named wan, or one that masquerades (masq '1'), as
// OpenWrt's default wan zone does.
func WANZones(configPath string) ([]string, error) {
	zones, err := readZones(configPath)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, z := range zones {
		if z.wan {
			names = append(names, z.name)
		}
	}
	return names, nil
}

// readZones returns the enabled, named zones of a firewall config.
func readZones(path string) ([]zoneConf, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("firewall config: %w", err)
	}
	defer f.Close()
	uf, err := uci.Parse(path, f)
	if err != nil {
		return nil, fmt.Errorf("firewall config: %w", err)
	}
	var zones []zoneConf
	for _, s := range uf.Typed("zone") {
		name := value(s, "name")
		// Both firewalls skip a zone without a name, and a disabled one.
		if name == "" || isFalse(value(s, "enabled")) {
			continue
		}
		z := zoneConf{name: name, wan: name == "wan" || isTrue(value(s, "masq"))}
		if o, ok := s.Get("network"); ok {
			for _, v := range o.Values {
				// An option is a space-separated list ('wan wan6'); a
				// list item is one name. "!lan" means every other
				// network, which names none.
				items := []string{v}
				if !o.List {
					items = strings.Fields(v)
				}
				for _, n := range items {
					if n != "" && !strings.HasPrefix(n, "!") {
						z.networks = append(z.networks, n)
					}
				}
			}
		}
		zones = append(zones, z)
	}
	return zones, nil
}

// value is the value of an option, "" when unset (or a list's last item).
func value(s *uci.Section, name string) string {
	o, ok := s.Get(name)
	if !ok || len(o.Values) == 0 {
		return ""
	}
	return o.Values[len(o.Values)-1]
}

// isTrue and isFalse read booleans as fw4 does (parse_bool); fw3 knows
// fewer words, all among these.
func isTrue(v string) bool {
	switch v {
	case "1", "on", "true", "yes":
		return true
	}
	return false
}

func isFalse(v string) bool {
	switch v {
	case "0", "off", "false", "no":
		return true
	}
	return false
}
