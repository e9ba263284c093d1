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

// fw4Ruleset has the structure fw4 gives OpenWrt's default config (see
// firewall4's ruleset.uc), for a wan zone on device wan0 and a lan zone,
// plus a rule of another program in the wan zone's chain. Loading it again
// is what a fw4 reload does: the table is flushed and rebuilt, without
// anything added to it since.
const fw4Ruleset = `
table inet fw4
flush table inet fw4
table inet fw4 {
	chain input {
		type filter hook input priority filter; policy drop;
		iif "lo" accept comment "!fw4: Accept traffic from loopback"
		ct state vmap { established : accept, related : accept } comment "!fw4: Handle inbound flows"
		tcp flags & (fin | syn | rst | ack) == syn jump syn_flood comment "!fw4: Rate limit TCP syn packets"
		iifname "br-lan" jump input_lan comment "!fw4: Handle lan IPv4/IPv6 input traffic"
		iifname "wan0" jump input_wan comment "!fw4: Handle wan IPv4/IPv6 input traffic"
		jump handle_reject
	}
	chain handle_reject {
		meta l4proto tcp reject with tcp reset comment "!fw4: Reject TCP traffic"
		reject with icmpx type port-unreachable comment "!fw4: Reject any other traffic"
	}
	chain syn_flood {
		limit rate 25/second burst 50 packets return comment "!fw4: Accept SYN packets below rate-limit"
		drop comment "!fw4: Drop excess packets"
	}
	chain input_lan {
		jump accept_from_lan
	}
	chain accept_from_lan {
		iifname "br-lan" counter accept comment "!fw4: accept lan IPv4/IPv6 traffic"
	}
	chain input_wan {
		tcp dport 2222 counter accept comment "another program: ssh"
		meta nfproto ipv4 udp dport 68 counter accept comment "!fw4: Allow-DHCP-Renew"
		meta nfproto ipv4 icmp type 8 counter accept comment "!fw4: Allow-Ping"
		meta nfproto ipv6 icmpv6 type { 1, 2, 3, 4, 128, 129, 133, 134, 135, 136 } limit rate 1000/second counter accept comment "!fw4: Allow-ICMPv6-Input"
		jump reject_from_wan
	}
	chain reject_from_wan {
		iifname "wan0" counter jump handle_reject comment "!fw4: reject wan IPv4/IPv6 traffic"
	}
}
`

// otherTable is another program's table, which must stay as it is.
const otherTable = `
table inet other {
	chain input {
		type filter hook input priority filter + 10; policy accept;
		tcp dport 9999 counter accept comment "not natmap: 9999"
	}
}
`

// fw3Ruleset4 and fw3Ruleset6 have the structure fw3 gives OpenWrt's
// default config (see firewall3's defaults.c and zones.c), for a wan zone
// on wan0 and a lan zone, plus a rule of another program in the zone's
// user chain. Restoring them again is what a fw3 restart does.
const fw3Ruleset4 = `*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:input_rule - [0:0]
:input_lan_rule - [0:0]
:input_wan_rule - [0:0]
:reject - [0:0]
:zone_lan_input - [0:0]
:zone_lan_src_ACCEPT - [0:0]
:zone_wan_input - [0:0]
:zone_wan_src_REJECT - [0:0]
-A INPUT -i lo -m comment --comment "!fw3" -j ACCEPT
-A INPUT -m comment --comment "!fw3: Custom input rule chain" -j input_rule
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "!fw3" -j ACCEPT
-A INPUT -i br-lan -m comment --comment "!fw3" -j zone_lan_input
-A INPUT -i wan0 -m comment --comment "!fw3" -j zone_wan_input
-A INPUT -m comment --comment "!fw3" -j reject
-A input_wan_rule -p tcp -m tcp --dport 2222 -m comment --comment "another program: ssh" -j ACCEPT
-A reject -p tcp -m comment --comment "!fw3" -j REJECT --reject-with tcp-reset
-A reject -m comment --comment "!fw3" -j REJECT --reject-with icmp-port-unreachable
-A zone_lan_input -m comment --comment "!fw3: Custom lan input rule chain" -j input_lan_rule
-A zone_lan_input -m conntrack --ctstate DNAT -m comment --comment "!fw3: Accept port redirections" -j ACCEPT
-A zone_lan_input -m comment --comment "!fw3" -j zone_lan_src_ACCEPT
-A zone_lan_src_ACCEPT -i br-lan -m conntrack --ctstate NEW,UNTRACKED -m comment --comment "!fw3" -j ACCEPT
-A zone_wan_input -m comment --comment "!fw3: Custom wan input rule chain" -j input_wan_rule
-A zone_wan_input -p udp -m udp --dport 68 -m comment --comment "!fw3: Allow-DHCP-Renew" -j ACCEPT
-A zone_wan_input -p icmp -m icmp --icmp-type 8 -m comment --comment "!fw3: Allow-Ping" -j ACCEPT
-A zone_wan_input -m conntrack --ctstate DNAT -m comment --comment "!fw3: Accept port redirections" -j ACCEPT
-A zone_wan_input -m comment --comment "!fw3" -j zone_wan_src_REJECT
-A zone_wan_src_REJECT -i wan0 -m comment --comment "!fw3" -j reject
COMMIT
`

