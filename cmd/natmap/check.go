package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/natmap-go/natmap/internal/config"
	"github.com/natmap-go/natmap/internal/ctl"
	"github.com/natmap-go/natmap/internal/engine"
	"github.com/natmap-go/natmap/internal/logx"
	"github.com/natmap-go/natmap/internal/mapping"
	"github.com/natmap-go/natmap/internal/portcheck"
	"github.com/natmap-go/natmap/internal/portmap"
	"github.com/natmap-go/natmap/internal/sockopt"
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
	var m config.Mapping
	fs.BoolVar(&m.UDP, "u", false, "check over UDP (default TCP)")
	fs.BoolVar(&m.IPv6, "6", false, "check IPv6 (default IPv4)")
	iface := fs.String("i", "", "bind to this interface `name` or local address")
	fs.Func("s", "STUN `server` host[:port], repeatable or comma-separated; give two or more", func(s string) error {
		hs, err := config.ParseHostPortList(s, config.DefaultSTUNPort)
		m.STUN = append(m.STUN, hs...)
		return err
	})
	fs.StringVar(&m.ReachabilityURL, "reachability-url", "", "also ask this port checker (http(s)://HOST[:PORT]/PATH with {ip} {port} {proto}, answering 1 or 0) whether the port is reachable")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this `long`")
	asJSON := fs.Bool("json", false, "print the report as JSON (for ubus and scripts); same exit status")
	usage := func() {
		fmt.Fprint(stderr, "Usage: natmap check [-u] [-6] [-i IFACE] [--json] [--timeout D] -s SERVER [-s SERVER]...\n\n"+
			"Tells whether the NAT in front of this host is a full cone (NAT-1), through\n"+
			"which natmap can open a port. Exit status: 0 yes (or the filtering could not\n"+
			"be tested), 3 no, 1 no answer or too few to tell, 2 usage.\n\n")
		fs.SetOutput(stderr)
		fs.PrintDefaults()
	}
	if !parseFlags(fs, args, stderr, usage) || !wantArgs(fs, 0, 0, stderr, usage) {
		return 2
	}
	if len(m.STUN) == 0 {
		fmt.Fprintln(stderr, "natmap check: a STUN server is required (-s)")
		usage()
		return 2
	}
	m.BindAddr, m.Device = config.ParseInterface(*iface)
	if m.ReachabilityURL != "" {
		if _, err := portcheck.ParseURL(m.ReachabilityURL); err != nil {
			fmt.Fprintf(stderr, "natmap check: --reachability-url: %v\n", err)
			return 2
		}
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
	frontDone := make(chan *frontReport, 1)
	go func() { frontDone <- checkFront(ctx, &m) }()
	r, err := engine.CheckNAT(ctx, m, log)
	front := <-frontDone
	if front != nil && r != nil {
		front.judge(r)
	}
	if *asJSON {
		res := checkJSON(&m, r, err, local)
		res.Front = front
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "\t")
		enc.SetEscapeHTML(false)
		if encErr := enc.Encode(res); encErr != nil {
			return checkFailed
		}
		return res.ExitStatus
	}
	if r != nil {
		printReport(stdout, &m, r)
	}
	if err != nil {
		fmt.Fprintf(stderr, "natmap check: %v\n", err)
		return checkFailed
	}
	j := engine.Judge(r, local)
	for _, l := range j.Lines {
		fmt.Fprintln(stdout, l)
	}
	printFront(stdout, front)
	return exitStatus(j)
}

// frontReport is what natmap check found out about the router in front:
// the default gateway is a private address, a router natmap can ask to
// forward the port.
type frontReport struct {
	Gateway string       `json:"gateway"`
	Offers  []frontOffer `json:"offers"` // pcp, nat-pmp, upnp
	// External: the router's external address, as it says (NAT-PMP,
	// UPnP). DoubleNAT: it differs from the public address STUN saw, or
	// is private: another NAT is in front of the router.
	External  string `json:"external_ip,omitempty"`
	DoubleNAT bool   `json:"double_nat"`
	// SecondHop: the router after the gateway (its ICMP time exceeded to
	// a datagram with TTL 2); a private address means a double NAT.
	SecondHop string `json:"second_hop,omitempty"`
}

type frontOffer struct {
	Method  string `json:"method"`
	Offered bool   `json:"offered"`
	Detail  string `json:"detail,omitempty"`
	Error   string `json:"error,omitempty"`
}

// judge compares the router's external address with the public one.
func (f *frontReport) judge(r *engine.NATReport) {
	if hop, err := netip.ParseAddr(f.SecondHop); err == nil && (hop.IsPrivate() || hop.IsLoopback()) {
		f.DoubleNAT = true
	}
	public, ok := r.Public()
	ext, err := netip.ParseAddr(f.External)
	if !ok || err != nil {
		return
	}
	f.DoubleNAT = f.DoubleNAT || ext != public.Addr() || ext.IsPrivate()
}

