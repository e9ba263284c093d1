package portcheck

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/httpc"
)

func TestParseURL(t *testing.T) {
	pub := netip.MustParseAddrPort("198.51.100.1:24936")
	for _, c := range []struct{ in, host, target string }{
		{"http://checker.example/{port}", "checker.example:80", "/24936"},
		{"http://192.0.2.1:8000/check?ip={ip}&port={port}&proto={proto}", "192.0.2.1:8000", "/check?ip=198.51.100.1&port=24936&proto=tcp"},
		{"http://[2001:db8::1]:81?p={port}", "[2001:db8::1]:81", "/?p=24936"},
		{"http://[2001:db8::1]", "[2001:db8::1]:80", "/"},
		{"http://h", "h:80", "/"},
		{"https://portcheck.transmissionbt.com/{port}", "portcheck.transmissionbt.com:443", "/24936"},
	} {
		u, err := ParseURL(c.in)
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if u.host != c.host || u.Target(pub, "tcp") != c.target {
			t.Errorf("%q: host %q target %q, want %q %q", c.in, u.host, u.Target(pub, "tcp"), c.host, c.target)
		}
	}
	for _, bad := range []string{
		"", "checker.example/{port}", "ftp://x/",
		"http:///x", "http://h:0/", "http://h:99999/", "http://h:+80/", "http://u@h/", "http://h/{pot}",
		"http://h/a b", "http://h/#frag", "http://{ip}/", "http://[::1/", "http://h/\x7f", "http://a:b:c/",
	} {
		if _, err := ParseURL(bad); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}

// parse reads b as a checker's whole response.
func parse(b []byte) (bool, error) {
	resp, err := httpc.ReadResponse(bufio.NewReader(bytes.NewReader(b)), false, limits)
	if err != nil {
		return false, err
	}
	return Answer(resp)
}

func TestAnswer(t *testing.T) {
	for _, c := range []struct {
		in   string
		want bool
	}{
		{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1", true},
		{"HTTP/1.0 200 OK\r\n\r\n0\n", false},
		{"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n 1\r\n", true},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n1\r\n0\r\n\r\n", true},
	} {
		got, err := parse([]byte(c.in))
		if err != nil || got != c.want {
			t.Errorf("%q: %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{
		"", "HTTP/1.1 200 OK\r\n", "HTTP/1.1 404 Not Found\r\n\r\n1",
		"HTTP/1.1 200 OK\r\n\r\nyes", "HTTP/1.1 200 OK\r\n\r\n10", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n1",
		"HTTP/1.1 20x OK\r\n\r\n1", "HTTP/1.1 200 OK\r\n\r\n" + strings.Repeat(" ", maxAnswer) + "1",
	} {
		if _, err := parse([]byte(bad)); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}

// Check sends the documented request and reads the answer; a checker that
// never answers is cut off by the context.
func TestCheck(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	reqs := make(chan string, 2)
	go func() {
		for i := 0; ; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 1024)
			n, _ := c.Read(buf)
			reqs <- string(buf[:n])
			if i == 0 {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")
				c.Close()
			} else {
				defer c.Close() // silent: the client's deadline ends it
			}
		}
	}()
	u, err := ParseURL("http://" + ln.Addr().String() + "/c?ip={ip}&port={port}&proto={proto}")
	if err != nil {
		t.Fatal(err)
	}
	var d net.Dialer
	pub := netip.MustParseAddrPort("198.51.100.1:5000")
	ok, err := Check(context.Background(), d.DialContext, u, pub, "udp")
	if err != nil || !ok {
		t.Fatalf("Check: %v, %v", ok, err)
	}
	want := "GET /c?ip=198.51.100.1&port=5000&proto=udp HTTP/1.1\r\nHost: " + ln.Addr().String() + "\r\nUser-Agent: natmap\r\nConnection: close\r\n\r\n"
	if got := <-reqs; got != want {
		t.Errorf("request %q, want %q", got, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := Check(ctx, d.DialContext, u, pub, "tcp"); err == nil {
		t.Fatal("a silent checker gave an answer")
	}
}

func FuzzAnswer(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1"))
	f.Add([]byte("HTTP/1.0 200 OK\r\n\r\n0\n"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ok, err := parse(b)
		if err != nil && ok {
			t.Fatal("reachable with an error")
		}
		if err == nil && !strings.Contains(string(b), " 200") {
			t.Fatalf("accepted %q without status 200", b)
		}
	})
}

func FuzzParseURL(f *testing.F) {
	f.Add("http://checker.example/{port}")
	f.Add("http://192.0.2.1:8000/check?ip={ip}&port={port}&proto={proto}")
	f.Add("http://[2001:db8::1]:81?p={port}")
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseURL(s)
		if err != nil {
			return
		}
		target := u.Target(netip.MustParseAddrPort("[2001:db8::1]:65535"), "udp")
		if !strings.HasPrefix(target, "/") || strings.ContainsAny(target, " \r\n{}") {
			t.Fatalf("%q gives request target %q", s, target)
		}
		if _, _, err := net.SplitHostPort(u.host); err != nil {
			t.Fatalf("%q gives host %q: %v", s, u.host, err)
		}
	})
}
