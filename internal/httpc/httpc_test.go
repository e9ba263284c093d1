package httpc

import (
	"context"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/testkit/testgate"
)

func echoServer(t *testing.T, tls bool) *httptest.Server {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u, p, _ := r.BasicAuth()
		w.Header().Set("X-Method", r.Method)
		w.Header().Set("X-Auth", u+"/"+p)
		w.Header().Set("X-Token", r.Header.Get("X-Token"))
		w.Header().Set("X-Path", r.URL.RequestURI())
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
		if r.URL.Query().Get("chunked") != "" {
			w.WriteHeader(201)
			w.Write(body)
			w.(http.Flusher).Flush()
			w.Write([]byte("|more"))
			return
		}
		w.WriteHeader(202)
		w.Write(body)
	})
	var s *httptest.Server
	if tls {
		s = httptest.NewTLSServer(h)
	} else {
		s = httptest.NewServer(h)
	}
	t.Cleanup(s.Close)
	return s
}

func TestDoPlain(t *testing.T) {
	s := echoServer(t, false)
	var c Client
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := strings.Replace(s.URL, "http://", "http://us%40er:p%3Ass@", 1) + "/x/y?z=1"
	resp, err := c.Do(ctx, &Request{Method: "PUT", URL: url, Header: [][2]string{{"X-Token", "t0k"}}, Body: []byte(`{"a":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 202 || string(resp.Body) != `{"a":1}` || resp.Get("x-method") != "PUT" ||
		resp.Get("X-Auth") != "us@er/p:ss" || resp.Get("X-Token") != "t0k" || resp.Get("X-Path") != "/x/y?z=1" {
		t.Errorf("got %d %q %v", resp.Status, resp.Body, resp.Header)
	}
	if v := resp.Values("Set-Cookie"); len(v) != 2 {
		t.Errorf("Set-Cookie %v", v)
	}
	resp, err = c.Do(ctx, &Request{Method: "POST", URL: s.URL + "/?chunked=1", Body: []byte("abc")})
	if err != nil || resp.Status != 201 || string(resp.Body) != "abc|more" {
		t.Errorf("chunked: %v %+v", err, resp)
	}
}

func TestDoHTTPSThroughCurl(t *testing.T) {
	testgate.Require(t, "https through curl", false, map[string]string{"curl": "curl"})
	s := echoServer(t, true)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	c := Client{CACert: ca}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.Do(ctx, &Request{Method: "PATCH", URL: s.URL + "/?chunked=1", Header: [][2]string{{"X-Token", `q"uo\te`}}, Body: []byte("line1\nline2 \"@x\"")})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 201 || string(resp.Body) != "line1\nline2 \"@x\"|more" || resp.Get("X-Token") != `q"uo\te` || resp.Get("X-Method") != "PATCH" {
		t.Errorf("got %d %q %v", resp.Status, resp.Body, resp.Header)
	}
	// The caller's body limit holds for curl's output too.
	small := Client{CACert: ca, Limits: Limits{Body: 3}}
	if _, err := small.Do(ctx, &Request{Method: "POST", URL: s.URL, Body: []byte("abcd")}); err == nil || !strings.Contains(err.Error(), "over 3 bytes") {
		t.Errorf("a 4-byte body through curl with a 3-byte limit: %v", err)
	}
	// Without the CA, curl refuses, and says so.
	_, err = (&Client{}).Do(ctx, &Request{Method: "GET", URL: s.URL})
	if err == nil || !strings.Contains(err.Error(), "curl") {
		t.Errorf("untrusted certificate: err %v", err)
	}
}

func TestDoErrors(t *testing.T) {
	var c Client
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, u := range []string{"ftp://x", "http://", "http://u:secret@h:99999/", "http://h/a b"} {
		_, err := c.Do(ctx, &Request{Method: "GET", URL: u})
		if err == nil {
			t.Errorf("%q: no error", u)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("%q: error quotes the password: %v", u, err)
		}
	}
	_, err := c.Do(ctx, &Request{Method: "GET", URL: "http://127.0.0.1:1/", Header: [][2]string{{"X", "a\r\nb: c"}}})
	if err == nil {
		t.Error("header injection accepted")
	}
	// A server that never answers: the context ends the request.
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer s.Close()
	sctx, scancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer scancel()
	if _, err := c.Do(sctx, &Request{Method: "GET", URL: s.URL}); err == nil {
		t.Error("slow server: no error")
	}
}

// Dial opens the connection (natmap's socket options), and the caller's
// limits hold.
func TestDoDialAndLimits(t *testing.T) {
	s := echoServer(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var dialed []string
	c := Client{
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dialed = append(dialed, network+" "+addr)
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
		Limits: Limits{Header: 4096, Body: 5},
	}
	resp, err := c.Do(ctx, &Request{Method: "POST", URL: s.URL + "/", Body: []byte("12345")})
	if err != nil || string(resp.Body) != "12345" {
		t.Fatalf("%v %+v", err, resp)
	}
	if want := "tcp " + strings.TrimPrefix(s.URL, "http://"); len(dialed) != 1 || dialed[0] != want {
		t.Errorf("dialed %q, want %q", dialed, want)
	}
	for _, u := range []string{s.URL + "/", s.URL + "/?chunked=1"} {
		if _, err := c.Do(ctx, &Request{Method: "POST", URL: u, Body: []byte("123456")}); err == nil || !strings.Contains(err.Error(), "over 5") {
			t.Errorf("%s: a 6-byte body within a 5-byte limit: %v", u, err)
		}
	}
	c.Limits = Limits{Header: 100}
	if _, err := c.Do(ctx, &Request{Method: "GET", URL: s.URL + "/"}); err == nil || !strings.Contains(err.Error(), "header too long") {
		t.Errorf("headers over 100 bytes: %v", err)
	}
}
