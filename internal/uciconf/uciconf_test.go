package uciconf

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/config"
	"github.com/natmap-go/natmap/internal/portspec"
	"github.com/natmap-go/natmap/internal/uci"
)

func parse(t *testing.T, text string) *Config {
	t.Helper()
	f, err := uci.Parse("natmap", strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return Translate(f)
}

// OpenWrt's stock default config keeps working: one disabled UDP section.
func TestStockConfig(t *testing.T) {
	c, err := Load("../uci/testdata/stock-natmap.config")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Sections) != 1 || len(c.Warnings) != 0 {
		t.Fatalf("sections %+v warnings %v", c.Sections, c.Warnings)
	}
	s := c.Sections[0]
	m := s.Mapping
	if s.Ref != "@natmap[0]" || s.Enabled || s.Err != nil || !m.UDP || m.IPv6 ||
		len(m.STUN) != 1 || m.STUN[0] != (config.HostPort{Host: "stunserver.stunprotocol.org", Port: 3478}) ||
		m.HTTP != (config.HostPort{Host: "example.com", Port: 80}) || m.Ports != (portspec.Spec{Lo: 8080, Hi: 8080}) ||
		m.Keepalive != 10*time.Second || m.StunCycle != 10 || m.ForwardTarget != "" || m.Script != "" ||
		!s.LogStdout || !s.LogStderr || s.Interface != "" || s.Firewall != FirewallAuto {
		t.Fatalf("stock section: %+v", s)
	}
}

func TestRealWorldConfig(t *testing.T) {
	c := parse(t, `
config global
	list stun_server 'stun1.example.org'
	list stun_server 'stun2.example.org:3479'
	option http_server 'example.com'
	option interval '25'

# SSH from outside, bind mode on the router itself
config natmap 'ssh'
	option enable '1'
	option comment 'router ssh'
	option interface 'wan'
	option port '22222'
	option notify_script '/etc/natmap/ddns.sh'

config natmap 'web'
	option enable 'yes'
	option family 'ipv4'
	option port '10000-10010'
	option port_random '1'
	option forward_target '192.168.1.10'
	option forward_port '80'
	option forward_timeout '60'
	option forward_congestion 'bbr'
	option fwmark '0x10'
	option stun_server 'stun.other.org:19302'
	option firewall '0'
	option forward_mode 'kernel'

config natmap
	option enable '1'
	option udp_mode '1'
	option interface '192.168.1.1'
	option forward_target '192.168.1.20'
	option forward_port ''
	option stun_cycle '5'
`)
	if len(c.Sections) != 3 || len(c.Warnings) != 0 {
		t.Fatalf("%d sections, warnings %v", len(c.Sections), c.Warnings)
	}
	ssh, web, udp := c.Sections[0], c.Sections[1], c.Sections[2]
	for _, s := range c.Sections {
		if s.Err != nil || !s.Enabled {
			t.Fatalf("%s: %+v", s.Ref, s)
		}
	}
	if ssh.Ref != "ssh" || ssh.Comment != "router ssh" || ssh.Interface != "wan" || ssh.Mapping.Ports.Lo != 22222 ||
		len(ssh.Mapping.STUN) != 2 || ssh.Mapping.STUN[1].Port != 3479 || ssh.Mapping.HTTP.Host != "example.com" ||
		ssh.Mapping.Keepalive != 25*time.Second || ssh.Mapping.Script != "/etc/natmap/ddns.sh" {
		t.Fatalf("ssh: %+v", ssh)
	}
	wm := web.Mapping
	if wm.Ports != (portspec.Spec{Lo: 10000, Hi: 10010, Random: true}) || wm.ForwardTarget != "192.168.1.10" ||
		wm.ForwardPort != 80 || wm.ForwardTimeout != time.Minute || wm.Congestion != "bbr" || wm.Mark != 16 ||
		len(wm.STUN) != 1 || wm.STUN[0].Port != 19302 || web.Firewall != FirewallOff || web.ForwardMode != ForwardKernel {
		t.Fatalf("web: %+v", web)
	}
	um := udp.Mapping
	if udp.Ref != "@natmap[2]" || !um.UDP || um.BindAddr != netip.MustParseAddr("192.168.1.1") || udp.Interface != "" ||
		um.ForwardPort != 0 || !um.Forward() || um.StunCycle != 5 || um.Keepalive != 25*time.Second || udp.ForwardMode != ForwardAuto {
		t.Fatalf("udp: %+v", udp)
	}
}

