package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
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
	bufs  sync.Pool       // of *[maxDatagram]byte, for replies

	mu       sync.Mutex
	sessions map[netip.AddrPort]*udpSession
	closed   bool // Serve is ending: refuse new sessions
}

// udpSession is one client's flow.
type udpSession struct {
	client netip.AddrPort
	sa     sockaddr     // client, to send to
	conn   *net.UDPConn // connected to the target
	last   atomic.Int64 // time of the last datagram either way, since udpRun.epoch

	out  []byte // the datagram send is sending to the target
	send *rawIO // writes out to conn
}

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
		bufs:     sync.Pool{New: func() any { return new([maxDatagram]byte) }},
		sessions: make(map[netip.AddrPort]*udpSession),
	}
	if s.max <= 0 {
		s.max = DefaultMaxSessions
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		<-ctx.Done()
		r.Conn.Close() // unblocks the receive loop
	})
	err = s.receive(ctx, &wg)
	cancel()
	s.closeAll()
	wg.Wait()
	return err
}

// receive relays datagrams from clients to their sessions.
func (s *udpRun) receive(ctx context.Context, wg *sync.WaitGroup) error {
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
		ss := s.session(ctx, &from, wg)
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
// sends nothing: try once more, that datagram deserves its own chance.
func (ss *udpSession) forward(b []byte) error {
	ss.out = b
	defer func() { ss.out = nil }()
	_, err := ss.send.write()
	if icmpError(err) {
		_, err = ss.send.write()
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
func (s *udpRun) session(ctx context.Context, from *sockaddr, wg *sync.WaitGroup) *udpSession {
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
	var raw syscall.RawConn
	if err == nil {
		if raw, err = conn.SyscallConn(); err != nil {
			conn.Close()
		}
	}
	if err != nil {
		if ctx.Err() == nil {
			s.dialLog.log(s.log, slog.LevelWarn, "udp relay: target dial failed", "client", client.String(), "err", err)
		}
		return nil
	}
	ss = &udpSession{client: client, sa: *from, conn: conn}
	ss.send = newRawIO(raw, "write", func(fd int) (int, error) { return rawWrite(fd, ss.out) })
	s.touch(ss)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		conn.Close()
		return nil
	}
	s.sessions[client] = ss
	s.mu.Unlock()
	s.stats.Total.Add(1)
	s.stats.Active.Add(1)
	wg.Go(func() { s.reply(ss, raw) })
	s.log.Debug("udp relay: session started", "client", client.String())
	return ss
}

// reply relays the target's datagrams back to the client until the session
// is idle or closed. Idle detection rides on the read deadline, moved only
// when it fires (not per datagram), so it costs nothing per datagram and
// ends a session within milliseconds of IdleTimeout.
func (s *udpRun) reply(ss *udpSession, raw syscall.RawConn) {
	defer s.stats.Active.Add(-1)
	defer ss.conn.Close()
	// A 64 KiB buffer is taken only once a datagram is there, so a session
	// waiting for its target holds none: a thousand sessions do not cost
	// 64 MiB.
	var buf *[maxDatagram]byte
	release := func() {
		if buf != nil {
			s.bufs.Put(buf)
			buf = nil
		}
	}
	defer release()
	recv := newRawIO(raw, "read", func(fd int) (int, error) {
		if buf == nil {
			buf = s.bufs.Get().(*[maxDatagram]byte)
		}
		n, err := rawRead(fd, buf[:])
		if err == unix.EAGAIN {
			release() // waiting for the target
		}
		return n, err
	})
	var out []byte
	send := newRawIO(s.raw, "sendto", func(fd int) (int, error) { return rawSendto(fd, out, &ss.sa) })

	deadline := func() { ss.conn.SetReadDeadline(time.Now().Add(s.idle - s.idleSince(ss))) }
	deadline()
	for {
		n, err := recv.read()
		switch {
		case err == nil:
			s.touch(ss)
			out = buf[:n]
			if _, err := send.write(); err == nil {
				s.stats.BytesDown.Add(int64(n))
			}
			out = nil
			release()
		case errors.Is(err, os.ErrDeadlineExceeded):
			if s.expire(ss) {
				s.log.Debug("udp relay: idle session closed", "client", ss.client.String(), "idle_timeout", s.idle)
				return
			}
			deadline()
		case icmpError(err):
			// The target port is closed for now; keep the session.
		default:
			s.remove(ss)
			return
		}
	}
}

// expire removes the session if it has been idle for the idle timeout.
func (s *udpRun) expire(ss *udpSession) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.idleSince(ss) < s.idle {
		return false
	}
	if s.sessions[ss.client] == ss {
		delete(s.sessions, ss.client)
	}
	return true
}

func (s *udpRun) remove(ss *udpSession) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sessions[ss.client] == ss {
		delete(s.sessions, ss.client)
	}
}

// closeAll closes every session and refuses new ones.
func (s *udpRun) closeAll() {
	s.mu.Lock()
	s.closed = true
	sessions := s.sessions
	s.sessions = make(map[netip.AddrPort]*udpSession)
	s.mu.Unlock()
	for _, ss := range sessions {
		ss.conn.Close()
	}
}
