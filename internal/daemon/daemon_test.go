package daemon

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/mapping"
	"github.com/natmap-go/natmap/internal/testkit/wait"
)

// A reload or restart that reaches the control socket before Run has
// started is refused, not a crash.
func TestControlBeforeRun(t *testing.T) {
	d := New(Options{ConfigPath: "/nonexistent", Log: slog.New(slog.DiscardHandler)})
	if err := d.Reload(); err == nil || !strings.Contains(err.Error(), "still starting") {
		t.Fatalf("Reload before Run: %v", err)
	}
	if err := d.Restart("x"); err == nil || !strings.Contains(err.Error(), "still starting") {
		t.Fatalf("Restart before Run: %v", err)
	}
	if st := d.Status(); len(st) != 0 {
		t.Fatalf("status before Run: %+v", st)
	}
}

// Sections that cannot run are reported, and Run ends when its context
// does; no network is touched (disabled and broken sections, and one with
// a missing script whose servers refuse on loopback). A missing script does
// not stop the mapping, as with the stock package: its error is in the
// status.
func TestRunReportsSectionsThatCannotRun(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "natmap")
	os.WriteFile(cfg, []byte(`
config natmap 'off'
	option enable '0'
	option stun_server 's'
config natmap 'bad'
	option enable '1'
	option port 'x'
config natmap 'noscript'
	option enable '1'
	option stun_server '127.0.0.1:1'
	option http_server '127.0.0.1:1'
	option notify_script '/nonexistent/script'
`), 0o644)
	d := New(Options{ConfigPath: cfg, Log: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	wait.Until(5*time.Second, func() bool { return len(d.Status()) >= 3 })
	st := d.Status()
	want := map[string]mapping.State{"off": "disabled", "bad": "error", "noscript": "running"}
	for _, s := range st {
		running := s.State == "starting" || s.State == "retrying"
		if want[s.Section] != s.State && !(want[s.Section] == "running" && running) {
			t.Errorf("%s: state %q (%s), want %q", s.Section, s.State, s.LastError, want[s.Section])
		}
	}
	if len(st) != 3 || !strings.Contains(st[2].ScriptError, "/nonexistent/script") {
		t.Fatalf("status %+v", st)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not end with its context")
	}
	// Once Run has ended, nothing starts a section it would not stop.
	if err := d.Reload(); err == nil || !strings.Contains(err.Error(), "stopping") {
		t.Errorf("Reload after Run: %v", err)
	}
	if err := d.Restart("noscript"); err == nil || !strings.Contains(err.Error(), "stopping") {
		t.Errorf("Restart after Run: %v", err)
	}
	if st := d.Status(); len(st) != 0 {
		t.Errorf("status after Run: %+v", st)
	}
}
