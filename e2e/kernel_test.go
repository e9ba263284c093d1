package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/testkit/lab"
	"github.com/natmap-go/natmap/internal/testkit/tcpserve"
	"github.com/natmap-go/natmap/internal/testkit/wait"
)

// Kernel forwarding (--forward-mode kernel, forward_mode): the kernel
// forwards the mapping's flows to the target, which sees the outside
// client's own address.

// serveWho runs a TCP and a UDP service in namespace ns on addr that answer
// every client with the client's address as they see it.
func serveWho(t testing.TB, l *lab.Lab, ns, addr string) {
	t.Helper()
	ln, err := l.Listen(ns, "tcp", addr, false)
	if err != nil {
		t.Fatal(err)
	}
	tcpserve.Each(t, ln, func(c net.Conn) {
		io.WriteString(c, c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap().String())
	})
	pc, err := l.ListenPacket(ns, "udp", addr, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			_, from, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			pc.WriteToUDPAddrPort([]byte(from.Addr().Unmap().String()), from)
		}
	}()
}

// mustSeeClient checks that the outside client reaches the service at
// public over proto, and that the service saw the client's own address.
func mustSeeClient(t testing.TB, l *lab.Lab, proto string, public netip.AddrPort) {
	t.Helper()
	want := l.ClientAddr.String()
	var got string
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for {
		if proto == "tcp" {
			got, err = reach(t, l, public)
		} else {
			var b []byte
			b, err = echoUDP(t, l, public, []byte("who am I"))
			got = string(b)
		}
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s from the outside client to %s: the service saw %q, %v; want %s", proto, public, got, err, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kernelRules returns the kernel forwarding rules in the lan host's
// natmap table, one line each ("" when the table is gone).
func kernelRules(t testing.TB, l *lab.Lab) []string {
	t.Helper()
	out, err := l.Command(context.Background(), l.LAN, "nft", "list", "table", "inet", "natmap").CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "No such file") {
			return nil
		}
		t.Fatalf("nft list table inet natmap: %v %s", err, out)
	}
	var rules []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "natmap-dnat:") {
			rules = append(rules, strings.TrimSpace(line))
		}
	}
	if len(rules) == 0 {
		t.Fatalf("table inet natmap without a rule:\n%s", out)
	}
	return rules
}

func kernelArgs(l *lab.Lab, port uint16, extra ...string) []string {
	return bindArgs(l, port, append(extra, "--forward-mode", "kernel")...)
}

// A TCP and a UDP natmap forward in the kernel to a server on another LAN
// host; each natmap's rule is its own (stopping one leaves the other's), a
// SIGKILLed natmap's rule goes when the next natmap starts, and the last
// one to stop takes the table with it.
func TestKernelForwardToLANHost(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConePreserve)
	svc := l.AddServiceHost(t)
	serveWho(t, l, svc.NS, fmt.Sprintf("%s:8090", svc.Addr))
	target := []string{"-t", svc.Addr.String(), "-p", "8090"}

	tcp := startNatmap(t, l, kernelArgs(l, 40080, target...)...)
	udp := startNatmap(t, l, kernelArgs(l, 40081, append([]string{"-u"}, target...)...)...)
	nt := tcp.waitNotification(1, 15*time.Second)
	nu := udp.waitNotification(1, 15*time.Second)
	mustSeeClient(t, l, "tcp", nt.Public())
	mustSeeClient(t, l, "udp", nu.Public())
	if r := kernelRules(t, l); len(r) != 2 {
		t.Fatalf("want two rules: %q", r)
	}

	tcp.stop()
	if r := kernelRules(t, l); len(r) != 1 || !strings.Contains(r[0], "udp dport 40081") {
		t.Fatalf("after the TCP natmap stopped, want the UDP rule only: %q", r)
	}
	if _, err := reach(t, l, nt.Public()); err == nil {
		t.Fatal("TCP still forwarded after its natmap stopped")
	}
	mustSeeClient(t, l, "udp", nu.Public())

	// SIGKILL: the rule stays behind...
	udp.cmd.Process.Signal(syscall.SIGKILL)
	<-udp.done
	if r := kernelRules(t, l); len(r) != 1 {
		t.Fatalf("after SIGKILL: %q", r)
	}
	// ...until the next natmap starts.
	again := startNatmap(t, l, kernelArgs(l, 40082, append([]string{"-u"}, target...)...)...)
	na := again.waitNotification(1, 15*time.Second)
	if r := kernelRules(t, l); len(r) != 1 || !strings.Contains(r[0], "udp dport 40082") {
		t.Fatalf("after a restart, want the new natmap's rule only: %q", r)
	}
	mustSeeClient(t, l, "udp", na.Public())
	again.stop()
	if r := kernelRules(t, l); r != nil {
		t.Fatalf("rules left after the last natmap stopped: %q", r)
	}
}

