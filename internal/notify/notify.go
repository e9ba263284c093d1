// Package notify tells the world about a new mapping: it runs the user's
// script with the C natmap's six arguments, or prints them.
package notify

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/natmap-go/natmap/internal/ip4p"
	"github.com/natmap-go/natmap/internal/oneproc"
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

// Defaults for a Notifier's zero fields.
const (
	DefaultMaxLogLines = 100      // lines of output logged per run
	DefaultMaxLogBytes = 16 << 10 // bytes of output logged per run
	maxLine            = 4096     // a longer line is logged in pieces
	helperGrace        = 10 * time.Second
)

// Notifier runs notifications one at a time, in order, without ever
// blocking its caller. Only the newest mapping matters: one that arrives
// while a script still reports an older one ends that script, with
// everything it started, and runs the script for the newest at once.
type Notifier struct {
	Script    string        // empty: print the arguments to Stdout
	ExtraArgs []string      // appended after the six arguments
	Env       []string      // added to natmap's environment
	Timeout   time.Duration // 0 means DefaultTimeout
	// Where the script's output goes. An *os.File (nil: natmap's own
	// stdout and stderr) is handed to the script as the C natmap does;
	// io.Discard is /dev/null; any other writer gets the output line by
	// line (a last line without a newline too), at most MaxLogLines and
	// MaxLogBytes per run, then one log line says how much was dropped.
	Stdout      io.Writer
	Stderr      io.Writer
	MaxLogLines int // 0: DefaultMaxLogLines
	MaxLogBytes int // 0: DefaultMaxLogBytes
	// Helper is the command that runs HelperMain; the script's path and
	// arguments follow it. nil: $NATMAP_NOTIFY_HELPER (words), for natmap
	// run through an emulator such as qemu-user, which cannot re-execute
	// itself; else this executable (/proc/self/exe) with HelperCommand.
	Helper []string
	Log    *slog.Logger
	// After, if set, is called with each mapping once it is delivered
	// (its script ended, however it ended, or there is none), in Run's
	// goroutine: the built-in updaters run after the script. A mapping
	// whose script a newer one ended is not passed on. It must not block.
	After func(Mapping)

	mu      sync.Mutex // guards pending, wake and lastErr
	pending *Mapping
	wake    chan struct{}
	lastErr string
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

// LastError is why the last run of the script failed, or why it cannot
// run (Check); empty when it last succeeded or has not run.
func (n *Notifier) LastError() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.lastErr
}

func (n *Notifier) setErr(err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.lastErr = ""
	if err != nil {
		n.lastErr = err.Error()
	}
}

// Check says whether the script can run (it exists and is executable),
// and records the answer for LastError. The mapping runs either way: the
// script is tried at each change, in case it was fixed.
func (n *Notifier) Check() error {
	if n.Script == "" {
		return nil
	}
	err := CheckScript(n.Script)
	n.setErr(err)
	return err
}

// CheckScript says whether path is an executable file. A relative path is
// relative to the current directory, as for the C natmap's execl.
func CheckScript(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", path)
	}
	return nil
}

func (n *Notifier) wakeup() chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.wake == nil {
		n.wake = make(chan struct{}, 1)
	}
	return n.wake
}

func (n *Notifier) take() *Mapping {
	n.mu.Lock()
	defer n.mu.Unlock()
	m := n.pending
	n.pending = nil
	return m
}

// Run delivers queued notifications until ctx ends; a script still running
// then is ended with everything it started. Output still arriving from
// what earlier scripts left running is logged until then.
func (n *Notifier) Run(ctx context.Context) {
	wake := n.wakeup()
	var out outputs
	defer out.closeAll()
	var cur *run
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		var done <-chan error
		if cur != nil {
			done = cur.done
		}
		select {
		case <-ctx.Done():
			if cur != nil {
				if err := cur.end(); err == errEnded {
					n.log(cur).Warn("notify script killed: shutting down")
				} else {
					n.finished(cur, err)
				}
			}
			return
		case err := <-done:
			timer.Stop()
			n.finished(cur, err)
			n.after(cur.m)
			cur = nil
		case <-timer.C:
			err := cur.end()
			if err == errEnded {
				err = fmt.Errorf("killed after %s, with everything it started", n.timeout())
			}
			n.finished(cur, err)
			n.after(cur.m)
			cur = nil
		case <-wake:
			m := n.take()
			if m == nil {
				continue
			}
			if cur != nil {
				timer.Stop()
				if err := cur.end(); err == errEnded {
					n.log(cur).Warn("notify script ended: a newer mapping arrived", "public", cur.m.Public, "newer", m.Public)
				} else {
					n.finished(cur, err) // it ended by itself meanwhile
				}
				cur = nil
			}
			if n.Script == "" {
				n.print(*m)
				n.after(*m)
				continue
			}
			r, err := n.start(*m, &out)
			if err != nil {
				n.setErr(err)
				n.Log.Error("notify script failed", "script", n.Script, "err", err)
				n.after(*m)
				continue
			}
			cur = r
			timer.Reset(n.timeout())
		}
	}
}

