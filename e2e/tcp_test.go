package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/ip4p"
	"github.com/natmap-go/natmap/internal/lab"
)

// bindArgs is a TCP bind-mode command line for the lab, with a short
// keep-alive interval so tests run in seconds.
func bindArgs(l *lab.Lab, port uint16, extra ...string) []string {
	args := append([]string{"-k", "2", "-h", l.HTTP.String(), "-b", strconv.Itoa(int(port))}, stunArgs(l)...)
	return append(args, extra...)
}

func TestBindModePortPreservingNAT(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConePreserve)
	const port = 40001
	greeting := serve(t, l, port)
	nm := startNatmap(t, l, bindArgs(l, port)...)

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
	greeting := serve(t, l, port)
	nm := startNatmap(t, l, bindArgs(l, port)...)

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
	greeting := serve(t, l, port)
	nm := startNatmap(t, l, bindArgs(l, port)...)
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
	greeting := serve(t, l, port)
	nm := startNatmap(t, l, bindArgs(l, port)...)
	n := nm.waitNotification(1, 15*time.Second)

	l.DropHTTP()
	nm.waitLog("mapping lost", 5*time.Second)
	nm.waitLog("mapping re-established, unchanged", 10*time.Second)
	if got := len(nm.notifications()); got != 1 {
		t.Fatalf("%d notifications, want 1: the mapping did not change", got)
	}
	mustReach(t, l, n.Public(), greeting)
}

// The first STUN server is down: the second one answers.
func TestSTUNFailover(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConePreserve)
	l.StopSTUN(0)
	const port = 40005
	greeting := serve(t, l, port)
	nm := startNatmap(t, l, bindArgs(l, port)...)
	n := nm.waitNotification(1, 15*time.Second)
	if n.PublicPort != "40005" {
		t.Fatalf("script got %+v", n)
	}
	nm.waitLog("STUN server failed", time.Second)
	nm.waitLog("stun="+l.STUN[1].String(), time.Second)
	mustReach(t, l, n.Public(), greeting)
}

// Under a symmetric NAT the two STUN servers see two different public
// ports: natmap says the NAT is not full cone and notifies nothing.
func TestSymmetricNATFailsClearly(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.Symmetric)
	const port = 40006
	serve(t, l, port)
	nm := startNatmap(t, l, bindArgs(l, port)...)
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
	greeting := serve(t, l, port)
	nm := startNatmap(t, l, bindArgs(l, port)...)
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
	serve(t, l, port)
	nm := startNatmap(t, l, bindArgs(l, port)...)
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
