package openwrt_test

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/testkit/testgate"
)

// shellFiles are the package's shell scripts (the ipk's control scripts
// are checked in ipk_test.go).
var shellFiles = []string{initScript, rpcdPlugin, fwInclude, uciDefaults}

func TestShellSyntax(t *testing.T) {
	for _, sh := range shells(t) {
		for _, f := range shellFiles {
			if _, stderr, code := run(t, nil, "", sh[0], append(sh[1:], "-n", f)...); code != 0 {
				t.Errorf("%s -n %s: %s", shellName(sh), f, stderr)
			}
		}
	}
	if _, stderr, code := run(t, nil, "", "bash", "-n", "../scripts/ipk.sh"); code != 0 {
		t.Errorf("bash -n scripts/ipk.sh: %s", stderr)
	}
}

// TestShellcheck runs shellcheck when it is installed.
func TestShellcheck(t *testing.T) {
	if _, err := exec.LookPath("shellcheck"); err != nil {
		testgate.Unmet(t, "openwrt: shellcheck is not installed (Debian package shellcheck; scripts/deps.sh installs it)")
	}
	args := []string{"-s", "sh", "-e", "SC1090,SC1091,SC2034,SC3043"}
	// SC2034: the init script's variables are read by rc.common;
	// SC3043: local, which OpenWrt's ash (and dash) have.
	if out, _, code := run(t, nil, "", "shellcheck", append(args, shellFiles...)...); code != 0 {
		t.Errorf("shellcheck:\n%s", out)
	}
	if out, _, code := run(t, nil, "", "shellcheck", "../scripts/ipk.sh"); code != 0 {
		t.Errorf("shellcheck scripts/ipk.sh:\n%s", out)
	}
}

// fakeJshn is just enough of libubox's jshn.sh for the plugin: json_load
// flattens the input with awk into lines "path<TAB>type<TAB>value" (path
// "a/1" for element 1 of array a), which json_select, json_get_type,
// json_get_keys and json_get_var read as jshn does; output is flat objects
// of strings and booleans. Its variables are its own (_jcur, not the fake
// functions.sh's _cur), as the real ones are.
const fakeJshn = `
json_init() { _json=; }
_json_add() { _json="${_json:+$_json,}\"$1\":$2"; }
json_add_string() {
	_json_add "$1" "\"$(printf '%s' "$2" | sed 's/\\/\\\\/g; s/"/\\"/g')\""
}
json_add_boolean() {
	case "$2" in 1) _json_add "$1" true ;; *) _json_add "$1" false ;; esac
}
json_dump() { printf '{%s}\n' "$_json"; }
json_load() {
	_jcur=
	_flat=$(printf '%s' "$1" | awk '
function ws() { while (i <= n && index(" \t\r\n", substr(s, i, 1))) i++ }
function fail() { bad = 1; exit 1 }
function str(   r, c) {
	if (substr(s, i, 1) != "\"") fail()
	i++; r = ""
	while (i <= n) {
		c = substr(s, i, 1); i++
		if (c == "\"") return r
		if (c == "\\") {
			c = substr(s, i, 1); i++
			# kept escaped: a line of the flat form holds no newline
			if (c == "n" || c == "t" || c == "r" || c == "b" || c == "f") r = r "\\" c
			else if (c == "u") { r = r "\\u" substr(s, i, 4); i += 4 }
			else r = r c
			continue
		}
		r = r c
	}
	fail()
}
function emit(p, t, v) { printf "%s\t%s\t%s\n", p, t, v }
function val(p,   c, k, x, num) {
	ws(); c = substr(s, i, 1)
	if (c == "{") {
		if (p != "") emit(p, "object", "")
		i++; ws()
		if (substr(s, i, 1) == "}") { i++; return }
		for (;;) {
			ws(); k = str(); ws()
			if (substr(s, i, 1) != ":") fail()
			i++; val(p == "" ? k : p "/" k); ws()
			c = substr(s, i, 1); i++
			if (c == "}") return
			if (c != ",") fail()
		}
	}
	if (p == "") fail()
	if (c == "[") {
		emit(p, "array", ""); i++; ws(); x = 0
		if (substr(s, i, 1) == "]") { i++; return }
		for (;;) {
			x++; val(p "/" x); ws()
			c = substr(s, i, 1); i++
			if (c == "]") return
			if (c != ",") fail()
		}
	}
	if (c == "\"") { emit(p, "string", str()); return }
	if (substr(s, i, 4) == "true") { i += 4; emit(p, "boolean", 1); return }
	if (substr(s, i, 5) == "false") { i += 5; emit(p, "boolean", 0); return }
	if (substr(s, i, 4) == "null") { i += 4; emit(p, "null", ""); return }
	num = ""
	while (i <= n && index("+-0123456789.eE", substr(s, i, 1))) { num = num substr(s, i, 1); i++ }
	if (num == "") fail()
	emit(p, (num ~ /[.eE]/) ? "double" : "int", num)
}
{ s = s $0 "\n" }
END {
	if (bad) exit 1
	n = length(s); i = 1; val(""); ws()
	if (i <= n) exit 1
}')
}
json_get_type() {
	_v=$(printf '%s\n' "$_flat" | awk -F '\t' -v p="$_jcur$2" '$1 == p { print $2 }')
	eval "$1=\$_v"
	[ -n "$_v" ]
}
json_get_var() {
	_t=$(printf '%s\n' "$_flat" | awk -F '\t' -v p="$_jcur$2" '$1 == p { print $2 }')
	_v=$(printf '%s\n' "$_flat" | awk -F '\t' -v p="$_jcur$2" '$1 == p { sub(/^[^\t]*\t[^\t]*\t/, ""); print }')
	eval "$1=\$_v"
	[ -n "$_t" ]
}
json_get_keys() {
	_v=$(printf '%s\n' "$_flat" | awk -F '\t' -v p="$_jcur" 'index($1, p) == 1 && index(substr($1, length(p) + 1), "/") == 0 && $1 != p { printf "%s%s", sep, substr($1, length(p) + 1); sep = " " }')
	eval "$1=\$_v"
}
json_select() {
	case "$1" in
	..) _jcur=${_jcur%/}; case "$_jcur" in */*) _jcur=${_jcur%/*}/ ;; *) _jcur= ;; esac ;;
	*)
		json_get_type _st "$1"
		case "$_st" in
		object | array) _jcur="$_jcur$1/" ;;
		*) echo "WARNING: Variable '$1' does not exist or is not an array/object"; return 1 ;;
		esac
		;;
	esac
}
`

