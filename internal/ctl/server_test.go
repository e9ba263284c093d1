package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestRoundTrips(t *testing.T) {
	h := newHandler(3)
	h.ms[1].Mode = "forward"
	h.ms[1].Relay = &RelayStats{Active: 1, Total: 2, BytesUp: 3, BytesDown: 4}
	s := serve(t, &Server{Path: sockPath(t), Handler: h})

	resp, err := call(t, s.Path, Request{Cmd: CmdStatus})
	if err != nil {
		t.Fatal(err)
	}
	if !resp.OK || !reflect.DeepEqual(resp.Mappings, h.ms) {
		t.Fatalf("status: got %+v, want %+v", resp, h.ms)
	}

	resp, err = call(t, s.Path, Request{Cmd: CmdStatus, Section: "map1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Mappings) != 1 || !reflect.DeepEqual(resp.Mappings[0], h.ms[1]) {
		t.Fatalf("status map1: got %+v", resp.Mappings)
	}

	if _, err := call(t, s.Path, Request{Cmd: CmdReload}); err != nil {
		t.Fatal(err)
	}
	if _, err := call(t, s.Path, Request{Cmd: CmdRestart, Section: "map2"}); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	if h.reloads != 1 || !reflect.DeepEqual(h.restarted, []string{"map2"}) {
		t.Errorf("handler saw %d reloads, restarts %q", h.reloads, h.restarted)
	}
	h.mu.Unlock()

	// Refusals: the daemon's message, and the response too.
	for _, tc := range []struct {
		req  Request
		want string
	}{
		{Request{Cmd: CmdRestart, Section: "nope"}, `no section "nope" in /etc/config/natmap`}, // the Handler's error
		{Request{Cmd: CmdRestart}, "restart needs a section"},
		{Request{Cmd: CmdReload, Section: "map1"}, "reload takes no section"},
		{Request{Cmd: CmdStatus, Section: "nope"}, `no section "nope"`},
		{Request{Cmd: "stop"}, `unknown command "stop" (want status, reload, restart or firewall-sync)`},
	} {
		resp, err := call(t, s.Path, tc.req)
		var re *RemoteError
		if !errors.As(err, &re) || err.Error() != tc.want {
			t.Errorf("%+v: error %v, want %q", tc.req, err, tc.want)
		}
		if resp == nil || resp.OK || resp.Error != tc.want {
			t.Errorf("%+v: response %+v", tc.req, resp)
		}
	}
}

// The JSON is an interface for LuCI and ubus: its field names are fixed.
func TestJSONFieldNames(t *testing.T) {
	h := newHandler(1)
	h.ms[0].Relay = &RelayStats{}
	s := serve(t, &Server{Path: sockPath(t), Handler: h})
	c := dial(t, s.Path)
	c.send(`{"cmd":"status"}` + "\n")
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		OK       bool             `json:"ok"`
		Mappings []map[string]any `json:"mappings"`
	}
	if err := json.Unmarshal(line, &raw); err != nil || !raw.OK || len(raw.Mappings) != 1 {
		t.Fatalf("%s: %v", line, err)
	}
	var keys []string
	for k := range raw.Mappings[0] {
		keys = append(keys, k)
	}
	want := []string{"comment", "enabled", "ip4p", "last_change", "last_error", "mode",
		"private_ip", "private_port", "protocol", "public_ip", "public_port", "relay",
		"retries", "section", "since", "state", "stun_server"}
	if !sameSet(keys, want) {
		t.Errorf("mapping keys %q, want %q", keys, want)
	}
	keys = keys[:0]
	for k := range raw.Mappings[0]["relay"].(map[string]any) {
		keys = append(keys, k)
	}
	if want := []string{"active", "total", "bytes_up", "bytes_down"}; !sameSet(keys, want) {
		t.Errorf("relay keys %q, want %q", keys, want)
	}

	// No mappings: an empty list, not null; other commands: no list.
	h.mu.Lock()
	h.ms = nil
	h.mu.Unlock()
	for req, want := range map[string]string{
		`{"cmd":"status"}`: `{"ok":true,"mappings":[]}`,
		`{"cmd":"reload"}`: `{"ok":true}`,
		`{"cmd":"x"}`:      `{"ok":false,"error":"unknown command \"x\" (want status, reload, restart or firewall-sync)"}`,
	} {
		c.send(req + "\n")
		line, err := c.r.ReadString('\n')
		if err != nil || line != want+"\n" {
			t.Errorf("%s: got %q (%v), want %s", req, line, err, want)
		}
	}
}

