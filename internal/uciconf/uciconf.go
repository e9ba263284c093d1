// Package uciconf turns /etc/config/natmap into mappings: every option of
// OpenWrt's stock natmap package keeps its meaning, plus a few extensions
// (stun_server lists and host:port, comment, firewall, upnp, a global
// section).
package uciconf

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/natmap-go/natmap/internal/config"
	"github.com/natmap-go/natmap/internal/portcheck"
	"github.com/natmap-go/natmap/internal/portspec"
	"github.com/natmap-go/natmap/internal/uci"
	"github.com/natmap-go/natmap/internal/updater"
)

// Firewall says whether the daemon opens the bind port in the firewall.
type Firewall string

const (
	FirewallAuto Firewall = ""  // open it when the section's interface is in the wan zone
	FirewallOn   Firewall = "1" // always
	FirewallOff  Firewall = "0" // never
)

// ForwardMode says who forwards a forward-mode section's flows.
type ForwardMode string

const (
	ForwardAuto   ForwardMode = "auto"   // the kernel where it can, else the relay (the default)
	ForwardKernel ForwardMode = "kernel" // the kernel (DNAT), or the section does not run
	ForwardRelay  ForwardMode = "relay"  // natmap's relay, as the stock package
)

// Section is one natmap section, read and checked.
type Section struct {
	Ref       string // the section's name, or @natmap[i] for an anonymous one
	ID        string // the section's name, or libuci's cfgNNHHHH name for an anonymous one
	Comment   string
	Enabled   bool
	Interface string // as written: a logical network (wan) or a device (eth1); the daemon resolves it
	Mapping   config.Mapping
	LogStdout bool // log what the notify script prints on stdout
	LogStderr bool // and on stderr
	Firewall  Firewall
	// ForwardMode (option forward_mode): who forwards in forward mode.
	ForwardMode ForwardMode
	// Updaters are the "config updater" sections its updater list names,
	// in order; a name without a section has Config.Err set.
	Updaters []updater.Config
	Err      error // the section cannot run; says which option is wrong
}

// Config is a whole natmap config file.
type Config struct {
	Sections []Section
	// MemoryLimitMiB (global option memory_limit) is the daemon's soft
	// memory limit in MiB; 0: the default (see package memtune).
	MemoryLimitMiB int
	Warnings       []string // unknown options and the like: logged, not fatal
}

// The memory limits option memory_limit takes, in MiB: under 4 the
// runtime would collect all the time; 0 is the default.
const (
	MinMemoryLimitMiB = 4
	MaxMemoryLimitMiB = 4096
)

// Load reads and translates a config file. A file that cannot be read or
// parsed is an error; a bad section only marks that section (Section.Err).
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	uf, err := uci.Parse(path, f)
	if err != nil {
		return nil, err
	}
	return Translate(uf), nil
}

// defaults are what a "config global" section may set for every mapping.
type defaults struct {
	stun      []config.HostPort
	http      config.HostPort
	interval  time.Duration
	stunCycle int
	script    string
	upnp      config.UPnPMode
	reachURL  string
}

// Translate reads the natmap and global sections of a parsed file.
func Translate(f *uci.File) *Config {
	c := &Config{}
	var def defaults
	for _, s := range f.Typed("global") {
		r := reader{sec: s, cfg: c}
		// Like libuci's merging, a later global section overrides only
		// what it sets.
		if l := r.servers("stun_server", config.DefaultSTUNPort); len(l) > 0 {
			def.stun = l
		}
		if h := r.servers("http_server", config.DefaultHTTPPort); len(h) > 0 {
			def.http = h[0]
		}
		if v := r.seconds("interval"); v > 0 {
			def.interval = v
		}
		if v := int(r.uint("stun_cycle")); v > 0 {
			def.stunCycle = v
		}
		if v := r.str("notify_script"); v != "" {
			def.script = v
		}
		if v := r.upnp(); v != "" {
			def.upnp = v
		}
		if v := r.str("reachability_url"); v != "" {
			_, err := portcheck.ParseURL(v)
			r.fail("reachability_url", err)
			if err == nil {
				def.reachURL = v
			}
		}
		if v := r.str("memory_limit"); v != "" {
			switch n, err := strconv.ParseUint(v, 10, 31); {
			case err != nil:
				r.fail("memory_limit", fmt.Errorf("%q is not a whole number of MiB", v))
			case n != 0 && (n < MinMemoryLimitMiB || n > MaxMemoryLimitMiB):
				r.fail("memory_limit", fmt.Errorf("%d MiB is not within %d and %d (0: the default)", n, MinMemoryLimitMiB, MaxMemoryLimitMiB))
			default:
				c.MemoryLimitMiB = int(n)
			}
		}
		r.unknown(globalOptions)
		if r.err != nil {
			c.Warnings = append(c.Warnings, fmt.Sprintf("section %s: %v (ignored)", s.Ref(), r.err))
		}
	}
	updaters := map[string]updater.Config{}
	for _, s := range f.Typed("updater") {
		updaters[s.Ref()] = updaterConfig(s)
	}
	for _, s := range f.Typed("natmap") {
		c.Sections = append(c.Sections, translate(s, def, c, updaters))
	}
	for _, s := range f.Sections {
		if s.Type != "natmap" && s.Type != "global" && s.Type != "updater" {
			c.Warnings = append(c.Warnings, fmt.Sprintf("section %s: unknown section type %q (ignored)", s.Ref(), s.Type))
		}
	}
	return c
}

