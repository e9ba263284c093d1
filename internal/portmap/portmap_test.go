package portmap

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/testkit/wait"
)

var loopback = netip.MustParseAddr("127.0.0.1")

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func pmpOptions(f *fakePMP) Options {
	return Options{Timeout: 2 * time.Second, testPMPPort: f.port(), testSSDPPort: 9}
}

func TestPCPMapRenewDelete(t *testing.T) {
	f := newFakePMP(t, true, true)
	ctx := testCtx(t)
	c := NewPCP(loopback, loopback, pmpOptions(f))
	m, err := c.Map(ctx, Request{Protocol: "udp", InternalPort: 5000, ExternalPort: 5000, Lifetime: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if m.Method != PCP || m.External != netip.MustParseAddrPort("10.77.0.2:5000") || m.Lifetime != time.Minute {
		t.Fatalf("mapping %+v", m)
	}
	if p, ok := f.mapping("udp", 5000); !ok || p != 5000 {
		t.Fatalf("router holds %d %v", p, ok)
	}
	if err := c.Unmap(ctx, m); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.mapping("udp", 5000); ok {
		t.Fatal("mapping not deleted")
	}
}

func TestNATPMPMapDelete(t *testing.T) {
	f := newFakePMP(t, false, true)
	ctx := testCtx(t)
	c := NewNATPMP(loopback, pmpOptions(f))
	m, err := c.Map(ctx, Request{Protocol: "tcp", InternalPort: 6000, ExternalPort: 6000, Lifetime: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if m.Method != NATPMP || m.External != netip.MustParseAddrPort("10.77.0.2:6000") {
		t.Fatalf("mapping %+v", m)
	}
	if err := c.Unmap(ctx, m); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.mapping("tcp", 6000); ok {
		t.Fatal("mapping not deleted")
	}
}

// A NAT-PMP-only router answers PCP with "unsupported version": Hold falls
// back to NAT-PMP.
func TestHoldFallsBackToNATPMP(t *testing.T) {
	f := newFakePMP(t, false, true)
	h, err := Hold(testCtx(t), HoldConfig{Gateway: loopback, Local: loopback, Options: pmpOptions(f),
		Request: Request{Protocol: "udp", InternalPort: 7000}, Methods: []string{PCP, NATPMP}})
	if err != nil {
		t.Fatal(err)
	}
	if got := h.Mapping().Method; got != NATPMP {
		t.Fatalf("method %q", got)
	}
	h.Close()
	if _, ok := f.mapping("udp", 7000); ok {
		t.Fatal("Close left the mapping")
	}
}

// After the router forgets its mappings (a reboot), the next renewal
// re-creates the mapping and says so.
func TestHoldRecreatesAfterReboot(t *testing.T) {
	for _, method := range []string{PCP, NATPMP} {
		t.Run(method, func(t *testing.T) {
			f := newFakePMP(t, true, true)
			var mu sync.Mutex
			var changes int
			h, err := Hold(testCtx(t), HoldConfig{Gateway: loopback, Local: loopback, Options: pmpOptions(f),
				Request: Request{Protocol: "tcp", InternalPort: 7100}, Methods: []string{method},
				Refresh: 100 * time.Millisecond,
				OnChange: func(Mapping) {
					mu.Lock()
					changes++
					mu.Unlock()
				}})
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			f.mu.Lock()
			f.start = f.start.Add(-time.Hour) // an hour of uptime
			f.mu.Unlock()
			wait.For(t, 20*time.Second, "two changes", func() bool { mu.Lock(); defer mu.Unlock(); return changes >= 2 })
			f.reboot()
			wait.For(t, 20*time.Second, "the mapping back after the reboot", func() bool { _, ok := f.mapping("tcp", 7100); return ok })
			// The fake keeps the mapping before Hold reads its reply: wait
			// for Hold to take the new epoch rather than read it at once.
			var server uint32
			if !wait.Until(5*time.Second, func() bool {
				h.mu.Lock()
				defer h.mu.Unlock()
				server = h.epoch.server
				return server <= 10
			}) {
				t.Fatalf("epoch %d: the reboot was not seen", server)
			}
		})
	}
}

func TestHoldRefused(t *testing.T) {
	f := newFakePMP(t, true, true)
	f.refuse = 2
	_, err := Hold(testCtx(t), HoldConfig{Gateway: loopback, Local: loopback, Options: pmpOptions(f),
		Request: Request{Protocol: "tcp", InternalPort: 7200}, Methods: []string{PCP, NATPMP}})
	var re *RefusedError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "pcp") || !strings.Contains(err.Error(), "nat-pmp") {
		t.Fatalf("err %v", err)
	}
}

// A router that grants another external port is no use behind its own
// masquerade (which keeps natmap's port): Hold deletes it and fails.
func TestHoldInsistsOnSamePort(t *testing.T) {
	f := newFakePMP(t, true, true)
	f.otherPort = 40000
	_, err := Hold(testCtx(t), HoldConfig{Gateway: loopback, Local: loopback, Options: pmpOptions(f),
		Request: Request{Protocol: "tcp", InternalPort: 7300}, Methods: []string{PCP}})
	if err == nil || !strings.Contains(err.Error(), "40000") {
		t.Fatalf("err %v", err)
	}
	if _, ok := f.mapping("tcp", 7300); ok {
		t.Fatal("the wrong mapping was left on the router")
	}
}

// Garbage, short replies and replies with another nonce are ignored; the
// real reply still counts.
func TestHostilePMPReplies(t *testing.T) {
	for _, method := range []string{PCP, NATPMP} {
		t.Run(method, func(t *testing.T) {
			f := newFakePMP(t, method == PCP, true)
			f.hostile = true
			h, err := Hold(testCtx(t), HoldConfig{Gateway: loopback, Local: loopback, Options: pmpOptions(f),
				Request: Request{Protocol: "udp", InternalPort: 7400}, Methods: []string{method}})
			if err != nil {
				t.Fatal(err)
			}
			if m := h.Mapping(); m.External.Port() != 7400 {
				t.Fatalf("mapping %+v", m)
			}
			h.Close()
		})
	}
}

func TestNoRouterAnswers(t *testing.T) {
	f := newFakePMP(t, false, false)
	o := pmpOptions(f)
	o.Timeout = 600 * time.Millisecond
	_, err := Hold(testCtx(t), HoldConfig{Gateway: loopback, Local: loopback, Options: o,
		Request: Request{Protocol: "udp", InternalPort: 7500}})
	if !errors.Is(err, ErrNoAnswer) {
		t.Fatalf("err %v", err)
	}
}

func igdOptions(f *fakeIGD) Options {
	return Options{Timeout: 2 * time.Second, testPMPPort: 9, testSSDPPort: f.ssdpPort()}
}

func TestUPnPMapDelete(t *testing.T) {
	for _, svc := range []string{"urn:schemas-upnp-org:service:WANIPConnection:1", "urn:schemas-upnp-org:service:WANIPConnection:2", "urn:schemas-upnp-org:service:WANPPPConnection:1"} {
		t.Run(svc[strings.LastIndex(svc, ":service:")+9:], func(t *testing.T) {
			f := newFakeIGD(t, svc)
			h, err := Hold(testCtx(t), HoldConfig{Gateway: loopback, Local: netip.MustParseAddr("192.168.1.2"), Options: igdOptions(f),
				Request: Request{Protocol: "tcp", InternalPort: 8000}, Methods: []string{UPnP}})
			if err != nil {
				t.Fatal(err)
			}
			m := h.Mapping()
			if m.Method != UPnP || m.External != netip.MustParseAddrPort("10.77.0.2:8000") || m.Lifetime != Lease {
				t.Fatalf("mapping %+v", m)
			}
			f.mu.Lock()
			got, lease := f.maps["TCP 8000"], f.leases["TCP 8000"]
			f.mu.Unlock()
			if got != "192.168.1.2:8000" || lease != "3600" {
				t.Fatalf("router maps %q for %q s", got, lease)
			}
			h.Close()
			f.mu.Lock()
			defer f.mu.Unlock()
			if len(f.maps) != 0 {
				t.Fatalf("left %v", f.maps)
			}
		})
	}
}

func TestUPnPPermanentOnly(t *testing.T) {
	f := newFakeIGD(t, "urn:schemas-upnp-org:service:WANIPConnection:1")
	f.permOnly = true
	c, err := DiscoverUPnP(testCtx(t), loopback, loopback, igdOptions(f))
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.Map(testCtx(t), Request{Protocol: "udp", InternalPort: 8100, ExternalPort: 8100, Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if m.Lifetime != 0 || !m.Expires.IsZero() {
		t.Fatalf("mapping %+v", m)
	}
}

func TestUPnPRefused(t *testing.T) {
	f := newFakeIGD(t, "urn:schemas-upnp-org:service:WANIPConnection:1")
	f.fault = 718
	_, err := Hold(testCtx(t), HoldConfig{Gateway: loopback, Local: loopback, Options: igdOptions(f),
		Request: Request{Protocol: "tcp", InternalPort: 8200}, Methods: []string{UPnP}})
	var re *RefusedError
	if !errors.As(err, &re) || re.Code != 718 {
		t.Fatalf("err %v", err)
	}
}

// Every URL must point at the gateway: a description or control URL
// elsewhere is refused before natmap connects to it.
func TestUPnPOnlyTheGateway(t *testing.T) {
	f := newFakeIGD(t, "urn:schemas-upnp-org:service:WANIPConnection:1")
	f.location = "http://127.0.0.2:80/rootDesc.xml"
	if _, err := DiscoverUPnP(testCtx(t), loopback, loopback, igdOptions(f)); err == nil || !strings.Contains(err.Error(), "not on the gateway") {
		t.Fatalf("foreign LOCATION: err %v", err)
	}
	f.mu.Lock()
	f.location = ""
	f.control = "http://127.0.0.2:5000/ctl"
	f.mu.Unlock()
	if _, err := DiscoverUPnP(testCtx(t), loopback, loopback, igdOptions(f)); err == nil || !strings.Contains(err.Error(), "not on the gateway") {
		t.Fatalf("foreign control URL: err %v", err)
	}
}

func TestProbe(t *testing.T) {
	f := newFakePMP(t, false, true)
	g := newFakeIGD(t, "urn:schemas-upnp-org:service:WANIPConnection:2")
	o := Options{Timeout: time.Second, testPMPPort: f.port(), testSSDPPort: g.ssdpPort()}
	offers := Probe(testCtx(t), loopback, loopback, o)
	var got []string
	for _, of := range offers {
		if of.Err == nil {
			got = append(got, of.Method)
		}
	}
	if !slices.Equal(got, []string{NATPMP, UPnP}) {
		t.Fatalf("offers %+v", offers)
	}
	if !strings.Contains(offers[2].Detail, "WANIPConnection:2") || offers[2].External != netip.MustParseAddr("10.77.0.2") || offers[1].External != netip.MustParseAddr("10.77.0.2") {
		t.Fatalf("offers %+v", offers)
	}
}

func TestCheckGateway(t *testing.T) {
	for gw, ok := range map[string]bool{"192.168.1.1": true, "10.0.0.1": true, "172.16.0.1": true,
		"198.51.100.1": false, "100.64.0.1": false, "127.0.0.1": false, "fd00::1": false} {
		if err := CheckGateway(netip.MustParseAddr(gw)); (err == nil) != ok {
			t.Errorf("%s: %v", gw, err)
		}
	}
}

func TestEpochTracker(t *testing.T) {
	var e EpochTracker
	t0 := time.Now()
	if e.Observe(1000, t0) {
		t.Fatal("first epoch")
	}
	if e.Observe(1060, t0.Add(time.Minute)) {
		t.Fatal("a minute later")
	}
	if !e.Observe(5, t0.Add(2*time.Minute)) {
		t.Fatal("epoch went back")
	}
	if !e.Observe(10, t0.Add(time.Hour)) {
		t.Fatal("epoch too slow for an hour")
	}
}

func TestParseRoutes(t *testing.T) {
	table := `Iface	Destination	Gateway 	Flags	RefCnt	Use	Metric	Mask		MTU	Window	IRTT
wan	00000000	0101A8C0	0003	0	0	10	00000000	0	0	0
lan	0000A8C0	00000000	0001	0	0	0	00FFFFFF	0	0	0
wwan	00000000	0100000A	0003	0	0	5	00000000	0	0	0
`
	gw, dev, err := parseRoutes([]byte(table), "", binary.LittleEndian)
	if err != nil || gw != netip.MustParseAddr("10.0.0.1") || dev != "wwan" {
		t.Fatalf("best: %v %s %v", gw, dev, err)
	}
	gw, dev, err = parseRoutes([]byte(table), "wan", binary.LittleEndian)
	if err != nil || gw != netip.MustParseAddr("192.168.1.1") || dev != "wan" {
		t.Fatalf("on wan: %v %s %v", gw, dev, err)
	}
	if _, _, err := parseRoutes([]byte(table), "lan", binary.LittleEndian); err == nil {
		t.Fatal("lan has no default route")
	}
}

// A hostile web server on the router: oversized or malformed replies are
// errors, bounded in size and time.
func TestHostileHTTP(t *testing.T) {
	for name, reply := range map[string]string{
		"huge body":     "HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n" + strings.Repeat("x", 1<<20),
		"endless head":  "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-A: b\r\n", 1<<16),
		"garbage":       "SSH-2.0-OpenSSH\r\n\r\n",
		"huge chunk":    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffff\r\n",
		"silent":        "",
		"bad encoding":  "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
		"unended chunk": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
	} {
		t.Run(name, func(t *testing.T) {
			ln, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				c.Write([]byte(reply))
				if name == "silent" || name == "unended chunk" {
					time.Sleep(3 * time.Second)
				}
			}()
			u, _ := parseHTTPURL("http://" + ln.Addr().String() + "/")
			start := time.Now()
			_, err = doHTTP(testCtx(t), Options{Timeout: time.Second}, "GET", u, nil, nil)
			if err == nil {
				t.Fatal("accepted")
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Fatalf("took %v", d)
			}
		})
	}
}