// A target that is the host itself: its own LAN address (TCP, -p 0, so the
// rule follows the public port when the NAT gives a new one), and a
// loopback address (UDP: a redirect to the address the flows come in on).
func TestKernelForwardToItself(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConeTranslate)
	tcp := startNatmap(t, l, kernelArgs(l, 40083, "-t", l.LANAddr.String(), "-p", "0")...)
	serveWho(t, l, l.LAN, "0.0.0.0:8092")
	udp := startNatmap(t, l, kernelArgs(l, 40084, "-u", "-t", "127.0.0.1", "-p", "8092")...)

	n1 := tcp.waitNotification(1, 15*time.Second)
	serveWho(t, l, l.LAN, fmt.Sprintf("%s:%s", l.LANAddr, n1.PublicPort))
	mustSeeClient(t, l, "tcp", n1.Public())
	nu := udp.waitNotification(1, 15*time.Second)
	mustSeeClient(t, l, "udp", nu.Public())

	// A new public port: the TCP rule moves to it.
	if err := l.ForgetMappings(); err != nil {
		t.Fatal(err)
	}
	n2 := tcp.waitNotification(2, 30*time.Second)
	if n2.PublicPort == n1.PublicPort {
		t.Skipf("the NAT gave the same public port %s again (1 in 10000)", n1.PublicPort)
	}
	serveWho(t, l, l.LAN, fmt.Sprintf("%s:%s", l.LANAddr, n2.PublicPort))
	mustSeeClient(t, l, "tcp", n2.Public())
	var tcpRules []string
	for _, r := range kernelRules(t, l) {
		if strings.Contains(r, "tcp dport") {
			tcpRules = append(tcpRules, r)
		}
	}
	if len(tcpRules) != 1 || !strings.Contains(tcpRules[0], ":"+n2.PublicPort+" ") {
		t.Fatalf("want one TCP rule to port %s: %q", n2.PublicPort, tcpRules)
	}
	tcp.stop()
	udp.stop()
	if r := kernelRules(t, l); r != nil {
		t.Fatalf("rules left after stop: %q", r)
	}
}

// --forward-mode kernel that cannot work is an error at start, not a
// relay: here the target is another host but the host does not forward.
func TestKernelForwardRefusesWithoutForwarding(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConePreserve)
	n := startNatmap(t, l, kernelArgs(l, 40085, "-t", "10.77.0.99", "-p", "80")...)
	select {
	case <-n.done:
	case <-time.After(15 * time.Second):
		t.Fatal("natmap kept running")
	}
	if code := n.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(n.stderr.String(), "ip_forward") {
		t.Fatalf("exit %d, log:\n%s", code, n.stderr.String())
	}
}

// kernelSection is a daemon section forwarding to target:port.
func kernelSection(name string, port int, udp bool, target string, tport int, mode string) string {
	s := fmt.Sprintf("\nconfig natmap '%s'\n\toption enable '1'\n\toption port '%d'\n\toption forward_target '%s'\n\toption forward_port '%d'\n\toption notify_script 'NOTIFY'\n",
		name, port, target, tport)
	if udp {
		s += "\toption udp_mode '1'\n"
	}
	if mode != "" {
		s += "\toption forward_mode '" + mode + "'\n"
	}
	return s
}

