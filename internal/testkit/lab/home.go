package lab

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/testkit/testgate"
)

// A home router in front of the lab's NAT: a double NAT, as when an
// OpenWrt router sits behind the ISP's box.
//
//	host (192.168.77.2) --home0-- lan (192.168.77.1 | 10.77.0.2) --lan0-- nat --wan0-- inet
//
// The lab's lan namespace becomes the home router: it forwards and
// masquerades (plain Linux masquerade: endpoint-dependent filtering, no
// inbound traffic but replies and what miniupnpd forwards). natmap runs in
// the new host namespace. The router's nftables table is the one
// miniupnpd-nftables expects ("table inet filter" with the chains
// miniupnpd, prerouting_miniupnpd and postrouting_miniupnpd), created
// beforehand as miniupnpd needs.
type Home struct {
	NS         string     // the host namespace behind the home router
	HostAddr   netip.Addr // natmap's address (192.168.77.2)
	RouterAddr netip.Addr // the home router, the host's default gateway (192.168.77.1)
	Router     string     // the router's namespace (the lab's LAN)

	l   *Lab
	dir string

	mu  sync.Mutex // guards upd
	upd *exec.Cmd  // the running miniupnpd
}

var (
	homeHostAddr   = netip.MustParseAddr("192.168.77.2")
	homeRouterAddr = netip.MustParseAddr("192.168.77.1")
)

const homeIf = "home0"

const homeRuleset = `table inet filter {
	chain forward {
		type filter hook forward priority 0; policy accept;
		jump miniupnpd
	}
	chain miniupnpd {
	}
	chain prerouting {
		type nat hook prerouting priority -100; policy accept;
		jump prerouting_miniupnpd
	}
	chain postrouting {
		type nat hook postrouting priority 100; policy accept;
		jump postrouting_miniupnpd
		oifname "` + lanIf + `" masquerade
	}
	chain prerouting_miniupnpd {
	}
	chain postrouting_miniupnpd {
	}
}
`

// AddHomeRouter turns the lab's lan namespace into a home router with a
// host behind it, and tears the host namespace down in t.Cleanup.
func (l *Lab) AddHomeRouter() *Home {
	l.t.Helper()
	h := &Home{NS: l.LAN + "-host", HostAddr: homeHostAddr, RouterAddr: homeRouterAddr, Router: l.LAN, l: l, dir: l.t.TempDir()}
	l.t.Cleanup(h.close)
	if err := h.setup(); err != nil {
		l.t.Fatalf("lab: home router: %v", err)
	}
	return h
}

func (h *Home) setup() error {
	root := fmt.Sprintf("netns add %[1]s\nlink add %[3]s netns %[1]s index 20 type veth peer name %[3]s netns %[2]s index 21\n", h.NS, h.Router, homeIf)
	if err := run("", root, "ip", "-batch", "-"); err != nil {
		return err
	}
	host := fmt.Sprintf("link set lo up\naddr add %s/24 dev %s\nlink set %[2]s up\nroute add default via %s\n", h.HostAddr, homeIf, h.RouterAddr)
	if err := run(h.NS, host, "ip", "-batch", "-"); err != nil {
		return err
	}
	router := fmt.Sprintf("addr add %s/24 dev %s\nlink set %[2]s up\n", h.RouterAddr, homeIf)
	if err := run(h.Router, router, "ip", "-batch", "-"); err != nil {
		return err
	}
	if err := h.l.Do(h.Router, func() error { return writeSysctls(map[string]string{"ipv4/ip_forward": "1"}) }); err != nil {
		return err
	}
	return run(h.Router, homeRuleset, "nft", "-f", "-")
}

func (h *Home) close() {
	h.StopMiniUPnPd()
	if _, err := os.Stat("/var/run/netns/" + h.NS); err == nil {
		if err := run("", "", "ip", "netns", "del", h.NS); err != nil {
			h.l.t.Errorf("lab: teardown: %v", err)
		}
	}
}

// RequireMiniUPnPd skips the test (fails it with CI=true) without
// miniupnpd (Debian: miniupnpd-nftables).
func RequireMiniUPnPd(t testing.TB) {
	t.Helper()
	testgate.Netns(t, "miniupnpd", "miniupnpd")
}

