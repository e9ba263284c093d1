package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/natmap-go/natmap/internal/testkit/coturn"
	"github.com/natmap-go/natmap/internal/testkit/netns"
	"github.com/natmap-go/natmap/internal/testkit/owlab"
	"github.com/natmap-go/natmap/internal/testkit/testgate"
)

// On OpenWrt's real userspace (owlab: procd, fw4 with the default config),
// natmap installed as the package installs it (binary, init script,
// firewall include through the uci-defaults script) runs two UDP sections
// in kernel forward mode, against coturn in the lab's network namespace:
// their rules land inside fw4's table (the dstnat chain; forward_wan for a
// LAN target, input_wan for the router itself), come back after `fw4
// reload` through the include, and go when the service stops.
func TestKernelForwardOnOpenWrt(t *testing.T) {
	testgate.Require(t, "owlab", true, map[string]string{"turnserver": "coturn"})
	l := owlab.Start(t, owlab.Options{})

	// coturn, Debian's, in the lab's network namespace: the STUN server.
	coturn.Start(t, coturn.Config{Addrs: []string{l.Addr()}, Port: 3478, NetNS: l.NetNS})

	l.CopyIn(natmapBin, "/usr/bin/natmap")
	l.CopyIn("../openwrt/natmap/files/natmap.init", "/etc/init.d/natmap")
	l.CopyIn("../openwrt/natmap/files/firewall.include", "/usr/share/natmap/firewall.include")
	l.CopyIn("../openwrt/natmap/files/natmap.uci-defaults", "/etc/uci-defaults/99-natmap")
	cfg := filepath.Join(t.TempDir(), "natmap")
	os.WriteFile(cfg, []byte(`
config natmap 'lan'
	option enable '1'
	option udp_mode '1'
	option port '40200'
	option stun_server '`+l.Addr()+`'
	option forward_target '192.168.1.10'
	option forward_port '53'
	option forward_mode 'kernel'

config natmap 'self'
	option enable '1'
	option udp_mode '1'
	option port '40201'
	option stun_server '`+l.Addr()+`'
	option forward_target '`+l.Addr()+`'
	option forward_port '5353'
`), 0o644)
	l.CopyIn(cfg, "/etc/config/natmap")
	l.Sh("chmod 755 /usr/bin/natmap /etc/init.d/natmap && sh /etc/uci-defaults/99-natmap && rm /etc/uci-defaults/99-natmap")
	// As on a router; the lab's /proc/sys is read-only from inside.
	if err := netns.Do(l.NetNS, func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644)
	}); err != nil {
		t.Fatalf("ip_forward: %v", err)
	}
	l.Sh("/etc/init.d/natmap start")

	rules := func() string { return l.Sh("nft list table inet fw4") }
	both := "nft list table inet fw4 | grep -q 'natmap-dnat:lan#' && nft list table inet fw4 | grep -q 'natmap-dnat:self#'"
	check := func(when string) {
		t.Helper()
		for chain, want := range map[string][]string{
			"dstnat": {"natmap-dnat:lan#", "natmap-dnat:self#"}, "forward_wan": {"natmap-dnat:lan#"}, "input_wan": {"natmap-dnat:self#"},
		} {
			c := l.Sh("nft list chain inet fw4 " + chain)
			if n := strings.Count(c, "natmap-dnat:"); n != len(want) {
				t.Errorf("%s: chain %s has %d kernel forwarding rules, want %v:\n%s", when, chain, n, want, c)
			}
			for _, w := range want {
				if !strings.Contains(c, w) {
					t.Errorf("%s: chain %s lacks %s:\n%s", when, chain, w, c)
				}
			}
		}
	}
	if _, err := l.Exec(nil, "for i in $(seq 100); do "+both+" && exit 0; sleep 0.2; done; exit 1"); err != nil {
		t.Fatalf("no kernel forwarding rules in fw4's table: %v\n%s\nstatus:\n%s\nlog:\n%s", err, rules(), l.Sh("natmap status || true"), l.Log())
	}
	check("running")
	if st := l.Sh("natmap status"); !strings.Contains(st, "udp/kernel") {
		t.Errorf("natmap status:\n%s", st)
	}

	l.Sh("fw4 reload")
	// The include asks the daemon in the background: wait for it.
	if _, err := l.Exec(nil, "for i in $(seq 100); do "+both+" && exit 0; sleep 0.2; done; exit 1"); err != nil {
		t.Fatalf("rules not back after fw4 reload: %v\n%s\nlog:\n%s", err, rules(), l.Log())
	}
	check("after fw4 reload")

	l.Sh("/etc/init.d/natmap stop")
	if _, err := l.Exec(nil, "for i in $(seq 100); do nft list table inet fw4 | grep -q natmap || exit 0; sleep 0.2; done; exit 1"); err != nil {
		t.Fatalf("rules left after stop:\n%s", rules())
	}
}
