package ctl

import (
	"strings"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/mapping"
)

// Each mapped section's reachability verdict follows the table, one line
// each; a section not mapped has none worth showing.
func TestWriteTableReach(t *testing.T) {
	now := time.Unix(1700000000, 0)
	ms := []MappingStatus{{
		Section: "web", State: mapping.Mapped, Protocol: "tcp", Mode: "bind", PublicIP: "198.51.100.1", PublicPort: 8080,
		Reach: &Reach{State: "reachable", Method: "port-check", Summary: "reachable (verified 15:04, port-check)"},
	}, {
		Section: "game", State: mapping.Mapped, Protocol: "udp", Mode: "bind", PublicIP: "198.51.100.1", PublicPort: 3074,
		Reach: &Reach{State: "unreachable", Summary: "NOT reachable from outside: the port checker\ncould not reach it"},
	}, {
		Section: "gone", State: mapping.Retrying, Protocol: "tcp", Mode: "bind",
		Reach: &Reach{State: "reachable", Summary: "reachable (verified 15:00, hairpin)"},
	}, {
		Section: "new", State: mapping.Mapped, Protocol: "tcp", Mode: "bind",
	}}
	var b strings.Builder
	if err := WriteTable(&b, ms, now); err != nil {
		t.Fatal(err)
	}
	_, tail, _ := strings.Cut(b.String(), "new ")
	_, tail, _ = strings.Cut(tail, "\n")
	want := "web: reachable (verified 15:04, port-check)\ngame: NOT reachable from outside: the port checker could not reach it\n"
	if tail != want {
		t.Errorf("after the table:\n%s\nwant:\n%s", tail, want)
	}
}
