package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/natmap-go/natmap/internal/ctl"
	"github.com/natmap-go/natmap/internal/daemon"
	"github.com/natmap-go/natmap/internal/logx"
	"github.com/natmap-go/natmap/internal/notify"
)

const defaultConfig = "/etc/config/natmap"

// subcommands beyond the C natmap's command line.
var subcommands = map[string]func(args []string, stdout, stderr io.Writer) int{
	"daemon":  runDaemon,
	"status":  runStatus,
	"reload":  runReload,
	"restart": runRestart,
	// Run by the firewall's include script after a firewall reload.
	"firewall-sync": runFirewallSync,
	"check":         runCheck,
	// natmap runs every notify script through itself (internal/notify).
	notify.HelperCommand: func(args []string, _, _ io.Writer) int { return notify.HelperMain(args) },
}

func newFlags(name string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("natmap "+name, flag.ContinueOnError)
	socket := fs.String("socket", cmp.Or(os.Getenv("NATMAP_SOCKET"), ctl.DefaultPath), "control socket `path` (default from NATMAP_SOCKET)")
	return fs, socket
}

// runDaemon is `natmap daemon`: every enabled section of the UCI config,
// with the control socket, until SIGTERM; SIGHUP reloads.
func runDaemon(args []string, stdout, stderr io.Writer) int {
	fs, socket := newFlags("daemon")
	cfgPath := fs.String("config", defaultConfig, "UCI config `file`")
	logTo := fs.String("log", "auto", "where logs go: syslog, stderr, or auto (syslog when /dev/log exists)")
	watch := fs.Bool("watch", true, "re-punch mappings when addresses or links change (netlink)")
	fw := fs.Bool("firewall", true, "open the sections' ports in fw4/fw3 (section option firewall)")
	fwConfig := fs.String("firewall-config", "/etc/config/firewall", "firewall UCI `file`, for zones")
	statusDir := fs.String("status-dir", "/var/run/natmap", "`directory` for the stock package's SECTION.json status files (empty: none)")
	usage := func() {
		fmt.Fprintln(stderr, "usage: natmap daemon [--config FILE] [--socket PATH] [--log syslog|stderr|auto] [--watch=false] [--firewall=false] [--firewall-config FILE] [--status-dir DIR]")
	}
	if !parseFlags(fs, args, stderr, usage) || !wantArgs(fs, 0, 0, stderr, usage) {
		return 2
	}
	level := logx.Level(os.Getenv("NATMAP_LOG"))
	log := logx.Stderr(stderr, level)
	if *logTo == "syslog" || *logTo == "auto" {
		if sl, err := logx.Syslog("", "", "natmap", level); err == nil {
			log = sl
		} else if *logTo == "syslog" {
			fmt.Fprintf(stderr, "natmap: syslog: %v\n", err)
			return 1
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	signal.Ignore(syscall.SIGPIPE)
	opts := daemon.ServeOptions{
		Options: daemon.Options{ConfigPath: *cfgPath, Log: log, Firewall: *fw, FirewallConfig: *fwConfig, StatusDir: *statusDir},
		Socket:  *socket, Version: version, Watch: *watch,
	}
	if err := daemon.Serve(ctx, opts); err != nil {
		fmt.Fprintf(stderr, "natmap: %v\n", err)
		return 1
	}
	return 0
}

// call asks the daemon and reports a failure on stderr.
func call(socket string, req ctl.Request, stderr io.Writer) (*ctl.Response, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := ctl.Call(ctx, socket, req)
	if err != nil {
		fmt.Fprintf(stderr, "natmap: %v\n", err)
		return resp, false
	}
	return resp, true
}

func runStatus(args []string, stdout, stderr io.Writer) int {
	fs, socket := newFlags("status")
	asJSON := fs.Bool("json", false, "print JSON (for ubus and scripts)")
	usage := func() { fmt.Fprintln(stderr, "usage: natmap status [--json] [--socket PATH] [SECTION]") }
	if !parseFlags(fs, args, stderr, usage) || !wantArgs(fs, 0, 1, stderr, usage) {
		return 2
	}
	resp, ok := call(*socket, ctl.Request{Cmd: ctl.CmdStatus, Section: fs.Arg(0)}, stderr)
	if !ok {
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "\t")
		if err := enc.Encode(struct {
			Version  string              `json:"version,omitempty"`
			Mappings []ctl.MappingStatus `json:"mappings"`
		}{resp.Version, resp.Mappings}); err != nil {
			return 1
		}
		return 0
	}
	if err := ctl.WriteTable(stdout, resp.Mappings, time.Now()); err != nil {
		return 1
	}
	if fs.Arg(0) != "" && len(resp.Mappings) == 1 {
		if err := ctl.WriteDetail(stdout, resp.Mappings[0], time.Local); err != nil {
			return 1
		}
	}
	return 0
}

func runReload(args []string, stdout, stderr io.Writer) int {
	fs, socket := newFlags("reload")
	usage := func() { fmt.Fprintln(stderr, "usage: natmap reload [--socket PATH]") }
	if !parseFlags(fs, args, stderr, usage) || !wantArgs(fs, 0, 0, stderr, usage) {
		return 2
	}
	if _, ok := call(*socket, ctl.Request{Cmd: ctl.CmdReload}, stderr); !ok {
		return 1
	}
	return 0
}

func runRestart(args []string, stdout, stderr io.Writer) int {
	fs, socket := newFlags("restart")
	usage := func() { fmt.Fprintln(stderr, "usage: natmap restart [--socket PATH] SECTION") }
	if !parseFlags(fs, args, stderr, usage) || !wantArgs(fs, 1, 1, stderr, usage) {
		return 2
	}
	if _, ok := call(*socket, ctl.Request{Cmd: ctl.CmdRestart, Section: fs.Arg(0)}, stderr); !ok {
		return 1
	}
	return 0
}

func runFirewallSync(args []string, stdout, stderr io.Writer) int {
	fs, socket := newFlags("firewall-sync")
	usage := func() { fmt.Fprintln(stderr, "usage: natmap firewall-sync [--socket PATH]") }
	if !parseFlags(fs, args, stderr, usage) || !wantArgs(fs, 0, 0, stderr, usage) {
		return 2
	}
	if _, ok := call(*socket, ctl.Request{Cmd: ctl.CmdFirewallSync}, stderr); !ok {
		return 1
	}
	return 0
}
