// Package netns runs code inside a named network namespace (one made with
// `ip netns add`). Sockets created there stay in it, so they can be used
// from any goroutine afterwards.
package netns

import (
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// Do runs fn on a fresh goroutine's thread switched into namespace ns
// (/var/run/netns/ns) and returns its error; a panic in fn is passed on.
// The thread goes back to its namespace afterwards, or is discarded.
func Do(ns string, fn func() error) error {
	target, err := unix.Open("/var/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", ns, err)
	}
	defer unix.Close(target)

	type result struct {
		err   error
		panic any
	}
	done := make(chan result, 1)
	// A fresh goroutine, so the caller's thread is never switched.
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("open current netns: %w", err)}
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("setns %s: %w", ns, err)}
			return
		}
		var res result
		func() {
			defer func() { res.panic = recover() }()
			res.err = fn()
		}()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			// Stay locked: the runtime then discards this thread when the
			// goroutine exits instead of reusing it in the wrong netns.
			res.err = errors.Join(res.err, fmt.Errorf("restore netns after %s: %w", ns, err))
			done <- res
			return
		}
		runtime.UnlockOSThread()
		done <- res
	}()
	res := <-done
	if res.panic != nil {
		panic(res.panic)
	}
	return res.err
}
