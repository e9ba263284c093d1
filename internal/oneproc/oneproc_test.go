package oneproc

import (
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestEnv(t *testing.T) {
	base := []string{"PATH=/bin", "HOME=/"}
	if got := Env(base); !slices.Equal(got, []string{"PATH=/bin", "HOME=/", "GOMAXPROCS=1", Mark + "=1"}) {
		t.Errorf("Env(%q) = %q", base, got)
	}
	if len(base) != 2 {
		t.Errorf("Env changed its argument: %q", base)
	}
	own := []string{"GOMAXPROCS=3", "PATH=/bin"}
	if got := Env(own); !slices.Equal(got, own) {
		t.Errorf("Env(%q) = %q: the caller's GOMAXPROCS must decide", own, got)
	}
}

// TestSetup runs this test binary again in each environment: Setup must
// leave one processor (or the caller's choice) and take out what natmap set.
func TestSetup(t *testing.T) {
	if os.Getenv("ONEPROC_CHILD") != "" {
		Setup()
		var env []string
		for _, kv := range os.Environ() {
			if strings.HasPrefix(kv, "GOMAXPROCS=") || strings.HasPrefix(kv, Mark+"=") {
				env = append(env, kv)
			}
		}
		os.Stdout.WriteString(strings.Join(append(env, "procs="+strconv.Itoa(runtime.GOMAXPROCS(0))), " "))
		os.Exit(0)
	}
	for _, c := range []struct {
		env  []string
		want string
	}{
		{nil, "procs=1"},
		{Env(nil), "procs=1"}, // natmap's own: taken out
		{[]string{"GOMAXPROCS=2"}, "GOMAXPROCS=2 procs=2"}, // the caller's: kept
		{Env([]string{"GOMAXPROCS=2"}), "GOMAXPROCS=2 procs=2"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSetup$")
		cmd.Env = append([]string{"ONEPROC_CHILD=1"}, c.env...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("env %q: %v", c.env, err)
		}
		if string(out) != c.want {
			t.Errorf("env %q: got %q, want %q", c.env, out, c.want)
		}
	}
}
