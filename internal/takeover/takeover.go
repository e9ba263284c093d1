// Package takeover turns SO_REUSEPORT on in another process's socket, so
// natmap can bind the port the user's service already holds (bind mode)
// when the service did not set SO_REUSEPORT itself. As the C natmap does, it
// finds the socket's owner through /proc, duplicates the socket into natmap
// with pidfd_getfd (Linux >= 5.6, root), and sets the option on the
// duplicate: a duplicate is the same socket, so the service's socket changes.
//
// The kernel shares a port through SO_REUSEPORT only between sockets of one
// uid (the socket's sk_uid). A service of another user than natmap's works
// when natmap runs as root: EnableReusePort reports the service's uid, and
// natmap gives its own sockets on the port that uid before binding them
// (fchown on a socket sets its sk_uid: internal/sockopt, Options.Owner); the
// service's socket keeps its owner. Without root, EnableReusePort refuses a
// socket of another user, with an error saying why; and sockets of two users
// on the port cannot be shared with one socket at all.
package takeover

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Change is one socket whose SO_REUSEPORT EnableReusePort turned on.
type Change struct {
	PID  int    // the process holding the socket
	Comm string // its name (/proc/PID/comm)
	FD   int    // the socket's descriptor in that process
	UID  uint32 // the socket's owner
}

// Result is what EnableReusePort changed, and what natmap's sockets need.
type Result struct {
	Changes []Change
	// UID is the owner of the sockets that stand in the way of natmap's
	// bind, natmap's euid when none does: natmap's sockets on the port
	// must have this uid to share it.
	UID uint32
}

// ErrNoOwner is wrapped by the error when no socket is on the port, or no
// process visible here holds it.
var ErrNoOwner = errors.New("no owner found")

// table is one /proc/net table to search, and which of its sockets can
// conflict with natmap's bind.
type table struct {
	file       string
	listenOnly bool // TCP: only LISTEN sockets refuse a port to SO_REUSEPORT binds
	mapped     bool // an IPv6 table searched for an IPv4 bind: only :: and ::ffff:a.b.c.d conflict
}

func tablesFor(network string) ([]table, error) {
	switch network {
	case "tcp4":
		return []table{{file: "tcp", listenOnly: true}, {file: "tcp6", listenOnly: true, mapped: true}}, nil
	case "tcp6":
		return []table{{file: "tcp6", listenOnly: true}}, nil
	case "udp4":
		return []table{{file: "udp"}, {file: "udp6", mapped: true}}, nil
	case "udp6":
		return []table{{file: "udp6"}}, nil
	}
	return nil, fmt.Errorf("takeover: unknown network %q (want tcp4, tcp6, udp4 or udp6)", network)
}

// candidate is a socket on the port that may need SO_REUSEPORT.
type candidate struct {
	entry
	udp  bool
	dual bool // bound to [::] for an IPv4 bind: conflicts only without IPV6_V6ONLY
}

