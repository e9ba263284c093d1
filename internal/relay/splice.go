package relay

import (
	"fmt"
	"sync"

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
//   - It blocks a goroutine per direction: here one event loop serves
//     every connection (tcp.go, poller.go).

// pipeSize is what a pipe is grown to: a splice moves at most one packet
// per pipe slot, so the default 16 slots would cut bulk transfers into
// small splices. The kernel allocates pages only for bytes in flight.
const pipeSize = 1 << 20

// maxIdlePipes bounds the free list: enough for the active connections of
// a busy relay, few fds when it goes quiet.
const maxIdlePipes = 32

type pipe struct{ r, w int }

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
		return pipe{}, fmt.Errorf("pipe: %w", err)
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
