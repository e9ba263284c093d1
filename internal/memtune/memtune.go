// Package memtune fits the Go runtime's memory use to a small router: a
// soft memory limit from the machine's RAM, and freed memory handed back to
// the kernel soon after a burst (a thousand connections that closed).
package memtune

import (
	"context"
	"os"
	"runtime/debug"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// minLimit and maxLimit bound the automatic memory limit: natmap
	// needs a few MiB even with thousands of connections; above the limit
	// the collector works harder, it never fails an allocation.
	minLimit = 8 << 20
	maxLimit = 64 << 20

	// trimEvery is how often Trim gives memory back.
	trimEvery = 15 * time.Second
)

// Limit sets the runtime's soft memory limit to an eighth of the RAM
// (within 8 and 64 MiB) and returns it; GOMEMLIMIT in the environment
// decides instead (0 returned).
func Limit() int64 {
	limit, _ := LimitTo(0)
	return limit
}

// Where a memory limit came from.
const (
	FromRAM    = "ram"        // an eighth of the RAM, within 8 and 64 MiB
	FromConfig = "config"     // LimitTo's mib (option memory_limit)
	FromEnv    = "GOMEMLIMIT" // the environment's, which always decides
)

// LimitTo sets the runtime's soft memory limit to mib MiB, or with mib 0
// to Limit's default, and returns it and where it came from; GOMEMLIMIT
// in the environment decides instead (0 and FromEnv returned).
func LimitTo(mib int) (int64, string) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return 0, FromEnv
	}
	if mib > 0 {
		limit := int64(mib) << 20
		debug.SetMemoryLimit(limit)
		return limit, FromConfig
	}
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return 0, FromRAM
	}
	limit := forRAM(uint64(si.Totalram) * uint64(si.Unit))
	debug.SetMemoryLimit(limit)
	return limit, FromRAM
}

// forRAM is the memory limit for a machine with ram bytes.
func forRAM(ram uint64) int64 {
	return int64(min(max(ram/8, minLimit), maxLimit))
}

// Trim gives freed memory back to the kernel until ctx ends: every 15 s
// it collects and returns what is free at once. The runtime alone collects
// only when the heap grows (or every two minutes) and returns free pages
// slowly, so after a burst (a thousand connections that closed) natmap
// would stay near its peak for minutes. Which objects died is known only
// after a collection, so Trim does not guess: a collection of natmap's few
// MiB of heap costs about a millisecond.
func Trim(ctx context.Context) {
	t := time.NewTicker(trimEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			debug.FreeOSMemory()
		}
	}
}
