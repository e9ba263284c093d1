package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/ctl"
	"github.com/natmap-go/natmap/internal/mapping"
	"github.com/natmap-go/natmap/internal/testkit/lab"
	"github.com/natmap-go/natmap/internal/testkit/wait"
)

// natmapDaemon is `natmap daemon` running in the lab's lan namespace.
type natmapDaemon struct {
	*natmap
	config, socket string
	l              *lab.Lab
	ns             string // where it runs
}

// startDaemon writes config (with NOTIFY replaced by a recording notify
// script) and runs the daemon on it.
func startDaemon(t testing.TB, l *lab.Lab, config string, extra ...string) *natmapDaemon {
	t.Helper()
	return startDaemonIn(t, l, l.LAN, config, extra...)
}

// startDaemonIn is startDaemon in namespace ns.
func startDaemonIn(t testing.TB, l *lab.Lab, ns, config string, extra ...string) *natmapDaemon {
	t.Helper()
	dir := t.TempDir()
	d := &natmapDaemon{config: filepath.Join(dir, "natmap"), socket: filepath.Join(dir, "natmap.sock"), l: l, ns: ns}
	notes := filepath.Join(dir, "notes")
	script := filepath.Join(dir, "notify.sh")
	// Section name (argv 7) first, then the six C natmap arguments.
	body := "#!/bin/sh\nprintf '%s|%s|%s|%s|%s|%s|%s|%s\\n' \"$7\" \"$1\" \"$2\" \"$3\" \"$4\" \"$5\" \"$6\" \"$NATMAP_SECTION\" >> " + notes + "\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	d.writeConfig(t, strings.ReplaceAll(config, "NOTIFY", script))
	ctx, cancel := context.WithCancel(context.Background())
	args := append([]string{"daemon", "--config", d.config, "--socket", d.socket, "--log", "stderr"}, extra...)
	if len(extra) == 0 {
		args = append(args, "--firewall=false")
	}
	cmd := l.Command(ctx, ns, natmapBin, args...)
	d.natmap = &natmap{t: t, cmd: cmd, stderr: &syncBuf{}, notes: notes, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = d.stderr, d.stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		cancel()
		<-d.done
		if t.Failed() || testing.Verbose() {
			t.Logf("natmap daemon output:\n%s", d.stderr.String())
		}
	})
	return d
}

func (d *natmapDaemon) writeConfig(t testing.TB, text string) {
	if err := os.WriteFile(d.config, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// sectionNotes returns the notifications of one section.
func (d *natmapDaemon) sectionNotes(section string) []notification {
	b, _ := os.ReadFile(d.notes)
	var out []notification
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Split(line, "|")
		if len(f) == 8 && f[0] == section {
			if f[7] != section {
				d.t.Fatalf("NATMAP_SECTION %q for section %q", f[7], section)
			}
			out = append(out, notification{f[1], f[2], f[3], f[4], f[5], f[6]})
		}
	}
	return out
}

func (d *natmapDaemon) waitSection(section string, count int, within time.Duration) notification {
	d.t.Helper()
	var n []notification
	wait.For(d.t, within, fmt.Sprintf("section %s's notification #%d", section, count), func() bool {
		n = d.sectionNotes(section)
		return len(n) >= count
	})
	return n[count-1]
}

// cli runs `natmap ARGS --socket S` in the lan namespace.
func (d *natmapDaemon) cli(args ...string) (string, error) {
	args = append(args[:1:1], append([]string{"--socket", d.socket}, args[1:]...)...)
	out, err := d.l.Command(context.Background(), d.ns, natmapBin, args...).CombinedOutput()
	return string(out), err
}

func (d *natmapDaemon) status(t *testing.T) map[string]ctl.MappingStatus {
	t.Helper()
	out, err := d.cli("status", "--json")
	if err != nil {
		t.Fatalf("natmap status --json: %v\n%s", err, out)
	}
	var st struct{ Mappings []ctl.MappingStatus }
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status JSON: %v\n%s", err, out)
	}
	m := map[string]ctl.MappingStatus{}
	for _, s := range st.Mappings {
		m[s.Section] = s
	}
	return m
}

const daemonGlobal = `
config global
	list stun_server '198.51.100.11:3478'
	list stun_server '198.51.100.12:3478'
	option http_server '198.51.100.20'
	option interval '2'
`

func threeSections(fwdPort int) string {
	return daemonGlobal + fmt.Sprintf(`
config natmap 'tcpbind'
	option enable '1'
	option comment 'bind mode'
	option port '40030'
	option notify_script 'NOTIFY'

config natmap 'tcpfwd'
	option enable '1'
	option port '40031'
	option forward_target '127.0.0.1'
	option forward_port '%d'
	option notify_script 'NOTIFY'

config natmap 'udp'
	option enable '1'
	option udp_mode '1'
	option port '40032'
	option notify_script 'NOTIFY'

config natmap 'broken'
	option enable '1'
	option port 'eighty'

config natmap 'off'
	option enable '0'
	option port '40033'
`, fwdPort)
}

