// Package testgate decides whether a test that needs root or a tool can
// run. Without them it skips with a message saying what is missing, except
// in CI (CI=true), where a skip would hide that nothing was tested: there it
// fails.
package testgate

import (
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// Root names the need for network-namespace privileges in Require.
const Root = "root (CAP_NET_ADMIN and CAP_SYS_ADMIN)"

// Require checks that the test can create network namespaces (when root is
// set) and run each command; cmds maps a command to its Debian package.
func Require(t testing.TB, who string, root bool, cmds map[string]string) {
	t.Helper()
	var missing []string
	if root && !NetnsCaps() {
		missing = append(missing, Root)
	}
	names := make([]string, 0, len(cmds))
	for c := range cmds {
		names = append(names, c)
	}
	sort.Strings(names)
	for _, c := range names {
		if _, err := exec.LookPath(c); err != nil {
			missing = append(missing, c+" (Debian package "+cmds[c]+")")
		}
	}
	if len(missing) > 0 {
		Unmet(t, who+": these tests need "+strings.Join(missing, ", "))
	}
}

// Unmet skips the test with msg, or fails it in CI.
func Unmet(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s; CI=true, so this is a failure, not a skip", msg)
	}
	t.Skip(msg)
}

// NetnsCaps reports whether the effective capabilities allow creating and
// configuring network namespaces: capabilities rather than the uid, because
// uid 0 in a container may lack them.
func NetnsCaps() bool {
	const capNetAdmin, capSysAdmin = 12, 21
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if hex, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			return err == nil && caps&(1<<capNetAdmin) != 0 && caps&(1<<capSysAdmin) != 0
		}
	}
	return false
}
