package e2e

// Helpers for the benchmarks in bench_test.go: helper processes in the lab's
// namespaces (iperf3), echo servers, clients in the inet namespace, and
// /proc readings of natmap.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/natmap-go/natmap/internal/testkit/lab"
	"github.com/natmap-go/natmap/internal/testkit/procfs"
	"github.com/natmap-go/natmap/internal/testkit/tcpserve"
	"github.com/natmap-go/natmap/internal/testkit/wait"
)

// benchForwardArgs is a TCP forward-mode command line for the lab: natmap keeps
// the mapping of port and relays every connection to target:tport.
func benchForwardArgs(l *lab.Lab, port uint16, target string, tport uint16, extra ...string) []string {
	return bindArgs(l, port, append([]string{"-t", target, "-p", strconv.Itoa(int(tport))}, extra...)...)
}

// benchUDPArgs is a UDP command line for the lab (STUN is the keep-alive, so no
// -h); add -t and -p for forward mode.
func benchUDPArgs(l *lab.Lab, port uint16, extra ...string) []string {
	args := append([]string{"-u", "-k", "2", "-b", strconv.Itoa(int(port))}, stunArgs(l)...)
	return append(args, extra...)
}

// benchProc is a helper process (iperf3) in one of the lab's namespaces.
type benchProc struct {
	cmd  *exec.Cmd
	out  *syncBuf
	done chan struct{}
}

// startBenchProc starts name in namespace ns and stops it at the end of the test
// (before the lab goes).
func startBenchProc(t testing.TB, l *lab.Lab, ns, name string, args ...string) *benchProc {
	t.Helper()
	p := &benchProc{cmd: exec.Command(name, args...), out: &syncBuf{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := l.Do(ns, p.cmd.Start); err != nil {
		t.Fatalf("start %s in %s: %v", name, ns, err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, tailOf(p.out.String(), 2000))
		}
	})
	return p
}

// stop ends the process: SIGTERM, then SIGKILL after 3 s.
func (p *benchProc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(3 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// waitListening waits until process pid has a TCP socket listening on port,
// read from /proc/PID/net, which shows the process's own namespace (no
// probing connection that the server would take for a client).
func waitListening(t testing.TB, pid int, port uint16, within time.Duration) {
	t.Helper()
	want := fmt.Sprintf(":%04X ", port)
	wait.For(t, within, fmt.Sprintf("a listener on port %d", port), func() bool {
		for _, f := range []string{"tcp", "tcp6"} {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, f))
			for _, line := range strings.Split(string(b), "\n") {
				// sl local_address rem_address st ...; st 0A is LISTEN.
				fs := strings.Fields(line)
				if len(fs) > 3 && strings.HasSuffix(fs[1]+" ", want) && fs[3] == "0A" {
					return true
				}
			}
		}
		return false
	})
}

// startIperfServer runs "iperf3 -s" on port in the lan namespace, on addr
// if not empty (else on every address), and waits until it listens.
func startIperfServer(t testing.TB, l *lab.Lab, addr string, port uint16) *benchProc {
	t.Helper()
	args := []string{"-s", "-p", strconv.Itoa(int(port))}
	if addr != "" {
		args = append(args, "-B", addr)
	}
	p := startBenchProc(t, l, l.LAN, "iperf3", args...)
	waitListening(t, p.cmd.Process.Pid, port, 5*time.Second)
	return p
}

// iperfResult is one iperf3 run's outcome.
type iperfResult struct {
	bps   float64 // throughput the receiver saw, bits per second
	bytes float64 // what the receiver got
	cpu   float64 // CPU seconds the benchmark spent meanwhile (both iperf3s, the NAT, natmap)
	proc  float64 // CPU seconds of the process pid (the relay) meanwhile
}

// iperf runs an iperf3 client from the outside client address for secs
// seconds to addr (upload: client -> lan; reverse: lan -> client). pid,
// if not 0, is a process (the relay) whose own CPU time is measured too.
func iperf(t testing.TB, l *lab.Lab, addr netip.AddrPort, secs int, reverse bool, pid int) iperfResult {
	t.Helper()
	args := []string{"-c", addr.Addr().String(), "-p", strconv.Itoa(int(addr.Port())),
		"-B", l.ClientAddr.String(), "-t", strconv.Itoa(secs), "-J"}
	if reverse {
		args = append(args, "-R")
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		res, out, err := iperfOnce(l, secs, args, pid)
		// Right after a test the server may still be winding it down and
		// turns the next client away: a moment later it takes it.
		if err != nil && strings.Contains(err.Error(), "server is busy") && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if err != nil {
			t.Fatalf("iperf3 %s: %v\n%s", strings.Join(args, " "), err, tailOf(out, 2000))
		}
		return res
	}
}

