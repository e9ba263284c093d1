package owlab

import (
	"strings"
	"testing"
)

// The lab boots and its core services answer on ubus.
func TestBoot(t *testing.T) {
	l := Start(t, Options{})
	out := l.Sh("ubus list")
	for _, obj := range []string{"service", "uci", "session"} {
		if !strings.Contains(out, obj) {
			t.Errorf("ubus list lacks %s:\n%s", obj, out)
		}
	}
}
