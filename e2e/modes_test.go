package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/testkit/lab"
)

// Forward mode: natmap listens on the bind port and relays to a target on
// the lan host; large transfers arrive intact and half-close works.
func TestForwardTCP(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConeTranslate)
	serveEcho(t, l, l.LAN, "127.0.0.1:9000")
	nm := startNatmap(t, l, bindArgs(l, 40010, "-t", "127.0.0.1", "-p", "9000")...)
	n := nm.waitNotification(1, 15*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := l.DialFromOutside(ctx, "tcp4", n.Public().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	payload := make([]byte, 8<<20)
	rand.Read(payload)
	go func() {
		c.Write(payload)
		c.(*net.TCPConn).CloseWrite() // half-close: the echo must still come back
	}()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("echo through the relay: %d of %d bytes, equal %v, err %v", len(got), len(payload), bytes.Equal(got, payload), err)
	}
}

// -p 0 forwards to the target's port equal to the current public port.
func TestForwardToPublicPort(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConeTranslate)
	nm := startNatmap(t, l, bindArgs(l, 40011, "-t", "127.0.0.1", "-p", "0")...)
	n := nm.waitNotification(1, 15*time.Second)
	ln, err := l.Listen(l.LAN, "tcp4", "127.0.0.1:"+n.PublicPort, false)
	if err != nil {
		t.Fatal(err)
	}
	greet(t, ln, "target on the public port\n")
	mustReach(t, l, n.Public(), "target on the public port\n")
}

// -T: a relayed connection idle in both directions is closed.
func TestForwardIdleTimeout(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConePreserve)
	serveEcho(t, l, l.LAN, "127.0.0.1:9002")
	nm := startNatmap(t, l, bindArgs(l, 40012, "-t", "127.0.0.1", "-p", "9002", "-T", "1")...)
	n := nm.waitNotification(1, 15*time.Second)
	c := roundTrip(t, l, n.Public())
	buf := make([]byte, 1)
	start := time.Now()
	if _, err := c.Read(buf); err == nil {
		t.Fatal("read data on an idle connection")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("idle connection not closed within 5 s with -T 1")
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Fatalf("closed after %v, before the 1 s idle timeout", d)
	}
}

// UDP bind mode: the service owns the port, natmap keeps the mapping with
// STUN and reports it; the mapping outlives the NAT's idle timeout.
func TestUDPBindMode(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConeTranslate, lab.MappingTimeout(3*time.Second))
	serveUDP(t, l, l.LAN, "0.0.0.0:40013", true)
	args := append([]string{"-u", "-k", "1", "-b", "40013"}, stunArgs(l)...)
	nm := startNatmap(t, l, args...)
	n := nm.waitNotification(1, 15*time.Second)
	if n.Protocol != "udp" || n.PrivatePort != "40013" || n.PublicPort == "40013" || n.PrivateIP != l.LANAddr.String() {
		t.Fatalf("script got %+v", n)
	}
	time.Sleep(5 * time.Second) // longer than the NAT's 3 s mapping timeout
	got, err := echoUDP(t, l, n.Public(), []byte("ping"))
	if err != nil || string(got) != "ping" {
		t.Fatalf("UDP through %s: %q %v", n.Public(), got, err)
	}
	if c := len(nm.notifications()); c != 1 {
		t.Fatalf("%d notifications for one mapping", c)
	}
}

// UDP forward mode: datagrams far above the C natmap's 2048-byte limit are
// relayed whole, through IP fragmentation in the NAT.
func TestUDPForwardBigDatagrams(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConePreserve)
	serveUDP(t, l, l.LAN, "127.0.0.1:9003", false)
	args := append([]string{"-u", "-k", "1", "-c", "3", "-b", "40014", "-t", "127.0.0.1", "-p", "9003"}, stunArgs(l)...)
	nm := startNatmap(t, l, args...)
	n := nm.waitNotification(1, 15*time.Second)
	for _, size := range []int{1, 2049, 9000, 60000} {
		payload := make([]byte, size)
		rand.Read(payload)
		got, err := echoUDP(t, l, n.Public(), payload)
		if err != nil || !bytes.Equal(got, payload) {
			t.Fatalf("%d-byte datagram through the relay: got %d bytes, %v", size, len(got), err)
		}
	}
	// The one-byte keep-alives and STUN every 3 intervals keep it going.
	time.Sleep(4 * time.Second)
	if got, err := echoUDP(t, l, n.Public(), []byte("again")); err != nil || string(got) != "again" {
		t.Fatalf("after 4 s: %q %v", got, err)
	}
}

// UDP under a symmetric NAT: diagnosed, nothing notified.
func TestUDPSymmetricNAT(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.Symmetric)
	nm := startNatmap(t, l, append([]string{"-u", "-k", "1", "-b", "40015"}, stunArgs(l)...)...)
	nm.waitLog("NAT is not full cone", 15*time.Second)
	if got := nm.notifications(); len(got) != 0 {
		t.Fatalf("notified %+v", got)
	}
}