// Three sections (TCP bind, TCP forward, UDP) come up and are reachable; a
// broken one is reported while the others run; editing one and reloading
// restarts only that one; restart restarts one.
func TestDaemonSectionsReloadRestart(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConeTranslate)
	bindGreeting := serve(t, l, 40030)
	serveEcho(t, l, l.LAN, "127.0.0.1:9030")
	serveUDP(t, l, l.LAN, "0.0.0.0:40032", true)
	d := startDaemon(t, l, threeSections(9030))

	bind := d.waitSection("tcpbind", 1, 15*time.Second)
	fwd := d.waitSection("tcpfwd", 1, 15*time.Second)
	udp := d.waitSection("udp", 1, 15*time.Second)
	mustReach(t, l, bind.Public(), bindGreeting)
	if got := echoTCP(t, l, fwd.Public(), "through the relay"); got != "through the relay" {
		t.Fatalf("forward section: %q", got)
	}
	if got, err := echoUDP(t, l, udp.Public(), []byte("udp")); err != nil || string(got) != "udp" {
		t.Fatalf("udp section: %q %v", got, err)
	}

	st := d.status(t)
	for name, want := range map[string]mapping.State{"tcpbind": "mapped", "tcpfwd": "mapped", "udp": "mapped", "broken": "error", "off": "disabled"} {
		if st[name].State != want {
			t.Errorf("status of %s: %+v, want state %s", name, st[name], want)
		}
	}
	if b := st["broken"]; !strings.Contains(b.LastError, "option port") {
		t.Errorf("broken section's error %q does not name the option", b.LastError)
	}
	if s := st["tcpbind"]; s.PublicIP != bind.PublicIP || fmt.Sprint(s.PublicPort) != bind.PublicPort || s.Comment != "bind mode" || s.IP4P != bind.IP4P {
		t.Errorf("tcpbind status %+v vs notification %+v", s, bind)
	}
	if s := st["tcpfwd"]; s.Relay == nil || s.Relay.Total < 1 || s.Mode != "forward" {
		t.Errorf("tcpfwd relay counters %+v", s.Relay)
	}
	table, err := d.cli("status")
	if err != nil || !strings.Contains(table, "tcpbind") || !strings.Contains(table, bind.Public().String()) {
		t.Errorf("natmap status table:\n%s %v", table, err)
	}
	// The section's history and counters: one session, mapped once.
	if s := st["tcpbind"]; s.Metrics == nil || s.Metrics.Sessions != 1 || s.Metrics.AddressChanges != 1 ||
		len(s.History) != 1 || s.History[0].State != "mapped" || s.History[0].PublicIP != bind.PublicIP {
		t.Errorf("tcpbind metrics %+v, history %+v", s.Metrics, s.History)
	}
	if detail, err := d.cli("status", "tcpbind"); err != nil || !strings.Contains(detail, "sessions 1, failed 0, addresses 1") ||
		!strings.Contains(detail, "mapped  "+bind.Public().String()) {
		t.Errorf("natmap status tcpbind:\n%s %v", detail, err)
	}

	// Edit the forward section only, and reload.
	serveEcho(t, l, l.LAN, "127.0.0.1:9031")
	d.writeConfig(t, strings.ReplaceAll(threeSections(9031), "NOTIFY", filepath.Join(filepath.Dir(d.notes), "notify.sh")))
	if out, err := d.cli("reload"); err != nil {
		t.Fatalf("natmap reload: %v %s", err, out)
	}
	d.waitLog("restarted=1 unchanged=4", 5*time.Second)
	fwd2 := d.waitSection("tcpfwd", 2, 15*time.Second)
	if got := echoTCP(t, l, fwd2.Public(), "after reload"); got != "after reload" {
		t.Fatalf("forward section after reload: %q", got)
	}
	st2 := d.status(t)
	if st2["tcpbind"].PublicPort != st["tcpbind"].PublicPort || st2["udp"].PublicPort != st["udp"].PublicPort {
		t.Errorf("unchanged sections lost their public port: before %+v %+v after %+v %+v", st["tcpbind"], st["udp"], st2["tcpbind"], st2["udp"])
	}
	if len(d.sectionNotes("tcpbind")) != 1 || len(d.sectionNotes("udp")) != 1 {
		t.Errorf("unchanged sections re-notified")
	}

	if out, err := d.cli("restart", "tcpbind"); err != nil {
		t.Fatalf("natmap restart: %v %s", err, out)
	}
	d.waitLog(`section=tcpbind protocol=tcp`, 5*time.Second)
	if out, err := d.cli("restart", "nosuch"); err == nil || !strings.Contains(out, `no section "nosuch"`) {
		t.Errorf("restart of an unknown section: %v %s", err, out)
	}
}

