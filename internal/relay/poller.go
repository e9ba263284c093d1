package relay

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// poller waits for events on many sockets with a single goroutine, so an
// idle relayed connection costs no goroutine (and no stack) at all: an
// epoll instance of its own holds the sockets, edge-triggered, and its fd
// waits in Go's netpoller like any socket (an epoll fd is readable while it
// has events). The events are fetched with a raw epoll_pwait that never
// sleeps (see rawsys.go).
type poller struct {
	ep    *os.File // the epoll instance; Go's netpoller watches it
	rc    syscall.RawConn
	wake  int // an eventfd, registered as wakeID: wakeUp makes wait return
	evs   []unix.EpollEvent
	n     int
	errno unix.Errno
	cb    func(fd uintptr) bool // for rc.Read, made once
}

// wakeID is the event id of the poller's eventfd; ids of sockets are others.
const wakeID = 0

// tcpEvents: readable, writable, peer half-closed; edge-triggered, so a
// socket is reported again only after a call on it returned EAGAIN.
const tcpEvents = unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET

func newPoller() (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	p := &poller{wake: wake, evs: make([]unix.EpollEvent, 128)}
	// Non-blocking, so os.NewFile hands it to the netpoller.
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return nil, fmt.Errorf("epoll: %w", err)
	}
	p.ep = os.NewFile(uintptr(epfd), "epoll")
	if p.rc, err = p.ep.SyscallConn(); err == nil {
		err = p.add(wake, wakeID, 0, unix.EPOLLIN|unix.EPOLLET)
	}
	if err != nil {
		p.close()
		return nil, err
	}
	p.cb = func(fd uintptr) bool {
		p.n, p.errno = p.pwait(int(fd))
		return p.n > 0 || (p.errno != 0 && p.errno != unix.EINTR)
	}
	return p, nil
}

// add registers fd for events under id and side (the event's two 32-bit
// halves).
func (p *poller) add(fd int, id uint32, side int32, events uint32) error {
	ev := unix.EpollEvent{Events: events, Fd: int32(id), Pad: side}
	if err := unix.EpollCtl(int(p.ep.Fd()), unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	return nil
}

// pwait fetches ready events without sleeping.
func (p *poller) pwait(epfd int) (int, unix.Errno) {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&p.evs[0])),
		uintptr(len(p.evs)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}

// wait returns the next events, waiting in the netpoller for the first.
func (p *poller) wait() ([]unix.EpollEvent, error) {
	if err := p.rc.Read(p.cb); err != nil {
		return nil, err
	}
	if p.n == 0 {
		return nil, os.NewSyscallError("epoll_pwait", p.errno)
	}
	return p.evs[:p.n], nil
}

// poll returns the events ready now, maybe none.
func (p *poller) poll() []unix.EpollEvent {
	var n int
	p.rc.Control(func(fd uintptr) { n, _ = p.pwait(int(fd)) })
	return p.evs[:n]
}

// wakeUp makes a wait return (with the wakeID event); safe from any
// goroutine.
func (p *poller) wakeUp() {
	one := [8]byte{1}
	rawWrite(p.wake, one[:])
}

// drainWake resets the eventfd, so the next wakeUp is an edge again.
func (p *poller) drainWake() {
	var b [8]byte
	rawRead(p.wake, b[:])
}

func (p *poller) close() {
	p.ep.Close()
	unix.Close(p.wake)
}
