package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/natmap-go/natmap/internal/sockopt"
)

// TCP relays every connection accepted on Listener to a new connection from
// Dial, both ways, until both sides are done. Bytes move by splice(2), never
// through user space. An EOF from either side is passed on as a half-close
// (CloseWrite) while the other direction goes on; an error (a reset) on
// either side resets both.
//
// Memory: a relayed connection is its two sockets and a small record. One
// goroutine serves them all from an epoll instance (poller.go): no
// goroutine, stack or buffer waits per connection, and a direction holds a
// pipe only while bytes are in flight. Accepting takes the socket raw, and
// the target's socket is taken from the net.Conn that Dial returns.
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
	// Target, if set, is the target's address, read once per accepted
	// connection: the relay then connects to it itself, without waiting
	// (the event loop sees the connection made or refused), and Dial is
	// not used. A connection being made then costs no goroutine, context,
	// timer or net.Conn, and leaves no garbage: with a burst of clients
	// these were most of the relay's memory.
	Target func() netip.AddrPort
	// Log gets one line per noteworthy event; nil discards them.
	Log *slog.Logger
	// Stats, if not nil, gets live counters.
	Stats *Stats
}

// handoff bounds how long accepting waits for a target dial when out of fds.
const handoff = time.Second

// sweepEvery is the longest the idle sweep sleeps.
const sweepEvery = time.Second

// maxDialing bounds the target dials under way at once; further
// connections wait in the listen backlog. Each dial is a goroutine (and
// its stack) for its time: a burst of a thousand clients, accepted faster
// than one processor dials, would otherwise cost megabytes at once.
const maxDialing = 32

// pumpBudget bounds what one direction moves before the other connections
// get their turn: one goroutine serves them all.
const pumpBudget = 4 * pipeSize

// tcpRun is one Serve call's state.
type tcpRun struct {
	*TCP
	idle      time.Duration
	log       *slog.Logger
	stats     *Stats
	dialLog   rateLog
	acceptLog rateLog

	pipes   pipes // for splice, shared by the connections
	poll    *poller
	dialing chan struct{} // a slot per dial under way (maxDialing)

	// mu guards what follows and every spliced connection's state and fds:
	// the event loop holds it while it works through a batch of events.
	mu     sync.Mutex
	conns  map[uint32]*spliceConn // by event id
	copies map[*copyConn]struct{} // relayed through user space
	nextID uint32                 // the last event id given out
	again  []turn                 // directions that used up their budget with bytes left (the loop's own)
	spare  []turn                 // again's other backing array (the loop's own)
	ti     unix.TCPInfo           // the sweep's, for getsockopt
	closed bool                   // Serve is ending: refuse new connections
}

// turn is one direction of a connection.
type turn struct {
	c *spliceConn
	d int
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
	if r.Listener == nil || (r.Dial == nil && r.Target == nil) {
		return errors.New("tcp relay: Listener, and Dial or Target, are required")
	}
	// A listener's RawConn cannot wait (Read), an os.File's can: accept
	// from a duplicate of its fd, so accepted sockets come raw.
	lf, err := r.Listener.File()
	var poll *poller
	if err == nil {
		poll, err = newPoller()
	}
	var lrc syscall.RawConn
	if err == nil {
		lrc, err = lf.SyscallConn()
	}
	if err != nil {
		r.Listener.Close()
		if lf != nil {
			lf.Close()
		}
		if poll != nil {
			poll.close()
		}
		return fmt.Errorf("tcp relay: %w", err)
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
		poll:      poll,
		dialing:   make(chan struct{}, maxDialing),
		conns:     make(map[uint32]*spliceConn),
		copies:    make(map[*copyConn]struct{}),
	}
	var wg sync.WaitGroup
	wg.Add(1)
	context.AfterFunc(ctx, func() { // always: ctx ends before Serve returns
		defer wg.Done()
		r.Listener.Close()
		lf.Close()    // unblocks accepting
		poll.wakeUp() // and the event loop
	})
	sweeps := startSweeps(min(sweepEvery, s.idle), s.sweep)
	wg.Go(func() { s.loop(ctx) })
	err = s.accept(ctx, lrc, &wg)
	cancel()
	sweeps.stop()
	s.abortAll()
	wg.Wait()
	poll.close()
	s.pipes.close()
	return err
}