// The daemon's own address changes (a WAN redial on a router): netlink
// tells the daemon, which re-punches in about a second instead of waiting
// for the 30 s keep-alive.
func TestDaemonRepunchesOnAddressChange(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConeTranslate)
	cfg := strings.Replace(daemonGlobal, "option interval '2'", "option interval '30'", 1) + `
config natmap 'ssh'
	option enable '1'
	option port '40040'
	option notify_script 'NOTIFY'
`
	d := startDaemon(t, l, cfg)
	first := d.waitSection("ssh", 1, 15*time.Second)
	if first.PrivateIP != "10.77.0.2" {
		t.Fatalf("first mapping %+v", first)
	}
	for _, c := range [][]string{
		{"sysctl", "-qw", "net.ipv4.conf.lan0.promote_secondaries=1"},
		{"ip", "addr", "add", "10.77.0.3/24", "dev", "lan0"},
		{"ip", "addr", "del", "10.77.0.2/24", "dev", "lan0"},
		{"ip", "route", "replace", "default", "via", "10.77.0.1"},
	} {
		if out, err := l.Command(context.Background(), l.LAN, c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v %s", c, err, out)
		}
	}
	changed := time.Now()
	second := d.waitSection("ssh", 2, 10*time.Second)
	t.Logf("re-notified %v after the address change: %+v", time.Since(changed).Round(time.Millisecond), second)
	if second.PrivateIP != "10.77.0.3" {
		t.Fatalf("new mapping %+v, want private address 10.77.0.3", second)
	}
	d.waitLog("network changed: re-establishing mappings", time.Second)
}

// A config that cannot be parsed: the daemon says where and keeps the
// running sections; a fixed file reloads.
func TestDaemonBadConfigKeepsRunning(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConePreserve)
	good := daemonGlobal + "\nconfig natmap 'a'\n\toption enable '1'\n\toption port '40050'\n\toption notify_script 'NOTIFY'\n"
	d := startDaemon(t, l, good)
	d.waitSection("a", 1, 15*time.Second)
	script := filepath.Join(filepath.Dir(d.notes), "notify.sh")
	d.writeConfig(t, strings.ReplaceAll(good, "NOTIFY", script)+"\noption orphan 'x\n")
	out, err := d.cli("reload")
	if err == nil || !strings.Contains(out, d.config+":") {
		t.Fatalf("reload of a broken file: %v %s", err, out)
	}
	if st := d.status(t); st["a"].State != "mapped" || st["(config)"].State != "error" {
		t.Fatalf("after a bad reload: %+v", st)
	}
	d.writeConfig(t, strings.ReplaceAll(good, "NOTIFY", script))
	if out, err := d.cli("reload"); err != nil {
		t.Fatalf("reload: %v %s", err, out)
	}
	if st := d.status(t); st["a"].State != "mapped" || len(d.sectionNotes("a")) != 1 {
		t.Fatalf("after the fix: %+v", st)
	}
	// And the CLI says clearly when no daemon runs.
	out2, err := l.Command(context.Background(), l.LAN, natmapBin, "status", "--socket", d.socket+".none").CombinedOutput()
	if err == nil || !strings.Contains(string(out2), "natmap daemon is not running") {
		t.Fatalf("status without a daemon: %v %s", err, out2)
	}
}

// echoTCP sends msg through addr to an echo service and returns the reply.
func echoTCP(t *testing.T, l *lab.Lab, addr interface{ String() string }, msg string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := l.DialFromOutside(ctx, "tcp", addr.String())
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte(msg))
	buf := make([]byte, len(msg))
	n, _ := io.ReadFull(c, buf)
	return string(buf[:n])
}

// Option memory_limit sets the daemon's soft memory limit at the start and
// at each reload that changes it, without restarting any mapping; a bad
// value is a warning and the default (an eighth of the RAM) stays.
func TestDaemonMemoryLimit(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConePreserve)
	conf := func(limit string) string {
		return daemonGlobal + limit + `
config natmap 'web'
	option enable '1'
	option port '40067'
	option notify_script 'NOTIFY'
`
	}
	d := startDaemon(t, l, conf("\toption memory_limit '12'\n"))
	d.waitSection("web", 1, 15*time.Second)
	d.waitLog(`msg="memory limit" mib=12 from=config`, 5*time.Second)
	script := filepath.Join(filepath.Dir(d.notes), "notify.sh")
	for _, c := range []struct{ limit, log string }{
		{"\toption memory_limit '20'\n", `msg="memory limit" mib=20 from=config`},
		{"\toption memory_limit '2'\n", "memory_limit: 2 MiB is not within 4 and 4096"},
		{"", "from=ram"},
	} {
		d.writeConfig(t, strings.ReplaceAll(conf(c.limit), "NOTIFY", script))
		if out, err := d.cli("reload"); err != nil {
			t.Fatalf("natmap reload: %v %s", err, out)
		}
		d.waitLog(c.log, 5*time.Second)
	}
	if n := len(d.sectionNotes("web")); n != 1 {
		t.Errorf("the mapping was notified %d times: a memory limit must not restart it", n)
	}
}