// UDP: the NAT forgets; the next STUN check sees the new mapping.
func TestUDPRecoversWhenNATForgets(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConeTranslate)
	serveUDP(t, l, l.LAN, "0.0.0.0:40016", true)
	nm := startNatmap(t, l, append([]string{"-u", "-k", "1", "-b", "40016"}, stunArgs(l)...)...)
	first := nm.waitNotification(1, 15*time.Second)
	if err := l.ForgetMappings(); err != nil {
		t.Fatal(err)
	}
	second := nm.waitNotification(2, 5*time.Second)
	if second.Public() == first.Public() {
		t.Fatal("same mapping re-notified")
	}
	if got, err := echoUDP(t, l, second.Public(), []byte("ping")); err != nil || string(got) != "ping" {
		t.Fatalf("UDP through the new mapping %s: %q %v", second.Public(), got, err)
	}
}

// IPv6: the same bind mode over IPv6 (NAT66 in the lab); IP4P is empty.
func TestIPv6BindMode(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConeTranslate)
	const port = 40017
	ln, err := l.Listen(l.LAN, "tcp6", fmt.Sprintf("[::]:%d", port), true)
	if err != nil {
		t.Fatal(err)
	}
	greet(t, ln, "hello over IPv6\n")
	args := []string{"-6", "-k", "2", "-h", l.HTTP6.String(), "-b", strconv.Itoa(port)}
	for _, s := range l.STUN6 {
		args = append(args, "-s", s.String())
	}
	nm := startNatmap(t, l, args...)
	n := nm.waitNotification(1, 15*time.Second)
	if n.PublicIP != l.PublicAddr6.String() || n.IP4P != "" || n.PrivateIP != l.LANAddr6.String() || n.PrivatePort != strconv.Itoa(port) {
		t.Fatalf("script got %+v", n)
	}
	mustReach(t, l, n.Public(), "hello over IPv6\n")
}

// Port takeover: the service listens on B without SO_REUSEPORT; natmap
// turns it on in the service's process and binds B too.
func TestPortTakeover(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConePreserve)
	const port = 40018
	greeting := serveNoReuse(t, l, port)
	nm := startNatmap(t, l, bindArgs(l, port)...)
	n := nm.waitNotification(1, 15*time.Second)
	nm.waitLog("enabled SO_REUSEPORT on the service holding the port", time.Second)
	if n.PrivatePort != strconv.Itoa(port) {
		t.Fatalf("script got %+v", n)
	}
	mustReach(t, l, n.Public(), greeting)
}

// A service of another user (nobody) without SO_REUSEPORT: natmap, as
// root, turns SO_REUSEPORT on in its socket and gives its own sockets on the
// port the service's uid, which the kernel requires to share the port. The
// service's socket keeps its owner.
func TestPortTakeoverOtherUser(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConePreserve)
	const port, nobody = 40028, 65534
	greeting := holdPortAs(t, l, fmt.Sprintf("0.0.0.0:%d", port), nobody, false)
	nm := startNatmap(t, l, bindArgs(l, port)...)
	n := nm.waitNotification(1, 15*time.Second)
	nm.waitLog("enabled SO_REUSEPORT on the service holding the port", time.Second)
	nm.waitLog("natmap's sockets on the port take the uid of the service's socket", time.Second)
	if n.PrivatePort != strconv.Itoa(port) {
		t.Fatalf("script got %+v", n)
	}
	mustReach(t, l, n.Public(), greeting)

	// The service's listener and natmap's connections from the port (the
	// keep-alive at least) all belong to nobody.
	out, err := l.Command(context.Background(), l.LAN, "cat", "/proc/net/tcp").Output()
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]int{}
	for _, line := range strings.Split(string(out), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 8 || !strings.HasSuffix(f[1], fmt.Sprintf(":%04X", port)) {
			continue
		}
		if st := f[3]; st == "0A" || st == "01" { // LISTEN, ESTABLISHED
			if f[7] != strconv.Itoa(nobody) {
				t.Errorf("socket on port %d of uid %s, want %d: %s", port, f[7], nobody, line)
			}
			states[st]++
		}
	}
	if states["0A"] != 1 || states["01"] == 0 {
		t.Fatalf("sockets on port %d: %v, want the listener and natmap's keep-alive:\n%s", port, states, out)
	}
}

func serveNoReuse(t *testing.T, l *lab.Lab, port uint16) string {
	ln, err := l.Listen(l.LAN, "tcp4", fmt.Sprintf("0.0.0.0:%d", port), false)
	if err != nil {
		t.Fatal(err)
	}
	return greet(t, ln, "service without SO_REUSEPORT\n")
}

