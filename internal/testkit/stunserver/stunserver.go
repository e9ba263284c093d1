// Package stunserver is a STUN (RFC 5389) Binding server on loopback for
// tests: by default it answers as a plain server does (the sender's
// address in XOR-MAPPED-ADDRESS); a test can script every reply to play a
// hostile server exactly, or run an RFC 5780 server whose "NAT" filters
// answers. Messages are built and decoded with pion/stun, the reference
// implementation, never with natmap's own codec.
package stunserver

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/testkit/tcpserve"
	"github.com/natmap-go/natmap/internal/testkit/testgate"
	pion "github.com/pion/stun/v3"
)

// Answer returns a Binding success response to req that reports mapped
// in XOR-MAPPED-ADDRESS, with the extra attributes after it.
func Answer(req *pion.Message, mapped netip.AddrPort, extra ...pion.Setter) []byte {
	setters := []pion.Setter{pion.NewTransactionIDSetter(req.TransactionID), pion.BindingSuccess,
		&pion.XORMappedAddress{IP: mapped.Addr().Unmap().AsSlice(), Port: int(mapped.Port())}}
	return pion.MustBuild(append(setters, extra...)...).Raw
}

// UDP serves datagrams on 127.0.0.1 until the test ends and returns its
// address. For the n-th STUN message it gets (from 1), reply returns the
// datagrams to send back, possibly none; a nil reply answers each Binding
// request with the sender's address, as a server without RFC 5780 does.
func UDP(t testing.TB, reply func(n int, from netip.AddrPort, req *pion.Message) [][]byte) string {
	t.Helper()
	if reply == nil {
		reply = plainUDP
	}
	pc := listenUDP(t, "127.0.0.1:0", false)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		pc.Close()
		wg.Wait()
	})
	wg.Go(func() {
		buf := make([]byte, 1500)
		for n := 1; ; n++ {
			k, from, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			req := new(pion.Message)
			if err := pion.Decode(buf[:k], req); err != nil {
				continue
			}
			for _, d := range reply(n, from, req) {
				pc.WriteToUDPAddrPort(d, from)
			}
		}
	})
	return pc.LocalAddr().String()
}

func plainUDP(_ int, from netip.AddrPort, req *pion.Message) [][]byte {
	if req.Type != pion.BindingRequest {
		return nil
	}
	return [][]byte{Answer(req, from)}
}

// TCP accepts connections on 127.0.0.1 until the test ends and returns its
// address. serve is called with each connection and the first STUN message
// read from it, and writes what the test wants; the connection is closed
// when serve returns (its deadline is 10 s, so a stuck handler ends). A
// nil serve answers a Binding request with the client's
// address.
func TCP(t testing.TB, serve func(c net.Conn, req *pion.Message)) string {
	t.Helper()
	if serve == nil {
		serve = plainTCP
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("stunserver: %v", err)
	}
	tcpserve.Each(t, ln, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if req, err := ReadTCP(c); err == nil {
			serve(c, req)
		}
	})
	return ln.Addr().String()
}

func plainTCP(c net.Conn, req *pion.Message) {
	if req.Type == pion.BindingRequest {
		c.Write(Answer(req, c.RemoteAddr().(*net.TCPAddr).AddrPort()))
	}
}

// ReadTCP reads one STUN message from a stream, framed by the length in its
// header, and decodes it.
func ReadTCP(c net.Conn) (*pion.Message, error) {
	raw := make([]byte, 20)
	if _, err := io.ReadFull(c, raw); err != nil {
		return nil, err
	}
	raw = append(raw, make([]byte, binary.BigEndian.Uint16(raw[2:4]))...)
	if _, err := io.ReadFull(c, raw[20:]); err != nil {
		return nil, err
	}
	m := new(pion.Message)
	if err := pion.Decode(raw, m); err != nil {
		return nil, err
	}
	return m, nil
}

// CHANGE-REQUEST's flags (RFC 5780 section 7.2).
const (
	changeIP   = 0x04
	changePort = 0x02
)

// RFC5780 selects how an RFC5780 server behaves.
type RFC5780 struct {
	// OtherAddress names the alternate address and port in every answer,
	// as an RFC 5780 server does; without it the client cannot tell it
	// may ask for changes.
	OtherAddress bool
	// Filter plays the NAT in front of the client: an answer that would
	// come from src is dropped unless Filter(src, primary) holds. nil lets
	// every answer through (no NAT).
	Filter func(src, primary netip.AddrPort) bool
}

// Start runs the server on UDP 127.0.0.1 (primary and alternate port) and
// 127.0.0.2 (alternate address, both ports) until the test ends, and
// returns the primary address. It answers Binding requests on the primary
// address only, from the address and port CHANGE-REQUEST asks for. The
// test is skipped where 127.0.0.2 cannot be bound.
func (o RFC5780) Start(t testing.TB) netip.AddrPort {
	t.Helper()
	primary := listenUDP(t, "127.0.0.1:0", true)
	pa := primary.LocalAddr().(*net.UDPAddr).AddrPort()
	altPort := listenUDP(t, "127.0.0.1:0", true)
	ap := altPort.LocalAddr().(*net.UDPAddr).AddrPort().Port()
	altIP := listenUDP(t, "127.0.0.2:"+strconv.Itoa(int(pa.Port())), true)
	altBoth := listenUDP(t, "127.0.0.2:"+strconv.Itoa(int(ap)), true)
	other := altBoth.LocalAddr().(*net.UDPAddr).AddrPort()
	var wg sync.WaitGroup
	t.Cleanup(func() {
		for _, c := range []*net.UDPConn{primary, altPort, altIP, altBoth} {
			c.Close()
		}
		wg.Wait()
	})
	wg.Go(func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := primary.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			req := new(pion.Message)
			if pion.Decode(buf[:n], req) != nil || req.Type != pion.BindingRequest {
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
			if o.Filter != nil && !o.Filter(out.LocalAddr().(*net.UDPAddr).AddrPort(), pa) {
				continue
			}
			var extra []pion.Setter
			if o.OtherAddress {
				extra = append(extra, &pion.OtherAddress{IP: other.Addr().AsSlice(), Port: int(other.Port())})
			}
			out.WriteToUDPAddrPort(Answer(req, from, extra...), from)
		}
	})
	return pa
}

// listenUDP listens on addr until the test ends; with skip, the test is
// skipped (failed in CI) when it cannot (127.0.0.2 on a host without the
// whole of 127/8).
func listenUDP(t testing.TB, addr string, skip bool) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil && skip {
		testgate.Unmet(t, fmt.Sprintf("stunserver: loopback address %s: %v", addr, err))
	}
	if err != nil {
		t.Fatalf("stunserver: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
