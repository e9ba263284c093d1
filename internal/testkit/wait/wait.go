// Package wait polls a condition until it holds or a deadline passes, for
// tests that must wait for something to happen (never a fixed sleep).
package wait

import (
	"testing"
	"time"
)

// Polling starts fast, for conditions that hold within milliseconds, and
// slows down to maxPoll, so a long wait for a slow check (a command run in a
// namespace) does not load a shared machine.
const (
	firstPoll = 5 * time.Millisecond
	maxPoll   = 250 * time.Millisecond
)

// Until polls cond until it returns true, and reports whether it did
// within d. cond is always asked once more at the deadline.
func Until(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for poll := firstPoll; ; poll = min(2*poll, maxPoll) {
		if cond() {
			return true
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		time.Sleep(min(poll, left))
	}
}

// For polls cond until it returns true, failing the test with "timed out
// after d waiting for what" when it does not within d.
func For(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Until(d, cond) {
		t.Fatalf("timed out after %v waiting for %s", d, what)
	}
}