func iperfOnce(l *lab.Lab, secs int, args []string, pid int) (iperfResult, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs+15)*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "iperf3", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cpu := sampleCPU()
	err := l.Do(l.Inet, cmd.Start)
	if err == nil {
		err = cmd.Wait()
	}
	after := sampleCPU()
	used, proc := after.oursSince(cpu), after.pidSince(cpu, pid)
	var res struct {
		Error string
		End   struct {
			SumReceived struct {
				Bytes         float64
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		}
	}
	jerr := json.Unmarshal(out.Bytes(), &res)
	switch {
	case res.Error != "":
		return iperfResult{}, out.String(), errors.New(res.Error)
	case err != nil:
		return iperfResult{}, out.String(), err
	case jerr != nil:
		return iperfResult{}, out.String(), jerr
	case res.End.SumReceived.BitsPerSecond <= 0:
		return iperfResult{}, out.String(), errors.New("no throughput in the report")
	}
	r := res.End.SumReceived
	return iperfResult{bps: r.BitsPerSecond, bytes: r.Bytes, cpu: used, proc: proc}, out.String(), nil
}

func tailOf(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// outsideDialer is the outside client's TCP dialer (from ClientAddr, as iperf3 -B).
func outsideDialer(l *lab.Lab) *net.Dialer {
	return &net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(l.ClientAddr, 0)), Timeout: 5 * time.Second}
}

// serveEcho1 answers every TCP connection on ln with the first byte it
// sent and closes it: the server closes first, so TIME_WAIT stays on the
// server's side and the outside client's ports are free again at once.
func serveEcho1(t testing.TB, ln net.Listener) {
	tcpserve.Each(t, ln, func(c net.Conn) {
		var b [1]byte
		if _, err := io.ReadFull(c, b[:]); err == nil {
			c.Write(b[:])
		}
	})
}

// roundTrip1 connects to addr, sends one byte, reads it back and the
// server's EOF, and closes: one full short connection.
func roundTrip1(d *net.Dialer, addr string) error {
	c, err := d.Dial("tcp4", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte{'x'}); err != nil {
		return err
	}
	var b [2]byte
	n, err := io.ReadFull(c, b[:])
	if n != 1 || b[0] != 'x' || !errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("round trip to %s: read %q, %v; want \"x\" and EOF", addr, b[:n], err)
	}
	return nil
}

// holdServer answers one byte on every TCP connection on ln and keeps the
// connection open until the client closes it (or the test ends). It returns
// how many connections it holds, live.
func holdServer(t testing.TB, ln net.Listener) func() int {
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			go func() {
				var b [1]byte
				if _, err := io.ReadFull(c, b[:]); err == nil {
					c.Write(b[:])
					io.Copy(io.Discard, c) // until the client's EOF
				}
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
				c.Close()
			}()
		}
	}()
	return func() int { mu.Lock(); defer mu.Unlock(); return len(conns) }
}