// A port of a range that cannot be bound is skipped for the next one. Here
// sockets of two users hold it (on two addresses): SO_REUSEPORT shares a
// port only between sockets of one user, and natmap's can have one uid.
func TestPortRangeSkipsBusyPort(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConePreserve)
	holdPortAs(t, l, "127.0.0.1:40020", 65534, true)
	holdPortAs(t, l, l.LANAddr.String()+":40020", 65533, true)
	nm := startNatmap(t, l, bindArgs(l, 0, "-b", "40020-40022")...)
	n := nm.waitNotification(1, 15*time.Second)
	if n.PrivatePort != "40021" {
		t.Fatalf("script got %+v, want port 40021", n)
	}
	nm.waitLog("port is in use and cannot be shared", time.Second)
	nm.waitLog("natmap's socket cannot share it with both", time.Second)
}

// -f marks every natmap socket; -i binds them to the interface. nftables
// in the lan namespace counts the marked packets leaving lan0.
func TestFwmarkAndInterface(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConePreserve)
	rules := "table inet marks {\n chain out {\n type filter hook output priority 0;\n oifname \"lan0\" meta mark 0x42 counter\n }\n}\n"
	nft := l.Command(context.Background(), l.LAN, "nft", "-f", "-")
	nft.Stdin = strings.NewReader(rules)
	if out, err := nft.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v %s", err, out)
	}
	greeting := serve(t, l, 40023)
	nm := startNatmap(t, l, bindArgs(l, 40023, "-f", "0x42", "-i", "lan0")...)
	n := nm.waitNotification(1, 15*time.Second)
	mustReach(t, l, n.Public(), greeting)
	out, err := l.Command(context.Background(), l.LAN, "nft", "list", "chain", "inet", "marks", "out").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	var packets int
	if i := strings.Index(string(out), "packets "); i >= 0 {
		fmt.Sscanf(string(out[i:]), "packets %d", &packets)
	}
	if packets < 3 { // keep-alive and two STUN connections
		t.Fatalf("only %d packets carried mark 0x42:\n%s", packets, out)
	}

	// A local address works as -i too, and a missing interface is an error
	// that says so.
	nm2 := startNatmap(t, l, bindArgs(l, 40024, "-i", l.LANAddr.String())...)
	if n2 := nm2.waitNotification(1, 15*time.Second); n2.PrivateIP != l.LANAddr.String() {
		t.Fatalf("-i %s: script got %+v", l.LANAddr, n2)
	}
	nm3 := startNatmap(t, l, bindArgs(l, 40025, "-i", "nosuch0")...)
	nm3.waitLog("bind to interface nosuch0", 10*time.Second)
}

// -C sets the congestion control of the relayed client connections.
func TestForwardCongestionControl(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConePreserve)
	serveEcho(t, l, l.LAN, "127.0.0.1:9004")
	nm := startNatmap(t, l, bindArgs(l, 40019, "-t", "127.0.0.1", "-p", "9004", "-C", "reno")...)
	n := nm.waitNotification(1, 15*time.Second)
	roundTrip(t, l, n.Public())
	out, err := l.Command(context.Background(), l.LAN, "ss", "-tin", "state", "established", "sport", "= :40019").CombinedOutput()
	if err != nil {
		t.Fatalf("ss: %v %s", err, out)
	}
	if !strings.Contains(string(out), " reno ") {
		t.Fatalf("relayed connection does not use reno:\n%s", out)
	}
}

// IPv6 in UDP mode and in forward mode.
func TestIPv6UDPAndForward(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConeTranslate)
	var stun []string
	for _, s := range l.STUN6 {
		stun = append(stun, "-s", s.String())
	}
	serveUDP(t, l, l.LAN, "[::]:40026", true)
	udp := startNatmap(t, l, append([]string{"-6", "-u", "-k", "1", "-b", "40026"}, stun...)...)
	n := udp.waitNotification(1, 15*time.Second)
	if n.PublicIP != l.PublicAddr6.String() || n.IP4P != "" || n.Protocol != "udp" {
		t.Fatalf("UDP over IPv6: script got %+v", n)
	}
	if got, err := echoUDP(t, l, n.Public(), []byte("v6")); err != nil || string(got) != "v6" {
		t.Fatalf("UDP over IPv6 through %s: %q %v", n.Public(), got, err)
	}

	serveEcho(t, l, l.LAN, "[::1]:9005")
	fwd := startNatmap(t, l, append([]string{"-6", "-k", "2", "-h", l.HTTP6.String(), "-b", "40027", "-t", "::1", "-p", "9005"}, stun...)...)
	nf := fwd.waitNotification(1, 15*time.Second)
	if got := echoTCP(t, l, nf.Public(), "forwarded over IPv6"); got != "forwarded over IPv6" {
		t.Fatalf("TCP forward over IPv6: %q", got)
	}
}

// -b A~B: a random port of the range.
func TestRandomPortRange(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConePreserve)
	nm := startNatmap(t, l, bindArgs(l, 0, "-b", "40080~40089")...)
	n := nm.waitNotification(1, 15*time.Second)
	p, err := strconv.Atoi(n.PrivatePort)
	if err != nil || p < 40080 || p > 40089 || n.PublicPort != n.PrivatePort {
		t.Fatalf("-b 40080~40089: script got %+v", n)
	}
}