// A bad value disables its section with a message naming the option; the
// other sections are untouched.
func TestBadSectionsAreIsolated(t *testing.T) {
	cases := map[string]string{
		"option family 'ipv5'":           "option family",
		"option port '70000'":            "option port",
		"option interval 'soon'":         "option interval",
		"option fwmark '0xZZ'":           "option fwmark",
		"option enable 'maybe'":          "option enable",
		"option forward_port '80'":       "forward_port: set without forward_target",
		"option stun_server 'a:b:c::z'":  "option stun_server",
		"list port '1'\n\tlist port '2'": "option port: is a list",
		"option firewall 'sometimes'":    "option firewall",
		"option forward_mode 'fast'":     `option forward_mode: "fast": want auto, kernel or relay`,
	}
	for line, want := range cases {
		c := parse(t, "config natmap 'bad'\n\toption enable '1'\n\toption stun_server 's'\n\toption http_server 'h'\n\t"+line+
			"\n\nconfig natmap 'good'\n\toption enable '1'\n\toption stun_server 's'\n\toption http_server 'h'\n")
		bad, good := c.Sections[0], c.Sections[1]
		if bad.Err == nil || !strings.Contains(bad.Err.Error(), want) {
			t.Errorf("%q: error %v, want one containing %q", line, bad.Err, want)
		}
		if good.Err != nil {
			t.Errorf("%q: the good section failed too: %v", line, good.Err)
		}
	}
	c := parse(t, "config natmap 'x'\n\toption enable '1'\n\toption port '80'\n")
	if err := c.Sections[0].Err; err == nil || !strings.Contains(err.Error(), "option stun_server") {
		t.Errorf("missing STUN server: %v", err)
	}
}

func TestWarnings(t *testing.T) {
	c := parse(t, "config natmap\n\toption enable '1'\n\toption stun_server 's'\n\toption http_server 'h'\n\toption prot '80'\n\nconfig foo\n")
	if len(c.Warnings) != 2 || !strings.Contains(c.Warnings[0], `unknown option "prot"`) || !strings.Contains(c.Warnings[1], `unknown section type "foo"`) {
		t.Fatalf("warnings %q", c.Warnings)
	}
	if c.Sections[0].Err != nil {
		t.Fatal("an unknown option must not stop the mapping")
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load("/nonexistent/natmap"); err == nil {
		t.Fatal("missing file: want error")
	}
}

func TestTwoGlobalSections(t *testing.T) {
	c := parse(t, "config global\n\toption stun_server 's1'\n\toption interval '20'\n\nconfig global\n\toption http_server 'h'\n\nconfig natmap\n\toption enable '1'\n")
	m := c.Sections[0].Mapping
	if c.Sections[0].Err != nil || len(m.STUN) != 1 || m.STUN[0].Host != "s1" || m.HTTP.Host != "h" || m.Keepalive != 20*time.Second {
		t.Fatalf("%+v %v", m, c.Sections[0].Err)
	}
}

// Updater sections are read as written and attached, in list order, to the
// mappings that name them; one serves several; an unknown name is an
// error of that updater only.
func TestUpdaters(t *testing.T) {
	c := parse(t, `
config updater 'dns'
	option type 'rfc2136'
	option server 'ns.example.org'
	list record 'a'
	list record 'srv'
	option key_secret ''

config natmap 'a'
	option stun_server 's'
	option http_server 'h'
	list updater 'dns'
	list updater 'nope'

config natmap 'b'
	option stun_server 's'
	option http_server 'h'
	option updater 'dns'
`)
	if len(c.Warnings) != 0 || len(c.Sections) != 2 {
		t.Fatalf("warnings %v, sections %+v", c.Warnings, c.Sections)
	}
	a, b := c.Sections[0], c.Sections[1]
	if a.Err != nil || len(a.Updaters) != 2 || a.Updaters[0].Name != "dns" || a.Updaters[0].Type != "rfc2136" ||
		strings.Join(a.Updaters[0].Options["record"], ",") != "a,srv" || a.Updaters[0].Err != "" {
		t.Fatalf("section a: %+v", a)
	}
	if _, ok := a.Updaters[0].Options["key_secret"]; ok {
		t.Error("an empty option is read as set")
	}
	if !strings.Contains(a.Updaters[1].Err, `no "config updater 'nope'" section`) {
		t.Errorf("unknown updater: %+v", a.Updaters[1])
	}
	if len(b.Updaters) != 1 || b.Updaters[0].Name != "dns" {
		t.Errorf("section b: %+v", b.Updaters)
	}
}

// option upnp: auto by default, overridable in config global and in each
// section; a bad value fails only its section.
func TestUPnP(t *testing.T) {
	base := "\toption enable '1'\n\toption udp_mode '1'\n\toption stun_server 's'\n"
	for _, tc := range []struct {
		conf string
		want []config.UPnPMode
	}{
		{"config natmap\n" + base, []config.UPnPMode{config.UPnPAuto}},
		{"config global\n\toption upnp '0'\n\nconfig natmap\n" + base + "\nconfig natmap\n" + base + "\toption upnp '1'\n",
			[]config.UPnPMode{config.UPnPOff, config.UPnPOn}},
		{"config natmap\n" + base + "\toption upnp 'auto'\n\nconfig natmap\n" + base + "\toption upnp 'no'\n",
			[]config.UPnPMode{config.UPnPAuto, config.UPnPOff}},
	} {
		c := parse(t, tc.conf)
		for i, want := range tc.want {
			if s := c.Sections[i]; s.Err != nil || s.Mapping.UPnP != want {
				t.Errorf("%q section %d: %q %v, want %q", tc.conf, i, s.Mapping.UPnP, s.Err, want)
			}
		}
	}
	c := parse(t, "config natmap\n"+base+"\toption upnp 'maybe'\n\nconfig natmap\n"+base)
	if err := c.Sections[0].Err; err == nil || !strings.Contains(err.Error(), "option upnp") {
		t.Errorf("bad value: %v", err)
	}
	if c.Sections[1].Err != nil {
		t.Errorf("the other section: %v", c.Sections[1].Err)
	}
}

// option reachability_url reaches the mapping; a bad one fails only its section.
func TestReachabilityURL(t *testing.T) {
	c := parse(t, `
config natmap 'good'
	option stun_server 's'
	option http_server 'h'
	option reachability_url 'http://checker.example/{ip}/{port}/{proto}'

config natmap 'bad'
	option stun_server 's'
	option http_server 'h'
	option reachability_url 'http://checker.example/{pot}'
`)
	if len(c.Sections) != 2 || len(c.Warnings) != 0 {
		t.Fatalf("sections %+v warnings %v", c.Sections, c.Warnings)
	}
	if s := c.Sections[0]; s.Err != nil || s.Mapping.ReachabilityURL != "http://checker.example/{ip}/{port}/{proto}" {
		t.Errorf("good: %+v", s)
	}
	if s := c.Sections[1]; s.Err == nil || !strings.Contains(s.Err.Error(), "unknown placeholder") {
		t.Errorf("bad: %v", s.Err)
	}
}

// config global's reachability_url is every section's default; a section's
// own wins; a bad global one is ignored with a warning.
func TestGlobalReachabilityURL(t *testing.T) {
	c := parse(t, `
config global
	option reachability_url 'http://checker.example/{port}'

config natmap 'a'
	option stun_server 's'
	option http_server 'h'

config natmap 'b'
	option stun_server 's'
	option http_server 'h'
	option reachability_url 'http://other.example/{ip}/{port}'
`)
	if got := c.Sections[0].Mapping.ReachabilityURL; got != "http://checker.example/{port}" {
		t.Errorf("a: %q", got)
	}
	if got := c.Sections[1].Mapping.ReachabilityURL; got != "http://other.example/{ip}/{port}" {
		t.Errorf("b: %q", got)
	}
	c = parse(t, "config global\n\toption reachability_url 'ftp://x/'\n\nconfig natmap 'a'\n\toption stun_server 's'\n\toption http_server 'h'\n")
	if s := c.Sections[0]; s.Err != nil || s.Mapping.ReachabilityURL != "" || len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "reachability_url") {
		t.Errorf("bad global: %+v %v", s, c.Warnings)
	}
}

