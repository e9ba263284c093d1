package firewall

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// defaultConfig is /etc/config/firewall of a fresh OpenWrt, as uci writes
// it back: zones lan and wan, wan with networks wan and wan6 and masq.
const defaultConfig = `
config defaults
	option syn_flood '1'
	option input 'REJECT'
	option output 'ACCEPT'
	option forward 'REJECT'

config zone
	option name 'lan'
	list network 'lan'
	option input 'ACCEPT'
	option output 'ACCEPT'
	option forward 'ACCEPT'

config zone
	option name 'wan'
	list network 'wan'
	list network 'wan6'
	option input 'REJECT'
	option output 'ACCEPT'
	option forward 'REJECT'
	option masq '1'
	option mtu_fix '1'

config forwarding
	option src 'lan'
	option dest 'wan'

config rule
	option name 'Allow-DHCP-Renew'
	option src 'wan'
	option proto 'udp'
	option dest_port '68'
	option target 'ACCEPT'
	option family 'ipv4'

config rule
	option name 'Allow-Ping'
	option src 'wan'
	option proto 'icmp'
	option icmp_type 'echo-request'
	option family 'ipv4'
	option target 'ACCEPT'
`

// customConfig is a router with more zones: a second uplink (an old-style
// space-separated network option), a WireGuard zone that masquerades, a
// guest zone, a disabled zone, one without a name, an inverted network,
// and a network in two zones.
const customConfig = `
config zone 'lan'
	option name 'lan'
	option network 'lan'
	option masq '0'
	option input 'ACCEPT'

config zone
	option name 'guest'
	list network 'guest'
	list network 'both'
	option input 'REJECT'

config zone 'uplink'
	option name 'wwan'
	option network 'wwan wwan6'
	option masq 'yes'
	option input 'REJECT'

config zone
	option name 'vpn'
	list network 'wg0'
	list network 'both'
	option masq 'true'

config zone
	option name 'iot'
	option enabled '0'
	list network 'iot'
	option masq '1'

config zone
	list network 'nameless'
	option masq '1'

config zone
	option name 'notlan'
	list network '!lan'

config zone
	option name 'wan'
	option network ''
`

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "firewall")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestZoneOf(t *testing.T) {
	for _, tc := range []struct {
		config, network, zone string
		wan                   bool
	}{
		{defaultConfig, "wan", "wan", true},
		{defaultConfig, "wan6", "wan", true},
		{defaultConfig, "lan", "lan", false},
		{defaultConfig, "guest", "", false},
		{defaultConfig, "", "", false},
		{customConfig, "lan", "lan", false},
		{customConfig, "guest", "guest", false},
		{customConfig, "wwan", "wwan", true},
		{customConfig, "wwan6", "wwan", true},
		{customConfig, "wwan wwan6", "", false},
		{customConfig, "wg0", "vpn", true},
		{customConfig, "both", "guest", false}, // the first zone wins
		{customConfig, "iot", "", false},       // disabled
		{customConfig, "nameless", "", false},  // no name: both firewalls skip it
		{customConfig, "!lan", "", false},
		{customConfig, "wan", "", false},
	} {
		zone, wan, err := ZoneOf(writeConfig(t, tc.config), tc.network)
		if err != nil || zone != tc.zone || wan != tc.wan {
			t.Errorf("ZoneOf(%q) = %q, %v, %v; want %q, %v", tc.network, zone, wan, err, tc.zone, tc.wan)
		}
	}
}

func TestWANZones(t *testing.T) {
	for _, tc := range []struct {
		config string
		want   []string
	}{
		{defaultConfig, []string{"wan"}},
		// wan by its name, the others by masq.
		{customConfig, []string{"wwan", "vpn", "wan"}},
		{"config zone\n\toption name 'lan'\n", nil},
		{"", nil},
	} {
		got, err := WANZones(writeConfig(t, tc.config))
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("WANZones = %q, %v; want %q", got, err, tc.want)
		}
	}
}

func TestZonesErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	if _, _, err := ZoneOf(missing, "wan"); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("ZoneOf on a missing file: %v", err)
	}
	bad := writeConfig(t, "config zone\n\toption name 'wan\n")
	if _, err := WANZones(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("WANZones on a bad file: %v", err)
	}
}
