package takeover

import (
	"bufio"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/sockopt"
	"github.com/natmap-go/natmap/internal/testkit/freeport"
	"github.com/natmap-go/natmap/internal/testkit/tcpserve"
	"github.com/natmap-go/natmap/internal/testkit/testgate"
	"golang.org/x/sys/unix"
)

// The tests need a process that is not the test: the test binary runs
// itself again with these variables, as a service or as a lookup.
const (
	envRole = "TAKEOVER_TEST_ROLE" // "serve" or "lookup"
	envNet  = "TAKEOVER_TEST_NET"  // serve: tcp4, udp4, or tcp, udp (dual-stack [::]); lookup: EnableReusePort's network
	envPort = "TAKEOVER_TEST_PORT" // lookup: the port
	envUID  = "TAKEOVER_TEST_UID"  // both: "U" drops to uid and gid U first; "R,E,S" sets the real, effective and saved uids and gids
	envLate = "TAKEOVER_TEST_LATE" // serve: drops to these uids (as envUID) once listening, as daemons that bind as root do
	envAddr = "TAKEOVER_TEST_ADDR" // serve: the address to listen on, ":0" (any, a free port) unless set
)

const nobody = 65534

func TestMain(m *testing.M) {
	if role := os.Getenv(envRole); role != "" {
		if err := child(role); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func child(role string) error {
	if err := dropRoot(os.Getenv(envUID)); err != nil {
		return err
	}
	network := os.Getenv(envNet)
	switch role {
	case "serve":
		return serve(network)
	case "lookup":
		port, err := strconv.ParseUint(os.Getenv(envPort), 10, 16)
		if err != nil {
			return err
		}
		res, err := EnableReusePort(network, uint16(port))
		fmt.Printf("changes=%v uid=%d err=%v\n", res.Changes, res.UID, err)
		return nil
	}
	return fmt.Errorf("unknown role %q", role)
}

func dropRoot(spec string) error {
	if spec == "" {
		return nil
	}
	var ids []int
	for _, f := range strings.Split(spec, ",") {
		id, err := strconv.Atoi(f)
		if err != nil {
			return err
		}
		ids = append(ids, id)
	}
	// Go applies these to every thread of the process.
	if err := syscall.Setgroups(nil); err != nil {
		return err
	}
	if len(ids) == 3 {
		if err := syscall.Setresgid(ids[0], ids[1], ids[2]); err != nil {
			return err
		}
		return syscall.Setresuid(ids[0], ids[1], ids[2])
	}
	if err := syscall.Setgid(ids[0]); err != nil {
		return err
	}
	if err := syscall.Setuid(ids[0]); err != nil {
		return err
	}
	// A process that changed uid is not dumpable, and only root may then
	// look at its /proc/PID/fd: make it like any process started as U.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 1, 0, 0, 0); err != nil {
		return err
	}
	// Under Yama's ptrace_scope 1, only an ancestor may otherwise take its
	// descriptors, even as the same user. EINVAL: no Yama.
	if err := unix.Prctl(unix.PR_SET_PTRACER, unix.PR_SET_PTRACER_ANY, 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return err
	}
	return nil
}

// serve is the user's service: a plain Go listener (SO_REUSEADDR, no
// SO_REUSEPORT) on an ephemeral port that greets every client with its
// pid. It prints "port N" and runs until its stdin closes, so it never
// outlives the test.
func serve(network string) error {
	greeting := fmt.Sprintf("hello from %d\n", os.Getpid())
	addr := cmp.Or(os.Getenv(envAddr), ":0")
	if strings.HasPrefix(network, "udp") {
		pc, err := net.ListenPacket(network, addr)
		if err != nil {
			return err
		}
		fmt.Printf("port %d\n", pc.LocalAddr().(*net.UDPAddr).Port)
		go func() {
			buf := make([]byte, 1500)
			for {
				_, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				_, _ = pc.WriteTo([]byte(greeting), from)
			}
		}()
	} else {
		l, err := net.Listen(network, addr)
		if err != nil {
			return err
		}
		fmt.Printf("port %d\n", l.Addr().(*net.TCPAddr).Port)
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				_, _ = io.WriteString(c, greeting)
				c.Close()
			}
		}()
	}
	if err := dropRoot(os.Getenv(envLate)); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

