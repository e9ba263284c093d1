package openwrt_test

// The packages on OpenWrt's real userspace (internal/testkit/owlab: procd,
// ubusd, rpcd, jshn, uci, opkg, apk, firewall4, built from
// ../shared/openwrt-lab), as a router user works with them: install by name
// from a signed feed, procd, ubus, firewall4, upgrade and removal. One lab
// boot for all of it, the steps in order as subtests.

import (
	"bytes"
	"compress/flate"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/oneproc"
	"github.com/natmap-go/natmap/internal/pkgtools/apk"
	"github.com/natmap-go/natmap/internal/testkit/coturn"
	"github.com/natmap-go/natmap/internal/testkit/freeport"
	"github.com/natmap-go/natmap/internal/testkit/httpserve"
	"github.com/natmap-go/natmap/internal/testkit/owlab"
	"github.com/natmap-go/natmap/internal/testkit/portchecker"
	"github.com/natmap-go/natmap/internal/testkit/testgate"
	"github.com/natmap-go/natmap/internal/testkit/wait"
)

// verifyFeed checks Packages.sig against the public key file, reading
// usign's formats here (not with internal/pkgtools/usign, which wrote them):
// "untrusted comment: ..." then base64 of "Ed", the 8-byte fingerprint and
// the 32-byte key or 64-byte signature.
func verifyFeed(t *testing.T, dir string, public []byte) {
	t.Helper()
	blob := func(b []byte, n int) []byte {
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "untrusted comment: ") {
			t.Fatalf("not a usign file: %q", b)
		}
		d, err := base64.StdEncoding.DecodeString(lines[1])
		if err != nil || len(d) != n || string(d[:2]) != "Ed" {
			t.Fatalf("usign blob %q: %v", lines[1], err)
		}
		return d
	}
	pub := blob(public, 42)
	sig := blob([]byte(readFile(t, filepath.Join(dir, "Packages.sig"))), 74)
	if !bytes.Equal(pub[2:10], sig[2:10]) {
		t.Fatalf("Packages.sig is by key %x, want %x", sig[2:10], pub[2:10])
	}
	if !ed25519.Verify(pub[10:], []byte(readFile(t, filepath.Join(dir, "Packages"))), sig[10:]) {
		t.Fatal("Packages.sig does not verify")
	}
}

// labStatus is `ubus call natmap status`, by section.
func labStatus(t *testing.T, l *owlab.Lab) map[string]map[string]any {
	t.Helper()
	out, err := l.Exec(nil, "ubus call natmap status")
	if err != nil {
		return nil
	}
	var s struct{ Mappings []map[string]any }
	if json.Unmarshal([]byte(out), &s) != nil {
		return nil
	}
	m := map[string]map[string]any{}
	for _, x := range s.Mappings {
		m[fmt.Sprint(x["section"])] = x
	}
	return m
}

// waitMapped waits until every section is mapped and returns the status.
func waitMapped(t *testing.T, l *owlab.Lab, sections ...string) map[string]map[string]any {
	t.Helper()
	var st map[string]map[string]any
	if !wait.Until(90*time.Second, func() bool {
		st = labStatus(t, l)
		ok := st != nil
		for _, s := range sections {
			if st[s]["state"] != "mapped" {
				ok = false
			}
		}
		return ok
	}) {
		out, _ := l.Exec(nil, "ubus call natmap status; /usr/sbin/logread | tail -n 30")
		t.Fatalf("sections %v not mapped: %v\n%s", sections, st, out)
	}
	return st
}

// ubusJSON runs `ubus call natmap METHOD ARGS` and decodes the answer.
func ubusJSON(t *testing.T, l *owlab.Lab, cmd string) map[string]any {
	t.Helper()
	out := l.Sh(cmd)
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%s: %q: %v", cmd, out, err)
	}
	return v
}

var pidRE = regexp.MustCompile(`^[0-9]+$`)

// natmapPID is the pid of procd's natmap instance, or "" (pidof would
// also list a natmap CLI call running at the time).
func natmapPID(l *owlab.Lab) string {
	out, _ := l.Exec(nil, `ubus call service list '{"name":"natmap"}' | jsonfilter -e '@.natmap.instances.natmap.pid'`)
	if p := strings.TrimSpace(out); pidRE.MatchString(p) {
		return p
	}
	return ""
}