func sameSet(a, b []string) bool {
	m := map[string]bool{}
	for _, s := range a {
		m[s] = true
	}
	for _, s := range b {
		if !m[s] {
			return false
		}
	}
	return len(a) == len(b)
}

// Bad lines get an error and the connection stays usable; several requests
// may be sent at once and are answered in order.
func TestBadRequestsKeepConnection(t *testing.T) {
	s := serve(t, &Server{Path: sockPath(t), Handler: newHandler(2)})
	c := dial(t, s.Path)
	c.send("{bad\n\n   \n" + `{"cmd":"fly"}` + "\n" + `{"cmd":"status","section":"map1"}` + "\n" +
		`null` + "\n" + `{"cmd":"status"} {"cmd":"status"}` + "\n" + `["status"]` + "\n" + `{"cmd":"reload"}` + "\n")
	for i, want := range []string{
		"malformed request: invalid character 'b' looking for beginning of object key string",
		`unknown command "fly" (want status, reload, restart or firewall-sync)`, // blank lines: no answer
		"",
		`unknown command "" (want status, reload, restart or firewall-sync)`,
		"malformed request: invalid character '{' after top-level value",
		"malformed request: json: cannot unmarshal array into Go value of type ctl.Request",
		"",
	} {
		resp := c.recv()
		if resp.Error != want || resp.OK != (want == "") {
			t.Errorf("response %d: %+v, want error %q", i, resp, want)
		}
	}
	// A last line without a newline, then a half-close: answered, then EOF.
	c.send(`{"cmd":"status"}`)
	c.CloseWrite()
	if resp := c.recv(); !resp.OK || len(resp.Mappings) != 2 {
		t.Errorf("unterminated last line: %+v", resp)
	}
	if _, err := c.r.ReadByte(); err != io.EOF {
		t.Errorf("after the last answer: %v, want EOF", err)
	}
}

func TestRequestTooLong(t *testing.T) {
	s := serve(t, &Server{Path: sockPath(t), Handler: newHandler(1)})

	// Up to the limit, newline included: fine.
	c := dial(t, s.Path)
	pad := strings.Repeat(" ", MaxRequest-len(`{"cmd":"status"}`)-1)
	c.send(`{"cmd":"status"}` + pad + "\n")
	if resp := c.recv(); !resp.OK {
		t.Fatalf("request of MaxRequest bytes: %+v", resp)
	}

	// A 1 MiB line: an error, then the server hangs up.
	c = dial(t, s.Path)
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write([]byte(`{"cmd":"status","section":"` + strings.Repeat("x", 1<<20) + "\"}\n"))
		werr <- err
	}()
	if resp := c.recv(); resp.Error != "request longer than 65536 bytes" {
		t.Errorf("1 MiB line: %+v", resp)
	}
	if err := <-werr; !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("writing the rest of the line: %v, want a closed connection", err)
	}
	if _, err := c.r.ReadByte(); err == nil {
		t.Error("connection still open")
	}

	if _, err := call(t, s.Path, Request{Cmd: CmdStatus}); err != nil {
		t.Fatalf("after the long line: %v", err)
	}
}