// The daemon: forward_mode 'auto' (the default) and 'kernel' forward in the
// kernel, 'relay' and a loopback target under 'auto' relay (the status says
// why); the rules follow reloads, and a SIGKILLed daemon's rules go when the
// next one starts.
func TestDaemonKernelForward(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConePreserve)
	svc := l.AddServiceHost(t)
	serveWho(t, l, svc.NS, fmt.Sprintf("%s:8090", svc.Addr))
	serveWho(t, l, l.LAN, "127.0.0.1:8091")
	target := svc.Addr.String()
	web := kernelSection("web", 40090, false, target, 8090, "")
	game := kernelSection("game", 40091, true, target, 8090, "kernel")
	relayed := kernelSection("relayed", 40092, false, target, 8090, "relay")
	loop := kernelSection("loop", 40093, false, "127.0.0.1", 8091, "")
	// A DNAT cannot change the family: 'kernel' refuses, 'auto' relays.
	v6 := kernelSection("v6", 40097, false, svc.Addr6.String(), 8090, "kernel")
	v6auto := kernelSection("v6auto", 40098, false, svc.Addr6.String(), 8090, "")
	d := startDaemon(t, l, daemonGlobal+web+game+relayed+loop+v6+v6auto, "--firewall=true")

	nw := d.waitSection("web", 1, 15*time.Second)
	ng := d.waitSection("game", 1, 15*time.Second)
	nr := d.waitSection("relayed", 1, 15*time.Second)
	nl := d.waitSection("loop", 1, 15*time.Second)
	mustSeeClient(t, l, "tcp", nw.Public())
	mustSeeClient(t, l, "udp", ng.Public())
	// The relay: the service sees the lan host, not the client.
	if got, err := reach(t, l, nr.Public()); err != nil || got != "10.78.0.1" {
		t.Fatalf("relayed section: the service saw %q, %v; want the lan host 10.78.0.1", got, err)
	}
	if got, err := reach(t, l, nl.Public()); err != nil || got != "127.0.0.1" {
		t.Fatalf("loopback section: the service saw %q, %v; want the relay at 127.0.0.1", got, err)
	}
	st := d.status(t)
	for sec, want := range map[string]string{"web": "kernel", "game": "kernel", "relayed": "relay", "loop": "relay"} {
		if st[sec].ForwardMode != want || (st[sec].Relay != nil) != (want == "relay") {
			t.Errorf("%s: forward_mode %q, relay %v; want %s", sec, st[sec].ForwardMode, st[sec].Relay, want)
		}
	}
	if st["relayed"].ForwardModeReason != "" || !strings.Contains(st["loop"].ForwardModeReason, "loopback") {
		t.Errorf("reasons: relayed %q, loop %q", st["relayed"].ForwardModeReason, st["loop"].ForwardModeReason)
	}
	if s := st["v6"]; s.State != "error" || !strings.Contains(s.LastError, "option forward_mode 'kernel'") || !strings.Contains(s.LastError, "no IPv4 address") {
		t.Errorf("v6 with forward_mode 'kernel': state %s, error %q", s.State, s.LastError)
	}
	if s := st["v6auto"]; s.ForwardMode != "relay" || !strings.Contains(s.ForwardModeReason, "no IPv4 address") {
		t.Errorf("v6 with forward_mode 'auto': %q, reason %q", s.ForwardMode, s.ForwardModeReason)
	}
	if out, err := d.cli("status"); err != nil || !strings.Contains(out, "tcp/kernel") || !strings.Contains(out, "udp/kernel") {
		t.Errorf("natmap status: %v\n%s", err, out)
	}
	if r := kernelRules(t, l); len(r) != 2 {
		t.Fatalf("want the rules of web and game: %q", r)
	}

	// Reload without game: its rule goes.
	d.writeConfig(t, strings.ReplaceAll(daemonGlobal+web+relayed+loop+v6+v6auto, "NOTIFY", filepath.Join(filepath.Dir(d.notes), "notify.sh")))
	if out, err := d.cli("reload"); err != nil {
		t.Fatalf("reload: %v %s", err, out)
	}
	wait.For(t, 10*time.Second, "game's rule removed", func() bool { return len(kernelRules(t, l)) == 1 })
	if r := kernelRules(t, l); !strings.Contains(r[0], "tcp dport 40090") {
		t.Fatalf("want web's rule: %q", r)
	}
	mustSeeClient(t, l, "tcp", nw.Public())

	// SIGKILL leaves web's rule; the next daemon, without web, removes it
	// and adds its own.
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
	if r := kernelRules(t, l); len(r) != 1 {
		t.Fatalf("after SIGKILL: %q", r)
	}
	d2 := startDaemon(t, l, daemonGlobal+kernelSection("game2", 40094, true, target, 8090, "kernel"), "--firewall=true")
	n2 := d2.waitSection("game2", 1, 15*time.Second)
	if r := kernelRules(t, l); len(r) != 1 || !strings.Contains(r[0], "udp dport 40094") {
		t.Fatalf("after the restart, want game2's rule only: %q", r)
	}
	mustSeeClient(t, l, "udp", n2.Public())
	d2.cmd.Process.Signal(syscall.SIGTERM)
	<-d2.done
	if r := kernelRules(t, l); r != nil {
		t.Fatalf("rules left after the daemon stopped: %q", r)
	}
}

