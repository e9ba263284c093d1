// Package vmplan is what e2e's MIPS VM benchmarks (BenchmarkDaemonIdleRSSMIPS,
// BenchmarkRelayMIPS) and the MIPS VM's init (internal/testkit/vminit) agree on: where the initramfs puts the
// binaries and the plan, the plan the init follows, and the console lines
// it reports on.
package vmplan

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Paths inside the VM.
const (
	PlanPath = "/etc/vminit.json" // the Plan, as JSON
	GoNatmap = "/bin/natmap"
	CNatmap  = "/bin/natmap-c" // a static C natmap, for the "c" runs
	Notify   = "/notify"       // a symlink to the init: the notify script
)

// UserHZ is the unit of /proc/PID/stat's CPU times (the kernel's USER_HZ,
// 100 on every Linux architecture).
const UserHZ = 100

// Plan is what the init does.
type Plan struct {
	Runs []Run
	// IdleSeconds is how long every mapping idles after its notification
	// before the memory is read (the x86 benchmark's 20 s: one trim).
	IdleSeconds int
	// WaitSeconds bounds the wait for every mapping's notification.
	WaitSeconds int
}

// Run is one measurement: of the idle memory of Mappings mappings, or with
// RelayMiB of the relay's CPU time and throughput.
type Run struct {
	Name     string // the metrics' prefix, e.g. "16mappings"
	Impl     string // "go": one natmap daemon; "c": a C natmap per mapping
	Mappings int
	// RelayMiB makes it a relay run: one natmap (Binary) in forward mode
	// with the C natmap's command line, through which a client on the VM's
	// loopback sends RelayMiB MiB to a sink, then receives as much from it.
	RelayMiB int `json:",omitempty"`
	// Binary is the natmap to run in a relay run (GoNatmap if empty): a
	// benchmark may put several builds into the initramfs.
	Binary string `json:",omitempty"`
}

// Result is what a run's processes hold, summed over them.
type Result struct {
	Run     string  `json:"run"`
	Procs   int     `json:"procs"`
	VmRSS   float64 `json:"vmrss_kib"`
	RssAnon float64 `json:"rssanon_kib"`
	Pss     float64 `json:"pss_kib"`
	Threads float64 `json:"threads"`
	// Touched is what of the memory the processes use while idle: the
	// pages they read or write in 15 s (the kernel's referenced bits,
	// cleared first), as the x86 benchmark's touched-KiB.
	Touched float64 `json:"touched_kib"`
	// Problems are the run's warnings and errors (the Go daemon's log,
	// each message once), to tell a MIPS-only failure from a quiet run.
	Problems []string `json:"problems,omitempty"`
	// Transfers are a relay run's: upload, then download.
	Transfers []Transfer `json:"transfers,omitempty"`
}

// Transfer is what one direction of a relay run took.
type Transfer struct {
	Dir     string  `json:"dir"` // "up": client to sink; "down": sink to client
	MiB     float64 `json:"mib"`
	Seconds float64 `json:"seconds"` // the client's wall time, connect to the last byte
	// UserTicks and SysTicks are natmap's CPU time meanwhile
	// (/proc/PID/stat's utime and stime, in 1/UserHZ s).
	UserTicks int `json:"user_ticks"`
	SysTicks  int `json:"sys_ticks"`
}

// Machine is what the measurements ran on.
type Machine struct {
	Machine  string `json:"uname_m"`
	Release  string `json:"uname_r"`
	CPUModel string `json:"cpu_model"` // /proc/cpuinfo's "cpu model"
	MemTotal string `json:"mem_total"`
}

// Line is one report on the console: one of its fields is set.
type Line struct {
	Machine *Machine `json:"machine,omitempty"`
	Result  *Result  `json:"result,omitempty"`
	Error   string   `json:"error,omitempty"`
	Done    bool     `json:"done,omitempty"` // the last line
}

// prefix starts a Line on the console, among the kernel's messages.
const prefix = "vminit: "

// String is the line as printed (without its newline).
func (l Line) String() string {
	b, _ := json.Marshal(l)
	return prefix + string(b)
}

// Parse reads a console line: ok is false for other lines (the kernel's).
func Parse(s string) (l Line, ok bool, err error) {
	msg, ok := strings.CutPrefix(strings.TrimRight(s, "\r"), prefix)
	if !ok {
		return Line{}, false, nil
	}
	if err := json.Unmarshal([]byte(msg), &l); err != nil {
		return Line{}, true, fmt.Errorf("vminit's line %q: %w", s, err)
	}
	return l, true, nil
}
