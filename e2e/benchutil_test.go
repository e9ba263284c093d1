package e2e

// Helpers for the benchmarks in bench_test.go: helper processes in the lab's
// namespaces (iperf3), echo servers, clients in the inet namespace, and
// /proc readings of natmap.

import (
	"bufio"
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
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/natmap-go/natmap/internal/lab"
)

// forwardArgs is a TCP forward-mode command line for the lab: natmap keeps
// the mapping of port and relays every connection to target:tport.
func forwardArgs(l *lab.Lab, port uint16, target string, tport uint16, extra ...string) []string {
	return bindArgs(l, port, append([]string{"-t", target, "-p", strconv.Itoa(int(tport))}, extra...)...)
}

// udpArgs is a UDP command line for the lab (STUN is the keep-alive, so no
// -h); add -t and -p for forward mode.
func udpArgs(l *lab.Lab, port uint16, extra ...string) []string {
	args := append([]string{"-u", "-k", "2", "-b", strconv.Itoa(int(port))}, stunArgs(l)...)
	return append(args, extra...)
}

// proc is a helper process (iperf3) in one of the lab's namespaces.
type proc struct {
	cmd  *exec.Cmd
	out  *syncBuf
	done chan struct{}
}

// startProc starts name in namespace ns and stops it at the end of the test
// (before the lab goes).
func startProc(t testing.TB, l *lab.Lab, ns, name string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(name, args...), out: &syncBuf{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := l.Do(ns, p.cmd.Start); err != nil {
		t.Fatalf("start %s in %s: %v", name, ns, err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(p.stop)
	return p
}

// stop ends the process: SIGTERM, then SIGKILL after 3 s.
func (p *proc) stop() {
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
	for deadline := time.Now().Add(within); ; {
		for _, f := range []string{"tcp", "tcp6"} {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, f))
			for _, line := range strings.Split(string(b), "\n") {
				// sl local_address rem_address st ...; st 0A is LISTEN.
				fs := strings.Fields(line)
				if len(fs) > 3 && strings.HasSuffix(fs[1]+" ", want) && fs[3] == "0A" {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listening on port %d within %v", port, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startIperfServer runs "iperf3 -s" on port in the lan namespace, on addr
// if not empty (else on every address), and waits until it listens.
func startIperfServer(t testing.TB, l *lab.Lab, addr string, port uint16) *proc {
	t.Helper()
	args := []string{"-s", "-p", strconv.Itoa(int(port))}
	if addr != "" {
		args = append(args, "-B", addr)
	}
	p := startProc(t, l, l.LAN, "iperf3", args...)
	waitListening(t, p.cmd.Process.Pid, port, 5*time.Second)
	return p
}

// iperf runs an iperf3 client from the outside client address for secs
// seconds to addr (upload: client -> lan; reverse: lan -> client) and
// returns the throughput the receiver saw, in bits per second.
func iperf(t testing.TB, l *lab.Lab, addr netip.AddrPort, secs int, reverse bool) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs+15)*time.Second)
	defer cancel()
	args := []string{"-c", addr.Addr().String(), "-p", strconv.Itoa(int(addr.Port())),
		"-B", l.ClientAddr.String(), "-t", strconv.Itoa(secs), "-J"}
	if reverse {
		args = append(args, "-R")
	}
	cmd := exec.CommandContext(ctx, "iperf3", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := l.Do(l.Inet, cmd.Start)
	if err == nil {
		err = cmd.Wait()
	}
	var res struct {
		Error string
		End   struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		}
	}
	if jerr := json.Unmarshal(out.Bytes(), &res); err != nil || jerr != nil || res.Error != "" || res.End.SumReceived.BitsPerSecond <= 0 {
		t.Fatalf("iperf3 %s: %v %v %s\n%s", strings.Join(args, " "), err, jerr, res.Error, tail(out.String(), 2000))
	}
	return res.End.SumReceived.BitsPerSecond
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// dialer is the outside client's TCP dialer (from ClientAddr, as iperf3 -B).
func dialer(l *lab.Lab) *net.Dialer {
	return &net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(l.ClientAddr, 0)), Timeout: 5 * time.Second}
}

// serveEcho1 answers every TCP connection on ln with the first byte it
// sent and closes it: the server closes first, so TIME_WAIT stays on the
// server's side and the outside client's ports are free again at once.
func serveEcho1(t testing.TB, ln net.Listener) {
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var b [1]byte
				if _, err := io.ReadFull(c, b[:]); err == nil {
					c.Write(b[:])
				}
			}()
		}
	}()
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
// connection open until the test ends. It returns how many connections it
// answered, live.
func holdServer(t testing.TB, ln net.Listener) func() int {
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
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
			conns = append(conns, c)
			mu.Unlock()
			go func() {
				var b [1]byte
				if _, err := io.ReadFull(c, b[:]); err == nil {
					c.Write(b[:])
				}
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
// is refilled; late echoes of lost datagrams are ignored.
func udpEcho(c *net.UDPConn, n, size, window int) udpStats {
	const hdr = 8 // sequence number
	size = max(size, hdr)
	fill := func(p []byte, seq uint64) {
		for i := hdr; i < len(p); i++ {
			p[i] = byte(seq*131 + uint64(i)*7)
		}
	}
	out := make([]byte, size)
	in := make([]byte, 1<<16)
	state := make([]byte, n) // 0 unsent, 1 in flight, 2 back, 3 lost
	var st udpStats
	inflight := 0
	send := func() {
		seq := st.sent
		putSeq(out, uint64(seq))
		fill(out, uint64(seq))
		c.Write(out)
		state[seq] = 1
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
			seq := int(getSeq(in))
			if m < hdr || seq < 0 || seq >= st.sent {
				st.bad++
				continue
			}
			if state[seq] != 1 {
				continue // late echo of one counted lost
			}
			want := make([]byte, size)
			putSeq(want, uint64(seq))
			fill(want, uint64(seq))
			if m != size || !bytes.Equal(in[:m], want) {
				st.bad++
			} else {
				st.back++
			}
			state[seq] = 2
			inflight--
		}
		for st.sent < n && inflight < window {
			send()
		}
	}
	st.elapsed = time.Since(start)
	return st
}

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
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+":"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				t.Fatalf("/proc/%d/status %s: %v", pid, name, err)
			}
			return kb
		}
	}
	t.Fatalf("/proc/%d/status has no %s", pid, name)
	return 0
}

// openFDs counts process pid's open file descriptors.
func openFDs(t testing.TB, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
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