func (s *tcpRun) accept(ctx context.Context, lrc syscall.RawConn, wg *sync.WaitGroup) error {
	var from sockaddr
	acc := newRawIO(lrc, "accept4", func(fd int) (int, error) { return rawAccept(fd, &from) })
	var backoff time.Duration // > 0: the last accept failed for want of fds or memory
	for {
		select {
		case s.dialing <- struct{}{}: // handle frees it once dialed
		case <-ctx.Done():
			return ctx.Err()
		}
		fd, err := acc.read()
		if err != nil {
			<-s.dialing
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
		// As Go's accepted connections have it: small writes (a prompt, a
		// keystroke) leave at once.
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		client := from.addrPort()
		if s.Target != nil {
			s.connect(ctx, fd, client, s.Target())
			<-s.dialing
			backoff = 0
			continue
		}
		if backoff == 0 {
			wg.Go(func() { s.handle(ctx, fd, client, wg, nil) })
			continue
		}
		// Out of fds a moment ago: let this connection's target dial take
		// the next free fd before accepting again, or the next accept
		// takes it and both connections fail.
		backoff = 0
		dialed := make(chan struct{})
		wg.Go(func() { s.handle(ctx, fd, client, wg, dialed) })
		select {
		case <-dialed:
		case <-time.After(handoff): // a slow dial has its socket by now
		case <-ctx.Done():
		}
	}
}

// handle dials the target for one accepted connection (fd) and hands both
// to the event loop. It closes dialed, if not nil, once the target dial
// returned.
func (s *tcpRun) handle(ctx context.Context, fd int, client netip.AddrPort, wg *sync.WaitGroup, dialed chan struct{}) {
	s.stats.Total.Add(1)
	s.stats.Active.Add(1)
	target, err := s.dial(ctx, dialed)
	<-s.dialing
	if err != nil {
		s.dialFailed(ctx, fd, client, err)
		return
	}
	tfd, keep, ok := detach(target)
	if !ok {
		s.copyRelay(fd, client, target)
		return
	}
	s.add(&spliceConn{fd: [2]int{fd, tfd}, keep: keep, client: client, start: time.Now()})
}

// connect relays an accepted connection (fd) to target through a socket
// it starts connecting without waiting (TCP.Target): the event loop learns
// that it connected (writable) or failed (an error, which resets the
// client, as a refusing target would).
func (s *tcpRun) connect(ctx context.Context, fd int, client, target netip.AddrPort) {
	s.stats.Total.Add(1)
	s.stats.Active.Add(1)
	tfd, err := dialNoWait(ctx, target)
	if err != nil {
		s.dialFailed(ctx, fd, client, err)
		return
	}
	s.add(&spliceConn{fd: [2]int{fd, tfd}, client: client, start: time.Now(), connecting: true})
}

// dialFailed ends an accepted connection (fd) whose target could not be
// dialed: with a reset, as the client would get from a refusing target (a
// clean EOF could pass for an empty answer).
func (s *tcpRun) dialFailed(ctx context.Context, fd int, client netip.AddrPort, err error) {
	if ctx.Err() == nil {
		s.dialLog.log(s.log, slog.LevelWarn, "tcp relay: target dial failed", "client", client, "err", err)
	}
	abortFD(fd)
	s.stats.Active.Add(-1)
}

// add hands a connection to the event loop.
func (s *tcpRun) add(c *spliceConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.register(c)
	if err != nil {
		s.log.Warn("tcp relay: cannot relay connection", "client", c.client, "err", err)
	}
	if err != nil || s.closed {
		c.close(&s.pipes, true)
		s.stats.Active.Add(-1)
	}
}

// dialNoWait opens a non-blocking socket and starts connecting it to
// target. Out of fds, it tries again (5 ms, doubling) for up to handoff,
// while the accept loop waits: a connection that is ending frees one, and
// new clients wait in the listen backlog meanwhile.
func dialNoWait(ctx context.Context, target netip.AddrPort) (int, error) {
	var sa unix.Sockaddr
	family := unix.AF_INET6
	if ip := target.Addr(); ip.Is4() {
		family = unix.AF_INET
		sa = &unix.SockaddrInet4{Port: int(target.Port()), Addr: ip.As4()}
	} else {
		sa = &unix.SockaddrInet6{Port: int(target.Port()), Addr: ip.As16()}
	}
	var backoff time.Duration
	for end := time.Now().Add(handoff); ; {
		fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err == nil {
			// As Go's dialed connections have it (see accept).
			_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
			if err := unix.Connect(fd, sa); err != nil && err != unix.EINPROGRESS {
				unix.Close(fd)
				return -1, os.NewSyscallError("connect", err)
			}
			return fd, nil
		}
		if !temporary(err) || time.Now().After(end) {
			return -1, os.NewSyscallError("socket", err)
		}
		backoff = nextBackoff(backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return -1, ctx.Err()
		}
	}
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

// detach takes the socket out of a dialed connection: a duplicate of its fd,
// the connection closed. Out of fds for the duplicate, it keeps the
// connection open (keep) and shares its fd. ok is false when c is not a
// socket.
func detach(c net.Conn) (fd int, keep net.Conn, ok bool) {
	sc, isSock := c.(syscall.Conn)
	if !isSock {
		return -1, nil, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, nil, false
	}
	var own int
	var derr error
	if err := rc.Control(func(f uintptr) {
		own = int(f)
		fd, derr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, nil, false
	}
	if derr != nil {
		return own, c, true
	}
	c.Close()
	return fd, nil, true
}

// register gives c an event id and adds its sockets to the poller.
func (s *tcpRun) register(c *spliceConn) error {
	for {
		s.nextID++
		if s.nextID != wakeID && s.conns[s.nextID] == nil {
			break
		}
	}
	c.id = s.nextID
	for side, fd := range c.fd {
		if err := s.poll.add(fd, c.id, int32(side), tcpEvents); err != nil {
			return err
		}
	}
	s.conns[c.id] = c
	return nil
}

// loop serves every spliced connection: it waits for events and moves what
// they allow, until ctx ends.
func (s *tcpRun) loop(ctx context.Context) {
	for {
		var evs []unix.EpollEvent
		if len(s.again) > 0 {
			evs = s.poll.poll() // others' events first, then those turns
		} else {
			var err error
			if evs, err = s.poll.wait(); err != nil {
				if ctx.Err() == nil {
					s.log.Error("tcp relay: event loop failed", "err", err)
				}
				return
			}
		}
		if ctx.Err() != nil {
			return
		}
		s.mu.Lock()
		turns := s.again
		s.again = s.spare[:0]
		for _, ev := range evs {
			if ev.Fd == wakeID {
				s.poll.drainWake()
				continue
			}
			if c := s.conns[uint32(ev.Fd)]; c != nil {
				s.event(c, int(ev.Pad), ev.Events)
			}
		}
		for _, t := range turns {
			s.pump(t.c, t.d)
		}
		clear(turns)
		s.spare = turns[:0]
		s.mu.Unlock()
	}
}

// event moves what an event on one of c's sockets (side: up for the
// client's, down for the target's) allows: that socket is the source of
// direction side and the destination of the other.
func (s *tcpRun) event(c *spliceConn, side int, ev uint32) {
	if c.connecting {
		// Nothing moves before the target's socket is connected: what the
		// client sends, its EOF too (a shutdown would end the connect under
		// way), waits in the client's socket until then.
		switch {
		case side == up:
			return
		case ev&(unix.EPOLLERR|unix.EPOLLHUP) != 0:
			s.pump(c, down) // ends it with the connect's error
			return
		case ev&unix.EPOLLOUT == 0:
			return
		}
		c.connecting = false
		s.pump(c, up) // what the client sent meanwhile
		if c.closed {
			return
		}
	}
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		s.pump(c, side)
	}
	if ev&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 && c.dir[1-side].pending > 0 {
		s.pump(c, 1-side)
	}
}

// errBudget: a direction moved pumpBudget bytes and may have more.
var errBudget = errors.New("budget used")

// pump moves direction d of c as far as the sockets allow, then ends the
// connection if it is done or broken.
func (s *tcpRun) pump(c *spliceConn, d int) {
	if c.closed {
		return
	}
	err := s.move(c, d)
	switch {
	case err == errBudget:
		s.again = append(s.again, turn{c, d})
	case err != nil:
		s.finish(c, err, true)
	case c.dir[up].eof && c.dir[down].eof:
		s.finish(c, nil, false)
	}
}

const (
	up   = 0 // client -> target
	down = 1 // target -> client
)

// spliceConn is one relayed connection served by the event loop; s.mu
// guards it.
type spliceConn struct {
	id     uint32
	fd     [2]int   // client, target
	keep   net.Conn // the target's connection, when fd[1] is still its (out of fds)
	client netip.AddrPort
	start  time.Time
	dir    [2]direction // up, down
	closed bool
	// connecting: the target's socket is still connecting (TCP.Target);
	// ending now means the target could not be reached.
	connecting bool
}

// direction is one way of a connection.
type direction struct {
	p       pipe
	held    bool   // p is this direction's
	pending int    // bytes read but not yet written, in p or buf
	buf     []byte // user-space copy: bytes from off, held while they move
	off     int
	copy    bool  // the sockets cannot splice: user space
	eof     bool  // the source's EOF was passed on
	n       int64 // bytes moved
}

// copyBuf is the user-space copy's buffer, for when no pipe can be had.
const copyBuf = 32 << 10

// move relays direction d of c until its source has nothing (nil), its
// EOF was passed on (nil), its destination is full (nil; its EPOLLOUT
// resumes), it used its budget (errBudget), or an error.
func (s *tcpRun) move(c *spliceConn, d int) error {
	x := &c.dir[d]
	src, dst := c.fd[d], c.fd[1-d]
	for moved := 0; ; {
		if x.pending > 0 {
			var n int
			var err error
			if x.buf != nil {
				n, err = rawWrite(dst, x.buf[x.off:x.off+x.pending])
			} else {
				n, err = rawSplice(x.p.r, dst, x.pending)
			}
			if err == unix.EAGAIN {
				return nil
			}
			if err != nil {
				return os.NewSyscallError("write", err)
			}
			x.pending -= n
			x.off += n
			x.n += int64(n)
			moved += n
			if d == up {
				s.stats.BytesUp.Add(int64(n))
			} else {
				s.stats.BytesDown.Add(int64(n))
			}
			continue
		}
		if x.eof {
			return nil
		}
		if moved >= pumpBudget {
			return errBudget
		}
		n, err := s.fill(x, src)
		if err == unix.EAGAIN {
			return nil
		}
		if err != nil {
			return os.NewSyscallError("read", err)
		}
		if n == 0 {
			x.eof = true
			if err := unix.Shutdown(dst, unix.SHUT_WR); err != nil {
				return os.NewSyscallError("shutdown", err)
			}
			return nil
		}
		x.pending, x.off = n, 0
	}
}

// fill reads what src has into the direction's pipe, or its buffer when no
// pipe can be had: n > 0 bytes, 0 at EOF, or EAGAIN. A pipe or buffer is
// given back as soon as src has nothing.
func (s *tcpRun) fill(x *direction, src int) (int, error) {
	if !x.copy && !x.held {
		if p, err := s.pipes.get(); err == nil {
			x.p, x.held = p, true
		}
	}
	if x.held {
		n, err := rawSplice(src, x.p.w, pipeSize)
		if err == unix.EINVAL && x.n == 0 {
			x.copy = true // not a pair splice takes: user space from now on
		} else {
			if err != nil || n == 0 {
				s.pipes.put(x.p)
				x.held = false
			}
			return n, err
		}
	}
	if x.held {
		s.pipes.put(x.p)
		x.held = false
	}
	if x.buf == nil {
		x.buf = make([]byte, copyBuf)
	}
	n, err := rawRead(src, x.buf)
	if err != nil || n == 0 {
		x.buf = nil
	}
	return n, err
}

// finish closes c (with resets if abort) and forgets it.
func (s *tcpRun) finish(c *spliceConn, err error, abort bool) {
	var errno unix.Errno
	if c.connecting && errors.As(err, &errno) {
		// The connect's own error, as a dial would report it.
		s.dialLog.log(s.log, slog.LevelWarn, "tcp relay: target dial failed", "client", c.client, "err", os.NewSyscallError("connect", errno))
	} else {
		s.log.Debug("tcp relay: connection closed", "client", c.client,
			"up", c.dir[up].n, "down", c.dir[down].n, "duration", time.Since(c.start).Round(time.Millisecond), "err", err)
	}
	c.close(&s.pipes, abort)
	delete(s.conns, c.id)
	s.stats.Active.Add(-1)
}

// close closes both sockets: with a reset each if abort, so each peer
// learns the stream broke, else with FINs.
func (c *spliceConn) close(ps *pipes, abort bool) {
	if c.closed {
		return
	}
	c.closed = true
	for i := range c.dir {
		x := &c.dir[i]
		switch {
		case x.held && x.pending > 0:
			x.p.close() // bytes that will never go out
		case x.held:
			ps.put(x.p)
		}
		x.held, x.buf = false, nil
	}
	if abort {
		abortFD(c.fd[up])
	} else {
		unix.Close(c.fd[up])
	}
	switch {
	case c.keep != nil && abort:
		sockopt.Abort(c.keep)
	case c.keep != nil:
		c.keep.Close()
	case abort:
		abortFD(c.fd[down])
	default:
		unix.Close(c.fd[down])
	}
}

// abortFD closes a socket with a reset.
func abortFD(fd int) {
	_ = unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	unix.Close(fd)
}

// abortAll resets every relayed connection and refuses new ones: a relay
// that stops mid-stream must not let a client take a cut stream for a
// complete one.
func (s *tcpRun) abortAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, c := range s.conns {
		s.finish(c, nil, true)
	}
	for c := range s.copies {
		c.abort()
	}
}

// sweep samples every connection, closes the idle ones and returns when to
// sweep next (see startSweeps).
//
// Why TCP_INFO: per-read deadlines would cut slow but active flows (an SSH
// session waiting for a key), and resetting a timer per splice would cost
// more than the splice. The kernel already keeps, per socket, the time
// since data was last received and sent (Last_data_recv/sent, ms), so a
// sweep over both sockets of every connection gives the exact idle time at
// the cost of two getsockopt calls. The sweep sleeps until the earliest
// moment a connection could expire (at most sweepEvery), so a connection
// is closed within ~10 ms of IdleTimeout, not within a polling period.
func (s *tcpRun) sweep() time.Duration {
	// A new connection cannot expire before a full s.idle from now, so
	// sleeping at most s.idle never misses one.
	next := min(sweepEvery, s.idle)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		idle := time.Since(c.start)
		for _, fd := range c.fd {
			if s.tcpInfo(fd) == nil {
				idle = min(idle, lastData(&s.ti))
			}
		}
		left := s.idle - idle
		if left <= 0 && c.connecting {
			// As a dial that timed out: the client gets a reset.
			s.dialLog.log(s.log, slog.LevelWarn, "tcp relay: target dial failed", "client", c.client, "err", "no answer within the idle timeout")
			c.close(&s.pipes, true)
			delete(s.conns, c.id)
			s.stats.Active.Add(-1)
			continue
		}
		if left <= 0 {
			s.log.Debug("tcp relay: idle connection closed", "client", c.client, "idle_timeout", s.idle)
			c.close(&s.pipes, false)
			delete(s.conns, c.id)
			s.stats.Active.Add(-1)
			continue
		}
		next = min(next, left)
	}
	for c := range s.copies {
		left := s.idle - c.idle()
		if left <= 0 {
			c.closeIdle()
			continue
		}
		next = min(next, left)
	}
	return max(next, 10*time.Millisecond)
}

