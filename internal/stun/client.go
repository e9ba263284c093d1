package stun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

// maxBackoff caps UDP retransmission at maxBackoff × rto, so a long ctx
// keeps probing at a steady pace (500 ms doubles to at most 8 s, close to
// the RFC 8489 schedule) instead of going quiet.
const maxBackoff = 16

// BindTCP sends one Binding request on the established stream conn and
// returns the mapped address from the reply. RFC 5389 TCP framing applies:
// the 20-byte header gives the body length, which is checked (transaction
// id, type, size cap) before the body is read.
//
// ctx bounds the whole exchange: its deadline becomes conn's deadline and a
// cancel unblocks conn at once. Any deadline conn had is replaced, and conn
// is left with none. Without a deadline or cancel on ctx, a silent server
// blocks BindTCP until the connection fails.
func BindTCP(ctx context.Context, conn net.Conn) (netip.AddrPort, error) {
	req, tid, err := newRequest(0)
	if err != nil {
		return netip.AddrPort{}, err
	}
	w := watch(ctx, conn)
	defer w.release()

	if err := w.set(time.Time{}); err != nil {
		return netip.AddrPort{}, fmt.Errorf("stun: TCP binding: %w", err)
	}
	if _, err := conn.Write(req); err != nil {
		return netip.AddrPort{}, w.ioError("TCP: sending request", err)
	}
	var hdr [headerSize]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		return netip.AddrPort{}, w.ioError("TCP: reading response header", err)
	}
	n, err := checkHeader(hdr[:], tid)
	if err != nil {
		// On a stream a stray or broken header cannot be skipped: we would
		// not know where the next message starts.
		return netip.AddrPort{}, err
	}
	raw := make([]byte, headerSize+n)
	copy(raw, hdr[:])
	if _, err := io.ReadFull(conn, raw[headerSize:]); err != nil {
		return netip.AddrPort{}, w.ioError("TCP: reading response body", err)
	}
	return ParseResponse(raw, tid)
}

// BindUDP sends a Binding request on the connected datagram conn and returns
// the mapped address from the reply. The same request (same transaction id)
// is sent again after rto, then after twice that, doubling up to
// maxBackoff × rto, until a reply comes or ctx ends; RFC 8489 suggests an
// rto of 500 ms.
//
// Datagrams that are not a response to this request (other transaction ids,
// requests, non-STUN garbage) are skipped. A response for this transaction
// is final: a Binding error response or a malformed reply is returned as an
// error. Read and write errors (such as ICMP port unreachable reported as
// "connection refused") are returned too.
//
// ctx is handled as in BindTCP; without a deadline or cancel on ctx, a
// silent server makes BindUDP retransmit forever.
func BindUDP(ctx context.Context, conn net.Conn, rto time.Duration) (netip.AddrPort, error) {
	if rto <= 0 {
		return netip.AddrPort{}, fmt.Errorf("stun: UDP binding: retransmission timeout %v is not positive", rto)
	}
	limit := rto * maxBackoff
	if limit/maxBackoff != rto { // overflow: an absurd rto, so no backoff
		limit = rto
	}
	req, tid, err := newRequest(0)
	if err != nil {
		return netip.AddrPort{}, err
	}
	w := watch(ctx, conn)
	defer w.release()

	// One byte more than the largest acceptable reply, so that an oversized
	// datagram is seen as such instead of being silently cut to fit.
	buf := make([]byte, headerSize+maxBodySize+1)
	wait := rto
	for {
		if err := w.set(time.Now().Add(wait)); err != nil {
			return netip.AddrPort{}, fmt.Errorf("stun: UDP binding: %w", err)
		}
		if _, err := conn.Write(req); err != nil {
			return netip.AddrPort{}, w.ioError("UDP: sending request", err)
		}
		for {
			n, err := conn.Read(buf)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) && w.err() == nil {
					break // retransmission timer, not ctx: send again
				}
				return netip.AddrPort{}, w.ioError("UDP: reading response", err)
			}
			addr, err := ParseResponse(buf[:n], tid)
			if err != nil && notForUs(buf[:n], err) {
				continue
			}
			return addr, err
		}
		if wait <= limit/2 {
			wait *= 2
		} else {
			wait = limit
		}
	}
}

// notForUs reports whether ParseResponse rejected raw as something other
// than a response to our transaction: such datagrams are strays to skip.
// ParseResponse makes these checks before any that judge our own reply.
func notForUs(raw []byte, err error) bool {
	return len(raw) < headerSize ||
		errors.Is(err, ErrNotSTUN) ||
		errors.Is(err, ErrBadMagicCookie) ||
		errors.Is(err, ErrTransactionMismatch) ||
		errors.Is(err, ErrNotResponse)
}

// watcher ties conn's deadline to ctx. The mutex orders the exchange's own
// deadline changes against the cancel callback, so a cancel is never
// overwritten by a later retransmission deadline, and the final clearing is
// never undone by a late cancel.
type watcher struct {
	ctx  context.Context
	conn net.Conn
	stop func() bool

	mu   sync.Mutex
	done bool
}

func watch(ctx context.Context, conn net.Conn) *watcher {
	w := &watcher{ctx: ctx, conn: conn}
	w.stop = context.AfterFunc(ctx, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if !w.done {
			// A deadline in the past wakes any blocked Read or Write now.
			_ = conn.SetDeadline(time.Unix(1, 0))
		}
	})
	return w
}

// err is ctx's error, or DeadlineExceeded once ctx's deadline has passed
// even if ctx's own timer has not fired yet (conn's timer may fire first).
func (w *watcher) err() error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	if d, ok := w.ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

// set gives conn the deadline t (zero: none), or ctx's if that is earlier.
func (w *watcher) set(t time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.err(); err != nil {
		return err
	}
	if d, ok := w.ctx.Deadline(); ok && (t.IsZero() || d.Before(t)) {
		t = d
	}
	return w.conn.SetDeadline(t)
}

// release stops watching ctx and clears conn's deadline.
func (w *watcher) release() {
	w.stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
	_ = w.conn.SetDeadline(time.Time{})
}

// ioError explains a failed read or write: a timeout caused by ctx becomes
// ctx's error, and an early end of stream becomes ErrTruncated.
func (w *watcher) ioError(what string, err error) error {
	if cerr := w.err(); cerr != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("stun: %s: %w", what, cerr)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %s: %w", ErrTruncated, what, err)
	}
	return fmt.Errorf("stun: %s: %w", what, err)
}
