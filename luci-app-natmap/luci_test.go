// Tests of the LuCI app: the JavaScript parses, the validators (ours, and
// LuCI's datatypes where a field uses one) accept only what the daemon
// accepts, the ACL grants exactly what the views call, the
// menu points at a view that exists, the translations are complete, and the
// editor covers every UCI option the daemon reads.
//
// Node.js runs the JavaScript checks; without it they skip, except with
// CI=true, where a missing node fails (Debian: apt-get install nodejs).
package luciapp_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/natmap-go/natmap/internal/engine"
	"github.com/natmap-go/natmap/internal/mapping"
	"github.com/natmap-go/natmap/internal/pkgtools/po2lmo"
	"github.com/natmap-go/natmap/internal/testkit/owlab"
	"github.com/natmap-go/natmap/internal/testkit/testgate"
	"github.com/natmap-go/natmap/internal/uci"
	"github.com/natmap-go/natmap/internal/uciconf"
	"github.com/natmap-go/natmap/internal/updater"
)

const (
	viewJS    = "htdocs/luci-static/resources/view/natmap.js"
	commonJS  = "htdocs/luci-static/resources/natmap/common.js"
	menuJSON  = "root/usr/share/luci/menu.d/luci-app-natmap.json"
	aclJSON   = "root/usr/share/rpcd/acl.d/luci-app-natmap.json"
	potFile   = "po/templates/natmap.pot"
	uciconfGo = "../internal/uciconf/uciconf.go"
)

// The methods the natmap rpcd plugin offers: read from the plugin's "list"
// answer when the OpenWrt package is in the tree, else these.
var pluginMethods = []string{"check", "reload", "restart", "status"}

const rpcdPlugin = "../openwrt/natmap/files/natmap.rpcd"