const fw3Ruleset6 = `*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:input_rule - [0:0]
:input_wan_rule - [0:0]
:reject - [0:0]
:zone_wan_input - [0:0]
:zone_wan_src_REJECT - [0:0]
-A INPUT -i lo -m comment --comment "!fw3" -j ACCEPT
-A INPUT -m comment --comment "!fw3: Custom input rule chain" -j input_rule
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "!fw3" -j ACCEPT
-A INPUT -i wan0 -m comment --comment "!fw3" -j zone_wan_input
-A INPUT -m comment --comment "!fw3" -j reject
-A input_wan_rule -p tcp -m tcp --dport 2222 -m comment --comment "another program: ssh" -j ACCEPT
-A reject -p tcp -m comment --comment "!fw3" -j REJECT --reject-with tcp-reset
-A reject -m comment --comment "!fw3" -j REJECT --reject-with icmp6-port-unreachable
-A zone_wan_input -m comment --comment "!fw3: Custom wan input rule chain" -j input_wan_rule
-A zone_wan_input -s fc00::/6 -d fc00::/6 -p udp -m udp --dport 546 -m comment --comment "!fw3: Allow-DHCPv6" -j ACCEPT
-A zone_wan_input -p ipv6-icmp -m icmp6 --icmpv6-type 128 -m limit --limit 1000/sec -m comment --comment "!fw3: Allow-ICMPv6-Input" -j ACCEPT
-A zone_wan_input -p ipv6-icmp -m icmp6 --icmpv6-type 135 -m limit --limit 1000/sec -m comment --comment "!fw3: Allow-ICMPv6-Input" -j ACCEPT
-A zone_wan_input -p ipv6-icmp -m icmp6 --icmpv6-type 136 -m limit --limit 1000/sec -m comment --comment "!fw3: Allow-ICMPv6-Input" -j ACCEPT
-A zone_wan_input -m comment --comment "!fw3" -j zone_wan_src_REJECT
-A zone_wan_src_REJECT -i wan0 -m comment --comment "!fw3" -j reject
COMMIT
`

// flavour is one firewall to test the backends against.
type flavour struct {
	name    string
	backend string            // what Detect must find
	tools   map[string]string // see router.tools
	// load loads the firewall's rule set, or reloads it as the firewall
	// does, which drops natmap's rules.
	load func(r *router)
	// raw adds a rule with a command of its own, as a crashed daemon
	// left it: at the top of zone wan's chain, tagged for section.
	raw func(r *router, section, proto, port string, ipv6 bool)
	// snapshot is the whole rule set, without counters.
	snapshot func(r *router) string
	// others are rules of fw4/fw3 and of other programs in snapshot.
	others []string
}

var fw4Flavour = flavour{
	name:    "fw4",
	backend: "fw4",
	load: func(r *router) {
		r.do(fw4Ruleset, "nft", "-f", "-")
	},
	raw: func(r *router, section, proto, port string, ipv6 bool) {
		family := map[bool]string{false: "ipv4", true: "ipv6"}[ipv6]
		r.do("", "nft", "insert", "rule", "inet", "fw4", "input_wan", "meta", "nfproto", family,
			proto, "dport", port, "counter", "accept", "comment", `"natmap:`+section+`"`)
	},
	snapshot: func(r *router) string { return r.do("", "nft", "-s", "list", "ruleset") },
	others: []string{
		`tcp dport 2222 counter accept comment "another program: ssh"`,
		`udp dport 68 counter accept comment "!fw4: Allow-DHCP-Renew"`,
		`jump reject_from_wan`,
		`tcp dport 9999 counter accept comment "not natmap: 9999"`,
	},
}

