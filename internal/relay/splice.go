package relay

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Why not io.Copy, whose TCPConn.ReadFrom splices too:
//
//   - It makes each splice(2) a scheduler-visible syscall, which costs more
//     than the splicing on a rate-limited link (see rawsys.go). This more
//     than halved natmap's CPU per GB relayed over a 1 Gbit/s WAN (see the
//     README's Figures).
//   - It holds a pipe per direction for the connection's life (and the
//     runtime pools them until garbage collection): six fds per relayed
//     connection. Here a direction holds a pipe only while bytes are in
//     flight, so an idle connection costs its two sockets.

// pipeSize is what a pipe is grown to: a splice moves at most one packet
// per pipe slot, so the default 16 slots would cut bulk transfers into
// small splices. The kernel allocates pages only for bytes in flight.
const pipeSize = 1 << 20

// maxIdlePipes bounds the free list: enough for the active connections of
// a busy relay, few fds when it goes quiet.
const maxIdlePipes = 32

type pipe struct{ r, w int }

// errNoSplice: no pipe could be made (out of fds, say), or the first
// splice found the sockets unfit for it; the caller may go on copying
// through user space.
var errNoSplice = errors.New("no splice")

// pipes is a free list of empty pipes shared by a relay's connections.
type pipes struct {
	mu   sync.Mutex
	free []pipe
}

func (ps *pipes) get() (pipe, error) {
	ps.mu.Lock()
	if n := len(ps.free); n > 0 {
		p := ps.free[n-1]
		ps.free = ps.free[:n-1]
		ps.mu.Unlock()
		return p, nil
	}
	ps.mu.Unlock()
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return pipe{}, fmt.Errorf("%w: pipe: %w", errNoSplice, err)
	}
	// Best effort: above fs.pipe-max-size only root may grow a pipe.
	_, _ = unix.FcntlInt(uintptr(fds[1]), unix.F_SETPIPE_SZ, pipeSize)
	return pipe{r: fds[0], w: fds[1]}, nil
}

// put takes back an empty pipe.
func (ps *pipes) put(p pipe) {
	ps.mu.Lock()
	keep := len(ps.free) < maxIdlePipes
	if keep {
		ps.free = append(ps.free, p)
	}
	ps.mu.Unlock()
	if !keep {
		p.close()
	}
}

func (p pipe) close() {
	unix.Close(p.r)
	unix.Close(p.w)
}

// close closes the free pipes; pipes in use are closed by their users.
func (ps *pipes) close() {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, p := range ps.free {
		p.close()
	}
	ps.free = nil
}

// splice moves what src receives to dst until src's EOF (nil) or an error,
// telling moved about every chunk delivered to dst. A pipe is taken when
// src has bytes and given back when src has none.
func (ps *pipes) splice(dst, src syscall.RawConn, moved func(int64)) error {
	var (
		p       pipe
		held    bool
		pending int  // bytes in the pipe
		started bool // bytes have moved
	)
	in := newRawIO(src, "splice", func(fd int) (int, error) {
		if !held {
			var err error
			if p, err = ps.get(); err != nil {
				return 0, err
			}
			held = true
		}
		n, err := rawSplice(fd, p.w, pipeSize)
		switch {
		case err == unix.EAGAIN:
			// Nothing to read: wait without holding the pipe.
			ps.put(p)
			held = false
		case err == unix.EINVAL && !started:
			err = fmt.Errorf("%w: %w", errNoSplice, err)
		}
		return n, err
	})
	out := newRawIO(dst, "splice", func(fd int) (int, error) { return rawSplice(p.r, fd, pending) })
	defer func() {
		switch {
		case held && pending > 0:
			p.close() // bytes that will never go out
		case held:
			ps.put(p)
		}
	}()
	for {
		n, err := in.read()
		if err != nil || n == 0 {
			return err // n == 0: EOF
		}
		started = true
		for pending = n; pending > 0; {
			m, err := out.write()
			if err != nil {
				return err
			}
			pending -= m
			moved(int64(m))
		}
	}
}

// rawConns returns the RawConns of two sockets, or ok false when either is
// not a socket (a custom Dial's net.Conn): then io.Copy relays.
func rawConns(dst, src net.Conn) (d, s syscall.RawConn, ok bool) {
	dc, ok1 := dst.(syscall.Conn)
	sc, ok2 := src.(syscall.Conn)
	if !ok1 || !ok2 {
		return nil, nil, false
	}
	d, err1 := dc.SyscallConn()
	s, err2 := sc.SyscallConn()
	if err := errors.Join(err1, err2); err != nil {
		return nil, nil, false
	}
	return d, s, true
}
