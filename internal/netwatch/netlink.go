package netwatch

import (
	"encoding/binary"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// bufSize holds any datagram the kernel sends here: notifications are one
// message each (a few KB at most) and dumps come in batches of at most
// 32 KB.
const bufSize = 64 << 10

// watcher owns the two netlink sockets of one Watch. Sockets keep the
// network namespace they were created in, so after open they can be used
// from any thread.
type watcher struct {
	// events is subscribed to the notifications. It is non-blocking and
	// read through the runtime's poller, so that a read deadline can
	// interrupt it when ctx ends.
	events *os.File
	raw    syscall.RawConn
	// dump is for reading the tables; separate, so that its replies never
	// mix with notifications. Blocking, with a receive timeout.
	dump    int
	dumpPid uint32 // its netlink port id
	seq     uint32 // of the last dump request
	buf     []byte
	state   state
}

// open creates both sockets in the calling thread's network namespace.
func open() (_ *watcher, err error) {
	w := &watcher{dump: -1, buf: make([]byte, bufSize)}
	defer func() {
		if err != nil {
			w.close()
		}
	}()
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netwatch: netlink socket: %w", err)
	}
	w.events = os.NewFile(uintptr(fd), "rtnetlink")
	groups := uint32(unix.RTMGRP_LINK | unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: groups}); err != nil {
		return nil, fmt.Errorf("netwatch: subscribe to link and address changes: %w", err)
	}
	if w.raw, err = w.events.SyscallConn(); err != nil {
		return nil, fmt.Errorf("netwatch: %w", err)
	}

	if w.dump, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE); err != nil {
		return nil, fmt.Errorf("netwatch: netlink socket: %w", err)
	}
	// The kernel always answers a dump; the timeout only bounds a stuck one.
	if err := unix.SetsockoptTimeval(w.dump, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 5}); err != nil {
		return nil, fmt.Errorf("netwatch: netlink receive timeout: %w", err)
	}
	if err := unix.Bind(w.dump, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("netwatch: bind netlink socket: %w", err)
	}
	sa, err := unix.Getsockname(w.dump)
	if err != nil {
		return nil, fmt.Errorf("netwatch: netlink port id: %w", err)
	}
	nl, ok := sa.(*unix.SockaddrNetlink)
	if !ok {
		return nil, fmt.Errorf("netwatch: netlink socket has address %T", sa)
	}
	w.dumpPid = nl.Pid
	return w, nil
}

func (w *watcher) close() {
	if w.events != nil {
		w.events.Close()
	}
	if w.dump >= 0 {
		unix.Close(w.dump)
	}
}

// read returns the updates in the next notification from the kernel.
func (w *watcher) read() ([]update, error) {
	for {
		var n, flags int
		var from unix.Sockaddr
		var rerr error
		err := w.raw.Read(func(fd uintptr) bool {
			n, _, flags, from, rerr = unix.Recvmsg(int(fd), w.buf, nil, 0)
			return rerr != unix.EAGAIN
		})
		if err != nil {
			return nil, fmt.Errorf("netwatch: read: %w", err)
		}
		if rerr == unix.EINTR {
			continue
		}
		if rerr != nil {
			return nil, fmt.Errorf("netwatch: read: %w", rerr)
		}
		if flags&unix.MSG_TRUNC != 0 {
			return nil, errTruncated
		}
		// Any process may send to our port; only the kernel's word counts.
		if nl, ok := from.(*unix.SockaddrNetlink); !ok || nl.Pid != 0 {
			continue
		}
		us, err := parse(w.buf[:n])
		if err != nil {
			return nil, fmt.Errorf("netwatch: %w", err)
		}
		return us, nil
	}
}

// drain discards the notifications queued on the events socket. After an
// overrun (ENOBUFS) it must come before the resync: the kernel reports
// ENOBUFS once per episode and goes on dropping silently until the queue
// has been read empty, so a table dump taken while old notifications wait
// could miss changes whose notifications were then dropped unreported.
func (w *watcher) drain() error {
	var rerr error
	err := w.raw.Control(func(fd uintptr) {
		for {
			_, _, _, _, rerr = unix.Recvmsg(int(fd), w.buf, nil, unix.MSG_DONTWAIT)
			switch rerr {
			case nil, unix.EINTR, unix.ENOBUFS:
				continue
			case unix.EAGAIN:
				rerr = nil
			}
			return
		}
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("netwatch: drain: %w", err)
	}
	return nil
}

// resync replaces the state with the kernel's link and address tables.
func (w *watcher) resync() error {
	links, err := w.dumpTable(unix.RTM_GETLINK, unix.SizeofIfInfomsg)
	if err != nil {
		return fmt.Errorf("netwatch: read links: %w", err)
	}
	addrs, err := w.dumpTable(unix.RTM_GETADDR, unix.SizeofIfAddrmsg)
	if err != nil {
		return fmt.Errorf("netwatch: read addresses: %w", err)
	}
	// Links first, so that addresses find their interface's name.
	w.state = newState(append(links, addrs...))
	return nil
}

// dumpTable requests a dump of every entry of a table, all families (the
// zeroed request body is AF_UNSPEC), and parses the reply. A dump that the
// kernel marks inconsistent (NLM_F_DUMP_INTR) is taken as it is: the
// changes that interrupted it arrive as notifications too.
func (w *watcher) dumpTable(typ uint16, bodyLen int) ([]update, error) {
	w.seq++
	req := make([]byte, unix.NLMSG_HDRLEN+bodyLen)
	binary.NativeEndian.PutUint32(req[0:], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:], typ)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(req[8:], w.seq)
	if err := unix.Sendto(w.dump, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, err
	}
	var us []update
	for {
		n, _, flags, from, err := unix.Recvmsg(w.dump, w.buf, nil, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if flags&unix.MSG_TRUNC != 0 {
			return nil, errTruncated
		}
		if nl, ok := from.(*unix.SockaddrNetlink); !ok || nl.Pid != 0 {
			continue
		}
		msgs, err := splitMessages(w.buf[:n])
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			if m.seq != w.seq || m.pid != w.dumpPid {
				continue // the rest of an earlier dump that failed
			}
			switch m.typ {
			case unix.NLMSG_DONE, unix.NLMSG_ERROR:
				// Both carry an int: 0 or a negative errno.
				if len(m.data) >= 4 {
					if e := int32(binary.NativeEndian.Uint32(m.data)); e < 0 {
						return nil, unix.Errno(-e)
					}
				}
				return us, nil
			}
			u, ok, err := parseMessage(m)
			if err != nil {
				return nil, err
			}
			if ok {
				us = append(us, u)
			}
		}
	}
}
