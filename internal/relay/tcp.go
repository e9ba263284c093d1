package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/natmap-go/natmap/internal/sockopt"
)

// TCP relays every connection accepted on Listener to a new connection from
// Dial, both ways, until both sides are done. Bytes move by splice(2), never
// through user space. An EOF from either side is passed on as a half-close
// (CloseWrite) while the other direction goes on; an error (a reset) on
// either side resets both.
type TCP struct {
	// Listener listens on the bind port. Serve closes it.
	Listener *net.TCPListener
	// Dial connects to the target. It is called once per accepted
	// connection, so a target that changes (the public port) is followed;
	// its ctx ends when Serve ends or after IdleTimeout. Return a
	// *net.TCPConn: that keeps the splice(2) path and lets TCP_INFO see the
	// target side too.
	Dial func(ctx context.Context) (net.Conn, error)
	// IdleTimeout closes a connection that carried no data in either
	// direction for this long (C natmap -T); 0 means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// Log gets one line per noteworthy event; nil discards them.
	Log *slog.Logger
	// Stats, if not nil, gets live counters.
	Stats *Stats
}

// handoff bounds how long accepting waits for a target dial when out of fds.
const handoff = time.Second

// sweepEvery is the longest the idle sweep sleeps.
const sweepEvery = time.Second

// tcpRun is one Serve call's state.
type tcpRun struct {
	*TCP
	idle      time.Duration
	log       *slog.Logger
	stats     *Stats
	dialLog   rateLog
	acceptLog rateLog

	pipes pipes // for splice, shared by the connections

	mu     sync.Mutex
	conns  map[*tcpConn]struct{}
	closed bool // Serve is ending: refuse new connections
}

// Serve accepts and relays until ctx ends or the listener fails; it then
// closes the listener and every relayed connection (with a reset) and
// returns only after all its goroutines ended. It returns ctx.Err() when ctx
// ended, else the accept error.
//
// Out of fds (EMFILE, ENFILE) or memory, accepting pauses (5 ms, doubling
// to 500 ms) while new connections wait in the listen backlog; the first
// one accepted afterwards gets the next free fd for its target dial before
// accepting goes on.
func (r *TCP) Serve(ctx context.Context) error {
	if r.Listener == nil || r.Dial == nil {
		return errors.New("tcp relay: Listener and Dial are required")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := &tcpRun{
		TCP:       r,
		idle:      idleTimeout(r.IdleTimeout),
		log:       logger(r.Log),
		stats:     stats(r.Stats),
		dialLog:   rateLog{every: time.Second},
		acceptLog: rateLog{every: 10 * time.Second},
		conns:     make(map[*tcpConn]struct{}),
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		<-ctx.Done()
		r.Listener.Close() // unblocks Accept
	})
	wg.Go(func() { s.reap(ctx) })
	err := s.accept(ctx, &wg)
	cancel()
	s.abortAll()
	wg.Wait()
	s.pipes.close()
	return err
}

