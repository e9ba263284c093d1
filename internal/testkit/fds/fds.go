// Package fds counts a process's open file descriptors from /proc, for tests
// that prove nothing leaks.
package fds

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// Count returns how many descriptors this process has open, not counting
// the one Count itself opens to read them.
func Count(t testing.TB) int {
	t.Helper()
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("fds: %v", err)
	}
	return len(es) - 1
}

// Kinds is a process's open descriptors by what they are.
type Kinds struct {
	Sockets, Pipes, Other int
}

// Of counts process pid's open descriptors by kind.
func Of(t testing.TB, pid int) Kinds {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("fds: %v", err)
	}
	var k Kinds
	for _, e := range es {
		target, _ := os.Readlink(dir + "/" + e.Name())
		switch {
		case strings.HasPrefix(target, "socket:"):
			k.Sockets++
		case strings.HasPrefix(target, "pipe:"):
			k.Pipes++
		default:
			k.Other++
		}
	}
	return k
}
