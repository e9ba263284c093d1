package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/ip4p"
	"github.com/natmap-go/natmap/internal/testkit/lab"
)

// bindArgs is a TCP bind-mode command line for the lab, with a short
// keep-alive interval so tests run in seconds.
func bindArgs(l *lab.Lab, port uint16, extra ...string) []string {
	args := append([]string{"-k", "2", "-h", l.HTTP.String(), "-b", strconv.Itoa(int(port))}, stunArgs(l)...)
	return append(args, extra...)
}

// startBindMode starts what most bind-mode tests start in their lab: the
// lab's service on port in its LAN, and natmap mapping the port with
// bindArgs and extra; it returns natmap and the service's greeting.
func startBindMode(t *testing.T, l *lab.Lab, port uint16, extra ...string) (*natmap, string) {
	t.Helper()
	greeting := serve(t, l, port)
	return startNatmap(t, l, bindArgs(l, port, extra...)...), greeting
}

func TestBindModePortPreservingNAT(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConePreserve)
	const port = 40001
	nm, greeting := startBindMode(t, l, port)

	n := nm.waitNotification(1, 15*time.Second)
	want := notification{
		PublicIP: l.PublicAddr.String(), PublicPort: "40001",
		IP4P:        ip4p.Format(n.Public()),
		PrivatePort: "40001", Protocol: "tcp", PrivateIP: l.LANAddr.String(),
	}
	if n != want {
		t.Fatalf("script got %+v, want %+v", n, want)
	}
	if n.IP4P != "2001::9c41:c633:6401" { // 40001 = 0x9c41, 198.51.100.1
		t.Fatalf("IP4P %q", n.IP4P)
	}
	mustReach(t, l, n.Public(), greeting)
	nm.waitLog("mapping up", time.Second)

	// The keep-alive keeps going and nothing is re-notified while the
	// mapping stays the same.
	before := l.HTTPRequests()
	time.Sleep(5 * time.Second)
	if got := l.HTTPRequests() - before; got < 2 {
		t.Fatalf("%d keep-alive requests in 5s with -k 2", got)
	}
	if got := len(nm.notifications()); got != 1 {
		t.Fatalf("%d notifications for one unchanged mapping", got)
	}
	mustReach(t, l, n.Public(), greeting)
}

func TestBindModePortTranslatingNAT(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConeTranslate)
	const port = 40002
	nm, greeting := startBindMode(t, l, port)

	n := nm.waitNotification(1, 15*time.Second)
	if n.PublicPort == "40002" || n.PrivatePort != "40002" || n.PublicIP != l.PublicAddr.String() {
		t.Fatalf("port-translating NAT: script got %+v, want the translated public port", n)
	}
	mustReach(t, l, n.Public(), greeting)
}

// When the NAT forgets every mapping, natmap notices within one keep-alive
// interval and notifies the new mapping, without a restart (the C natmap
// takes ~135 s here).
func TestRecoversWhenNATForgetsMappings(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConeTranslate)
	const port = 40003
	nm, greeting := startBindMode(t, l, port)
	first := nm.waitNotification(1, 15*time.Second)
	mustReach(t, l, first.Public(), greeting)

	if err := l.ForgetMappings(); err != nil {
		t.Fatal(err)
	}
	forgot := time.Now()
	second := nm.waitNotification(2, 15*time.Second)
	took := time.Since(forgot)
	t.Logf("new mapping %s -> %s notified %v after the NAT forgot", first.Public(), second.Public(), took.Round(time.Millisecond))
	if second.Public() == first.Public() {
		t.Fatalf("re-notified the same mapping %s", first.Public())
	}
	if took > 2*time.Second+5*time.Second {
		t.Fatalf("took %v to recover with a 2 s interval", took)
	}
	mustReach(t, l, second.Public(), greeting)
	if nm.cmd.ProcessState != nil {
		t.Fatal("natmap restarted")
	}
}

// The keep-alive server drops the connection: natmap reconnects from the
// same port, the mapping stays, and no script runs again.
func TestKeepaliveServerDropped(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConePreserve)
	const port = 40004
	nm, greeting := startBindMode(t, l, port)
	n := nm.waitNotification(1, 15*time.Second)

	l.DropHTTP()
	nm.waitLog("mapping lost", 5*time.Second)
	nm.waitLog("mapping re-established, unchanged", 10*time.Second)
	if got := len(nm.notifications()); got != 1 {
		t.Fatalf("%d notifications, want 1: the mapping did not change", got)
	}
	mustReach(t, l, n.Public(), greeting)
}