// MiniUPnPd selects what the router's miniupnpd offers.
type MiniUPnPd struct {
	UPnP   bool // UPnP IGD (SSDP and SOAP)
	NATPMP bool // NAT-PMP and PCP (miniupnpd enables them together)
	// MinPort, when not 0, makes it refuse external ports below it (its
	// permission rules): UPnP fails, PCP and NAT-PMP offer MinPort instead.
	// (miniupnpd stays silent when no port at all, or none above the asked
	// one, is allowed: it tries every port up to 65535.)
	MinPort uint16
}

// StartMiniUPnPd starts miniupnpd on the home router (stopping one that
// runs), and waits until it has learnt by STUN that the lab's NAT is full
// cone, so that it forwards. It is stopped at cleanup.
func (h *Home) StartMiniUPnPd(c MiniUPnPd) {
	t := h.l.t
	t.Helper()
	h.StopMiniUPnPd()
	yes := map[bool]string{true: "yes", false: "no"}
	uuid := make([]byte, 16)
	rand.Read(uuid)
	minPort := max(c.MinPort, 1024)
	perm := fmt.Sprintf("allow %d-65535 192.168.77.0/24 1024-65535\ndeny 0-65535 0.0.0.0/0 0-65535\n", minPort)
	conf := fmt.Sprintf(`ext_ifname=%s
listening_ip=%s
http_port=0
enable_upnp=%s
enable_natpmp=%s
ext_perform_stun=yes
ext_stun_host=%s
ext_stun_port=%d
secure_mode=yes
system_uptime=yes
notify_interval=60
min_lifetime=10
max_lifetime=86400
uuid=%x-%x-%x-%x-%x
upnp_table_name=filter
upnp_nat_table_name=filter
upnp_forward_chain=miniupnpd
upnp_nat_chain=prerouting_miniupnpd
upnp_nat_postrouting_chain=postrouting_miniupnpd
%s`, lanIf, homeIf, yes[c.UPnP], yes[c.NATPMP], h.l.STUN[0].Addr(), h.l.STUN[0].Port(),
		uuid[0:4], uuid[4:6], uuid[6:8], uuid[8:10], uuid[10:16], perm)
	path := filepath.Join(h.dir, "miniupnpd.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	log := &syncBuffer{}
	cmd := exec.Command("miniupnpd", "-f", path, "-d", "-P", filepath.Join(h.dir, "miniupnpd.pid"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := h.l.Do(h.Router, cmd.Start); err != nil {
		t.Fatalf("lab: start miniupnpd: %v", err)
	}
	h.mu.Lock()
	h.upd = cmd
	h.mu.Unlock()
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	deadline := time.After(30 * time.Second)
	// miniupnpd logs this when it starts to answer (after its STUN test).
	ready := "Listening for NAT-PMP/PCP traffic"
	if !c.NATPMP {
		ready = "HTTP listening on port"
	}
	for !strings.Contains(log.String(), ready) {
		select {
		case <-done:
			t.Fatalf("lab: miniupnpd exited:\n%s", log.String())
		case <-deadline:
			t.Fatalf("lab: miniupnpd did not start (or did not learn by STUN that the NAT in front is full cone):\n%s", log.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("lab: miniupnpd log:\n%s", log.String())
		}
	})
}

// StopMiniUPnPd stops miniupnpd if it runs and removes the forwards it
// made (miniupnpd leaves them), as a router reboot does.
func (h *Home) StopMiniUPnPd() {
	h.mu.Lock()
	cmd := h.upd
	h.upd = nil
	h.mu.Unlock()
	if cmd == nil {
		return
	}
	defer func() {
		flush := "flush chain inet filter miniupnpd\nflush chain inet filter prerouting_miniupnpd\nflush chain inet filter postrouting_miniupnpd\n"
		if err := run(h.Router, flush, "nft", "-f", "-"); err != nil {
			h.l.t.Errorf("lab: %v", err)
		}
	}()
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Process.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// Forwards lists the router's port forwards (DNAT rules miniupnpd made).
func (h *Home) Forwards(ctx context.Context) (string, error) {
	var out bytes.Buffer
	cmd := h.l.Command(ctx, h.Router, "nft", "list", "chain", "inet", "filter", "prerouting_miniupnpd")
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// syncBuffer is a bytes.Buffer safe for a process's output and a reader.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
