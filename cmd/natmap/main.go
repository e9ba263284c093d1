// Command natmap opens a port to the internet from behind a full-cone NAT.
// Its command line is the C natmap's; see the README.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/natmap-go/natmap/internal/cli"
	"github.com/natmap-go/natmap/internal/engine"
	"github.com/natmap-go/natmap/internal/logx"
	"github.com/natmap-go/natmap/internal/memtune"
	"github.com/natmap-go/natmap/internal/notify"
	"github.com/natmap-go/natmap/internal/oneproc"
)

// version is set at link time (-X main.version=...).
var version = "dev"

func main() {
	// One processor runs natmap's Go code, as one thread runs the C
	// natmap's: the relay's bytes move in the kernel, and an idle second
	// processor only costs wake-ups (threads started to look for work at
	// every event): 20% more CPU per relayed connection, 7% per datagram,
	// no more throughput (README, Figures). GOMAXPROCS in the environment
	// still decides.
	oneproc.Setup()
	// Routers have 64-128 MiB: a soft memory limit from the RAM (or
	// GOMEMLIMIT), and memory freed after a burst goes back to the kernel
	// within seconds (README, Figures).
	memtune.Limit()
	ctx, stop := context.WithCancel(context.Background())
	go memtune.Trim(ctx)
	code := run(os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "--help" || args[0] == "help") {
		fmt.Fprint(stdout, cli.Usage)
		return 0
	}
	if len(args) == 1 && (args[0] == "--version" || args[0] == "version") {
		fmt.Fprintln(stdout, "natmap", version)
		return 0
	}
	if len(args) > 0 {
		if sub, ok := subcommands[args[0]]; ok {
			return sub(args[1:], stdout, stderr)
		}
	}
	cmd, err := cli.Parse(args)
	if err == nil {
		err = checkCommand(cmd)
	}
	if err != nil {
		fmt.Fprintf(stderr, "natmap: %v\n\n%s\nVersion: %s\n", err, cli.Usage, version)
		return 2
	}
	if cmd.Daemon && !detached() {
		if err := daemonize(); err != nil {
			fmt.Fprintf(stderr, "natmap: run as daemon: %v\n", err)
			return 1
		}
		return 0
	}
	level := logx.Level(os.Getenv("NATMAP_LOG"))
	log := logx.Stderr(stderr, level)
	if cmd.Daemon {
		// Detached, stderr is /dev/null: log to syslog where there is one.
		if sl, err := logx.Syslog("", "", "natmap", level); err == nil {
			log = sl
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	signal.Ignore(syscall.SIGPIPE)

	n := &notify.Notifier{Script: cmd.Mapping.Script, Stdout: stdout, Stderr: stderr, Log: log}
	notifyDone := make(chan struct{})
	go func() { n.Run(ctx); close(notifyDone) }()
	defer func() { stop(); <-notifyDone }()

	log.Info("natmap starting", "version", version, "protocol", cmd.Mapping.Protocol(), "port", cmd.Mapping.Ports.String(),
		"stun", len(cmd.Mapping.STUN), "keepalive", cmd.Mapping.Keepalive)
	for _, w := range cmd.Mapping.Ignored() {
		log.Warn("ignored: " + w)
	}
	onMapping := n.Notify
	if cmd.Mapping.Kernel {
		on, stopKernel, err := kernelForward(ctx, cmd.Mapping, log, n.Notify)
		if err != nil {
			log.Error("natmap not started", "err", err)
			return 1
		}
		defer stopKernel()
		onMapping = on
	}
	engine.New(cmd.Mapping, log, onMapping).Run(ctx)
	log.Info("natmap stopped")
	return 0
}

// checkCommand checks what parsing cannot: the notify script.
func checkCommand(cmd *cli.Command) error {
	if s := cmd.Mapping.Script; s != "" {
		if err := notify.CheckScript(s); err != nil {
			return fmt.Errorf("-e: %w", err)
		}
	}
	return nil
}

// daemonEnv marks the natmap that daemonize started.
const daemonEnv = "NATMAP_DAEMONIZED"

// detached says whether this is the natmap daemonize started. It takes
// the mark out of the environment: notify scripts see what natmap -d was
// given, as with the C natmap.
func detached() bool {
	if os.Getenv(daemonEnv) == "" {
		return false
	}
	os.Unsetenv(daemonEnv)
	return true
}

// daemonize starts this command again in a new session, detached from the
// terminal with its standard files on /dev/null (as daemon(3) does: Go
// cannot fork a running runtime), and returns in the parent.
func daemonize() error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer null.Close()
	attr := &os.ProcAttr{
		Dir:   "/",
		Env:   oneproc.Env(append(os.Environ(), daemonEnv+"=1")),
		Files: []*os.File{null, null, null},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	}
	p, err := os.StartProcess(exe, os.Args, attr)
	if err != nil {
		return errors.Join(errors.New("cannot start the daemon"), err)
	}
	return p.Release()
}