// A keep-alive server that closes every connection: natmap says so once
// and backs off (1 s, 2 s, 4 s, ... up to the interval) instead of losing
// and re-establishing the mapping every second; no script runs again.
func TestKeepaliveServerClosesEveryConnection(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConePreserve)
	l.CloseHTTPConnections()
	const port = 40041
	nm, greeting := startBindMode(t, l, port, "-k", "6")
	n := nm.waitNotification(1, 15*time.Second)
	start := l.HTTPRequests()
	time.Sleep(12 * time.Second)
	// Sessions at about 0, 1, 3, 7 and 13 s: without backoff, 12 or more.
	if got := l.HTTPRequests() - start; got > 7 {
		t.Errorf("%d keep-alive connections in 12 s: no backoff", got)
	}
	log := nm.stderr.String()
	if c := strings.Count(log, "keeps closing the connection"); c != 1 {
		t.Errorf("the problem was said %d times, want once", c)
	}
	if c := strings.Count(log, "mapping lost"); c > 1 {
		t.Errorf(`"mapping lost" logged %d times`, c)
	}
	if got := len(nm.notifications()); got != 1 {
		t.Errorf("%d notifications, want 1: the mapping did not change", got)
	}
	mustReach(t, l, n.Public(), greeting)
}

// The first STUN server is down: the second one answers.
func TestSTUNFailover(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConePreserve)
	l.StopSTUN(0)
	const port = 40005
	nm, greeting := startBindMode(t, l, port)
	n := nm.waitNotification(1, 15*time.Second)
	if n.PublicPort != "40005" {
		t.Fatalf("script got %+v", n)
	}
	nm.waitLog("STUN server failed", time.Second)
	nm.waitLog("stun="+l.STUN[1].String(), time.Second)
	mustReach(t, l, n.Public(), greeting)
}

// The first STUN server drops every packet (a timeout, not a refusal):
// the first session does not wait out its 6 s timeout once the second has
// answered, the next session asks the second first and the first not at
// all, and once the first answers again natmap goes back to it.
func TestSTUNFailoverTimeout(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConePreserve)
	l.SilenceSTUN(0)
	const port = 40042
	greeting := serve(t, l, port)
	start := time.Now()
	nm := startNatmap(t, l, bindArgs(l, port, "-k", "6")...)
	n := nm.waitNotification(1, 15*time.Second)
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("first notification after %v: waited for the silent server", took)
	}
	mustReach(t, l, n.Public(), greeting)

	// A new session: asks the server that answered, at once.
	l.DropHTTP()
	nm.waitLog("mapping lost", 5*time.Second)
	lost := time.Now()
	nm.waitLog("mapping re-established, unchanged", 10*time.Second)
	reestablished := time.Now()
	if took := time.Since(lost); took > 3*time.Second {
		t.Errorf("new session took %v after a 1 s pause: it waited for the silent server", took)
	}
	if !strings.Contains(nm.stderr.String(), `msg="mapping re-established, unchanged" public=198.51.100.1:40042 private=10.77.0.2:40042 stun=`+l.STUN[1].String()) {
		t.Errorf("the new session did not use the server that answered")
	}

	// The first server is back: natmap rechecks it in the background and
	// goes back to it.
	l.UnsilenceSTUN(0)
	nm.waitLog("STUN server answers again", 20*time.Second)
	// Two sessions in a row shorter than the interval would look like a
	// keep-alive server that closes every connection (logged at debug).
	time.Sleep(time.Until(reestablished.Add(7 * time.Second)))
	before := len(nm.stderr.String())
	l.DropHTTP()
	nm.waitLog("mapping lost", 5*time.Second)
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(nm.stderr.String()[before:], "unchanged"); {
		if time.Now().After(deadline) {
			t.Fatal("not re-established")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(nm.stderr.String()[before:], "stun="+l.STUN[0].String()) {
		t.Errorf("did not go back to the first server")
	}
	if got := len(nm.notifications()); got != 1 {
		t.Errorf("%d notifications, want 1", got)
	}
}

// Under a symmetric NAT the two STUN servers see two different public
// ports: natmap says the NAT is not full cone and notifies nothing.
func TestSymmetricNATFailsClearly(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.Symmetric)
	const port = 40006
	nm, _ := startBindMode(t, l, port)
	nm.waitLog("NAT is not full cone", 15*time.Second)
	log := nm.stderr.String()
	for _, s := range l.STUN {
		if !strings.Contains(log, s.String()) {
			t.Errorf("the diagnosis does not name STUN server %s:\n%s", s, log)
		}
	}
	time.Sleep(3 * time.Second) // and it keeps saying so, never notifying
	if got := nm.notifications(); len(got) != 0 {
		t.Fatalf("notified an unreachable mapping: %+v", got)
	}
}

