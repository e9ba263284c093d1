package openwrt_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/natmap-go/natmap/internal/oneproc"
)

// fakeFunctionsSh stands in for lib/functions.sh's config_*: config_load
// sources the UCI file $FAKE_UCI_CONFIG (its statements are shell commands,
// as `uci export` output is for functions.sh; no file, no sections), lists
// joined with a space as LIST_SEP does.
const fakeFunctionsSh = `
config() {
	_n=$((_n + 1))
	_cur=${2:-cfg$_n}
	CONFIG_SECTIONS="$CONFIG_SECTIONS $_cur"
	eval "CONFIG_${_cur}_TYPE=\$1"
}
option() { eval "CONFIG_${_cur}_$1=\$2"; }
list() { eval "CONFIG_${_cur}_$1=\"\${CONFIG_${_cur}_$1:+\${CONFIG_${_cur}_$1} }\$2\""; }
fake_config_load() {
	CONFIG_SECTIONS=
	_n=0
	[ ! -e "$FAKE_UCI_CONFIG" ] || . "$FAKE_UCI_CONFIG"
}
config_load() { fake_config_load; }
config_get() {
	eval "_v=\${CONFIG_${2}_${3}:-}"
	[ -n "$_v" ] || _v=$4
	eval "$1=\$_v"
}
config_get_bool() {
	config_get "$@"
	eval "_v=\$$1"
	case "$_v" in
	1 | on | true | yes | enabled) _v=1 ;;
	0 | off | false | no | disabled) _v=0 ;;
	*) _v=$4 ;;
	esac
	eval "$1=\$_v"
}
config_foreach() {
	local _fn="$1" _type="$2" _s _t
	shift 2
	for _s in $CONFIG_SECTIONS; do
		eval "_t=\$CONFIG_${_s}_TYPE"
		[ "$_t" = "$_type" ] && "$_fn" "$_s" "$@"
	done
	return 0
}
`

// procdHarness stands in for /etc/rc.common, lib/functions.sh
// (fakeFunctionsSh) and procd.sh: it sources the init script with config_*
// reading a test UCI file and procd_* recording their calls, then runs one
// action.
const procdHarness = fakeFunctionsSh + `
LOG=$HARNESS_LOG
rec() {
	{ printf '%s' "$1"; shift; for a in "$@"; do printf '\037%s' "$a"; done; printf '\n'; } >>"$LOG"
}

extra_command() { rec extra_command "$@"; }
config_load() {
	rec config_load "$@"
	fake_config_load
}

procd_open_instance() { rec procd_open_instance "$@"; }
procd_set_param() { rec procd_set_param "$@"; }
procd_append_param() { rec procd_append_param "$@"; }
procd_close_instance() { rec procd_close_instance "$@"; }
procd_add_reload_trigger() { rec procd_add_reload_trigger "$@"; }
procd_add_reload_interface_trigger() { rec procd_add_reload_interface_trigger "$@"; }
procd_add_interface_trigger() { rec procd_add_interface_trigger "$@"; }
procd_add_config_trigger() { rec procd_add_config_trigger "$@"; }
# As procd.sh does: the validation function runs without a section, and
# its uci_load_validate gives the option types.
procd_add_validation() { rec procd_add_validation "$@"; "$@"; }
uci_load_validate() {
	rec uci_load_validate "$@"
	[ -z "$4" ] || "$4" "$3" 0
}
start() { rec start "$@"; }
stop() { rec stop "$@"; }
restart() { rec restart "$@"; }

. "$HARNESS_INIT"
[ -z "$HARNESS_PROG" ] || PROG=$HARNESS_PROG
[ -z "$HARNESS_SOCKET" ] || SOCKET=$HARNESS_SOCKET
"$@"
`

// testConfig has enabled sections on wan (twice), wan6 and addresses, a
// disabled one on lan, and a global section.
const testConfig = `
config global
	list stun_server 'stun.example.org'
	list stun_server 'stun2.example.org:3478'

config natmap 'web'
	option enable '1'
	option interface 'wan'
	option port '8080'

config natmap 'ssh'
	option enable 'yes'
	option interface 'wan'

config natmap
	option enable '1'
	option interface 'wan6'

config natmap 'lan'
	option enable '0'
	option interface 'lan'

config natmap 'addr'
	option enable '1'
	option interface '192.0.2.1'

config natmap 'addr6'
	option enable '1'
	option interface '2001:db8::1'

config natmap 'noif'
	option enable '1'
	option interface ''
`