// memory_limit is the daemon's, in MiB: a bad value is a warning and the
// default stays; a later global section that sets it wins.
func TestGlobalMemoryLimit(t *testing.T) {
	for _, c := range []struct {
		conf string
		want int
		warn string
	}{
		{"", 0, ""},
		{"config global\n\toption memory_limit '16'\n", 16, ""},
		{"config global\n\toption memory_limit '0'\n", 0, ""},
		{"config global\n\toption memory_limit '4'\nconfig global\n\toption memory_limit '4096'\n", 4096, ""},
		{"config global\n\toption memory_limit '12'\nconfig global\n\toption interval '20'\n", 12, ""},
		{"config global\n\toption memory_limit '3'\n", 0, "not within 4 and 4096"},
		{"config global\n\toption memory_limit '4097'\n", 0, "not within 4 and 4096"},
		{"config global\n\toption memory_limit '16M'\n", 0, "not a whole number of MiB"},
		{"config global\n\toption memory_limit '-1'\n", 0, "not a whole number of MiB"},
		{"config global\n\tlist memory_limit '16'\n", 0, "is a list"},
	} {
		got := parse(t, c.conf+"config natmap 'a'\n\toption stun_server 's'\n\toption http_server 'h'\n")
		warned := strings.Join(got.Warnings, "\n")
		if got.MemoryLimitMiB != c.want || (c.warn == "") != (warned == "") || !strings.Contains(warned, c.warn) {
			t.Errorf("%q: %d MiB, warnings %q; want %d MiB, a warning with %q", c.conf, got.MemoryLimitMiB, warned, c.want, c.warn)
		}
		if got.Sections[0].Err != nil {
			t.Errorf("%q: the section fails: %v", c.conf, got.Sections[0].Err)
		}
	}
}