// EnableReusePort finds the sockets bound to port in this network
// namespace on network ("tcp4", "tcp6", "udp4", "udp6"; for TCP the
// listening ones) that lack SO_REUSEPORT, and turns SO_REUSEPORT on in each
// through pidfd_getfd. Sockets on any local address count, since natmap may
// bind 0.0.0.0:port or IP:port; for tcp4 and udp4 that includes dual-stack
// IPv6 sockets on [::] (a Go service's ":port"), which hold the IPv4 port
// too. tcp6 and udp6 assume natmap's socket is IPv6-only, as Go makes it.
//
// Sockets of another uid than natmap's are changed only when natmap runs
// as root, and natmap's sockets on the port must then have their uid,
// Result.UID, to share it. Sockets that already have SO_REUSEPORT are left
// alone and not reported in Changes: no change and a nil error means
// nothing needed changing, though natmap's sockets may still need
// Result.UID. On error, the changes made before it are returned too, for
// the log.
func EnableReusePort(network string, port uint16) (Result, error) {
	euid := uint32(os.Geteuid())
	res := Result{UID: euid}
	tables, err := tablesFor(network)
	if err != nil {
		return res, err
	}
	var cands []candidate
	for _, tb := range tables {
		found, err := findSockets(tb, port)
		if err != nil {
			return res, err
		}
		cands = append(cands, found...)
	}
	what := "socket bound to"
	if tables[0].listenOnly {
		what = "socket listening on"
	}
	if len(cands) == 0 {
		return res, fmt.Errorf("takeover: no %s %s port %d in this network namespace: %w", network, what, port, ErrNoOwner)
	}

	inodes := make(map[uint64]bool)
	for _, c := range cands {
		inodes[c.Inode] = true
	}
	owners, denied, err := findOwners(inodes)
	if err != nil {
		return res, err
	}
	// Find every socket's owner before changing any: if one has none,
	// natmap's bind fails anyway, so leave the service's sockets alone.
	for _, c := range cands {
		if len(owners[c.Inode]) > 0 {
			continue
		}
		// Root reads every /proc/PID/fd but may still be refused one of a
		// process in the middle of exiting or exec: that is not the reason.
		if denied > 0 && euid != 0 {
			return res, fmt.Errorf("takeover: %s port %d: %w for socket inode %d among the processes uid %d may inspect (/proc/PID/fd of %d others: %w): needs root",
				network, port, ErrNoOwner, c.Inode, euid, denied, fs.ErrPermission)
		}
		return res, fmt.Errorf("takeover: %s port %d: no process here holds socket inode %d (a kernel socket, or a process in another PID namespace): %w",
			network, port, c.Inode, ErrNoOwner)
	}

	// Likewise look at every socket before changing any: all that stand
	// in the way must be shareable with one socket of natmap's.
	var inWay []held
	defer func() {
		for _, h := range inWay {
			unix.Close(h.dup)
		}
	}()
	for _, c := range cands {
		h, blocks, err := inspect(c, owners[c.Inode])
		if err != nil {
			return res, fmt.Errorf("takeover: %s port %d: %w", network, port, err)
		}
		if blocks {
			inWay = append(inWay, h)
		} else {
			unix.Close(h.dup)
		}
	}
	if len(inWay) == 0 {
		return res, nil
	}
	uid := inWay[0].UID
	for _, h := range inWay[1:] {
		if h.UID != uid {
			return res, fmt.Errorf("takeover: %s port %d: %s belongs to uid %d and %s to uid %d, but SO_REUSEPORT shares a port only between sockets of one user: natmap's socket cannot share it with both",
				network, port, inWay[0], uid, h, h.UID)
		}
	}
	// natmap's sockets take the service's uid through fchown, which needs
	// root (CAP_CHOWN).
	if uid != euid && euid != 0 {
		hint := "run natmap as root"
		if uid != 0 {
			hint = fmt.Sprintf("run natmap as root (its sockets on the port then take uid %d) or as uid %d", uid, uid)
		}
		return res, fmt.Errorf("takeover: %s port %d: %s belongs to uid %d and natmap runs as uid %d, but SO_REUSEPORT shares a port only between sockets of one user: %s",
			network, port, inWay[0], uid, euid, hint)
	}
	res.UID = uid
	for _, h := range inWay {
		if h.reusePort {
			continue
		}
		if err := unix.SetsockoptInt(h.dup, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return res, fmt.Errorf("takeover: %s port %d: %s: set SO_REUSEPORT: %w", network, port, h, err)
		}
		res.Changes = append(res.Changes, Change{PID: h.pid, Comm: h.comm, FD: h.fd, UID: h.UID})
	}
	return res, nil
}

// findSockets returns the sockets of one table on port that can conflict
// with natmap's bind.
func findSockets(tb table, port uint16) ([]candidate, error) {
	path := "/proc/self/net/" + tb.file // this process's network namespace
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) && strings.HasSuffix(tb.file, "6") {
		return nil, nil // IPv6 disabled: no IPv6 sockets
	}
	if err != nil {
		return nil, fmt.Errorf("takeover: %w", err)
	}
	defer f.Close()
	entries, err := parseTable(f, binary.NativeEndian)
	if err != nil {
		return nil, fmt.Errorf("takeover: %s: %w", path, err)
	}
	var out []candidate
	for _, e := range entries {
		if e.Local.Port() != port || (tb.listenOnly && e.State != tcpListen) {
			continue
		}
		a := e.Local.Addr()
		if tb.mapped && !a.IsUnspecified() && !a.Is4In6() {
			continue // a specific IPv6 address: no conflict with IPv4
		}
		out = append(out, candidate{entry: e, udp: strings.HasPrefix(tb.file, "udp"), dual: tb.mapped && a.IsUnspecified()})
	}
	return out, nil
}

// owner is one descriptor that refers to a socket.
type owner struct{ pid, fd int }

// findOwners scans /proc/PID/fd/* for the links "socket:[inode]" of the
// given inodes. denied counts processes whose descriptors this user may not
// read, to tell "not found" from "not permitted".
func findOwners(inodes map[uint64]bool) (owners map[uint64][]owner, denied int, err error) {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, 0, fmt.Errorf("takeover: %w", err)
	}
	owners = make(map[uint64][]owner)
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid <= 0 {
			continue
		}
		if err := scanFDs(pid, inodes, owners); errors.Is(err, fs.ErrPermission) {
			denied++
		}
	}
	return owners, denied, nil
}

