package stun

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	pion "github.com/pion/stun/v3"
)

// rfc5780Server answers Binding requests on primary, from the address and
// port CHANGE-REQUEST asks for, among primary and alternates; it drops a
// reply whose source the "NAT" in front of the client would filter:
// filter(from) false means dropped.
func rfc5780Server(t *testing.T, withOther bool, filter func(from netip.AddrPort, primary netip.AddrPort) bool) netip.AddrPort {
	t.Helper()
	listen := func(a string) *net.UDPConn {
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(a)))
		if err != nil {
			t.Skipf("loopback address %s: %v", a, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	primary := listen("127.0.0.1:0")
	port := netip.MustParseAddrPort(primary.LocalAddr().String()).Port()
	altPort := listen("127.0.0.1:0")
	altIP := listen("127.0.0.2:" + itoa(port))
	altBoth := listen("127.0.0.2:" + itoa(netip.MustParseAddrPort(altPort.LocalAddr().String()).Port()))
	pa := netip.MustParseAddrPort(primary.LocalAddr().String())
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := primary.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			req := &pion.Message{Raw: append([]byte(nil), buf[:n]...)}
			if req.Decode() != nil {
				continue
			}
			var change byte
			if v, err := req.Get(pion.AttrChangeRequest); err == nil && len(v) == 4 {
				change = v[3]
			}
			out := primary
			switch change {
			case changeIP | changePort:
				out = altBoth
			case changePort:
				out = altPort
			case changeIP:
				out = altIP
			}
			src := netip.MustParseAddrPort(out.LocalAddr().String())
			if !filter(src, pa) {
				continue
			}
			setters := []pion.Setter{pion.NewTransactionIDSetter(req.TransactionID), pion.BindingSuccess,
				&pion.XORMappedAddress{IP: from.Addr().AsSlice(), Port: int(from.Port())}}
			if withOther {
				ob := netip.MustParseAddrPort(altBoth.LocalAddr().String())
				setters = append(setters, &pion.OtherAddress{IP: ob.Addr().AsSlice(), Port: int(ob.Port())})
			}
			resp := pion.MustBuild(setters...)
			out.WriteToUDPAddrPort(resp.Raw, from)
		}
	}()
	return pa
}

func itoa(p uint16) string { return strconv.Itoa(int(p)) }

func TestProbeFiltering(t *testing.T) {
	for _, tc := range []struct {
		name      string
		withOther bool
		filter    func(from, primary netip.AddrPort) bool
		want      Filtering
	}{
		{"full cone", true, func(_, _ netip.AddrPort) bool { return true }, EndpointIndependent},
		{"restricted cone", true, func(f, p netip.AddrPort) bool { return f.Addr() == p.Addr() }, AddressDependent},
		{"port-restricted cone", true, func(f, p netip.AddrPort) bool { return f == p }, AddressPortDependent},
		{"server without RFC 5780", false, func(_, _ netip.AddrPort) bool { return true }, FilteringUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := rfc5780Server(t, tc.withOther, tc.filter)
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			got, err := ProbeFiltering(ctx, c, srv, 50*time.Millisecond, 2)
			if err != nil || got != tc.want {
				t.Fatalf("ProbeFiltering = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestProbeFilteringSilentServer(t *testing.T) {
	silent, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	c, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	defer c.Close()
	got, err := ProbeFiltering(context.Background(), c, netip.MustParseAddrPort(silent.LocalAddr().String()), 20*time.Millisecond, 2)
	if err == nil || got != FilteringUnknown {
		t.Fatalf("silent server: %v, %v", got, err)
	}
}