// requireRoot skips the test without root, but fails it with CI=true: a
// skipped test in CI would hide that nothing was tested.
func requireRoot(t *testing.T) {
	t.Helper()
	testgate.Root(t, "takeover", "pidfd_getfd on another process, changing uid")
}

// requireIPv6 does the same without IPv6, which the dual-stack tests need.
func requireIPv6(t *testing.T) {
	t.Helper()
	l, err := net.Listen("tcp6", "[::]:0")
	if err != nil {
		testgate.Unmet(t, "takeover: needs IPv6")
	}
	l.Close()
}

func selfCmd(t *testing.T, env ...string) *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	return cmd
}

type service struct{ pid, port int }

// startService runs serve in a separate process, as uid (see envUID; ""
// keeps the test's user).
func startService(t *testing.T, network, uid string) service {
	t.Helper()
	return startServiceEnv(t, network, envUID+"="+uid)
}

func startServiceEnv(t *testing.T, network string, env ...string) service {
	t.Helper()
	cmd := selfCmd(t, append([]string{envRole + "=serve", envNet + "=" + network}, env...)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("service did not start: %v", err)
	}
	var port int
	if _, err := fmt.Sscanf(line, "port %d\n", &port); err != nil {
		t.Fatalf("service said %q: %v", line, err)
	}
	return service{pid: cmd.Process.Pid, port: port}
}

// natmapBind binds 0.0.0.0:port with natmap's socket options (SO_REUSEADDR
// and SO_REUSEPORT; owned by uid owner unless 0) without listening or
// connecting, and returns the socket.
func natmapBind(t *testing.T, network string, port int, owner uint32) (int, error) {
	t.Helper()
	return natmapBindAddr(t, network, [4]byte{}, port, owner)
}

// natmapBindAddr is natmapBind on ip:port.
func natmapBindAddr(t *testing.T, network string, ip [4]byte, port int, owner uint32) (int, error) {
	t.Helper()
	typ := unix.SOCK_STREAM
	if strings.HasPrefix(network, "udp") {
		typ = unix.SOCK_DGRAM
	}
	fd, err := unix.Socket(unix.AF_INET, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := (sockopt.Options{Owner: owner}).Control(network, "", rawFD(fd)); err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: ip, Port: port}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd, nil
}

// rawFD is a bare descriptor as a syscall.RawConn, for sockopt's Control.
type rawFD int

func (r rawFD) Control(f func(fd uintptr)) error  { f(uintptr(r)); return nil }
func (r rawFD) Read(func(fd uintptr) bool) error  { return errors.ErrUnsupported }
func (r rawFD) Write(func(fd uintptr) bool) error { return errors.ErrUnsupported }

// sockUID is the owner of socket fd (its inode's, which is sk_uid).
func sockUID(t *testing.T, fd int) uint32 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	return st.Uid
}