func (n *Notifier) after(m Mapping) {
	if n.After != nil {
		n.After(m)
	}
}

func (n *Notifier) timeout() time.Duration {
	if n.Timeout <= 0 {
		return DefaultTimeout
	}
	return n.Timeout
}

func (n *Notifier) log(r *run) *slog.Logger {
	return n.Log.With("script", n.Script, "took", time.Since(r.began).Round(time.Millisecond))
}

func (n *Notifier) finished(r *run, err error) {
	n.setErr(err)
	if err != nil {
		n.log(r).Error("notify script failed", "err", err, "public", r.m.Public)
		return
	}
	n.log(r).Info("notify script done", "public", r.m.Public)
}

func (n *Notifier) print(m Mapping) {
	args := m.Args()
	stdout := n.Stdout
	if stdout == nil {
		stdout = os.Stdout
	}
	fmt.Fprintf(stdout, "%s %s %s %s %s %s\n", args[0], args[1], args[2], args[3], args[4], args[5])
}

// run is one run of the script, through the helper.
type run struct {
	m     Mapping
	began time.Time
	cmd   *exec.Cmd
	done  chan error // the run's outcome, once
}

// end asks the helper to kill the script and its descendants, and waits
// for it (killing the helper itself if it does not answer). It returns
// the run's outcome: errEnded, unless the script ended by itself first.
func (r *run) end() error {
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-r.done:
		if errors.Is(err, errHelperDied) {
			return errEnded // the signal came before it could catch it
		}
		return err
	case <-time.After(helperGrace):
	}
	r.cmd.Process.Kill()
	<-r.done
	return errEnded
}

var (
	errEnded      = errors.New("ended by natmap")       // the outcome of a run natmap ended
	errHelperDied = errors.New("died without a report") // the helper's, not the script's
)

