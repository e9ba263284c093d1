// Command vminit is the init (PID 1) of the small MIPS VM in which e2e's
// BenchmarkDaemonIdleRSSMIPS measures natmap's idle memory, and
// BenchmarkRelayMIPS its relay's CPU time, on a real MIPS kernel. Everything runs on the VM's loopback: vminit brings lo up, serves
// STUN (UDP and TCP, 127.0.0.1:3478 and :3479) and an HTTP keep-alive server
// (127.0.0.1:80), then for each run of its plan (/etc/vminit.json) starts
// natmap (the Go daemon with one section per mapping, or one C natmap
// process per mapping, as the stock package runs them), waits until every
// mapping has been notified, lets it idle, and prints what the processes
// hold (VmRSS, RssAnon, Threads from /proc/PID/status, Pss from
// smaps_rollup, summed over the run's processes; and what of it they touch
// in the next 15 s) on the console, a vmplan.Line each, before it powers the
// machine off. A relay run instead starts one natmap in forward mode with
// the C natmap's command line, its target a sink in vminit, and times a
// client's upload through it and then a download, with natmap's CPU time
// meanwhile.
//
// Run as /notify (a symlink to it) it is the runs' notify script: it
// appends its arguments to /tmp/notes.
package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/natmap-go/natmap/internal/testkit/procfs"
	"github.com/natmap-go/natmap/internal/testkit/stunserver"
	"github.com/natmap-go/natmap/internal/testkit/tcpserve"
	"github.com/natmap-go/natmap/internal/testkit/vmplan"
	pion "github.com/pion/stun/v3"
	"golang.org/x/sys/unix"
)

// Paths inside the VM besides vmplan's.
const (
	notesPath  = "/tmp/notes"
	configPath = "/etc/config/natmap"
	socketPath = "/tmp/natmap.sock"
)

// What the runs use: the servers vminit starts and the mappings' ports.
const (
	stunAddr1   = "127.0.0.1:3478"
	stunAddr2   = "127.0.0.1:3479"
	httpAddr    = "127.0.0.1:80"
	firstPort   = 40100 // mapping i binds firstPort+i
	forwardPort = 5207  // nothing listens: the relay stays idle
	// Relay run i binds relayPort+i: its own port, so that no TIME_WAIT
	// of an earlier run's connections from it is in the way.
	relayPort = 40200
	sinkPort  = 5208 // the relay runs' target
)

// touchPeriod is the x86 benchmark's: one trim period of natmap's.
const touchPeriod = 15 * time.Second

func main() {
	if filepath.Base(os.Args[0]) == filepath.Base(vmplan.Notify) {
		os.Exit(notify(notesPath, os.Args[1:]))
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "vminit: this is the MIPS VM's init (PID 1); e2e's BenchmarkDaemonIdleRSSMIPS runs it")
		os.Exit(2)
	}
	if err := run(); err != nil {
		fmt.Println(vmplan.Line{Error: err.Error()})
	}
	fmt.Println(vmplan.Line{Done: true})
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	// Still here: init's exit panics the kernel, and with panic=-1 and
	// qemu's -no-reboot the machine stops all the same.
	os.Exit(1)
}

// notify appends one line, the notify script's arguments, to the notes.
func notify(notes string, args []string) int {
	f, err := os.OpenFile(notes, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "notify:", err)
		return 1
	}
	defer f.Close()
	if _, err := f.WriteString(strings.Join(args, " ") + "\n"); err != nil { // one write: appends do not interleave
		fmt.Fprintln(os.Stderr, "notify:", err)
		return 1
	}
	return 0
}

