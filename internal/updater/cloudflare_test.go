package updater

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/natmap-go/natmap/internal/testkit/testgate"
)

// cfStandIn implements the Cloudflare API v4 endpoints natmap uses, as
// documented: list DNS records (GET /zones/{zone_id}/dns_records, filtered
// by type and name.exact), create (POST), overwrite (PUT .../{id}) and
// delete (DELETE .../{id}), with an API token, every answer in the
// {success, errors, messages, result} envelope.
type cfStandIn struct {
	zone, token string
	mu          sync.Mutex // guards the fields below
	records     map[string]cfRecord
	nextID      int
	calls       []string
}

func newCFStandIn(t *testing.T) (*cfStandIn, *httptest.Server) {
	s := &cfStandIn{zone: "023e105f4ecef8ad9ca31a8372d0c353", token: "cf-token-123", records: map[string]cfRecord{}}
	srv := httptest.NewTLSServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

func (s *cfStandIn) reply(w http.ResponseWriter, code int, result any, errs ...string) {
	env := map[string]any{"success": len(errs) == 0, "errors": []any{}, "messages": []any{}, "result": result}
	var list []map[string]any
	for _, e := range errs {
		list = append(list, map[string]any{"code": 10000 + len(list), "message": e})
	}
	if list != nil {
		env["errors"] = list
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(env)
}

func (s *cfStandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, r.Method)
	if r.Header.Get("Authorization") != "Bearer "+s.token {
		s.reply(w, 403, nil, "Authentication error")
		return
	}
	prefix := "/client/v4/zones/" + s.zone + "/dns_records"
	rest, ok := strings.CutPrefix(r.URL.Path, prefix)
	if !ok {
		s.reply(w, 404, nil, "Could not route to "+r.URL.Path)
		return
	}
	id := strings.TrimPrefix(rest, "/")
	var body cfRecord
	if r.Method == "POST" || r.Method == "PUT" {
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			s.reply(w, 400, nil, "bad JSON: "+err.Error())
			return
		}
		if body.Name == "" || body.Type == "" || (body.TTL != 1 && (body.TTL < 60 || body.TTL > 86400)) ||
			(body.Type == "SRV") != (body.Data != nil) || (body.Type != "SRV") == (body.Content == "") {
			s.reply(w, 400, nil, fmt.Sprintf("invalid record %+v", body))
			return
		}
	}
	switch {
	case r.Method == "GET" && id == "":
		q := r.URL.Query()
		out := []cfRecord{}
		for _, rec := range s.records {
			if (q.Get("type") == "" || rec.Type == q.Get("type")) && (q.Get("name.exact") == "" || rec.Name == q.Get("name.exact")) {
				out = append(out, rec)
			}
		}
		slices.SortFunc(out, func(a, b cfRecord) int { return strings.Compare(a.ID, b.ID) })
		s.reply(w, 200, out)
	case r.Method == "POST" && id == "":
		s.nextID++
		body.ID = fmt.Sprintf("rec%03d", s.nextID)
		s.records[body.ID] = body
		s.reply(w, 200, body)
	case r.Method == "PUT" && id != "":
		if _, ok := s.records[id]; !ok {
			s.reply(w, 404, nil, "Record not found")
			return
		}
		body.ID = id
		s.records[id] = body
		s.reply(w, 200, body)
	case r.Method == "DELETE" && id != "":
		delete(s.records, id)
		s.reply(w, 200, map[string]string{"id": id})
	default:
		s.reply(w, 405, nil, "method not allowed")
	}
}

func (s *cfStandIn) find(name, typ string) []cfRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []cfRecord
	for _, r := range s.records {
		if r.Name == name && r.Type == typ {
			out = append(out, r)
		}
	}
	return out
}

func TestCloudflare(t *testing.T) {
	testgate.Require(t, "cloudflare updater", false, map[string]string{"curl": "curl"})
	cf, srv := newCFStandIn(t)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)
	opts := map[string]string{"api_url": srv.URL + "/client/v4", "zone_id": cf.zone, "api_token": cf.token,
		"name": "nas.example.test", "record": "a|ip4p|txt|srv", "srv_name": "_natmap._tcp.example.test"}
	b := build(t, "cloudflare", opts)
	b.Updater.(*cloudflare).client.CACert = ca
	// An extra A record: the RRset is replaced whole.
	cf.records["old"] = cfRecord{ID: "old", Type: "A", Name: "nas.example.test", Content: "192.0.2.99", TTL: 1}
	cf.records["zold"] = cfRecord{ID: "zold", Type: "A", Name: "nas.example.test", Content: "192.0.2.98", TTL: 1}
	for _, pub := range []string{"203.0.113.7:45678", "198.51.100.9:1234"} {
		if err := update(t, b, pub); err != nil {
			t.Fatal(err)
		}
	}
	check := func(typ, name, content string) {
		t.Helper()
		got := cf.find(name, typ)
		if len(got) != 1 || got[0].Content != content {
			t.Errorf("%s %s: %+v, want content %q", name, typ, got, content)
		}
	}
	check("A", "nas.example.test", "198.51.100.9")
	check("AAAA", "nas.example.test", "2001::4d2:c633:6409")
	check("TXT", "nas.example.test", `"198.51.100.9:1234"`)
	if got := cf.find("_natmap._tcp.example.test", "SRV"); len(got) != 1 || *got[0].Data != (cfData{Port: 1234, Target: "nas.example.test"}) {
		t.Errorf("SRV: %+v", got)
	}

	// A wrong token: a clear, permanent error, one request.
	opts["api_token"] = "wrong-token"
	bad := build(t, "cloudflare", opts)
	bad.Updater.(*cloudflare).client.CACert = ca
	cf.mu.Lock()
	cf.calls = nil
	cf.mu.Unlock()
	err := update(t, bad, "203.0.113.7:1")
	if err == nil || !IsPermanent(err) || !strings.Contains(err.Error(), "Authentication error") || strings.Contains(err.Error(), "wrong-token") {
		t.Errorf("wrong token: %v", err)
	}
	if len(cf.calls) != 1 {
		t.Errorf("wrong token: %d requests", len(cf.calls))
	}
}
