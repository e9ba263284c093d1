package engine

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/config"
	"github.com/natmap-go/natmap/internal/mapping"
	"github.com/natmap-go/natmap/internal/notify"
	"github.com/natmap-go/natmap/internal/portspec"
	"github.com/natmap-go/natmap/internal/testkit/wait"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// A keep-alive server that refuses: retries are paced (1 s, 2 s, ... up to
// the interval, never a hot loop), each failed connect moves on to the next
// port of the range, and the status says what failed.
func TestRetriesArePacedAndAdvancePorts(t *testing.T) {
	// A port nobody listens on: connect is refused at once.
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := l.Addr().(*net.TCPAddr).Port
	l.Close()

	cfg := config.Mapping{
		STUN:      []config.HostPort{{Host: "127.0.0.1", Port: 3478}},
		HTTP:      config.HostPort{Host: "127.0.0.1", Port: uint16(refused)},
		Keepalive: 4 * time.Second,
		Ports:     portspec.Spec{Lo: 41000, Hi: 41002},
	}
	cfg.SetDefaults()
	log := &syncBuf{}
	e := New(cfg, slog.New(slog.NewTextHandler(log, nil)), func(notify.Mapping) { t.Error("notified") })
	ctx, cancel := context.WithTimeout(context.Background(), 3500*time.Millisecond)
	defer cancel()
	start := time.Now()
	e.Run(ctx)
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("Run returned %v after its context ended", d)
	}
	out := log.String()
	// Attempts at 0 s, 1 s and 3 s: three, not hundreds.
	if n := strings.Count(out, "session failed"); n != 3 {
		t.Fatalf("%d attempts in 3.5 s, want 3 (paced 1 s, 2 s):\n%s", n, out)
	}
	for _, want := range []string{"port=41001", "port=41002", "port=41000", "retry_in=1s", "retry_in=2s", "connection refused"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	st := e.Status()
	if st.State != mapping.Retrying || st.Retries != 3 || !strings.Contains(st.LastError, "keep-alive connect") {
		t.Fatalf("status %+v", st)
	}
	if c := st.Counters; c.Sessions != 3 || c.Failures != 3 || len(st.History) != 3 {
		t.Errorf("counters %+v and %d events, want 3 sessions, 3 failures, 3 events", c, len(st.History))
	}
}

// Repunch during the wait between retries starts the next attempt at once.
func TestRepunchSkipsTheWait(t *testing.T) {
	cfg := config.Mapping{
		STUN:      []config.HostPort{{Host: "127.0.0.1", Port: 3478}},
		HTTP:      config.HostPort{Host: "127.0.0.1", Port: 1},
		Keepalive: 30 * time.Second,
	}
	cfg.SetDefaults()
	log := &syncBuf{}
	e := New(cfg, slog.New(slog.NewTextHandler(log, nil)), func(notify.Mapping) {})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	wait.For(t, 30*time.Second, "the first session to fail", func() bool { return strings.Count(log.String(), "session failed") >= 1 })
	e.Repunch()
	if !wait.Until(500*time.Millisecond, func() bool { return strings.Count(log.String(), "session failed") >= 2 }) {
		t.Fatalf("Repunch did not cut the 1 s wait:\n%s", log.String())
	}
}
