package openwrt_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/natmap-go/natmap/internal/uci"
	"github.com/natmap-go/natmap/internal/uciconf"
)

func parseUCI(t *testing.T, path string) *uci.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u, err := uci.Parse(path, f)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// The default config is the stock package's: one disabled section with
// the same options and values.
func TestDefaultConfigIsStock(t *testing.T) {
	ours, stock := parseUCI(t, configFile), parseUCI(t, stockConfig)
	if len(ours.Sections) != 1 || len(stock.Sections) != 1 {
		t.Fatalf("sections: ours %d, stock %d; want one each", len(ours.Sections), len(stock.Sections))
	}
	o, s := ours.Sections[0], stock.Sections[0]
	if o.Type != s.Type || o.Name != s.Name {
		t.Errorf("section %s %q, stock %s %q", o.Type, o.Name, s.Type, s.Name)
	}
	if len(o.Options) != len(s.Options) {
		t.Errorf("%d options, stock %d", len(o.Options), len(s.Options))
	}
	for _, so := range s.Options {
		oo, ok := o.Get(so.Name)
		if !ok || oo.List != so.List || strings.Join(oo.Values, "\n") != strings.Join(so.Values, "\n") {
			t.Errorf("option %s: %+v, stock %+v", so.Name, oo, so)
		}
	}

	c, err := uciconf.Load(configFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings: %q", c.Warnings)
	}
	if len(c.Sections) != 1 || c.Sections[0].Enabled {
		t.Errorf("want one disabled section: %+v", c.Sections)
	}
}

// The commented examples, uncommented, are a valid config the daemon reads
// without a warning.
func TestDefaultConfigExamples(t *testing.T) {
	var lines []string
	inExample := false
	for _, l := range strings.Split(readFile(t, configFile), "\n") {
		switch {
		case strings.HasPrefix(l, "#config "):
			inExample = true
			lines = append(lines, "", l[1:])
		case inExample && strings.HasPrefix(l, "#\t"):
			lines = append(lines, l[1:])
		default:
			inExample = false
		}
	}
	if len(lines) == 0 {
		t.Fatal("no commented examples")
	}
	path := filepath.Join(t.TempDir(), "natmap")
	writeFile(t, path, strings.Join(lines, "\n")+"\n", 0o600)
	c, err := uciconf.Load(path)
	if err != nil {
		t.Fatalf("examples: %v\n%s", err, strings.Join(lines, "\n"))
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings: %q", c.Warnings)
	}
	var global bool
	for _, s := range parseUCI(t, path).Sections {
		global = global || s.Type == "global"
	}
	if !global {
		t.Error("no global section example")
	}
	for _, want := range []string{"comment", "firewall"} {
		if !strings.Contains(strings.Join(lines, "\n"), "option "+want+" ") {
			t.Errorf("no example of option %s", want)
		}
	}
	if len(c.Sections) != 1 {
		t.Fatalf("want one natmap example section, got %d", len(c.Sections))
	}
	s := c.Sections[0]
	if s.Err != nil || !s.Enabled || s.Comment == "" || s.Firewall != uciconf.FirewallOn || len(s.Mapping.STUN) != 2 {
		t.Errorf("example section: %+v", s)
	}
}