// fw3Flavour tests fw3 with the given iptables commands: iptables-nft is
// Debian's default, iptables-legacy what fw3 itself uses.
func fw3Flavour(name string, tools map[string]string) flavour {
	return flavour{
		name:    name,
		backend: "fw3",
		tools:   tools,
		load: func(r *router) {
			r.do(fw3Ruleset4, "iptables-restore")
			r.do(fw3Ruleset6, "ip6tables-restore")
		},
		raw: func(r *router, section, proto, port string, ipv6 bool) {
			r.do("", iptables(ipv6), "-w", "-I", "zone_wan_input", "1", "-p", proto, "--dport", port,
				"-m", "comment", "--comment", "natmap:"+section, "-j", "ACCEPT")
		},
		snapshot: func(r *router) string {
			return r.do("", "iptables", "-w", "-S") + r.do("", "ip6tables", "-w", "-S")
		},
		others: []string{
			`-A input_wan_rule -p tcp -m tcp --dport 2222 -m comment --comment "another program: ssh" -j ACCEPT`,
			`-A zone_wan_input -p udp -m udp --dport 68 -m comment --comment "!fw3: Allow-DHCP-Renew" -j ACCEPT`,
			`-A zone_wan_input -m comment --comment "!fw3" -j zone_wan_src_REJECT`,
		},
	}
}

func flavours() []flavour {
	fs := []flavour{fw4Flavour, fw3Flavour("fw3-iptables", nil)}
	if _, err := exec.LookPath("iptables-legacy"); err == nil {
		fs = append(fs, fw3Flavour("fw3-iptables-legacy", map[string]string{
			"iptables": "iptables-legacy", "ip6tables": "ip6tables-legacy",
			"iptables-restore": "iptables-legacy-restore", "ip6tables-restore": "ip6tables-legacy-restore",
		}))
	}
	return fs
}

// setup builds a router with the flavour's firewall and detects it.
func (f flavour) setup(t *testing.T) (*router, Backend) {
	t.Helper()
	r := newRouter(t, f.tools)
	f.load(r)
	if f.backend == "fw4" {
		r.do(otherTable, "nft", "-f", "-")
	}
	b, err := Detect(context.Background(), r.run)
	if err != nil {
		t.Fatalf("Detect: %v", err)
	}
	if b.Name() != f.backend {
		t.Fatalf("Detect found %s, want %s", b.Name(), f.backend)
	}
	return r, b
}

// withoutOurs drops natmap's rules from a snapshot.
func withoutOurs(snapshot string) string {
	var keep []string
	for line := range strings.Lines(snapshot) {
		if !strings.Contains(line, `"natmap:`) {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "")
}

func list(t *testing.T, b Backend) []Rule {
	t.Helper()
	rules, err := b.List(context.Background())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return rules
}

// sameRules checks that the firewall holds exactly want, once each.
func sameRules(t *testing.T, b Backend, want []Rule) {
	t.Helper()
	got := list(t, b)
	keys := func(rs []Rule) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.key().String())
		}
		slices.Sort(out)
		return out
	}
	if g, w := keys(got), keys(want); !slices.Equal(g, w) {
		t.Fatalf("natmap's rules:\n%s\nwant:\n%s", strings.Join(g, "\n"), strings.Join(w, "\n"))
	}
}

func rulesFor(section string, port uint16, ipv6 bool) []Rule {
	return []Rule{
		{Section: section, Zone: "wan", Proto: "tcp", Port: port, IPv6: ipv6},
		{Section: section, Zone: "wan", Proto: "udp", Port: port, IPv6: ipv6},
	}
}

