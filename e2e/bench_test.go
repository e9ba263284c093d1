package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/oneproc"
	"github.com/natmap-go/natmap/internal/testkit/fds"
	"github.com/natmap-go/natmap/internal/testkit/lab"
	"github.com/natmap-go/natmap/internal/testkit/procfs"
)

// BenchmarkTimeToFirstNotify measures natmap's start to its first notify
// script run in the lab: process start, keep-alive connect, two STUN
// queries (the NAT check), script start.
func BenchmarkTimeToFirstNotify(b *testing.B) {
	l := lab.New(b, lab.FullConePreserve)
	var total time.Duration
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		nm := startNatmap(b, l, bindArgs(l, uint16(41000+i%1000))...)
		nm.waitNotification(1, 15*time.Second)
		total += time.Since(start)
		nm.stop()
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ms/notify")
}

// BenchmarkTCPThroughput measures bulk TCP from the outside client to the
// lan host through the NAT, side by side in one lab: directly (bind mode:
// iperf3 listens on the bind port itself) and through natmap's
// forward-mode relay (natmap listens on its bind port and relays to iperf3
// on 127.0.0.1). Each iteration measures upload (outside -> lan) and
// download (-R), each direction as four iperf3 runs of iperfSecs in the
// order direct, relay, relay, direct (then the other way round), so that a
// drift in the machine's speed weighs on both paths alike. Run it with
// -benchtime 1x (16 s per case) or 2x.
//
// wan=1gbit puts a 1 Gbit/s WAN link (lab.WANRate) in the path, as on a
// real router, so the link and not the CPU is the bottleneck: the relay
// should cost nothing. wan=unlimited is bound by the CPU copying packets
// between veths; the relay's extra hop through loopback shows there.
//
// other-cores is the CPU that processes outside the benchmark used
// meanwhile: well above 0 means a shared, busy machine and figures that
// say more about it than about natmap.
func BenchmarkTCPThroughput(b *testing.B) {
	for _, c := range []struct {
		name string
		opts []lab.Option
	}{
		{"wan=1gbit", []lab.Option{lab.WANRate("1gbit")}},
		{"wan=unlimited", nil},
	} {
		b.Run(c.name, func(b *testing.B) { benchTCPThroughput(b, c.opts...) })
	}
}

// iperfSecs is how long each iperf3 run lasts.
const iperfSecs = 2

func benchTCPThroughput(b *testing.B, opts ...lab.Option) {
	l := lab.New(b, lab.FullConePreserve, opts...)
	const directPort, relayPort, targetPort = 42001, 42002, 5202 // relays: 42002, 42003

	// Direct path: iperf3 holds the port first, without SO_REUSEPORT, and
	// natmap (bind mode) takes it over (pidfd_getfd) to keep the mapping.
	// iperf3 makes a new listening socket after every test, without
	// SO_REUSEPORT again, so natmap's STUN rechecks fail from then on
	// ("bind: address already in use" in its log); its keep-alive
	// connection, bound already, keeps the mapping up all the same.
	startIperfServer(b, l, "", directPort)
	direct := startNatmap(b, l, bindArgs(l, directPort)...)
	// Relay paths: iperf3 on loopback, each relay forwards its bind port
	// to it (runs take turns, so one iperf3 serves them all).
	startIperfServer(b, l, "127.0.0.1", targetPort)
	addr, pid, paths := startPaths(b, l, direct, func(i int) []string {
		return benchForwardArgs(l, relayPort+uint16(i), "127.0.0.1", targetPort)
	})

	throughputTurns(b, l, addr, pid, paths, ratioName)
}

