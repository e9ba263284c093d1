package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// UDP relays datagrams from each client (address:port) to the target through
// a socket of the client's own (a session), and the target's replies back to
// that client from Conn, so they come from the bind port.
type UDP struct {
	// Conn is bound to the bind port and not connected. Serve closes it.
	Conn *net.UDPConn
	// Dial returns a new socket connected to the target, once per client
	// session. It is called from Serve's receive loop: it must not block
	// (a UDP connect does not, given an address).
	Dial func(ctx context.Context) (*net.UDPConn, error)
	// IdleTimeout ends a session that carried no datagram in either
	// direction for this long; 0 means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// MaxSessions bounds concurrent sessions; 0 means DefaultMaxSessions.
	// Datagrams from new clients beyond it are dropped (and logged, at
	// most every 10 s).
	MaxSessions int
	// Log gets one line per noteworthy event; nil discards them.
	Log *slog.Logger
	// Stats, if not nil, gets live counters.
	Stats *Stats
}

// maxDatagram holds any UDP payload (65,507 bytes over IPv4, 65,527 over
// IPv6): nothing is ever truncated.
const maxDatagram = 1 << 16

// udpRun is one Serve call's state.
type udpRun struct {
	*UDP
	idle     time.Duration
	max      int
	log      *slog.Logger
	stats    *Stats
	dialLog  rateLog
	limitLog rateLog
	readLog  rateLog

	raw   syscall.RawConn // Conn's
	epoch time.Time       // session times count from it, on the monotonic clock
	poll  *poller         // the sessions' sockets

	// mu guards what follows, and the sessions' sockets: a socket is read
	// and closed only under it.
	mu       sync.Mutex
	sessions map[netip.AddrPort]*udpSession
	byID     map[uint32]*udpSession // the same, by event id
	nextID   uint32                 // the last event id given out
	closed   bool                   // Serve is ending: refuse new sessions
}

// udpSession is one client's flow. It costs no goroutine: one loop reads
// the replies of every session (replies).
type udpSession struct {
	client netip.AddrPort
	sa     sockaddr     // client, to send to
	fd     int          // connected to the target
	keep   net.Conn     // the dialed connection, when fd is still its (out of fds)
	id     uint32       // event id
	last   atomic.Int64 // time of the last datagram either way, since udpRun.epoch
}

// udpEvents: a session's socket is only read.
const udpEvents = unix.EPOLLIN | unix.EPOLLET

// touch marks the session active now.
func (s *udpRun) touch(ss *udpSession) { ss.last.Store(int64(time.Since(s.epoch))) }

// idleSince returns how long the session has been idle.
func (s *udpRun) idleSince(ss *udpSession) time.Duration {
	return time.Since(s.epoch) - time.Duration(ss.last.Load())
}

