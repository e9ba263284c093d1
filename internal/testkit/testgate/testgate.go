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

// netnsRoot names the need for network-namespace privileges in Require.
const netnsRoot = "root (CAP_NET_ADMIN and CAP_SYS_ADMIN)"

// Require checks that the test can create network namespaces (when root is
// set) and run each command; cmds maps a command to its Debian package.
func Require(t testing.TB, who string, root bool, cmds map[string]string) {
	t.Helper()
	var missing []string
	if root && !NetnsCaps() {
		missing = append(missing, netnsRoot)
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

// debianPackage names the Debian package of each command Netns knows.
var debianPackage = map[string]string{
	"ip":         "iproute2",
	"nft":        "nftables",
	"iptables":   "iptables",
	"ip6tables":  "iptables",
	"turnserver": "coturn",
	"miniupnpd":  "miniupnpd-nftables",
}

// Netns is Require for a test that builds network namespaces with ip and
// runs cmds, each a command whose Debian package this package knows.
func Netns(t testing.TB, who string, cmds ...string) {
	t.Helper()
	need := map[string]string{"ip": debianPackage["ip"]}
	for _, c := range cmds {
		p, ok := debianPackage[c]
		if !ok {
			t.Fatalf("testgate: no Debian package known for %s: use Require", c)
		}
		need[c] = p
	}
	Require(t, who, true, need)
}

// Root skips the test (fails it in CI) unless it runs as uid 0, for what
// capabilities alone do not allow (changing uid, another user's files);
// why says what needs it.
func Root(t testing.TB, who, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unmet(t, who+": needs root ("+why+")")
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
