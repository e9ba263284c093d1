package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/testkit/httpserve"
	"github.com/natmap-go/natmap/internal/testkit/lab"
)

// The daemon runs a section's updaters after its notify script with the
// address the script was told: a webhook in the lan namespace receives it;
// an unknown updater name and a bad updater section are errors in that
// section's status only, and the mapping and the other updater run.
func TestDaemonUpdaters(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConePreserve)
	ln, err := l.Listen(l.LAN, "tcp", "127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	type hit struct {
		path  string
		body  map[string]any
		notes int // notify script runs when the request came
	}
	var (
		mu   sync.Mutex // guards hits and d
		hits []hit
		d    *natmapDaemon
	)
	httpserve.Serve(t, ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		json.Unmarshal(b, &m)
		mu.Lock()
		defer mu.Unlock()
		n := 0
		if d != nil {
			n = len(d.sectionNotes("web"))
		}
		hits = append(hits, hit{r.URL.Path, m, n})
	}))

	cfg := daemonGlobal + fmt.Sprintf(`
config natmap 'web'
	option enable '1'
	option comment 'web server'
	option port '40060'
	option notify_script 'NOTIFY'
	list updater 'hook'
	list updater 'missing'
	list updater 'bad'

config updater 'hook'
	option type 'webhook'
	option url 'http://%s/natmap'
	option header 'Authorization: Bearer very-secret-token'

config updater 'bad'
	option type 'gopher'
`, ln.Addr())
	dd := startDaemon(t, l, cfg)
	mu.Lock()
	d = dd
	mu.Unlock()
	note := d.waitSection("web", 1, 15*time.Second)
	deadline := time.Now().Add(15 * time.Second)
	for {
		mu.Lock()
		n := len(hits)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no webhook request")
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	h := hits[0]
	mu.Unlock()
	if h.notes < 1 {
		t.Error("the webhook ran before the notify script")
	}
	if h.body["public_ip"] != note.PublicIP || fmt.Sprint(h.body["public_port"]) != note.PublicPort || h.body["section"] != "web" || h.body["comment"] != "web server" {
		t.Errorf("webhook body %v, notify script told %+v", h.body, note)
	}

	waitStatus := time.Now().Add(10 * time.Second)
	for {
		s := d.status(t)["web"]
		if s.State == "mapped" && len(s.Updaters) == 3 && s.Updaters[0].State == "ok" {
			u := s.Updaters
			if u[0].Name != "hook" || u[0].Public != note.PublicIP+":"+note.PublicPort || u[0].LastRun == 0 {
				t.Errorf("hook status %+v", u[0])
			}
			if u[1].State != "error" || !strings.Contains(u[1].LastError, "no \"config updater 'missing'\" section") {
				t.Errorf("missing updater status %+v", u[1])
			}
			if u[2].State != "error" || !strings.Contains(u[2].LastError, `unknown type "gopher"`) {
				t.Errorf("bad updater status %+v", u[2])
			}
			break
		}
		if time.Now().After(waitStatus) {
			t.Fatalf("status %+v", s)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The secret is in no status and no log line.
	out, err := d.cli("status", "--json")
	table, err2 := d.cli("status")
	if err != nil || err2 != nil || strings.Contains(out+table, "very-secret-token") || strings.Contains(d.stderr.String(), "very-secret-token") {
		t.Errorf("status or log shows the token (%v %v)", err, err2)
	}
	if !strings.Contains(table, "hook") || !strings.Contains(table, "webhook") {
		t.Errorf("status table:\n%s", table)
	}

	// Only the updater changes: a reload replaces it, the mapping keeps
	// running (no new session, no notify script), and the new one runs
	// with the current address.
	before := d.status(t)["web"]
	script := strings.TrimSuffix(d.notes, "notes") + "notify.sh"
	d.writeConfig(t, strings.ReplaceAll(strings.ReplaceAll(cfg, "/natmap'", "/natmap2'"), "NOTIFY", script))
	if out, err := d.cli("reload"); err != nil {
		t.Fatalf("reload: %v %s", err, out)
	}
	deadline = time.Now().Add(15 * time.Second)
	for {
		mu.Lock()
		last := hits[len(hits)-1]
		mu.Unlock()
		if last.path == "/natmap2" {
			if last.body["public_port"] != h.body["public_port"] {
				t.Errorf("replaced updater told %v, want %v", last.body, h.body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the changed webhook was not called after the reload")
		}
		time.Sleep(20 * time.Millisecond)
	}
	after := d.status(t)["web"]
	if after.State != "mapped" || after.LastChange != before.LastChange || len(d.sectionNotes("web")) != 1 {
		t.Errorf("the mapping restarted: before %+v, after %+v, %d notifications", before, after, len(d.sectionNotes("web")))
	}
}
