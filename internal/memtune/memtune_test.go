package memtune

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestForRAM(t *testing.T) {
	for _, c := range []struct {
		ram  uint64
		want int64
	}{
		{32 << 20, 8 << 20},
		{64 << 20, 8 << 20},
		{128 << 20, 16 << 20},
		{256 << 20, 32 << 20},
		{4 << 30, 64 << 20},
	} {
		if got := forRAM(c.ram); got != c.want {
			t.Errorf("forRAM(%d MiB) = %d MiB, want %d MiB", c.ram>>20, got>>20, c.want>>20)
		}
	}
}

func TestLimitFollowsEnvironment(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(old)
	t.Setenv("GOMEMLIMIT", "")
	if got := Limit(); got < minLimit || got > maxLimit || debug.SetMemoryLimit(-1) != got {
		t.Errorf("Limit() = %d, runtime limit %d; want one within [%d, %d]", got, debug.SetMemoryLimit(-1), minLimit, maxLimit)
	}
	debug.SetMemoryLimit(old)
	t.Setenv("GOMEMLIMIT", "100MiB")
	if got := Limit(); got != 0 || debug.SetMemoryLimit(-1) != old {
		t.Errorf("with GOMEMLIMIT set, Limit() = %d and changed the limit", got)
	}
}

var sink [][]byte

// TestTrimReturnsFreedMemory: after a burst of garbage, Trim gives the
// freed heap back without any allocation to trigger a collection.
func TestTrimReturnsFreedMemory(t *testing.T) {
	released := func() uint64 {
		s := []metrics.Sample{{Name: "/memory/classes/heap/released:bytes"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	for range 2000 {
		sink = append(sink, make([]byte, 8<<10))
	}
	sink = nil
	before := released()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { Trim(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(2 * trimEvery)
	for released() < before+8<<20 { // (of the 16 MiB freed)
		if time.Now().After(deadline) {
			t.Fatalf("released %d KiB more within %v, want 8 MiB", (released()-before)>>10, 2*trimEvery)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestLimitTo(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(old)
	t.Setenv("GOMEMLIMIT", "")
	if got, from := LimitTo(12); got != 12<<20 || from != FromConfig || debug.SetMemoryLimit(-1) != 12<<20 {
		t.Errorf("LimitTo(12) = %d, %s; runtime limit %d", got, from, debug.SetMemoryLimit(-1))
	}
	if got, from := LimitTo(0); got < minLimit || got > maxLimit || from != FromRAM || debug.SetMemoryLimit(-1) != got {
		t.Errorf("LimitTo(0) = %d, %s; runtime limit %d", got, from, debug.SetMemoryLimit(-1))
	}
	t.Setenv("GOMEMLIMIT", "100MiB")
	before := debug.SetMemoryLimit(-1)
	if got, from := LimitTo(12); got != 0 || from != FromEnv || debug.SetMemoryLimit(-1) != before {
		t.Errorf("with GOMEMLIMIT set, LimitTo(12) = %d, %s and changed the limit", got, from)
	}
}
