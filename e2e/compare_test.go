package e2e

import (
	"os"
	"sort"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/testkit/lab"
)

// TestCompareWithC runs the same lab scenarios with this natmap and with
// the C natmap (a binary you build yourself; NATMAP_C_BIN=/path/to/natmap)
// and logs the figures side by side. scripts/bench.sh runs it when
// NATMAP_C_BIN is set. It asserts only what this natmap must do.
func TestCompareWithC(t *testing.T) {
	cbin := os.Getenv("NATMAP_C_BIN")
	if cbin == "" {
		t.Skip("set NATMAP_C_BIN to a C natmap binary to compare")
	}
	for _, impl := range []struct{ name, bin string }{{"go", natmapBin}, {"c", cbin}} {
		t.Run(impl.name, func(t *testing.T) {
			l := lab.New(t, lab.FullConeTranslate)
			// Start to first notify, median of 9.
			var ds []time.Duration
			for i := range 9 {
				start := time.Now()
				nm := startBinary(t, l, impl.bin, bindArgs(l, uint16(42000+i))...)
				nm.waitNotification(1, 15*time.Second)
				ds = append(ds, time.Since(start))
				nm.stop()
			}
			sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
			t.Logf("%s: start to first notify, median of 9: %v", impl.name, ds[4].Round(100*time.Microsecond))

			// The NAT forgets every mapping; time to the new mapping's notify,
			// with the default 30 s keep-alive interval: once where the
			// server's reset gets through, once where the NAT drops what it
			// no longer tracks.
			for i, strict := range []bool{false, true} {
				opts := []lab.Option{}
				if strict {
					opts = append(opts, lab.StrictTCP())
				}
				lf := lab.New(t, lab.FullConeTranslate, opts...)
				args := bindArgs(lf, uint16(42100+i))
				args[1] = "30" // -k 30
				nm := startBinary(t, lf, impl.bin, args...)
				first := nm.waitNotification(1, 15*time.Second)
				if err := lf.ForgetMappings(); err != nil {
					t.Fatal(err)
				}
				forgot := time.Now()
				limit := 300 * time.Second
				for time.Since(forgot) < limit && len(nm.notifications()) < 2 {
					time.Sleep(100 * time.Millisecond)
				}
				if n := nm.notifications(); len(n) >= 2 {
					t.Logf("%s: NAT forgot (strict %v) %s; new mapping %s notified after %v (-k 30)", impl.name, strict, first.Public(), n[1].Public(), time.Since(forgot).Round(100*time.Millisecond))
				} else {
					t.Logf("%s: NAT forgot (strict %v) %s; no new mapping notified within %v (-k 30)", impl.name, strict, first.Public(), limit)
					if impl.name == "go" {
						t.Fail()
					}
				}
				nm.stop()
			}

			// Symmetric NAT with two STUN servers.
			ls := lab.New(t, lab.Symmetric)
			nm := startBinary(t, ls, impl.bin, bindArgs(ls, 42200)...)
			time.Sleep(3 * time.Second)
			if n := nm.notifications(); len(n) > 0 {
				t.Logf("%s: symmetric NAT: notified %s as if it were reachable", impl.name, n[0].Public())
			} else {
				t.Logf("%s: symmetric NAT: nothing notified", impl.name)
			}
			nm.stop()
		})
	}
}