type harness struct {
	t      *testing.T
	sh     []string
	config string
	env    []string
}

func newHarness(t *testing.T, sh []string, config string) *harness {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "natmap.config")
	writeFile(t, cfg, config, 0o600)
	h := filepath.Join(dir, "harness.sh")
	writeFile(t, h, procdHarness, 0o644)
	return &harness{t: t, sh: sh, config: cfg, env: []string{"FAKE_UCI_CONFIG=" + cfg, "HARNESS_INIT=" + absPath(t, initScript)}}
}

// run runs the init script's function with args; it returns the recorded
// calls, stdout and the exit code.
func (h *harness) run(extraEnv []string, fn string, args ...string) ([][]string, string, int) {
	t := h.t
	t.Helper()
	dir := t.TempDir()
	log := filepath.Join(dir, "calls.log")
	writeFile(t, log, "", 0o644)
	env := append(append([]string{"HARNESS_LOG=" + log}, h.env...), extraEnv...)
	argv := append(append(slices.Clone(h.sh[1:]), filepath.Join(filepath.Dir(h.config), "harness.sh"), fn), args...)
	stdout, stderr, code := run(t, env, "", h.sh[0], argv...)
	if stderr != "" {
		t.Logf("%s stderr: %s", fn, stderr)
	}
	var calls [][]string
	for _, line := range strings.Split(readFile(t, log), "\n") {
		if line != "" {
			calls = append(calls, strings.Split(line, "\x1f"))
		}
	}
	return calls, stdout, code
}