// checkFront asks the default gateway, when it is a private IPv4 address
// (a router in front: a double NAT), which of PCP, NAT-PMP and UPnP IGD it
// answers; nil when there is no such router.
func checkFront(ctx context.Context, m *config.Mapping) *frontReport {
	if m.IPv6 {
		return nil
	}
	gw, _, err := portmap.DefaultGateway(m.Device)
	if err != nil || portmap.CheckGateway(gw) != nil {
		return nil
	}
	opts := portmap.Options{Control: sockopt.Options{Device: m.Device}.Control, Timeout: 2 * time.Second}
	ip := m.BindAddr
	if !ip.IsValid() {
		if ip, err = portmap.LocalAddr(ctx, gw, opts); err != nil {
			return &frontReport{Gateway: gw.String()}
		}
	}
	rep := &frontReport{Gateway: gw.String(), Offers: []frontOffer{}}
	if len(m.STUN) > 0 {
		if a, err := net.DefaultResolver.LookupNetIP(ctx, "ip4", m.STUN[0].Host); err == nil && len(a) > 0 {
			if hop, err := portmap.SecondHop(ctx, netip.AddrPortFrom(a[0].Unmap(), m.STUN[0].Port), opts); err == nil {
				rep.SecondHop = hop.String()
			}
		}
	}
	for _, o := range portmap.Probe(ctx, gw, ip, opts) {
		fo := frontOffer{Method: o.Method, Offered: o.Err == nil, Detail: o.Detail}
		if o.Err != nil {
			fo.Error = o.Err.Error()
		}
		if o.External.IsValid() && rep.External == "" {
			rep.External = o.External.String()
		}
		rep.Offers = append(rep.Offers, fo)
	}
	return rep
}

func printFront(w io.Writer, f *frontReport) {
	if f == nil {
		return
	}
	switch {
	case f.DoubleNAT && f.SecondHop != "":
		fmt.Fprintf(w, "double NAT: the router in front (gateway %s) is behind %s, a private address\n", f.Gateway, f.SecondHop)
	case f.DoubleNAT:
		fmt.Fprintf(w, "double NAT: the router in front (gateway %s) has the external address %s, another NAT is in front of it\n", f.Gateway, f.External)
	case f.External != "":
		fmt.Fprintf(w, "router in front: gateway %s, external address %s\n", f.Gateway, f.External)
	default:
		fmt.Fprintf(w, "router in front: gateway %s (a private address)\n", f.Gateway)
	}
	var offered []string
	for _, o := range f.Offers {
		if o.Offered {
			offered = append(offered, o.Method)
			fmt.Fprintf(w, "  %-8s offered %s\n", o.Method, o.Detail)
			continue
		}
		fmt.Fprintf(w, "  %-8s no: %s\n", o.Method, strings.ReplaceAll(o.Error, "\n", "; "))
	}
	if len(offered) > 0 {
		fmt.Fprintf(w, "natmap --upnp auto|on (UCI: option upnp, auto by default) asks it to forward the port, with %s\n", offered[0])
	} else {
		fmt.Fprintln(w, "it offers no way to forward a port (PCP, NAT-PMP, UPnP IGD): forward the port on it by hand, or put it in bridge mode")
	}
}

func family(m *config.Mapping) string {
	if m.IPv6 {
		return "IPv6"
	}
	return "IPv4"
}

func printReport(w io.Writer, m *config.Mapping, r *engine.NATReport) {
	fmt.Fprintf(w, "%s over %s from local port %d:\n", m.Protocol(), family(m), r.Local.Port())
	printAnswers(w, r.Answers)
	if r.Recheck != nil {
		fmt.Fprintf(w, "again from local port %d:\n", r.Recheck.Local.Port())
		printAnswers(w, r.Recheck.Answers)
	}
}

func printAnswers(w io.Writer, answers []engine.STUNAnswer) {
	for _, a := range answers {
		if a.Err != nil {
			fmt.Fprintf(w, "  %-24s no answer: %v\n", a.Server, a.Err)
			continue
		}
		fmt.Fprintf(w, "  %-24s saw %s\n", a.Server, a.Public)
	}
}

// exitStatus is natmap check's exit status for a judgement.
func exitStatus(j engine.Judgement) int {
	switch {
	case j.Verdict == engine.VerdictNotFullCone || j.Unreachable:
		return checkNotFullCone
	case j.Verdict == engine.VerdictUnknown:
		return checkFailed
	}
	return 0
}