var sectionOptions = []string{
	"enable", "family", "udp_mode", "interface", "interval", "stun_cycle", "stun_server",
	"http_server", "fwmark", "port", "port_random", "forward_target", "forward_port",
	"forward_timeout", "forward_congestion", "notify_script", "log_stdout", "log_stderr",
	"comment", "firewall", "forward_mode", "updater", "upnp", "reachability_url",
}

var globalOptions = []string{"stun_server", "http_server", "interval", "stun_cycle", "notify_script", "upnp", "reachability_url", "memory_limit"}

// updaterConfig reads an updater section as it is: package updater checks
// its options when it builds the updater.
func updaterConfig(s *uci.Section) updater.Config {
	u := updater.Config{Name: s.Ref(), Options: map[string][]string{}}
	for _, o := range s.Options {
		if len(o.Values) == 1 && o.Values[0] == "" {
			continue // unset, as libuci reads it
		}
		u.Options[o.Name] = o.Values
	}
	if t := u.Options["type"]; len(t) == 1 {
		u.Type = strings.TrimSpace(t[0])
	}
	return u
}

func translate(s *uci.Section, def defaults, c *Config, updaters map[string]updater.Config) Section {
	r := reader{sec: s, cfg: c}
	sec := Section{Ref: s.Ref(), ID: s.ID}
	m := &sec.Mapping

	sec.Enabled = r.bool("enable", false) // the stock package's default
	sec.Comment = r.str("comment")
	switch fam := r.str("family"); fam {
	case "", "ipv4":
	case "ipv6":
		m.IPv6 = true
	default:
		r.fail("family", fmt.Errorf("%q: want ipv4, ipv6 or empty", fam))
	}
	m.UDP = r.bool("udp_mode", false)
	sec.Interface = r.str("interface")
	m.BindAddr, sec.Interface = config.ParseInterface(sec.Interface) // like -i, an address binds to it
	m.Keepalive = r.seconds("interval")
	if m.Keepalive == 0 {
		m.Keepalive = def.interval
	}
	m.StunCycle = int(r.uint("stun_cycle"))
	if m.StunCycle == 0 {
		m.StunCycle = def.stunCycle
	}
	m.STUN = r.servers("stun_server", config.DefaultSTUNPort)
	if len(m.STUN) == 0 {
		m.STUN = def.stun
	}
	if h := r.servers("http_server", config.DefaultHTTPPort); len(h) > 0 {
		m.HTTP = h[0]
	} else if !m.UDP {
		m.HTTP = def.http
	}
	if v := r.str("fwmark"); v != "" {
		mark, err := config.ParseMark(v)
		r.fail("fwmark", err)
		m.Mark = mark
	}
	if v := r.str("port"); v != "" {
		spec, err := portspec.Parse(v)
		r.fail("port", err)
		if r.bool("port_random", false) && spec.Lo != spec.Hi {
			spec.Random = true
		}
		m.Ports = spec
	}
	m.ForwardTarget = r.str("forward_target")
	// The stock init script passes -p "$forward_port" even when empty,
	// which the C natmap reads as 0: forward to the public port.
	if v := r.str("forward_port"); v != "" {
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil {
			r.fail("forward_port", fmt.Errorf("%q is not a port number", v))
		}
		m.ForwardPort = uint16(n)
		if m.ForwardTarget == "" {
			r.fail("forward_port", errors.New("set without forward_target"))
		}
	}
	m.ForwardTimeout = r.seconds("forward_timeout")
	m.Congestion = r.str("forward_congestion")
	m.ReachabilityURL = r.str("reachability_url")
	if m.ReachabilityURL == "" {
		m.ReachabilityURL = def.reachURL
	}
	m.Script = r.str("notify_script")
	if m.Script == "" {
		m.Script = def.script
	}
	sec.LogStdout = r.bool("log_stdout", true)
	sec.LogStderr = r.bool("log_stderr", true)
	switch fw := r.str("firewall"); fw {
	case "":
	case "1", "0":
		sec.Firewall = Firewall(fw)
	default:
		if b, ok := parseBool(fw); ok {
			sec.Firewall = FirewallOff
			if b {
				sec.Firewall = FirewallOn
			}
		} else {
			r.fail("firewall", fmt.Errorf("%q: want 1, 0 or empty (automatic)", fw))
		}
	}
	switch fm := ForwardMode(r.str("forward_mode")); fm {
	case "":
		sec.ForwardMode = ForwardAuto
	case ForwardAuto, ForwardKernel, ForwardRelay:
		sec.ForwardMode = fm
	default:
		r.fail("forward_mode", fmt.Errorf("%q: want auto, kernel or relay", fm))
	}
	if o, ok := s.Get("updater"); ok {
		for _, name := range o.Values {
			if name = strings.TrimSpace(name); name == "" {
				continue
			}
			u, ok := updaters[name]
			if !ok {
				u = updater.Config{Name: name, Err: fmt.Sprintf("updater %s: no \"config updater '%s'\" section", name, name)}
			}
			sec.Updaters = append(sec.Updaters, u)
		}
	}
	// Unlike the command line, a section asks the router in front unless
	// told not to.
	m.UPnP = r.upnp()
	if m.UPnP == "" {
		m.UPnP = def.upnp
	}
	if m.UPnP == "" {
		m.UPnP = config.UPnPAuto
	}
	r.unknown(sectionOptions)

	if r.err == nil {
		if err := m.Validate(); err != nil {
			r.err = config.Word(err, optionName)
		}
	}
	m.SetDefaults()
	sec.Err = r.err
	return sec
}