func absPath(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func named(calls [][]string, name string) [][]string {
	var out [][]string
	for _, c := range calls {
		if c[0] == name {
			out = append(out, c)
		}
	}
	return out
}

func TestInitScriptHeader(t *testing.T) {
	s := readFile(t, initScript)
	if !strings.HasPrefix(s, "#!/bin/sh /etc/rc.common\n") {
		t.Error("init script must start with #!/bin/sh /etc/rc.common")
	}
	for _, want := range []string{"\nSTART=99\n", "\nUSE_PROCD=1\n"} {
		if !strings.Contains(s, want) {
			t.Errorf("init script lacks %q", strings.TrimSpace(want))
		}
	}
}

func TestInitStartService(t *testing.T) {
	for _, sh := range shells(t) {
		t.Run(shellName(sh), func(t *testing.T) {
			h := newHarness(t, sh, testConfig)
			calls, _, code := h.run(nil, "start_service")
			if code != 0 {
				t.Fatalf("start_service exited %d", code)
			}
			if n := len(named(calls, "procd_open_instance")); n != 1 {
				t.Fatalf("%d instances, want 1: %q", n, calls)
			}
			if n := len(named(calls, "procd_close_instance")); n != 1 {
				t.Errorf("%d procd_close_instance, want 1", n)
			}
			params := map[string][]string{}
			for _, c := range named(calls, "procd_set_param") {
				if _, dup := params[c[1]]; dup {
					t.Errorf("param %s set twice", c[1])
				}
				params[c[1]] = c[2:]
			}
			want := []string{"/usr/bin/natmap", "daemon", "--config", "/etc/config/natmap", "--log", "syslog"}
			if !slices.Equal(params["command"], want) {
				t.Errorf("command %q, want %q", params["command"], want)
			}
			if _, ok := params["respawn"]; !ok {
				t.Error("no respawn")
			}
			if l := params["limits"]; !slices.Equal(l, []string{"nofile=65536 65536"}) {
				t.Errorf("limits %q, want nofile=65536 65536 (relayed connections need fds)", l)
			}
			// A reload re-registers the instance: anything that changes
			// with the config would make procd restart every mapping.
			for _, p := range []string{"file", "netdev", "data"} {
				if _, ok := params[p]; ok {
					t.Errorf("param %s would restart the daemon on config changes", p)
				}
			}
			// The environment is fixed: natmap on one processor from its
			// start (internal/oneproc).
			if e := params["env"]; !slices.Equal(e, []string{"GOMAXPROCS=1", oneproc.Mark + "=1"}) {
				t.Errorf("env %q, want GOMAXPROCS=1 NATMAP_ONE_PROC=1", e)
			}
			if a := named(calls, "procd_append_param"); len(a) != 0 {
				t.Errorf("procd_append_param: %q", a)
			}
		})
	}
}

func TestInitStartServiceNothingEnabled(t *testing.T) {
	stock := readFile(t, stockConfig)
	for _, sh := range shells(t) {
		t.Run(shellName(sh), func(t *testing.T) {
			calls, _, code := newHarness(t, sh, stock).run(nil, "start_service")
			if code != 0 {
				t.Fatalf("start_service exited %d", code)
			}
			if n := len(named(calls, "procd_open_instance")); n != 0 {
				t.Errorf("the stock config (all disabled) starts %d instances", n)
			}
		})
	}
}

func TestInitServiceTriggers(t *testing.T) {
	for _, sh := range shells(t) {
		t.Run(shellName(sh), func(t *testing.T) {
			calls, _, code := newHarness(t, sh, testConfig).run(nil, "service_triggers")
			if code != 0 {
				t.Fatalf("service_triggers exited %d", code)
			}
			rt := named(calls, "procd_add_reload_trigger")
			if len(rt) != 1 || !slices.Equal(rt[0][1:], []string{"natmap"}) {
				t.Errorf("reload triggers %q, want one for natmap", rt)
			}
			var ifaces []string
			for _, c := range named(calls, "procd_add_reload_interface_trigger") {
				if len(c) != 2 {
					t.Errorf("interface trigger %q", c)
				}
				ifaces = append(ifaces, c[1:]...)
			}
			if want := []string{"wan", "wan6"}; !slices.Equal(ifaces, want) {
				t.Errorf("interface triggers %q, want %q (enabled sections, once each, no addresses)", ifaces, want)
			}
			v := named(calls, "procd_add_validation")
			if len(v) != 1 || !slices.Equal(v[0][1:], []string{"validate_section_natmap"}) {
				t.Errorf("validation %q", v)
			}
		})
	}
	t.Run("stock", func(t *testing.T) {
		calls, _, _ := newHarness(t, []string{"sh"}, readFile(t, stockConfig)).run(nil, "service_triggers")
		if n := len(named(calls, "procd_add_reload_interface_trigger")); n != 0 {
			t.Errorf("%d interface triggers for a config with nothing enabled", n)
		}
		if n := len(named(calls, "procd_add_reload_trigger")); n != 1 {
			t.Errorf("%d reload triggers, want 1 (enabling a section must reload)", n)
		}
	})
}

// daemonOptions are the section options the daemon reads
// (internal/uciconf's sectionOptions).
func daemonOptions(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../internal/uciconf/uciconf.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var opts []string
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || len(vs.Names) != 1 || vs.Names[0].Name != "sectionOptions" {
			return true
		}
		for _, e := range vs.Values[0].(*ast.CompositeLit).Elts {
			s, err := strconv.Unquote(e.(*ast.BasicLit).Value)
			if err != nil {
				t.Fatal(err)
			}
			opts = append(opts, s)
		}
		return false
	})
	if len(opts) == 0 {
		t.Fatal("no sectionOptions in internal/uciconf/uciconf.go")
	}
	return opts
}

