// Package coturn runs Debian's coturn (turnserver) as a STUN-only server
// for tests: the real STUN server natmap is tested against, started the
// same way wherever a test needs one.
package coturn

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/testkit/netns"
	"github.com/natmap-go/natmap/internal/testkit/testgate"
	"github.com/natmap-go/natmap/internal/testkit/wait"
)

// Config is one coturn.
type Config struct {
	// Addrs are the addresses it listens on (one of each family at most,
	// or RFC 5780 turns on), all at Port.
	Addrs []string
	Port  int // 3478 when 0
	// AltAddrs, when set, turn RFC 5780 on: coturn also listens on them,
	// and at AltPort (Port+1 when 0) on every address, names the other
	// address and port in OTHER-ADDRESS and answers CHANGE-REQUEST from
	// them. Without them it runs with --no-rfc5780, keeping its answers
	// minimal, as on most public servers.
	AltAddrs []string
	AltPort  int
	// NetNS, when set, is the named network namespace it runs in.
	NetNS string
	// Dir keeps every file it writes (pid, log, database, output); made
	// when missing. Start uses a test temp dir when it is empty.
	Dir string
}

// Server is a running coturn.
type Server struct {
	cfg  Config
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	once sync.Once
}

// Launch starts coturn without waiting for it to answer.
func Launch(c Config) (*Server, error) {
	if len(c.Addrs) == 0 {
		return nil, errors.New("coturn: no address to listen on")
	}
	if c.Port == 0 {
		c.Port = 3478
	}
	if c.AltPort == 0 {
		c.AltPort = c.Port + 1
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("coturn: %w", err)
	}
	file := func(name string) string { return filepath.Join(c.Dir, name) }
	args := []string{
		"-n", // no config file: everything is on the command line
		"--stun-only", "--no-cli", "--no-tls", "--no-dtls",
		"--listening-port", strconv.Itoa(c.Port),
		"--relay-threads", "1",
		// Nothing is relayed with --stun-only, but coturn spends
		// milliseconds per address on a pool of its relay ports (by
		// default 16384 of them).
		"--min-port", "49152", "--max-port", "49159",
		// Keep every file it writes in Dir, never the system's.
		"--pidfile", file("pid"),
		"--log-file", file("log"), "--simple-log", "--no-stdout-log",
		"--db", file("db"),
	}
	for _, a := range append(append([]string(nil), c.Addrs...), c.AltAddrs...) {
		args = append(args, "--listening-ip", a)
	}
	if len(c.AltAddrs) > 0 {
		args = append(args, "--alt-listening-port", strconv.Itoa(c.AltPort))
	} else {
		args = append(args, "--no-rfc5780")
	}
	out, err := os.Create(file("out"))
	if err != nil {
		return nil, fmt.Errorf("coturn: %w", err)
	}
	defer out.Close() // the child has its own copy
	cmd := exec.Command("turnserver", args...)
	cmd.Dir = c.Dir
	cmd.Stdout, cmd.Stderr = out, out
	start := cmd.Start
	if c.NetNS != "" {
		start = func() error { return netns.Do(c.NetNS, cmd.Start) }
	}
	if err := start(); err != nil {
		return nil, fmt.Errorf("coturn: start turnserver on %v: %w", c.Addrs, err)
	}
	s := &Server{cfg: c, cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(s.done) }()
	return s, nil
}

// Require skips the test (fails it in CI) without turnserver.
func Require(t testing.TB) {
	t.Helper()
	testgate.Require(t, "coturn", false, map[string]string{"turnserver": "coturn"})
}

// Start launches coturn for the test (after Require), waits until it
// accepts TCP on its first address, and stops it when the test ends
// (logging the end of its log when the test failed).
func Start(t testing.TB, c Config) *Server {
	t.Helper()
	Require(t)
	if c.Dir == "" {
		c.Dir = t.TempDir()
	}
	s, err := Launch(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("turnserver on %v, its log:\n%s", c.Addrs, s.LogTail())
		}
	})
	addr := s.Addr()
	var derr error
	ok := wait.Until(30*time.Second, func() bool {
		select {
		case <-s.done:
			return true
		default:
		}
		derr = s.do(func() error {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
			}
			return err
		})
		return derr == nil
	})
	select {
	case <-s.done:
		t.Fatalf("coturn: turnserver on %s exited: %v\n%s", addr, s.cmd.ProcessState, s.LogTail())
	default:
	}
	if !ok {
		t.Fatalf("coturn: turnserver not listening on %s: %v\n%s", addr, derr, s.LogTail())
	}
	return s
}

// Addr is the first address and port it listens on, as host:port.
func (s *Server) Addr() string {
	return net.JoinHostPort(s.cfg.Addrs[0], strconv.Itoa(s.cfg.Port))
}

// do runs fn in the server's namespace.
func (s *Server) do(fn func() error) error {
	if s.cfg.NetNS == "" {
		return fn()
	}
	return netns.Do(s.cfg.NetNS, fn)
}

// Done is closed when the process has exited.
func (s *Server) Done() <-chan struct{} { return s.done }

// Exit describes how the process ended, once Done is closed.
func (s *Server) Exit() string { return s.cmd.ProcessState.String() }

// Stop kills coturn, so that connections to it are refused from then on,
// and waits for it. Stopping twice is fine.
func (s *Server) Stop() {
	s.once.Do(func() {
		s.cmd.Process.Kill()
		<-s.done
	})
}

// LogTail returns the end of coturn's log and output, for error messages.
func (s *Server) LogTail() string {
	var b []byte
	for _, name := range []string{"out", "log"} {
		f, err := os.ReadFile(filepath.Join(s.cfg.Dir, name))
		if err != nil {
			f = []byte(err.Error() + "\n")
		}
		b = append(b, f...)
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}
