package engine

import (
	"errors"
	"os"
	"syscall"

	"github.com/natmap-go/natmap/internal/sockopt"
	"github.com/natmap-go/natmap/internal/takeover"
)

// portOwner is the uid natmap's sockets on port must have: after a takeover
// of another user's socket, the kernel shares the port through SO_REUSEPORT
// only with sockets of that user. uid 0 leaves natmap's sockets as created.
type portOwner struct {
	port uint16
	uid  uint32
}

// takeOver handles a bind-mode bind that failed because the user's service
// holds the port without SO_REUSEPORT: it turns SO_REUSEPORT on in the
// service's socket (pidfd_getfd), records the uid natmap's sockets on the
// port must have from now on, and reports whether a retry can succeed.
// Forward mode never does this: natmap's listener would then share the
// service's connections.
func (e *Engine) takeOver(err error, port uint16) bool {
	if e.cfg.Forward() || port == 0 || !errors.Is(err, syscall.EADDRINUSE) {
		return false
	}
	res, terr := takeover.EnableReusePort(e.cfg.Network(), port)
	for _, c := range res.Changes {
		e.log.Info("enabled SO_REUSEPORT on the service holding the port", "port", port, "pid", c.PID, "process", c.Comm, "fd", c.FD, "uid", c.UID)
	}
	if terr != nil {
		e.log.Warn("port is in use and cannot be shared", "port", port, "err", terr)
		return len(res.Changes) > 0
	}
	own := portOwner{port, res.UID}
	if res.UID == uint32(os.Geteuid()) {
		own.uid = 0 // natmap's own uid: nothing to change
	}
	e.mu.Lock()
	changed := e.owner != own
	e.owner = own
	e.mu.Unlock()
	if changed && own.uid != 0 {
		e.log.Info("natmap's sockets on the port take the uid of the service's socket", "port", port, "uid", own.uid)
	}
	// Every socket in the way now shares the port with natmap's: even with
	// nothing changed here, another dial of this engine may have just done it.
	return true
}

// sockOpts are the options of natmap's sockets on port: owned by the
// service's user after a takeover of its socket there.
func (e *Engine) sockOpts(port uint16) sockopt.Options {
	o := e.sock
	e.mu.Lock()
	if e.owner.port == port {
		o.Owner = e.owner.uid
	}
	e.mu.Unlock()
	return o
}
