package updater

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// recorder is an HTTP server that records every request.
type recorder struct {
	*httptest.Server
	mu   sync.Mutex // guards reqs
	reqs []recorded
	code int
}

type recorded struct {
	Method, Path, ContentType, Auth string
	Body                            string
}

func newRecorder(t *testing.T, code int) *recorder {
	r := &recorder{code: code}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.reqs = append(r.reqs, recorded{req.Method, req.URL.RequestURI(), req.Header.Get("Content-Type"), req.Header.Get("Authorization"), string(b)})
		r.mu.Unlock()
		w.WriteHeader(r.code)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) requests() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.reqs...)
}

func TestWebhook(t *testing.T) {
	srv := newRecorder(t, 204)
	// Without a body: a POST of a JSON object of the fields.
	if err := update(t, build(t, "webhook", map[string]string{"url": srv.URL + "/hook"}), "203.0.113.7:45678"); err != nil {
		t.Fatal(err)
	}
	// A JSON body template: values JSON-escaped (the comment has quotes).
	b := build(t, "webhook", map[string]string{
		"url":    srv.URL + "/n?addr={public_ip}:{public_port}&c={comment}",
		"method": "put",
		"header": "Authorization: Bearer tok|X-Section: {section}",
		"body":   `{"text": "{section} ({comment}) is at {public_ip}:{public_port}, ip4p {ip4p}, {protocol} {private_port}"}`,
	})
	if err := update(t, b, "203.0.113.7:45678"); err != nil {
		t.Fatal(err)
	}
	// A plain-text body: as is.
	if err := update(t, build(t, "webhook", map[string]string{"url": srv.URL + "/t", "header": "Content-Type: text/plain", "body": "{comment} {public_port}"}), "203.0.113.7:45678"); err != nil {
		t.Fatal(err)
	}
	reqs := srv.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests: %+v", len(reqs), reqs)
	}
	var obj map[string]any
	if err := json.Unmarshal([]byte(reqs[0].Body), &obj); err != nil || reqs[0].Method != "POST" || reqs[0].ContentType != "application/json" {
		t.Fatalf("default body %+v: %v", reqs[0], err)
	}
	for k, v := range map[string]any{"public_ip": "203.0.113.7", "public_port": 45678.0, "ip4p": "2001::b26e:cb00:7107", "private_port": 8080.0,
		"protocol": "tcp", "section": "nas", "comment": `my "NAS"`, "private_ip": "192.168.1.2"} {
		if obj[k] != v {
			t.Errorf("default body: %s = %v, want %v", k, obj[k], v)
		}
	}
	r := reqs[1]
	if r.Method != "PUT" || r.Path != "/n?addr=203.0.113.7:45678&c=my%20%22NAS%22" && r.Path != "/n?addr=203.0.113.7%3A45678&c=my%20%22NAS%22" || r.Auth != "Bearer tok" || r.ContentType != "application/json" {
		t.Errorf("template request %+v", r)
	}
	var tmpl struct{ Text string }
	if err := json.Unmarshal([]byte(r.Body), &tmpl); err != nil || tmpl.Text != `nas (my "NAS") is at 203.0.113.7:45678, ip4p 2001::b26e:cb00:7107, tcp 8080` {
		t.Errorf("template body %q: %v", r.Body, err)
	}
	if reqs[2].Body != `my "NAS" 45678` || reqs[2].ContentType != "text/plain" {
		t.Errorf("text body %+v", reqs[2])
	}

	// A refusal is permanent; a server error is retried.
	if err := update(t, build(t, "webhook", map[string]string{"url": newRecorder(t, 403).URL}), "203.0.113.7:1"); !IsPermanent(err) {
		t.Errorf("403: %v, want a permanent error", err)
	}
	if err := update(t, build(t, "webhook", map[string]string{"url": newRecorder(t, 503).URL}), "203.0.113.7:1"); err == nil || IsPermanent(err) {
		t.Errorf("503: %v, want a retried error", err)
	}
}

func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		typ  string
		opts map[string]string
		want string
	}{
		{"", nil, "option type missing"},
		{"ftp", nil, `unknown type "ftp"`},
		{"webhook", nil, "option url: missing"},
		{"webhook", map[string]string{"url": "gopher://x"}, "option url"},
		{"webhook", map[string]string{"url": "http://x", "header": "no colon"}, "option header"},
		{"rfc2136", map[string]string{"server": "ns", "zone": "example.test", "name": "a.example.org"}, "not in zone"},
		{"rfc2136", map[string]string{"server": "ns", "zone": "example.test", "name": "a.example.test", "key_name": "k", "key_secret": "s3cr3t!!"}, "option key_secret: not base64"},
		{"rfc2136", map[string]string{"server": "ns", "zone": "example.test", "name": "a.example.test", "key_name": "k", "key_secret": "c2VjcmV0", "key_algorithm": "hmac-md5"}, "option key_algorithm"},
		{"rfc2136", map[string]string{"server": "ns", "zone": "example.test", "record": "srv"}, "option srv_name: missing"},
		{"rfc2136", map[string]string{"server": "ns", "zone": "example.test", "name": "a.example.test", "record": "mx"}, "option record"},
		{"cloudflare", map[string]string{"zone_id": "z", "name": "a.example.test"}, "option api_token: missing"},
		{"transmission", map[string]string{"url": "x"}, "option url"},
		{"webhook", map[string]string{"url": "http://x", "timeout": "soon"}, "option timeout"},
	} {
		c := Config{Name: "u", Type: tc.typ, Options: map[string][]string{}}
		for k, v := range tc.opts {
			c.Options[k] = []string{v}
		}
		_, err := New(c)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %v: err %v, want %q", tc.typ, tc.opts, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("error shows the secret: %v", err)
		}
	}
	b, err := New(Config{Name: "u", Type: "webhook", Options: map[string][]string{"url": {"http://x"}, "colour": {"red"}}})
	if err != nil || len(b.Warnings) != 1 || !strings.Contains(b.Warnings[0], `unknown option "colour"`) {
		t.Errorf("unknown option: %v %v", err, b)
	}
}
