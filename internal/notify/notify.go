// Package notify tells the world about a new mapping: it runs the user's
// script with the C natmap's six arguments, or prints them.
package notify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/natmap-go/natmap/internal/ip4p"
)

// DefaultTimeout bounds a script run; a DNS update that takes longer is hung.
const DefaultTimeout = 60 * time.Second

// Mapping is what a notification says.
type Mapping struct {
	Public   netip.AddrPort
	Private  netip.AddrPort
	Protocol string // "tcp" or "udp"
}

// Args are the C natmap's script arguments: public ip, public port, IP4P,
// private port, protocol, private ip.
func (m Mapping) Args() []string {
	return []string{
		m.Public.Addr().Unmap().String(),
		strconv.Itoa(int(m.Public.Port())),
		ip4p.Format(m.Public),
		strconv.Itoa(int(m.Private.Port())),
		m.Protocol,
		m.Private.Addr().Unmap().String(),
	}
}

// Notifier runs notifications one at a time, in order, without ever
// blocking its caller. While a script runs, newer mappings wait and only the
// latest is kept: the script always ends up told the current state.
type Notifier struct {
	Script    string        // empty: print the arguments to Stdout
	ExtraArgs []string      // appended after the six arguments
	Env       []string      // added to natmap's environment
	Timeout   time.Duration // 0 means DefaultTimeout
	Stdout    io.Writer     // script output and printed mappings; nil is os.Stdout
	Stderr    io.Writer     // script errors; nil is os.Stderr
	Log       *slog.Logger
	// After, if set, is called with each mapping once it is delivered
	// (the script ended, however it ended), in Run's goroutine: the
	// built-in updaters run after the script. It must not block.
	After func(Mapping)

	mu      sync.Mutex
	pending *Mapping
	wake    chan struct{}
}

// Notify queues m and returns at once.
func (n *Notifier) Notify(m Mapping) {
	n.mu.Lock()
	n.pending = &m
	n.mu.Unlock()
	select {
	case n.wakeup() <- struct{}{}:
	default:
	}
}

func (n *Notifier) wakeup() chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.wake == nil {
		n.wake = make(chan struct{}, 1)
	}
	return n.wake
}

// Run delivers queued notifications until ctx ends; a script still running
// then is killed.
func (n *Notifier) Run(ctx context.Context) {
	wake := n.wakeup()
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
		}
		n.mu.Lock()
		m := n.pending
		n.pending = nil
		n.mu.Unlock()
		if m != nil {
			n.deliver(ctx, *m)
			if n.After != nil && ctx.Err() == nil {
				n.After(*m)
			}
		}
	}
}

func (n *Notifier) deliver(ctx context.Context, m Mapping) {
	args := append(m.Args(), n.ExtraArgs...)
	stdout := n.Stdout
	if stdout == nil {
		stdout = os.Stdout
	}
	if n.Script == "" {
		fmt.Fprintf(stdout, "%s %s %s %s %s %s\n", args[0], args[1], args[2], args[3], args[4], args[5])
		return
	}
	start := time.Now()
	err := n.run(ctx, args, stdout)
	log := n.Log.With("script", n.Script, "took", time.Since(start).Round(time.Millisecond))
	switch {
	case err == nil:
		log.Info("notify script done", "public", m.Public)
	case ctx.Err() != nil:
		log.Warn("notify script killed: shutting down")
	default:
		log.Error("notify script failed", "err", err)
	}
}

func (n *Notifier) run(ctx context.Context, args []string, stdout io.Writer) error {
	timeout := n.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// exec directly, no shell: the arguments are data, never code.
	cmd := exec.CommandContext(ctx, n.Script, args...)
	cmd.Env = append(os.Environ(), n.Env...)
	cmd.Stdout = stdout
	cmd.Stderr = n.Stderr
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	// A group of its own, so a timeout kills what the script started too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// Children that keep stdout open must not hold us after the kill.
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("killed after %s: %w", timeout, err)
	}
	return err
}
