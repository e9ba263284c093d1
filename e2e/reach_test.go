package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/ctl"
	"github.com/natmap-go/natmap/internal/testkit/lab"
	"github.com/natmap-go/natmap/internal/testkit/wait"
)

// udpArgs is a UDP bind-mode command line for the lab.
func udpArgs(port uint16, interval int, extra ...string) []string {
	return append([]string{"-u", "-k", strconv.Itoa(interval), "-b", strconv.Itoa(int(port))}, extra...)
}

// waitVerdict waits for natmap's reachability verdict in its log and
// returns that log line.
func waitVerdict(t *testing.T, nm *natmap, want string, within time.Duration) string {
	t.Helper()
	nm.waitLog(want, within)
	for _, line := range strings.Split(nm.stderr.String(), "\n") {
		if strings.Contains(line, want) {
			return line
		}
	}
	return ""
}

// Behind a full cone, the lab's port checker reaches the service through
// the reported address, over TCP and UDP, and natmap says so.
func TestReachFullConeVerified(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConePreserve)
	pc := l.StartPortChecker(t)
	const tcpPort, udpPort = 40101, 40102
	serve(t, l, tcpPort)
	serveUDP(t, l, l.LAN, fmt.Sprintf("0.0.0.0:%d", udpPort), true)
	tcp := startNatmap(t, l, bindArgs(l, tcpPort, "--reachability-url", pc.URL)...)
	udp := startNatmap(t, l, udpArgs(udpPort, 2, "-s", l.STUN[1].String(), "--reachability-url="+pc.URL)...)

	for _, nm := range []*natmap{tcp, udp} {
		nm.waitNotification(1, 15*time.Second)
		if line := waitVerdict(t, nm, "reachable (verified ", 30*time.Second); !strings.Contains(line, "port-check") {
			t.Errorf("verdict %q", line)
		}
	}
	// The second checks, late in an interval, find it open too.
	wait.For(t, 30*time.Second, "4 port checks", func() bool { all, _ := pc.Checks(); return all >= 4 })
	if all, yes := pc.Checks(); yes != all {
		t.Errorf("port checker: %d checks, %d reached", all, yes)
	}
	for _, nm := range []*natmap{tcp, udp} {
		if strings.Contains(nm.stderr.String(), "NOT reachable") {
			t.Errorf("warned behind a full cone:\n%s", nm.stderr.String())
		}
	}
}

// Behind a restricted cone, natmap still notifies, and warns: through RFC
// 5780's filtering test when a STUN server supports it, through the port
// checker (which really cannot get in) when none does.
func TestReachRestrictedConeWarned(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.RestrictedCone)
	pc := l.StartPortChecker(t)
	const tcpPort, udpPort = 40111, 40112
	serve(t, l, tcpPort)
	serveUDP(t, l, l.LAN, fmt.Sprintf("0.0.0.0:%d", udpPort), true)
	tcp := startNatmap(t, l, bindArgs(l, tcpPort)...) // STUN[0] supports RFC 5780
	udp := startNatmap(t, l, udpArgs(udpPort, 2, "-s", l.STUN[1].String(), "--reachability-url", pc.URL)...)

	tcp.waitNotification(1, 15*time.Second)
	if line := waitVerdict(t, tcp, "NOT reachable from outside", 30*time.Second); !strings.Contains(line, "method=rfc5780") || !strings.Contains(line, "restricted cone") {
		t.Errorf("TCP verdict %q", line)
	}
	udp.waitNotification(1, 15*time.Second)
	if line := waitVerdict(t, udp, "NOT reachable from outside", 30*time.Second); !strings.Contains(line, "method=port-check") {
		t.Errorf("UDP verdict %q", line)
	}
	if all, yes := pc.Checks(); all < 1 || yes != 0 {
		t.Errorf("port checker: %d checks, %d reached", all, yes)
	}
}

// Behind a symmetric NAT with one STUN server (so natmap cannot see the
// mapping depend on the destination), the port checker finds the address
// dead and natmap warns.
func TestReachSymmetricWarned(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.Symmetric)
	pc := l.StartPortChecker(t)
	const port = 40121
	serve(t, l, port)
	nm := startNatmap(t, l, "-k", "2", "-h", l.HTTP.String(), "-b", strconv.Itoa(port), "-s", l.STUN[1].String(), "--reachability-url", pc.URL)
	nm.waitNotification(1, 15*time.Second)
	if line := waitVerdict(t, nm, "NOT reachable from outside", 30*time.Second); !strings.Contains(line, "method=port-check") {
		t.Errorf("verdict %q", line)
	}
}