func (s *tcpRun) accept(ctx context.Context, wg *sync.WaitGroup) error {
	var backoff time.Duration // > 0: the last accept failed for want of fds or memory
	for {
		c, err := s.Listener.AcceptTCP()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !temporary(err) {
				return fmt.Errorf("tcp relay: accept: %w", err)
			}
			backoff = nextBackoff(backoff)
			s.acceptLog.log(s.log, slog.LevelWarn, "tcp relay: accept failed, retrying", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		if backoff == 0 {
			wg.Go(func() { s.handle(ctx, c, nil) })
			continue
		}
		// Out of fds a moment ago: let this connection's target dial take
		// the next free fd before accepting again, or the next accept
		// takes it and both connections fail.
		backoff = 0
		dialed := make(chan struct{})
		wg.Go(func() { s.handle(ctx, c, dialed) })
		select {
		case <-dialed:
		case <-time.After(handoff): // a slow dial has its socket by now
		case <-ctx.Done():
		}
	}
}

// handle relays one accepted connection and closes it. It closes dialed, if
// not nil, once the target dial returned.
func (s *tcpRun) handle(ctx context.Context, client *net.TCPConn, dialed chan struct{}) {
	s.stats.Total.Add(1)
	s.stats.Active.Add(1)
	defer s.stats.Active.Add(-1)

	target, err := s.dial(ctx, dialed)
	if err != nil {
		if ctx.Err() == nil {
			s.dialLog.log(s.log, slog.LevelWarn, "tcp relay: target dial failed", "client", client.RemoteAddr().String(), "err", err)
		}
		// A reset, as the client would get from a refusing target: a
		// clean EOF could pass for an empty answer.
		sockopt.Abort(client)
		return
	}

	c := newTCPConn(client, target, &s.pipes, &s.stats.BytesUp, &s.stats.BytesDown)
	if !s.add(c) {
		c.abort()
		return
	}
	defer s.remove(c)
	err = c.relay()
	if c.idleClosed.Load() {
		s.log.Debug("tcp relay: idle connection closed", "client", client.RemoteAddr().String(), "idle_timeout", s.idle)
		return
	}
	up, down := c.bytes()
	s.log.Debug("tcp relay: connection closed", "client", client.RemoteAddr().String(),
		"up", up, "down", down, "duration", time.Since(c.start).Round(time.Millisecond), "err", err)
}

// dial connects to the target. A dial that hangs leaves the client idle
// both ways: the idle timeout bounds it too.
//
// With dialed (accepted when out of fds a moment ago), the accept loop waits
// for this dial, for up to handoff, so nothing else in the relay competes
// for fds: it retries while the fds of a closing connection are being freed
// (one at a time), then closes dialed.
func (s *tcpRun) dial(ctx context.Context, dialed chan struct{}) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, s.idle)
	defer cancel()
	if dialed == nil {
		return s.Dial(ctx)
	}
	defer close(dialed)
	var backoff time.Duration
	for end := time.Now().Add(handoff); ; {
		c, err := s.Dial(ctx)
		if err == nil || !temporary(err) || time.Now().After(end) {
			return c, err
		}
		backoff = nextBackoff(backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return nil, err
		}
	}
}

func (s *tcpRun) add(c *tcpConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *tcpRun) remove(c *tcpConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
}

func (s *tcpRun) snapshot() []*tcpConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := make([]*tcpConn, 0, len(s.conns))
	for c := range s.conns {
		cs = append(cs, c)
	}
	return cs
}

// abortAll resets every relayed connection and refuses new ones: a relay
// that stops mid-stream must not let a client take a cut stream for a
// complete one.
func (s *tcpRun) abortAll() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	for _, c := range s.snapshot() {
		c.abort()
	}
}

// reap closes idle connections.
//
// Why TCP_INFO: per-read deadlines would cut slow but active flows (an SSH
// session waiting for a key), and resetting a timer per splice would cost
// more than the splice. The kernel already keeps, per socket, the time
// since data was last received and sent (Last_data_recv/sent, ms), so a
// sweep over both sockets of every connection gives the exact idle time at
// the cost of two getsockopt calls. The sweep sleeps until the earliest
// moment a connection could expire (at most sweepEvery), so a connection
// is closed within ~10 ms of IdleTimeout, not within a polling period.
func (s *tcpRun) reap(ctx context.Context) {
	t := time.NewTimer(min(sweepEvery, s.idle))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		t.Reset(s.sweep())
	}
}

// sweep samples every connection, closes the idle ones and returns when to
// sweep next.
func (s *tcpRun) sweep() time.Duration {
	// A new connection cannot expire before a full s.idle from now, so
	// sleeping at most s.idle never misses one.
	next := min(sweepEvery, s.idle)
	for _, c := range s.snapshot() {
		left := s.idle - c.idle()
		if left <= 0 {
			c.closeIdle()
			continue
		}
		next = min(next, left)
	}
	return max(next, 10*time.Millisecond)
}

