package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/testkit/lab"
	"github.com/natmap-go/natmap/internal/testkit/wait"
)

// homeService builds a lab whose LAN is a home router running miniupnpd
// (upd), with a service on port behind it that greets with greeting.
func homeService(t *testing.T, upd lab.MiniUPnPd, port uint16, greeting string) (*lab.Lab, *lab.Home) {
	t.Helper()
	l := lab.New(t, lab.FullConePreserve)
	h := l.AddHomeRouter()
	h.StartMiniUPnPd(upd)
	ln, err := l.Listen(h.NS, "tcp4", fmt.Sprintf("0.0.0.0:%d", port), true)
	if err != nil {
		t.Fatal(err)
	}
	greet(t, ln, greeting)
	return l, h
}

// Issue 13: a double NAT. natmap runs on a host behind a home router
// (masquerade, miniupnpd) behind the ISP's full-cone NAT. With --upnp it
// asks the home router to forward the bind port, so an outside client
// reaches the service at the address natmap reported; the mapping comes
// back after miniupnpd restarts (losing its forwards), and is deleted when
// natmap stops. Without --upnp (the C natmap's behaviour) the reported
// address is dead.
func TestDoubleNAT(t *testing.T) {
	lab.RequireMiniUPnPd(t)
	for _, tc := range []struct {
		name, method string
		upd          lab.MiniUPnPd
	}{
		{"upnp", "upnp", lab.MiniUPnPd{UPnP: true}},
		{"pcp", "pcp", lab.MiniUPnPd{NATPMP: true}}, // natmap asks PCP first; NAT-PMP and PCP come together in miniupnpd
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const port, greeting = 40130, "hello from behind two NATs\n"
			l, h := homeService(t, tc.upd, port, greeting)

			nm := startIn(t, l, h.NS, natmapBin, bindArgs(l, port, "--upnp", "on")...)
			n := nm.waitNotification(1, 30*time.Second)
			want := netip.AddrPortFrom(l.PublicAddr, port)
			if n.Public() != want {
				t.Fatalf("notified %s, want %s", n.Public(), want)
			}
			nm.waitLog("method="+tc.method, 5*time.Second)
			mustReach(t, l, want, greeting)

			// miniupnpd restarts and forgets its forwards: the next renewal
			// (every 5 s here) re-creates the mapping.
			h.StartMiniUPnPd(tc.upd)
			if fw, _ := h.Forwards(context.Background()); strings.Contains(fw, "dnat") {
				t.Fatalf("miniupnpd kept its forwards over a restart:\n%s", fw)
			}
			waitReach(t, l, want, greeting, 60*time.Second)

			nm.stop()
			if fw, _ := h.Forwards(context.Background()); strings.Contains(fw, "dnat") {
				t.Fatalf("natmap left its forward on the router after it stopped:\n%s", fw)
			}
			if got, err := reach(t, l, want); err == nil && got == greeting {
				t.Fatal("still reachable after natmap stopped")
			}
		})
	}
}

// Without --upnp, natmap does as the C natmap: it reports the address the
// outer NAT maps, which is dead behind the home router's masquerade.
func TestDoubleNATWithoutUPnP(t *testing.T) {
	lab.RequireMiniUPnPd(t)
	t.Parallel()
	const port, greeting = 40131, "hello\n"
	l, h := homeService(t, lab.MiniUPnPd{UPnP: true, NATPMP: true}, port, greeting)
	nm := startIn(t, l, h.NS, natmapBin, bindArgs(l, port)...)
	n := nm.waitNotification(1, 30*time.Second)
	if got, err := reach(t, l, n.Public()); err == nil && got == greeting {
		t.Fatal("reachable without a forward on the home router: the lab's home router is no NAT")
	}
	if fw, _ := h.Forwards(context.Background()); strings.Contains(fw, "dnat") {
		t.Fatalf("natmap asked the router without --upnp:\n%s", fw)
	}
}

// --upnp auto where the gateway speaks none of the protocols (the lab's
// NAT): natmap says so and maps as usual.
func TestUPnPAutoWithoutRouter(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConePreserve)
	const port = 40132
	nm, greeting := startBindMode(t, l, port, "--upnp", "auto")
	n := nm.waitNotification(1, 30*time.Second)
	mustReach(t, l, n.Public(), greeting)
	nm.waitLog("no router in front forwards the port", time.Second)
}

// waitReach waits until an outside client reaches addr.
func waitReach(t *testing.T, l *lab.Lab, addr netip.AddrPort, want string, within time.Duration) {
	t.Helper()
	var got string
	var err error
	if !wait.Until(within, func() bool {
		got, err = reach(t, l, addr)
		return err == nil && got == want
	}) {
		t.Fatalf("%s not reachable again within %v: %q %v", addr, within, got, err)
	}
}

// natmap check names the router in front and what it offers.
func TestCheckRouterInFront(t *testing.T) {
	lab.RequireMiniUPnPd(t)
	t.Parallel()
	l := lab.New(t, lab.FullConePreserve)
	h := l.AddHomeRouter()
	h.StartMiniUPnPd(lab.MiniUPnPd{UPnP: true, NATPMP: true})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, _ := l.Command(ctx, h.NS, natmapBin, append([]string{"check"}, stunArgs(l)...)...).CombinedOutput()
	for _, want := range []string{
		"double NAT: the router in front (gateway 192.168.77.1) is behind 10.77.0.1, a private address",
		"pcp      offered", "nat-pmp  offered", "upnp     offered urn:schemas-upnp-org:service:WANIPConnection:",
		"natmap --upnp auto|on",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	jout, _ := l.Command(ctx, h.NS, natmapBin, append([]string{"check", "--json"}, stunArgs(l)...)...).Output()
	if !strings.Contains(string(jout), `"gateway": "192.168.77.1"`) || !strings.Contains(string(jout), `"offered": true`) || !strings.Contains(string(jout), `"double_nat": true`) {
		t.Errorf("JSON report:\n%s", jout)
	}
}

// The daemon asks the router in front by default (UCI option upnp unset:
// auto), and its status says which protocol holds the port until when.
func TestDaemonDoubleNAT(t *testing.T) {
	lab.RequireMiniUPnPd(t)
	t.Parallel()
	const port, greeting = 40133, "hello from the daemon's section\n"
	l, h := homeService(t, lab.MiniUPnPd{UPnP: true, NATPMP: true}, port, greeting)
	d := startDaemonIn(t, l, h.NS, daemonGlobal+fmt.Sprintf(`
config natmap 'web'
	option enable '1'
	option port '%d'
	option notify_script 'NOTIFY'
`, port))
	n := d.waitSection("web", 1, 30*time.Second)
	mustReach(t, l, n.Public(), greeting)
	st := d.status(t)["web"]
	if st.Front != "pcp" || time.Unix(st.FrontLeaseEnd, 0).Before(time.Now().Add(30*time.Minute)) {
		t.Fatalf("status: front %q until %v", st.Front, time.Unix(st.FrontLeaseEnd, 0))
	}
	out, _ := d.cli("status")
	if !strings.Contains(out, "tcp via pcp to ") {
		t.Errorf("status table:\n%s", out)
	}
}