func (n *Notifier) start(m Mapping, out *outputs) (*run, error) {
	helper := n.Helper
	if len(helper) == 0 {
		helper = strings.Fields(os.Getenv("NATMAP_NOTIFY_HELPER"))
	}
	own := len(helper) == 0
	if own {
		// This very binary, even if an upgrade replaced its file.
		helper = []string{"/proc/self/exe", HelperCommand}
	}
	args := append(slices.Clone(helper[1:]), n.Script)
	args = append(append(args, m.Args()...), n.ExtraArgs...)
	cmd := exec.Command(helper[0], args...)
	if own {
		cmd.Args[0] = "natmap"
	}
	cmd.Env = append(os.Environ(), n.Env...)
	if own {
		cmd.Env = oneproc.Env(cmd.Env) // the helper is a natmap too
	}
	// If natmap dies, the helper still ends what the script started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}

	status, statusW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer statusW.Close()
	cmd.ExtraFiles = []*os.File{statusW}
	b := &budget{lines: cmp.Or(n.MaxLogLines, DefaultMaxLogLines), bytes: cmp.Or(n.MaxLogBytes, DefaultMaxLogBytes)}
	limit := b.limit()
	stdout, outR, err := stream(n.Stdout, os.Stdout)
	if err != nil {
		status.Close()
		return nil, err
	}
	stderr, errR, err := stream(n.Stderr, os.Stderr)
	if err != nil {
		status.Close()
		closeFiles(outR, stdout)
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	r := &run{m: m, cmd: cmd, done: make(chan error, 1)}
	started := make(chan error, 1)
	go r.exec(status, started)
	err = <-started
	if outR != nil {
		stdout.Close()
	}
	if errR != nil {
		stderr.Close()
	}
	if err != nil {
		closeFiles(status, outR, errR)
		return nil, fmt.Errorf("start %s: %w", helper[0], err)
	}
	out.copy(b, func() {
		if l, by := b.dropped(); l > 0 {
			n.Log.Warn("notify script output not logged: over the limit", "script", n.Script,
				"dropped_lines", l, "dropped_bytes", by, "limit", limit)
		}
	}, copyJob{outR, n.Stdout}, copyJob{errR, n.Stderr})
	return r, nil
}

// exec starts the helper (its error to started, the status pipe then
// closed by the caller) and waits for it; the outcome goes to r.done.
//
// Both calls block a thread: vfork until the helper runs, waitid for the
// whole run. The runtime keeps every thread it ever started, idle with its
// stacks, so a script run would leave one behind for good (a daemon whose
// sections' scripts ran at once kept a dozen). Locked to its thread, this
// goroutine takes the thread with it when it ends. That thread is also
// the helper's parent for Pdeathsig, and it lives until the helper ended.
func (r *run) exec(status *os.File, started chan<- error) {
	runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
	if err := r.cmd.Start(); err != nil {
		started <- err
		return
	}
	r.began = time.Now()
	started <- nil
	werr := r.cmd.Wait()
	line, _ := io.ReadAll(io.LimitReader(status, 4096))
	status.Close()
	r.done <- outcome(strings.TrimSpace(string(line)), werr)
}

// outcome reads the helper's report.
func outcome(report string, werr error) error {
	verb, arg, _ := strings.Cut(report, " ")
	switch verb {
	case "exit":
		if arg == "0" {
			return nil
		}
		return fmt.Errorf("exit status %s", arg)
	case "signal":
		sig, _ := strconv.Atoi(arg)
		return fmt.Errorf("killed by signal %d (%s)", sig, syscall.Signal(sig))
	case "killed":
		return errEnded
	case "error":
		return errors.New(arg)
	}
	return fmt.Errorf("%s helper %w: %v", HelperCommand, errHelperDied, werr)
}

// stream returns the file the script writes one stream to, and the read
// end natmap copies from when the output goes to a writer.
func stream(w io.Writer, def *os.File) (child, r *os.File, err error) {
	switch w := w.(type) {
	case nil:
		return def, nil, nil
	case *os.File:
		return w, nil, nil
	}
	if w == io.Discard {
		f, err := os.Open(os.DevNull)
		return f, nil, err
	}
	r, child, err = os.Pipe()
	return child, r, err
}

func closeFiles(fs ...*os.File) {
	for _, f := range fs {
		if f != nil {
			f.Close()
		}
	}
}

// budget is what one run may still log, over both streams.
type budget struct {
	mu                         sync.Mutex // guards the counts: the streams share them
	lines, bytes               int        // left
	droppedLines, droppedBytes int
}

func (b *budget) limit() string {
	return fmt.Sprintf("%d lines, %d bytes", b.lines, b.bytes)
}

func (b *budget) take(n int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.lines > 0 && b.bytes >= n {
		b.lines--
		b.bytes -= n
		return true
	}
	b.droppedLines++
	b.droppedBytes += n
	b.lines = 0 // once over, nothing more: the log never skips a gap silently
	return false
}

func (b *budget) dropped() (lines, bytes int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.droppedLines, b.droppedBytes
}

// outputs copies the output of every run: what a script left running may
// hold its stdout after it exited, and is logged until it closes it or Run
// ends.
type outputs struct {
	wg   sync.WaitGroup
	mu   sync.Mutex // guards open
	open map[*os.File]bool
}

type copyJob struct {
	r *os.File // nil: nothing to copy
	w io.Writer
}

// copy copies each job's lines, then calls after.
func (o *outputs) copy(b *budget, after func(), jobs ...copyJob) {
	var runWG sync.WaitGroup
	for _, j := range jobs {
		if j.r == nil {
			continue
		}
		o.mu.Lock()
		if o.open == nil {
			o.open = map[*os.File]bool{}
		}
		o.open[j.r] = true
		o.mu.Unlock()
		runWG.Add(1)
		o.wg.Go(func() {
			defer runWG.Done()
			copyLines(j.r, j.w, b)
			o.mu.Lock()
			delete(o.open, j.r)
			o.mu.Unlock()
			j.r.Close()
		})
	}
	o.wg.Go(func() { runWG.Wait(); after() })
}

// closeAll ends the copies still under way and waits for them.
func (o *outputs) closeAll() {
	o.mu.Lock()
	for f := range o.open {
		f.Close()
	}
	o.mu.Unlock()
	o.wg.Wait()
}

// copyLines writes each line of r (a last one without a newline too, and
// a long one in pieces of maxLine bytes) to w while the budget lasts.
func copyLines(r io.Reader, w io.Writer, b *budget) {
	br := bufio.NewReaderSize(r, maxLine)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			text := bytes.TrimSuffix(line, []byte("\n"))
			if b.take(len(line)) {
				w.Write(append(text[:len(text):len(text)], '\n'))
			}
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}
