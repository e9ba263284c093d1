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

	"github.com/natmap-go/natmap/internal/lab"
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
	loadFW4 := func() {
		cmd := l.Command(context.Background(), l.LAN, "nft", "-f", "-")
		cmd.Stdin = strings.NewReader("table inet fw4\ndelete table inet fw4\n" + fw4Ruleset)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("loading fw4: %v %s", err, out)
		}
	}
	loadFW4()
	const port = 40060
	greeting := serve(t, l, port)
	// From the NAT, i.e. the wan side of the lan host.
	open := func() bool {
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
	if open() {
		t.Fatal("port open before natmap runs: the test firewall does not filter")
	}

	fwcfg := filepath.Join(t.TempDir(), "firewall")
	os.WriteFile(fwcfg, []byte(firewallConfig), 0o644)
	d := startDaemon(t, l, daemonGlobal+fmt.Sprintf(`
config natmap 'web'
	option enable '1'
	option port '%d'
	option notify_script 'NOTIFY'
`, port), "--firewall-config", fwcfg)
	n := d.waitSection("web", 1, 15*time.Second)
	d.waitLog("managing firewall rules", 5*time.Second)
	waitFor(t, "port opened", open)
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

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
