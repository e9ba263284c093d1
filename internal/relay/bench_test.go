package relay

import (
	"context"
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// tcpPath returns the address that reaches target on path: target itself
// ("direct"), a TCP relay to it ("relay"), or a relay that moves data the
// way the C natmap does ("c-natmap-method").
func tcpPath(b *testing.B, path, target string) string {
	switch path {
	case "direct":
		return target
	case "c-natmap-method":
		return chunkRelay(b, target)
	}
	addr, _ := startTCP(b, &TCP{Dial: dialTCP(target)})
	return addr
}

// chunkRelay relays one connection to target the way the C natmap's
// hev_task_io_splice does: splice(2) through a pipe, 8 KiB per call, for
// comparison with the relay in the same run.
func chunkRelay(b *testing.B, target string) string {
	l := listenTCP(b)
	b.Cleanup(func() { l.Close() })
	go func() {
		client, err := l.AcceptTCP()
		if err != nil {
			return
		}
		defer client.Close()
		t, err := dialTCP(target)(context.Background())
		if err != nil {
			return
		}
		defer t.Close()
		done := make(chan struct{}, 2)
		for _, dir := range [][2]*net.TCPConn{{client, t.(*net.TCPConn)}, {t.(*net.TCPConn), client}} {
			go func() {
				splice8k(dir[1], dir[0])
				dir[1].CloseWrite()
				done <- struct{}{}
			}()
		}
		<-done
		<-done
	}()
	return l.Addr().String()
}

// splice8k moves src to dst through a pipe, 8 KiB per splice call.
func splice8k(dst, src *net.TCPConn) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	rs, _ := src.SyscallConn()
	rd, _ := dst.SyscallConn()
	const flags = unix.SPLICE_F_MOVE | unix.SPLICE_F_NONBLOCK
	for {
		var n int64
		var err error
		rs.Read(func(fd uintptr) bool {
			n, err = unix.Splice(int(fd), nil, p[1], nil, 8192, flags)
			return err != unix.EAGAIN
		})
		if n <= 0 || err != nil {
			return
		}
		for n > 0 {
			var m int64
			rd.Write(func(fd uintptr) bool {
				m, err = unix.Splice(p[0], nil, int(fd), nil, int(n), flags)
				return err != unix.EAGAIN
			})
			if err != nil {
				return
			}
			n -= m
		}
	}
}

// BenchmarkTCPRelayThroughput sends b.N MiB one way on one connection:
// directly, through the relay, and through a relay moving data the C
// natmap's way; -benchtime=1024x sends 1 GiB. Sender and receiver copy
// through 1 MiB user-space buffers on every path.
func BenchmarkTCPRelayThroughput(b *testing.B) {
	sink := newServer(b, func(c net.Conn) {
		buf := make([]byte, 1<<20)
		for {
			if _, err := c.Read(buf); err != nil {
				return // closing tells the sender everything arrived
			}
		}
	})
	for _, path := range []string{"direct", "relay", "c-natmap-method"} {
		b.Run(path, func(b *testing.B) {
			c := dial(b, tcpPath(b, path, sink.addr()))
			chunk := make([]byte, 1<<20)
			b.SetBytes(int64(len(chunk)))
			b.ResetTimer()
			for range b.N {
				if _, err := c.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
			c.CloseWrite()
			if _, err := io.Copy(io.Discard, c); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkTCPRelayConnect measures whole connections: connect, a one-byte
// round trip, close.
func BenchmarkTCPRelayConnect(b *testing.B) {
	target := newServer(b, echo)
	for _, path := range []string{"direct", "relay"} {
		b.Run(path, func(b *testing.B) {
			addr := tcpPath(b, path, target.addr())
			one := make([]byte, 1)
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				c, err := net.Dial("tcp4", addr)
				if err != nil {
					b.Fatal(err)
				}
				c.Write(one)
				if _, err := io.ReadFull(c, one); err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "conn/s")
		})
	}
}

// BenchmarkUDPRelay measures 1200-byte datagram round trips (two datagrams
// relayed each) from 1 client and from 8 concurrent ones, directly and
// through the relay.
func BenchmarkUDPRelay(b *testing.B) {
	target := udpTarget(b, udpEcho)
	for _, clients := range []int{1, 8} {
		for _, path := range []string{"direct", "relay"} {
			b.Run(path+"/clients="+strconv.Itoa(clients), func(b *testing.B) {
				addr := target
				if path == "relay" {
					addr, _ = startUDP(b, &UDP{Dial: dialUDP(target)})
				}
				var lost atomic.Int64
				b.SetParallelism((clients + 1) / 2) // GOMAXPROCS is 2 here
				b.ResetTimer()
				start := time.Now()
				b.RunParallel(func(pb *testing.PB) {
					c, err := dialUDP(addr)(context.Background())
					if err != nil {
						b.Error(err)
						return
					}
					defer c.Close()
					msg, buf := make([]byte, 1200), make([]byte, maxDatagram)
					for pb.Next() {
						c.Write(msg)
						c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
						if _, err := c.Read(buf); err != nil {
							lost.Add(1)
						}
					}
				})
				b.ReportMetric(2*float64(b.N)/time.Since(start).Seconds(), "datagrams/s")
				b.ReportMetric(float64(lost.Load()), "lost")
			})
		}
	}
}