func TestInitValidationCoversEveryOption(t *testing.T) {
	calls, _, _ := newHarness(t, []string{"sh"}, testConfig).run(nil, "service_triggers")
	v := named(calls, "uci_load_validate")
	if len(v) != 1 {
		t.Fatalf("uci_load_validate calls: %q", v)
	}
	if !slices.Equal(v[0][1:5], []string{"natmap", "natmap", "", ""}) {
		t.Errorf("uci_load_validate %q: want package natmap, type natmap, no section and no callback", v[0][1:5])
	}
	types := map[string]string{}
	for _, rule := range v[0][5:] {
		name, typ, _ := strings.Cut(rule, ":")
		if _, dup := types[name]; dup {
			t.Errorf("option %s validated twice", name)
		}
		types[name] = typ
	}
	for _, o := range daemonOptions(t) {
		if _, ok := types[o]; !ok {
			t.Errorf("option %s (read by the daemon) has no validation rule", o)
		}
		delete(types, o)
	}
	for o := range types {
		t.Errorf("validation rule for %s, an option the daemon does not read", o)
	}
	// The types that matter for LuCI: host:port must pass, lists must.
	for rule, want := range map[string]string{
		"enable": "bool:0", "family": `or("ipv4","ipv6")`, "stun_server": "list(string)",
		"http_server": "string", "port": "string", "notify_script": "file", "firewall": "bool",
	} {
		for _, r := range v[0][5:] {
			if name, typ, _ := strings.Cut(r, ":"); name == rule && typ != want {
				t.Errorf("%s: type %q, want %q", rule, typ, want)
			}
		}
	}
}

func TestInitReloadService(t *testing.T) {
	for _, sh := range shells(t) {
		t.Run(shellName(sh), func(t *testing.T) {
			rec := newRecorder(t)
			prog := rec.stub(t, "natmap", "exit 0")
			h := newHarness(t, sh, testConfig)
			sock := filepath.Join(t.TempDir(), "natmap.sock")
			env := []string{"HARNESS_PROG=" + prog, "HARNESS_SOCKET=" + sock}

			// Not running: no socket, only the procd registration.
			calls, _, code := h.run(env, "reload_service")
			if code != 0 {
				t.Errorf("reload_service exited %d", code)
			}
			if got := rec.calls(t); len(got) != 0 {
				t.Errorf("natmap called without a daemon: %q", got)
			}
			if len(named(calls, "start")) != 1 || len(named(calls, "stop")) != 0 || len(named(calls, "restart")) != 0 {
				t.Errorf("calls %q: want start (procd registration) and never stop", calls)
			}

			// Running: the daemon reloads in place, then the registration.
			l, err := net.Listen("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			calls, _, code = h.run(env, "reload_service")
			if code != 0 {
				t.Errorf("reload_service exited %d", code)
			}
			got := rec.calls(t)
			if len(got) != 1 || joinArgs(got[0]) != "natmap reload --socket "+sock {
				t.Errorf("natmap calls %q, want one reload", got)
			}
			if len(named(calls, "start")) != 1 || len(named(calls, "stop")) != 0 || len(named(calls, "restart")) != 0 {
				t.Errorf("calls %q: want start and never stop", calls)
			}
		})
	}
}

func TestInitStatus(t *testing.T) {
	rec := newRecorder(t)
	prog := rec.stub(t, "natmap", "echo TABLE")
	h := newHarness(t, []string{"sh"}, testConfig)
	sock := filepath.Join(t.TempDir(), "natmap.sock")
	env := []string{"HARNESS_PROG=" + prog, "HARNESS_SOCKET=" + sock}
	_, out, code := h.run(env, "status_service")
	if code != 3 || strings.TrimSpace(out) != "inactive" {
		t.Errorf("status without a daemon: %q, exit %d; want inactive, 3", out, code)
	}
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, out, code = h.run(env, "status_service")
	if code != 0 || strings.TrimSpace(out) != "TABLE" {
		t.Errorf("status: %q, exit %d", out, code)
	}
	if got := rec.calls(t); len(got) != 1 || joinArgs(got[0]) != "natmap status --socket "+sock {
		t.Errorf("natmap calls %q", got)
	}
}

func TestInitValidateCommand(t *testing.T) {
	calls, out, code := newHarness(t, []string{"sh"}, testConfig).run(nil, "validate")
	if code != 0 {
		t.Errorf("validate exited %d", code)
	}
	if n := len(named(calls, "uci_load_validate")); n != 7 {
		t.Errorf("%d sections validated, want the 7 natmap sections", n)
	}
	for _, s := range []string{"web", "ssh", "cfg4", "lan", "addr", "addr6", "noif"} {
		if !strings.Contains(out, "section "+s+": ok\n") {
			t.Errorf("validate output lacks section %s: %q", s, out)
		}
	}
	if e := named(calls, "extra_command"); len(e) != 1 || e[0][1] != "validate" {
		t.Errorf("extra_command calls %q", e)
	}
}