// serveUDPEcho sends every datagram on c back to its sender, whole.
func serveUDPEcho(t testing.TB, c *net.UDPConn) {
	t.Cleanup(func() { c.Close() })
	c.SetReadBuffer(4 << 20)
	c.SetWriteBuffer(4 << 20)
	go func() {
		buf := make([]byte, 1<<16)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			c.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
}

// udpStats is the outcome of an echo run.
type udpStats struct {
	sent, back, lost, bad int
	elapsed               time.Duration
}

// udpEcho sends n datagrams of size bytes to c's peer with up to window
// of them awaiting their echo, and checks every echo arrives whole (size
// and content). A window that gets no echo for 200 ms counts as lost and
// is refilled; late echoes of lost datagrams (of this call or an earlier
// one: sequence numbers never repeat) are ignored.
func udpEcho(c *net.UDPConn, n, size, window int) udpStats {
	const hdr = 8 // sequence number
	size = max(size, hdr)
	base := udpSeq.Add(uint64(n)) - uint64(n)
	fill := func(p []byte, seq uint64) {
		putSeq(p, seq)
		for i := hdr; i < len(p); i++ {
			p[i] = byte(seq*131 + uint64(i)*7)
		}
	}
	out := make([]byte, size)
	want := make([]byte, size)
	in := make([]byte, 1<<16)
	state := make([]byte, n) // 0 unsent, 1 in flight, 2 back, 3 lost
	var st udpStats
	inflight := 0
	send := func() {
		fill(out, base+uint64(st.sent))
		c.Write(out)
		state[st.sent] = 1
		st.sent++
		inflight++
	}
	start := time.Now()
	for st.sent < n && inflight < window {
		send()
	}
	for inflight > 0 {
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		m, err := c.Read(in)
		if err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				continue // an ICMP error about an earlier datagram
			}
			for i := range st.sent {
				if state[i] == 1 {
					state[i] = 3
					st.lost++
				}
			}
			inflight = 0
		} else {
			if m < hdr {
				st.bad++
				continue
			}
			seq := getSeq(in)
			i := int(seq - base)
			if seq < base || i >= st.sent || state[i] != 1 {
				continue // a late echo of one counted lost
			}
			fill(want, seq)
			if m != size || !bytes.Equal(in[:m], want) {
				st.bad++
			} else {
				st.back++
			}
			state[i] = 2
			inflight--
		}
		for st.sent < n && inflight < window {
			send()
		}
	}
	st.elapsed = time.Since(start)
	return st
}

// udpSeq hands out udpEcho's sequence numbers.
var udpSeq atomic.Uint64

func putSeq(p []byte, v uint64) {
	for i := range 8 {
		p[i] = byte(v >> (8 * i))
	}
}

func getSeq(p []byte) uint64 {
	var v uint64
	for i := range 8 {
		v |= uint64(p[i]) << (8 * i)
	}
	return v
}

// procStatusKiB reads a "Name:  N kB" line of /proc/PID/status.
func procStatusKiB(t testing.TB, pid int, name string) float64 {
	t.Helper()
	v, err := procfs.KiB(pid, "status", name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// fdLimit reads process pid's soft RLIMIT_NOFILE from /proc/PID/limits.
func fdLimit(t testing.TB, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				if f[0] == "unlimited" {
					return 1 << 62
				}
				n, err := strconv.ParseUint(f[0], 10, 64)
				if err == nil {
					return n
				}
			}
		}
	}
	t.Fatalf("/proc/%d/limits: no Max open files", pid)
	return 0
}

// raiseNoFile makes sure this process may open need files, raising
// RLIMIT_NOFILE (the hard limit too, as root) if it must. Children started
// afterwards inherit the raised limit.
func raiseNoFile(t testing.TB, need uint64) {
	t.Helper()
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur >= need {
		return
	}
	lim.Cur = need
	lim.Max = max(lim.Max, need)
	// syscall.Setrlimit, not unix's: it tells os/exec the new limit is the
	// one for children too.
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: lim.Cur, Max: lim.Max}); err != nil {
		t.Fatalf("raise RLIMIT_NOFILE to %d: %v", need, err)
	}
}

// checkNatmapPID makes sure pid is natmap itself ("ip netns exec" execs
// it, so the started command's pid is natmap's).
func checkNatmapPID(t testing.TB, pid int) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil || strings.TrimSpace(string(b)) != "natmap" {
		t.Fatalf("pid %d is %q, not natmap: %v", pid, b, err)
	}
}

// The machine may be shared (other test runs): a benchmark that compares
// two paths one after the other is only as good as the machine was quiet.
// otherLoad measures how much CPU everything but this benchmark used
// meanwhile, so that a run on a busy machine says so instead of passing for
// a result.

// cpuSample is the machine's busy CPU time and the part of it that is this
// benchmark's, in clock ticks.
type cpuSample struct {
	busy, irq uint64 // statTicks
	// procs is the CPU time (user+system) of this process and its
	// descendants (natmap, iperf3, coturn...), with their reaped children's
	// (so that a child that ended meanwhile still counts), plus every
	// kernel thread's (they do this benchmark's packet work as much as
	// anyone's), by pid and start time.
	procs map[[2]uint64]procTicks
	at    time.Time
}

type procTicks struct {
	ticks   uint64
	kthread bool
}

// statTicks reads the machine's CPU time so far (/proc/stat): busy is what
// was not idle: user, nice, system, irq, softirq, and steal (time the
// hypervisor gave away: this benchmark did not get it either); irq is the
// irq and softirq part, packet work mostly, counted as this benchmark's.
func statTicks() (busy, irq uint64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		if i < len(f) {
			v, _ := strconv.ParseUint(f[i], 10, 64)
			busy += v
			if i == 6 || i == 7 {
				irq += v
			}
		}
	}
	return busy, irq
}