// fw4ForwardRuleset has fw4's structure on the lan host, whose lan0 plays
// the router's wan: input and forward from the wan zone end in a reject,
// and the dstnat chain has no port forward.
const fw4ForwardRuleset = `
table inet fw4
delete table inet fw4
table inet fw4 {
	chain input {
		type filter hook input priority filter; policy drop;
		iif "lo" accept
		ct state established,related accept
		iifname "lan0" jump input_wan
	}
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
		iifname "lan0" jump forward_wan
	}
	chain input_wan {
		meta nfproto ipv4 icmp type echo-request counter accept comment "!fw4: Allow-Ping"
		jump reject_from_wan
	}
	chain forward_wan {
		jump reject_to_wan
	}
	chain reject_from_wan {
		iifname "lan0" counter reject
	}
	chain reject_to_wan {
		counter reject
	}
	chain dstnat {
		type nat hook prerouting priority dstnat; policy accept;
	}
}
`

// Under fw4 (its structure on the lan host, forward policy drop): the
// daemon's kernel forwarding rules go inside fw4's table, where they pass
// its reject; a fw4 reload drops them and firewall-sync (the firewall's
// include) puts them back; stopping the daemon leaves fw4's own rules.
func TestDaemonKernelForwardFW4(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConePreserve)
	svc := l.AddServiceHost(t)
	serveWho(t, l, svc.NS, fmt.Sprintf("%s:8090", svc.Addr))
	loadFW4 := func() {
		cmd := l.Command(context.Background(), l.LAN, "nft", "-f", "-")
		cmd.Stdin = strings.NewReader(fw4ForwardRuleset)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("loading fw4: %v %s", err, out)
		}
	}
	loadFW4()
	fw4Rules := func() string {
		out, err := l.Command(context.Background(), l.LAN, "nft", "list", "table", "inet", "fw4").CombinedOutput()
		if err != nil {
			t.Fatalf("nft list table inet fw4: %v %s", err, out)
		}
		return string(out)
	}
	fwcfg := filepath.Join(t.TempDir(), "firewall")
	os.WriteFile(fwcfg, []byte(firewallConfig), 0o644)
	target := svc.Addr.String()
	d := startDaemon(t, l, daemonGlobal+kernelSection("web", 40095, false, target, 8090, "")+
		kernelSection("game", 40096, true, target, 8090, "kernel"), "--firewall-config", fwcfg)
	nw := d.waitSection("web", 1, 15*time.Second)
	ng := d.waitSection("game", 1, 15*time.Second)
	mustSeeClient(t, l, "tcp", nw.Public())
	mustSeeClient(t, l, "udp", ng.Public())
	if st := d.status(t); st["web"].ForwardMode != "kernel" || st["game"].ForwardMode != "kernel" {
		t.Fatalf("forward modes: web %q (%s), game %q", st["web"].ForwardMode, st["web"].ForwardModeReason, st["game"].ForwardMode)
	}
	rules := fw4Rules()
	if n := strings.Count(rules, "natmap-dnat:"); n != 4 || !strings.Contains(rules, "dnat ip to 10.78.0.2:8090") ||
		!strings.Contains(rules, "ct status dnat counter") {
		t.Fatalf("want a DNAT and an accept per section in fw4's table:\n%s", rules)
	}

	loadFW4() // fw4 reload
	if _, err := reach(t, l, nw.Public()); err == nil {
		t.Fatal("still forwarded after a fw4 reload: the reload was not simulated")
	}
	if out, err := d.cli("firewall-sync"); err != nil {
		t.Fatalf("natmap firewall-sync: %v %s", err, out)
	}
	mustSeeClient(t, l, "tcp", nw.Public())
	mustSeeClient(t, l, "udp", ng.Public())

	d.cmd.Process.Signal(syscall.SIGTERM)
	<-d.done
	if rules := fw4Rules(); strings.Contains(rules, "natmap") || !strings.Contains(rules, "Allow-Ping") {
		t.Fatalf("after stop, want fw4's own rules only:\n%s", rules)
	}
}
