package ctl

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/mapping"
	"github.com/natmap-go/natmap/internal/testkit/wait"
)

// testHandler is the daemon side: a fixed list of mappings.
type testHandler struct {
	mu        sync.Mutex
	ms        []MappingStatus
	reloads   int
	restarted []string
	gate      chan struct{} // non-nil: Status waits for it to close (or ctx)
}

func (h *testHandler) Status(ctx context.Context) []MappingStatus {
	if h.gate != nil {
		select {
		case <-h.gate:
		case <-ctx.Done():
			return nil
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]MappingStatus(nil), h.ms...)
}

func (h *testHandler) Reload(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reloads++
	return nil
}

func (h *testHandler) Restart(ctx context.Context, section string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.ms {
		if m.Section == section {
			h.restarted = append(h.restarted, section)
			return nil
		}
	}
	return fmt.Errorf("no section %q in /etc/config/natmap", section)
}

func newHandler(n int) *testHandler {
	h := &testHandler{}
	for i := range n {
		h.ms = append(h.ms, MappingStatus{
			Section: fmt.Sprintf("map%d", i), Enabled: true, State: mapping.Mapped,
			Protocol: "tcp", Mode: "bind", PrivateIP: "192.168.1.2", PrivatePort: 8080 + i,
			PublicIP: "198.51.100.1", PublicPort: 20000 + i, IP4P: "2001::4e20:c633:6401",
			Since: 1700000000, LastChange: 1700000000, STUNServer: "stun.example.org:3478",
		})
	}
	return h
}

// running is a Server being served by a test.
type running struct {
	*Server
	cancel context.CancelFunc
	errc   chan error
	once   sync.Once
	err    error
}

// stop ends Serve and returns what it returned.
func (r *running) stop() error {
	r.once.Do(func() {
		r.cancel()
		select {
		case r.err = <-r.errc:
		case <-time.After(10 * time.Second):
			r.err = fmt.Errorf("Serve did not return 10 s after ctx ended")
		}
	})
	return r.err
}

// sockPath is a socket path in a fresh directory.
func sockPath(t testing.TB) string {
	return filepath.Join(t.TempDir(), "natmap.sock")
}

// serve starts s (its Path set) and waits until it listens.
func serve(t testing.TB, s *Server) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Server: s, cancel: cancel, errc: make(chan error, 1)}
	go func() { r.errc <- s.Serve(ctx) }()
	t.Cleanup(func() {
		if err := r.stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	// Serve makes the socket 0600 once it listens: no connection needed
	// (it would take one of the server's slots).
	if !wait.Until(10*time.Second, func() bool {
		select {
		case err := <-r.errc:
			t.Fatalf("Serve: %v", err)
		default:
		}
		fi, err := os.Lstat(s.Path)
		return err == nil && fi.Mode().Type() == fs.ModeSocket && fi.Mode().Perm() == 0o600
	}) {
		t.Fatal("server did not start")
	}
	return r
}

func call(t testing.TB, path string, req Request) (*Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return Call(ctx, path, req)
}

// rawConn is a client speaking the protocol by hand.
type rawConn struct {
	t testing.TB
	*net.UnixConn
	r *bufio.Reader
}

func dial(t testing.TB, path string) *rawConn {
	t.Helper()
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: t, UnixConn: c, r: bufio.NewReaderSize(c, 1<<20)}
}

func (c *rawConn) send(s string) {
	c.t.Helper()
	if _, err := c.Write([]byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawConn) recv() Response {
	c.t.Helper()
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		c.t.Fatalf("reading a response: %v (got %q)", err, line)
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		c.t.Fatalf("malformed response %q: %v", line, err)
	}
	if !resp.OK && resp.Error == "" {
		c.t.Fatalf("failure without a reason: %q", line)
	}
	return resp
}
