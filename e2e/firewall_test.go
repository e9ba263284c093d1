package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/ctl"
	"github.com/natmap-go/natmap/internal/testkit/lab"
	"github.com/natmap-go/natmap/internal/testkit/wait"
)

// fw4Ruleset has the structure of OpenWrt's fw4 on the lan host, whose
// lan0 plays the router's wan: input drops, the wan zone's chain ends in a
// reject.
const fw4Ruleset = `
table inet fw4 {
	chain input {
		type filter hook input priority filter; policy drop;
		iif "lo" accept
		ct state established,related accept
		iifname "lan0" jump input_wan
	}
	chain input_wan {
		meta nfproto ipv4 udp dport 68 counter accept comment "!fw4: Allow-DHCP-Renew"
		meta nfproto ipv4 icmp type echo-request counter accept comment "!fw4: Allow-Ping"
		jump reject_from_wan
	}
	chain reject_from_wan {
		iifname "lan0" counter reject
	}
}
`

const firewallConfig = `
config zone
	option name 'lan'
	list network 'lan'
	option input 'ACCEPT'

config zone
	option name 'wan'
	list network 'wan'
	list network 'wan6'
	option input 'REJECT'
	option masq '1'
`

// The daemon opens its bind port in fw4's wan zone while the mapping runs,
// puts it back after a firewall reload (through firewall-sync, as the
// firewall's include script does), and closes it when it stops; a packet
// from the wan side proves each step.
func TestDaemonFirewallFW4(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConePreserve)
	loadFW4 := func() { loadFW4(t, l, "") }
	loadFW4()
	const port = 40060
	greeting := serve(t, l, port)
	open := func() bool { return openFromWAN(l, port, greeting) }
	if open() {
		t.Fatal("port open before natmap runs: the test firewall does not filter")
	}

	d := startWebDaemon(t, l, port)
	n := d.waitSection("web", 1, 15*time.Second)
	d.waitLog(`msg="managing firewall rules" firewall=fw4`, 5*time.Second)
	wait.For(t, 10*time.Second, "port opened", open)
	mustReach(t, l, n.Public(), greeting) // and through the NAT from outside
	rules, _ := l.Command(context.Background(), l.LAN, "nft", "list", "chain", "inet", "fw4", "input_wan").CombinedOutput()
	if strings.Count(string(rules), `comment "natmap:web"`) != 1 {
		t.Fatalf("want one tagged rule in input_wan:\n%s", rules)
	}

	// fw4 reload: the table is rebuilt without our rule; the include
	// script's firewall-sync puts it back.
	loadFW4()
	if open() {
		t.Fatal("rule survived a table rebuild: the reload was not simulated")
	}
	if out, err := d.cli("firewall-sync"); err != nil {
		t.Fatalf("natmap firewall-sync: %v %s", err, out)
	}
	if !open() {
		t.Fatal("port not reopened after firewall-sync")
	}

	// Stopping the daemon removes the rule.
	d.cmd.Process.Signal(os.Interrupt)
	<-d.done
	if open() {
		t.Fatal("port still open after the daemon stopped")
	}
	rules, _ = l.Command(context.Background(), l.LAN, "nft", "list", "chain", "inet", "fw4", "input_wan").CombinedOutput()
	if strings.Contains(string(rules), "natmap:") || !strings.Contains(string(rules), "Allow-DHCP-Renew") {
		t.Fatalf("after stop, input_wan should hold fw4's own rules only:\n%s", rules)
	}
}

// A firewall that was not there when the daemon started (fw4 restarting:
// it deletes its table, then makes it again) is managed from the first
// sync after it appears: its include script's firewall-sync.
func TestDaemonFirewallAppearsLater(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConePreserve)
	const port = 40066
	greeting := serve(t, l, port)
	d := startWebDaemon(t, l, port)
	d.waitSection("web", 1, 15*time.Second)
	d.waitLog("not managing firewall rules yet", 5*time.Second)

	loadFW4(t, l, "")
	if openFromWAN(l, port, greeting) {
		t.Fatal("port open under fw4 before natmap synced: the test firewall does not filter")
	}
	if out, err := d.cli("firewall-sync"); err != nil {
		t.Fatalf("natmap firewall-sync: %v %s", err, out)
	}
	if !openFromWAN(l, port, greeting) {
		t.Fatal("port not opened in the firewall that appeared")
	}
	d.waitLog(`msg="managing firewall rules" firewall=fw4`, 5*time.Second)
}

