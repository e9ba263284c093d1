package relay

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// emfileHelperEnv makes the test binary run emfileHelper instead of the
// tests: a relay whose fd table is nearly full, in a process of its own so
// the low limit cannot hurt the tests.
const emfileHelperEnv = "RELAY_EMFILE_HELPER_TARGET"

// emfileModeEnv names the helper's dial mode (see dialModes).
const emfileModeEnv = "RELAY_EMFILE_HELPER_MODE"

func TestMain(m *testing.M) {
	if target := os.Getenv(emfileHelperEnv); target != "" {
		os.Exit(emfileHelper(target))
	}
	os.Exit(m.Run())
}

// emfileFree is how many fds the helper's relay may open: one relayed
// connection (its two sockets; it copies without splice pipes then) fills
// the table, and the next one finds it full.
const emfileFree = 2

// serveFds is how many fds a TCP relay's Serve opens for itself: the
// listener's duplicate, its epoll instance and eventfd.
const serveFds = 3

// limitFds lowers RLIMIT_NOFILE so that exactly free more fds can be opened.
// New fds take the lowest free number, and fds above the limit (inherited
// ones) stay usable, so the limit is the free-th unused number + 1.
func limitFds(free int) error {
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	used := map[int]bool{}
	for _, e := range es {
		// ReadDir's own fd is closed by now: its link is gone.
		if _, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil {
			fd, _ := strconv.Atoi(e.Name())
			used[fd] = true
		}
	}
	fd := 0
	for ; ; fd++ {
		if !used[fd] {
			if free--; free == 0 {
				break
			}
		}
	}
	lim := syscall.Rlimit{Cur: uint64(fd + 1), Max: uint64(fd + 1)}
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
}

// emfileHelper prints the relay's address, relays to target with
// emfileFree fds to spare until stdin closes, and logs to stderr.
func emfileHelper(target string) int {
	l, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	fmt.Println(l.Addr())

	if err := limitFds(emfileFree + serveFds); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	r := &TCP{
		Listener: l,
		Log:      slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, m := range dialModes {
		if m.name == os.Getenv(emfileModeEnv) {
			m.to(r, target)
		}
	}
	if err := r.Serve(ctx); err != context.Canceled {
		fmt.Fprintln(os.Stderr, "Serve:", err)
		return 1
	}
	return 0
}

func TestTCPSurvivesFullFdTable(t *testing.T) {
	for _, m := range dialModes {
		t.Run(m.name, func(t *testing.T) {
			target := newServer(t, echo)
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), emfileHelperEnv+"="+target.addr(), emfileModeEnv+"="+m.name)
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			stderr := new(logs)
			cmd.Stderr = stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			defer func() {
				stdin.Close()
				select {
				case err := <-exited:
					if err != nil {
						t.Errorf("relay process: %v\n%s", err, stderr)
					}
				case <-time.After(5 * time.Second):
					cmd.Process.Kill()
					t.Errorf("relay process did not end with its input\n%s", stderr)
				}
			}()
			line, err := bufio.NewReader(stdout).ReadString('\n')
			if err != nil {
				t.Fatalf("relay process: %v\n%s", err, stderr)
			}
			addr := strings.TrimSpace(line)

			// Fill the relay's fd table: the first connections are relayed, the
			// next wait in the backlog (or are reset when accepted with the last
			// fd, which the target dial then lacks).
			var relayed, waiting []net.Conn
			for i := range 5 {
				c := dial(t, addr)
				c.Write([]byte("x"))
				wait := 300 * time.Millisecond
				if i == 0 {
					wait = 3 * time.Second // the first one must make it
				}
				c.SetReadDeadline(time.Now().Add(wait))
				_, err := io.ReadFull(c, make([]byte, 1))
				switch {
				case err == nil:
					relayed = append(relayed, c)
				case os.IsTimeout(err):
					waiting = append(waiting, c)
				default:
					c.Close()
				}
			}
			if len(relayed) == 0 || len(waiting) == 0 {
				t.Fatalf("%d connections relayed, %d waiting; want some of each\n%s", len(relayed), len(waiting), stderr)
			}
			if !strings.Contains(stderr.String(), "too many open files") {
				t.Fatalf("the relay never ran out of fds:\n%s", stderr)
			}

			// Freeing fds lets the waiting connections through, one by one.
			for _, c := range relayed {
				c.Close()
			}
			for i, c := range waiting {
				c.SetReadDeadline(time.Now().Add(3 * time.Second))
				if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
					t.Fatalf("waiting connection %d never relayed: %v\n%s", i, err, stderr)
				}
				c.Close()
			}
			c := dial(t, addr)
			c.Write([]byte("x"))
			c.SetReadDeadline(time.Now().Add(3 * time.Second))
			if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
				t.Fatalf("new connection after the fd shortage: %v\n%s", err, stderr)
			}
			t.Logf("%d relayed, %d waited for fds; relay log:\n%s", len(relayed), len(waiting), stderr)
		})
	}
}
