package notify

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/logx"
	"github.com/natmap-go/natmap/internal/oneproc"
	"github.com/natmap-go/natmap/internal/testkit/wait"
)

var m1 = Mapping{
	Public:   netip.MustParseAddrPort("117.62.214.217:55642"),
	Private:  netip.MustParseAddrPort("192.168.1.2:8080"),
	Protocol: "tcp",
}

// TestMain lets the test binary be the notify-exec helper, as natmap is.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == HelperCommand {
		oneproc.Setup() // as natmap's main
		os.Exit(HelperMain(os.Args[2:]))
	}
	os.Exit(m.Run())
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
	wait.For(t, 30*time.Second, "a line of output", func() bool { return strings.Contains(out.String(), "\n") })
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
	wait.For(t, 30*time.Second, "the script's output file", func() bool { got, _ = os.ReadFile(out); return len(got) > 0 })
	want := "117.62.214.217|55642|2001::d95a:753e:d6d9|8080|tcp|192.168.1.2|wan_ssh|my ssh|wan_ssh\n"
	if string(got) != want {
		t.Fatalf("script saw %q, want %q", got, want)
	}
}

func textLog() (*syncBuf, *slog.Logger) {
	b := &syncBuf{}
	return b, slog.New(slog.NewTextHandler(b, nil))
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func withPort(port uint16) Mapping {
	m := m1
	m.Public = netip.AddrPortFrom(m.Public.Addr(), port)
	return m
}

// A hanging script is killed at the timeout, and later mappings are still
// delivered; Notify never blocks meanwhile.
func TestHangingScriptKilled(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	log, l := textLog()
	n := &Notifier{
		Script:  script(t, `echo "$2" >> `+dir+`/seen; if [ "$2" = 1 ]; then sleep 30 & sleep 30; fi`+"\n"),
		Timeout: 3 * time.Second, // time enough for the helper and shell to start on a loaded machine
		Log:     l,
	}
	start(t, n)
	n.Notify(withPort(1))
	wait.For(t, 30*time.Second, `"killed after 3s" logged`, func() bool { return strings.Contains(log.String(), "killed after 3s") })
	if !strings.Contains(n.LastError(), "killed after 3s") {
		t.Fatalf("LastError %q", n.LastError())
	}
	begin := time.Now()
	n.Notify(withPort(2))
	if time.Since(begin) > 50*time.Millisecond {
		t.Fatal("Notify blocked")
	}
	wait.For(t, 30*time.Second, "runs 1 and 2 seen", func() bool { return readFile(dir+"/seen") == "1\n2\n" })
	wait.For(t, 30*time.Second, "no last error", func() bool { return n.LastError() == "" })
}

// Mappings that arrive while no script can take them are coalesced: only
// the latest runs.
func TestLatestWins(t *testing.T) {
	dir := t.TempDir()
	log, l := textLog()
	n := &Notifier{Script: script(t, `echo "$2" >> `+dir+"/seen\n"), Log: l}
	for port := range uint16(5) {
		n.Notify(withPort(port + 1))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	wait.For(t, 30*time.Second, `"notify script done" logged`, func() bool { return strings.Contains(log.String(), "notify script done") })
	cancel()
	<-done
	if got := readFile(dir + "/seen"); got != "5\n" {
		t.Fatalf("runs %q: want only the latest", got)
	}
}

// A script still reporting an older mapping is stale: a newer one ends it
// and what it started, and runs the script for the newest at once.
func TestNewerMappingEndsStaleScript(t *testing.T) {
	dir := t.TempDir()
	log, l := textLog()
	n := &Notifier{
		Script: script(t, `echo "$2" >> `+dir+`/seen
if [ "$2" = 1 ]; then
	setsid sh -c 'echo $$ > `+dir+`/child; exec sleep 1000' &
	sleep 1000
fi
`),
		Log: l, // the default 60 s timeout: only the newer mapping ends it
	}
	start(t, n)
	n.Notify(withPort(1))
	wait.For(t, 30*time.Second, "the child's pid", func() bool { return readFile(dir+"/child") != "" })
	child, _ := strconv.Atoi(strings.TrimSpace(readFile(dir + "/child")))
	begin := time.Now()
	n.Notify(withPort(2))
	wait.For(t, 30*time.Second, "runs 1 and 2 seen", func() bool { return readFile(dir+"/seen") == "1\n2\n" })
	if took := time.Since(begin); took > 5*time.Second {
		t.Fatalf("the newest mapping ran after %s", took)
	}
	if !strings.Contains(log.String(), "a newer mapping arrived") {
		t.Fatalf("log does not say why the script ended:\n%s", log)
	}
	if alive(child) {
		t.Fatalf("pid %d started by the stale script still runs", child)
	}
}

// alive says whether pid runs (a zombie is dead).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || !strings.HasPrefix(string(b[i+1:]), " Z")
}

// What called setsid, even after its parent exited (a daemon's double
// fork), is killed with the script.
func TestTimeoutKillsSetsidDescendants(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	log, l := textLog()
	n := &Notifier{
		Script: script(t, `setsid sh -c 'echo $$ > `+dir+`/a; exec sleep 1000' &
(setsid sh -c 'echo $$ > `+dir+`/b; exec sleep 1000' &)
sleep 1000
`),
		Timeout: 5 * time.Second,
		Log:     l,
	}
	start(t, n)
	n.Notify(m1)
	wait.For(t, 30*time.Second, "both scripts to start", func() bool { return readFile(dir+"/a") != "" && readFile(dir+"/b") != "" })
	a, _ := strconv.Atoi(strings.TrimSpace(readFile(dir + "/a")))
	b, _ := strconv.Atoi(strings.TrimSpace(readFile(dir + "/b")))
	t.Cleanup(func() { syscall.Kill(a, syscall.SIGKILL); syscall.Kill(b, syscall.SIGKILL) })
	wait.For(t, 30*time.Second, `"killed after 5s" logged`, func() bool { return strings.Contains(log.String(), "killed after 5s") })
	for _, pid := range []int{a, b} {
		if alive(pid) {
			t.Errorf("pid %d (setsid) survived the kill", pid)
		}
	}
}

// Shutting down ends a running script with its descendants.
func TestShutdownEndsScript(t *testing.T) {
	dir := t.TempDir()
	_, l := textLog()
	n := &Notifier{Script: script(t, `(setsid sh -c 'echo $$ > `+dir+`/a; exec sleep 1000' &); sleep 1000`+"\n"), Log: l}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	n.Notify(m1)
	wait.For(t, 30*time.Second, "the script to start", func() bool { return readFile(dir+"/a") != "" })
	a, _ := strconv.Atoi(strings.TrimSpace(readFile(dir + "/a")))
	cancel()
	<-done
	if alive(a) {
		syscall.Kill(a, syscall.SIGKILL)
		t.Fatalf("pid %d outlived natmap's shutdown", a)
	}
}

// The script's exit decides: a background child that keeps stdout open
// neither fails the run nor holds it.
func TestBackgroundChildHoldingStdout(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	log, l := textLog()
	out := &syncBuf{}
	n := &Notifier{
		Script: script(t, `sleep 1000 &
echo $! > `+dir+`/bg
echo hello
exit 0
`),
		Stdout: out,
		Log:    l,
	}
	start(t, n)
	n.Notify(m1)
	wait.For(t, 30*time.Second, "the script's log line", func() bool { return strings.Contains(log.String(), "notify script") })
	bg, _ := strconv.Atoi(strings.TrimSpace(readFile(dir + "/bg")))
	t.Cleanup(func() { syscall.Kill(bg, syscall.SIGKILL) })
	if s := log.String(); !strings.Contains(s, "notify script done") || strings.Contains(s, "failed") {
		t.Fatalf("want success:\n%s", s)
	}
	if n.LastError() != "" {
		t.Fatalf("LastError %q", n.LastError())
	}
	wait.For(t, 30*time.Second, `the output "hello"`, func() bool { return out.String() == "hello\n" })
	if !alive(bg) {
		t.Fatal("a successful script's background child was killed")
	}
}

// A file without "#!" runs with /bin/sh, as busybox ash runs it.
func TestScriptWithoutShebang(t *testing.T) {
	dir := t.TempDir()
	_, l := textLog()
	p := filepath.Join(dir, "notify")
	if err := os.WriteFile(p, []byte(`echo "$0|$*" > `+dir+"/out\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	n := &Notifier{Script: p, ExtraArgs: []string{"sec"}, Log: l}
	start(t, n)
	n.Notify(m1)
	wait.For(t, 30*time.Second, "the script's output file", func() bool { return readFile(dir+"/out") != "" })
	want := p + "|117.62.214.217 55642 2001::d95a:753e:d6d9 8080 tcp 192.168.1.2 sec\n"
	if got := readFile(dir + "/out"); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// A binary for another machine is not fed to the shell.
func TestBinaryWithoutShebangNotRunByShell(t *testing.T) {
	p := filepath.Join(t.TempDir(), "notify")
	if err := os.WriteFile(p, []byte("\x7fELF\x01\x01\x01\x00\x00junk\nrm -rf /\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	log, l := textLog()
	n := &Notifier{Script: p, Log: l}
	start(t, n)
	n.Notify(m1)
	wait.For(t, 30*time.Second, `"notify script failed" logged`, func() bool { return strings.Contains(log.String(), "notify script failed") })
	if !strings.Contains(n.LastError(), "exec format error") {
		t.Fatalf("LastError %q", n.LastError())
	}
}

// "-e notify.sh" is the file in the current directory, as for the C
// natmap's execl: never a command found through PATH.
func TestRelativeScriptIsInCurrentDirectory(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile("notify.sh", []byte("#!/bin/sh\necho \"$0 $1\" > out\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, l := textLog()
	n := &Notifier{Script: "notify.sh", Log: l}
	if err := n.Check(); err != nil {
		t.Fatal(err)
	}
	start(t, n)
	n.Notify(m1)
	wait.For(t, 30*time.Second, "the script's output file", func() bool { return readFile(filepath.Join(dir, "out")) != "" })
	if got := readFile(filepath.Join(dir, "out")); got != "notify.sh 117.62.214.217\n" {
		t.Fatalf("script saw %q", got)
	}

	// "true" is in PATH, not here.
	log, l2 := textLog()
	n2 := &Notifier{Script: "true", Log: l2}
	start(t, n2)
	n2.Notify(m1)
	wait.For(t, 30*time.Second, "the script's log line", func() bool { return strings.Contains(log.String(), "notify script") })
	if !strings.Contains(n2.LastError(), "no such file") {
		t.Fatalf("ran %q from PATH: LastError %q, log:\n%s", "true", n2.LastError(), log)
	}
}

func TestMissingScriptLogged(t *testing.T) {
	log, l := textLog()
	n := &Notifier{Script: "/nonexistent/notify", Log: l}
	if err := n.Check(); err == nil || n.LastError() == "" {
		t.Fatalf("Check %v, LastError %q", err, n.LastError())
	}
	start(t, n)
	n.Notify(m1)
	wait.For(t, 30*time.Second, `"notify script failed" logged`, func() bool { return strings.Contains(log.String(), "notify script failed") })
	if !strings.Contains(n.LastError(), "no such file") {
		t.Fatalf("LastError %q", n.LastError())
	}
}

// Output is logged line by line, a last line without a newline too.
func TestOutputWithoutNewlineLogged(t *testing.T) {
	log, l := textLog()
	n := &Notifier{
		Script: script(t, "echo one; printf two; printf err >&2\n"),
		Stdout: logx.LineWriter(l, slog.LevelInfo, "notify script output"),
		Stderr: logx.LineWriter(l, slog.LevelWarn, "notify script error output"),
		Log:    l,
	}
	start(t, n)
	n.Notify(m1)
	wait.For(t, 30*time.Second, "the script's three lines logged", func() bool {
		s := log.String()
		return strings.Contains(s, "line=one") && strings.Contains(s, "line=two") && strings.Contains(s, "line=err")
	})
}

// One run logs at most MaxLogLines and MaxLogBytes, then says how much it
// dropped.
func TestOutputCapped(t *testing.T) {
	for _, tc := range []struct {
		name, body         string
		lines, bytes, want int
		dropped            string
	}{
		{"lines", "seq 1 1000\n", 10, 1 << 20, 10, "dropped_lines=990 dropped_bytes=3872"},
		{"bytes", "i=0; while [ $i -lt 50 ]; do echo 0123456789012345678; i=$((i+1)); done\n", 1000, 200, 10, "dropped_lines=40 dropped_bytes=800"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log, l := textLog()
			n := &Notifier{
				Script:      script(t, tc.body),
				Stdout:      logx.LineWriter(l, slog.LevelInfo, "notify script output"),
				MaxLogLines: tc.lines, MaxLogBytes: tc.bytes,
				Log: l,
			}
			start(t, n)
			n.Notify(m1)
			wait.For(t, 30*time.Second, `"over the limit" logged`, func() bool { return strings.Contains(log.String(), "over the limit") })
			s := log.String()
			if got := strings.Count(s, `msg="notify script output"`); got != tc.want {
				t.Errorf("%d lines logged, want %d", got, tc.want)
			}
			if !strings.Contains(s, tc.dropped) {
				t.Errorf("want %s in:\n%s", tc.dropped, s)
			}
		})
	}
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
