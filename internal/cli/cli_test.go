package cli

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/config"
	"github.com/natmap-go/natmap/internal/portspec"
)

func parse(t *testing.T, line string) *Command {
	t.Helper()
	c, err := Parse(strings.Fields(line))
	if err != nil {
		t.Fatalf("Parse(%q): %v", line, err)
	}
	return c
}

func TestDefaults(t *testing.T) {
	m := parse(t, "-s stun.example.org -h example.com").Mapping
	want := config.Mapping{
		Keepalive:      30 * time.Second,
		StunCycle:      10,
		STUN:           []config.HostPort{{Host: "stun.example.org", Port: 3478}},
		HTTP:           config.HostPort{Host: "example.com", Port: 80},
		ForwardTimeout: 300 * time.Second,
	}
	if m.Keepalive != want.Keepalive || m.StunCycle != want.StunCycle || m.HTTP != want.HTTP ||
		len(m.STUN) != 1 || m.STUN[0] != want.STUN[0] || m.ForwardTimeout != want.ForwardTimeout ||
		m.UDP || m.IPv6 || m.Ports != (portspec.Spec{}) || m.Script != "" || m.Mark != 0 {
		t.Fatalf("got %+v", m)
	}
	if u := parse(t, "-u -s s").Mapping; u.Keepalive != 10*time.Second || u.HTTP.Host != "" {
		t.Fatalf("UDP defaults: %+v", u)
	}
	if z := parse(t, "-k 0 -c 0 -T 0 -s s -h h").Mapping; z.Keepalive != 30*time.Second || z.StunCycle != 10 || z.ForwardTimeout != 300*time.Second {
		t.Fatalf("0 must mean default, like the C natmap: %+v", z)
	}
}

// --upnp is off unless asked for, so the C natmap's command line behaves
// as before.
func TestUPnP(t *testing.T) {
	if m := parse(t, "-s s -h h").Mapping; m.UPnP != config.UPnPOff {
		t.Fatalf("default %q", m.UPnP)
	}
	for line, want := range map[string]config.UPnPMode{
		"-s s -h h --upnp auto": config.UPnPAuto,
		"-s s --upnp=on -h h":   config.UPnPOn,
		"--upnp off -u -s s":    config.UPnPOff,
		"-u --upnp on -s s -- ": config.UPnPOn,
	} {
		if m := parse(t, line).Mapping; m.UPnP != want {
			t.Errorf("%q: %q, want %q", line, m.UPnP, want)
		}
	}
}

func TestEveryOption(t *testing.T) {
	c := parse(t, "-4 -6 -u -d -i eth1 -k 25 -c 3 -s a:1 -s b,c:3 -h web:8080 -e /bin/notify -f 0x10 -b 1000-2000 -C bbr -T 60 -t 10.0.0.2 -p 0")
	m := c.Mapping
	if !m.IPv6 || !m.UDP || !c.Daemon || m.Device != "eth1" || m.BindAddr.IsValid() ||
		m.Keepalive != 25*time.Second || m.StunCycle != 3 || m.Script != "/bin/notify" || m.Mark != 16 ||
		m.Ports != (portspec.Spec{Lo: 1000, Hi: 2000}) || m.Congestion != "bbr" || m.ForwardTimeout != time.Minute ||
		m.ForwardTarget != "10.0.0.2" || m.ForwardPort != 0 || !m.Forward() || m.HTTP != (config.HostPort{Host: "web", Port: 8080}) {
		t.Fatalf("got %+v", m)
	}
	wantSTUN := []config.HostPort{{Host: "a", Port: 1}, {Host: "b", Port: 3478}, {Host: "c", Port: 3}}
	for i := range wantSTUN {
		if m.STUN[i] != wantSTUN[i] {
			t.Fatalf("STUN list %+v, want %+v", m.STUN, wantSTUN)
		}
	}
}

func TestGetoptFormsExact(t *testing.T) {
	c, err := Parse([]string{"-4d", "-k15", "-sstun", "-hweb", "-b8080", "--"})
	if err != nil {
		t.Fatal(err)
	}
	m := c.Mapping
	if !c.Daemon || m.Keepalive != 15*time.Second || m.STUN[0].Host != "stun" || m.HTTP.Host != "web" || m.Ports.Lo != 8080 {
		t.Fatalf("got %+v", c)
	}
	// A value that starts with '-' after a separate option letter is a value.
	if c := parse(t, "-s s -h h -e -script"); c.Mapping.Script != "-script" {
		t.Fatalf("script %q", c.Mapping.Script)
	}
}

func TestInterfaceOrAddress(t *testing.T) {
	if m := parse(t, "-s s -h h -i 192.0.2.7").Mapping; m.BindAddr != netip.MustParseAddr("192.0.2.7") || m.Device != "" {
		t.Fatalf("got %+v", m)
	}
	if m := parse(t, "-6 -s s -h h -i 2001:db8::7").Mapping; m.BindAddr != netip.MustParseAddr("2001:db8::7") {
		t.Fatalf("got %+v", m)
	}
	if m := parse(t, "-s s -h h -i pppoe-wan").Mapping; m.Device != "pppoe-wan" || m.BindAddr.IsValid() {
		t.Fatalf("got %+v", m)
	}
}