// optionName names the option that sets a field.
func optionName(f config.Field) string {
	switch f {
	case config.FieldSTUN:
		return "option stun_server"
	case config.FieldHTTP:
		return "option http_server"
	}
	return ""
}

// reader reads one section's options, remembering the first error.
type reader struct {
	sec *uci.Section
	cfg *Config
	err error
}

func (r *reader) fail(opt string, err error) {
	if err != nil && r.err == nil {
		r.err = fmt.Errorf("option %s: %w", opt, err)
	}
}

// str is an option's value; "" when unset. A list where an option is
// expected is an error.
func (r *reader) str(name string) string {
	o, ok := r.sec.Get(name)
	if !ok {
		return ""
	}
	if o.List {
		r.fail(name, errors.New("is a list, want a single value"))
		return ""
	}
	return strings.TrimSpace(o.Values[0])
}

func (r *reader) bool(name string, def bool) bool {
	v := r.str(name)
	if v == "" {
		return def
	}
	b, ok := parseBool(v)
	if !ok {
		r.fail(name, fmt.Errorf("%q is not a boolean (1/0, yes/no, on/off, true/false)", v))
	}
	return b
}

// parseBool reads UCI booleans as OpenWrt's config_get_bool does.
func parseBool(v string) (bool, bool) {
	switch strings.ToLower(v) {
	case "1", "yes", "on", "true", "enabled":
		return true, true
	case "0", "no", "off", "false", "disabled":
		return false, true
	}
	return false, false
}

// upnp reads option upnp: auto, 1 or 0 (or another boolean); "" when
// unset.
func (r *reader) upnp() config.UPnPMode {
	v := r.str("upnp")
	if v == "" {
		return ""
	}
	mode, err := config.ParseUPnPMode(v)
	r.fail("upnp", err)
	return mode
}

func (r *reader) uint(name string) uint64 {
	v := r.str(name)
	if v == "" {
		return 0
	}
	n, err := strconv.ParseUint(v, 10, 31)
	if err != nil {
		r.fail(name, fmt.Errorf("%q is not a whole number", v))
	}
	return n
}

func (r *reader) seconds(name string) time.Duration {
	return time.Duration(r.uint(name)) * time.Second
}

// servers reads an option or a list of servers, each "host[:port]", or
// comma-separated in one value.
func (r *reader) servers(name string, defPort uint16) []config.HostPort {
	o, ok := r.sec.Get(name)
	if !ok {
		return nil
	}
	var out []config.HostPort
	for _, v := range o.Values {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		hs, err := config.ParseHostPortList(v, defPort)
		r.fail(name, err)
		out = append(out, hs...)
	}
	return out
}

// unknown warns about options this natmap does not know: a typo must not
// pass silently, but must not stop a mapping either.
func (r *reader) unknown(known []string) {
	for _, o := range r.sec.Options {
		if !slices.Contains(known, o.Name) {
			r.cfg.Warnings = append(r.cfg.Warnings, fmt.Sprintf("section %s: unknown option %q (ignored)", r.sec.Ref(), o.Name))
		}
	}
}
