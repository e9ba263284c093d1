package sockopt

import (
	"context"
	"errors"
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// Two sockets on one port, as natmap's keep-alive, STUN and the user's
// service share port B; then reconnecting from the same 4-tuple right after
// an abortive close must work (it fails after an orderly close).
func TestReuseAndAbort(t *testing.T) {
	lc := net.ListenConfig{Control: Options{}.Control}
	srv, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go func() {
		for {
			c, err := srv.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()

	svc, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	local := svc.Addr().(*net.TCPAddr)

	d := net.Dialer{LocalAddr: local, Control: Options{}.Control}
	for i := range 3 {
		c, err := d.Dial("tcp4", srv.Addr().String())
		if err != nil {
			t.Fatalf("dial %d from the service's port: %v", i, err)
		}
		if got := c.LocalAddr().(*net.TCPAddr).Port; got != local.Port {
			t.Fatalf("local port %d, want %d", got, local.Port)
		}
		Abort(c)
	}
}

func TestMarkAndCongestion(t *testing.T) {
	lc := net.ListenConfig{Control: Options{Mark: 0x42, Congestion: "reno"}.Control}
	l, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if errors.Is(err, unix.EPERM) {
		t.Skip("setting SO_MARK needs CAP_NET_ADMIN")
	}
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	rc, _ := l.(*net.TCPListener).SyscallConn()
	var mark int
	var cc string
	_ = rc.Control(func(fd uintptr) {
		mark, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK)
		cc, _ = unix.GetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION)
	})
	if mark != 0x42 || cc != "reno" {
		t.Fatalf("mark %#x cc %q", mark, cc)
	}
	bad := net.ListenConfig{Control: Options{Device: "nonexistent0"}.Control}
	if _, err := bad.Listen(context.Background(), "tcp4", "127.0.0.1:0"); err == nil {
		t.Fatal("binding to a missing interface must fail")
	}
}