// greeting connects to the service on 127.0.0.1:port and returns its
// first line.
func greeting(t *testing.T, network string, port int) string {
	t.Helper()
	c, err := net.DialTimeout(network, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 5*time.Second)
	if err != nil {
		t.Fatalf("connect to the service: %v", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if strings.HasPrefix(network, "udp") {
		if _, err := c.Write([]byte("hi")); err != nil {
			t.Fatal(err)
		}
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("read the service's greeting: %v", err)
	}
	return line
}

// The whole story for one service process: natmap's bind fails, the
// takeover changes the service's socket, natmap's bind succeeds, and the
// service still serves its clients; a second takeover has nothing to do.
// A service of another user (uid != "") keeps its socket's owner, and
// natmap's socket binds once it has that owner (Result.UID) too.
func testTakeover(t *testing.T, serviceNet, network, uid string) {
	requireRoot(t)
	svc := startService(t, serviceNet, uid)
	want := uint32(0)
	if uid != "" {
		n, _ := strconv.Atoi(uid)
		want = uint32(n)
	}
	if _, err := natmapBind(t, network, svc.port, 0); !errors.Is(err, unix.EADDRINUSE) {
		t.Fatalf("bind before the takeover: %v, want EADDRINUSE", err)
	}

	res, err := EnableReusePort(network, uint16(svc.port))
	if err != nil {
		t.Fatal(err)
	}
	changes := res.Changes
	if len(changes) != 1 || changes[0].PID != svc.pid || changes[0].Comm != "takeover.test" || changes[0].FD < 3 || changes[0].UID != want {
		t.Fatalf("changes %+v, want the service pid %d, uid %d", changes, svc.pid, want)
	}
	if res.UID != want {
		t.Fatalf("result uid %d, want the service's %d", res.UID, want)
	}
	t.Logf("changed %+v", changes[0])

	if want != 0 {
		// The kernel compares the sockets' uids: root's socket still may
		// not share the port. fchown gives it the service's.
		if _, err := natmapBind(t, network, svc.port, 0); !errors.Is(err, unix.EADDRINUSE) {
			t.Fatalf("bind as root after the takeover: %v, want EADDRINUSE", err)
		}
	}
	fd, err := natmapBind(t, network, svc.port, res.UID)
	if err != nil {
		t.Fatalf("bind after the takeover: %v", err)
	}
	if got := sockUID(t, fd); got != want {
		t.Fatalf("natmap's socket belongs to uid %d, want %d", got, want)
	}
	if strings.HasPrefix(network, "udp") {
		// As natmap does at once (to its STUN server): a bound UDP socket
		// that is not connected would take some of the service's
		// datagrams (TestUnconnectedUDPSharesDatagrams).
		if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 2}, Port: 9}); err != nil {
			t.Fatal(err)
		}
	}
	hello := fmt.Sprintf("hello from %d\n", svc.pid)
	for range 10 {
		if got := greeting(t, network, svc.port); got != hello {
			t.Fatalf("greeting %q, want %q", got, hello)
		}
	}

	// Nothing left to change, and the service's socket kept its owner.
	res, err = EnableReusePort(network, uint16(svc.port))
	if err != nil || len(res.Changes) != 0 || res.UID != want {
		t.Fatalf("second takeover: %+v, err %v; want nothing to do and uid %d", res, err, want)
	}
}

func TestTakeoverTCP(t *testing.T) { testTakeover(t, "tcp4", "tcp4", "") }
func TestTakeoverUDP(t *testing.T) { testTakeover(t, "udp4", "udp4", "") }

// A Go service's ":port" is one dual-stack IPv6 socket on [::], listed in
// /proc/net/tcp6 only, yet it holds the IPv4 port too.
func TestTakeoverDualStack(t *testing.T) {
	requireIPv6(t)
	t.Run("tcp", func(t *testing.T) { testTakeover(t, "tcp", "tcp4", "") })
	t.Run("udp", func(t *testing.T) { testTakeover(t, "udp", "udp4", "") })
}

// A service of another user than natmap's (root): natmap's sockets take
// its uid.
func TestTakeoverOtherUser(t *testing.T) {
	uid := strconv.Itoa(nobody)
	t.Run("tcp", func(t *testing.T) { testTakeover(t, "tcp4", "tcp4", uid) })
	t.Run("udp", func(t *testing.T) { testTakeover(t, "udp4", "udp4", uid) })
	t.Run("dual-stack", func(t *testing.T) {
		requireIPv6(t)
		testTakeover(t, "tcp", "tcp4", uid)
	})
}