// Serve relays until ctx ends or Conn fails; it then closes Conn and every
// session's socket and returns only after all its goroutines ended. It
// returns ctx.Err() when ctx ended, else the receive error.
func (r *UDP) Serve(ctx context.Context) error {
	if r.Conn == nil || r.Dial == nil {
		return errors.New("udp relay: Conn and Dial are required")
	}
	raw, err := r.Conn.SyscallConn()
	if err != nil {
		return fmt.Errorf("udp relay: %w", err)
	}
	poll, err := newPoller()
	if err != nil {
		r.Conn.Close()
		return fmt.Errorf("udp relay: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := &udpRun{
		UDP:      r,
		idle:     idleTimeout(r.IdleTimeout),
		max:      r.MaxSessions,
		log:      logger(r.Log),
		stats:    stats(r.Stats),
		dialLog:  rateLog{every: time.Second},
		limitLog: rateLog{every: 10 * time.Second},
		readLog:  rateLog{every: 10 * time.Second},
		raw:      raw,
		epoch:    time.Now(),
		poll:     poll,
		sessions: make(map[netip.AddrPort]*udpSession),
		byID:     make(map[uint32]*udpSession),
	}
	if s.max <= 0 {
		s.max = DefaultMaxSessions
	}
	var wg sync.WaitGroup
	wg.Add(1)
	context.AfterFunc(ctx, func() { // always: ctx ends before Serve returns
		defer wg.Done()
		r.Conn.Close() // unblocks the receive loop
		poll.wakeUp()  // and the reply loop
	})
	wg.Go(func() { s.replies(ctx) })
	sweeps := startSweeps(min(sweepEvery, s.idle), s.sweep)
	err = s.receive(ctx)
	cancel()
	sweeps.stop()
	s.closeAll()
	wg.Wait()
	poll.close()
	return err
}

// receive relays datagrams from clients to their sessions.
func (s *udpRun) receive(ctx context.Context) error {
	buf := make([]byte, maxDatagram)
	var from sockaddr
	recv := newRawIO(s.raw, "recvfrom", func(fd int) (int, error) { return rawRecvfrom(fd, buf, &from) })
	var backoff time.Duration
	for {
		n, err := recv.read()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if icmpError(err) {
				continue // about a reply to a client that left
			}
			if !temporary(err) {
				return fmt.Errorf("udp relay: receive: %w", err)
			}
			backoff = nextBackoff(backoff)
			s.readLog.log(s.log, slog.LevelWarn, "udp relay: receive failed, retrying", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		backoff = 0
		ss := s.session(ctx, &from)
		if ss == nil {
			continue
		}
		if err := ss.forward(buf[:n]); err == nil {
			s.stats.BytesUp.Add(int64(n))
		}
	}
}

// forward sends one datagram to the target. A connected UDP socket reports
// an earlier ICMP error (target port closed) on the next send, which then
// sends nothing: try once more, that datagram deserves its own chance. A
// full send buffer drops the datagram, as a full queue on the way would.
func (ss *udpSession) forward(b []byte) error {
	_, err := rawWrite(ss.fd, b)
	if icmpError(err) {
		_, err = rawWrite(ss.fd, b)
	}
	return err
}

// icmpError reports an error that an ICMP message from a peer caused: about
// one earlier datagram, not about the socket.
func icmpError(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH)
}

// session returns the client's session, marked active now, starting one
// when there is none; nil when the datagram is to be dropped.
func (s *udpRun) session(ctx context.Context, from *sockaddr) *udpSession {
	client := from.addrPort()
	s.mu.Lock()
	ss, ok := s.sessions[client]
	if ok {
		// Under s.mu, so expire sees this datagram and keeps the session.
		s.touch(ss)
	}
	full := len(s.sessions) >= s.max
	s.mu.Unlock()
	if ok {
		return ss
	}
	if full {
		s.limitLog.log(s.log, slog.LevelWarn, "udp relay: session limit reached, dropping new client", "client", client.String(), "max_sessions", s.max)
		return nil
	}

	// Only this loop adds sessions, so nobody added this client meanwhile.
	conn, err := s.Dial(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.dialLog.log(s.log, slog.LevelWarn, "udp relay: target dial failed", "client", client.String(), "err", err)
		}
		return nil
	}
	fd, keep, ok := detach(conn)
	if !ok {
		conn.Close()
		s.dialLog.log(s.log, slog.LevelWarn, "udp relay: target dial failed", "client", client.String(), "err", "not a socket")
		return nil
	}
	ss = &udpSession{client: client, sa: *from, fd: fd, keep: keep}
	s.touch(ss)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		ss.close()
		return nil
	}
	for {
		s.nextID++
		if s.nextID != wakeID && s.byID[s.nextID] == nil {
			break
		}
	}
	ss.id = s.nextID
	if err := s.poll.add(fd, ss.id, 0, udpEvents); err != nil {
		ss.close()
		s.dialLog.log(s.log, slog.LevelWarn, "udp relay: cannot start session", "client", client.String(), "err", err)
		return nil
	}
	s.sessions[client] = ss
	s.byID[ss.id] = ss
	s.stats.Total.Add(1)
	s.stats.Active.Add(1)
	s.log.Debug("udp relay: session started", "client", client.String())
	return ss
}

func (ss *udpSession) close() {
	if ss.keep != nil {
		ss.keep.Close()
	} else {
		unix.Close(ss.fd)
	}
}

// replies relays the targets' datagrams back to their clients, for every
// session, until ctx ends. A datagram is read under s.mu (so its socket
// cannot close meanwhile) and sent without it.
func (s *udpRun) replies(ctx context.Context) {
	buf := make([]byte, maxDatagram)
	var (
		out []byte
		to  *sockaddr
	)
	send := newRawIO(s.raw, "sendto", func(fd int) (int, error) { return rawSendto(fd, out, to) })
	for {
		evs, err := s.poll.wait()
		if err != nil || ctx.Err() != nil {
			if err != nil && ctx.Err() == nil {
				s.log.Error("udp relay: reply loop failed", "err", err)
			}
			return
		}
		for _, ev := range evs {
			if ev.Fd == wakeID {
				s.poll.drainWake()
				continue
			}
			id := uint32(ev.Fd)
			for {
				ss, n := s.readReply(id, buf)
				if ss == nil {
					break
				}
				out, to = buf[:n], &ss.sa
				if _, err := send.write(); err == nil {
					s.stats.BytesDown.Add(int64(n))
				}
			}
		}
	}
}

// readReply reads the next datagram of session id into buf: nil when the
// session has none (or is gone).
func (s *udpRun) readReply(id uint32, buf []byte) (*udpSession, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.byID[id]
	for ss != nil {
		n, err := rawRead(ss.fd, buf)
		switch {
		case err == nil:
			s.touch(ss)
			return ss, n
		case err == unix.EAGAIN:
			return nil, 0
		case icmpError(err):
			// The target port is closed for now; keep the session.
		default:
			s.drop(ss)
			return nil, 0
		}
	}
	return nil, 0
}

// sweep ends sessions idle for the idle timeout and returns when to sweep
// next: the earliest moment one could expire (at most sweepEvery).
func (s *udpRun) sweep() time.Duration {
	next := min(sweepEvery, s.idle)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ss := range s.sessions {
		left := s.idle - s.idleSince(ss)
		if left <= 0 {
			s.log.Debug("udp relay: idle session closed", "client", ss.client.String(), "idle_timeout", s.idle)
			s.drop(ss)
			continue
		}
		next = min(next, left)
	}
	return max(next, 10*time.Millisecond)
}

// drop ends a session; s.mu is held.
func (s *udpRun) drop(ss *udpSession) {
	delete(s.sessions, ss.client)
	delete(s.byID, ss.id)
	ss.close()
	s.stats.Active.Add(-1)
}

// closeAll closes every session and refuses new ones.
func (s *udpRun) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, ss := range s.sessions {
		s.drop(ss)
	}
}