func TestErrors(t *testing.T) {
	for line, want := range map[string]string{
		"-h h":                                        "STUN server is required",
		"-s s":                                        "needs a keep-alive HTTP server",
		"-s s -h h -t 10.0.0.1":                       "-t and -p go together",
		"-s s -h h -p 80":                             "-t and -p go together",
		"-s s -h h -x":                                "unknown option -x",
		"-s s -h h --bogus":                           "unknown option --bogus",
		"-s s -h h -k 99999999999":                    "-k: 99999999999 is out of range (at most 2147483647)",
		"-s s -h h -c 2147483648":                     "-c: 2147483648 is out of range",
		"-6 -s 192.0.2.1 -h h":                        "STUN server 192.0.2.1:3478 is not an IPv6 address",
		"-6 -s ::ffff:192.0.2.1 -h h":                 "STUN server [::ffff:192.0.2.1]:3478 is not an IPv6 address",
		"-s [2001:db8::1] -h h":                       "STUN server [2001:db8::1]:3478 is not an IPv4 address",
		"-6 -s s -s 192.0.2.1 -h h":                   "STUN server 192.0.2.1:3478 is not an IPv6 address",
		"-6 -s s -h 192.0.2.1":                        "keep-alive HTTP server 192.0.2.1:80 is not an IPv6 address",
		"-s s -h h -k":                                "option -k needs a value",
		"-s s -h h -k ten":                            "-k:",
		"-s s -h h -k -5":                             "-k:",
		"-s s -h h -c 1.5":                            "-c:",
		"-s s -h h -b 70000":                          "-b:",
		"-s s -h h -b 20-10":                          "-b:",
		"-s s -h h -f 0xZ":                            "-f:",
		"-s s -h h -p 65536 -t x":                     "-p:",
		"-s s -h h stray":                             `unexpected argument "stray"`,
		"-s s -h h -- stray":                          `unexpected argument "stray"`,
		"-s s:0 -h h":                                 "-s:",
		"-s s -h h:99999":                             "-h:",
		"-s s -h h -6 -i 10.0.0.1":                    "not an IPv6 address",
		"-s s -h h -i a/b":                            "not a valid interface",
		"-s s -h h -C a/b -t x -p 1":                  "-C:",
		"-s s -h h -T x -t x -p 1":                    "-T:",
		"-s s -h h -s bad:port:x:::z":                 "-s:",
		"-s s -h h --forward-mode kernel":             "--forward-mode kernel needs -t and -p",
		"-s s -h h -t x -p 1 --forward-mode fast":     `--forward-mode: "fast"`,
		"-s s -h h -t x -p 1 --forward-mode":          "--forward-mode needs a value",
		"-s s -h h -t x -p 1 --forward":               "unknown option --forward",
		"-s s -h h -t x -p 1 --forward-mode= kernel":  `--forward-mode: ""`,
		"-s s -h h --upnp":                            "option --upnp needs a value",
		"-s s -h h --upnp=1":                          `--upnp: "1": want auto, on or off`,
		"-s s -h h --upnpx=on":                        "unknown option --upnpx",
		"-s s -h h --reachability":                    "unknown option --reachability",
		"-s s -h h --reachability-url":                "option --reachability-url needs a value",
		"-s s -h h --reachability-url=ftp://x/{port}": "want http(s)://HOST",
	} {
		_, err := Parse(strings.Fields(line))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v; want an error containing %q", line, err, want)
		}
	}
}

// --forward-mode is opt-in: without it, forward mode relays as the C
// natmap does.
func TestForwardMode(t *testing.T) {
	for line, kernel := range map[string]bool{
		"-s s -h h -t 10.0.0.2 -p 80":                                            false,
		"-s s -h h -t 10.0.0.2 -p 80 --forward-mode kernel":                      true,
		"--forward-mode=kernel -s s -h h -t 10.0.0.2 -p 80":                      true,
		"-s s -h h -t 10.0.0.2 -p 80 --forward-mode kernel --forward-mode=relay": false,
	} {
		m := parse(t, line).Mapping
		if m.Kernel != kernel || m.Relay() == kernel || !m.Forward() {
			t.Errorf("%q: kernel %v, relay %v; want kernel %v", line, m.Kernel, m.Relay(), kernel)
		}
	}
}

// --reachability-url is off by default and takes its value either way.
func TestReachabilityURL(t *testing.T) {
	for _, args := range [][]string{
		{"-s", "s", "-h", "h", "--reachability-url", "http://c/{port}"},
		{"-s", "s", "--reachability-url=http://c/{port}", "-h", "h"},
	} {
		c, err := Parse(args)
		if err != nil || c.Mapping.ReachabilityURL != "http://c/{port}" {
			t.Errorf("Parse(%q): %v, %+v", args, err, c)
		}
	}
	c, err := Parse([]string{"-s", "s", "-h", "h"})
	if err != nil || c.Mapping.ReachabilityURL != "" {
		t.Errorf("default: %v, %q", err, c.Mapping.ReachabilityURL)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("-s s -h h --reachability-url http://c/{ip}/{port}")
	f.Add("-s s -h h -b 1000~2000 -f 0x10")
	f.Add("-s s -h h -t x -p 0 --forward-mode=kernel")
	f.Add("-u6d -k10 -s[::1]:3478")
	f.Add("-s s -h h --upnp=auto")
	f.Fuzz(func(t *testing.T, line string) {
		c, err := Parse(strings.Fields(line))
		if err == nil {
			if len(c.Mapping.STUN) == 0 || c.Mapping.Keepalive <= 0 || (!c.Mapping.UDP && c.Mapping.HTTP.Host == "") ||
				(c.Mapping.Kernel && !c.Mapping.Forward()) {
				t.Fatalf("accepted an invalid command line %q: %+v", line, c)
			}
		}
	})
}
