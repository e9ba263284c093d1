package notify

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var m1 = Mapping{
	Public:   netip.MustParseAddrPort("117.62.214.217:55642"),
	Private:  netip.MustParseAddrPort("192.168.1.2:8080"),
	Protocol: "tcp",
}

func TestArgs(t *testing.T) {
	got := strings.Join(m1.Args(), "|")
	if want := "117.62.214.217|55642|2001::d95a:753e:d6d9|8080|tcp|192.168.1.2"; got != want {
		t.Fatalf("args %q, want %q", got, want)
	}
	v6 := Mapping{Public: netip.MustParseAddrPort("[2001:db8::1]:80"), Private: netip.MustParseAddrPort("[2001:db8::2]:80"), Protocol: "udp"}
	if got := strings.Join(v6.Args(), "|"); got != "2001:db8::1|80||80|udp|2001:db8::2" {
		t.Fatalf("v6 args %q", got)
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func start(t *testing.T, n *Notifier) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func TestPrintWithoutScript(t *testing.T) {
	out := &syncBuf{}
	n := &Notifier{Stdout: out, Log: slog.New(slog.DiscardHandler)}
	start(t, n)
	n.Notify(m1)
	waitFor(t, func() bool { return strings.Contains(out.String(), "\n") })
	if got := out.String(); got != "117.62.214.217 55642 2001::d95a:753e:d6d9 8080 tcp 192.168.1.2\n" {
		t.Fatalf("printed %q", got)
	}
}

func script(t *testing.T, body string) string {
	p := filepath.Join(t.TempDir(), "notify.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestScriptGetsArgvAndEnv(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	n := &Notifier{
		Script:    script(t, `for a in "$@"; do printf '%s|' "$a"; done > `+out+`.tmp; echo "$NATMAP_SECTION" >> `+out+`.tmp; mv `+out+`.tmp `+out+"\n"),
		ExtraArgs: []string{"wan_ssh", "my ssh"}, Env: []string{"NATMAP_SECTION=wan_ssh"},
		Log: slog.New(slog.DiscardHandler),
	}
	start(t, n)
	n.Notify(m1)
	var got []byte
	waitFor(t, func() bool { got, _ = os.ReadFile(out); return len(got) > 0 })
	want := "117.62.214.217|55642|2001::d95a:753e:d6d9|8080|tcp|192.168.1.2|wan_ssh|my ssh|wan_ssh\n"
	if string(got) != want {
		t.Fatalf("script saw %q, want %q", got, want)
	}
}

// A hanging script is killed, with its children, and later mappings are
// still delivered; Notify never blocks meanwhile.
func TestHangingScriptKilledAndLatestWins(t *testing.T) {
	dir := t.TempDir()
	log := &syncBuf{}
	n := &Notifier{
		Script:  script(t, `echo "$2" >> `+dir+`/seen; if [ "$2" = 1 ]; then sleep 30 & sleep 30; fi`+"\n"),
		Timeout: 300 * time.Millisecond,
		Log:     slog.New(slog.NewTextHandler(log, nil)),
	}
	start(t, n)
	for port := range uint16(5) {
		begin := time.Now()
		m := m1
		m.Public = netip.AddrPortFrom(m.Public.Addr(), port+1)
		n.Notify(m)
		if time.Since(begin) > 50*time.Millisecond {
			t.Fatal("Notify blocked")
		}
		if port == 0 {
			waitFor(t, func() bool { b, _ := os.ReadFile(dir + "/seen"); return len(b) > 0 })
		}
	}
	waitFor(t, func() bool { b, _ := os.ReadFile(dir + "/seen"); return strings.Contains(string(b), "5\n") })
	b, _ := os.ReadFile(dir + "/seen")
	if string(b) != "1\n5\n" {
		t.Fatalf("runs %q: want the hung one, then only the latest", b)
	}
	if !strings.Contains(log.String(), "killed after 300ms") {
		t.Fatalf("log does not say the script was killed:\n%s", log.String())
	}
}

func TestMissingScriptLogged(t *testing.T) {
	log := &syncBuf{}
	n := &Notifier{Script: "/nonexistent/notify", Log: slog.New(slog.NewTextHandler(log, nil))}
	start(t, n)
	n.Notify(m1)
	waitFor(t, func() bool { return strings.Contains(log.String(), "notify script failed") })
}

// After runs once the script has ended, with the mapping it was told.
func TestAfterRunsWhenTheScriptEnded(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	got := make(chan string, 1)
	n := &Notifier{
		Script: script(t, "sleep 0.2; echo done > "+out+"\n"),
		Log:    slog.New(slog.DiscardHandler),
		After: func(m Mapping) {
			b, _ := os.ReadFile(out)
			got <- m.Public.String() + " " + strings.TrimSpace(string(b))
		},
	}
	start(t, n)
	n.Notify(m1)
	select {
	case s := <-got:
		if s != "117.62.214.217:55642 done" {
			t.Fatalf("After saw %q, want the mapping after the script's output", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("After never ran")
	}
}
