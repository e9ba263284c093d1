// Package oneproc runs natmap's Go code on one processor, as one thread
// runs the C natmap's (see cmd/natmap's main for why).
//
// The runtime sets up its processors before main runs: a natmap that
// starts with GOMAXPROCS=1 in its environment has about 0.25 MiB less
// anonymous memory than one that calls runtime.GOMAXPROCS(1) first thing
// in main (on 2 cores; a program doing only that: 0.53 against 0.75 MiB,
// and one more thread).
// So what starts natmap puts GOMAXPROCS=1 in its environment (the init
// script, the daemon for each notify helper, -d), with a mark saying it
// was natmap's doing; Setup then takes both out again, so notify scripts
// and what else natmap starts see the environment natmap was given.
package oneproc

import (
	"os"
	"runtime"
	"slices"
	"strings"
)

const (
	procs = "GOMAXPROCS"
	// Mark is set, to 1, with a GOMAXPROCS=1 that natmap put there.
	Mark = "NATMAP_ONE_PROC"
)

// Setup runs natmap on one processor unless GOMAXPROCS in the environment
// says otherwise; a GOMAXPROCS natmap set itself (Mark) is removed from the
// environment. Call it first in main.
func Setup() {
	if os.Getenv(Mark) != "" {
		os.Unsetenv(Mark)
		os.Unsetenv(procs) // read by the runtime at its start already
		return
	}
	if os.Getenv(procs) == "" {
		runtime.GOMAXPROCS(1)
	}
}

// Env is env for starting a natmap: GOMAXPROCS=1 and Mark are added,
// unless env sets GOMAXPROCS itself (then that decides).
func Env(env []string) []string {
	if slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, procs+"=") }) {
		return env
	}
	return append(slices.Clip(env), procs+"=1", Mark+"=1")
}