// throughputTurns measures paths (direct first) with iperf3 in turns, as
// BenchmarkTCPThroughput says, until b's loop ends, and reports each
// path's throughput and CPU per GB by direction and, for every path but
// direct, its ratio to direct (named ratio(path)) and its process's own
// CPU per GB (pid[path]).
func throughputTurns(b *testing.B, l *lab.Lab, addr map[string]netip.AddrPort, pid map[string]int, paths []string, ratio func(path string) string) {
	type key struct {
		path string
		down bool
	}
	sum := map[key]iperfResult{}
	runs := 0
	load := otherLoad()
	for b.Loop() {
		for _, down := range []bool{false, true} {
			order := turns(paths)
			if down {
				order = turns(slices.Concat(paths[1:], paths[:1]))
			}
			for _, p := range order {
				r := iperf(b, l, addr[p], iperfSecs, down, pid[p])
				b.Logf("%-7s %-4s %6.3f Gbit/s %5.2f CPU-s/GB (its process %4.2f)", p, dirName(down), r.bps/1e9, r.cpu/r.bytes*1e9, r.proc/r.bytes*1e9)
				s := sum[key{p, down}]
				s.bps += r.bps
				s.bytes += r.bytes
				s.cpu += r.cpu
				s.proc += r.proc
				sum[key{p, down}] = s
			}
		}
		runs += 2 // per path and direction
	}
	other := load()
	for _, down := range []bool{false, true} {
		dir := dirName(down)
		d := sum[key{"direct", down}]
		for _, p := range paths {
			r := sum[key{p, down}]
			b.ReportMetric(r.bps/float64(runs)/1e9, p+"-"+dir+"-Gbit/s")
			// CPU cost: what the benchmark (iperf3 at both ends, the NAT's
			// and the hosts' packet work, natmap) spent per GB moved. Unlike
			// throughput it does not depend on how the scheduler happened
			// to spread the work over the two CPUs. Other work on the
			// machine skews it less than throughput, but still (its packet
			// work counts as ours): trust it with other-cores near 0.
			b.ReportMetric(r.cpu/r.bytes*1e9, p+"-"+dir+"-CPU-s/GB")
			if p != "direct" {
				b.ReportMetric(r.bps/d.bps, ratio(p)+"-"+dir)
				// The relay process alone: natmap's (or the C natmap's)
				// user and system time, splice's page moves included.
				b.ReportMetric(r.proc/r.bytes*1e9, p+"-"+dir+"-process-CPU-s/GB")
			}
		}
	}
	b.ReportMetric(other, "other-cores")
	b.ReportMetric(0, "ns/op")
}

func dirName(down bool) string {
	if down {
		return "down"
	}
	return "up"
}

