package sockopt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/natmap-go/natmap/internal/testkit/testgate"
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
		testgate.Unmet(t, "sockopt: setting SO_MARK needs CAP_NET_ADMIN")
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

// Owner gives the socket another uid, the one the kernel compares when
// SO_REUSEPORT sockets share a port: a root socket may not bind the port of
// another user's SO_REUSEPORT listener, one given that user's uid may. This
// is natmap's keep-alive dialled from the port of a service of another user.
func TestOwnerSharesPortWithThatUser(t *testing.T) {
	testgate.Root(t, "sockopt", "Owner: fchown")
	const nobody = 65534
	// The other user's listener: its uid is what fchown set, as if nobody
	// had created it. Plain TCP: see TestOwnerRefusesMPTCP.
	lc := net.ListenConfig{Control: Options{Owner: nobody}.Control}
	lc.SetMultipathTCP(false)
	svc, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	port := svc.Addr().(*net.TCPAddr).Port
	if uid := procNetUID(t, port); uid != nobody {
		t.Fatalf("/proc/net/tcp: listener of uid %d, want %d", uid, nobody)
	}
	if uid := fdUID(t, svc.(syscall.Conn)); uid != nobody {
		t.Fatalf("fstat: listener of uid %d, want %d", uid, nobody)
	}
	srv, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	for _, tc := range []struct {
		owner uint32
		ok    bool
	}{{0, false}, {nobody - 1, false}, {nobody, true}} {
		d := net.Dialer{LocalAddr: svc.Addr(), Control: Options{Owner: tc.owner}.Control}
		c, err := d.Dial("tcp4", srv.Addr().String())
		if tc.ok != (err == nil) {
			t.Fatalf("owner %d: dial from the listener's port: %v, want ok=%v", tc.owner, err, tc.ok)
		}
		if err != nil {
			if !errors.Is(err, unix.EADDRINUSE) {
				t.Fatalf("owner %d: %v, want EADDRINUSE", tc.owner, err)
			}
			continue
		}
		if uid := fdUID(t, c.(syscall.Conn)); uid != tc.owner {
			t.Fatalf("owner %d: socket of uid %d", tc.owner, uid)
		}
		Abort(c)
	}

	// The zero Options leave the socket as created: root's here.
	d := net.Dialer{Control: Options{}.Control}
	c, err := d.Dial("tcp4", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer Abort(c)
	if uid := fdUID(t, c.(syscall.Conn)); uid != 0 {
		t.Fatalf("no owner: socket of uid %d, want 0", uid)
	}
}

// fchown does not reach an MPTCP socket's TCP subflow, which does the
// binding: Owner says so instead of doing nothing useful.
func TestOwnerRefusesMPTCP(t *testing.T) {
	testgate.Root(t, "sockopt", "Owner: fchown")
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_MPTCP)
	if err != nil {
		t.Skipf("no MPTCP here: %v", err)
	}
	defer unix.Close(fd)
	err = Options{Owner: 65534}.apply(fd, "tcp4")
	if err == nil || !strings.Contains(err.Error(), "MPTCP") {
		t.Fatalf("err %v, want one saying MPTCP", err)
	}
}

// fdUID is the owner of a socket's inode.
func fdUID(t *testing.T, c syscall.Conn) uint32 {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Fstat(int(fd), &st) }); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
	return st.Uid
}

// procNetUID is the uid column of the 127.0.0.1:port listener in
// /proc/net/tcp: the kernel's sk_uid.
func procNetUID(t *testing.T, port int) uint32 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	local := fmt.Sprintf("%08X:%04X", binary.NativeEndian.Uint32([]byte{127, 0, 0, 1}), port)
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 7 && f[1] == local && f[3] == "0A" {
			uid, err := strconv.ParseUint(f[7], 10, 32)
			if err != nil {
				t.Fatal(err)
			}
			return uint32(uid)
		}
	}
	t.Fatalf("no listener %s in /proc/net/tcp", local)
	return 0
}