func offeredMethods(t *testing.T) []string {
	t.Helper()
	src, err := os.ReadFile(rpcdPlugin)
	if err != nil {
		t.Logf("%v: checking against %v", err, pluginMethods)
		return pluginMethods
	}
	m := regexp.MustCompile(`(?m)^list\)\s*\n\s*echo '(\{.*\})'`).FindSubmatch(src)
	if m == nil {
		t.Fatalf("%s: no list answer found", rpcdPlugin)
	}
	var sig map[string]json.RawMessage
	if err := json.Unmarshal(m[1], &sig); err != nil {
		t.Fatalf("%s: list answer: %v", rpcdPlugin, err)
	}
	var out []string
	for k := range sig {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// jsFiles lists every JavaScript file the package installs.
func jsFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir("htdocs", func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".js") {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("found only %v", files)
	}
	sort.Strings(files)
	return files
}

func node(t *testing.T) string {
	t.Helper()
	testgate.Require(t, "LuCI JavaScript checks", false, map[string]string{"node": "nodejs"})
	p, _ := exec.LookPath("node")
	return p
}

// runNode runs a script with stdin and returns its stdout.
func runNode(t *testing.T, script string, stdin []byte, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(node(t), append([]string{"-e", script, "--"}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("node: %v\n%s", err, errb.String())
	}
	return out.Bytes()
}

// LuCI loads a view or class as the body of a function (its top-level
// 'return' is legal only there), with 'use strict' as the first statement:
// compile each file that way, so strict-mode errors count too.
const syntaxScript = `
const fs = require('fs'), vm = require('vm');
const errors = [];
for (const f of process.argv.slice(1)) {
	const src = fs.readFileSync(f, 'utf8');
	try {
		new vm.Script('(function(){' + src + '\n})', { filename: f });
		if (!/^'use strict';/.test(src))
			errors.push(f + ": does not start with 'use strict';");
	} catch (e) {
		errors.push(f + ': ' + (e.stack || e).toString().split('\n').slice(0, 5).join('\n'));
	}
}
process.stdout.write(JSON.stringify(errors));
`

func TestJavaScriptParses(t *testing.T) {
	files := jsFiles(t)
	var errs []string
	if err := json.Unmarshal(runNode(t, syntaxScript, nil, files...), &errs); err != nil {
		t.Fatal(err)
	}
	for _, e := range errs {
		t.Error(e)
	}

	// The script must catch a syntax error, or the test proves nothing.
	bad := filepath.Join(t.TempDir(), "bad.js")
	os.WriteFile(bad, []byte("'use strict';\nreturn view.extend({ render: function() { return } ) });\n"), 0o644)
	if err := json.Unmarshal(runNode(t, syntaxScript, nil, bad), &errs); err != nil || len(errs) != 1 {
		t.Fatalf("a broken file passed the syntax check: %v %v", errs, err)
	}
}

// Every 'require x.y' names a LuCI module or one of ours that exists.
func TestRequires(t *testing.T) {
	re := regexp.MustCompile(`(?m)^'require ([\w.]+)(?: as (\w+))?';`)
	stock := []string{"baseclass", "dom", "form", "fs", "network", "poll", "rpc", "ui", "uci", "view", "tools.widgets"}
	for _, f := range jsFiles(t) {
		for _, m := range re.FindAllStringSubmatch(read(t, f), -1) {
			mod := m[1]
			switch {
			case strings.HasPrefix(mod, "natmap."):
				p := "htdocs/luci-static/resources/" + strings.ReplaceAll(mod, ".", "/") + ".js"
				if _, err := os.Stat(p); err != nil {
					t.Errorf("%s: 'require %s': %v", f, mod, err)
				}
			case !slices.Contains(stock, mod):
				t.Errorf("%s: 'require %s': not a module this app expects", f, mod)
			}
			if strings.Contains(mod, ".") && m[2] == "" {
				t.Errorf("%s: 'require %s' needs 'as NAME'", f, mod)
			}
		}
	}
}

type ubusGrant map[string][]string

type aclGroup struct {
	Description string `json:"description"`
	Read        struct {
		Ubus ubusGrant `json:"ubus"`
		UCI  []string  `json:"uci"`
	} `json:"read"`
	Write struct {
		Ubus ubusGrant `json:"ubus"`
		UCI  []string  `json:"uci"`
	} `json:"write"`
}

func strictJSON(t *testing.T, path string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(read(t, path)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// declaredCalls extracts every rpc.declare({object, method}) of the JS.
func declaredCalls(t *testing.T) map[string][]string {
	t.Helper()
	decl := regexp.MustCompile(`rpc\.declare\(\{([^}]*)\}`)
	obj := regexp.MustCompile(`object:\s*'([^']+)'`)
	meth := regexp.MustCompile(`method:\s*'([^']+)'`)
	calls := map[string][]string{}
	for _, f := range jsFiles(t) {
		src := read(t, f)
		if n := strings.Count(src, "rpc.declare("); n != len(decl.FindAllString(src, -1)) {
			t.Errorf("%s: %d rpc.declare calls, %d understood", f, n, len(decl.FindAllString(src, -1)))
		}
		for _, m := range decl.FindAllStringSubmatch(src, -1) {
			o, me := obj.FindStringSubmatch(m[1]), meth.FindStringSubmatch(m[1])
			if o == nil || me == nil {
				t.Errorf("%s: rpc.declare without literal object and method: %s", f, m[1])
				continue
			}
			if !slices.Contains(calls[o[1]], me[1]) {
				calls[o[1]] = append(calls[o[1]], me[1])
			}
		}
	}
	for k := range calls {
		sort.Strings(calls[k])
	}
	return calls
}

func TestACL(t *testing.T) {
	var acl map[string]aclGroup
	strictJSON(t, aclJSON, &acl)
	g, ok := acl["luci-app-natmap"]
	if len(acl) != 1 || !ok {
		t.Fatalf("want exactly the group luci-app-natmap, have %v", acl)
	}
	if g.Description == "" {
		t.Error("the ACL group has no description")
	}
	if !slices.Equal(g.Read.UCI, []string{"natmap"}) || !slices.Equal(g.Write.UCI, []string{"natmap"}) {
		t.Errorf("uci grants: read %v write %v, want natmap and nothing else", g.Read.UCI, g.Write.UCI)
	}

	granted := map[string][]string{}
	for _, u := range []ubusGrant{g.Read.Ubus, g.Write.Ubus} {
		for o, ms := range u {
			granted[o] = append(granted[o], ms...)
		}
	}
	for o := range granted {
		sort.Strings(granted[o])
	}
	calls := declaredCalls(t)
	if fmt.Sprint(granted) != fmt.Sprint(calls) {
		t.Errorf("ACL grants %v, the views call %v", granted, calls)
	}
	if offered := offeredMethods(t); !slices.Equal(granted["natmap"], offered) {
		t.Errorf("ACL grants natmap %v, the plugin offers %v", granted["natmap"], offered)
	}
	// Reading the status is read access. Changing what runs is write
	// access, and so is the NAT check: it makes the router send to any
	// host and port the caller names, which a read-only login must not.
	r := slices.Clone(g.Read.Ubus["natmap"])
	sort.Strings(r)
	if !slices.Equal(r, []string{"status"}) {
		t.Errorf("read grants natmap %v, want [status]", g.Read.Ubus["natmap"])
	}
	w := slices.Clone(g.Write.Ubus["natmap"])
	sort.Strings(w)
	if !slices.Equal(w, []string{"check", "reload", "restart"}) {
		t.Errorf("write grants natmap %v, want [check reload restart]", w)
	}
}

func TestMenu(t *testing.T) {
	var menu map[string]struct {
		Title  string `json:"title"`
		Order  int    `json:"order"`
		Action struct {
			Type string `json:"type"`
			Path string `json:"path"`
		} `json:"action"`
		Depends struct {
			ACL []string        `json:"acl"`
			UCI map[string]bool `json:"uci"`
		} `json:"depends"`
	}
	strictJSON(t, menuJSON, &menu)
	e, ok := menu["admin/services/natmap"]
	if len(menu) != 1 || !ok {
		t.Fatalf("want the single entry admin/services/natmap, have %v", menu)
	}
	if e.Action.Type != "view" {
		t.Errorf("action type %q, want view", e.Action.Type)
	}
	if _, err := os.Stat("htdocs/luci-static/resources/view/" + e.Action.Path + ".js"); err != nil {
		t.Errorf("the menu's view: %v", err)
	}
	var acl map[string]json.RawMessage
	strictJSON(t, aclJSON, &acl)
	for _, a := range e.Depends.ACL {
		if _, ok := acl[a]; !ok {
			t.Errorf("the menu depends on ACL group %q, which the ACL file does not define", a)
		}
	}
	if !slices.Equal(e.Depends.ACL, []string{"luci-app-natmap"}) || !e.Depends.UCI["natmap"] {
		t.Errorf("depends %+v, want acl luci-app-natmap and uci natmap", e.Depends)
	}
	if e.Title == "" {
		t.Error("no title")
	}
}

// A translatable string as LuCI's i18n scanner finds it.
type msgKey struct{ ctx, id, plural string }

const jsStr = `'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"`

var (
	reTr       = regexp.MustCompile(`(?:^|[^\w$.])_\(\s*(` + jsStr + `)\s*(?:,\s*(` + jsStr + `)\s*)?\)`)
	reTrN      = regexp.MustCompile(`(?:^|[^\w$.])N_\(\s*[^,()]+?,\s*(` + jsStr + `)\s*,\s*(` + jsStr + `)\s*(?:,\s*(` + jsStr + `)\s*)?\)`)
	reTrAny    = regexp.MustCompile(`(?:^|[^\w$.])N?_\(`)
	rePlaceHld = regexp.MustCompile(`%[-+ 0#]*[0-9]*(?:\.[0-9]+)?[bcdfhmoqstxX%]`)
)

func unJS(t *testing.T, lit string) string {
	t.Helper()
	if lit == "" {
		return ""
	}
	body := lit[1 : len(lit)-1]
	var b strings.Builder
	for i := 0; i < len(body); i++ {
		if body[i] != '\\' {
			b.WriteByte(body[i])
			continue
		}
		i++
		switch c := body[i]; c {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case '\\', '\'', '"':
			b.WriteByte(c)
		case 'u':
			r, err := strconv.ParseUint(body[i+1:i+5], 16, 32)
			if err != nil {
				t.Fatalf("bad escape in %s", lit)
			}
			b.WriteRune(rune(r))
			i += 4
		default:
			t.Fatalf("escape \\%c in %s: not understood by this test", c, lit)
		}
	}
	return b.String()
}

// usedStrings collects the translatable strings of the views, the menu
// title and the ACL description.
func usedStrings(t *testing.T) map[msgKey][]string {
	t.Helper()
	used := map[msgKey][]string{}
	for _, f := range jsFiles(t) {
		src := read(t, f)
		ref := func(at int) string { return fmt.Sprintf("%s:%d", f, strings.Count(src[:at], "\n")+1) }
		n := 0
		for _, m := range reTr.FindAllStringSubmatchIndex(src, -1) {
			k := msgKey{id: unJS(t, src[m[2]:m[3]])}
			if m[4] >= 0 {
				k.ctx = unJS(t, src[m[4]:m[5]])
			}
			used[k] = append(used[k], ref(m[0]))
			n++
		}
		for _, m := range reTrN.FindAllStringSubmatchIndex(src, -1) {
			k := msgKey{id: unJS(t, src[m[2]:m[3]]), plural: unJS(t, src[m[4]:m[5]])}
			if m[6] >= 0 {
				k.ctx = unJS(t, src[m[6]:m[7]])
			}
			used[k] = append(used[k], ref(m[0]))
			n++
		}
		if all := len(reTrAny.FindAllString(src, -1)); all != n {
			t.Errorf("%s: %d _()/N_() calls, %d with literal strings: every translated string must be a literal", f, all, n)
		}
	}
	var menu map[string]struct {
		Title string `json:"title"`
	}
	json.Unmarshal([]byte(read(t, menuJSON)), &menu)
	for _, e := range menu {
		used[msgKey{id: e.Title}] = append(used[msgKey{id: e.Title}], menuJSON)
	}
	var acl map[string]struct {
		Description string `json:"description"`
	}
	json.Unmarshal([]byte(read(t, aclJSON)), &acl)
	for _, g := range acl {
		used[msgKey{id: g.Description}] = append(used[msgKey{id: g.Description}], aclJSON)
	}
	return used
}

func parsePO(t *testing.T, path string) *po2lmo.Catalog {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cat, err := po2lmo.ParsePO(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return cat
}

var updatePot = flag.Bool("update-pot", false, "rewrite "+potFile+" from the strings the views use")

// writePot writes the template: every string, sorted, with where it is used.
func writePot(t *testing.T, used map[msgKey][]string) {
	t.Helper()
	keys := make([]msgKey, 0, len(used))
	for k := range used {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].id != keys[j].id {
			return keys[i].id < keys[j].id
		}
		return keys[i].ctx < keys[j].ctx
	})
	q := func(s string) string {
		return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`).Replace(s) + `"`
	}
	var b strings.Builder
	b.WriteString("msgid \"\"\nmsgstr \"Content-Type: text/plain; charset=UTF-8\\n\"\n")
	for _, k := range keys {
		b.WriteString("\n")
		for _, r := range used[k] {
			b.WriteString("#: " + r + "\n")
		}
		if k.ctx != "" {
			b.WriteString("msgctxt " + q(k.ctx) + "\n")
		}
		b.WriteString("msgid " + q(k.id) + "\n")
		if k.plural != "" {
			b.WriteString("msgid_plural " + q(k.plural) + "\nmsgstr[0] \"\"\nmsgstr[1] \"\"\n")
		} else {
			b.WriteString("msgstr \"\"\n")
		}
	}
	if err := os.WriteFile(potFile, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// go test ./luci-app-natmap/ -run Template -update-pot rewrites the template.
func TestTemplateHoldsEveryString(t *testing.T) {
	used := usedStrings(t)
	if *updatePot {
		writePot(t, used)
	}
	pot := map[msgKey]bool{}
	for _, m := range parsePO(t, potFile).Messages {
		k := msgKey{m.Ctxt, m.ID, m.IDPlural}
		if pot[k] {
			t.Errorf("%s: %q twice", potFile, m.ID)
		}
		pot[k] = true
	}
	for k := range used {
		if !pot[k] {
			t.Errorf("%s lacks %q (context %q, plural %q); go test -run Template -update-pot rewrites it", potFile, k.id, k.ctx, k.plural)
		}
	}
	for k := range pot {
		if used[k] == nil {
			t.Errorf("%s holds %q, which no view uses any more", potFile, k.id)
		}
	}
	if len(used) < 100 {
		t.Errorf("found only %d strings: is the extraction broken?", len(used))
	}
}

func TestChineseTranslation(t *testing.T) {
	const zh = "po/zh_Hans/natmap.po"
	cat := parsePO(t, zh)
	if pf, _ := cat.HeaderField("Plural-Forms"); pf != "nplurals=1; plural=0;" {
		t.Errorf("Plural-Forms %q, want Chinese's nplurals=1; plural=0;", pf)
	}
	tr := map[msgKey]*po2lmo.Message{}
	for _, m := range cat.Messages {
		tr[msgKey{m.Ctxt, m.ID, m.IDPlural}] = m
	}
	pot := parsePO(t, potFile)
	for _, p := range pot.Messages {
		k := msgKey{p.Ctxt, p.ID, p.IDPlural}
		m := tr[k]
		switch {
		case m == nil:
			t.Errorf("%s: %q not translated", zh, p.ID)
			continue
		case m.Fuzzy:
			t.Errorf("%s: %q is fuzzy", zh, p.ID)
		case len(m.Str) != 1:
			t.Errorf("%s: %q has %d forms, Chinese has 1", zh, p.ID, len(m.Str))
		}
		want := rePlaceHld.FindAllString(p.ID, -1)
		for i, s := range m.Str {
			if strings.TrimSpace(s) == "" {
				t.Errorf("%s: %q: msgstr[%d] is empty", zh, p.ID, i)
			}
			if got := rePlaceHld.FindAllString(s, -1); !slices.Equal(got, want) {
				t.Errorf("%s: %q: placeholders %v, want %v in the same order", zh, p.ID, got, want)
			}
			if strings.Count(s, "<code>") != strings.Count(p.ID, "<code>") || strings.Count(s, "</code>") != strings.Count(p.ID, "</code>") {
				t.Errorf("%s: %q: <code> markup not kept", zh, p.ID)
			}
		}
		delete(tr, k)
	}
	for k := range tr {
		t.Errorf("%s: %q is not in the template", zh, k.id)
	}

	// It compiles, and LuCI finds every string in the result.
	lmo, err := po2lmo.Compile(cat)
	if err != nil {
		t.Fatal(err)
	}
	a, err := po2lmo.Read(lmo)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range cat.Messages {
		plural := -1
		if m.Plural() {
			plural = 0
		}
		got, ok := a.Translate(m.Ctxt, m.ID, plural)
		if !ok && m.Str[0] != m.ID {
			t.Errorf("compiled catalog lacks %q", m.ID)
		} else if ok && got != m.Str[0] {
			t.Errorf("compiled catalog: %q -> %q, want %q", m.ID, got, m.Str[0])
		}
	}
}

// stringList reads `var NAME = []string{"a", "b"}` from Go source.
func stringList(t *testing.T, src, name string) []string {
	t.Helper()
	m := regexp.MustCompile(`(?s)var ` + name + ` = \[\]string\{(.*?)\}`).FindStringSubmatch(src)
	if m == nil {
		t.Fatalf("%s not found in %s", name, uciconfGo)
	}
	var out []string
	for _, q := range regexp.MustCompile(`"[^"]*"`).FindAllString(m[1], -1) {
		out = append(out, strings.Trim(q, `"`))
	}
	if len(out) == 0 {
		t.Fatalf("%s is empty", name)
	}
	return out
}

// editorOptions lists the UCI options of a section variable of the view:
// option() fields for the table or taboption() fields for the modal.
func editorOptions(src, section, method string) []string {
	var re *regexp.Regexp
	if method == "taboption" {
		re = regexp.MustCompile(`\b` + section + `\.taboption\(\s*'\w+'\s*,\s*[\w.]+\s*,\s*'(\w+)'`)
	} else {
		re = regexp.MustCompile(`\b` + section + `\.option\(\s*[\w.]+\s*,\s*'(\w+)'`)
	}
	var out []string
	for _, m := range re.FindAllStringSubmatch(src, -1) {
		out = append(out, m[1])
	}
	return out
}

func TestEditorCoversEveryDaemonOption(t *testing.T) {
	gosrc := read(t, uciconfGo)
	view := read(t, viewJS)

	sectionOpts := stringList(t, gosrc, "sectionOptions")
	modal := editorOptions(view, "s", "taboption")
	for _, o := range sectionOpts {
		if !slices.Contains(modal, o) {
			t.Errorf("option %q of config natmap has no field in the editor", o)
		}
	}
	for _, o := range append(modal, editorOptions(view, "s", "option")...) {
		if !strings.HasPrefix(o, "_") && !slices.Contains(sectionOpts, o) {
			t.Errorf("the editor writes option %q, which the daemon does not know", o)
		}
	}

	globalOpts := stringList(t, gosrc, "globalOptions")
	global := editorOptions(view, "g", "option")
	slices.Sort(global)
	slices.Sort(globalOpts)
	if !slices.Equal(global, globalOpts) {
		t.Errorf("global settings edit %v, the daemon reads %v", global, globalOpts)
	}
}

// The validators run in node against inputs that the daemon's own reader
// (uciconf) judges: a validator must never accept a value the daemon
// refuses, and must accept the usual good values.

const validatorScript = `
const fs = require('fs');
String.prototype.format = function() { let i = 0, a = arguments; return this.replace(/%[sdh]/g, () => String(a[i++])); };
const src = fs.readFileSync(process.argv[1], 'utf8');
const mod = new Function('baseclass', '_', 'E', 'L', src)({ extend: (o) => o }, (s) => s, () => null, {});
const cases = JSON.parse(fs.readFileSync(0, 'utf8'));
const out = cases.map((c) => mod[c.fn](c.value, c.arg) === true);
process.stdout.write(JSON.stringify(out));
`

type jsCase struct {
	Fn    string `json:"fn"`
	Value string `json:"value"`
	Arg   string `json:"arg,omitempty"`
}

func jsValidate(t *testing.T, cases []jsCase) []bool {
	t.Helper()
	in, _ := json.Marshal(cases)
	var res []bool
	if err := json.Unmarshal(runNode(t, validatorScript, in, commonJS), &res); err != nil || len(res) != len(cases) {
		t.Fatalf("validator results: %v (%d for %d cases)", err, len(res), len(cases))
	}
	return res
}

// daemonAccepts says whether the daemon runs a section with option=value
// on top of a minimal valid section.
func daemonAccepts(t *testing.T, option, value string, extra map[string]string) bool {
	t.Helper()
	opts := map[string]string{"enable": "1", "stun_server": "stun.example.org", "http_server": "example.com"}
	for k, v := range extra {
		opts[k] = v
	}
	opts[option] = value
	var b strings.Builder
	b.WriteString("config natmap\n")
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range opts {
			if !yield(k) {
				return
			}
		}
	}) {
		fmt.Fprintf(&b, "\toption %s '%s'\n", k, opts[k])
	}
	f, err := uci.Parse("test", strings.NewReader(b.String()))
	if err != nil {
		return false
	}
	c := uciconf.Translate(f)
	if len(c.Sections) != 1 || c.Sections[0].Err != nil {
		return false
	}
	// The daemon resolves an interface that is not an address to a device
	// when it starts the section, and checks the device name then.
	if option == "interface" {
		if _, err := netip.ParseAddr(value); err != nil {
			m := c.Sections[0].Mapping
			m.Device = value
			return m.Validate() == nil
		}
	}
	return true
}

// words lists every string up to n bytes over an alphabet.
func words(alphabet string, n int) []string {
	out := []string{""}
	prev := []string{""}
	for i := 0; i < n; i++ {
		var next []string
		for _, p := range prev {
			for _, c := range alphabet {
				next = append(next, p+string(c))
			}
		}
		out = append(out, next...)
		prev = next
	}
	return out
}

func TestValidatorsAgreeWithDaemon(t *testing.T) {
	type family struct {
		fn, option string
		arg        string            // the validator's second argument
		extra      map[string]string // other options of the section
		corpus     []string
		good, bad  []string // must be accepted / refused by both
		exact      bool     // the validator must agree on every non-blank input
	}
	fams := []family{
		{fn: "portSpec", option: "port", exact: true,
			corpus: append(words("019-~+x", 3), "65535", "65536", "1-65535", "0-5", "5-1", "1~65535", "080", "99999999999999999999", "1--2", "-1", "1-", "00000000000000000080"),
			good:   []string{"0", "8080", "10000-10010", "10000~10010", "65535"},
			bad:    []string{"0-5", "65536", "5-1", "eighty", "1-2-3", "+1"}},
		{fn: "fwmark", option: "fwmark", exact: true,
			corpus: append(words("0178xXaf+_", 4), "4294967295", "4294967296", "0xffffffff", "0x100000000", "037777777777", "040000000000", "0x00000000001"),
			good:   []string{"0x1", "1", "01", "0", "0xff", "4294967295"},
			bad:    []string{"0x", "08", "-1", "4294967296", "0x1g", "1_000"}},
		{fn: "serverList", option: "stun_server",
			corpus: append(words("a1.:[],%", 4), "stun.l.google.com:19302", "[2001:db8::1]:3478", "2001:db8::1", "[::ffff:1.2.3.4]:1", "1.2.3.4,[::1]:5", "fe80::1%eth0", "[fe80::1%eth0]:3478"),
			good:   []string{"stun.example.org", "stun.example.org:3478", "1.2.3.4", "1.2.3.4:19302", "a.example,b.example:1", "stun_1.example.com", "xn--fiqs8s.cn"},
			bad:    []string{"host:", ":80", "[::1", "[::1]x", "[::1]:", "h:0", "h:65536", "h:+1", "a b", "a/b", "a,,b", ",", "[2001:db8::1]:3478", "2001:db8::1"}},
		{fn: "serverList", option: "stun_server", arg: "ipv6", extra: map[string]string{"family": "ipv6"},
			corpus: []string{"stun.example.org", "[2001:db8::1]:3478", "2001:db8::1", "[::1]", "1.2.3.4", "[::ffff:1.2.3.4]:1", "a.example,[::1]:5", "a.example,1.2.3.4"},
			good:   []string{"stun.example.org", "[2001:db8::1]:3478", "2001:db8::1", "[::1]", "a.example,[::1]:5"},
			bad:    []string{"1.2.3.4", "[::ffff:1.2.3.4]:1", "a.example,1.2.3.4"}},
		{fn: "server", option: "http_server",
			corpus: append(words("a1.:[],", 4), "example.com:8080", "[2001:db8::1]:80"),
			good:   []string{"example.com", "example.com:8080", "10.0.0.1"},
			bad:    []string{"example.com:", "example.com:0", "[x]:80", "[2001:db8::1]:80", "2001:db8::1"}},
		{fn: "server", option: "http_server", arg: "ipv6", extra: map[string]string{"family": "ipv6"},
			corpus: []string{"example.com", "[2001:db8::1]:80", "2001:db8::1", "10.0.0.1", "10.0.0.1:80"},
			good:   []string{"example.com", "[2001:db8::1]:80", "2001:db8::1"},
			bad:    []string{"10.0.0.1", "10.0.0.1:80"}},
		{fn: "iface", option: "interface",
			corpus: append(words("ae0.:/1- ", 3), "pppoe-wan", "eth0.2", "0123456789abcde", "0123456789abcdef", "192.168.1.1", "::1", "fe80::1%br-lan", "::ffff:1.2.3.4"),
			good:   []string{"wan", "eth1", "pppoe-wan", "eth0.2", "192.168.1.2"},
			bad:    []string{"0123456789abcdef", "eth0/1", "a b", "::1"}},
		{fn: "iface", option: "interface", arg: "ipv6", extra: map[string]string{"family": "ipv6"},
			corpus: []string{"wan", "2001:db8::1", "fe80::1%br-lan", "192.168.1.1", "::ffff:1.2.3.4", "::1"},
			good:   []string{"wan", "2001:db8::1", "::1"},
			bad:    []string{"192.168.1.1", "::ffff:1.2.3.4"}},
		{fn: "count", option: "interval", exact: true,
			corpus: append(words("09+-.x", 3), "2147483647", "2147483648", "99999999999999999999"),
			good:   []string{"0", "30", "2147483647"},
			bad:    []string{"-1", "2147483648", "1.5", "30s"}},
		{fn: "count", option: "forward_timeout", exact: true,
			corpus: []string{"300", "0", "2147483648", "x"},
			good:   []string{"300"}, bad: []string{"x"}},
		{fn: "count", option: "stun_cycle", exact: true,
			corpus: []string{"10", "0", "2147483648", "1e3"},
			good:   []string{"10"}, bad: []string{"1e3"}},
		{fn: "port", option: "forward_port", extra: map[string]string{"forward_target": "192.168.1.10"}, exact: true,
			corpus: append(words("069+-", 3), "65535", "65536", "0"),
			good:   []string{"0", "22", "65535"},
			bad:    []string{"65536", "-1", "+1"}},
	}

	for _, f := range fams {
		seen := map[string]bool{}
		var inputs []string
		for _, group := range [][]string{f.corpus, f.good, f.bad} {
			for _, v := range group {
				if v != "" && !seen[v] && !strings.ContainsAny(v, "'\n") {
					seen[v] = true
					inputs = append(inputs, v)
				}
			}
		}
		cases := make([]jsCase, len(inputs))
		for i, v := range inputs {
			cases[i] = jsCase{Fn: f.fn, Value: v, Arg: f.arg}
		}
		js := jsValidate(t, cases)
		for i, v := range inputs {
			d := daemonAccepts(t, f.option, v, f.extra)
			switch {
			case js[i] && !d:
				t.Errorf("%s(%q) accepts a value the daemon refuses in option %s", f.fn, v, f.option)
			case !js[i] && d && f.exact && strings.TrimSpace(v) == v:
				t.Errorf("%s(%q) refuses a value the daemon accepts in option %s", f.fn, v, f.option)
			}
			if slices.Contains(f.good, v) && !(js[i] && d) {
				t.Errorf("%s: %q should pass (validator %v, daemon %v)", f.option, v, js[i], d)
			}
			if slices.Contains(f.bad, v) && (js[i] || d) {
				t.Errorf("%s: %q should fail (validator %v, daemon %v)", f.option, v, js[i], d)
			}
		}
	}

	// memoryLimit against the daemon's reading of the global option.
	mem := append(words("0149+-x", 3), "4096", "4097", "0000", "00016", "99999999999999999999", "3")
	memCases := make([]jsCase, len(mem))
	for i, v := range mem {
		memCases[i] = jsCase{Fn: "memoryLimit", Value: v}
	}
	for i, ok := range jsValidate(t, memCases) {
		f, err := uci.Parse("test", strings.NewReader("config global\n\toption memory_limit '"+mem[i]+"'\n"))
		d := err == nil && len(uciconf.Translate(f).Warnings) == 0
		if ok != d {
			t.Errorf("memoryLimit(%q) = %v, the daemon: %v", mem[i], ok, d)
		}
	}

	// No daemon-side check for these: the validator's own cases.
	own := []struct {
		fn, value string
		want      bool
		arg       string
	}{
		{"congestion", "bbr", true, ""}, {"congestion", "cubic", true, ""}, {"congestion", "b b", false, ""},
		{"congestion", "averyveryverylongname", false, ""},
		{"script", "/etc/natmap/notify.sh", true, ""}, {"script", "notify.sh", false, ""},
		{"serverList", "", true, ""}, {"portSpec", "", true, ""}, {"fwmark", "", true, ""},
		// an updater's timeout: at most an hour (updater's opts.seconds)
		{"count", "3600", true, "3600"}, {"count", "3601", false, "3600"}, {"count", "-0", false, "3600"},
	}
	cases := make([]jsCase, len(own))
	for i, c := range own {
		cases[i] = jsCase{Fn: c.fn, Value: c.value, Arg: c.arg}
	}
	for i, ok := range jsValidate(t, cases) {
		if ok != own[i].want {
			t.Errorf("%s(%q) = %v, want %v", own[i].fn, own[i].value, ok, own[i].want)
		}
	}
}

// The rfc2136 updater's fields: dnsName agrees exactly with the daemon's
// DNS names (zone, key, record names), and what server accepts the daemon
// takes too.
func TestUpdaterValidatorsAgreeWithDaemon(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	// three labels of 63 bytes and one of n: 1+3*64+1+n bytes on the wire
	name := func(n int) string { return strings.Repeat(long(63)+".", 3) + long(n) }
	names := append(words("a._-é", 3), long(63), long(64), name(61), name(62), name(61)+".", "_minecraft._tcp.example.org",
		"nas.example.org.", "a..b", ".a", "a..", strings.Repeat("é", 31)+"a", strings.Repeat("é", 32), "x y.example")
	type check struct {
		fn, option string
		exact      bool
		corpus     []string
	}
	checks := []check{{"server", "server", false, append(words("a1.:[]", 3), "ns.example.org:5353", "[2001:db8::1]:53", "2001:db8::1", "h:0", "h:65536")}}
	for _, o := range []string{"zone", "key_name", "name", "srv_name", "srv_target"} {
		checks = append(checks, check{"dnsName", o, true, names})
	}
	for _, c := range checks {
		var inputs []string
		for _, v := range c.corpus {
			// Blank, or only a dot: the daemon takes it as missing, which
			// the form's other fields decide.
			if strings.Trim(v, ". ") != "" && !slices.Contains(inputs, v) && !strings.ContainsAny(v, "'\n") {
				inputs = append(inputs, v)
			}
		}
		cases := make([]jsCase, len(inputs))
		for i, v := range inputs {
			cases[i] = jsCase{Fn: c.fn, Value: v}
		}
		js := jsValidate(t, cases)
		for i, v := range inputs {
			opts := map[string][]string{"server": {"ns.example.org"}, "zone": {"."}, "name": {"nas.example.org"},
				"record": {"a", "srv"}, "srv_name": {"_x._tcp.example.org"}, "key_name": {"key"}, "key_secret": {"c2VjcmV0"}}
			if c.option == "zone" {
				opts["name"], opts["srv_name"] = []string{v}, []string{v} // in the zone
			}
			opts[c.option] = []string{v}
			_, err := updater.New(updater.Config{Name: "u", Type: "rfc2136", Options: opts})
			d := err == nil
			if c.fn == "dnsName" && (v == name(61)) != js[i] && slices.Contains([]string{name(61), name(62), long(64), "a..b", ".a"}, v) {
				t.Errorf("dnsName(%q) = %v: want only the 255-byte name of these accepted", v, js[i])
			}
			switch {
			case js[i] && !d:
				t.Errorf("%s(%q) accepts a value the daemon refuses in option %s: %v", c.fn, v, c.option, err)
			case !js[i] && d && c.exact && strings.TrimSpace(v) == v:
				t.Errorf("%s(%q) refuses a value the daemon accepts in option %s", c.fn, v, c.option)
			}
		}
	}
}

// Every option of every updater type has a field in the Updaters editor
// (api_url, cloudflare's base URL, is for tests only).
func TestEditorCoversEveryUpdaterOption(t *testing.T) {
	files, err := filepath.Glob("../internal/updater/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("updater sources: %v", err)
	}
	var opts []string
	reList := regexp.MustCompile(`(?:options|secrets|recordOptions|commonOptions)\s*[:=]\s*(?:append\()?\[\]string\{([^}]*)\}`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		for _, m := range reList.FindAllStringSubmatch(read(t, f), -1) {
			for _, q := range regexp.MustCompile(`"(\w+)"`).FindAllStringSubmatch(m[1], -1) {
				opts = append(opts, q[1])
			}
		}
	}
	if len(opts) < 20 {
		t.Fatalf("found only %d updater options: is the extraction broken?", len(opts))
	}
	view := read(t, viewJS)
	fields := editorOptions(view, "u", "option")
	for _, m := range regexp.MustCompile(`secretOption\(u,\s*'(\w+)'`).FindAllStringSubmatch(view, -1) {
		fields = append(fields, m[1])
	}
	for _, o := range opts {
		if o != "api_url" && !slices.Contains(fields, o) {
			t.Errorf("updater option %q has no field in the editor", o)
		}
	}
	for _, f := range fields {
		if !strings.HasPrefix(f, "_") && !slices.Contains(opts, f) {
			t.Errorf("the updater editor writes option %q, which the daemon does not know", f)
		}
	}
}

// switchCases lists the string cases of the first switch in the function
// name defines (`function name(`, `name: function(` or the method
// shorthand `name(...) {`) in any of the app's JavaScript files.
func switchCases(t *testing.T, name string) []string {
	t.Helper()
	def := regexp.MustCompile(`\bfunction\s+` + name + `\s*\(|\b` + name + `\s*:\s*function\s*\(|(?m)^\s*` + name + `\s*\([\w\s,]*\)\s*\{`)
	for _, f := range jsFiles(t) {
		src := read(t, f)
		loc := def.FindStringIndex(src)
		if loc == nil {
			continue
		}
		sw := strings.Index(src[loc[1]:], "switch")
		if sw < 0 {
			t.Fatalf("%s: %s has no switch", f, name)
		}
		body := src[loc[1]+sw:]
		open := strings.Index(body, "{")
		depth, end := 0, -1
		for i := open; i < len(body) && end < 0; i++ {
			switch body[i] {
			case '{':
				depth++
			case '}':
				if depth--; depth == 0 {
					end = i
				}
			}
		}
		if open < 0 || end < 0 {
			t.Fatalf("%s: %s: switch not closed", f, name)
		}
		var out []string
		for _, m := range regexp.MustCompile(`\bcase\s+'([^']*)'\s*:`).FindAllStringSubmatch(body[open:end], -1) {
			out = append(out, m[1])
		}
		return out
	}
	t.Fatalf("no view defines %s", name)
	return nil
}

// objectKeys lists the keys of the object literal `const name = {...}` in
// any of the app's JavaScript files.
func objectKeys(t *testing.T, name string) []string {
	t.Helper()
	def := regexp.MustCompile(`(?s)\bconst\s+` + name + `\s*=\s*\{([^}]*)\}`)
	for _, f := range jsFiles(t) {
		m := def.FindStringSubmatch(read(t, f))
		if m == nil {
			continue
		}
		var out []string
		for _, k := range regexp.MustCompile(`(\w+)\s*:`).FindAllStringSubmatch(m[1], -1) {
			out = append(out, k[1])
		}
		if len(out) == 0 {
			t.Fatalf("%s: %s has no keys", f, name)
		}
		return out
	}
	t.Fatalf("no view defines %s", name)
	return nil
}

// allJS is every JavaScript file of the app, one after the other.
func allJS(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, f := range jsFiles(t) {
		b.WriteString(read(t, f))
		b.WriteString("\n")
	}
	return b.String()
}

// TestLabelsFollowTheDaemon checks that the views label every mapping state
// and NAT type of internal/mapping, and every verdict of natmap check, and
// no other: a state added there fails here until LuCI can show it.
func TestLabelsFollowTheDaemon(t *testing.T) {
	labels := switchCases(t, "stateLabel")
	for _, s := range mapping.States() {
		if !slices.Contains(labels, string(s)) {
			t.Errorf("stateLabel has no label for state %q (internal/mapping)", s)
		}
	}
	// stateLabel labels the updaters' states too (error: bad configuration);
	// stateClasses gives some of them the theme's label colours.
	updaterStates := []string{updater.StateIdle, updater.StateRunning, updater.StateOK, updater.StateRetrying, updater.StateFailed, "error"}
	for _, l := range append(labels, objectKeys(t, "stateClasses")...) {
		if !slices.Contains(mapping.States(), mapping.State(l)) && !slices.Contains(updaterStates, l) {
			t.Errorf("the views know a state %q that neither internal/mapping nor internal/updater does", l)
		}
	}

	// natName names the NATs that are not a full cone ("The NAT is %s, not
	// full cone"); the full cone is told apart where the status is drawn.
	names := switchCases(t, "natName")
	for _, n := range mapping.NATs() {
		if n == mapping.FullCone {
			if !strings.Contains(allJS(t), `'`+string(n)+`'`) {
				t.Errorf("no view tells %q apart", n)
			}
			continue
		}
		if !slices.Contains(names, string(n)) {
			t.Errorf("natName has no name for NAT %q (internal/mapping)", n)
		}
	}
	for _, n := range names {
		if !slices.Contains(mapping.NATs(), mapping.NAT(n)) || mapping.NAT(n) == mapping.FullCone {
			t.Errorf("natName names a NAT %q that internal/mapping does not list as not full cone", n)
		}
	}

	// checkVerdict words natmap check's verdicts; "unknown" is its default.
	verdicts := switchCases(t, "checkVerdict")
	for _, v := range engine.Verdicts() {
		if v != engine.VerdictUnknown && !slices.Contains(verdicts, string(v)) {
			t.Errorf("checkVerdict has no words for verdict %q (internal/engine)", v)
		}
	}
	for _, v := range verdicts {
		if !slices.Contains(engine.Verdicts(), engine.Verdict(v)) {
			t.Errorf("checkVerdict knows a verdict %q that internal/engine does not", v)
		}
	}
}

// Where a field uses one of LuCI's datatypes instead of a validator of its
// own, LuCI's validation.js of both snapshots of the lab (openwrt-lab's
// sources) must judge the field's cases as the daemon does.

const datatypeScript = `
const fs = require('fs');
String.prototype.format = function() { let i = 0, a = arguments; return this.replace(/%[sdfh]/g, () => String(a[i++])); };
const baseclass = { extend(proto) {
	const C = function(...a) { if (this.__init__) this.__init__(...a); };
	C.prototype = Object.assign(Object.create(this.prototype || Object.prototype), proto);
	C.extend = baseclass.extend;
	return C;
} };
class CustomEvent { constructor(t, d) { this.type = t; this.detail = d; } }
const L = { raise(t, m) { throw new Error(t + ': ' + m); } };
const src = fs.readFileSync(process.argv[1], 'utf8');
const Factory = new Function('baseclass', '_', 'L', 'findParent', 'CustomEvent', src)(baseclass, (s) => s, L, () => true, CustomEvent);
const factory = new Factory();
const cases = JSON.parse(fs.readFileSync(0, 'utf8'));
const noop = () => {};
process.stdout.write(JSON.stringify(cases.map((c) => {
	const field = { value: c.value, classList: { add: noop, remove: noop }, setAttribute: noop, removeAttribute: noop, dispatchEvent: noop };
	return factory.create(field, c.type, true).validate() === true;
})));
`

// luciFile reads a file of LuCI's sources from openwrt-lab's tarball of a
// LuCI snapshot.
func luciFile(t *testing.T, snapshot, name string) []byte {
	t.Helper()
	tarball := filepath.Join(owlab.ToolDir(t), "src", "luci-"+snapshot+".tar.gz")
	f, err := os.Open(tarball)
	if err != nil {
		testgate.Unmet(t, fmt.Sprintf("LuCI's sources: %v", err))
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", tarball, err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s: no %s (%v)", tarball, name, err)
		}
		if h.Name == name {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatalf("%s: %s: %v", tarball, name, err)
			}
			return b
		}
	}
}

