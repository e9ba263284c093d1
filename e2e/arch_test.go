package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/testkit/lab"
	"github.com/natmap-go/natmap/internal/testkit/testgate"
)

// TestRouterArches runs natmap as built for the routers (make cross, make
// ipk) under qemu-user in the lab: each finds its mapping and relays TCP and
// UDP to the lan target. The relay's raw syscalls (splice, recvfrom,
// sendto) and socket address layouts differ per arch, and 32-bit MIPS
// passes a syscall's fifth and sixth arguments on the stack: only running
// the binary shows they are right.
func TestRouterArches(t *testing.T) {
	t.Parallel()
	for _, a := range []struct{ name, goarch, env, qemu string }{
		{"aarch64", "arm64", "", "qemu-aarch64"},
		{"arm", "arm", "GOARM=7", "qemu-arm"},
		{"mipsel", "mipsle", "GOMIPS=softfloat", "qemu-mipsel"},
		{"mips", "mips", "GOMIPS=softfloat", "qemu-mips"},
	} {
		t.Run(a.name, func(t *testing.T) {
			t.Parallel()
			testgate.Require(t, "router arches", true, map[string]string{a.qemu: "qemu-user"})
			qemu, _ := exec.LookPath(a.qemu)
			bin := filepath.Join(t.TempDir(), "natmap-"+a.name)
			build := exec.Command("go", "build", "-trimpath", "-o", bin, "../cmd/natmap")
			build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+a.goarch)
			if a.env != "" {
				build.Env = append(build.Env, a.env)
			}
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("building for %s: %v\n%s", a.name, err, out)
			}
			l := lab.New(t, lab.FullConeTranslate)
			serveEcho(t, l, l.LAN, "127.0.0.1:9000")
			serveUDP(t, l, l.LAN, "127.0.0.1:9001", false)
			// Under qemu-user, natmap cannot re-execute itself (no binfmt_misc
			// here): its notify helper runs through qemu too, and so is
			// tested on the arch as well.
			run := func(args ...string) *natmap {
				return startBinary(t, l, "env", append([]string{"NATMAP_NOTIFY_HELPER=" + qemu + " " + bin + " notify-exec", qemu, bin}, args...)...)
			}

			tcp := run(bindArgs(l, 40070, "-t", "127.0.0.1", "-p", "9000")...).waitNotification(1, 30*time.Second)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, err := l.DialFromOutside(ctx, "tcp4", tcp.Public().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			payload := make([]byte, 1<<20)
			rand.Read(payload)
			go func() {
				c.Write(payload)
				c.(*net.TCPConn).CloseWrite()
			}()
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			got, err := io.ReadAll(c)
			if err != nil || !bytes.Equal(got, payload) {
				t.Fatalf("TCP echo through the %s relay: %d of %d bytes, equal %v, err %v", a.name, len(got), len(payload), bytes.Equal(got, payload), err)
			}

			args := append([]string{"-u", "-k", "2", "-b", "40071", "-t", "127.0.0.1", "-p", "9001"}, stunArgs(l)...)
			udp := run(args...).waitNotification(1, 30*time.Second)
			for _, size := range []int{1, 1400, 60000} {
				payload := make([]byte, size)
				rand.Read(payload)
				got, err := echoUDP(t, l, udp.Public(), payload)
				if err != nil || !bytes.Equal(got, payload) {
					t.Fatalf("%d-byte datagram through the %s relay: got %d bytes, %v", size, a.name, len(got), err)
				}
			}
		})
	}
}
