package ctl

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Server serves the control socket. Set its fields, then call Serve once.
type Server struct {
	Path    string // DefaultPath when empty
	Handler Handler
	Log     *slog.Logger // nil: no logs
	Ready   func()       // called once the socket listens (optional)
	Version string       // the daemon's version, reported with status

	// Limits; zero or less means the Default.
	IdleTimeout  time.Duration // to send each request line
	WriteTimeout time.Duration // for the client to take each response
	MaxConns     int           // connections served at once

	maxRequest int // MaxRequest when zero; tests make it small
}

// rejectTimeout bounds the one write to a connection over MaxConns. A fresh
// connection's buffer is empty so it never waits in practice; the bound
// only makes sure the accept loop cannot be held.
const rejectTimeout = 100 * time.Millisecond

// Serve listens on s.Path and serves until ctx ends. It creates the
// socket's directory if missing, removes a stale socket left by a daemon
// that died, and refuses to start when a live daemon answers on the path.
// The socket is 0600: reload and restart are for root only. When every
// connection slot is taken, a new client takes the idlest one's. When ctx
// ends, Serve closes every connection, waits for their goroutines (and so for
// Handler calls in progress), removes the socket and returns nil. It
// returns an error only when it could not start.
func (s *Server) Serve(ctx context.Context) error {
	if s.Handler == nil {
		return errors.New("control socket: no handler")
	}
	path := cmp.Or(s.Path, DefaultPath)
	ln, unlink, err := listen(ctx, path)
	if err != nil {
		return err
	}
	defer unlink() // after the listener closed: registered first, runs last
	if s.Ready != nil {
		s.Ready()
	}
	// Every goroutine, this watcher included, ends before Serve returns.
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		<-ctx.Done()
		ln.Close()
	})
	conns := &connSet{max: orDefault(s.MaxConns, DefaultMaxConns), m: map[*served]struct{}{}}
	var backoff time.Duration
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// Out of fds and the like: wait instead of spinning, and keep
			// serving once it passes.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log().Warn("control socket: accept failed", "err", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		sc := &served{c: c, last: time.Now()}
		admitted, evicted := conns.admit(sc)
		if evicted != nil {
			// The idlest client makes room, so that no client can hold
			// every slot: a deadline in the past ends its read, and its
			// goroutine tells it why and hangs up.
			s.log().Debug("control socket: too many connections, closing the idlest")
			evicted.c.SetReadDeadline(time.Unix(1, 0))
		}
		if !admitted {
			s.log().Debug("control socket: too many connections")
			c.SetWriteDeadline(time.Now().Add(rejectTimeout))
			writeResponse(c, conns.tooMany())
			c.Close()
			continue
		}
		wg.Go(func() {
			defer conns.remove(sc)
			s.serveConn(ctx, sc, conns)
		})
	}
}

// connSet is the connections being served, at most max, so that a new
// client can take the slot of the idlest one.
type connSet struct {
	max int
	mu  sync.Mutex // guards m and every member's last, busy and evicted
	m   map[*served]struct{}
}

// served is one connection in a connSet.
type served struct {
	c       *net.UnixConn
	last    time.Time // accepted, or last request answered: idle since
	busy    bool      // a request is being handled and answered
	evicted bool      // closed to make room: handle nothing more
}

func (cs *connSet) tooMany() Response {
	return Response{Error: fmt.Sprintf("too many connections (%d)", cs.max)}
}

// admit adds sc when there is room, else makes room by taking out the
// connection idle the longest, which the caller wakes up to hang up. With
// every connection busy answering, sc is not admitted.
func (cs *connSet) admit(sc *served) (admitted bool, evicted *served) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if len(cs.m) >= cs.max {
		for o := range cs.m {
			if !o.busy && (evicted == nil || o.last.Before(evicted.last)) {
				evicted = o
			}
		}
		if evicted == nil {
			return false, nil
		}
		evicted.evicted = true
		delete(cs.m, evicted)
	}
	cs.m[sc] = struct{}{}
	return true, evicted
}

func (cs *connSet) remove(sc *served) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	delete(cs.m, sc)
}

// setBusy marks sc busy (handling a request, which admit never cuts
// short) or waiting for one, and reports false when sc was evicted.
func (cs *connSet) setBusy(sc *served, busy bool) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if sc.busy && !busy {
		sc.last = time.Now()
	}
	sc.busy = busy
	return !sc.evicted
}

func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

// listen creates the socket at path, 0600, and returns with it a function
// that removes the socket file (when it is still this socket's).
//
// The socket is bound in a private directory (0700, from MkdirTemp), made
// 0600 there, then linked into place: nobody else can connect before its
// mode is final, whatever the umask. (Changing the umask instead would race
// with the rest of the process.) link fails rather than replace a socket
// another daemon made meanwhile.
func listen(ctx context.Context, path string) (*net.UnixListener, func(), error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("control socket: %w", err)
	}
	if err := removeStale(ctx, path); err != nil {
		return nil, nil, err
	}
	private, err := os.MkdirTemp(dir, ".ctl")
	if err != nil {
		return nil, nil, fmt.Errorf("control socket: %w", err)
	}
	defer os.RemoveAll(private)
	tmp := filepath.Join(private, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, nil, fmt.Errorf("control socket: %w", err)
	}
	ln.SetUnlinkOnClose(false) // its name is about to change: unlink removes it
	fail := func(err error) (*net.UnixListener, func(), error) {
		ln.Close()
		return nil, nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fail(err)
	}
	if err := os.Link(tmp, path); errors.Is(err, fs.ErrExist) {
		ln.Close()
		return nil, nil, fmt.Errorf("another natmap daemon is running on %s", path)
	} else if err != nil {
		return fail(err)
	}
	ours, err := os.Lstat(path)
	if err != nil {
		return fail(err)
	}
	unlink := func() {
		if fi, err := os.Lstat(path); err == nil && os.SameFile(fi, ours) {
			os.Remove(path)
		}
	}
	return ln, unlink, nil
}

