package lab

import (
	"testing"

	"github.com/natmap-go/natmap/internal/testkit/testgate"
)

// Require skips the test unless the machine can build labs: root (or at
// least CAP_NET_ADMIN and CAP_SYS_ADMIN) and the ip, nft and turnserver
// commands. With CI=true a missing requirement fails the test instead,
// because a skipped e2e test in CI would hide that nothing was tested.
func Require(t testing.TB) {
	t.Helper()
	testgate.Netns(t, "lab", "nft", "turnserver")
}
