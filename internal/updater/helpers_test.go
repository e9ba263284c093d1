package updater

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// testFields is a mapping as the engine reports it.
func testFields(pub string) Fields {
	return Fields{
		Public:   netip.MustParseAddrPort(pub),
		Private:  netip.MustParseAddrPort("192.168.1.2:8080"),
		Protocol: "tcp",
		Section:  "nas",
		Comment:  `my "NAS"`,
	}
}

// build builds an updater or fails the test.
func build(t *testing.T, typ string, opts map[string]string) *Built {
	t.Helper()
	c := Config{Name: "u", Type: typ, Options: map[string][]string{"type": {typ}}}
	for k, v := range opts {
		c.Options[k] = strings.Split(v, "|")
	}
	b, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func update(t *testing.T, b *Built, pub string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return b.Updater.Update(ctx, testFields(pub))
}

// startProcess runs a server for the test's lifetime.
func startProcess(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir()) // nothing written to the real home
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
	return cmd
}
