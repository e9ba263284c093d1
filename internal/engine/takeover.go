package engine

import (
	"errors"
	"syscall"

	"github.com/natmap-go/natmap/internal/takeover"
)

// takeOver handles a bind-mode bind that failed because the user's service
// holds the port without SO_REUSEPORT: it turns SO_REUSEPORT on in the
// service's socket (pidfd_getfd) and reports whether a retry can succeed.
// Forward mode never does this: natmap's listener would then share the
// service's connections.
func (e *Engine) takeOver(err error, port uint16) bool {
	if e.cfg.Forward() || port == 0 || !errors.Is(err, syscall.EADDRINUSE) {
		return false
	}
	changes, terr := takeover.EnableReusePort(e.cfg.Network(), port)
	for _, c := range changes {
		e.log.Info("enabled SO_REUSEPORT on the service holding the port", "port", port, "pid", c.PID, "process", c.Comm, "fd", c.FD)
	}
	if terr != nil {
		e.log.Warn("port is in use and cannot be shared", "port", port, "err", terr)
	}
	return len(changes) > 0
}