func TestBackends(t *testing.T) {
	ctx := context.Background()
	for _, f := range flavours() {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()

			// The port is closed, opened by Sync for IPv4, then IPv6
			// too, and closed again, as packets from the wan side see.
			t.Run("packets", func(t *testing.T) {
				t.Parallel()
				r, b := f.setup(t)
				r.serve()
				r.expect("before Sync", refused, refused)
				v4 := rulesFor("@natmap[0]", testPort, false)
				must(t, Sync(ctx, b, v4))
				r.expect("after Sync(IPv4)", open, refused)
				sameRules(t, b, v4)
				all := append(v4, rulesFor("@natmap[0]", testPort, true)...)
				must(t, Sync(ctx, b, all))
				r.expect("after Sync(IPv4 and IPv6)", open, open)
				sameRules(t, b, all)
				must(t, Sync(ctx, b, nil))
				r.expect("after Sync(nil)", refused, refused)
				sameRules(t, b, nil)
			})

			// A second Sync, and a want that repeats a rule, change
			// nothing: only listing commands run.
			t.Run("idempotent", func(t *testing.T) {
				t.Parallel()
				r, _ := f.setup(t)
				var changes []string
				rec := func(ctx context.Context, name string, args ...string) ([]byte, error) {
					if !slices.Contains(args, "-S") && !slices.Contains(args, "list") {
						changes = append(changes, name+" "+strings.Join(args, " "))
					}
					return r.run(ctx, name, args...)
				}
				b, err := Detect(ctx, rec)
				must(t, err)
				want := append(rulesFor("ssh", 22222, false), rulesFor("ssh", 22222, true)...)
				must(t, Sync(ctx, b, append(want, want[0], want[3])))
				if len(changes) != len(want) {
					t.Errorf("first Sync ran %d changes, want %d:\n%s", len(changes), len(want), strings.Join(changes, "\n"))
				}
				sameRules(t, b, want)
				changes = nil
				must(t, Sync(ctx, b, want))
				if len(changes) != 0 {
					t.Errorf("second Sync changed the firewall:\n%s", strings.Join(changes, "\n"))
				}
				sameRules(t, b, want)
			})

			// Rules a crashed daemon left (an old section, a duplicate)
			// go; the wanted one stays, once.
			t.Run("stale", func(t *testing.T) {
				t.Parallel()
				r, b := f.setup(t)
				f.raw(r, "old", "tcp", "4000", false)
				f.raw(r, "old", "udp", "4000", true)
				f.raw(r, "ssh", "tcp", "22222", false)
				f.raw(r, "ssh", "tcp", "22222", false)
				if got := list(t, b); len(got) != 4 {
					t.Fatalf("List found %d of the 4 rules added by hand: %v", len(got), got)
				}
				want := rulesFor("ssh", 22222, false)
				must(t, Sync(ctx, b, want))
				sameRules(t, b, want)
			})

			// A firewall reload drops natmap's rules; Sync puts them back.
			t.Run("reload", func(t *testing.T) {
				t.Parallel()
				r, b := f.setup(t)
				r.serve()
				want := rulesFor("@natmap[1]", testPort, false)
				must(t, Sync(ctx, b, want))
				r.expect("after Sync", open, refused)
				f.load(r)
				sameRules(t, b, nil)
				r.expect("after the firewall reloaded", refused, refused)
				must(t, Sync(ctx, b, want))
				r.expect("after Sync again", open, refused)
				sameRules(t, b, want)
			})

			// Only natmap's rules change: the firewall's own and other
			// programs' rules are as they were.
			t.Run("others untouched", func(t *testing.T) {
				t.Parallel()
				r, b := f.setup(t)
				before := f.snapshot(r)
				for _, o := range f.others {
					if !strings.Contains(before, o) {
						t.Fatalf("rule set lacks %q:\n%s", o, before)
					}
				}
				for i, want := range [][]Rule{
					rulesFor("a", 1000, false),
					append(rulesFor("b", 2000, true), rulesFor("a", 1000, true)...),
					nil,
				} {
					must(t, Sync(ctx, b, want))
					after := f.snapshot(r)
					if got := withoutOurs(after); got != before {
						t.Fatalf("Sync %d changed other rules:\nbefore:\n%s\nafter:\n%s", i, before, after)
					}
					if n := strings.Count(after, `"natmap:`); n != len(want) {
						t.Fatalf("Sync %d: %d natmap rules, want %d:\n%s", i, n, len(want), after)
					}
				}
			})

			// A zone without a chain is an error naming the zone; the
			// other rules are still added.
			t.Run("missing zone", func(t *testing.T) {
				t.Parallel()
				_, b := f.setup(t)
				good := rulesFor("ok", 3000, false)
				bad := Rule{Section: "typo", Zone: "wna", Proto: "tcp", Port: 3001}
				err := Sync(ctx, b, append(good, bad))
				if !errors.Is(err, ErrNoZone) || !strings.Contains(err.Error(), `"wna"`) {
					t.Fatalf("Sync with zone wna: %v; want ErrNoZone naming the zone", err)
				}
				t.Logf("error: %v", err)
				sameRules(t, b, good)
				// IPv6 too (fw3: ip6tables has no lan chains here).
				bad6 := Rule{Section: "v6", Zone: "lan", Proto: "udp", Port: 3002, IPv6: true}
				if f.backend == "fw3" {
					if err := b.Add(ctx, bad6); !errors.Is(err, ErrNoZone) {
						t.Fatalf("Add %v: %v; want ErrNoZone", bad6, err)
					}
				}
			})

			// Delete of a rule made by hand removes every copy of it, and
			// nothing else; deleting what is not there is no error.
			t.Run("delete", func(t *testing.T) {
				t.Parallel()
				_, b := f.setup(t)
				r := Rule{Section: "x", Zone: "wan", Proto: "udp", Port: 5000, IPv6: true}
				keep := Rule{Section: "x", Zone: "wan", Proto: "tcp", Port: 5000, IPv6: true}
				for _, add := range []Rule{r, keep, r} {
					must(t, b.Add(ctx, add))
				}
				must(t, b.Delete(ctx, r))
				sameRules(t, b, []Rule{keep})
				must(t, b.Delete(ctx, r))
				got := list(t, b)
				must(t, b.Delete(ctx, got[0]))
				sameRules(t, b, nil)
				if err := b.Delete(ctx, got[0]); err == nil {
					t.Errorf("Delete of a listed rule that is gone: no error")
				}
			})
		})
	}
}

