package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/testkit/vmplan"
	"github.com/natmap-go/natmap/internal/uciconf"
)

// TestConfigLoads checks the daemon's config with natmap's own reader:
// every section runs, in forward mode, on its own port, with the VM's
// servers.
func TestConfigLoads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "etc", "config", "natmap")
	if err := writeConfig(path, 16); err != nil {
		t.Fatal(err)
	}
	cfg, err := uciconf.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) > 0 || len(cfg.Sections) != 16 {
		t.Fatalf("%d sections, warnings %q; want 16 and none", len(cfg.Sections), cfg.Warnings)
	}
	for i, s := range cfg.Sections {
		m := s.Mapping
		if s.Err != nil || !s.Enabled || m.ForwardTarget != "127.0.0.1" || m.ForwardPort != forwardPort ||
			len(m.STUN) != 2 || m.HTTP.String() != httpAddr || m.Script != vmplan.Notify || m.Keepalive != 2*time.Second ||
			!strings.Contains(fmt.Sprint(m.Ports), fmt.Sprint(firstPort+i)) {
			t.Errorf("section %s: %+v (err %v)", s.Ref, m, s.Err)
		}
	}
}

// TestWaitNotified: the Go daemon's notes (seven arguments) and the C
// natmap's (six) both count, by private port.
func TestWaitNotified(t *testing.T) {
	notes := filepath.Join(t.TempDir(), "notes")
	notify(notes, []string{"127.0.0.1", "40100", "::ffff:127.0.0.1", "40100", "tcp", "0.0.0.0", "m0"})
	if err := waitNotified(notes, []int{40100, 40101}, 300*time.Millisecond); err == nil || !strings.Contains(err.Error(), "1 of 2 mappings") {
		t.Errorf("one of two notified: %v, want 1 of 2 missing", err)
	}
	notify(notes, []string{"127.0.0.1", "40101", "::ffff:127.0.0.1", "40101", "tcp", "0.0.0.0"})
	if err := waitNotified(notes, []int{40100, 40101}, time.Second); err != nil {
		t.Error(err)
	}
}

// TestTransfer: the client's upload and download against the sink, as the
// relay runs make them (without the relay in between).
func TestTransfer(t *testing.T) {
	sink, err := serveSink("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	for _, dir := range []byte{'u', 'd'} {
		if err := transfer(sink.Addr().String(), dir, 3<<20+5); err != nil {
			t.Errorf("%c: %v", dir, err)
		}
	}
}

func TestCPUTicks(t *testing.T) {
	u, s, err := cpuTicks(os.Getpid())
	if err != nil || u < 0 || s < 0 {
		t.Errorf("cpuTicks = %d, %d, %v", u, s, err)
	}
}