// luciRPC calls ubus over uhttpd's /ubus as LuCI does (JSON-RPC, a
// session from session login) and returns the call's status code.
func luciRPC(t *testing.T, l *owlab.Lab, session, object, method string, args any) (int, map[string]any) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "call", "params": []any{session, object, method, args}})
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Post("http://"+l.Addr()+"/ubus", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("ubus %s %s over HTTP: %v", object, method, err)
	}
	defer resp.Body.Close()
	var r struct {
		Result []json.RawMessage
		Error  any
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || len(r.Result) == 0 {
		t.Fatalf("ubus %s %s over HTTP: %v %v", object, method, err, r.Error)
	}
	var code int
	json.Unmarshal(r.Result[0], &code)
	var data map[string]any
	if len(r.Result) > 1 {
		json.Unmarshal(r.Result[1], &data)
	}
	return code, data
}

func TestOpenWrtLab(t *testing.T) {
	owlab.Require(t)
	testgate.Require(t, "openwrt lab", true, map[string]string{"turnserver": "coturn"})
	begin := time.Now()

	// Two versions of the packages, each an opkg feed signed with a key
	// made here, and v1 as apk packages too, with their index made by the
	// lab's apk-tools and signed with the apk key beside the usign one
	// (FEED_KEY's twin, as `mkfeed keygen` names it).
	secret, key, apkKey := feedKeys(t, true)
	public := key.MarshalPublic()
	apkTools := owlab.APK(t)
	feeds := map[string]string{}
	for v, format := range map[string]string{"1.0.0": "all", "1.0.1": "ipk"} {
		dir, out, err := ipkScript(t, []string{"IPK_VERSION=" + v, "FEED_KEY=" + secret, "APK_TOOLS_BIN=" + apkTools}, "-f", format, "x86_64")
		if err != nil {
			t.Fatalf("scripts/ipk.sh %s: %v\n%s", v, err, out)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		verifyFeed(t, dir, public)
		feeds[v] = dir
	}

	l := owlab.Start(t, owlab.Options{})
	host := l.HostAddr()

	// The feeds and natmap's keep-alive server on the host's end of the veth.
	mux := http.NewServeMux()
	mux.Handle("/feed1/", http.StripPrefix("/feed1/", http.FileServer(http.Dir(feeds["1.0.0"]))))
	mux.Handle("/feed2/", http.StripPrefix("/feed2/", http.FileServer(http.Dir(feeds["1.0.1"]))))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {})
	web := httpserve.Listen(t, host, mux)
	stun := coturn.Start(t, coturn.Config{Addrs: []string{host}, Port: freeport.Both(t, host)}).Addr()

	config := fmt.Sprintf(`
config natmap 'a'
	option enable '1'
	option udp_mode '0'
	option port '18080'
	option stun_server '%[1]s'
	option http_server '%[2]s'
	option interval '25'
	option comment 'edited by the user'
	option forward_target '127.0.0.1'
	option forward_port '80'

config natmap 'b'
	option enable '1'
	option udp_mode '0'
	option port '18081'
	option stun_server '%[1]s'
	option http_server '%[2]s'
	option interval '25'
	option forward_target '127.0.0.1'
	option forward_port '80'
`, stun, web)

	ok := t.Run("opkg install by name", func(t *testing.T) {
		l.Sh("mkdir -p /etc/opkg/keys && cat > /etc/opkg/keys/" + key.FingerprintHex() + " <<'EOF'\n" + string(public) + "EOF")
		l.Sh("echo 'src/gz natmap http://" + web + "/feed1' >> /etc/opkg/customfeeds.conf")
		l.Sh("opkg update")
		l.Sh("opkg install natmap luci-app-natmap")
		if out := l.Sh("opkg list-installed"); !strings.Contains(out, "natmap - 1.0.0-r1") || !strings.Contains(out, "luci-app-natmap - 1.0.0-r1") {
			t.Fatalf("installed:\n%s", out)
		}
		l.Sh("reload_config") // procd's first run records the configs
		l.Sh("cat > /etc/config/natmap <<'EOF'\n" + config + "EOF")
	})
	if !ok {
		t.FailNow()
	}

	t.Run("procd", func(t *testing.T) {
		l.Sh("/etc/init.d/natmap enable && test -L /etc/rc.d/S99natmap")
		l.Sh("/etc/init.d/natmap validate")
		l.Sh("/etc/init.d/natmap start")
		st := waitMapped(t, l, "a", "b")
		for _, s := range []string{"a", "b"} {
			if st[s]["public_ip"] != l.Addr() || st[s]["public_port"] != st[s]["private_port"] {
				t.Errorf("section %s: %v", s, st[s])
			}
		}
		if out := l.Sh("/etc/init.d/natmap status"); !strings.Contains(out, "mapped") {
			t.Errorf("status:\n%s", out)
		}
		// procd starts natmap on one processor (internal/oneproc).
		env := strings.Fields(l.Sh("tr '\\0' '\\n' < /proc/" + natmapPID(l) + "/environ"))
		if !slices.Contains(env, "GOMAXPROCS=1") || !slices.Contains(env, oneproc.Mark+"=1") {
			t.Errorf("natmap's environment from procd: %q", env)
		}
		if out, err := l.Exec(nil, "uci set natmap.a.enable=maybe && /etc/init.d/natmap validate"); err == nil || !strings.Contains(out, "section a: invalid") {
			t.Errorf("validate accepts enable maybe:\n%s", out)
		}
		l.Sh("uci revert natmap")

		// Respawn after kill -9.
		pid := natmapPID(l)
		l.Sh("kill -9 " + pid)
		wait.For(t, 60*time.Second, "natmap respawned after kill -9 "+pid, func() bool {
			p := natmapPID(l)
			return p != "" && p != pid
		})
		st = waitMapped(t, l, "a", "b")

		// A change to one section restarts it only: uci + reload_config;
		// ubus uci set + commit; and LuCI's Save & Apply, over HTTP with a
		// session: uci set, apply with rollback, confirm.
		_, login := luciRPC(t, l, strings.Repeat("0", 32), "session", "login", map[string]string{"username": "root", "password": ""})
		session, _ := login["ubus_rpc_session"].(string)
		pid = natmapPID(l)
		for _, c := range []struct{ changed, kept, cmd string }{
			{"b", "a", "uci set natmap.b.interval=20 && uci commit natmap && reload_config"},
			{"a", "b", `ubus call uci set '{"config":"natmap","section":"a","values":{"interval":"21"}}' && ubus call uci commit '{"config":"natmap"}'`},
			{"b", "a", "luci"},
		} {
			before := st
			if c.cmd == "luci" {
				for _, call := range []struct {
					method string
					args   any
				}{
					{"set", map[string]any{"config": "natmap", "section": "b", "values": map[string]string{"interval": "22"}}},
					{"apply", map[string]any{"rollback": true, "timeout": 60}},
					{"confirm", map[string]any{}},
				} {
					if code, _ := luciRPC(t, l, session, "uci", call.method, call.args); code != 0 {
						t.Fatalf("LuCI's uci %s: status %d", call.method, code)
					}
				}
			} else {
				l.Sh(c.cmd)
			}
			if !wait.Until(60*time.Second, func() bool {
				st = waitMapped(t, l, "a", "b")
				return st[c.changed]["since"] != before[c.changed]["since"]
			}) {
				t.Fatalf("%s: section %s not restarted: %v", c.cmd, c.changed, st[c.changed])
			}
			if k := c.kept; st[k]["since"] != before[k]["since"] || st[k]["public_port"] != before[k]["public_port"] {
				t.Errorf("%s: section %s restarted too: %v, was %v", c.cmd, k, st[k], before[k])
			}
			if p := natmapPID(l); p != pid {
				t.Errorf("%s: the daemon restarted (pid %s, was %s)", c.cmd, p, pid)
			}
		}
		l.Sh("/etc/init.d/natmap reload")
		if p := natmapPID(l); p != pid {
			t.Errorf("reload restarted the daemon (pid %s, was %s)", p, pid)
		}
		l.Sh("/etc/init.d/natmap restart")
		waitMapped(t, l, "a", "b")
		if p := natmapPID(l); p == pid || p == "" {
			t.Errorf("restart: pid %q, was %s", p, pid)
		}
	})

	t.Run("ubus", func(t *testing.T) {
		waitMapped(t, l, "a", "b")
		if v := ubusJSON(t, l, "ubus call natmap reload"); v["ok"] != true {
			t.Errorf("reload: %v", v)
		}
		// The daemon tells ubus of each mapping's new state (natmap.mapping).
		l.Sh("ubus listen natmap.mapping >/root/events.log 2>&1 </dev/null &")
		time.Sleep(500 * time.Millisecond) // ubus listen registers
		if v := ubusJSON(t, l, `ubus call natmap restart '{"section":"a"}'`); v["ok"] != true {
			t.Errorf("restart: %v", v)
		}
		waitMapped(t, l, "a", "b")
		var events string
		if !wait.Until(20*time.Second, func() bool {
			events, _ = l.Exec(nil, "cat /root/events.log")
			return strings.Contains(events, `"natmap.mapping"`) && regexp.MustCompile(`"section": *"a"`).MatchString(events)
		}) {
			ps, _ := l.Exec(nil, "ps w; /usr/sbin/logread | grep -i 'natmap\\|ubus' | tail -20")
			t.Fatalf("no natmap.mapping event for a in 20 s; events.log:\n%s\n%s", events, ps)
		}
		if !regexp.MustCompile(`"state": *"mapped"`).MatchString(events) || !regexp.MustCompile(`"public_port": *[1-9]`).MatchString(events) {
			t.Errorf("ubus events after restarting a:\n%s", events)
		}
		l.Exec(nil, "killall ubus")
		for args, want := range map[string]string{
			`{"section":["a"]}`: "section must be a string",
			`{"section":5}`:     "section must be a string",
			`{"section":"zz"}`:  `zz`,
			`{}`:                "missing argument: section",
		} {
			if v := ubusJSON(t, l, "ubus call natmap restart '"+args+"'"); v["ok"] != false || !strings.Contains(fmt.Sprint(v["error"]), want) {
				t.Errorf("restart %s: %v, want an error %q", args, v, want)
			}
		}
		v := ubusJSON(t, l, `ubus call natmap check '{"stun":["`+stun+`"]}'`)
		if ans, _ := v["answers"].([]any); len(ans) == 0 {
			t.Errorf("check: %v", v)
		}
		for args, want := range map[string]string{
			`{"stun":["$(reboot)"]}`: "not a STUN server",
			`{"stun":"x"}`:           "stun must be a list",
			`{"udp":"yes"}`:          "udp must be true or false",
			// rpcd cuts this at 64 KiB: refused, not run against the configured servers.
			`{"stun":["` + stun + `"],"pad":"` + strings.Repeat("x", 70000) + `"}`: "too large",
		} {
			// The argument goes in through a file.
			if out, err := l.Exec(strings.NewReader(args), "cat > /root/args.json"); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if v := ubusJSON(t, l, `ubus call natmap check "$(cat /root/args.json)"`); v["ok"] != false || !strings.Contains(fmt.Sprint(v["error"]), want) {
				t.Errorf("check %.60s: %v, want an error %q", args, v, want)
			}
		}
		// The plugin with the real jshn, given what ubus would not pass.
		for _, in := range []string{`{bad`, `["a"]`, `{"section":"a"`} {
			out, _ := l.Exec(strings.NewReader(in), "/usr/libexec/rpcd/natmap call restart")
			if !strings.Contains(out, "not a JSON object") {
				t.Errorf("plugin restart with %q: %s", in, out)
			}
		}
	})

	// check without servers: the plugin reads /etc/config/natmap once with
	// the real functions.sh (config_load, config_foreach). The servers it
	// chose are the report's answers: the lab's coturn and closed ports of
	// the host (refused at once).
	t.Run("ubus check's servers from the config", func(t *testing.T) {
		l.Sh("cp /etc/config/natmap /root/natmap.saved")
		defer l.Sh("cp /root/natmap.saved /etc/config/natmap")
		d1, d2, d3 := fmt.Sprintf("%s:%d", host, freeport.Both(t, host)), fmt.Sprintf("%s:%d", host, freeport.Both(t, host)), fmt.Sprintf("%s:%d", host, freeport.Both(t, host))
		for _, c := range []struct {
			name, conf string
			want       []string // the servers asked, in order; nil: an error
		}{
			{"first enabled section, a list", `
config global
	option stun_server '` + d3 + `'
config natmap 'off'
	option enable '0'
	option stun_server '` + d1 + `'
config natmap 'on'
	option enable '1'
	list stun_server '` + stun + `'
	list stun_server '` + d2 + `'
config natmap 'later'
	option enable '1'
	option stun_server '` + d3 + `'
`, []string{stun, d2}},
			{"a disabled first section, the global default", `
config natmap
	option enable '0'
	option stun_server '` + d1 + `'
config natmap
	option enable 'yes'
config global
	option stun_server '` + stun + `,` + d3 + `'
`, []string{stun, d3}},
			{"nothing enabled: the first section's own", `
config global
	option stun_server '` + d1 + `'
config natmap
	option enable '0'
config natmap
	option enable 'off'
	option stun_server '` + stun + `'
config natmap
	option enable '0'
	option stun_server '` + d2 + `'
`, []string{stun}},
			{"the global section only", `
config global
	list stun_server '` + d2 + `'
	list stun_server '` + stun + `'
`, []string{d2, stun}},
			{"none", `
config natmap
	option enable '1'
`, nil},
		} {
			l.Sh("cat > /etc/config/natmap <<'EOF'\n" + c.conf + "EOF")
			v := ubusJSON(t, l, "ubus call natmap check '{}'")
			if c.want == nil {
				if v["ok"] != false || !strings.Contains(fmt.Sprint(v["error"]), "no STUN server") {
					t.Errorf("%s: %v, want the error no STUN server", c.name, v)
				}
				continue
			}
			var asked []string
			ans, _ := v["answers"].([]any)
			for _, a := range ans {
				m, _ := a.(map[string]any)
				asked = append(asked, fmt.Sprint(m["server"]))
			}
			if !slices.Equal(asked, c.want) {
				t.Errorf("%s: check asked %q, want %q (report %v)", c.name, asked, c.want, v)
			}
			if c.want[0] == stun && (len(ans) == 0 || ans[0].(map[string]any)["public_ip"] != l.Addr()) {
				t.Errorf("%s: coturn's answer: %v", c.name, v)
			}
		}

		// The port checker of the global section's reachability_url (the
		// last global section that sets one) proves the checked port
		// reachable. natmap check reports no reach when the STUN server
		// sees this host's own address (no NAT: the firewall's business),
		// as it does the lab's; so a full-cone NAT in front of the lab, for
		// the check's port to coturn, gives it the public address NATAddr,
		// which the checkers on the host connect to.
		_, sp, _ := strings.Cut(stun, ":")
		stunPort, _ := strconv.Atoi(sp)
		l.ConeNAT(t, stunPort)
		c1, url1 := portchecker.Listen(t, host)
		c2, url2 := portchecker.Listen(t, host)
		l.Sh("cat > /etc/config/natmap <<'EOF'\n" + `
config global
	option reachability_url '` + url2 + `'
config global
	option reachability_url '` + url1 + `'
config global
	option interval '30'
config natmap
	option enable '1'
	option stun_server '` + stun + `'
` + "EOF")
		checks := func(c *portchecker.Checker) string {
			all, yes := c.Checks()
			return fmt.Sprintf("%d/%d", yes, all)
		}
		for _, c := range []struct {
			name, args string
			state      string // the reach verdict's; "" for anything but port-check's
			c1, c2     string // the checkers' reached/asked, after
		}{
			{"the config's", `{}`, "reachable", "1/1", "0/0"},
			{"the argument's", `{"reachability_url":"` + url2 + `"}`, "reachable", "1/1", "1/1"},
			{"none", `{"reachability_url":""}`, "", "1/1", "1/1"},
		} {
			v := ubusJSON(t, l, "ubus call natmap check '"+c.args+"'")
			reach, _ := v["reach"].(map[string]any)
			switch {
			case v["public_ip"] != l.NATAddr():
				t.Errorf("%s: public address %v, want %s behind the NAT: %v", c.name, v["public_ip"], l.NATAddr(), v)
			case c.state != "" && (reach["state"] != c.state || reach["method"] != "port-check"):
				t.Errorf("%s: reach %v, want %s by port-check (report %v)", c.name, reach, c.state, v)
			case c.state == "" && reach["method"] == "port-check":
				t.Errorf("%s: reach %v by a port checker", c.name, reach)
			}
			if checks(c1) != c.c1 || checks(c2) != c.c2 {
				t.Errorf("%s: checkers reached/asked %s and %s, want %s and %s", c.name, checks(c1), checks(c2), c.c1, c.c2)
			}
		}
		// natmap check validates the URL; its error is the reply.
		if v := ubusJSON(t, l, `ubus call natmap check '{"reachability_url":"ftp://checker/{port}"}'`); v["ok"] != false ||
			!strings.Contains(fmt.Sprint(v["error"]), "natmap check failed: --reachability-url: ") {
			t.Errorf("check with an ftp URL: %v", v)
		}
		if v := ubusJSON(t, l, `ubus call natmap check '{"reachability_url":5}'`); v["ok"] != false ||
			!strings.Contains(fmt.Sprint(v["error"]), "reachability_url must be a string") {
			t.Errorf("check with a number for the URL: %v", v)
		}
	})

	t.Run("firewall4", func(t *testing.T) {
		waitMapped(t, l, "a", "b")
		// The lab's interface moves to the wan zone, so the host is the
		// internet; the user's own rule for a's port drops the host.
		l.Sh(`uci delete firewall.@zone[0].device && uci add_list firewall.@zone[1].device=lab0 &&
			uci add firewall rule >/dev/null && uci set firewall.@rule[-1].name=drop-some &&
			uci set firewall.@rule[-1].src=wan && uci set firewall.@rule[-1].proto=tcp &&
			uci set firewall.@rule[-1].dest_port=18080 && uci set firewall.@rule[-1].src_ip=` + host + ` &&
			uci set firewall.@rule[-1].target=DROP && uci commit firewall`)
		// get fetches / of uhttpd through a section's forward port.
		get := func(port int) error {
			c := &http.Client{Timeout: 3 * time.Second}
			resp, err := c.Get(fmt.Sprintf("http://%s:%d/", l.Addr(), port))
			if err != nil {
				return err
			}
			resp.Body.Close()
			return nil
		}
		check := func(when string) {
			t.Helper()
			var out string
			if !wait.Until(30*time.Second, func() bool {
				out = l.Sh("nft list chain inet fw4 input_wan")
				return strings.Contains(out, `"natmap:a"`) && strings.Contains(out, `"natmap:b"`)
			}) {
				t.Fatalf("%s: natmap's rules missing from input_wan:\n%s", when, out)
			}
			user, a, jump := strings.Index(out, "drop-some"), strings.Index(out, `"natmap:a"`), strings.Index(out, "jump reject_from_wan")
			if user < 0 || !(user < a && a < jump) || !strings.Contains(out, "tcp dport 18080") {
				t.Errorf("%s: want the user's drop, then natmap's accept, then the zone's jump:\n%s", when, out)
			}
			// With packets: natmap's accept opens b's port; the user's
			// drop still closes a's to the host.
			if err := get(18081); err != nil {
				t.Errorf("%s: section b's port from the wan: %v", when, err)
			}
			if err := get(18080); err == nil {
				t.Errorf("%s: section a's port answers the host its user's rule drops", when)
			}
		}
		l.Sh("fw4 reload")
		check("after fw4 reload")
		l.Sh("/etc/init.d/firewall restart")
		check("after firewall restart")
		l.Sh("/etc/init.d/natmap stop")
		if out := l.Sh("nft list table inet fw4"); strings.Contains(out, "natmap:") {
			t.Errorf("natmap's rules left after stop:\n%s", out)
		}
		if natmapPID(l) != "" {
			t.Error("natmap still runs after stop")
		}
		if out, err := l.Exec(nil, "/etc/init.d/natmap status"); err == nil || !strings.Contains(out, "inactive") {
			t.Errorf("status after stop: %v %s", err, out)
		}
		l.Sh("/etc/init.d/natmap start")
		waitMapped(t, l, "a", "b") // b's relay listens once it is mapped
		check("after start")
	})

	t.Run("opkg upgrade keeps the config", func(t *testing.T) {
		before := l.Sh("cat /etc/config/natmap")
		l.Sh("sed -i 's#/feed1$#/feed2#' /etc/opkg/customfeeds.conf && opkg update && opkg upgrade natmap luci-app-natmap")
		if out := l.Sh("opkg list-installed"); !strings.Contains(out, "natmap - 1.0.1-r1") || !strings.Contains(out, "luci-app-natmap - 1.0.1-r1") {
			t.Fatalf("after upgrade:\n%s", out)
		}
		if after := l.Sh("cat /etc/config/natmap"); after != before {
			t.Errorf("/etc/config/natmap changed on upgrade:\n%s\nwas:\n%s", after, before)
		}
		waitMapped(t, l, "a", "b")
		if out := l.Sh("natmap --version 2>&1 || true"); !strings.Contains(out, "1.0.1") {
			t.Errorf("natmap --version: %s", out)
		}
	})

	// What removal must leave behind: nothing of natmap's.
	gone := func(t *testing.T, how string) {
		t.Helper()
		if out, err := l.Exec(nil, "pidof natmap"); err == nil {
			t.Errorf("%s: natmap still runs (pid %s)", how, out)
		}
		for cmd, what := range map[string]string{
			"test -e /var/run/natmap/natmap.sock":           "the control socket",
			"ubus list natmap":                              "the ubus object",
			"ls /etc/rc.d/ | grep natmap":                   "an rc.d link",
			"uci -q get firewall.natmap":                    "the firewall include",
			"nft list table inet fw4 | grep -q natmap:":     "a firewall rule",
			"test -e /usr/bin/natmap":                       "the binary",
			"ubus call service list | grep -q '\"natmap\"'": "a procd service",
		} {
			if out, err := l.Exec(nil, cmd); err == nil {
				t.Errorf("%s: %s left (%s): %s", how, what, cmd, out)
			}
		}
	}
	t.Run("opkg remove", func(t *testing.T) {
		l.Sh("opkg remove luci-app-natmap natmap")
		// rpcd re-reads its plugins when told (the LuCI package's postrm).
		wait.Until(20*time.Second, func() bool {
			_, err := l.Exec(nil, "ubus list natmap")
			return err != nil
		})
		gone(t, "opkg remove")
	})

	t.Run("apk add by name", func(t *testing.T) {
		// The release's index, signed (scripts/ipk.sh ran apk mkndx
		// --sign-key), and copies of the feed spoiled three ways.
		good := feeds["1.0.0"]
		pkg := "natmap_1.0.0-r1_x86_64.apk"
		spoilt := func(name string, spoil func(dir string)) string {
			dir := t.TempDir()
			for _, f := range []string{pkg, "luci-app-natmap_1.0.0-r1_noarch.apk", "packages.adb"} {
				writeFile(t, filepath.Join(dir, f), readFile(t, filepath.Join(good, f)), 0o644)
			}
			spoil(dir)
			mux.Handle("/"+name+"/", http.StripPrefix("/"+name+"/", http.FileServer(http.Dir(dir))))
			return name
		}
		// An index changed after signing: a package's description.
		tampered := spoilt("apk-tampered", func(dir string) {
			adb := filepath.Join(dir, "packages.adb")
			writeFile(t, adb, string(tamperIndex(t, []byte(readFile(t, adb)))), 0o644)
		})
		// An index signed by another key than the one installed.
		otherKey := spoilt("apk-other-key", func(dir string) {
			other, err := apk.GenerateKey(nil)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(dir, "other.sec"), string(other.Private), 0o600)
			mkndx := exec.Command(apkTools, "mkndx", "--allow-untrusted", "--sign-key", filepath.Join(dir, "other.sec"),
				"--pkgname-spec", "${name}_${version}_${arch}.apk", "-o", "packages.adb", pkg)
			mkndx.Dir = dir
			if out, err := mkndx.CombinedOutput(); err != nil {
				t.Fatalf("apk mkndx: %v\n%s", err, out)
			}
		})
		// A package changed after indexing (one byte, same size).
		badPkg := spoilt("apk-bad-package", func(dir string) {
			b := []byte(readFile(t, filepath.Join(dir, pkg)))
			b[len(b)/2] ^= 0x20
			writeFile(t, filepath.Join(dir, pkg), string(b), 0o644)
		})
		mux.Handle("/apk/", http.StripPrefix("/apk/", http.FileServer(http.Dir(good))))
		repo := func(name string) {
			l.Sh("echo http://" + web + "/" + name + "/packages.adb > /etc/apk/repositories.d/natmap.list")
		}
		// refused: apk update and apk add do not take natmap from the repository.
		refused := func(how, wantUpdate, wantAdd string) {
			t.Helper()
			out, _ := l.Exec(nil, "apk update 2>&1")
			if !strings.Contains(out, wantUpdate) {
				t.Errorf("%s: apk update does not say %q:\n%s", how, wantUpdate, out)
			}
			out, err := l.Exec(nil, "apk add natmap 2>&1")
			if err == nil || !strings.Contains(out, wantAdd) {
				t.Errorf("%s: apk add natmap: %v, want an error saying %q:\n%s", how, err, wantAdd, out)
			}
			if _, err := l.Exec(nil, "test -e /usr/bin/natmap"); err == nil {
				t.Fatalf("%s: natmap installed", how)
			}
			// A failed apk add leaves the name in /etc/apk/world.
			l.Sh("sed -i '/^natmap$/d' /etc/apk/world")
		}
		repo("apk")
		refused("no key in /etc/apk/keys", "UNTRUSTED signature", "no such package")
		l.Sh("cat > /etc/apk/keys/natmap-feed.pem <<'EOF'\n" + string(apkKey.Public) + "EOF")
		repo(tampered)
		refused("an index changed after signing", "UNTRUSTED signature", "no such package")
		repo(otherKey)
		refused("an index signed by another key", "UNTRUSTED signature", "no such package")
		repo(badPkg)
		refused("a package changed after indexing", "OK:", "ERROR")

		// The signed index and the key: no --allow-untrusted anywhere.
		repo("apk")
		if out := l.Sh("apk update 2>&1"); strings.Contains(out, "UNTRUSTED") {
			t.Errorf("apk update with the key installed:\n%s", out)
		}
		l.Sh("apk add natmap")
		if out := l.Sh("apk info -vv 2>/dev/null | grep natmap || apk info natmap"); !strings.Contains(out, "natmap-1.0.0-r1") {
			t.Errorf("apk info:\n%s", out)
		}
		l.Sh("test -x /usr/bin/natmap && test -L /etc/rc.d/S99natmap && uci -q get firewall.natmap")
		l.Sh("cat > /etc/config/natmap <<'EOF'\n" + config + "EOF")
		l.Sh("/etc/init.d/natmap restart")
		waitMapped(t, l, "a", "b")
		l.Sh("apk del natmap")
		gone(t, "apk del")
	})
	t.Logf("OpenWrt lab tests took %s (packages, boot and all steps)", time.Since(begin).Round(time.Second))
}

// tamperIndex changes a letter of a package description in an apk index
// ("ADBd" and the raw deflate of the whole index, as apk mkndx writes it)
// and returns the index uncompressed, which apk reads as well: the
// signature no longer matches.
func tamperIndex(t *testing.T, adb []byte) []byte {
	t.Helper()
	if !bytes.HasPrefix(adb, []byte("ADBd")) {
		t.Fatalf("index starts with %q, want ADBd", adb[:4])
	}
	raw, err := io.ReadAll(flate.NewReader(bytes.NewReader(adb[4:])))
	if err != nil || !bytes.HasPrefix(raw, []byte("ADB.indx")) {
		t.Fatalf("index: %v, %q", err, raw[:min(8, len(raw))])
	}
	i := bytes.Index(raw, []byte("port mappings"))
	if i < 0 {
		t.Fatal("index: no description to change")
	}
	raw[i] = 'P'
	return raw
}
