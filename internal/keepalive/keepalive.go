// Package keepalive keeps a TCP connection to an HTTP server busy, so the
// NAT keeps the mapping of its local port alive.
package keepalive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
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
// caller closes conn; Run's reader has ended when Run returns.
func Run(ctx context.Context, conn net.Conn, host string, interval time.Duration) error {
	var answered atomic.Bool
	readErr := make(chan error, 1)
	go func() {
		// Responses are only drained: any byte proves the path is alive.
		buf := make([]byte, 512)
		for {
			n, err := conn.Read(buf)
			if n > 0 {
				answered.Store(true)
			}
			if err != nil {
				if err == io.EOF {
					err = errors.New("keep-alive server closed the connection")
				}
				readErr <- err
				return
			}
		}
	}()
	defer func() {
		// Unblock the reader and wait for it, so no goroutine outlives Run.
		_ = conn.SetReadDeadline(time.Unix(1, 0))
		<-readErr
	}()

	req := Request(host)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		answered.Store(false)
		_ = conn.SetWriteDeadline(time.Now().Add(interval))
		if _, err := conn.Write(req); err != nil {
			return fmt.Errorf("keep-alive send: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-readErr:
			readErr <- err // for the deferred wait
			return fmt.Errorf("keep-alive: %w", err)
		case <-tick.C:
			if !answered.Load() {
				return ErrNoAnswer
			}
		}
	}
}
