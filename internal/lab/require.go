package lab

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// Require skips the test unless the machine can build labs: root (or at
// least CAP_NET_ADMIN and CAP_SYS_ADMIN) and the ip, nft and turnserver
// commands. With CI=true a missing requirement fails the test instead,
// because a skipped e2e test in CI would hide that nothing was tested.
func Require(t testing.TB) {
	t.Helper()
	var missing []string
	if !hasNetnsCaps() {
		missing = append(missing, "root (CAP_NET_ADMIN and CAP_SYS_ADMIN)")
	}
	for _, cmd := range []struct{ name, pkg string }{
		{"ip", "iproute2"}, {"nft", "nftables"}, {"turnserver", "coturn"},
	} {
		if _, err := exec.LookPath(cmd.name); err != nil {
			missing = append(missing, cmd.name+" (Debian package "+cmd.pkg+")")
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := "lab: network namespace tests need " + strings.Join(missing, ", ")
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s; CI=true, so this is a failure, not a skip", msg)
	}
	t.Skip(msg)
}

// hasNetnsCaps reports whether the effective capabilities allow creating
// and configuring network namespaces. Capabilities rather than the uid,
// because uid 0 in a container may lack them.
func hasNetnsCaps() bool {
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