func run() error {
	if err := unix.Mount("proc", "/proc", "proc", 0, ""); err != nil {
		return fmt.Errorf("mounting /proc: %w", err)
	}
	// /dev/null and the like (the console stays open on fds 0-2).
	if err := unix.Mount("devtmpfs", "/dev", "devtmpfs", 0, ""); err != nil {
		return fmt.Errorf("mounting /dev: %w", err)
	}
	if err := loopbackUp(); err != nil {
		return err
	}
	var plan vmplan.Plan
	b, err := os.ReadFile(vmplan.PlanPath)
	if err == nil {
		err = json.Unmarshal(b, &plan)
	}
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	m, err := machine()
	if err != nil {
		return err
	}
	fmt.Println(vmplan.Line{Machine: &m})
	for _, addr := range []string{stunAddr1, stunAddr2} {
		if err := serveSTUN(addr); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp4", httpAddr)
	if err != nil {
		return fmt.Errorf("keep-alive server: %w", err)
	}
	// Answers every request with 200 and no body, on a kept-alive
	// connection, as natmap's keep-alive server needs.
	go http.Serve(ln, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	for i, r := range plan.Runs {
		res, err := measure(r, i, time.Duration(plan.WaitSeconds)*time.Second, time.Duration(plan.IdleSeconds)*time.Second)
		if err != nil {
			return fmt.Errorf("run %s: %w", r.Name, err)
		}
		fmt.Println(vmplan.Line{Result: &res})
	}
	return nil
}

// loopbackUp brings lo up; the kernel gives it 127.0.0.1/8 then.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("lo: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("lo: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("lo flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("lo up: %w", err)
	}
	return nil
}

// machine says what the kernel runs on.
func machine() (vmplan.Machine, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return vmplan.Machine{}, fmt.Errorf("uname: %w", err)
	}
	m := vmplan.Machine{Machine: unix.ByteSliceToString(u.Machine[:]), Release: unix.ByteSliceToString(u.Release[:])}
	m.CPUModel, _ = procfs.Field("/proc/cpuinfo", "cpu model") // "" if none
	m.MemTotal, _ = procfs.Field("/proc/meminfo", "MemTotal")
	return m, nil
}

// serveSTUN answers Binding requests on addr, UDP and TCP, with the
// sender's address, as a plain STUN server does.
func serveSTUN(addr string) error {
	pc, err := net.ListenPacket("udp4", addr)
	if err != nil {
		return fmt.Errorf("STUN server: %w", err)
	}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			req := new(pion.Message)
			if pion.Decode(buf[:n], req) != nil || req.Type != pion.BindingRequest {
				continue
			}
			pc.WriteTo(stunserver.Answer(req, from.(*net.UDPAddr).AddrPort()), from)
		}
	}()
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		return fmt.Errorf("STUN server: %w", err)
	}
	go tcpserve.Accept(ln, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if req, err := stunserver.ReadTCP(c); err == nil && req.Type == pion.BindingRequest {
			c.Write(stunserver.Answer(req, c.RemoteAddr().(*net.TCPAddr).AddrPort()))
		}
	})
	return nil
}

// measure starts run r (the plan's index-th), waits until each of its
// mappings was notified, lets them idle, reads their memory and ends them;
// or for a relay run times the transfers through it.
func measure(r vmplan.Run, index int, within, idle time.Duration) (vmplan.Result, error) {
	if err := os.Remove(notesPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return vmplan.Result{}, err
	}
	logPath := "/tmp/" + r.Name + ".log"
	log, err := os.Create(logPath)
	if err != nil {
		return vmplan.Result{}, err
	}
	defer log.Close()
	var cmds []*exec.Cmd
	var ports []int
	for i := range r.Mappings {
		ports = append(ports, firstPort+i)
	}
	switch {
	case r.RelayMiB > 0:
		bin := r.Binary
		if bin == "" {
			bin = vmplan.GoNatmap
		}
		ports = []int{relayPort + index}
		sink, err := serveSink(sinkAddr())
		if err != nil {
			return vmplan.Result{}, err
		}
		defer sink.Close()
		cmds = append(cmds, exec.Command(bin, "-k", "2", "-h", httpAddr, "-s", stunAddr1,
			"-b", strconv.Itoa(ports[0]), "-t", "127.0.0.1", "-p", strconv.Itoa(sinkPort), "-e", vmplan.Notify))
	case r.Impl == "go":
		if err := writeConfig(configPath, r.Mappings); err != nil {
			return vmplan.Result{}, err
		}
		cmds = append(cmds, exec.Command(vmplan.GoNatmap, "daemon", "--config", configPath, "--socket", socketPath, "--log", "stderr", "--firewall=false"))
	case r.Impl == "c":
		// As the stock package runs the C natmap: one process per section.
		for i := range r.Mappings {
			cmds = append(cmds, exec.Command(vmplan.CNatmap, "-k", "2", "-h", httpAddr, "-s", stunAddr1,
				"-b", strconv.Itoa(firstPort+i), "-t", "127.0.0.1", "-p", strconv.Itoa(forwardPort), "-e", vmplan.Notify))
		}
	default:
		return vmplan.Result{}, fmt.Errorf("impl %q: want go or c", r.Impl)
	}
	defer stop(cmds)
	for _, c := range cmds {
		c.Stdout, c.Stderr = log, log
		if err := c.Start(); err != nil {
			return vmplan.Result{}, err
		}
	}
	if err := waitNotified(notesPath, ports, within); err != nil {
		return vmplan.Result{}, fmt.Errorf("%w; its log:\n%s", err, tail(logPath))
	}
	if r.RelayMiB > 0 {
		return relay(r, cmds[0].Process.Pid, ports[0], logPath)
	}
	time.Sleep(idle)
	res := vmplan.Result{Run: r.Name, Procs: len(cmds)}
	for _, c := range cmds {
		pid := c.Process.Pid
		if err := c.Process.Signal(syscall.Signal(0)); err != nil {
			return vmplan.Result{}, fmt.Errorf("pid %d ended: %w; the log:\n%s", pid, err, tail(logPath))
		}
		for _, f := range []struct {
			file, name string
			sum        *float64
		}{
			{"status", "VmRSS", &res.VmRSS},
			{"status", "RssAnon", &res.RssAnon},
			{"status", "Threads", &res.Threads},
			{"smaps_rollup", "Pss", &res.Pss},
		} {
			v, err := procfs.KiB(pid, f.file, f.name)
			if err != nil {
				return vmplan.Result{}, err
			}
			*f.sum += v
		}
	}
	for _, c := range cmds {
		if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", c.Process.Pid), []byte("1"), 0); err != nil {
			return vmplan.Result{}, err
		}
	}
	time.Sleep(touchPeriod)
	for _, c := range cmds {
		v, err := procfs.KiB(c.Process.Pid, "smaps_rollup", "Referenced")
		if err != nil {
			return vmplan.Result{}, err
		}
		res.Touched += v
	}
	res.Problems = problems(logPath)
	return res, nil
}