// BenchmarkTCPConnRate measures short connections from the outside client
// through the NAT: connect, a one-byte round trip, close (the server closes
// first), one after another (conc=1) and from 8 clients at once, directly
// (bind mode: the echo server listens on the bind port) and through
// natmap's relay to the same echo server on 127.0.0.1. The two paths take
// turns in batches of connBatch connections (direct, relay, relay, direct
// per iteration), so both see the same machine; -benchtime sets how long.
func BenchmarkTCPConnRate(b *testing.B) {
	l := lab.New(b, lab.FullConePreserve)
	const directPort, relayPort, targetPort = 42011, 42012, 5203 // relays: 42012, 42013
	ln, err := l.Listen(l.LAN, "tcp4", fmt.Sprintf("0.0.0.0:%d", directPort), true)
	if err != nil {
		b.Fatal(err)
	}
	serveEcho1(b, ln)
	tln, err := l.Listen(l.LAN, "tcp4", fmt.Sprintf("127.0.0.1:%d", targetPort), false)
	if err != nil {
		b.Fatal(err)
	}
	serveEcho1(b, tln)
	direct := startNatmap(b, l, bindArgs(l, directPort)...)
	addr, pid, paths := startPaths(b, l, direct, func(i int) []string {
		return benchForwardArgs(l, relayPort+uint16(i), "127.0.0.1", targetPort)
	})
	d := outsideDialer(l)
	const connBatch = 250
	for _, conc := range []int{1, 8} {
		b.Run(fmt.Sprintf("conc=%d", conc), func(b *testing.B) {
			count := map[string]int{}
			took := map[string]time.Duration{}
			proc := map[string]float64{} // the relay process's CPU seconds
			load := otherLoad()
			for b.Loop() {
				for _, path := range turns(paths) {
					start, before := time.Now(), sampleCPU()
					if err := connBurst(l, d, addr[path].String(), conc, connBatch); err != nil {
						b.Fatalf("%s: %v", path, err)
					}
					took[path] += time.Since(start)
					proc[path] += sampleCPU().pidSince(before, pid[path])
					count[path] += connBatch
				}
			}
			rate := func(path string) float64 { return float64(count[path]) / took[path].Seconds() }
			for _, p := range paths {
				b.ReportMetric(rate(p), p+"-conn/s")
				if p != "direct" {
					b.ReportMetric(rate(p)/rate("direct"), ratioName(p))
					b.ReportMetric(proc[p]/float64(count[p])*1e6, p+"-process-us/conn")
				}
			}
			b.ReportMetric(load(), "other-cores")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// startPaths starts a natmap relay in l with the command line args(i) for
// each of relays() (i counting from 0), and returns the paths a benchmark
// compares: "direct" (direct, started already) then the relays, the public
// address of each, and each relay's process.
func startPaths(b *testing.B, l *lab.Lab, direct *natmap, args func(i int) []string) (map[string]netip.AddrPort, map[string]int, []string) {
	b.Helper()
	public := map[string]netip.AddrPort{"direct": direct.waitNotification(1, 15*time.Second).Public()}
	pid := map[string]int{}
	paths := []string{"direct"}
	for i, r := range relays() {
		nm := startBinary(b, l, r.bin, args(i)...)
		public[r.path] = nm.waitNotification(1, 15*time.Second).Public()
		pid[r.path] = nm.cmd.Process.Pid
		paths = append(paths, r.path)
	}
	return public, pid, paths
}

// relayImpl is a relay the benchmarks measure against the direct path.
type relayImpl struct{ path, bin string }

// relays are natmap's relay and, when NATMAP_C_BIN names a C natmap
// binary (built outside this project), the C natmap's as "c-relay".
func relays() []relayImpl {
	rs := []relayImpl{{"relay", natmapBin}}
	if c := os.Getenv("NATMAP_C_BIN"); c != "" {
		rs = append(rs, relayImpl{"c-relay", c})
	}
	return rs
}

// turns is the order in which paths take turns in one iteration: there
// and back (direct, relay, relay, direct), so none always goes first and
// a steady drift in the machine's speed weighs on all alike.
func turns(paths []string) []string {
	out := slices.Clone(paths)
	for i := len(paths) - 1; i >= 0; i-- {
		out = append(out, paths[i])
	}
	return out
}

// ratioName names a relay's ratio to the direct path: "ratio" for
// natmap's (as before the C natmap was measured too), "c-ratio" for the
// C natmap's.
func ratioName(path string) string {
	return strings.TrimSuffix(path, "relay") + "ratio"
}

// connBurst makes n short connections (roundTrip1) to addr from conc
// outside clients at once.
func connBurst(l *lab.Lab, d *net.Dialer, addr string, conc, n int) error {
	var next atomic.Int64
	errs := make(chan error, conc)
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			// All of a client's sockets are made on a thread in the inet
			// namespace.
			errs <- l.Do(l.Inet, func() error {
				for next.Add(1) <= int64(n) {
					if err := roundTrip1(d, addr); err != nil {
						return err
					}
				}
				return nil
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkRelayRSS measures natmap's resident memory in forward mode: idle
// once the mapping is up, with relayConns TCP connections relayed at once
// (every outside client has had its byte echoed by the target, which holds
// the connection open), and how soon after they closed natmap is back
// within 1 MiB of idle (closed-s; closed-KiB then, or after a minute).
// With NATMAP_C_BIN, the C natmap is measured the same way (c- metrics).
// Run it with -benchtime 1x.
func BenchmarkRelayRSS(b *testing.B) {
	// This process holds both ends (outside clients and target side) of
	// every connection; natmap holds two sockets per connection.
	raiseNoFile(b, 4*relayConns+1024)
	l := lab.New(b, lab.FullConePreserve)
	const port, targetPort = 42021, 5204
	tln, err := l.Listen(l.LAN, "tcp4", fmt.Sprintf("127.0.0.1:%d", targetPort), false)
	if err != nil {
		b.Fatal(err)
	}
	held := holdServer(b, tln)
	impls := relays()
	runs := make([]rssRun, len(impls))
	for b.Loop() {
		for i, r := range impls {
			runs[i] = relayRSS(b, l, r.bin, port+uint16(i), targetPort, held)
		}
	}
	for i, r := range impls {
		m := runs[i]
		p := strings.TrimSuffix(r.path, "relay") // "" or "c-"
		b.Logf("%s RSS: idle %.0f KiB (%.0f anonymous), %.0f KiB with %d connections (%.0f), %.0f KiB %.0f s after they closed",
			r.bin, m.idle, m.idleAnon, m.loaded, relayConns, m.loadedAnon, m.closed, m.back)
		b.ReportMetric(m.idle, p+"idle-KiB")
		b.ReportMetric(m.idleAnon, p+"idle-anon-KiB")
		b.ReportMetric(m.loaded, p+"1000conns-KiB")
		b.ReportMetric((m.loaded-m.idle)/relayConns, p+"KiB/conn")
		b.ReportMetric(m.closed, p+"closed-KiB")
		b.ReportMetric(m.back, p+"closed-s")
		b.ReportMetric(float64(m.sockets), p+"1000conns-sockets")
		b.ReportMetric(float64(m.pipes), p+"1000conns-pipes")
		b.ReportMetric(float64(m.lim), p+"nofile-limit")
	}
	b.ReportMetric(0, "ns/op")
}

// relayConns is how many connections BenchmarkRelayRSS relays at once.
const relayConns = 1000

// rssRun is what relayRSS measured (KiB, seconds).
type rssRun struct {
	idle, idleAnon, loaded, loadedAnon, closed, back float64
	sockets, pipes                                   int
	lim                                              uint64
}

// relayRSS starts bin (a natmap) in forward mode on port to the target
// (held counts the connections it holds), reads its memory idle, opens
// relayConns connections through it, reads its memory again, closes them
// and waits (up to a minute) until it is back within 1 MiB of idle.
func relayRSS(b *testing.B, l *lab.Lab, bin string, port, targetPort uint16, held func() int) rssRun {
	nm := startBinary(b, l, bin, benchForwardArgs(l, port, "127.0.0.1", targetPort)...)
	defer nm.stop()
	addr := nm.waitNotification(1, 30*time.Second).Public().String()
	pid := nm.cmd.Process.Pid
	checkNatmapPID(b, pid)
	var m rssRun
	// Per relayed connection a relay holds two sockets and maybe two
	// pipes (the C natmap: always).
	m.lim = fdLimit(b, pid)
	if m.lim < 6*relayConns+100 {
		b.Fatalf("%s may open only %d files, fewer than the %d fds of %d relayed connections", bin, m.lim, 6*relayConns, relayConns)
	}
	time.Sleep(200 * time.Millisecond) // the first keep-alive and STUN round are over
	m.idle = procStatusKiB(b, pid, "VmRSS")
	m.idleAnon = procStatusKiB(b, pid, "RssAnon")
	idleSockets := fds.Of(b, pid).Sockets

	d := outsideDialer(l)
	var cs []net.Conn
	err := l.Do(l.Inet, func() error {
		for range relayConns {
			c, err := d.Dial("tcp4", addr)
			if err != nil {
				return err
			}
			cs = append(cs, c)
			if _, err := c.Write([]byte{'x'}); err != nil {
				return err
			}
		}
		return nil
	})
	// Every echo came back: every connection is relayed end to end.
	for _, c := range cs {
		if err == nil {
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			var buf [1]byte
			_, err = io.ReadFull(c, buf[:])
		}
	}
	if err != nil {
		b.Fatalf("%d connections open: %v", len(cs), err)
	}
	if n := held(); n != relayConns {
		b.Fatalf("the target holds %d connections, want %d", n, relayConns)
	}
	m.loaded = procStatusKiB(b, pid, "VmRSS")
	m.loadedAnon = procStatusKiB(b, pid, "RssAnon")
	open := fds.Of(b, pid)
	m.sockets, m.pipes = open.Sockets, open.Pipes
	for _, c := range cs {
		c.Close()
	}
	// Wait until the relay has closed them all.
	for deadline := time.Now().Add(10 * time.Second); ; {
		n := fds.Of(b, pid).Sockets
		if held() == 0 && n <= idleSockets {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("10 s after the clients left, the target still holds %d connections and %s %d sockets (%d when idle)", held(), bin, n, idleSockets)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The memory of the closed connections goes back to the kernel: wait
	// (up to a minute) until the relay is within 1 MiB of its idle RSS.
	m.closed = procStatusKiB(b, pid, "VmRSS")
	for start := time.Now(); m.closed > m.idle+1024 && time.Since(start) < time.Minute; {
		time.Sleep(time.Second)
		m.closed = procStatusKiB(b, pid, "VmRSS")
		m.back = time.Since(start).Seconds()
	}
	return m
}

// BenchmarkUDPRelay measures UDP echo round trips from the outside client
// through the NAT, with up to window datagrams in flight: directly (bind
// mode: the echo server listens on the bind port) and through natmap's UDP
// relay to the same echo server on 127.0.0.1, taking turns in batches
// (direct, relay, relay, direct per iteration); -benchtime sets how long.
// Every echo must come back whole (size and content checked): 60000-byte
// datagrams cross the NAT as 41 IP fragments each way (MTU 1500), which
// NAT-frags/dgram shows. Lost datagrams (no echo within 200 ms) are
// counted, not fatal.
func BenchmarkUDPRelay(b *testing.B) {
	l := lab.New(b, lab.FullConePreserve)
	const directPort, relayPort, targetPort = 42031, 42032, 5205 // relays: 42032, 42033
	dc, err := l.ListenPacket(l.LAN, "udp4", fmt.Sprintf("0.0.0.0:%d", directPort), true)
	if err != nil {
		b.Fatal(err)
	}
	serveUDPEcho(b, dc)
	tc, err := l.ListenPacket(l.LAN, "udp4", fmt.Sprintf("127.0.0.1:%d", targetPort), false)
	if err != nil {
		b.Fatal(err)
	}
	serveUDPEcho(b, tc)
	direct := startNatmap(b, l, benchUDPArgs(l, directPort)...)
	addr, pid, paths := startPaths(b, l, direct, func(i int) []string {
		return benchUDPArgs(l, relayPort+uint16(i), "-t", "127.0.0.1", "-p", strconv.Itoa(targetPort))
	})
	for _, ns := range []string{l.LAN, l.NAT, l.Inet} {
		if mtu := maxMTU(b, l, ns); mtu > 1500 {
			b.Fatalf("an interface in %s has MTU %d: 60000-byte datagrams would not be fragmented as on a real link", ns, mtu)
		}
	}
	// One outside client socket per path for the whole benchmark: the
	// relay's session for it stays up.
	client := map[string]*net.UDPConn{}
	for path, a := range addr {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := l.DialFromOutside(ctx, "udp4", a.String())
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		uc := c.(*net.UDPConn)
		uc.SetReadBuffer(4 << 20)
		uc.SetWriteBuffer(4 << 20)
		client[path] = uc
	}
	for _, s := range []struct{ size, window, batch int }{{64, 32, 4000}, {60000, 4, 200}} {
		b.Run(fmt.Sprintf("size=%d", s.size), func(b *testing.B) {
			sum := map[string]udpStats{}
			proc := map[string]float64{} // the relay process's CPU seconds
			load := otherLoad()
			ip0 := ipStats(b, l, l.NAT)
			for b.Loop() {
				for _, path := range turns(paths) {
					before := sampleCPU()
					st := udpEcho(client[path], s.batch, s.size, s.window)
					proc[path] += sampleCPU().pidSince(before, pid[path])
					t := sum[path]
					t.sent += st.sent
					t.back += st.back
					t.lost += st.lost
					t.bad += st.bad
					t.elapsed += st.elapsed
					sum[path] = t
				}
			}
			ip := ipStats(b, l, l.NAT)
			b.ReportMetric(load(), "other-cores")
			rate := map[string]float64{}
			for path, st := range sum {
				if st.bad > 0 || st.back == 0 {
					msg := fmt.Sprintf("%s: of %d %d-byte datagrams, %d came back whole and %d cut or corrupted", path, st.sent, s.size, st.back, st.bad)
					if path != "c-relay" {
						b.Fatal(msg)
					}
					// The C natmap truncates datagrams over 2048 bytes.
					b.Log(msg)
					b.ReportMetric(100*float64(st.bad)/float64(st.sent), path+"-%cut")
				}
				rate[path] = float64(st.back) / st.elapsed.Seconds()
				b.ReportMetric(rate[path], path+"-dgram/s")
				if path != "direct" {
					// Relaying one datagram each way, kernel work included.
					b.ReportMetric(proc[path]/float64(st.sent)*1e6, path+"-process-us/echo")
				}
				b.ReportMetric(100*float64(st.lost)/float64(st.sent), path+"-%lost")
				if s.size > 1000 {
					b.ReportMetric(rate[path]*float64(s.size)*8/1e9, path+"-Gbit/s")
				}
			}
			for _, p := range paths[1:] {
				b.ReportMetric(rate[p]/rate["direct"], ratioName(p))
			}
			if _, c := sum["c-relay"]; s.size > 1000 && !c { // the C natmap's cut replies skew it
				// Proof of the fragmentation: the NAT reassembles every
				// datagram (conntrack needs the whole of it) and fragments
				// it again, both ways.
				sent := sum["direct"].sent + sum["relay"].sent
				b.ReportMetric(float64(ip["ReasmReqds"]-ip0["ReasmReqds"])/float64(2*sent), "NAT-frags/dgram")
				if fails := ip["ReasmFails"] - ip0["ReasmFails"]; fails > 0 {
					b.Logf("the NAT failed to reassemble %d datagrams", fails)
				}
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkUDPRelayRSS measures natmap's resident memory in UDP forward
// mode: idle, and with udpSessions client sessions (every outside client
// socket has had its datagram echoed by the target through the relay).
// Run it with -benchtime 1x.
func BenchmarkUDPRelayRSS(b *testing.B) {
	const udpSessions = 1000
	raiseNoFile(b, udpSessions+1024)
	l := lab.New(b, lab.FullConePreserve)
	const port, targetPort = 42041, 5206
	tc, err := l.ListenPacket(l.LAN, "udp4", fmt.Sprintf("127.0.0.1:%d", targetPort), false)
	if err != nil {
		b.Fatal(err)
	}
	serveUDPEcho(b, tc)
	nm := startNatmap(b, l, benchUDPArgs(l, port, "-t", "127.0.0.1", "-p", strconv.Itoa(targetPort))...)
	addr := nm.waitNotification(1, 15*time.Second).Public().String()
	pid := nm.cmd.Process.Pid
	checkNatmapPID(b, pid)
	time.Sleep(200 * time.Millisecond) // the first STUN round is over
	idle := procStatusKiB(b, pid, "VmRSS")

	var loaded float64
	iters := 0
	for b.Loop() {
		var cs []net.Conn
		err := l.Do(l.Inet, func() error {
			for range udpSessions {
				c, err := net.Dial("udp4", addr)
				if err != nil {
					return err
				}
				cs = append(cs, c)
			}
			return nil
		})
		// Each client sends until its echo comes back: its session is up.
		for i := 0; err == nil && i < len(cs); i++ {
			err = udpRoundTrip(cs[i])
		}
		for _, c := range cs {
			c.Close()
		}
		if err != nil {
			b.Fatalf("%d sessions: %v", len(cs), err)
		}
		loaded += procStatusKiB(b, pid, "VmRSS")
		iters++
	}
	loaded /= float64(iters)
	b.ReportMetric(idle, "idle-KiB")
	b.ReportMetric(loaded, "1000sessions-KiB")
	b.ReportMetric((loaded-idle)/udpSessions, "KiB/session")
	b.ReportMetric(0, "ns/op")
}

// udpRoundTrip sends a datagram on c until one comes back (up to 10 tries).
func udpRoundTrip(c net.Conn) error {
	buf := make([]byte, 64)
	for try := 0; ; try++ {
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		_, err := c.Read(buf)
		if err == nil || try == 10 {
			return err
		}
	}
}

// BenchmarkDaemonIdleRSS measures the resident memory of `natmap daemon`
// with 16 mappings (TCP forward mode) up and idle, its threads, and what of
// it the idle daemon touches in one trim period (touched-KiB: the pages it
// uses; the rest of its RSS is mostly the binary's pages that only the
// start used, or that the kernel mapped around them). With NATMAP_C_BIN it
// also runs what the stock package runs for 16 sections: 16 C natmap
// processes, one per mapping, and reports their sums (c-...). PSS divides
// each shared page among the processes that map it, so 16 processes that
// share a binary and libc are counted once for those pages; RSS sums count
// them 16 times. Run it with -benchtime 1x.
func BenchmarkDaemonIdleRSS(b *testing.B) {
	const mappings = 16
	l := lab.New(b, lab.FullConePreserve)
	var cfg strings.Builder
	cfg.WriteString(daemonGlobal)
	for i := range mappings {
		fmt.Fprintf(&cfg, "\nconfig natmap 'm%d'\n\toption enable '1'\n\toption port '%d'\n"+
			"\toption forward_target '127.0.0.1'\n\toption forward_port '5207'\n\toption notify_script 'NOTIFY'\n", i, 40100+i)
	}
	// As the init script starts it: on one processor from its start.
	for _, kv := range oneproc.Env(nil) {
		k, v, _ := strings.Cut(kv, "=")
		b.Setenv(k, v)
	}
	d := startDaemon(b, l, cfg.String())
	for i := range mappings {
		d.waitSection(fmt.Sprintf("m%d", i), 1, 30*time.Second)
	}
	pid := d.cmd.Process.Pid
	checkNatmapPID(b, pid)
	var cpids []int
	if cbin := os.Getenv("NATMAP_C_BIN"); cbin != "" {
		for i := range mappings {
			nm := startBinary(b, l, cbin, benchForwardArgs(l, 40200+uint16(i), "127.0.0.1", 5207)...)
			nm.waitNotification(1, 30*time.Second)
			cpids = append(cpids, nm.cmd.Process.Pid)
		}
	}
	var m, c idleMemory
	for b.Loop() {
		time.Sleep(20 * time.Second) // a trim (every 15 s) after the start
		m = readIdleMemory(b, pid)
		m.touched = touchedKiB(b, pid, 15*time.Second)
		c = idleMemory{}
		for _, p := range cpids {
			cm := readIdleMemory(b, p)
			c.rss, c.anon, c.pss, c.threads = c.rss+cm.rss, c.anon+cm.anon, c.pss+cm.pss, c.threads+cm.threads
		}
	}
	b.ReportMetric(m.rss, "16mappings-KiB")
	b.ReportMetric(m.anon, "16mappings-anon-KiB")
	b.ReportMetric(m.pss, "16mappings-pss-KiB")
	b.ReportMetric(m.threads, "16mappings-threads")
	b.ReportMetric(m.touched, "16mappings-touched-KiB")
	if len(cpids) > 0 {
		b.ReportMetric(c.rss, "c-16mappings-KiB")
		b.ReportMetric(c.anon, "c-16mappings-anon-KiB")
		b.ReportMetric(c.pss, "c-16mappings-pss-KiB")
		b.ReportMetric(c.threads, "c-16mappings-threads")
	}
	b.ReportMetric(0, "ns/op")
}

// idleMemory is one process's memory (KiB) and threads.
type idleMemory struct{ rss, anon, pss, threads, touched float64 }

func readIdleMemory(b *testing.B, pid int) idleMemory {
	b.Helper()
	return idleMemory{
		rss:     procStatusKiB(b, pid, "VmRSS"),
		anon:    procStatusKiB(b, pid, "RssAnon"),
		pss:     smapsRollupKiB(b, pid, "Pss"),
		threads: procStatusKiB(b, pid, "Threads"),
	}
}

// touchedKiB is how much of process pid's memory it uses within d: the
// pages it reads or writes then (the kernel's referenced bits, cleared
// first).
func touchedKiB(b *testing.B, pid int, d time.Duration) float64 {
	b.Helper()
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("1"), 0); err != nil {
		b.Fatal(err)
	}
	time.Sleep(d)
	return smapsRollupKiB(b, pid, "Referenced")
}

// smapsRollupKiB is one field of /proc/PID/smaps_rollup.
func smapsRollupKiB(b *testing.B, pid int, field string) float64 {
	b.Helper()
	v, err := procfs.KiB(pid, "smaps_rollup", field)
	if err != nil {
		b.Fatal(err)
	}
	return v
}