type plugin struct {
	path string
	rec  *recorder
	sock string
}

// newPlugin installs the rpcd plugin with a fake jshn.sh and a natmap stub
// that prints $FAKE_OUT, prints $FAKE_ERR on stderr and exits $FAKE_RC.
//
// NATMAP_TEST_JSHN_SH names libubox's real jshn.sh to use instead (with its
// jshn on PATH).
func newPlugin(t *testing.T) *plugin {
	dir := t.TempDir()
	jshn := os.Getenv("NATMAP_TEST_JSHN_SH")
	if jshn == "" {
		jshn = filepath.Join(dir, "jshn.sh")
		writeFile(t, jshn, fakeJshn, 0o644)
	}
	rec := newRecorder(t)
	natmap := rec.stub(t, "natmap", `[ -z "$FAKE_OUT" ] || printf '%s\n' "$FAKE_OUT"
[ -z "$FAKE_ERR" ] || printf '%s\n' "$FAKE_ERR" >&2
exit "${FAKE_RC:-0}"`)
	// config_load reads the UCI file $FAKE_UCI_CONFIG.
	functions := filepath.Join(dir, "functions.sh")
	writeFile(t, functions, fakeFunctionsSh, 0o644)
	p := rewrite(t, rpcdPlugin, filepath.Join(dir, "natmap"),
		"/usr/share/libubox/jshn.sh", jshn, "/usr/bin/natmap", natmap, "/lib/functions.sh", functions)
	return &plugin{path: p, rec: rec, sock: filepath.Join(dir, "natmap.sock")}
}

func (p *plugin) call(t *testing.T, sh []string, stdin string, env []string, args ...string) map[string]any {
	t.Helper()
	env = append(env, "NATMAP_SOCKET="+p.sock)
	out, stderr, code := run(t, env, stdin, sh[0], append(append(sh[1:], p.path), args...)...)
	if code != 0 {
		t.Fatalf("plugin %v exited %d: %s", args, code, stderr)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("plugin %v printed %q, not a JSON object: %v", args, out, err)
	}
	return v
}