// writeConfig writes the daemon's UCI config: the x86 benchmark's
// (BenchmarkDaemonIdleRSS), with the servers on loopback.
func writeConfig(path string, mappings int) error {
	var b strings.Builder
	fmt.Fprintf(&b, "config global\n\tlist stun_server '%s'\n\tlist stun_server '%s'\n\toption http_server '%s'\n\toption interval '2'\n",
		stunAddr1, stunAddr2, httpAddr)
	for i := range mappings {
		fmt.Fprintf(&b, "\nconfig natmap 'm%d'\n\toption enable '1'\n\toption port '%d'\n"+
			"\toption forward_target '127.0.0.1'\n\toption forward_port '%d'\n\toption notify_script '%s'\n",
			i, firstPort+i, forwardPort, vmplan.Notify)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// waitNotified waits until the notes name each of ports as a private port
// (the notify script's fourth argument).
func waitNotified(notes string, ports []int, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		b, _ := os.ReadFile(notes)
		seen := map[string]bool{}
		for line := range strings.Lines(string(b)) {
			if f := strings.Fields(line); len(f) >= 4 {
				seen[f[3]] = true
			}
		}
		missing := 0
		for _, p := range ports {
			if !seen[strconv.Itoa(p)] {
				missing++
			}
		}
		if missing == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d mappings not notified within %s (notes: %q)", missing, len(ports), within, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// stop ends the processes (SIGTERM, then SIGKILL after 10 s) and reaps them.
func stop(cmds []*exec.Cmd) {
	for _, c := range cmds {
		if c.Process != nil {
			c.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, c := range cmds {
		if c.Process == nil {
			continue
		}
		t := time.AfterFunc(10*time.Second, func() { c.Process.Kill() })
		c.Wait()
		t.Stop()
	}
}

// problems are a Go natmap log's warnings and errors, the first line of
// each message (up to 10).
func problems(path string) []string {
	b, _ := os.ReadFile(path)
	var out []string
	seen := map[string]bool{}
	for line := range strings.Lines(string(b)) {
		if !strings.Contains(line, "level=WARN") && !strings.Contains(line, "level=ERROR") {
			continue
		}
		_, msg, _ := strings.Cut(line, " msg=")
		msg, _, _ = strings.Cut(msg, " section=")
		if !seen[msg] && len(out) < 10 {
			seen[msg] = true
			out = append(out, strings.TrimSpace(line))
		}
	}
	return out
}

// tail is the last 2 KiB of a file.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	return string(b[max(0, len(b)-2048):])
}

func sinkAddr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(sinkPort)) }

// relay times an upload of r.RelayMiB MiB through the natmap (pid) that
// relays port to the sink, then a download, with natmap's CPU time during
// each.
func relay(r vmplan.Run, pid, port int, logPath string) (vmplan.Result, error) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	size := int64(r.RelayMiB) << 20
	// A first small transfer: what natmap sets up once (pipes, buffers)
	// is not the relaying's cost.
	if err := transfer(addr, 'u', 1<<20); err != nil {
		return vmplan.Result{}, fmt.Errorf("warm-up through the relay: %w; its log:\n%s", err, tail(logPath))
	}
	res := vmplan.Result{Run: r.Name, Procs: 1}
	for _, dir := range []byte{'u', 'd'} {
		u0, s0, err := cpuTicks(pid)
		if err != nil {
			return vmplan.Result{}, err
		}
		start := time.Now()
		if err := transfer(addr, dir, size); err != nil {
			return vmplan.Result{}, fmt.Errorf("%c through the relay: %w; its log:\n%s", dir, err, tail(logPath))
		}
		took := time.Since(start)
		u1, s1, err := cpuTicks(pid)
		if err != nil {
			return vmplan.Result{}, err
		}
		res.Transfers = append(res.Transfers, vmplan.Transfer{Dir: map[byte]string{'u': "up", 'd': "down"}[dir],
			MiB: float64(size) / (1 << 20), Seconds: took.Seconds(), UserTicks: u1 - u0, SysTicks: s1 - s0})
	}
	res.Problems = problems(logPath)
	return res, nil
}

// cpuTicks is a process's user and system CPU time (/proc/PID/stat's utime
// and stime, in 1/vmplan.UserHZ s).
func cpuTicks(pid int) (user, sys int, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The fields after the command's ")": state is the stat's 3rd field,
	// utime its 14th, stime its 15th.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %q", pid, b)
	}
	if user, err = strconv.Atoi(f[11]); err == nil {
		sys, err = strconv.Atoi(f[12])
	}
	if err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return user, sys, nil
}

