package engine

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/config"
	"github.com/natmap-go/natmap/internal/notify"
	"github.com/natmap-go/natmap/internal/sockopt"
	"github.com/natmap-go/natmap/internal/testkit/testgate"
	"golang.org/x/sys/unix"
)

// A service of another user holds the bind port without SO_REUSEPORT:
// dials from the port (several at once, as STUN checks run) take it over,
// and every socket natmap makes on the port then belongs to the service's
// user, which is what lets the kernel share the port.
func TestDialTakesOverAnotherUsersPort(t *testing.T) {
	testgate.Root(t, "engine", "the takeover test: pidfd_getfd, fchown")
	const nobody = 65534
	// The service's listener: nobody's, as fchown makes it (the kernel's
	// sk_uid is then the same as if nobody had created it). Plain TCP: the
	// default MPTCP listener's subflow would keep root's uid.
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var err error
		if cerr := rc.Control(func(fd uintptr) { err = unix.Fchown(int(fd), nobody, -1) }); cerr != nil {
			return cerr
		}
		return err
	}}
	lc.SetMultipathTCP(false)
	svc, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	port := uint16(svc.Addr().(*net.TCPAddr).Port)

	// Servers to dial, one per dial as STUN checks run: one 4-tuple can
	// be connected only once.
	var servers []config.HostPort
	for range 4 {
		srv, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		servers = append(servers, config.HostPort{Host: "127.0.0.1", Port: uint16(srv.Addr().(*net.TCPAddr).Port)})
	}
	cfg := config.Mapping{STUN: servers, HTTP: servers[0]}
	cfg.SetDefaults()
	log := &syncBuf{}
	e := New(cfg, slog.New(slog.NewTextHandler(log, nil)), func(notify.Mapping) {})

	local := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
	var wg sync.WaitGroup
	for _, srv := range servers {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := e.dial(ctx, local, srv, time.Second)
			if err != nil {
				t.Errorf("dial from the service's port: %v", err)
				return
			}
			defer sockopt.Abort(c)
			var st unix.Stat_t
			rc, _ := c.(syscall.Conn).SyscallConn()
			_ = rc.Control(func(fd uintptr) { err = unix.Fstat(int(fd), &st) })
			if err != nil || st.Uid != nobody {
				t.Errorf("natmap's socket on the port: uid %d, %v; want %d", st.Uid, err, nobody)
			}
		})
	}
	wg.Wait()
	out := log.String()
	for _, want := range []string{"enabled SO_REUSEPORT on the service holding the port", "take the uid of the service's socket", "uid=65534"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if o := e.sockOpts(port).Owner; o != nobody {
		t.Errorf("owner on the port %d, want %d", o, nobody)
	}
	if o := e.sockOpts(port + 1).Owner; o != 0 {
		t.Errorf("owner on another port %d, want none", o)
	}
}
