package lab

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The WANRate limiter is a token bucket filter (tc-tbf) on the egress of
// both ends of the wan veth pair: the nat namespace's wan0 shapes what the
// lan sends (upload), the inet namespace's wan0 what it receives (download,
// shaped on the provider's side as on a real access link). Both directions
// get the full rate; IPv4 and IPv6 share it.
//
//   - Burst: the bucket holds wanBurst worth of the rate, at least
//     wanMinBurst (two full-size frames and more; a smaller bucket would
//     drop every full-size packet). After an idle moment that much passes
//     at veth speed; beyond it packets leave at the rate. A larger bucket
//     would let short transfers beat the rate; a smaller one costs a timer
//     wakeup for every few packets.
//   - Queue: packets waiting for tokens queue for at most wanQueue (tc's
//     "latency"; the byte limit follows from the rate), the rest is tail
//     dropped. Loss-based congestion control fills it up to the drop point
//     again and again during a bulk transfer, hence up to wanQueue of
//     extra delay in that direction. The
//     lab's base round trip is tens of microseconds, so this queue is far
//     more than the bandwidth-delay product: a single TCP flow still reaches
//     the full rate (about 95% of it as TCP payload).
const (
	wanBurst    = time.Millisecond
	wanMinBurst = 4096 // bytes
	wanQueue    = 20 * time.Millisecond
)

// setupWANRate installs the WANRate limiter, if any.
func (l *Lab) setupWANRate() error {
	if l.rate == 0 {
		return nil
	}
	burst := max(uint64(l.rate)/8*uint64(wanBurst)/uint64(time.Second), wanMinBurst)
	for _, ns := range []string{l.NAT, l.Inet} {
		err := run(ns, "", "tc", "qdisc", "replace", "dev", wanIf, "root", "tbf",
			"rate", fmt.Sprintf("%dbit", uint64(l.rate)),
			"burst", strconv.FormatUint(burst, 10), // bytes
			"latency", fmt.Sprintf("%dms", wanQueue.Milliseconds()))
		if err != nil {
			return fmt.Errorf("WANRate: %w", err)
		}
	}
	return nil
}

// rateSpec is a WANRate in bits per second; 0 means unlimited.
type rateSpec uint64

// rateUnits are tc(8)'s rate units (matched case-insensitively, as tc
// does): bits or, with "Bps", bytes per second.
var rateUnits = map[string]float64{
	"": 1, "bit": 1,
	"kbit": 1e3, "mbit": 1e6, "gbit": 1e9, "tbit": 1e12,
	"kibit": 1 << 10, "mibit": 1 << 20, "gibit": 1 << 30, "tibit": 1 << 40,
	"bps": 8, "kbps": 8e3, "mbps": 8e6, "gbps": 8e9, "tbps": 8e12,
	"kibps": 8 << 10, "mibps": 8 << 20, "gibps": 8 << 30, "tibps": 8 << 40,
}

// parseRate reads a tc(8) rate such as "100mbit" or "1gbit". A bare number
// is bits per second, as with tc.
func parseRate(s string) (rateSpec, error) {
	num := strings.TrimRight(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
	scale, ok := rateUnits[strings.ToLower(s[len(num):])]
	if !ok {
		return 0, fmt.Errorf("rate %q: unknown unit %q (want a tc rate such as 100mbit or 1gbit)", s, s[len(num):])
	}
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || !(n > 0) {
		return 0, fmt.Errorf("rate %q: want a positive number and a unit such as 100mbit or 1gbit", s)
	}
	bits := n * scale
	if bits < 8 || bits > 1e13 {
		return 0, fmt.Errorf("rate %q: out of range", s)
	}
	return rateSpec(bits), nil
}
