package wait

import (
	"testing"
	"time"
)

func TestUntil(t *testing.T) {
	n := 0
	if !Until(10*time.Second, func() bool { n++; return n == 3 }) {
		t.Fatal("a condition that comes true is not waited for")
	}
	start := time.Now()
	calls := 0
	if Until(50*time.Millisecond, func() bool { calls++; return false }) {
		t.Fatal("a condition that never holds is reported to hold")
	}
	if took := time.Since(start); took < 50*time.Millisecond || took > 5*time.Second {
		t.Errorf("gave up after %v, want 50 ms", took)
	}
	if calls < 2 {
		t.Errorf("asked %d times, want once more at the deadline", calls)
	}
}