func TestRpcdPlugin(t *testing.T) {
	for _, sh := range shells(t) {
		t.Run(shellName(sh), func(t *testing.T) {
			if os.Getenv("NATMAP_TEST_JSHN_SH") != "" && !strings.Contains(sh[0], "busybox") {
				t.Skip("the real jshn.sh needs OpenWrt's ash (export -n)")
			}
			p := newPlugin(t)
			list := p.call(t, sh, "", nil, "list")
			want := map[string]any{"status": map[string]any{}, "reload": map[string]any{}, "restart": map[string]any{"section": "String"},
				"check": map[string]any{"udp": false, "ipv6": false, "stun": []any{}, "reachability_url": "String"}}
			if !reflect.DeepEqual(list, want) {
				t.Errorf("list: %v, want %v", list, want)
			}

			status := `{"mappings": [{"section": "web", "state": "mapped", "public_port": 24936}]}`
			if got := p.call(t, sh, "{}", []string{"FAKE_OUT=" + status}, "call", "status"); got["mappings"] == nil {
				t.Errorf("status: %v", got)
			}
			// The daemon is not running: no socket.
			got := p.call(t, sh, "{}", []string{"FAKE_RC=1", "FAKE_ERR=natmap: natmap daemon is not running"}, "call", "status")
			if got["ok"] != false || !strings.Contains(got["error"].(string), "not running") {
				t.Errorf("status without a daemon: %v", got)
			}
			for _, m := range []string{"reload", "restart"} {
				got := p.call(t, sh, `{"section":"web"}`, []string{"FAKE_RC=1"}, "call", m)
				if got["ok"] != false || !strings.Contains(got["error"].(string), "not running") {
					t.Errorf("%s without a daemon: %v", m, got)
				}
			}

			l, err := net.Listen("unix", p.sock)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			before := len(p.rec.calls(t))
			if got := p.call(t, sh, "{}", nil, "call", "reload"); !reflect.DeepEqual(got, map[string]any{"ok": true}) {
				t.Errorf("reload: %v", got)
			}
			got = p.call(t, sh, "{}", []string{"FAKE_RC=1", `FAKE_ERR=natmap: load /etc/config/natmap: line 3: "bad"`}, "call", "reload")
			if got["ok"] != false || got["error"] != `load /etc/config/natmap: line 3: "bad"` {
				t.Errorf("failed reload: %v", got)
			}
			if got := p.call(t, sh, `{"section":"my web"}`, nil, "call", "restart"); got["ok"] != true {
				t.Errorf("restart: %v", got)
			}
			got = p.call(t, sh, `{ "section" : "nope" }`, []string{"FAKE_RC=1", `FAKE_ERR=natmap: no section "nope" (sections: web)`}, "call", "restart")
			if got["ok"] != false || got["error"] != `no section "nope" (sections: web)` {
				t.Errorf("restart of an unknown section: %v", got)
			}
			calls := p.rec.calls(t)[before:]
			want2 := []string{"natmap reload", "natmap reload", "natmap restart -- my web", "natmap restart -- nope"}
			if len(calls) != len(want2) {
				t.Fatalf("natmap calls %q, want %q", calls, want2)
			}
			for i := range calls {
				if joinArgs(calls[i]) != want2[i] {
					t.Errorf("natmap call %d: %q, want %q", i, calls[i], want2[i])
				}
			}
			if calls[2][3] != "my web" {
				t.Errorf("section split: %q", calls[2])
			}

			for _, in := range []string{"", "{}", `{"section":""}`} {
				got := p.call(t, sh, in, nil, "call", "restart")
				if got["ok"] != false || !strings.Contains(got["error"].(string), "section") {
					t.Errorf("restart with %q: %v", in, got)
				}
			}
			for in, w := range map[string]string{
				`{"section":["a"]}`: "section must be a string", `{"section":5}`: "section must be a string",
				`{"section":{"a":"b"}}`: "section must be a string", `{"section":true}`: "section must be a string",
				`{bad`: "not a JSON object", `["web"]`: "not a JSON object",
				`{"section":"web","x":"` + strings.Repeat("a", 70000) + `"}`: "arguments too large",
			} {
				got := p.call(t, sh, in, nil, "call", "restart")
				if e, _ := got["error"].(string); got["ok"] != false || !strings.Contains(e, w) {
					t.Errorf("restart with %.40q: %v, want an error %q", in, got, w)
				}
			}
			if got := p.call(t, sh, "{}", nil, "call", "bogus"); got["ok"] != false {
				t.Errorf("unknown method: %v", got)
			}
			if n := len(p.rec.calls(t)) - before; n != 4 {
				t.Errorf("natmap run %d times, want 4 (no run for bad arguments)", n)
			}
		})
	}
}