// A transfer's request, the client's first 9 bytes to the sink: 'u' (the
// client sends) or 'd' (the sink sends), and the size, big-endian.
const requestLen = 9

// transfer connects to addr (the relay) and sends size bytes to the sink
// behind it (dir 'u'), returning when the sink has them all, or receives
// size bytes from it (dir 'd').
func transfer(addr string, dir byte, size int64) error {
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Minute))
	req := make([]byte, requestLen)
	req[0] = dir
	binary.BigEndian.PutUint64(req[1:], uint64(size))
	if _, err := c.Write(req); err != nil {
		return err
	}
	if dir == 'd' {
		return receive(c, size)
	}
	if err := send(c, size); err != nil {
		return err
	}
	ack := make([]byte, 1)
	if _, err := io.ReadFull(c, ack); err != nil {
		return fmt.Errorf("the sink's acknowledgement: %w", err)
	}
	return nil
}

// serveSink accepts the relay's connections on addr and serves each
// transfer's request: it reads the upload and acknowledges it with one
// byte, or sends the download and closes.
func serveSink(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	go tcpserve.Accept(ln, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(10 * time.Minute))
		req := make([]byte, requestLen)
		if _, err := io.ReadFull(c, req); err != nil {
			return
		}
		size := int64(binary.BigEndian.Uint64(req[1:]))
		switch req[0] {
		case 'u':
			if receive(c, size) == nil {
				c.Write([]byte{1})
			}
		case 'd':
			send(c, size)
		}
	})
	return ln, nil
}

// chunk is what the client and the sink read or write at once: few
// syscalls of theirs, so the emulated CPU goes to the relay.
const chunk = 256 << 10

// send writes size zero bytes to w.
func send(w io.Writer, size int64) error {
	buf := make([]byte, chunk)
	for size > 0 {
		n, err := w.Write(buf[:min(size, chunk)])
		if err != nil {
			return err
		}
		size -= int64(n)
	}
	return nil
}

// receive reads size bytes from r (more is an error).
func receive(r io.Reader, size int64) error {
	buf := make([]byte, chunk)
	var got int64
	for {
		n, err := r.Read(buf)
		got += int64(n)
		if got > size {
			return fmt.Errorf("received more than %d bytes", size)
		}
		if got == size {
			return nil
		}
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("received %d of %d bytes", got, size)
		}
		if err != nil {
			return err
		}
	}
}