// A client that asks for a big status and never reads is dropped after the
// write timeout, and others are served meanwhile.
func TestClientThatNeverReads(t *testing.T) {
	h := newHandler(5000)
	s := serve(t, &Server{Path: sockPath(t), Handler: h, WriteTimeout: 200 * time.Millisecond})
	full, _ := json.Marshal(Response{OK: true, Mappings: h.ms})
	if len(full) < 1<<20 {
		t.Fatalf("a status of %d bytes may fit in the socket buffers", len(full))
	}

	c := dial(t, s.Path)
	c.send(`{"cmd":"status"}` + "\n")
	if _, err := call(t, s.Path, Request{Cmd: CmdReload}); err != nil {
		t.Fatalf("another client while one is stuck: %v", err)
	}

	// Wait for the server to hang up without reading: reading would let
	// its write go on.
	waitHangUp(t, c.UnixConn, 10*time.Second)
	n, err := io.Copy(io.Discard, c.r)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatal(err)
	}
	if n >= int64(len(full)) {
		t.Errorf("got the whole response (%d bytes): not dropped", n)
	}
	// (Not a status: 2 MB in 200 ms may be too much for a loaded machine.)
	if _, err := call(t, s.Path, Request{Cmd: CmdReload}); err != nil {
		t.Fatalf("after dropping it: %v", err)
	}
}

// waitHangUp waits until the peer of c has closed its end, without
// reading from c.
func waitHangUp(t testing.TB, c *net.UnixConn, timeout time.Duration) {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var hup bool
		err := rc.Control(func(fd uintptr) {
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
			if n, err := unix.Poll(fds, 50); err == nil && n == 1 {
				hup = fds[0].Revents&(unix.POLLRDHUP|unix.POLLHUP) != 0
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if hup {
			return
		}
	}
	t.Fatalf("the server did not hang up within %v", timeout)
}

// A client that connects and sends nothing is dropped after the idle
// timeout, and its slot is free again.
func TestIdleClient(t *testing.T) {
	s := serve(t, &Server{Path: sockPath(t), Handler: newHandler(1), IdleTimeout: 100 * time.Millisecond, MaxConns: 1})
	c := dial(t, s.Path)
	start := time.Now()
	if _, err := c.r.ReadByte(); err != io.EOF {
		t.Fatalf("idle client: %v, want EOF", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("dropped after %v, before the idle timeout", d)
	}
	callEventually(t, s.Path) // the slot is freed just after the close
}

// More clients than MaxConns: those beyond are turned away with an error,
// the others are served, and the daemon keeps answering.
func TestConnectionCap(t *testing.T) {
	h := newHandler(2)
	h.gate = make(chan struct{}) // the first clients hold their slots
	s := serve(t, &Server{Path: sockPath(t), Handler: h})

	const clients = 100
	type result struct {
		resp *Response
		err  error
	}
	results := make(chan result, clients)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			resp, err := call(t, s.Path, Request{Cmd: CmdStatus})
			results <- result{resp, err}
		})
	}
	ok, busy := 0, 0
	for busy < clients-DefaultMaxConns {
		r := <-results
		var re *RemoteError
		if !errors.As(r.err, &re) || re.Msg != "too many connections (16)" {
			t.Fatalf("client beyond the cap: %+v %v", r, r.err)
		}
		busy++
	}
	close(h.gate)
	wg.Wait()
	close(results)
	for r := range results {
		var re *RemoteError
		switch {
		case r.err == nil && len(r.resp.Mappings) == 2:
			ok++
		case errors.As(r.err, &re) && re.Msg == "too many connections (16)":
			busy++ // a slot was still held by serve's check
		default:
			t.Errorf("client: %+v", r)
		}
	}
	if ok == 0 || ok > DefaultMaxConns || ok+busy != clients {
		t.Errorf("%d served, %d turned away", ok, busy)
	}
	callEventually(t, s.Path) // the served clients' slots free up as they hang up
}

