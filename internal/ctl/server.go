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
// The socket is 0600: reload and restart are for root only. When ctx ends,
// Serve closes every connection, waits for their goroutines (and so for
// Handler calls in progress), removes the socket and returns nil. It
// returns an error only when it could not start.
func (s *Server) Serve(ctx context.Context) error {
	if s.Handler == nil {
		return errors.New("control socket: no handler")
	}
	path := cmp.Or(s.Path, DefaultPath)
	ln, err := listen(ctx, path)
	if err != nil {
		return err
	}
	if s.Ready != nil {
		s.Ready()
	}
	// Every goroutine, this watcher included, ends before Serve returns.
	// Closing the listener also removes the socket file (Go unlinks it).
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		<-ctx.Done()
		ln.Close()
	})
	slots := make(chan struct{}, orDefault(s.MaxConns, DefaultMaxConns))
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
		select {
		case slots <- struct{}{}:
			wg.Go(func() {
				defer func() { <-slots }()
				s.serveConn(ctx, c)
			})
		default:
			s.log().Debug("control socket: too many connections")
			c.SetWriteDeadline(time.Now().Add(rejectTimeout))
			writeResponse(c, Response{Error: fmt.Sprintf("too many connections (%d)", cap(slots))})
			c.Close()
		}
	}
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

// listen creates the socket at path, 0600.
func listen(ctx context.Context, path string) (*net.UnixListener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := removeStale(ctx, path); err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	// Until the chmod the mode follows the umask; connecting needs write
	// permission, which a usual umask (022) gives nobody but root anyway.
	// (Changing the umask would race with the rest of the process.)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return ln, nil
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
func (s *Server) serveConn(ctx context.Context, c *net.UnixConn) {
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
		line, err := r.ReadSlice('\n')
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
