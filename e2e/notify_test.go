package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/lab"
)

// A stock-package user's script: "-e notify.sh" (in the current directory,
// no #! line) that hangs on the first mapping. Each time the NAT forgets its
// mappings while a script still reports the older address, natmap ends that
// script, with what it started (a setsid child), and runs the script for the
// new address at once, not after the 60 s kill; every address is reported.
func TestNewerMappingEndsHungScript(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConeTranslate)
	const port = 40091
	greeting := serve(t, l, port)
	dir := t.TempDir()
	// Every run records its arguments; all but the last hang, after
	// starting a child in a session of its own.
	body := `printf '%s|' "$@" >> notes; echo >> notes
runs=$(wc -l < notes)
if [ "$runs" -lt 3 ]; then
	setsid sh -c 'echo $$ > child'$runs'; exec sleep 1000' &
	sleep 1000
fi
`
	if err := os.WriteFile(filepath.Join(dir, "notify.sh"), []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := l.Command(ctx, l.LAN, natmapBin, bindArgs(l, port, "-e", "notify.sh")...)
	cmd.Dir = dir
	nm := &natmap{t: t, cmd: cmd, stderr: &syncBuf{}, notes: filepath.Join(dir, "notes"), done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = nm.stderr, nm.stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(nm.done) }()
	t.Cleanup(func() {
		cancel()
		<-nm.done
		if t.Failed() || testing.Verbose() {
			t.Logf("natmap output:\n%s", nm.stderr.String())
		}
	})

	prev := nm.waitNotification(1, 15*time.Second)
	mustReach(t, l, prev.Public(), greeting)
	for i := 1; i <= 2; i++ {
		child := waitPid(t, filepath.Join(dir, "child"+strconv.Itoa(i)))
		if err := l.ForgetMappings(); err != nil {
			t.Fatal(err)
		}
		forgot := time.Now()
		next := nm.waitNotification(i+1, 20*time.Second)
		t.Logf("mapping %s -> %s: script run %v after the NAT forgot", prev.Public(), next.Public(), time.Since(forgot).Round(time.Millisecond))
		if next.Public() == prev.Public() {
			t.Fatalf("same mapping %s notified again", next.Public())
		}
		deadline := time.Now().Add(10 * time.Second)
		for processAlive(child) {
			if time.Now().After(deadline) {
				t.Fatalf("pid %d, started by the stale script, still runs", child)
			}
			time.Sleep(20 * time.Millisecond)
		}
		mustReach(t, l, next.Public(), greeting)
		prev = next
	}
	nm.waitLog("a newer mapping arrived", 5*time.Second)
}

// waitPid reads the pid a script wrote to path.
func waitPid(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pid in %s", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// processAlive says whether pid runs (a zombie does not).
func processAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || !strings.HasPrefix(string(b[i+1:]), " Z")
}