// removeStale removes a socket file nobody listens on, and refuses to
// touch one a daemon answers on or a file that is not a socket.
func removeStale(ctx context.Context, path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("control socket: %s exists and is not a socket", path)
	}
	d := net.Dialer{Timeout: time.Second}
	c, err := d.DialContext(ctx, "unix", path)
	if err == nil {
		c.Close()
		return fmt.Errorf("another natmap daemon is running on %s", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		// EAGAIN (a full backlog) and the like: someone may be there.
		return fmt.Errorf("control socket: probing %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("control socket: removing stale socket: %w", err)
	}
	return nil
}

// serveConn answers c's requests until c ends, misbehaves, or ctx ends.
func (s *Server) serveConn(ctx context.Context, sc *served, conns *connSet) {
	c := sc.c
	// The watcher closes c when serveConn returns, or earlier when the
	// server stops, which unblocks a read or write in progress.
	ctx, cancel := context.WithCancel(ctx)
	var watch sync.WaitGroup
	defer watch.Wait()
	defer cancel()
	watch.Go(func() {
		<-ctx.Done()
		c.Close()
	})

	idle := orDefault(s.IdleTimeout, DefaultIdleTimeout)
	// A buffer of MaxRequest bytes: ReadSlice fails with ErrBufferFull on a
	// longer line, so a line is never held whole beyond the limit.
	maxReq := orDefault(s.maxRequest, MaxRequest)
	r := bufio.NewReaderSize(c, maxReq)
	for {
		c.SetReadDeadline(time.Now().Add(idle))
		// Evicted before the deadline was set, or while reading (the
		// evictor's past deadline ends the read): say why, then go.
		if !conns.setBusy(sc, false) {
			s.reply(c, conns.tooMany())
			return
		}
		line, err := r.ReadSlice('\n')
		if !conns.setBusy(sc, true) {
			s.reply(c, conns.tooMany())
			return
		}
		switch {
		case err == nil, err == io.EOF && len(line) > 0:
			// A last line without a newline (the client half-closed) is
			// still a request.
		case errors.Is(err, bufio.ErrBufferFull):
			s.log().Debug("control socket: request too long")
			s.reply(c, Response{Error: fmt.Sprintf("request longer than %d bytes", maxReq)})
			return
		default:
			return // EOF, idle, or closed
		}
		if len(bytes.TrimSpace(line)) > 0 {
			if s.reply(c, s.handle(ctx, line)) != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// reply writes resp, giving the client WriteTimeout to take it: a client
// that never reads must not hold the goroutine.
func (s *Server) reply(c net.Conn, resp Response) error {
	c.SetWriteDeadline(time.Now().Add(orDefault(s.WriteTimeout, DefaultWriteTimeout)))
	err := writeResponse(c, resp)
	if err != nil {
		s.log().Debug("control socket: dropping client", "err", err)
	}
	return err
}

func writeResponse(w io.Writer, resp Response) error {
	if !resp.OK && resp.Error == "" {
		resp.Error = "request failed" // the protocol promises a reason
	}
	b, err := json.Marshal(resp)
	if err != nil {
		b, _ = json.Marshal(Response{Error: "encoding the response: " + err.Error()})
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// handle answers one request line.
func (s *Server) handle(ctx context.Context, line []byte) Response {
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		return Response{Error: "malformed request: " + err.Error()}
	}
	s.log().Debug("control request", "cmd", req.Cmd, "section", req.Section)
	switch req.Cmd {
	case CmdStatus:
		ms := s.Handler.Status(ctx)
		if req.Section != "" {
			ms = section(ms, req.Section)
			if len(ms) == 0 {
				return Response{Error: fmt.Sprintf("no section %.64q", req.Section)}
			}
		}
		if ms == nil {
			ms = []MappingStatus{} // an empty list, not a missing one
		}
		return Response{OK: true, Version: s.Version, Mappings: ms}
	case CmdReload:
		if req.Section != "" {
			return Response{Error: "reload takes no section"}
		}
		return result(s.Handler.Reload(ctx))
	case CmdRestart:
		if req.Section == "" {
			return Response{Error: "restart needs a section"}
		}
		return result(s.Handler.Restart(ctx, req.Section))
	case CmdFirewallSync:
		fs, ok := s.Handler.(FirewallSyncer)
		if !ok {
			return Response{Error: "this daemon manages no firewall rules"}
		}
		return result(fs.FirewallSync(ctx))
	default:
		return Response{Error: fmt.Sprintf("unknown command %.64q (want status, reload, restart or firewall-sync)", req.Cmd)}
	}
}

func section(ms []MappingStatus, name string) []MappingStatus {
	for _, m := range ms {
		if m.Section == name {
			return []MappingStatus{m}
		}
	}
	return nil
}

func result(err error) Response {
	if err != nil {
		return Response{Error: err.Error()}
	}
	return Response{OK: true}
}
