package logx

import (
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A real unixgram socket stands in for /dev/log.
func TestSyslog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	srv, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	log, err := Syslog("unixgram", path, "natmap", slog.LevelInfo)
	if err != nil {
		t.Fatal(err)
	}
	log.With("section", "ssh").Warn("mapping lost", "err", "reset")
	log.Debug("hidden")
	log.Error("boom")
	buf := make([]byte, 2048)
	var got []string
	for range 2 {
		srv.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := srv.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(buf[:n]))
	}
	// <28> = daemon.warning, <27> = daemon.err
	if !strings.HasPrefix(got[0], "<28>") || !strings.Contains(got[0], "natmap[") ||
		!strings.Contains(got[0], `level=WARN msg="mapping lost" section=ssh err=reset`) || strings.Contains(got[0], "time=") {
		t.Fatalf("syslog line %q", got[0])
	}
	if !strings.HasPrefix(got[1], "<27>") || !strings.Contains(got[1], "msg=boom") {
		t.Fatalf("syslog line %q", got[1])
	}
}

func TestLineWriter(t *testing.T) {
	var b strings.Builder
	log := slog.New(slog.NewTextHandler(&b, nil))
	w := LineWriter(log, slog.LevelInfo, "script output", "section", "x")
	w.Write([]byte("hello\nwor"))
	w.Write([]byte("ld\n"))
	w.Write([]byte(strings.Repeat("x", 5000) + "\nlast"))
	w.Close()
	s := b.String()
	if strings.Count(s, "\n") != 5 || !strings.Contains(s, "line=hello") || !strings.Contains(s, "line=world") ||
		!strings.Contains(s, "line="+strings.Repeat("x", 4096)+"\n") || !strings.Contains(s, "line="+strings.Repeat("x", 904)+"\n") ||
		!strings.Contains(s, "line=last") || !strings.Contains(s, "section=x") {
		t.Fatalf("log %q", s)
	}
}
