package firewall

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// noExec fails the test when a command would run.
func noExec(t *testing.T) Exec {
	return func(ctx context.Context, name string, args ...string) ([]byte, error) {
		t.Errorf("ran %s %v", name, args)
		return nil, errors.New("no commands here")
	}
}

func TestValidate(t *testing.T) {
	ok := Rule{Section: "ssh", Zone: "wan", Proto: "tcp", Port: 22222}
	for _, r := range []Rule{
		ok,
		{Section: "@natmap[0]", Zone: "wan6", Proto: "udp", Port: 1, IPv6: true},
		{Section: "web-1.x_Y", Zone: "lan_2.b-c", Proto: "tcp", Port: 65535},
		{Section: strings.Repeat("s", 64), Zone: "wan", Proto: "tcp", Port: 80},
	} {
		if err := r.validate(); err != nil {
			t.Errorf("%v: %v", r, err)
		}
	}
	with := func(f func(*Rule)) Rule { r := ok; f(&r); return r }
	for _, tc := range []struct {
		r    Rule
		want string
	}{
		{with(func(r *Rule) { r.Section = "" }), "empty section"},
		{with(func(r *Rule) { r.Section = `a"b` }), `character '"'`},
		{with(func(r *Rule) { r.Section = "a b" }), "character ' '"},
		{with(func(r *Rule) { r.Section = "a;b" }), "character ';'"},
		{with(func(r *Rule) { r.Section = "a\nb" }), `character '\n'`},
		{with(func(r *Rule) { r.Section = "é" }), "character 'é'"},
		{with(func(r *Rule) { r.Section = strings.Repeat("s", 65) }), "longer than 64"},
		{with(func(r *Rule) { r.Zone = "" }), "empty zone"},
		{with(func(r *Rule) { r.Zone = "@zone[0]" }), "zone name"},
		{with(func(r *Rule) { r.Zone = "wan/x" }), "zone name"},
		{with(func(r *Rule) { r.Zone = "-j" }), ""}, // harmless in a chain name
		{with(func(r *Rule) { r.Proto = "icmp" }), "want tcp or udp"},
		{with(func(r *Rule) { r.Proto = "" }), "want tcp or udp"},
		{with(func(r *Rule) { r.Port = 0 }), "port 0"},
	} {
		err := tc.r.validate()
		if tc.want == "" {
			if err != nil {
				t.Errorf("%+v: %v", tc.r, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error with %q", tc.r, err, tc.want)
		}
		// Nothing invalid reaches a command.
		for _, b := range []Backend{NewFW4(noExec(t)), NewFW3(noExec(t))} {
			if err := b.Add(context.Background(), tc.r); err == nil {
				t.Errorf("%s: Add %+v: no error", b.Name(), tc.r)
			}
		}
		if err := Sync(context.Background(), &fakeBackend{}, []Rule{ok, tc.r}); err == nil {
			t.Errorf("Sync with %+v: no error", tc.r)
		}
	}
}

// fw4JSON is `nft -j list table inet fw4` (nft 1.0.6, cut short) with
// natmap's rules, a tagged rule outside a zone chain, a tagged rule of
// another shape, and fw4's own rules.
const fw4JSON = `{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
{"table": {"family": "inet", "name": "fw4", "handle": 1}},
{"chain": {"family": "inet", "table": "fw4", "name": "input", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}},
{"chain": {"family": "inet", "table": "fw4", "name": "input_wan", "handle": 3}},
{"rule": {"family": "inet", "table": "fw4", "chain": "input", "handle": 18, "comment": "natmap:lost", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 7000}}, {"accept": null}]}},
{"rule": {"family": "inet", "table": "fw4", "chain": "input", "handle": 5, "comment": "!fw4: Accept traffic from loopback", "expr": [{"match": {"op": "==", "left": {"meta": {"key": "iif"}}, "right": "lo"}}, {"accept": null}]}},
{"rule": {"family": "inet", "table": "fw4", "chain": "input", "handle": 7, "comment": "!fw4: Handle inbound flows", "expr": [{"vmap": {"key": {"ct": {"key": "state"}}, "data": {"set": [["established", {"accept": null}], ["related", {"accept": null}]]}}}]}},
{"rule": {"family": "inet", "table": "fw4", "chain": "input", "handle": 9, "expr": [{"jump": {"target": "handle_reject"}}]}},
{"rule": {"family": "inet", "table": "fw4", "chain": "input_wan", "handle": 19, "comment": "natmap:inet", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 7001}}, {"counter": {"packets": 0, "bytes": 0}}, {"accept": null}]}},
{"rule": {"family": "inet", "table": "fw4", "chain": "input_wan", "handle": 17, "comment": "natmap:x", "expr": [{"match": {"op": "==", "left": {"meta": {"key": "nfproto"}}, "right": "ipv6"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 8080}}, {"counter": {"packets": 0, "bytes": 0}}, {"accept": null}]}},
{"rule": {"family": "inet", "table": "fw4", "chain": "input_wan", "handle": 16, "comment": "natmap:@natmap[0]", "expr": [{"match": {"op": "==", "left": {"meta": {"key": "nfproto"}}, "right": "ipv4"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 8080}}, {"counter": {"packets": 0, "bytes": 0}}, {"accept": null}]}},
{"rule": {"family": "inet", "table": "fw4", "chain": "input_wan", "handle": 12, "comment": "!fw4: Allow-DHCP-Renew", "expr": [{"match": {"op": "==", "left": {"meta": {"key": "nfproto"}}, "right": "ipv4"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 68}}, {"counter": {"packets": 0, "bytes": 0}}, {"accept": null}]}},
{"rule": {"family": "inet", "table": "fw4", "chain": "input_wan", "handle": 14, "expr": [{"jump": {"target": "reject_from_wan"}}]}},
{"rule": {"family": "inet", "table": "fw4", "chain": "input_wan", "handle": 20, "comment": "natmap:late", "expr": [{"match": {"op": "==", "left": {"meta": {"key": "nfproto"}}, "right": "ipv4"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 9000}}, {"accept": null}]}}
]}`

func TestParseFW4(t *testing.T) {
	rules, chains, err := parseFW4([]byte(fw4JSON))
	if err != nil {
		t.Fatal(err)
	}
	want := []Rule{
		{Section: "lost", Port: 7000, chain: "input", handle: 18},                  // no family: Proto left empty
		{Section: "inet", Zone: "wan", Port: 7001, chain: "input_wan", handle: 19}, // likewise
		{Section: "x", Zone: "wan", Proto: "udp", Port: 8080, IPv6: true, chain: "input_wan", handle: 17},
		{Section: "@natmap[0]", Zone: "wan", Proto: "tcp", Port: 8080, chain: "input_wan", handle: 16},
		// After the jump (an older natmap's, or a crash's): still the jump is the chain's end.
		{Section: "late", Zone: "wan", Proto: "tcp", Port: 9000, chain: "input_wan", handle: 20},
	}
	if !slices.Equal(rules, want) {
		t.Errorf("rules:\n%+v\nwant:\n%+v", rules, want)
	}
	if chains["input"] != 9 || chains["input_wan"] != 14 || len(chains) != 2 {
		t.Errorf("chains %v", chains)
	}
	for _, bad := range []string{"", "{", `{"nftables": [{"rule": {"handle": "x"}}]}`} {
		if _, _, err := parseFW4([]byte(bad)); err == nil {
			t.Errorf("parseFW4(%q): no error", bad)
		}
	}
}

const fw3Listing = `-P INPUT DROP
-N zone_wan_input
-N input_wan_rule
-A INPUT -i wan0 -m comment --comment "!fw3" -j zone_wan_input
-A zone_wan_input -p udp -m udp --dport 8080 -m comment --comment "natmap:x" -j ACCEPT
-A zone_wan_input -p tcp -m tcp --dport 8080 -m comment --comment "natmap:@natmap[0]" -j ACCEPT
-A zone_wan_input -p tcp -m tcp --dport 8081 -m comment --comment natmap:old -j ACCEPT
-A INPUT -p tcp -m tcp --dport 7000 -m comment --comment "natmap:lost" -j ACCEPT
-A zone_wan_forward -p tcp -m tcp --dport 7001 -m comment --comment "natmap:fwd" -j ACCEPT
-A zone_wan_input -p tcp -m tcp --dport 7002 -m comment --comment "natmap:drop" -j DROP
-A zone_wan_input -p tcp -m tcp ! --dport 7003 -m comment --comment "natmap:not" -j ACCEPT
-A input_wan_rule -p tcp -m tcp --dport 2222 -m comment --comment "see natmap: elsewhere" -j ACCEPT
-A zone_wan_input -m comment --comment "!fw3: Custom wan input rule chain" -j input_wan_rule
-A zone_wan_input -m comment --comment "!fw3" -j zone_wan_src_REJECT
`

func TestParseFW3(t *testing.T) {
	rules, err := parseFW3(fw3Listing, true)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(fw3Listing, "\n")
	want := []Rule{
		{Section: "x", Zone: "wan", Proto: "udp", Port: 8080},
		{Section: "@natmap[0]", Zone: "wan", Proto: "tcp", Port: 8080},
		{Section: "old", Zone: "wan", Proto: "tcp", Port: 8081}, // unquoted, as older iptables print it
		{Section: "lost", Proto: "tcp", Port: 7000},
		{Section: "fwd", Proto: "tcp", Port: 7001},
		{Section: "drop", Zone: "wan", Port: 7002}, // not an accept: Proto left empty
		{Section: "not", Zone: "wan", Port: 7003},  // negated
	}
	for i := range want {
		want[i].IPv6 = true
		want[i].line = lines[4+i]
		want[i].chain = strings.Fields(lines[4+i])[1]
	}
	if !slices.Equal(rules, want) {
		t.Errorf("rules:\n%+v\nwant:\n%+v", rules, want)
	}
	if _, err := parseFW3(`-A zone_wan_input -m comment --comment "natmap:x -j ACCEPT`+"\n", false); err == nil {
		t.Error("unterminated quote: no error")
	}
	if !hasChain(fw3Listing, "zone_wan_input") || hasChain(fw3Listing, "zone_wan") {
		t.Error("hasChain")
	}
}

func TestSplitRule(t *testing.T) {
	for in, want := range map[string][]string{
		`-A c -p tcp`:                       {"-A", "c", "-p", "tcp"},
		`-A c --comment "a b" -j ACCEPT`:    {"-A", "c", "--comment", "a b", "-j", "ACCEPT"},
		`-A c --comment "say \"hi\" \\ ok"`: {"-A", "c", "--comment", `say "hi" \ ok`},
		`-A c --comment ""`:                 {"-A", "c", "--comment", ""},
		`-A c ! -s 10.0.0.0/8`:              {"-A", "c", "!", "-s", "10.0.0.0/8"},
		`-A  c `:                            {"-A", "c"},
	} {
		got, err := splitRule(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("splitRule(%s) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// fakeBackend records what Sync asks of it.
type fakeBackend struct {
	rules  []Rule
	ops    []string
	failOn string // Add or Delete of a rule with this section fails
}

func (f *fakeBackend) Name() string { return "fake" }

func (f *fakeBackend) List(context.Context) ([]Rule, error) {
	f.ops = append(f.ops, "list")
	return slices.Clone(f.rules), nil
}

func (f *fakeBackend) Add(_ context.Context, r Rule) error {
	f.ops = append(f.ops, "add "+r.String())
	if r.Section == f.failOn {
		return fmt.Errorf("cannot add %s", r)
	}
	f.rules = append(f.rules, r)
	return nil
}

func (f *fakeBackend) Delete(_ context.Context, r Rule) error {
	f.ops = append(f.ops, "delete "+r.String())
	if r.Section == f.failOn {
		return fmt.Errorf("cannot delete %s", r)
	}
	i := slices.Index(f.rules, r)
	f.rules = slices.Delete(f.rules, i, i+1)
	return nil
}

func TestSync(t *testing.T) {
	ctx := context.Background()
	a := Rule{Section: "a", Zone: "wan", Proto: "tcp", Port: 1}
	b := Rule{Section: "b", Zone: "wan", Proto: "udp", Port: 2, IPv6: true}
	listed := func(r Rule, handle uint64) Rule { r.handle = handle; return r }

	// Adds before it deletes, adds once whatever want repeats, and keeps
	// one of several copies.
	f := &fakeBackend{rules: []Rule{listed(a, 1), listed(b, 2), listed(a, 3)}}
	c := Rule{Section: "c", Zone: "wan", Proto: "tcp", Port: 3}
	must(t, Sync(ctx, f, []Rule{a, c, c}))
	wantOps := []string{"list", "add " + c.String(), "delete " + b.String(), "delete " + a.String()}
	if !slices.Equal(f.ops, wantOps) {
		t.Errorf("ops:\n%s\nwant:\n%s", strings.Join(f.ops, "\n"), strings.Join(wantOps, "\n"))
	}
	if want := []Rule{listed(a, 1), c}; !slices.Equal(f.rules, want) {
		t.Errorf("rules %v, want %v", f.rules, want)
	}

	// Goes on past failures and returns them all.
	f = &fakeBackend{rules: []Rule{listed(Rule{Section: "bad", Zone: "wan", Proto: "tcp", Port: 9}, 1), listed(b, 2)}, failOn: "bad"}
	bad := Rule{Section: "bad", Zone: "wan", Proto: "udp", Port: 9}
	err := Sync(ctx, f, []Rule{bad, a})
	if err == nil || !strings.Contains(err.Error(), "cannot add") || !strings.Contains(err.Error(), "cannot delete") {
		t.Errorf("Sync: %v; want both failures", err)
	}
	if want := []Rule{listed(Rule{Section: "bad", Zone: "wan", Proto: "tcp", Port: 9}, 1), a}; !slices.Equal(f.rules, want) {
		t.Errorf("rules %v, want %v", f.rules, want)
	}

	// An invalid rule (a section name too long for the tag, a zone name
	// no chain can have) is that rule's error alone: the others are still
	// added, and stale rules still go.
	long := Rule{Section: strings.Repeat("s", 65), Zone: "wan", Proto: "tcp", Port: 5}
	badZone := Rule{Section: "z", Zone: "wan zone", Proto: "tcp", Port: 6}
	stale := listed(Rule{Section: "gone", Zone: "wan", Proto: "tcp", Port: 7}, 1)
	f = &fakeBackend{rules: []Rule{stale}}
	err = Sync(ctx, f, []Rule{long, b, badZone})
	if want := []Rule{b}; !slices.Equal(f.rules, want) {
		t.Errorf("rules %v, want %v", f.rules, want)
	}
	bySection, other := SectionErrors(err)
	if other != nil || len(bySection) != 2 ||
		!strings.Contains(fmt.Sprint(bySection[long.Section]), "longer than 64 bytes") ||
		!strings.Contains(fmt.Sprint(bySection["z"]), `zone name "wan zone"`) {
		t.Errorf("Sync: %v; by section %v, other %v", err, bySection, other)
	}

	// Failures of wanted rules sort by section; the rest stays apart.
	f = &fakeBackend{rules: []Rule{listed(Rule{Section: "bad", Zone: "wan", Proto: "tcp", Port: 9}, 1)}, failOn: "bad"}
	bySection, other = SectionErrors(Sync(ctx, f, []Rule{bad, a}))
	if len(bySection) != 1 || !strings.Contains(fmt.Sprint(bySection["bad"]), "cannot add") ||
		!strings.Contains(fmt.Sprint(other), "cannot delete") {
		t.Errorf("by section %v, other %v", bySection, other)
	}
}

func TestRuleEqual(t *testing.T) {
	a := Rule{Section: "a", Zone: "wan", Proto: "tcp", Port: 1}
	l := a
	l.chain, l.handle, l.line = "input_wan", 7, "-A x"
	if !a.Equal(l) || a == l {
		t.Error("Equal must ignore where a listed rule is")
	}
	for _, o := range []Rule{{Section: "b", Zone: "wan", Proto: "tcp", Port: 1}, {Section: "a", Zone: "lan", Proto: "tcp", Port: 1},
		{Section: "a", Zone: "wan", Proto: "udp", Port: 1}, {Section: "a", Zone: "wan", Proto: "tcp", Port: 2},
		{Section: "a", Zone: "wan", Proto: "tcp", Port: 1, IPv6: true}} {
		if a.Equal(o) {
			t.Errorf("%v equals %v", a, o)
		}
	}
}

func TestCommand(t *testing.T) {
	ctx := context.Background()
	out, err := Command(ctx, "echo", "a b")
	if err != nil || string(out) != "a b\n" {
		t.Errorf("echo: %q, %v", out, err)
	}
	_, err = Command(ctx, "ls", "/nonexistent dir")
	if err == nil || !strings.Contains(err.Error(), "ls '/nonexistent dir': exit status 2: ls: cannot access") {
		t.Errorf("ls: %v; want the command, its status and its stderr", err)
	}
	if _, err := Command(ctx, "no-such-command-natmap"); !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("missing command: %v; want exec.ErrNotFound", err)
	}
}

// A router without ip6tables has no IPv6 rules; any other failure to list
// is an error.
func TestFW3WithoutIP6tables(t *testing.T) {
	ctx := context.Background()
	ip6tables := func(ip6 func(ctx context.Context) ([]byte, error)) Exec {
		return func(ctx context.Context, name string, args ...string) ([]byte, error) {
			if name == "ip6tables" {
				return ip6(ctx)
			}
			return []byte(fw3Listing), nil
		}
	}
	missing := ip6tables(func(ctx context.Context) ([]byte, error) { return Command(ctx, "no-such-ip6tables-natmap") })
	if rules, err := NewFW3(missing).List(ctx); err != nil || len(rules) != 7 {
		t.Errorf("List without ip6tables: %d rules, %v; want the 7 IPv4 rules", len(rules), err)
	}
	fail := errors.New("broken")
	broken := ip6tables(func(context.Context) ([]byte, error) { return nil, fail })
	if _, err := NewFW3(broken).List(ctx); !errors.Is(err, fail) {
		t.Errorf("List with ip6tables failing: %v; want %v", err, fail)
	}
}