// scanFDs adds the descriptors of pid that refer to inodes to owners. Other
// errors than permission are ignored: the process or descriptor is gone.
func scanFDs(pid int, inodes map[uint64]bool, owners map[uint64][]owner) error {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd/"
	fds, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, d := range fds {
		fd, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		link, err := os.Readlink(dir + d.Name())
		if errors.Is(err, fs.ErrPermission) {
			return err // readable directory, but no ptrace read rights
		}
		s, ok := strings.CutPrefix(link, "socket:[")
		if err != nil || !ok {
			continue
		}
		ino, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64)
		if err == nil && inodes[ino] {
			owners[ino] = append(owners[ino], owner{pid, fd})
		}
	}
	return nil
}

// held is a socket on the port, duplicated into natmap from one owner.
type held struct {
	candidate
	owner
	dup       int // natmap's duplicate of the socket
	comm      string
	reusePort bool
}

func (h held) String() string {
	return fmt.Sprintf("the socket of %s (pid %d fd %d)", h.comm, h.pid, h.fd)
}

// inspect duplicates socket c through the first of its owners that still
// holds it, and tells whether it stands in the way of natmap's bind.
func inspect(c candidate, owners []owner) (h held, blocks bool, err error) {
	var last error
	for _, o := range owners {
		fd, err := grab(o, c.Inode)
		if errors.Is(err, errGone) {
			last = err
			continue // exited or closed it meanwhile: another owner may still hold it
		}
		if err != nil {
			return held{}, false, err
		}
		h = held{candidate: c, owner: o, dup: fd, comm: comm(o.pid)}
		blocks, h.reusePort, err = blocking(h)
		if err != nil {
			unix.Close(fd)
			return held{}, false, err
		}
		return h, blocks, nil
	}
	return held{}, false, fmt.Errorf("socket inode %d: %w: %w", c.Inode, ErrNoOwner, last)
}

// errGone marks a process or descriptor that disappeared since /proc was read.
var errGone = errors.New("owner gone")

// grab duplicates the owner's descriptor into this process with
// pidfd_getfd, and checks that it is still the socket we look for: the
// process may have exited, or closed the descriptor and reused its number,
// since /proc was read.
func grab(o owner, inode uint64) (int, error) {
	pidfd, err := unix.PidfdOpen(o.pid, 0)
	if err != nil {
		return -1, pidfdError("pidfd_open", o, err)
	}
	defer unix.Close(pidfd)
	fd, err := unix.PidfdGetfd(pidfd, o.fd, 0)
	if err != nil {
		return -1, pidfdError("pidfd_getfd", o, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK || st.Ino != inode {
		unix.Close(fd)
		return -1, fmt.Errorf("pid %d fd %d is no longer socket inode %d: %w", o.pid, o.fd, inode, errGone)
	}
	return fd, nil
}

func pidfdError(op string, o owner, err error) error {
	switch {
	case errors.Is(err, unix.ESRCH), errors.Is(err, unix.EBADF):
		return fmt.Errorf("%s pid %d fd %d: %w: %w", op, o.pid, o.fd, errGone, err)
	case errors.Is(err, unix.ENOSYS):
		return fmt.Errorf("%s pid %d: needs Linux >= 5.6: %w", op, o.pid, err)
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fmt.Errorf("%s pid %d fd %d: needs root (ptrace rights over the process): %w", op, o.pid, o.fd, err)
	}
	return fmt.Errorf("%s pid %d fd %d: %w", op, o.pid, o.fd, err)
}

// blocking tells whether socket h refuses natmap's bind unless it has
// SO_REUSEPORT and natmap's socket its uid, and whether it has SO_REUSEPORT.
func blocking(h held) (blocks, reusePort bool, err error) {
	get := func(level, opt int, name string) (bool, error) {
		v, err := unix.GetsockoptInt(h.dup, level, opt)
		if err != nil {
			return false, fmt.Errorf("%s: get %s: %w", h, name, err)
		}
		return v != 0, nil
	}
	if h.dual {
		v6only, err := get(unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, "IPV6_V6ONLY")
		if err != nil || v6only {
			return false, false, err // IPv6 only: does not hold the IPv4 port
		}
	}
	if h.udp {
		// UDP sockets share a port when both have SO_REUSEADDR, whatever
		// their users; natmap sets it.
		reuseaddr, err := get(unix.SOL_SOCKET, unix.SO_REUSEADDR, "SO_REUSEADDR")
		if err != nil || reuseaddr {
			return false, false, err
		}
	}
	reusePort, err = get(unix.SOL_SOCKET, unix.SO_REUSEPORT, "SO_REUSEPORT")
	return err == nil, reusePort, err
}

func comm(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}
