package ctl

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

// Call sends req to the daemon listening on path (DefaultPath when empty)
// and returns its response. ctx bounds the whole exchange; Call sets no
// timeout of its own.
//
// Errors come in two kinds. When the daemon could not be asked (not
// running, no answer in time, a broken answer), the Response is nil and the
// error says why in one line. When the daemon answered ok=false, Call
// returns both the Response and a *RemoteError with its message: callers
// that only care about success check the error, and `natmap status --json`
// can still print the daemon's answer.
func Call(ctx context.Context, path string, req Request) (*Response, error) {
	path = cmp.Or(path, DefaultPath)
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, dialError(ctx, path, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	// A deadline in the past unblocks the read or write in progress.
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encoding request: %w", err)
	}
	_, werr := c.Write(append(b, '\n'))
	// Read even when the write failed: a daemon that turns the client away
	// (too many connections, request too long) answers, then closes,
	// perhaps before the request arrived.
	line, rerr := bufio.NewReader(io.LimitReader(c, MaxResponse)).ReadBytes('\n')
	switch {
	case rerr == nil:
	case ended(ctx, rerr):
		return nil, fmt.Errorf("natmap daemon on %s did not answer: %w", path, context.Cause(ctx))
	case werr != nil:
		return nil, fmt.Errorf("sending to natmap daemon on %s: %w", path, werr)
	case len(line) == 0 && (rerr == io.EOF || errors.Is(rerr, syscall.ECONNRESET)):
		return nil, fmt.Errorf("natmap daemon on %s closed the connection without answering", path)
	case rerr == io.EOF:
		return nil, fmt.Errorf("natmap daemon on %s: response cut short or longer than %d bytes", path, MaxResponse)
	default:
		return nil, fmt.Errorf("reading from natmap daemon on %s: %w", path, rerr)
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		return nil, fmt.Errorf("malformed response from natmap daemon on %s: %w", path, err)
	}
	if !resp.OK {
		return &resp, &RemoteError{Msg: cmp.Or(resp.Error, "request failed")}
	}
	return &resp, nil
}

// dialError says in one line why the daemon could not be reached.
func dialError(ctx context.Context, path string, err error) error {
	switch {
	case ended(ctx, err):
		return fmt.Errorf("natmap daemon on %s did not answer: %w", path, context.Cause(ctx))
	case errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("natmap daemon is not running (no socket at %s)", path)
	case errors.Is(err, syscall.ECONNREFUSED):
		// The socket file of a daemon that died without removing it.
		return fmt.Errorf("natmap daemon is not running (nothing listens on %s)", path)
	case errors.Is(err, syscall.EACCES):
		return fmt.Errorf("no permission to use %s: the natmap daemon is root only", path)
	default:
		return fmt.Errorf("connecting to natmap daemon: %w", err)
	}
}

// ended tells whether err came from ctx ending. The connection's deadline
// is ctx's, and may pass a moment before ctx's own timer fires: a timeout
// waits for it.
func ended(ctx context.Context, err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		<-ctx.Done()
	}
	return ctx.Err() != nil
}