func TestNoSocket(t *testing.T) {
	for _, network := range []string{"tcp4", "tcp6", "udp4", "udp6"} {
		port := uint16(freeport.Get(t, network[:3], "")) // dual-stack: free on both families
		res, err := EnableReusePort(network, port)
		if !errors.Is(err, ErrNoOwner) || res.Changes != nil {
			t.Fatalf("%s: changes %v, err %v; want ErrNoOwner", network, res.Changes, err)
		}
		if !strings.Contains(err.Error(), fmt.Sprintf("takeover: no %s socket", network)) ||
			!strings.Contains(err.Error(), fmt.Sprintf("port %d", port)) {
			t.Fatalf("%s: unclear error %q", network, err)
		}
		t.Log(err)
	}
}

// A connected TCP socket on the port is not a LISTEN socket: natmap's own
// keep-alive connection, for instance.
func TestConnectedTCPIsNotAListener(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial("tcp4", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	port := uint16(c.LocalAddr().(*net.TCPAddr).Port)
	if _, err := EnableReusePort("tcp4", port); !errors.Is(err, ErrNoOwner) {
		t.Fatalf("err %v, want ErrNoOwner", err)
	}
}

// A socket no process holds, like a kernel socket: here a listener whose
// only descriptor is in flight in a unix socket (SCM_RIGHTS).
func TestSocketWithoutProcess(t *testing.T) {
	requireRoot(t) // without root, unreadable /proc/PID/fd is the answer
	l, err := net.Listen("tcp4", ":0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	f, err := l.(*net.TCPListener).File()
	l.Close()
	if err != nil {
		t.Fatal(err)
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pair[1])
	defer unix.Close(pair[0]) // drops the socket in flight, closing it
	if err := unix.Sendmsg(pair[0], []byte{0}, unix.UnixRights(int(f.Fd())), nil, 0); err != nil {
		t.Fatal(err)
	}
	f.Close()

	_, err = EnableReusePort("tcp4", uint16(port))
	if !errors.Is(err, ErrNoOwner) || !strings.Contains(err.Error(), "no process here holds socket inode") {
		t.Fatalf("err %v, want ErrNoOwner saying no process holds it", err)
	}
	t.Log(err)
}

// A service that already set SO_REUSEPORT needs nothing: no change and no
// error, so natmap just binds. (pidfd_getfd on itself needs no root.)
func TestAlreadyReusePort(t *testing.T) {
	fd, err := natmapBind(t, "tcp4", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 1); err != nil {
		t.Fatal(err)
	}
	sa, _ := unix.Getsockname(fd)
	res, err := EnableReusePort("tcp4", uint16(sa.(*unix.SockaddrInet4).Port))
	if err != nil || res.Changes != nil || res.UID != uint32(os.Geteuid()) {
		t.Fatalf("%+v, err %v; want nothing, natmap's uid and no error", res, err)
	}
}

func TestUnknownNetwork(t *testing.T) {
	if _, err := EnableReusePort("tcp", 80); err == nil || !strings.Contains(err.Error(), `unknown network "tcp"`) {
		t.Fatalf("err %v", err)
	}
}

// lookupAs runs EnableReusePort(network, port) in a process with the uids
// of spec (see envUID) and returns what it printed.
func lookupAs(t *testing.T, spec, network string, port int) string {
	t.Helper()
	cmd := selfCmd(t, envRole+"=lookup", envNet+"="+network, envPort+"="+strconv.Itoa(port), envUID+"="+spec)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("lookup as %s: %v", spec, err)
	}
	t.Logf("as uid %s: %s", spec, out)
	return string(out)
}

// Without root, a root service's descriptors cannot even be listed: the
// error must say that root is needed, and nothing changes.
func TestLookupWithoutRoot(t *testing.T) {
	requireRoot(t)
	svc := startService(t, "tcp4", "")
	out := lookupAs(t, strconv.Itoa(nobody), "tcp4", svc.port)
	if !strings.Contains(out, "changes=[] ") || !strings.Contains(out, "no owner found") || !strings.Contains(out, "needs root") {
		t.Fatalf("want no change and an error saying it needs root")
	}
	if _, err := natmapBind(t, "tcp4", svc.port, 0); !errors.Is(err, unix.EADDRINUSE) {
		t.Fatalf("bind: %v, want EADDRINUSE (nothing changed)", err)
	}
}

// pidfd_getfd checks the caller's real ids (ptrace attach rights), where
// /proc/PID/fd checks the effective ones: a lookup whose effective uid and
// gid are the service's (without capabilities) but whose real ones are not
// finds the owner, and pidfd_getfd fails with EPERM.
func TestPidfdGetfdNotPermitted(t *testing.T) {
	requireRoot(t)
	svc := startService(t, "tcp4", strconv.Itoa(nobody))
	out := lookupAs(t, fmt.Sprintf("1000,%d,0", nobody), "tcp4", svc.port)
	if !strings.Contains(out, "changes=[] ") || !strings.Contains(out, fmt.Sprintf("pidfd_getfd pid %d", svc.pid)) ||
		!strings.Contains(out, "needs root") || !strings.Contains(out, "operation not permitted") {
		t.Fatalf("want no change and a pidfd_getfd EPERM error saying it needs root")
	}
}

// Without root, natmap cannot give its sockets another uid: a socket of
// another user is refused, saying why, and nothing changes. Here the
// service bound its port as root and then dropped to nobody, so natmap as
// nobody may take its descriptors but the socket is root's.
func TestOtherUserWithoutRoot(t *testing.T) {
	requireRoot(t)
	svc := startServiceEnv(t, "tcp4", fmt.Sprintf("%s=%d", envLate, nobody))
	out := lookupAs(t, strconv.Itoa(nobody), "tcp4", svc.port)
	want := fmt.Sprintf("belongs to uid 0 and natmap runs as uid %d, but SO_REUSEPORT shares a port only between sockets of one user: run natmap as root", nobody)
	if !strings.Contains(out, "changes=[] ") || !strings.Contains(out, want) {
		t.Fatalf("want no change and an error containing %q", want)
	}
	if _, err := natmapBind(t, "tcp4", svc.port, 0); !errors.Is(err, unix.EADDRINUSE) {
		t.Fatalf("bind: %v, want EADDRINUSE (nothing changed)", err)
	}
}

// Sockets of two users on the port: natmap's socket can have only one
// uid, so it cannot share the port with both; nothing changes.
func TestTwoUsersOnThePort(t *testing.T) {
	requireRoot(t)
	a := startServiceEnv(t, "tcp4", fmt.Sprintf("%s=%d", envUID, nobody), envAddr+"=127.0.0.1:0")
	b := startServiceEnv(t, "tcp4", fmt.Sprintf("%s=%d", envUID, nobody-1), fmt.Sprintf("%s=127.0.0.2:%d", envAddr, a.port))
	res, err := EnableReusePort("tcp4", uint16(a.port))
	if err == nil || len(res.Changes) != 0 {
		t.Fatalf("%+v, err %v; want an error and no change", res, err)
	}
	for _, want := range []string{
		fmt.Sprintf("pid %d", a.pid), fmt.Sprintf("uid %d", nobody),
		fmt.Sprintf("pid %d", b.pid), fmt.Sprintf("uid %d", nobody-1),
		"natmap's socket cannot share it with both",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("err %q lacks %q", err, want)
		}
	}
	t.Log(err)
	// Had a's socket been changed, this would bind.
	if _, err := natmapBindAddr(t, "tcp4", [4]byte{127, 0, 0, 1}, a.port, nobody); !errors.Is(err, unix.EADDRINUSE) {
		t.Fatalf("bind: %v, want EADDRINUSE (nothing changed)", err)
	}
}

