package ubusevent

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/testkit/wait"
)

// fakeUbus puts a `ubus` on PATH that appends its arguments to a file, one
// call a line, after sleeping $UBUS_SLEEP seconds. The real ubus is tested
// on OpenWrt's userspace (openwrt/); this checks the queue.
func fakeUbus(t *testing.T) string {
	dir := t.TempDir()
	log := filepath.Join(dir, "calls")
	script := "#!/bin/sh\nsleep ${UBUS_SLEEP:-0}\nprintf '%s|%s|%s\\n' \"$1\" \"$2\" \"$3\" >> " + log + "\n"
	if err := os.WriteFile(filepath.Join(dir, "ubus"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	return log
}

func waitLines(t *testing.T, path string, n int) []string {
	t.Helper()
	var b []byte
	var lines []string
	if !wait.Until(20*time.Second, func() bool {
		b, _ = os.ReadFile(path)
		lines = strings.Split(strings.TrimSpace(string(b)), "\n")
		return len(b) > 0 && len(lines) >= n
	}) {
		t.Fatalf("%d calls of ubus, want %d:\n%s", len(lines), n, b)
	}
	return lines
}

func TestSendInOrder(t *testing.T) {
	calls := fakeUbus(t)
	s := New("natmap.mapping", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if s == nil {
		t.Fatal("no sender with ubus on PATH")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	for i := range 3 {
		s.Send(map[string]any{"n": i, "section": "a'b \"c\""})
	}
	lines := waitLines(t, calls, 3)
	for i, l := range lines {
		f := strings.SplitN(l, "|", 3)
		var v map[string]any
		if err := json.Unmarshal([]byte(f[2]), &v); err != nil || f[0] != "send" || f[1] != "natmap.mapping" || v["n"] != float64(i) || v["section"] != "a'b \"c\"" {
			t.Errorf("call %d: %q (%v)", i, l, err)
		}
	}
	cancel()
	<-done
}

// A slow ubus never blocks Send; the newest events are the ones kept.
func TestSlowUbusDropsOldest(t *testing.T) {
	calls := fakeUbus(t)
	t.Setenv("UBUS_SLEEP", "1")
	s := New("natmap.mapping", slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	start := time.Now()
	for i := range 200 {
		s.Send(map[string]int{"n": i})
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("200 sends took %v: Send blocks", d)
	}
	s.mu.Lock()
	queued, last := len(s.queue), string(s.queue[len(s.queue)-1])
	s.mu.Unlock()
	if queued > queueLen || last != `{"n":199}` {
		t.Errorf("queue of %d ending %s, want at most %d ending with the newest", queued, last, queueLen)
	}
	waitLines(t, calls, 1)
	cancel()
	<-done
}

func TestNoUbus(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	if New("natmap.mapping", slog.Default()) != nil {
		t.Error("a sender without ubus")
	}
}
