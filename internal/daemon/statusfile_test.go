package daemon

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/natmap-go/natmap/internal/notify"
	"github.com/natmap-go/natmap/internal/uciconf"
)

func TestStatusFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run", "natmap")
	f := newStatusFile(dir, uciconf.Section{Ref: "@natmap[0]", ID: "cfg01a1b2", Comment: "my ssh"})
	m := notify.Mapping{
		Public:   netip.MustParseAddrPort("117.62.214.217:55642"),
		Private:  netip.MustParseAddrPort("192.168.1.2:8080"),
		Protocol: "tcp",
	}
	for range 2 { // the second replaces the first
		if err := f.write(m); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "cfg01a1b2.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"ip":"117.62.214.217","port":55642,"inner_port":8080,"protocol":"tcp","section":"@natmap[0]","comment":"my ssh","ip4p":"2001::d95a:753e:d6d9"}` + "\n"
	if string(b) != want {
		t.Fatalf("got %s\nwant %s", b, want)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("left behind: %v", ents)
	}
	f.remove()
	if _, err := os.Stat(filepath.Join(dir, "cfg01a1b2.json")); !os.IsNotExist(err) {
		t.Fatalf("not removed: %v", err)
	}
	for _, id := range []string{"", "../x", ".hidden"} {
		if f := newStatusFile(dir, uciconf.Section{ID: id}); f.path != "" {
			t.Errorf("ID %q: file %s", id, f.path)
		}
	}
}