// natmapServe opens natmap's own socket on port (SO_REUSEADDR and
// SO_REUSEPORT, as internal/sockopt sets them), listening (TCP) or bound
// but not connected (UDP), and greets like the service, as "natmap".
func natmapServe(t *testing.T, network string, port int) {
	t.Helper()
	lc := net.ListenConfig{Control: sockopt.Options{}.Control}
	addr := ":" + strconv.Itoa(port)
	const hello = "hello from natmap\n"
	if strings.HasPrefix(network, "udp") {
		pc, err := lc.ListenPacket(context.Background(), network, addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		go func() {
			buf := make([]byte, 1500)
			for {
				_, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				_, _ = pc.WriteTo([]byte(hello), from)
			}
		}()
		return
	}
	l, err := lc.Listen(context.Background(), network, addr)
	if err != nil {
		t.Fatal(err)
	}
	tcpserve.Each(t, l, func(c net.Conn) { _, _ = io.WriteString(c, hello) })
}

// greetings counts who answers 40 clients (40 source ports).
func greetings(t *testing.T, network string, port int) map[string]int {
	n := make(map[string]int)
	for range 40 {
		n[strings.TrimSpace(greeting(t, network, port))]++
	}
	t.Logf("40 clients: %v", n)
	return n
}

// Kernel behaviour natmap's forward mode must know: SO_REUSEPORT turned on
// after listen() still works like set before it. A second listener joins
// the service's reuseport group and the kernel spreads new connections
// between the two by a hash of the client's address and port.
func TestListenAfterTakeoverSharesConnections(t *testing.T) {
	requireRoot(t)
	svc := startService(t, "tcp4", "")
	if _, err := EnableReusePort("tcp4", uint16(svc.port)); err != nil {
		t.Fatal(err)
	}
	natmapServe(t, "tcp4", svc.port)
	n := greetings(t, "tcp4", svc.port)
	if n["hello from natmap"] == 0 || n[fmt.Sprintf("hello from %d", svc.pid)] == 0 {
		t.Fatal("want connections spread between the service and natmap")
	}
}

// The same for UDP: natmap's socket, bound and not yet connected, joins
// the group and receives some of the service's datagrams. Once connected,
// it receives only its peer's (testTakeover).
func TestUnconnectedUDPSharesDatagrams(t *testing.T) {
	requireRoot(t)
	svc := startService(t, "udp4", "")
	if _, err := EnableReusePort("udp4", uint16(svc.port)); err != nil {
		t.Fatal(err)
	}
	natmapServe(t, "udp4", svc.port)
	n := greetings(t, "udp4", svc.port)
	if n["hello from natmap"] == 0 || n[fmt.Sprintf("hello from %d", svc.pid)] == 0 {
		t.Fatal("want datagrams spread between the service and natmap")
	}
}

// A dual-stack service ([::]) and an IPv4 listener are not one reuseport
// group (not one family), and the kernel prefers the IPv4 socket for IPv4
// clients: natmap's listener takes every IPv4 connection.
func TestIPv4ListenerTakesDualStackServicesClients(t *testing.T) {
	requireRoot(t)
	requireIPv6(t)
	svc := startService(t, "tcp", "")
	if _, err := EnableReusePort("tcp4", uint16(svc.port)); err != nil {
		t.Fatal(err)
	}
	natmapServe(t, "tcp4", svc.port)
	if n := greetings(t, "tcp4", svc.port); n["hello from natmap"] != 40 {
		t.Fatal("want every IPv4 connection to go to natmap")
	}
}

// The real tables of this machine parse: the strict parser must accept
// what the running kernel prints.
func TestParseRealTables(t *testing.T) {
	for _, name := range []string{"tcp", "tcp6", "udp", "udp6"} {
		f, err := os.Open("/proc/self/net/" + name)
		if err != nil {
			t.Logf("%s: %v", name, err)
			continue
		}
		entries, err := parseTable(f, binary.NativeEndian)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Logf("%s: %d sockets", name, len(entries))
	}
}