// Under a symmetric NAT with one STUN server, each check sees a new public
// port: natmap notifies the first address and one change (a NAT that
// forgot its mappings looks the same), then says the NAT maps per
// destination and notifies nothing more, retrying once an interval.
func TestSymmetricNATOneSTUNServer(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.Symmetric)
	const port = 40043
	serve(t, l, port)
	nm := startNatmap(t, l, "-k", "2", "-h", l.HTTP.String(), "-b", strconv.Itoa(port), "-s", l.STUN[0].String())
	nm.waitLog("it maps per destination", 20*time.Second)
	diagnosed := len(nm.notifications())
	if diagnosed > 2 {
		t.Errorf("%d notifications before the diagnosis, want at most 2", diagnosed)
	}
	// Six intervals: without the diagnosis, six more notifications.
	time.Sleep(12 * time.Second)
	if got := len(nm.notifications()); got != diagnosed {
		t.Errorf("%d notifications after the diagnosis", got-diagnosed)
	}
	log := nm.stderr.String()
	if c := strings.Count(log, "it maps per destination"); c < 2 {
		t.Errorf("the diagnosis was said %d times in 12 s: not retrying", c)
	} else if c > 5 {
		t.Errorf("the diagnosis was said %d times in 12 s with -k 2: not retrying slowly", c)
	}
}

// -b 0: the kernel picks the port, and natmap keeps it when the session is
// re-established.
func TestKernelPickedPortIsKept(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConePreserve)
	nm := startNatmap(t, l, bindArgs(l, 0)...)
	n := nm.waitNotification(1, 15*time.Second)
	if n.PrivatePort == "0" || n.PublicPort != n.PrivatePort {
		t.Fatalf("script got %+v", n)
	}
	l.DropHTTP()
	nm.waitLog("mapping re-established, unchanged", 10*time.Second)
	if !strings.Contains(nm.stderr.String(), fmt.Sprintf("port=%s", n.PrivatePort)) {
		t.Fatalf("retry did not keep port %s", n.PrivatePort)
	}
}

// The NAT forgets every mapping and drops the packets of the connections it
// no longer tracks (no reset reaches either end): the case where the C
// natmap loops on EADDRNOTAVAIL for minutes. The next STUN check, from a
// fresh connection, sees the new mapping within one interval.
func TestRecoversWhenNATForgetsSilently(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConeTranslate, lab.StrictTCP())
	const port = 40007
	nm, greeting := startBindMode(t, l, port)
	first := nm.waitNotification(1, 15*time.Second)
	if err := l.ForgetMappings(); err != nil {
		t.Fatal(err)
	}
	forgot := time.Now()
	second := nm.waitNotification(2, 15*time.Second)
	took := time.Since(forgot)
	t.Logf("new mapping %s -> %s notified %v after the NAT forgot", first.Public(), second.Public(), took.Round(time.Millisecond))
	if took > 2*time.Second+time.Second {
		t.Fatalf("took %v to notify with a 2 s interval", took)
	}
	mustReach(t, l, second.Public(), greeting)
	// The keep-alive, dead since, is replaced; the mapping stays and is not
	// notified again.
	nm.waitLog("mapping re-established, unchanged", 10*time.Second)
	if n := nm.notifications(); len(n) != 2 {
		t.Fatalf("%d notifications", len(n))
	}
	mustReach(t, l, second.Public(), greeting)
}

// -d: natmap detaches (the command returns at once) and keeps working.
func TestDaemonizeFlag(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConePreserve)
	greeting := serve(t, l, 40008)
	nm := startNatmap(t, l, bindArgs(l, 40008, "-d")...)
	select {
	case <-nm.done:
	case <-time.After(5 * time.Second):
		t.Fatal("natmap -d did not return")
	}
	if !nm.cmd.ProcessState.Success() {
		t.Fatalf("natmap -d exited with %v", nm.cmd.ProcessState)
	}
	// The detached natmap is the one process whose command line has "-e"
	// and this test's notify script (the script and the helper running it
	// name it too, without "-e"); stop it at the end.
	pid := findProcess(t, "-e\x00"+nm.notes[:len(nm.notes)-len("notes")]+"notify.sh")
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGTERM) })
	n := nm.waitNotificationDetached(1, 15*time.Second)
	mustReach(t, l, n.Public(), greeting)
}

// A restricted-cone NAT maps like a full cone, so STUN alone sees nothing
// wrong; but outside clients are filtered. natmap probes the filtering with
// the RFC 5780 STUN server and says so; the address is still published (the
// probe runs over UDP and a server's second address can be unreachable, so
// it warns rather than refuses).
func TestRestrictedConeDiagnosed(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.RestrictedCone)
	const port = 40009
	nm, _ := startBindMode(t, l, port)
	n := nm.waitNotification(1, 15*time.Second)
	nm.waitLog("NAT is not full cone: its filtering is address-dependent (restricted cone)", 15*time.Second)
	if _, err := reach(t, l, n.Public()); err == nil {
		t.Fatal("the outside client reached a restricted-cone mapping: the lab NAT does not filter")
	}
}

// Behind a full cone the probe confirms it.
func TestFullConeConfirmed(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConeTranslate)
	nm := startNatmap(t, l, bindArgs(l, 40011)...)
	nm.waitNotification(1, 15*time.Second)
	nm.waitLog("NAT filtering is endpoint-independent: a full cone", 15*time.Second)
	if strings.Contains(nm.stderr.String(), "NAT is not full cone") {
		t.Fatal("full cone reported as not full cone")
	}
}
