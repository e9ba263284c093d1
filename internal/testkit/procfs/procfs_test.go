package procfs

import (
	"os"
	"strings"
	"testing"
)

func TestKiB(t *testing.T) {
	pid := os.Getpid()
	for _, c := range []struct{ file, name string }{{"status", "VmRSS"}, {"status", "Threads"}, {"smaps_rollup", "Pss"}} {
		if v, err := KiB(pid, c.file, c.name); err != nil || v <= 0 {
			t.Errorf("%s %s = %v, %v; want a positive figure", c.file, c.name, v, err)
		}
	}
	if _, err := KiB(pid, "status", "NoSuchField"); err == nil || !strings.Contains(err.Error(), "has no NoSuchField") {
		t.Errorf("a missing field: %v", err)
	}
	if _, err := KiB(pid, "status", "Name"); err == nil {
		t.Error("a field that is not a number was read as one")
	}
}
