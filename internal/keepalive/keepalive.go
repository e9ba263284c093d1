// Package keepalive keeps a TCP connection to an HTTP server busy, so the
// NAT keeps the mapping of its local port alive.
package keepalive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// ErrNoAnswer means the server did not answer a request within an interval.
var ErrNoAnswer = errors.New("keep-alive server stopped answering")

// Request is the C natmap's keep-alive request.
func Request(host string) []byte {
	return []byte("HEAD / HTTP/1.1\r\nHost: " + host + "\r\nConnection: keep-alive\r\n\r\n")
}

// Run sends a request at once and then every interval, and returns when the
// connection fails: the server closed it, an I/O error, or no answer to a
// request within one interval. It returns ctx.Err() when ctx ends. The
// caller closes conn.
//
// One goroutine does it all: between two requests it reads (responses are
// only drained: any byte proves the path is alive) until the read deadline,
// which is the next request's time; so a closed connection is seen at once
// and an idle mapping costs a single parked goroutine.
func Run(ctx context.Context, conn net.Conn, host string, interval time.Duration) error {
	// Ending ctx moves the read deadline to the past, which unblocks Read.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	req := Request(host)
	buf := make([]byte, 512)
	for {
		next := time.Now().Add(interval)
		_ = conn.SetWriteDeadline(next)
		if _, err := conn.Write(req); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("keep-alive send: %w", err)
		}
		_ = conn.SetReadDeadline(next)
		if ctx.Err() != nil { // AfterFunc may have run before that deadline was set
			return ctx.Err()
		}
		answered := false
		for {
			n, err := conn.Read(buf)
			answered = answered || n > 0
			if err == nil {
				continue
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				if err == io.EOF {
					err = errors.New("keep-alive server closed the connection")
				}
				return fmt.Errorf("keep-alive: %w", err)
			}
			break // the next request's time
		}
		if !answered {
			return ErrNoAnswer
		}
	}
}