func sampleCPU() cpuSample {
	s := cpuSample{procs: map[[2]uint64]procTicks{}, at: time.Now()}
	s.busy, s.irq = statTicks()
	type pstat struct{ ppid, start, ticks, flags uint64 }
	all := map[uint64]pstat{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.ParseUint(e.Name(), 10, 64)
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:])) // f[0] is field 3 (state)
		if len(f) < 20 {
			continue
		}
		num := func(field int) uint64 { v, _ := strconv.ParseUint(f[field-3], 10, 64); return v }
		all[pid] = pstat{ppid: num(4), flags: num(9), start: num(22),
			ticks: num(14) + num(15) + num(16) + num(17)}
	}
	ours := map[uint64]bool{uint64(os.Getpid()): true}
	for changed := true; changed; {
		changed = false
		for pid, p := range all {
			if !ours[pid] && ours[p.ppid] {
				ours[pid], changed = true, true
			}
		}
	}
	const pfKthread = 0x00200000
	for pid, p := range all {
		kthread := pid == 2 || p.ppid == 2 || p.flags&pfKthread != 0
		if ours[pid] || kthread {
			s.procs[[2]uint64{pid, p.start}] = procTicks{p.ticks, kthread}
		}
	}
	return s
}

// oursSince returns the CPU seconds this benchmark used since before.
func (s cpuSample) oursSince(before cpuSample) float64 {
	var ticks float64
	for k, t := range s.procs {
		ticks += float64(t.ticks) - float64(before.procs[k].ticks) // a new process counts whole
	}
	// A process of ours that ended meanwhile moved its time into its
	// parent's reaped-children time: only what it used since before
	// counts. (A kernel thread that ended took its time along.)
	for k, t := range before.procs {
		if _, ok := s.procs[k]; !ok && !t.kthread {
			ticks -= float64(t.ticks)
		}
	}
	ticks += float64(s.irq - before.irq)
	return max(ticks, 0) / clockTicks
}

// pidSince returns the CPU seconds process pid used since before.
func (s cpuSample) pidSince(before cpuSample, pid int) float64 {
	var ticks float64
	for k, t := range s.procs {
		if k[0] == uint64(pid) {
			ticks += float64(t.ticks) - float64(before.procs[k].ticks)
		}
	}
	return ticks / clockTicks
}

// otherSince returns the CPU seconds everything else used since before.
func (s cpuSample) otherSince(before cpuSample) float64 {
	return max(float64(s.busy-before.busy)/clockTicks-s.oursSince(before), 0)
}

// otherLoad starts measuring; the function it returns reports how many
// CPU cores, on average, everything but this benchmark kept busy since.
func otherLoad() func() float64 {
	before := sampleCPU()
	return func() float64 {
		after := sampleCPU()
		return after.otherSince(before) / after.at.Sub(before.at).Seconds()
	}
}

// clockTicks is USER_HZ, the unit of /proc/stat and /proc/PID/stat times:
// 100 on every Linux architecture natmap's tests run on.
const clockTicks = 100

// ipStats reads the IP counters (/proc/net/snmp "Ip:", such as ReasmReqds:
// fragments received for reassembly) of namespace ns.
func ipStats(t testing.TB, l *lab.Lab, ns string) map[string]uint64 {
	t.Helper()
	var b []byte
	err := l.Do(ns, func() error {
		var err error
		b, err = os.ReadFile("/proc/thread-self/net/snmp") // the thread's netns
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	out := map[string]uint64{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Ip:" {
			continue
		}
		if names == nil {
			names = f[1:]
			continue
		}
		for i, v := range f[1:] {
			if i < len(names) {
				out[names[i]], _ = strconv.ParseUint(v, 10, 64)
			}
		}
	}
	return out
}

// maxMTU returns the largest MTU of the non-loopback interfaces in ns.
func maxMTU(t testing.TB, l *lab.Lab, ns string) int {
	t.Helper()
	mtu := 0
	err := l.Do(ns, func() error {
		ifs, err := net.Interfaces()
		for _, i := range ifs {
			if i.Flags&net.FlagLoopback == 0 {
				mtu = max(mtu, i.MTU)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return mtu
}
