package stunserver

import (
	"net"
	"net/netip"
	"testing"
	"time"

	pion "github.com/pion/stun/v3"
)

// exchange sends a Binding request (with setters) on c and decodes the
// answer's XOR-MAPPED-ADDRESS.
func exchange(t *testing.T, c net.Conn, setters ...pion.Setter) (netip.AddrPort, *pion.Message) {
	t.Helper()
	req := pion.MustBuild(append([]pion.Setter{pion.TransactionID, pion.BindingRequest}, setters...)...)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(req.Raw); err != nil {
		t.Fatal(err)
	}
	var resp *pion.Message
	if _, ok := c.(*net.UDPConn); ok {
		buf := make([]byte, 1500)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		resp = new(pion.Message)
		if err := pion.Decode(buf[:n], resp); err != nil {
			t.Fatal(err)
		}
	} else {
		var err error
		if resp, err = ReadTCP(c); err != nil {
			t.Fatal(err)
		}
	}
	var xor pion.XORMappedAddress
	if resp.Type != pion.BindingSuccess || resp.TransactionID != req.TransactionID || xor.GetFrom(resp) != nil {
		t.Fatalf("answer %v, want a Binding success to %x", resp, req.TransactionID)
	}
	a, _ := netip.AddrFromSlice(xor.IP)
	return netip.AddrPortFrom(a.Unmap(), uint16(xor.Port)), resp
}

func TestPlain(t *testing.T) {
	for network, addr := range map[string]string{"udp": UDP(t, nil), "tcp": TCP(t, nil)} {
		c, err := net.Dial(network, addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		got, _ := exchange(t, c)
		if want := netip.MustParseAddrPort(c.LocalAddr().String()); got != want {
			t.Errorf("%s: mapped %s, want %s", network, got, want)
		}
	}
}

func TestRFC5780(t *testing.T) {
	primary := RFC5780{OtherAddress: true}.Start(t)
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	req := pion.MustBuild(pion.TransactionID, pion.BindingRequest, pion.RawAttribute{Type: pion.AttrChangeRequest, Value: []byte{0, 0, 0, changeIP | changePort}})
	if _, err := pc.WriteToUDPAddrPort(req.Raw, primary); err != nil {
		t.Fatal(err)
	}
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	n, from, err := pc.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatal(err)
	}
	resp := new(pion.Message)
	var other pion.OtherAddress
	if err := pion.Decode(buf[:n], resp); err != nil || other.GetFrom(resp) != nil {
		t.Fatalf("answer %v (%v), want one with OTHER-ADDRESS", resp, err)
	}
	if from.Addr() == primary.Addr() || from.Port() == primary.Port() || from.String() != other.String() {
		t.Errorf("answer to change IP and port from %s (OTHER-ADDRESS %s), primary %s", from, other.String(), primary)
	}
}
