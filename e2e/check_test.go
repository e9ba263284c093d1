package e2e

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/lab"
)

// natmap check tells each of the lab's NATs apart, over TCP and UDP, with
// the exit status scripts can test.
func TestCheck(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		kind lab.Kind
		udp  bool
		code int
		want []string
	}{
		{lab.FullConePreserve, false, 0, []string{"endpoint-independent, public port preserved", "filtering: endpoint-independent", "full cone (NAT-1)"}},
		{lab.FullConeTranslate, true, 0, []string{"public port translated", "full cone (NAT-1)"}},
		{lab.Symmetric, false, 3, []string{"endpoint-dependent", "symmetric NAT"}},
		{lab.Symmetric, true, 3, []string{"symmetric NAT"}},
		{lab.RestrictedCone, false, 3, []string{"address-dependent (restricted cone)", "not a full cone"}},
	} {
		name := c.kind.String() + map[bool]string{false: "/tcp", true: "/udp"}[c.udp]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			l := lab.New(t, c.kind)
			args := append([]string{"check"}, stunArgs(l)...)
			if c.udp {
				args = append(args, "-u")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			out, err := l.Command(ctx, l.LAN, natmapBin, args...).CombinedOutput()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != c.code {
				t.Errorf("exit status %d, want %d", code, c.code)
			}
			for _, w := range c.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q", w)
				}
			}
			if t.Failed() {
				t.Logf("natmap %s:\n%s", strings.Join(args, " "), out)
			}
		})
	}
}

// From the outside client's namespace there is no NAT: the STUN servers see
// the host's own address.
func TestCheckNoNAT(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConePreserve)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := l.Command(ctx, l.Inet, natmapBin, append([]string{"check"}, stunArgs(l)...)...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "no NAT: ") {
		t.Fatalf("natmap check from outside: %v\n%s", err, out)
	}
}