// natmapCalls are the recorded calls of the natmap stub from the index from.
func (p *plugin) natmapCalls(t *testing.T, from int) []string {
	t.Helper()
	var out []string
	for _, c := range p.rec.calls(t)[from:] {
		if c[0] == "natmap" {
			out = append(out, strings.Join(c, "\x1f"))
		}
	}
	return out
}

// natmapArgv is a natmap call as natmapCalls records it.
func natmapArgv(args ...string) string {
	return strings.Join(append([]string{"natmap"}, args...), "\x1f")
}

// uciConfig is the environment that has the fake config_load read
// /etc/config/natmap's text conf ("" for no file).
func uciConfig(t *testing.T, conf string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "natmap")
	if conf != "" {
		writeFile(t, path, conf, 0o644)
	}
	return "FAKE_UCI_CONFIG=" + path
}

func TestRpcdPluginCheck(t *testing.T) {
	const report = `{"protocol":"udp","answers":[{"server":"a:3478","public_ip":"198.51.100.1","public_port":5}],"verdict":"full-cone","exit_status":0}`
	check := func(args ...string) string {
		return natmapArgv(append([]string{"check", "--json", "--timeout", "15s"}, args...)...)
	}
	for _, sh := range shells(t) {
		t.Run(shellName(sh), func(t *testing.T) {
			if os.Getenv("NATMAP_TEST_JSHN_SH") != "" && !strings.Contains(sh[0], "busybox") {
				t.Skip("the real jshn.sh needs OpenWrt's ash (export -n)")
			}
			p := newPlugin(t)
			env := func(e ...string) []string { return append([]string{p.rec.path()}, e...) }

			// The servers given, as natmap takes them, each one argv word.
			before := len(p.rec.calls(t))
			in := `{"udp":true,"ipv6":true,"ubus_rpc_session":"0123","stun":["stun.example.org","198.51.100.1:3478","[2001:db8::1]:3478","2001:db8::2","[2001:db8::3]","stun_1.example-x.org:65535","[::ffff:198.51.100.2]:1"]}`
			got := p.call(t, sh, in, env("FAKE_OUT="+report), "call", "check")
			var want map[string]any
			json.Unmarshal([]byte(report), &want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("check: %v, want natmap's report %v", got, want)
			}
			wantCall := check("-u", "-6", "-s", "stun.example.org", "-s", "198.51.100.1:3478", "-s", "[2001:db8::1]:3478",
				"-s", "2001:db8::2", "-s", "[2001:db8::3]", "-s", "stun_1.example-x.org:65535", "-s", "[::ffff:198.51.100.2]:1")
			if c := p.natmapCalls(t, before); len(c) != 1 || c[0] != wantCall {
				t.Errorf("natmap calls %q, want %q", c, wantCall)
			}

			// Not a full cone, or no answer: natmap's report still, whatever its exit status.
			for _, rc := range []string{"1", "3"} {
				before = len(p.rec.calls(t))
				got = p.call(t, sh, `{"udp":false,"stun":["a.example","b.example"]}`, env("FAKE_OUT="+report, "FAKE_RC="+rc, "FAKE_ERR=natmap check: warning"), "call", "check")
				if !reflect.DeepEqual(got, want) {
					t.Errorf("check, natmap exit %s: %v", rc, got)
				}
				if c := p.natmapCalls(t, before); len(c) != 1 || c[0] != check("-s", "a.example", "-s", "b.example") {
					t.Errorf("natmap calls %q", c)
				}
			}
			// natmap prints no report: its first error line.
			got = p.call(t, sh, `{"stun":["a.example"]}`, env("FAKE_RC=2", "FAKE_ERR=natmap check: bad thing\nUsage: natmap check"), "call", "check")
			if got["ok"] != false || got["error"] != "natmap check failed: bad thing" {
				t.Errorf("check, natmap usage error: %v", got)
			}

			// Bad arguments: an error, and natmap does not run.
			before = len(p.rec.calls(t))
			bad := map[string]string{
				`{bad`:                  "not a JSON object",
				`{"stun":["a.example"]`: "not a JSON object",
				`{"stun":["a.example"],"x":"` + strings.Repeat("a", 70000) + `"}`: "arguments too large",
				`{"udp":"yes","stun":["a"]}`:                                      "udp must be true or false",
				`{"udp":1,"stun":["a"]}`:                                          "udp must be true or false",
				`{"ipv6":null,"stun":["a"]}`:                                      "ipv6 must be true or false",
				`{"stun":"a.example"}`:                                            "stun must be a list",
				`{"stun":{"a":"b"}}`:                                              "stun must be a list",
				`{"stun":[]}`:                                                     "no STUN server",
				`{"stun":[5]}`:                                                    "not a STUN server",
				`{"stun":[["a"]]}`:                                                "not a STUN server",
				`{"stun":["a","b","c","d","e","f","g","h","i"]}`:                  "too many STUN servers",
			}
			for _, srv := range []string{"", "a;reboot", "$(reboot)", "`reboot`", "a b", "a\nb", "a\tb", "-h", "--json", "a:0", "a:65536", "a:080",
				"a:", ":80", "[::1", "[::1]:", "[::1]x", "[::1]:0", "[zz::1]:80", "[a]:80", "a..b", ".a", "a/b", "a'b", `a\"b`, "a|b", "a&b", "a>b", "*",
				"fe80::1%eth0", "a:1:2:g", "1.2.3.4:5:6", "[::1::2]:80", "12345::1", "1:::2", "[1.2.3.4::1]:5", "h:1x", strings.Repeat("a", 254), "[" + strings.Repeat("1:", 30) + "1]"} {
				bad[`{"stun":["ok.example",`+string(must(json.Marshal(srv)))+`]}`] = "not a STUN server"
			}
			for in, w := range bad {
				got := p.call(t, sh, in, env("FAKE_OUT="+report), "call", "check")
				if e, _ := got["error"].(string); got["ok"] != false || !strings.Contains(e, w) {
					t.Errorf("check %s: %v, want an error %q", in, got, w)
				}
			}
			if c := p.natmapCalls(t, before); len(c) != 0 {
				t.Errorf("natmap ran with bad arguments: %q", c)
			}

			// No stun: the servers of /etc/config/natmap.
			for _, c := range []struct {
				name string
				conf string // /etc/config/natmap
				want string // the natmap call, or "error: ..."
			}{
				{"first enabled section", `
config natmap
	option enable '0'
	option stun_server 'off.example'
config natmap
	option enable 'yes'
	list stun_server 's1.example'
	list stun_server 's2.example:3478'
config natmap
	option enable '1'
	option stun_server 'later.example'
`, check("-s", "s1.example", "-s", "s2.example:3478")},
				{"global default", `
config natmap
	option enable '1'
config global
	option stun_server 'g1.example,g2.example:19302'
`, check("-s", "g1.example", "-s", "g2.example:19302")},
				{"nothing enabled", `
config natmap
	option enable '0'
config natmap
	option enable '0'
	option stun_server 'stunserver.stunprotocol.org'
config global
	option stun_server 'g.example'
`, check("-s", "stunserver.stunprotocol.org")},
				{"global only", "config global\n\toption stun_server 'g.example'\n", check("-s", "g.example")},
				{"the last global section", `
config global
	option stun_server 'g1.example'
config global
	list stun_server 'g2.example'
	list stun_server 'g3.example'
config natmap
	option enable 'on'
`, check("-s", "g2.example", "-s", "g3.example")},
				// As the daemon merges them: a later global section
				// overrides only what it sets.
				{"a later global section without servers", `
config global
	option stun_server 'g1.example'
config global
	option interval '30'
config natmap
	option enable 'on'
`, check("-s", "g1.example")},
				{"no config", "", "error: no STUN server"},
				{"bad config", "config natmap\n\toption enable '1'\n\toption stun_server 'ok.example $(reboot)'\n",
					"error: not a STUN server: $(reboot)"},
			} {
				before = len(p.rec.calls(t))
				got := p.call(t, sh, `{"udp":false}`, env("FAKE_OUT="+report, uciConfig(t, c.conf)), "call", "check")
				calls := p.natmapCalls(t, before)
				if w, ok := strings.CutPrefix(c.want, "error: "); ok {
					if e, _ := got["error"].(string); got["ok"] != false || !strings.Contains(e, w) || len(calls) != 0 {
						t.Errorf("%s: %v, natmap calls %q; want an error %q", c.name, got, calls, w)
					}
					continue
				}
				if !reflect.DeepEqual(got, want) || len(calls) != 1 || calls[0] != c.want {
					t.Errorf("%s: %v, natmap calls %q; want %q", c.name, got, calls, c.want)
				}
			}
			// The port checker: reachability_url, else the config's global
			// section's, the last one that sets it (as the daemon reads it);
			// "" for none. One argv word with its flag, whatever it holds.
			const url = "http://checker.example/c?ip={ip}&port={port}&proto={proto}"
			const stunConf = "config natmap\n\toption enable '1'\n\toption stun_server 's.example'\n"
			for _, c := range []struct {
				name, in, conf string
				want           string // the natmap call
			}{
				{"the global section's", `{}`, stunConf + "config global\n\toption reachability_url '" + url + "'\n",
					check("--reachability-url="+url, "-s", "s.example")},
				{"the last global section's", `{"udp":true}`, stunConf + `
config global
	option reachability_url 'http://first.example/{port}'
config global
	option reachability_url 'http://second.example/{port}'
config global
	option stun_server 'g.example'
`, check("-u", "--reachability-url=http://second.example/{port}", "-s", "s.example")},
				{"with the servers given", `{"stun":["a.example"]}`, "config global\n\toption reachability_url '" + url + "'\n",
					check("--reachability-url="+url, "-s", "a.example")},
				{"a section's is not the check's", `{}`, stunConf + "\toption reachability_url 'http://section.example/{port}'\n",
					check("-s", "s.example")},
				{"the argument's over the config's", `{"reachability_url":"https://arg.example/{ip}/{port}"}`,
					stunConf + "config global\n\toption reachability_url '" + url + "'\n",
					check("--reachability-url=https://arg.example/{ip}/{port}", "-s", "s.example")},
				{"empty: none", `{"reachability_url":""}`, stunConf + "config global\n\toption reachability_url '" + url + "'\n",
					check("-s", "s.example")},
				{"no config", `{"stun":["a.example"],"reachability_url":"http://arg.example/{port}"}`, "",
					check("--reachability-url=http://arg.example/{port}", "-s", "a.example")},
				{"as it is", `{"stun":["a.example"],"reachability_url":"-h $(reboot) ` + "`x`" + `;a|b"}`, "",
					check("--reachability-url=-h $(reboot) `x`;a|b", "-s", "a.example")},
			} {
				before = len(p.rec.calls(t))
				got := p.call(t, sh, c.in, env("FAKE_OUT="+report, uciConfig(t, c.conf)), "call", "check")
				if calls := p.natmapCalls(t, before); !reflect.DeepEqual(got, want) || len(calls) != 1 || calls[0] != c.want {
					t.Errorf("reachability_url, %s: %v, natmap calls %q; want %q", c.name, got, calls, c.want)
				}
			}
			before = len(p.rec.calls(t))
			for _, in := range []string{`{"reachability_url":5}`, `{"reachability_url":["http://a/{port}"]}`,
				`{"reachability_url":true}`, `{"reachability_url":null}`, `{"reachability_url":{"a":"b"}}`} {
				got := p.call(t, sh, in, env("FAKE_OUT="+report, uciConfig(t, stunConf)), "call", "check")
				if e, _ := got["error"].(string); got["ok"] != false || e != "reachability_url must be a string: a URL, or empty for none" {
					t.Errorf("check %s: %v, want an error", in, got)
				}
			}
			if c := p.natmapCalls(t, before); len(c) != 0 {
				t.Errorf("natmap ran with a bad reachability_url: %q", c)
			}
			// natmap check validates the URL: its usage error is the reply.
			got = p.call(t, sh, `{"reachability_url":"ftp://x/"}`, env("FAKE_RC=2",
				"FAKE_ERR=natmap check: --reachability-url: not an http or https URL\nUsage: natmap check", uciConfig(t, stunConf)), "call", "check")
			if got["ok"] != false || got["error"] != "natmap check failed: --reachability-url: not an http or https URL" {
				t.Errorf("check with a URL natmap refuses: %v", got)
			}

			// Empty input is no argument at all.
			before = len(p.rec.calls(t))
			got = p.call(t, sh, "", env("FAKE_OUT="+report, uciConfig(t, "config global\n\toption stun_server 'g.example'\n")), "call", "check")
			if c := p.natmapCalls(t, before); !reflect.DeepEqual(got, want) || len(c) != 1 || c[0] != check("-s", "g.example") {
				t.Errorf("check without input: %v, natmap calls %q", got, c)
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestFirewallInclude(t *testing.T) {
	for _, sh := range shells(t) {
		t.Run(shellName(sh), func(t *testing.T) {
			dir := t.TempDir()
			rec := newRecorder(t)
			done := filepath.Join(dir, "done")
			natmap := rec.stub(t, "natmap", "sleep 2; : >"+shq(done)+"; exit 1")
			inc := rewrite(t, fwInclude, filepath.Join(dir, "firewall.include"), "/usr/bin/natmap", natmap)
			sock := filepath.Join(dir, "natmap.sock")
			// As fw4 runs it: sourced by sh -c, with other code after it
			// under fw3; it must neither exit nor fail nor wait.
			source := func() {
				t.Helper()
				start := time.Now()
				out, stderr, code := run(t, []string{"NATMAP_SOCKET=" + sock}, "", sh[0], append(sh[1:], "-c", ". "+shq(inc)+"; echo after")...)
				if code != 0 || out != "after\n" || stderr != "" {
					t.Errorf("include: %q %q exit %d", out, stderr, code)
				}
				if d := time.Since(start); d > time.Second {
					t.Errorf("include took %v: it must not wait for natmap", d)
				}
			}
			source()
			if calls := rec.calls(t); len(calls) != 0 {
				t.Errorf("natmap called without a daemon: %q", calls)
			}
			l, err := net.Listen("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			source()
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) {
				if _, err := os.Stat(done); err == nil {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if calls := rec.calls(t); len(calls) != 1 || joinArgs(calls[0]) != "natmap firewall-sync" {
				t.Errorf("natmap calls %q, want one firewall-sync", calls)
			}
		})
	}
}

// fakeUci keeps the config as lines "KEY=VALUE" in $UCI_DB and pending
// changes in $UCI_DB.changes; enough of uci(1) for the package's scripts.
const fakeUci = `
db=$UCI_DB
[ "$1" = -q ] && shift
touch "$db"
case "$1" in
show)
	grep "^$2[.=]" "$db" || exit 1 ;;
get)
	v=$(grep "^$2=" "$db") || exit 1
	printf '%s\n' "${v#*=}" ;;
set)
	# as libuci: setting the value an option has is no change
	grep -qxF "$2" "$db" && exit 0
	k=${2%%=*}
	grep -v "^$k=" "$db" >"$db.new"; printf '%s\n' "$2" >>"$db.new"; mv "$db.new" "$db"
	echo "set $2" >>"$db.changes" ;;
delete)
	grep -v "^$2[.=]" "$db" >"$db.new"; mv "$db.new" "$db"
	echo "delete $2" >>"$db.changes" ;;
changes)
	[ ! -s "$db.changes" ] || cat "$db.changes" ;;
commit)
	rm -f "$db.changes" ;;
*)
	echo "fake uci: $*" >&2; exit 1 ;;
esac
`

type fakeUciDB struct {
	rec *recorder
	db  string
}

func newFakeUci(t *testing.T, rec *recorder, lines ...string) *fakeUciDB {
	db := filepath.Join(t.TempDir(), "uci.db")
	if len(lines) > 0 {
		writeFile(t, db, strings.Join(lines, "\n")+"\n", 0o644)
	}
	rec.stub(t, "uci", fakeUci)
	return &fakeUciDB{rec: rec, db: db}
}

func (u *fakeUciDB) env() []string { return []string{u.rec.path(), "UCI_DB=" + u.db} }

func (u *fakeUciDB) lines(t *testing.T) []string {
	b, err := os.ReadFile(u.db)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

func (u *fakeUciDB) commits(t *testing.T) int {
	n := 0
	for _, c := range u.rec.calls(t) {
		if c[0] == "uci" && strings.Contains(joinArgs(c), "commit firewall") {
			n++
		}
	}
	return n
}

func TestUciDefaults(t *testing.T) {
	const (
		base   = "firewall.@defaults[0]=defaults"
		inc    = "firewall.natmap=include"
		typ    = "firewall.natmap.type=script"
		path   = "firewall.natmap.path=/usr/share/natmap/firewall.include"
		compat = "firewall.natmap.fw4_compatible=1"
		reload = "firewall.natmap.reload=1"
	)
	for _, sh := range shells(t) {
		for _, fw4 := range []bool{true, false} {
			name := shellName(sh) + map[bool]string{true: "/fw4", false: "/fw3"}[fw4]
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				fw4Path := filepath.Join(dir, "fw4")
				if fw4 {
					writeFile(t, fw4Path, "#!/bin/sh\n", 0o755)
				}
				script := rewrite(t, uciDefaults, filepath.Join(dir, "99-natmap"), "/sbin/fw4", fw4Path)
				// As default_postinst and the boot run it: sourced in a subshell.
				apply := func(u *fakeUciDB) {
					t.Helper()
					out, stderr, code := run(t, u.env(), "", sh[0], append(sh[1:], "-c", "( . "+shq(script)+" ) && echo removed")...)
					if code != 0 || out != "removed\n" {
						t.Errorf("uci-defaults: %q %q exit %d: it must exit 0 to be removed", out, stderr, code)
					}
				}
				want := []string{base, inc, typ, path, compat}
				if !fw4 {
					want = append(want, reload)
				}

				// No firewall package: nothing.
				u := newFakeUci(t, newRecorder(t))
				apply(u)
				if l := u.lines(t); len(l) != 0 || u.commits(t) != 0 {
					t.Errorf("without a firewall config: %q", l)
				}

				// The include is added once.
				u = newFakeUci(t, newRecorder(t), base)
				apply(u)
				if l := u.lines(t); !sameSet(l, want) {
					t.Errorf("after install: %q, want %q", l, want)
				}
				if n := u.commits(t); n != 1 {
					t.Errorf("%d commits, want 1", n)
				}
				apply(u)
				if l := u.lines(t); !sameSet(l, want) {
					t.Errorf("after a second run: %q", l)
				}
				if n := u.commits(t); n != 1 {
					t.Errorf("a second run committed again (%d commits)", n)
				}

				// After fw3 became fw4 (a sysupgrade keeping the config):
				// fw3's reload option goes, fw4 would warn about it.
				if fw4 {
					u = newFakeUci(t, newRecorder(t), append(slicesClone(want), reload)...)
					apply(u)
					if l := u.lines(t); !sameSet(l, want) {
						t.Errorf("fw3's include under fw4: %q, want %q", l, want)
					}
				}

				// An include the user disabled stays disabled.
				u = newFakeUci(t, newRecorder(t), append(slicesClone(want), "firewall.natmap.enabled=0")...)
				apply(u)
				if l := u.lines(t); !sameSet(l, append(slicesClone(want), "firewall.natmap.enabled=0")) {
					t.Errorf("user's include: %q", l)
				}

				// A section named natmap that is not an include: left alone.
				other := []string{base, "firewall.natmap=rule", "firewall.natmap.name=mine"}
				u = newFakeUci(t, newRecorder(t), other...)
				apply(u)
				if l := u.lines(t); !sameSet(l, other) || u.commits(t) != 0 {
					t.Errorf("someone else's section: %q", l)
				}
			})
		}
	}
}

func slicesClone(s []string) []string { return append([]string(nil), s...) }

func sameSet(a, b []string) bool {
	m := map[string]int{}
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		m[x]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return true
}