func TestDetect(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		load func(r *router)
		want string // "" for ErrNoFirewall
	}{
		{"fw4", fw4Flavour.load, "fw4"},
		{"fw3", fw3Flavour("fw3", nil).load, "fw3"},
		{"none", func(r *router) {}, ""},
		{"other tables only", func(r *router) {
			r.do(otherTable, "nft", "-f", "-")
			r.do("", "iptables", "-w", "-N", "zone_wan_forward")
		}, ""},
		// A router moved to fw4 with iptables-nft rules still around.
		{"fw4 and fw3", func(r *router) {
			fw3Flavour("fw3", nil).load(r)
			fw4Flavour.load(r)
		}, "fw4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRouter(t, nil)
			tc.load(r)
			b, err := Detect(ctx, r.run)
			switch {
			case tc.want == "" && !errors.Is(err, ErrNoFirewall):
				t.Fatalf("Detect = %v, %v; want ErrNoFirewall", b, err)
			case tc.want == "":
			case err != nil:
				t.Fatalf("Detect: %v", err)
			case b.Name() != tc.want:
				t.Fatalf("Detect found %s, want %s", b.Name(), tc.want)
			}
		})
	}
}

// Why the rules go into fw4's own chain: an accept in a table of its own
// does not help, because fw4's input chain still sees the packet and
// rejects it.
func TestFW4OtherTableIsNotEnough(t *testing.T) {
	r, _ := fw4Flavour.setup(t)
	r.serve()
	r.do(fmt.Sprintf(`table inet natmap_test {
	chain input {
		type filter hook input priority filter - 10; policy accept;
		tcp dport %[1]d accept
		udp dport %[1]d accept
	}
}`, testPort), "nft", "-f", "-")
	r.expect("with an accept in another table", refused, refused)
}