// checkResult is natmap check --json's report.
type checkResult struct {
	Protocol  string `json:"protocol"` // "tcp" or "udp"
	Family    string `json:"family"`   // "ipv4" or "ipv6"
	LocalPort uint16 `json:"local_port,omitempty"`
	// Answers: each server asked, in order: what it saw, or its error.
	Answers []checkAnswer `json:"answers"`
	// Recheck: two servers asked again from a second local port, when
	// the answers agreed (a symmetric NAT can agree by chance).
	Recheck *checkRecheck `json:"recheck,omitempty"`
	// PublicIP, PublicPort: what the first server that answered saw.
	PublicIP   string `json:"public_ip,omitempty"`
	PublicPort uint16 `json:"public_port,omitempty"`
	// PortPreserved: the public port is the local port.
	PortPreserved bool `json:"port_preserved"`
	// Mapping: "endpoint-independent", "endpoint-dependent" or "unknown".
	Mapping string `json:"mapping"`
	// Filtering: "endpoint-independent", "address-dependent",
	// "address-and-port-dependent" or "unknown" (not tested);
	// FilteringServer is the server that tested it.
	Filtering       string `json:"filtering"`
	FilteringServer string `json:"filtering_server,omitempty"`
	// NAT: as in natmap status; absent when not known.
	NAT mapping.NAT `json:"nat,omitempty"`
	// Reach: whether an outside host reached the checked port, as in
	// natmap status; absent when not checked (a symmetric NAT).
	Reach      *ctl.Reach     `json:"reach,omitempty"`
	Verdict    engine.Verdict `json:"verdict"`
	Summary    string         `json:"summary"`
	Error      string         `json:"error,omitempty"`
	ExitStatus int            `json:"exit_status"`
	// Front: a router in front (the gateway is a private address: a
	// double NAT) and which protocols it offers; absent when none.
	Front *frontReport `json:"front,omitempty"`
}

type checkRecheck struct {
	LocalPort uint16        `json:"local_port"`
	Answers   []checkAnswer `json:"answers"`
}

type checkAnswer struct {
	Server     string `json:"server"`
	PublicIP   string `json:"public_ip,omitempty"`
	PublicPort uint16 `json:"public_port,omitempty"`
	Error      string `json:"error,omitempty"`
}

// checkJSON builds the JSON report of CheckNAT's result: r may be nil and
// err set.
func checkJSON(m *config.Mapping, r *engine.NATReport, err error, isLocal func(netip.Addr) bool) *checkResult {
	res := &checkResult{
		Protocol: m.Protocol(), Family: strings.ToLower(family(m)),
		Answers: []checkAnswer{}, Mapping: "unknown", Filtering: "unknown",
	}
	if r != nil {
		res.LocalPort = r.Local.Port()
		res.Answers = jsonAnswers(r.Answers)
		if r.Recheck != nil {
			res.Recheck = &checkRecheck{LocalPort: r.Recheck.Local.Port(), Answers: jsonAnswers(r.Recheck.Answers)}
		}
		if p, ok := r.Public(); ok {
			res.PublicIP, res.PublicPort = p.Addr().String(), p.Port()
			res.PortPreserved = p.Port() == r.Local.Port()
		}
		switch r.Mapping {
		case engine.MappingIndependent:
			res.Mapping = "endpoint-independent"
		case engine.MappingDependent:
			res.Mapping = "endpoint-dependent"
		}
		switch r.Filtering {
		case stun.EndpointIndependent:
			res.Filtering = "endpoint-independent"
		case stun.AddressDependent:
			res.Filtering = "address-dependent"
		case stun.AddressPortDependent:
			res.Filtering = "address-and-port-dependent"
		}
		res.FilteringServer = r.FilteringServer
	}
	if err != nil || r == nil {
		if err == nil {
			err = errors.New("no report")
		}
		res.Verdict, res.Summary, res.Error, res.ExitStatus = engine.VerdictUnknown, err.Error(), err.Error(), checkFailed
		return res
	}
	j := engine.Judge(r, isLocal)
	res.Verdict, res.Summary, res.NAT, res.ExitStatus = j.Verdict, j.Summary, j.NAT, exitStatus(j)
	if rr := r.Reach; rr.State != "" && j.Verdict != engine.VerdictNoNAT {
		res.Reach = ctl.NewReach(string(rr.State), rr.Method, rr.Detail, rr.Summary(), rr.Checked, rr.Verified)
	}
	return res
}

func jsonAnswers(answers []engine.STUNAnswer) []checkAnswer {
	res := []checkAnswer{}
	for _, a := range answers {
		ca := checkAnswer{Server: a.Server}
		if a.Err != nil {
			ca.Error = a.Err.Error()
		} else {
			ca.PublicIP, ca.PublicPort = a.Public.Addr().String(), a.Public.Port()
		}
		res = append(res, ca)
	}
	return res
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