// startWebDaemon starts the daemon managing the firewall, with one
// section, web, mapping port; the firewall config puts the lan host's lan0
// in the wan zone.
func startWebDaemon(t *testing.T, l *lab.Lab, port int) *natmapDaemon {
	t.Helper()
	fwcfg := filepath.Join(t.TempDir(), "firewall")
	if err := os.WriteFile(fwcfg, []byte(firewallConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	return startDaemon(t, l, daemonGlobal+fmt.Sprintf(`
config natmap 'web'
	option enable '1'
	option port '%d'
	option notify_script 'NOTIFY'
`, port), "--firewall-config", fwcfg)
}

// loadFW4 (re)loads fw4Ruleset in the lan host, with extra rules added.
func loadFW4(t *testing.T, l *lab.Lab, extra string) {
	t.Helper()
	cmd := l.Command(context.Background(), l.LAN, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader("table inet fw4\ndelete table inet fw4\n" + fw4Ruleset + extra)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("loading fw4: %v %s", err, out)
	}
}

// openFromWAN reports whether the service on the lan host's port answers
// greeting from the NAT, i.e. the wan side of the lan host.
func openFromWAN(l *lab.Lab, port int, greeting string) bool {
	var got string
	l.Do(l.NAT, func() error {
		c, err := net.DialTimeout("tcp4", fmt.Sprintf("%s:%d", l.LANAddr, port), time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Second))
		b, _ := io.ReadAll(c)
		got = string(b)
		return nil
	})
	return got == greeting
}

// One section whose name is too long for a rule's tag and one whose zone
// has an unusable name are each reported in that section's status; the
// other section's port still opens and a stale natmap rule is still
// removed.
func TestDaemonFirewallFaultsStayLocal(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConePreserve)
	// A rule left by a daemon that crashed.
	loadFW4(t, l, `add rule inet fw4 input_wan tcp dport 40069 counter accept comment "natmap:old"`+"\n")
	const port = 40063
	greeting := serve(t, l, port)
	fwcfg := filepath.Join(t.TempDir(), "firewall")
	os.WriteFile(fwcfg, []byte(firewallConfig+`
config zone
	option name 'guest wan'
	list network 'lan0'
	option input 'REJECT'
`), 0o644)
	long := strings.Repeat("x", 70) // valid UCI, longer than a tag allows
	d := startDaemon(t, l, daemonGlobal+fmt.Sprintf(`
config natmap '%s'
	option enable '1'
	option port '40061'

config natmap 'badzone'
	option enable '1'
	option interface 'lan0'
	option firewall '1'
	option port '40062'

config natmap 'web'
	option enable '1'
	option port '%d'
	option notify_script 'NOTIFY'
`, long, port), "--firewall-config", fwcfg)
	d.waitSection("web", 1, 15*time.Second)
	wait.For(t, 10*time.Second, "port opened", func() bool { return openFromWAN(l, port, greeting) })
	wait.For(t, 10*time.Second, "stale rule removed", func() bool {
		rules, _ := l.Command(context.Background(), l.LAN, "nft", "list", "chain", "inet", "fw4", "input_wan").CombinedOutput()
		return !strings.Contains(string(rules), "natmap:old")
	})
	var st map[string]ctl.MappingStatus
	wait.For(t, 10*time.Second, "bad sections mapped", func() bool {
		st = d.status(t)
		return st[long].State == "mapped" && st["badzone"].State == "mapped"
	})
	for sec, want := range map[string]string{long: "longer than 64 bytes", "badzone": `zone name "guest wan"`} {
		if e := st[sec].LastError; !strings.Contains(e, "port not opened in the firewall") || !strings.Contains(e, want) {
			t.Errorf("section %s: last_error %q, want the firewall's error with %q", sec, e, want)
		}
	}
	if e := st["web"].LastError; e != "" {
		t.Errorf("section web: last_error %q", e)
	}
	d.waitLog("firewall rule not in place", time.Second)
}