func TestDatatypesAgreeWithDaemon(t *testing.T) {
	// Each datatype a field uses, with the cases it must judge as the
	// daemon does: forward_target is resolved at each connection, so
	// the daemon takes any host name or address, and no port.
	want := map[string]struct {
		option    string
		good, bad []string
	}{
		"host": {option: "forward_target",
			good: []string{"192.168.1.10", "nas.lan", "2001:db8::10", "nas", "10.0.0.1"},
			bad:  []string{"nas.lan:80", "[2001:db8::10]", "a b", "10.0.0.1:22", "nas/lan"}},
	}
	used := map[string]string{}
	src := read(t, viewJS)
	re := regexp.MustCompile(`(?s)form\.\w+,\s*'(\w+)'[^;]*\);(?:\s*(?:/\*[^*]*\*/|o\.\w+\s*=[^;]*;|o\.\w+\([^;]*\);))*?\s*o\.datatype\s*=\s*'([^']+)'`)
	for _, m := range re.FindAllStringSubmatch(src, -1) {
		used[m[2]] = m[1]
	}
	if n := strings.Count(src, ".datatype ="); n != len(used) || n == 0 {
		t.Fatalf("%s: %d datatypes set, %d understood: %v", viewJS, n, len(used), used)
	}
	for dt, opt := range used {
		if w, ok := want[dt]; !ok || w.option != opt {
			t.Errorf("option %s uses datatype %q, which this test has no cases for", opt, dt)
		}
	}
	const validation = "luci/modules/luci-base/htdocs/luci-static/resources/validation.js"
	for _, snap := range []string{"2026", "2024"} {
		file := filepath.Join(t.TempDir(), "validation.js")
		if err := os.WriteFile(file, luciFile(t, snap, validation), 0o644); err != nil {
			t.Fatal(err)
		}
		for dt, w := range want {
			type c struct {
				Type  string `json:"type"`
				Value string `json:"value"`
			}
			var cases []c
			for _, v := range append(slices.Clone(w.good), w.bad...) {
				cases = append(cases, c{dt, v})
			}
			in, _ := json.Marshal(cases)
			var res []bool
			if err := json.Unmarshal(runNode(t, datatypeScript, in, file), &res); err != nil || len(res) != len(cases) {
				t.Fatalf("LuCI %s: datatype results: %v (%d for %d cases)", snap, err, len(res), len(cases))
			}
			for i, ok := range res {
				if wantOK := i < len(w.good); ok != wantOK {
					t.Errorf("LuCI %s: datatype %s(%q) = %v, want %v (option %s)", snap, dt, cases[i].Value, ok, wantOK, w.option)
				}
			}
		}
	}
}