// natmap's rules go after the rules already in the zone's chain (the
// user's: here "another program: ssh" and fw4's own), before its final
// jump, so a user's drop for the same port still wins.
func TestFW4RulesAfterTheUsers(t *testing.T) {
	r, b := fw4Flavour.setup(t)
	ctx := context.Background()
	for _, rule := range []Rule{
		{Section: "a", Zone: "wan", Proto: "tcp", Port: 2222},
		{Section: "b", Zone: "wan", Proto: "udp", Port: 5000, IPv6: true},
	} {
		if err := b.Add(ctx, rule); err != nil {
			t.Fatal(err)
		}
	}
	var lines []string
	for line := range strings.Lines(r.do("", "nft", "list", "chain", "inet", "fw4", "input_wan")) {
		if l := strings.TrimSpace(line); strings.Contains(l, "dport") || strings.HasPrefix(l, "jump") {
			lines = append(lines, l)
		}
	}
	n := len(lines)
	if n < 4 || !strings.Contains(lines[0], "another program: ssh") || !strings.Contains(lines[n-3], `"natmap:a"`) ||
		!strings.Contains(lines[n-2], `"natmap:b"`) || lines[n-1] != "jump reject_from_wan" {
		t.Errorf("input_wan:\n%s", strings.Join(lines, "\n"))
	}
	// A chain without a final jump: at its end.
	r.do("", "nft", "add", "chain", "inet", "fw4", "input_bare")
	r.do("", "nft", "add", "rule", "inet", "fw4", "input_bare", "tcp", "dport", "1", "drop")
	if err := b.Add(ctx, Rule{Section: "c", Zone: "bare", Proto: "tcp", Port: 3000}); err != nil {
		t.Fatal(err)
	}
	if out := r.do("", "nft", "list", "chain", "inet", "fw4", "input_bare"); !strings.Contains(out, "drop\n\t\tmeta nfproto ipv4 tcp dport 3000") {
		t.Errorf("input_bare:\n%s", out)
	}
	if err := b.Add(ctx, Rule{Section: "d", Zone: "nozone", Proto: "tcp", Port: 3000}); !errors.Is(err, ErrNoZone) {
		t.Errorf("a zone without a chain: %v", err)
	}
}

// fw3 too: natmap's rules go after the zone's user chain and the rules of
// /etc/config/firewall, just before the zone's final jump.
func TestFW3RulesAfterTheUsers(t *testing.T) {
	for _, f := range flavours() {
		if f.backend != "fw3" {
			continue
		}
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			r, b := f.setup(t)
			ctx := context.Background()
			for _, rule := range []Rule{
				{Section: "a", Zone: "wan", Proto: "tcp", Port: 2222},
				{Section: "b", Zone: "wan", Proto: "udp", Port: 5000},
				{Section: "c", Zone: "wan", Proto: "udp", Port: 5000, IPv6: true},
			} {
				if err := b.Add(ctx, rule); err != nil {
					t.Fatal(err)
				}
			}
			for _, c := range []struct{ cmd, want string }{
				{"iptables", "input_wan_rule|68|icmp|DNAT|natmap:a|natmap:b|zone_wan_src_REJECT"},
				{"ip6tables", "input_wan_rule|natmap:c|zone_wan_src_REJECT"},
			} {
				var got []string
				for line := range strings.Lines(r.do("", c.cmd, "-w", "-S", "zone_wan_input")) {
					for _, mark := range strings.Split(c.want, "|") {
						if strings.HasPrefix(line, "-A ") && strings.Contains(line, mark) {
							got = append(got, mark)
							break
						}
					}
				}
				if g := strings.Join(got, "|"); g != c.want {
					t.Errorf("%s zone_wan_input: %s, want %s", c.cmd, g, c.want)
				}
			}
			// A chain without a final jump: at its end.
			r.do("", "iptables", "-w", "-N", "zone_bare_input")
			r.do("", "iptables", "-w", "-A", "zone_bare_input", "-p", "tcp", "--dport", "1", "-j", "DROP")
			if err := b.Add(ctx, Rule{Section: "d", Zone: "bare", Proto: "tcp", Port: 3000}); err != nil {
				t.Fatal(err)
			}
			if out := r.do("", "iptables", "-w", "-S", "zone_bare_input"); !strings.Contains(out, "-j DROP\n-A zone_bare_input -p tcp -m tcp --dport 3000") {
				t.Errorf("zone_bare_input:\n%s", out)
			}
			if err := b.Add(ctx, Rule{Section: "e", Zone: "nozone", Proto: "tcp", Port: 3000}); !errors.Is(err, ErrNoZone) {
				t.Errorf("a zone without a chain: %v", err)
			}
		})
	}
}