// tcpInfo reads fd's TCP_INFO into s.ti, without allocating: the sweep
// reads it for every socket every second.
func (s *tcpRun) tcpInfo(fd int) error {
	l := uint32(unsafe.Sizeof(s.ti))
	_, _, e := unix.RawSyscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.IPPROTO_TCP, unix.TCP_INFO,
		uintptr(unsafe.Pointer(&s.ti)), uintptr(unsafe.Pointer(&l)), 0)
	return rawErr(e)
}

func lastData(ti *unix.TCPInfo) time.Duration {
	return time.Duration(min(ti.Last_data_recv, ti.Last_data_sent)) * time.Millisecond
}

// copyConn is a connection whose target is not a socket (a custom Dial's
// net.Conn): two goroutines copy it through user space.
type copyConn struct {
	client, target net.Conn
	start          time.Time
	closeOnce      sync.Once
}

// copyRelay relays the client (fd) to a target that is not a socket, until
// both directions ended.
func (s *tcpRun) copyRelay(fd int, from netip.AddrPort, target net.Conn) {
	defer s.stats.Active.Add(-1)
	f := os.NewFile(uintptr(fd), "client")
	client, err := net.FileConn(f)
	f.Close()
	if err != nil {
		s.log.Warn("tcp relay: cannot relay connection", "client", from, "err", err)
		target.Close()
		return
	}
	c := &copyConn{client: client, target: target, start: time.Now()}
	s.mu.Lock()
	closed := s.closed
	if !closed {
		s.copies[c] = struct{}{}
	}
	s.mu.Unlock()
	if closed {
		c.abort()
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.copy(c.client, c.target, &s.stats.BytesDown)
	}()
	c.copy(c.target, c.client, &s.stats.BytesUp)
	<-done
	c.closeOnce.Do(func() {
		c.client.Close()
		c.target.Close()
	})
	s.mu.Lock()
	delete(s.copies, c)
	s.mu.Unlock()
}

