package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/natmap-go/natmap/internal/config"
	"github.com/natmap-go/natmap/internal/engine"
	"github.com/natmap-go/natmap/internal/logx"
	"github.com/natmap-go/natmap/internal/stun"
)

// Exit statuses of natmap check beyond 0 (natmap can work here) and 2
// (usage).
const (
	checkFailed      = 1 // no answer, or too few to tell
	checkNotFullCone = 3 // the NAT is not a full cone: natmap cannot work here
)

// runCheck tells whether the NAT in front of this host is a full cone, the
// one kind through which natmap can open a port: it asks STUN servers what
// they see of one local port and runs RFC 5780's filtering test.
func runCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("natmap check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var m config.Mapping
	fs.BoolVar(&m.UDP, "u", false, "check over UDP (default TCP)")
	fs.BoolVar(&m.IPv6, "6", false, "check IPv6 (default IPv4)")
	iface := fs.String("i", "", "bind to this interface `name` or local address")
	fs.Func("s", "STUN `server` host[:port], repeatable or comma-separated; give two or more", func(s string) error {
		hs, err := config.ParseHostPortList(s, config.DefaultSTUNPort)
		m.STUN = append(m.STUN, hs...)
		return err
	})
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this `long`")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: natmap check [-u] [-6] [-i IFACE] -s SERVER [-s SERVER]...\n\n"+
			"Tells whether the NAT in front of this host is a full cone (NAT-1), through\n"+
			"which natmap can open a port. Exit status: 0 yes (or the filtering could not\n"+
			"be tested), 3 no, 1 no answer or too few to tell, 2 usage.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 || len(m.STUN) == 0 {
		fs.Usage()
		return 2
	}
	if a, err := netip.ParseAddr(*iface); err == nil {
		m.BindAddr = a.Unmap()
	} else {
		m.Device = *iface
	}
	if m.BindAddr.IsValid() && m.BindAddr.Is4() == m.IPv6 {
		fmt.Fprintf(stderr, "natmap check: -i %s is not of the family checked (-6 for IPv6)\n", m.BindAddr)
		return 2
	}
	m.SetDefaults()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	log := logx.Stderr(stderr, logx.Level(os.Getenv("NATMAP_LOG")))
	r, err := engine.CheckNAT(ctx, m, log)
	if r != nil {
		printReport(stdout, &m, r)
	}
	if err != nil {
		fmt.Fprintf(stderr, "natmap check: %v\n", err)
		return checkFailed
	}
	return verdict(stdout, r)
}

func printReport(w io.Writer, m *config.Mapping, r *engine.NATReport) {
	family := "IPv4"
	if m.IPv6 {
		family = "IPv6"
	}
	fmt.Fprintf(w, "%s over %s from local port %d:\n", m.Protocol(), family, r.Local.Port())
	for _, a := range r.Answers {
		if a.Err != nil {
			fmt.Fprintf(w, "  %-24s no answer: %v\n", a.Server, a.Err)
			continue
		}
		fmt.Fprintf(w, "  %-24s saw %s\n", a.Server, a.Public)
	}
}

// verdict prints what the report means for natmap and returns the exit
// status.
func verdict(w io.Writer, r *engine.NATReport) int {
	public, _ := r.Public()
	if local(public.Addr()) {
		fmt.Fprintf(w, "no NAT: %s is this host's own address; open the port in the firewall instead\n", public.Addr())
		return 0
	}
	port := "translated"
	if public.Port() == r.Local.Port() {
		port = "preserved"
	}
	switch r.Mapping {
	case engine.MappingUnknown:
		fmt.Fprintln(w, "mapping:   not checked: only one STUN server answered, two are needed")
		return checkFailed
	case engine.MappingDependent:
		fmt.Fprintln(w, "mapping:   endpoint-dependent: each destination sees another public port")
		fmt.Fprintln(w, "symmetric NAT: nobody outside can use a mapping, natmap cannot open a port here")
		return checkNotFullCone
	}
	fmt.Fprintf(w, "mapping:   endpoint-independent, public port %s\n", port)
	switch r.Filtering {
	case stun.FilteringUnknown:
		fmt.Fprintln(w, "filtering: not tested: no STUN server here answers from a second address (RFC 5780)")
		fmt.Fprintln(w, "natmap can open a port here if the NAT lets anyone in (a full cone); give an RFC 5780 server to be sure")
		return 0
	case stun.EndpointIndependent:
		fmt.Fprintf(w, "filtering: endpoint-independent (tested over UDP with %s)\n", r.FilteringServer)
		fmt.Fprintln(w, "full cone (NAT-1): natmap can open a port here")
		return 0
	}
	fmt.Fprintf(w, "filtering: %s (tested over UDP with %s)\n", r.Filtering, r.FilteringServer)
	fmt.Fprintln(w, "not a full cone: only hosts this one has sent to get in, natmap cannot open a port here")
	return checkNotFullCone
}

// local reports whether a is an address of this host.
func local(a netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, ia := range addrs {
		if p, err := netip.ParsePrefix(ia.String()); err == nil && p.Addr().Unmap() == a.Unmap() {
			return true
		}
	}
	return false
}