// A NAT that forgets an idle mapping in 2 s, with keep-alives every 8 s:
// right after the keep-alive the address works, three quarters of an
// interval later it is dead, and natmap warns (TCP and UDP).
func TestReachIdleTimeoutWarned(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConePreserve, lab.MappingTimeout(2*time.Second))
	pc := l.StartPortChecker(t)
	const tcpPort, udpPort = 40131, 40132
	serve(t, l, tcpPort)
	serveUDP(t, l, l.LAN, fmt.Sprintf("0.0.0.0:%d", udpPort), true)
	tcp := startNatmap(t, l, "-k", "8", "-h", l.HTTP.String(), "-b", strconv.Itoa(tcpPort), "-s", l.STUN[1].String(), "--reachability-url", pc.URL)
	udp := startNatmap(t, l, udpArgs(udpPort, 8, "-s", l.STUN[1].String(), "--reachability-url", pc.URL)...)
	for _, nm := range []*natmap{tcp, udp} {
		nm.waitNotification(1, 15*time.Second)
		waitVerdict(t, nm, "reachable (verified ", 30*time.Second) // fresh: it works
		if line := waitVerdict(t, nm, "NOT reachable from outside", 30*time.Second); !strings.Contains(line, "forgets the mapping") {
			t.Errorf("verdict %q", line)
		}
	}
}

// natmap check --reachability-url has the lab's port checker connect back
// to the port it holds, right after the STUN queries made the mapping.
func TestCheckReachability(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		kind lab.Kind
		udp  bool
		code int
		want string
	}{
		{"FullCone/tcp", lab.FullConePreserve, false, 0, "reach:     reachable (verified "},
		{"FullCone/udp", lab.FullConePreserve, true, 0, "reach:     reachable (verified "},
		{"RestrictedCone/udp", lab.RestrictedCone, true, 3, "reach:     NOT reachable from outside: the port checker could not reach"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			l := lab.New(t, c.kind)
			pc := l.StartPortChecker(t)
			// STUN server 1 twice: it cannot run RFC 5780's test, so the
			// port checker decides; two answers tell the mapping.
			args := []string{"check", "-s", l.STUN[1].String(), "-s", l.STUN[1].String(), "--reachability-url", pc.URL}
			if c.udp {
				args = append(args, "-u")
			}
			var out strings.Builder
			code := natmapExit(t, l, l.LAN, &out, &out, args...)
			if code != c.code || !strings.Contains(out.String(), c.want) || !strings.Contains(out.String(), "port-check") && c.code == 0 {
				t.Errorf("exit status %d, want %d; output lacks %q?\n%s", code, c.code, c.want, out.String())
			}
			if all, _ := pc.Checks(); all != 1 {
				t.Errorf("%d port checks, want 1", all)
			}
		})
	}
}

// The daemon runs the check for a section with option reachability_url,
// and natmap status shows the verdict: verified for the TCP section behind
// a full cone, and, below the table, the same sentence.
func TestDaemonStatusReach(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConePreserve)
	pc := l.StartPortChecker(t)
	serve(t, l, 40141)
	d := startDaemon(t, l, daemonGlobal+`
config natmap 'web'
	option enable '1'
	option port '40141'
	option reachability_url '`+pc.URL+`'
	option notify_script 'NOTIFY'
`)
	d.waitSection("web", 1, 20*time.Second)
	var reach *ctl.Reach
	if !wait.Until(30*time.Second, func() bool {
		reach = d.status(t)["web"].Reach
		return reach != nil && reach.State == "reachable"
	}) {
		t.Fatalf("no reachability verdict in 30 s: %+v", reach)
	}
	if r := reach; r.Method != "port-check" || r.Verified == 0 || !strings.HasPrefix(r.Summary, "reachable (verified ") {
		t.Fatalf("reach %+v", r)
	}
	table, err := d.cli("status")
	if err != nil || !strings.Contains(table, "\nweb: reachable (verified ") {
		t.Errorf("natmap status:\n%s %v", table, err)
	}
}
