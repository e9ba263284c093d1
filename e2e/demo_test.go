package e2e

import (
	"os"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/testkit/lab"
)

// TestDemo is `make demo`: natmap behind a port-translating full-cone NAT,
// shown step by step. It runs only when asked (NATMAP_DEMO=1).
func TestDemo(t *testing.T) {
	if os.Getenv("NATMAP_DEMO") == "" {
		t.Skip("set NATMAP_DEMO=1 (make demo)")
	}
	l := lab.New(t, lab.FullConeTranslate)
	t.Logf("lab: service host %s behind NAT %s; STUN %v; keep-alive server %s; outside client %s",
		l.LANAddr, l.PublicAddr, l.STUN, l.HTTP, l.ClientAddr)
	const port = 8080
	greeting := serve(t, l, port)
	args := bindArgs(l, port)
	t.Logf("running in the lan namespace: natmap %v -e notify.sh", args)
	nm := startNatmap(t, l, args...)
	n := nm.waitNotification(1, 15*time.Second)
	t.Logf("notify script ran with: %s %s %s %s %s %s", n.PublicIP, n.PublicPort, n.IP4P, n.PrivatePort, n.Protocol, n.PrivateIP)
	got, err := reach(t, l, n.Public())
	if err != nil || got != greeting {
		t.Fatalf("outside client could not reach %s: %q %v", n.Public(), got, err)
	}
	t.Logf("outside client %s connected to %s and read: %q", l.ClientAddr, n.Public(), got)
}
