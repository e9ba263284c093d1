package relay

import (
	"encoding/binary"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The relays' data path makes its syscalls raw, through RawConn.Read and
// Write callbacks on non-blocking sockets and pipes: when there is nothing
// to do they return EAGAIN and the netpoller waits. Such calls never sleep,
// so the scheduler need not hear of them. A relay wakes for every few
// packets, and the runtime's bookkeeping around a normal syscall then costs
// more than the syscall: its monitor thread takes the processor of a thread
// that is "in a syscall" and wakes another thread to run it, which parks
// again at once (in the lab, a futex and a nanosleep per datagram relayed).

// rawIO is one raw syscall on a socket, waiting in the netpoller while it
// would block. Its callback is made once: a closure per datagram would cost
// allocations per datagram.
type rawIO struct {
	rc   syscall.RawConn
	op   string                    // the syscall's name, for errors
	call func(fd int) (int, error) // the raw syscall
	n    int
	err  error
	cb   func(fd uintptr) bool // for rc.Read and rc.Write
}

func newRawIO(rc syscall.RawConn, op string, call func(fd int) (int, error)) *rawIO {
	r := &rawIO{rc: rc, op: op, call: call}
	r.cb = func(fd uintptr) bool {
		r.n, r.err = r.call(int(fd))
		return r.err != unix.EAGAIN
	}
	return r
}

// read makes the call once the socket is readable; write, once writable.
func (r *rawIO) read() (int, error)  { return r.result(r.rc.Read(r.cb)) }
func (r *rawIO) write() (int, error) { return r.result(r.rc.Write(r.cb)) }

func (r *rawIO) result(err error) (int, error) {
	if err == nil && r.err != nil {
		err = os.NewSyscallError(r.op, r.err)
	}
	return r.n, err
}

func rawErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// retry runs a raw syscall again when a signal interrupted it.
func retry(call func() (uintptr, unix.Errno)) (int, error) {
	for {
		r, e := call()
		if e != unix.EINTR {
			return int(r), rawErr(e)
		}
	}
}

// rawSplice moves up to n bytes from in to out, without blocking.
func rawSplice(in, out, n int) (int, error) {
	return retry(func() (uintptr, unix.Errno) {
		r, _, e := unix.RawSyscall6(unix.SYS_SPLICE, uintptr(in), 0, uintptr(out), 0, uintptr(n),
			unix.SPLICE_F_NONBLOCK|unix.SPLICE_F_MOVE)
		return r, e
	})
}

func rawRead(fd int, b []byte) (int, error)  { return rawRW(unix.SYS_READ, fd, b) }
func rawWrite(fd int, b []byte) (int, error) { return rawRW(unix.SYS_WRITE, fd, b) }

// rawRW is read(2) or write(2), by trap.
func rawRW(trap uintptr, fd int, b []byte) (int, error) {
	return retry(func() (uintptr, unix.Errno) {
		r, _, e := unix.RawSyscall(trap, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
		return r, e
	})
}

// sockaddr is a socket address as recvfrom(2) fills it and sendto(2)
// takes it: a session keeps its client's, ready to send to.
type sockaddr struct {
	raw unix.RawSockaddrAny
	len uint32
}

func rawRecvfrom(fd int, b []byte, from *sockaddr) (int, error) {
	return retry(func() (uintptr, unix.Errno) {
		from.len = unix.SizeofSockaddrAny
		r, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)), 0,
			uintptr(unsafe.Pointer(&from.raw)), uintptr(unsafe.Pointer(&from.len)))
		return r, e
	})
}

func rawSendto(fd int, b []byte, to *sockaddr) (int, error) {
	return retry(func() (uintptr, unix.Errno) {
		r, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)), 0,
			uintptr(unsafe.Pointer(&to.raw)), uintptr(to.len))
		return r, e
	})
}

// addrPort is the address as a map key and for logs: IPv4 clients of an
// IPv6 socket stay IPv4-mapped, as the socket reports them, and a scope id
// becomes the zone.
func (sa *sockaddr) addrPort() netip.AddrPort {
	switch sa.raw.Addr.Family {
	case unix.AF_INET:
		p := (*unix.RawSockaddrInet4)(unsafe.Pointer(&sa.raw))
		return netip.AddrPortFrom(netip.AddrFrom4(p.Addr), netPort(&p.Port))
	case unix.AF_INET6:
		p := (*unix.RawSockaddrInet6)(unsafe.Pointer(&sa.raw))
		a := netip.AddrFrom16(p.Addr)
		if p.Scope_id != 0 {
			a = a.WithZone(strconv.FormatUint(uint64(p.Scope_id), 10))
		}
		return netip.AddrPortFrom(a, netPort(&p.Port))
	}
	return netip.AddrPort{}
}

// netPort reads a port kept in network byte order.
func netPort(p *uint16) uint16 {
	return binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(p))[:])
}

// rawAccept accepts a connection on a listening socket: non-blocking,
// close-on-exec, its peer in from.
func rawAccept(fd int, from *sockaddr) (int, error) {
	return retry(func() (uintptr, unix.Errno) {
		from.len = unix.SizeofSockaddrAny
		r, _, e := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(fd), uintptr(unsafe.Pointer(&from.raw)),
			uintptr(unsafe.Pointer(&from.len)), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
		return r, e
	})
}