// tcpConn is one relayed connection.
type tcpConn struct {
	client     *net.TCPConn
	target     net.Conn
	pipes      *pipes
	start      time.Time
	closeOnce  sync.Once
	idleClosed atomic.Bool

	up, down flow
}

// flow is one direction's byte count, live while its copy runs.
type flow struct {
	total *atomic.Int64 // the Stats counter
	n     atomic.Int64  // bytes moved so far, all added to total
}

func (f *flow) add(n int64) {
	f.n.Add(n)
	f.total.Add(n)
}

func newTCPConn(client *net.TCPConn, target net.Conn, pipes *pipes, up, down *atomic.Int64) *tcpConn {
	c := &tcpConn{client: client, target: target, pipes: pipes, start: time.Now()}
	c.up.total, c.down.total = up, down
	return c
}

// relay copies both ways until both directions ended. An EOF half-closes
// the other side and the other direction goes on; an error resets both.
func (c *tcpConn) relay() error {
	downErr := make(chan error, 1)
	go func() { downErr <- c.copy(c.client, c.target, &c.down) }()
	err := c.copy(c.target, c.client, &c.up)
	// Report the error that ended the connection, not the "use of closed
	// connection" it then caused on the other direction.
	if derr := <-downErr; err == nil || errors.Is(err, net.ErrClosed) {
		err = derr
	}
	c.close()
	return err
}

// copy relays src to dst.
func (c *tcpConn) copy(dst, src net.Conn, f *flow) error {
	err := c.move(dst, src, f)
	if err == nil {
		err = closeWrite(dst)
	}
	if err != nil {
		c.abort()
		return err
	}
	return nil
}

// move relays src to dst until src's EOF, counting as it goes: by
// splice(2), or through user space when dst or src is not a socket or
// splice cannot be had.
func (c *tcpConn) move(dst, src net.Conn, f *flow) error {
	d, s, ok := rawConns(dst, src)
	if ok {
		err := c.pipes.splice(d, s, f.add)
		if !errors.Is(err, errNoSplice) {
			return err
		}
	}
	_, err := io.Copy(countingWriter{dst, f}, struct{ io.Reader }{src})
	return err
}

// countingWriter counts what reaches w as it goes. The Reader is wrapped
// too, so io.Copy cannot go around both (WriterTo, ReaderFrom).
type countingWriter struct {
	w io.Writer
	f *flow
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.f.add(int64(n))
	return n, err
}

func closeWrite(c net.Conn) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *tcpConn) bytes() (up, down int64) { return c.up.n.Load(), c.down.n.Load() }

// idle returns how long the connection carried no data either way.
func (c *tcpConn) idle() time.Duration {
	idle := time.Since(c.start)
	for _, s := range []net.Conn{c.client, c.target} {
		if ti, err := tcpInfo(s); err == nil {
			idle = min(idle, lastData(ti))
		}
	}
	return idle
}

func lastData(ti *unix.TCPInfo) time.Duration {
	return time.Duration(min(ti.Last_data_recv, ti.Last_data_sent)) * time.Millisecond
}

func tcpInfo(c net.Conn) (*unix.TCPInfo, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, errors.New("not a socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	var ti *unix.TCPInfo
	var serr error
	if err := rc.Control(func(fd uintptr) {
		ti, serr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil {
		return nil, err
	}
	return ti, serr
}

// close ends a connection whose directions both ended.
func (c *tcpConn) close() {
	c.closeOnce.Do(func() {
		c.client.Close()
		c.target.Close()
	})
}

// closeIdle closes an idle connection with FINs: nothing is lost.
func (c *tcpConn) closeIdle() {
	c.closeOnce.Do(func() {
		c.idleClosed.Store(true)
		c.client.Close()
		c.target.Close()
	})
}

// abort resets both sides, so each peer learns the stream broke.
func (c *tcpConn) abort() {
	c.closeOnce.Do(func() {
		sockopt.Abort(c.client)
		sockopt.Abort(c.target)
	})
}
