package portmap

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/testkit/lab"
	"github.com/natmap-go/natmap/internal/testkit/tcpserve"
	"golang.org/x/sys/unix"
)

// The double NAT of issue 13 with a real router: host -> home router
// (masquerade, miniupnpd) -> full-cone NAT -> internet. An outside client
// reaches a service on the host through the NAT's public address only
// once a protocol opened the port on the home router, and no longer once
// it is deleted. Each protocol on its own.
func TestMiniUPnPdDoubleNAT(t *testing.T) {
	lab.RequireMiniUPnPd(t)
	for _, tc := range []struct {
		method string
		upd    lab.MiniUPnPd
		// multicastOnly: the router drops unicast M-SEARCH, as many UDA
		// 1.0 routers never answer it.
		multicastOnly bool
	}{
		{UPnP, lab.MiniUPnPd{UPnP: true}, false},
		{UPnP + " multicast only", lab.MiniUPnPd{UPnP: true}, true},
		{NATPMP, lab.MiniUPnPd{NATPMP: true}, false},
		{PCP, lab.MiniUPnPd{NATPMP: true}, false},
	} {
		t.Run(tc.method, func(t *testing.T) {
			l := lab.New(t, lab.FullConePreserve)
			h := l.AddHomeRouter()
			h.StartMiniUPnPd(tc.upd)
			if tc.multicastOnly {
				cmd := l.Command(context.Background(), h.Router, "nft", "-f", "-")
				cmd.Stdin = strings.NewReader(`table ip unicast_ssdp {
	chain input {
		type filter hook input priority -10; policy accept;
		udp dport 1900 ip daddr != 239.255.255.250 drop
	}
}
`)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("nft: %v\n%s", err, out)
				}
			}
			const port = 5555
			ln, err := l.Listen(h.NS, "tcp4", netip.AddrPortFrom(h.HostAddr, port).String(), true)
			if err != nil {
				t.Fatal(err)
			}
			tcpserve.Each(t, ln, func(c net.Conn) { c.Write([]byte("hi")) })
			// natmap's keep-alive: an outbound connection from the port,
			// which maps it on the full-cone NAT through the masquerade.
			var ka net.Conn
			err = l.Do(h.NS, func() error {
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: h.HostAddr.AsSlice(), Port: port}, Control: reuse}
				ka, err = d.Dial("tcp4", l.HTTP.String())
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			defer ka.Close()
			public := netip.AddrPortFrom(l.PublicAddr, port).String()
			if reach(t, l, public) {
				t.Fatal("reachable before any mapping: the home router is not a NAT")
			}

			o := Options{Timeout: 5 * time.Second}
			var c Client
			var m Mapping
			err = l.Do(h.NS, func() error {
				ctx := context.Background()
				switch strings.Fields(tc.method)[0] {
				case UPnP:
					if c, err = DiscoverUPnP(ctx, h.RouterAddr, h.HostAddr, o); err != nil {
						return err
					}
				case NATPMP:
					c = NewNATPMP(h.RouterAddr, o)
				case PCP:
					c = NewPCP(h.RouterAddr, h.HostAddr, o)
				}
				m, err = c.Map(ctx, Request{Protocol: "tcp", InternalPort: port, ExternalPort: port, Lifetime: time.Hour})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if m.External != netip.AddrPortFrom(l.PublicAddr, port) { // miniupnpd learnt it by STUN
				t.Errorf("mapping %+v", m)
			}
			if !reach(t, l, public) {
				fw, _ := h.Forwards(context.Background())
				t.Fatalf("not reachable through %s after %s mapped it; router forwards:\n%s", public, tc.method, fw)
			}
			if err := l.Do(h.NS, func() error { return c.Unmap(context.Background(), m) }); err != nil {
				t.Fatal(err)
			}
			fw, _ := h.Forwards(context.Background())
			if strings.Contains(fw, "dnat") {
				t.Fatalf("forward left after delete:\n%s", fw)
			}
		})
	}
}

// A router that refuses (miniupnpd's permission rules deny the port): UPnP
// says no, PCP and NAT-PMP offer another port, which natmap cannot use and
// deletes at once. One protocol at a time: miniupnpd is busy for a while
// after it searched for a port to offer.
func TestMiniUPnPdRefuses(t *testing.T) {
	lab.RequireMiniUPnPd(t)
	l := lab.New(t, lab.FullConePreserve)
	h := l.AddHomeRouter()
	for method, want := range map[string]string{
		PCP:    "pcp: router offered external port 6000, not 5556",
		NATPMP: "nat-pmp: router offered external port 6000, not 5556",
		UPnP:   "upnp: router refused",
	} {
		h.StartMiniUPnPd(lab.MiniUPnPd{UPnP: method == UPnP, NATPMP: method != UPnP, MinPort: 6000})
		err := l.Do(h.NS, func() error {
			_, err := Hold(context.Background(), HoldConfig{Gateway: h.RouterAddr, Local: h.HostAddr, Methods: []string{method},
				Options: Options{Timeout: 15 * time.Second}, Request: Request{Protocol: "udp", InternalPort: 5556}})
			return err
		})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", method, err, want)
		}
		if fw, _ := h.Forwards(context.Background()); strings.Contains(fw, "dnat") {
			t.Fatalf("%s: forward left:\n%s", method, fw)
		}
	}
}

// reach reports whether an outside client gets the service's greeting.
func reach(t *testing.T, l *lab.Lab, addr string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := l.DialFromOutside(ctx, "tcp4", addr)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	b := make([]byte, 2)
	n, _ := c.Read(b)
	return string(b[:n]) == "hi"
}

func reuse(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// The hop after the home router is the ISP NAT's private side: a double
// NAT, seen by its time-exceeded reply.
func TestSecondHop(t *testing.T) {
	lab.RequireMiniUPnPd(t)
	l := lab.New(t, lab.FullConePreserve)
	h := l.AddHomeRouter()
	var hop netip.Addr
	err := l.Do(h.NS, func() error {
		var err error
		hop, err = SecondHop(context.Background(), l.STUN[0], Options{Timeout: 3 * time.Second})
		return err
	})
	if err != nil || hop != netip.MustParseAddr("10.77.0.1") {
		t.Fatalf("second hop %v, %v", hop, err)
	}
}