// copy relays src to dst, passes src's EOF on and resets both on an error.
func (c *copyConn) copy(dst, src net.Conn, n *atomic.Int64) {
	_, err := io.Copy(countingWriter{dst, n}, struct{ io.Reader }{src})
	if err == nil {
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			err = cw.CloseWrite()
		}
	}
	if err != nil {
		c.abort()
	}
}

// countingWriter counts what reaches w as it goes. The Reader is wrapped
// too, so io.Copy cannot go around both (WriterTo, ReaderFrom).
type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// idle returns how long the connection carried no data either way, as the
// client's socket knows it.
func (c *copyConn) idle() time.Duration {
	idle := time.Since(c.start)
	if tc, ok := c.client.(*net.TCPConn); ok {
		if rc, err := tc.SyscallConn(); err == nil {
			rc.Control(func(fd uintptr) {
				if ti, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
					idle = min(idle, lastData(ti))
				}
			})
		}
	}
	return idle
}

// closeIdle closes an idle connection with FINs: nothing is lost.
func (c *copyConn) closeIdle() {
	c.closeOnce.Do(func() {
		c.client.Close()
		c.target.Close()
	})
}

// abort resets both sides, so each peer learns the stream broke.
func (c *copyConn) abort() {
	c.closeOnce.Do(func() {
		sockopt.Abort(c.client)
		sockopt.Abort(c.target)
	})
}