// callEventually asks for the status until the daemon has a free slot.
func callEventually(t testing.TB, path string) {
	t.Helper()
	var err error
	for range 100 {
		if _, err = call(t, path, Request{Cmd: CmdStatus}); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no free slot: %v", err)
}

func TestStaleSocketRemoved(t *testing.T) {
	path := sockPath(t)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close() // a daemon that died: the file stays, nobody listens

	if _, err := call(t, path, Request{Cmd: CmdStatus}); err == nil ||
		err.Error() != "natmap daemon is not running (nothing listens on "+path+")" {
		t.Errorf("stale socket: %v", err)
	}
	s := serve(t, &Server{Path: path, Handler: newHandler(1)})
	if _, err := call(t, s.Path, Request{Cmd: CmdStatus}); err != nil {
		t.Fatal(err)
	}
}

func TestNotASocketKept(t *testing.T) {
	path := sockPath(t)
	if err := os.WriteFile(path, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := (&Server{Path: path, Handler: newHandler(1)}).Serve(t.Context())
	if err == nil || err.Error() != "control socket: "+path+" exists and is not a socket" {
		t.Errorf("Serve: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "keep me" {
		t.Error("the file was touched")
	}
}

func TestSecondServerRefused(t *testing.T) {
	s := serve(t, &Server{Path: sockPath(t), Handler: newHandler(1)})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := (&Server{Path: s.Path, Handler: newHandler(2)}).Serve(ctx)
	if err == nil || err.Error() != "another natmap daemon is running on "+s.Path {
		t.Fatalf("second server: %v", err)
	}
	resp, err := call(t, s.Path, Request{Cmd: CmdStatus})
	if err != nil || len(resp.Mappings) != 1 {
		t.Fatalf("first server after the second was refused: %+v, %v", resp, err)
	}
}

func TestSocketFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run", "natmap") // missing: created
	s := serve(t, &Server{Path: filepath.Join(dir, "natmap.sock"), Handler: newHandler(1)})
	fi, err := os.Lstat(s.Path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want a socket, 0600", fi.Mode())
	}
	if err := s.stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := os.Lstat(s.Path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket left behind: %v", err)
	}
	if _, err := call(t, s.Path, Request{Cmd: CmdStatus}); err == nil ||
		err.Error() != "natmap daemon is not running (no socket at "+s.Path+")" {
		t.Errorf("no daemon: %v", err)
	}
}

func TestCallTimeout(t *testing.T) {
	h := newHandler(1)
	h.gate = make(chan struct{})
	defer close(h.gate)
	s := serve(t, &Server{Path: sockPath(t), Handler: h})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	resp, err := Call(ctx, s.Path, Request{Cmd: CmdStatus})
	if resp != nil || !errors.Is(err, context.DeadlineExceeded) ||
		err.Error() != "natmap daemon on "+s.Path+" did not answer: context deadline exceeded" {
		t.Errorf("got %+v, %v", resp, err)
	}
}

// When ctx ends, Serve drops every client (idle, waiting for the handler,
// not reading) and returns only after all its goroutines ended.
func TestServeLeaksNoGoroutines(t *testing.T) {
	h := newHandler(5000)
	h.gate = make(chan struct{})
	s := serve(t, &Server{Path: sockPath(t), Handler: h})
	dial(t, s.Path)                                 // idle
	dial(t, s.Path).send(`{"cmd":"status"}` + "\n") // in the handler
	for i := range 3 {
		dial(t, s.Path).send(`{"cmd":"reload"}` + "\n" + strings.Repeat(" ", i*1000)) // mid-line
	}
	time.Sleep(50 * time.Millisecond) // let the server take them in

	if n := serverGoroutines(); n == 0 {
		t.Fatal("no server goroutines seen: the check is broken")
	}
	if err := s.stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if n := serverGoroutines(); n != 0 {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d server goroutines left after Serve returned:\n%s", n, buf[:runtime.Stack(buf, true)])
	}

	// Slow readers too: a stuck write ends with the server, not with the
	// write timeout (stop fails after 10 s).
	close(h.gate)
	s = serve(t, &Server{Path: sockPath(t), Handler: h, WriteTimeout: time.Hour})
	dial(t, s.Path).send(`{"cmd":"status"}` + "\n")
	time.Sleep(50 * time.Millisecond)
	if err := s.stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if n := serverGoroutines(); n != 0 {
		t.Fatalf("%d server goroutines left", n)
	}
}

// serverGoroutines counts goroutines running the server's code.
func serverGoroutines() int {
	buf := make([]byte, 1<<20)
	n := 0
	for g := range strings.SplitSeq(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "internal/ctl.(*Server)") {
			n++
		}
	}
	return n
}

// Status carries the daemon's version, the one `natmap --version` and the
// packages give.
func TestStatusVersion(t *testing.T) {
	path := sockPath(t)
	serve(t, &Server{Path: path, Handler: newHandler(1), Version: "20261205-r1"})
	resp, err := call(t, path, Request{Cmd: CmdStatus})
	if err != nil || resp.Version != "20261205-r1" {
		t.Fatalf("status: version %q (%v), want 20261205-r1", resp.Version, err)
	}
	if resp, err := call(t, path, Request{Cmd: CmdReload}); err != nil || resp.Version != "" {
		t.Errorf("reload: version %q (%v), want none", resp.Version, err)
	}
}

// A client holding every slot with idle connections cannot lock natmap
// status out: the new client takes the slot of the one idle the longest,
// which is told why it is hung up on.
func TestIdlestClosedForNewClient(t *testing.T) {
	s := serve(t, &Server{Path: sockPath(t), Handler: newHandler(1)})
	var held []*rawConn
	for range DefaultMaxConns {
		held = append(held, dial(t, s.Path))
	}
	// The last one is busy with requests: it stays, the first goes.
	held[DefaultMaxConns-1].send(`{"cmd":"status"}` + "\n")
	if r := held[DefaultMaxConns-1].recv(); !r.OK {
		t.Fatalf("held client: %+v", r)
	}
	for range 3 {
		resp, err := call(t, s.Path, Request{Cmd: CmdStatus})
		if err != nil || len(resp.Mappings) != 1 {
			t.Fatalf("status with every slot held: %+v, %v", resp, err)
		}
	}
	if r := held[0].recv(); r.Error != "too many connections (16)" {
		t.Fatalf("the idlest client got %+v", r)
	}
	waitHangUp(t, held[0].UnixConn, 5*time.Second)
	held[DefaultMaxConns-1].send(`{"cmd":"status"}` + "\n")
	if r := held[DefaultMaxConns-1].recv(); !r.OK {
		t.Fatalf("the most recently active client was closed: %+v", r)
	}
}

// Under umask 000 the socket must never be reachable with a mode wider
// than 0600, not even between bind and chmod: a watcher looks at the path
// as fast as it can while servers start and stop.
func TestSocketNeverWiderThan0600(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	path := sockPath(t)
	stop := make(chan struct{})
	seen := make(chan fs.FileMode, 1)
	var watcher sync.WaitGroup
	watcher.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if fi, err := os.Lstat(path); err == nil && fi.Mode().Perm() != 0o600 {
				select {
				case seen <- fi.Mode():
				default:
				}
			}
		}
	})
	defer func() { close(stop); watcher.Wait() }()
	for range 200 {
		ctx, cancel := context.WithCancel(context.Background())
		ready := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			done <- (&Server{Path: path, Handler: newHandler(1), Ready: func() { close(ready) }}).Serve(ctx)
		}()
		select {
		case <-ready:
		case err := <-done:
			t.Fatalf("Serve: %v", err)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-seen:
			t.Fatalf("the socket was reachable with mode %v", m)
		default:
		}
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
}
