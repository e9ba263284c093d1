package notify

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// HelperCommand is the subcommand that runs HelperMain (`natmap
// notify-exec SCRIPT ARGS...`). natmap runs each notify script through it:
// the helper is a child subreaper, so everything the script starts stays
// below it, even what calls setsid or daemonizes, and can be ended with it.
// natmap itself never becomes a subreaper: it waits only for the helpers
// os/exec started, so nothing races os/exec's Wait.
const HelperCommand = "notify-exec"

// statusFD is the helper's fd on which it reports one line to natmap:
// "exit N", "signal N", "killed" or "error MESSAGE".
const statusFD = 3

// HelperMain is the helper process. It execs args[0] with argv args, as
// the C natmap's execl does (no PATH search: a name without a slash is in
// the current directory), and a file the kernel cannot execute (no "#!"
// line) through /bin/sh, as busybox ash does. It reports when the script
// exits, without waiting for what the script left running; on SIGTERM it
// kills the script and all its descendants first.
func HelperMain(args []string) int {
	status := os.NewFile(statusFD, "status")
	if status == nil {
		return 2
	}
	syscall.CloseOnExec(statusFD) // the script must not hold it
	report := func(s string) { fmt.Fprintln(status, s) }
	if len(args) == 0 {
		report("error no script")
		return 2
	}
	// Caught, not ignored: caught signals are reset by exec, so the script
	// gets the default dispositions. Only natmap decides to end a run.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	// Without it (qemu-user refuses it), what the script started is still
	// ended while it stays in the helper's tree; only what setsid-ed and
	// lost its parent escapes, as with the C natmap.
	_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	pid, err := startScript(args[0], args)
	if err != nil {
		report("error " + err.Error())
		return 1
	}
	exited := make(chan syscall.WaitStatus, 1)
	go reapAll(pid, exited)
	for {
		select {
		case ws := <-exited:
			if ws.Signaled() {
				report("signal " + strconv.Itoa(int(ws.Signal())))
			} else {
				report("exit " + strconv.Itoa(ws.ExitStatus()))
			}
			return 0
		case sig := <-sigs:
			if sig != syscall.SIGTERM {
				continue
			}
			killDescendants(os.Getpid())
			report("killed")
			return 0
		}
	}
}

// startScript runs path as execve does, then as a shell script when the
// kernel does not know its format (ENOEXEC) and it looks like text.
func startScript(path string, argv []string) (int, error) {
	attr := &syscall.ProcAttr{Env: os.Environ(), Files: []uintptr{0, 1, 2}}
	pid, err := syscall.ForkExec(path, argv, attr)
	if errors.Is(err, syscall.ENOEXEC) && looksLikeText(path) {
		pid, err = syscall.ForkExec("/bin/sh", append([]string{"sh", path}, argv[1:]...), attr)
		if err != nil {
			return 0, fmt.Errorf("run %s with /bin/sh (it has no #! line): %w", path, err)
		}
	}
	if err != nil {
		return 0, fmt.Errorf("exec %s: %w", path, err)
	}
	return pid, nil
}

// looksLikeText says whether a file the kernel refused may be a script:
// like bash, a NUL byte in its first line means a binary (for another
// machine, say), which a shell must not read as commands.
func looksLikeText(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	b := make([]byte, 256)
	n, _ := f.Read(b)
	b = b[:n]
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	return bytes.IndexByte(b, 0) < 0
}

// reapAll reaps every child, the script and whatever was reparented to the
// helper, and reports the script's status.
func reapAll(script int, exited chan<- syscall.WaitStatus) {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, 0, nil)
		switch {
		case errors.Is(err, syscall.EINTR):
		case err != nil:
			return // no children left
		case pid == script:
			exited <- ws
		}
	}
}

// killDescendants kills every process below pid until none is left: as a
// subreaper, pid inherits whatever the script's processes orphan, so the
// tree holds everything they started. Killed processes cannot fork, so a
// few rounds catch what forked while one was under way.
func killDescendants(pid int) {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		live := Descendants(pid)
		if len(live) == 0 {
			return
		}
		for _, p := range live {
			syscall.Kill(p, syscall.SIGKILL)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Descendants lists the live (not zombie) processes below pid, from /proc.
func Descendants(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	zombie := map[int]bool{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, state, ok := procStat(p)
		if !ok {
			continue
		}
		children[ppid] = append(children[ppid], p)
		zombie[p] = state == "Z"
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			if !zombie[c] {
				out = append(out, c)
			}
			queue = append(queue, c)
		}
	}
	return out
}

// procStat reads a process's parent and state from /proc/PID/stat, whose
// second field (the command, in parentheses) may hold spaces and ')'.
func procStat(pid int) (ppid int, state string, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, "", false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, "", false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, "", false
	}
	ppid, err = strconv.Atoi(f[1])
	return ppid, f[0], err == nil
}
