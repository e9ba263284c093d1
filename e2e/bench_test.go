package e2e

import (
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/lab"
)

// BenchmarkTimeToFirstNotify measures natmap's start to its first notify
// script run in the lab: process start, keep-alive connect, two STUN
// queries (the NAT check), script start.
func BenchmarkTimeToFirstNotify(b *testing.B) {
	l := lab.New(b, lab.FullConePreserve)
	var total time.Duration
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		nm := startNatmap(b, l, bindArgs(l, uint16(41000+i%1000))...)
		nm.waitNotification(1, 15*time.Second)
		total += time.Since(start)
		nm.stop()
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ms/notify")
}
