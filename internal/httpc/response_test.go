package httpc

import (
	"bufio"
	"strings"
	"testing"
)

// portmapLimits are the tightest limits a caller sets (UPnP's router).
var portmapLimits = Limits{Header: 8 << 10, Body: 64 << 10}

func read(in string, lim Limits) (*Response, error) {
	return ReadResponse(bufio.NewReader(strings.NewReader(in)), false, lim)
}

func TestReadResponse(t *testing.T) {
	for _, tc := range []struct{ in, body string }{
		{"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiXX", "hi"},
		{"HTTP/1.0 200 OK\r\n\r\nto the end", "to the end"},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x=y\r\nab\r\n1\r\nc\r\n0\r\nT: v\r\n\r\n", "abc"},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6; x=y\r\n world\r\n0\r\n\r\n", "hello world"},
		// Bare LF line ends (RFC 9112 §2.2), no reason phrase, a missing
		// last CRLF after the last chunk.
		{"HTTP/1.1 200\nContent-Length: 1\n\nx", "x"},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n", "x"},
		// Transfer codings: chunked last; identity (RFC 2616) is no coding;
		// Transfer-Encoding overrides Content-Length.
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity, Chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n", "x"},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\nContent-Length: 1\r\n\r\nxy", "x"},
		{"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n", "x"},
		{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1, 1\r\n\r\nx", "x"},
		{"HTTP/1.1 204 No Content\r\nTransfer-Encoding: gzip\r\n\r\n", ""},
	} {
		resp, err := read(tc.in, Limits{})
		if err != nil || string(resp.Body) != tc.body {
			t.Errorf("%q: %v %+v", tc.in, err, resp)
		}
	}
	for _, in := range []string{
		"", "garbage\r\n\r\n", "HTTP/1.1 abc\r\n\r\n", "HTTP/1.1 2000 OK\r\n\r\n", "HTTP/1.1 200OK\r\n\r\n",
		"HTTP/1.1 099 x\r\n\r\n", "HTTP/1.1 600 x\r\n\r\n", "HTTP/2 200\r\n\r\n", "SSH-2.0-OpenSSH\r\n\r\n",
		"HTTP/1.1 200 OK\r\n", "HTTP/1.1 200 OK\r\nbad header\r\n\r\n", "HTTP/1.1 200 OK\r\nX Y: z\r\n\r\n",
		"HTTP/1.1 200 OK\r\n folded: x\r\n\r\n", "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\nx",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy", "HTTP/1.1 200 OK\r\nContent-Length: 1,2\r\n\r\nxy",
		"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n+1\r\nx\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffff\r\n", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxy\r\n0\r\n\r\n",
		// Codings natmap cannot decode, chunked not last or twice (RFC 9112 §6.1, §6.3).
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nx", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nx", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: x-custom\r\n\r\nx", "HTTP/1.1 200 OK\r\nTransfer-Encoding: deflate\r\nContent-Length: 1\r\n\r\nx",
	} {
		if _, err := read(in, Limits{}); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

// Each caller's limits hold for the header (1xx responses and trailers
// included) and the body, however it is framed.
func TestReadResponseLimits(t *testing.T) {
	lim := Limits{Header: 100, Body: 10}
	for _, in := range []string{
		"HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", 100) + "\r\n\r\n",
		"HTTP/1.1 200 OK\r\n" + strings.Repeat("X: a\r\n", 20) + "\r\n",
		strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", 5) + "HTTP/1.1 200 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\n" + strings.Repeat("X", 1<<20), // no line end
		"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n" + strings.Repeat("b", 11),
		"HTTP/1.1 200 OK\r\n\r\n" + strings.Repeat("b", 11),
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nbbbbbb\r\n5\r\nbbbbb\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + strings.Repeat("T: v\r\n", 20) + "\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;" + strings.Repeat("e", 2000) + "\r\nx\r\n0\r\n\r\n",
	} {
		if _, err := read(in, lim); err == nil {
			t.Errorf("%.60q: within %+v", in, lim)
		}
	}
	resp, err := read("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"+strings.Repeat("b", 10), lim)
	if err != nil || len(resp.Body) != 10 {
		t.Errorf("a body at the limit: %v", err)
	}
	// The defaults: 64 KiB of header, 1 MiB of body.
	if _, err := read("HTTP/1.1 200 OK\r\nContent-Length: 1048577\r\n\r\n", Limits{}); err == nil {
		t.Error("a body over 1 MiB by default")
	}
	if _, err := read("HTTP/1.1 200 OK\r\nX: "+strings.Repeat("a", 64<<10)+"\r\n\r\n", Limits{}); err == nil {
		t.Error("a header over 64 KiB by default")
	}
	if _, err := read("HTTP/1.1 200 OK\r\nX: "+strings.Repeat("a", 10<<10)+"\r\n\r\n", portmapLimits); err == nil {
		t.Error("a header over 8 KiB with portmap's limits")
	}
}

// FuzzReadResponse fuzzes the one reader with the updaters' seeds and
// UPnP's, under the default limits and portmap's tighter ones.
func FuzzReadResponse(f *testing.F) {
	// The updaters'.
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 409 Conflict\r\nX-Transmission-Session-Id: abc\r\n\r\n"))
	// UPnP's (internal/portmap's FuzzReadHTTPResponse).
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"))
	f.Add([]byte("HTTP/1.0 500 Internal Server Error\r\n\r\n<x/>"))
	// Transfer codings.
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: identity, chunked\r\n\r\n1\r\nx\r\n0\r\nT: v\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 1\r\n\r\nx"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, lim := range []Limits{{}, portmapLimits} {
			resp, err := ReadResponse(bufio.NewReader(strings.NewReader(string(b))), false, lim)
			if err == nil && (resp.Status < 200 || resp.Status > 599 || len(resp.Body) > lim.body() ||
				resp.Proto != "HTTP/1.1" && resp.Proto != "HTTP/1.0") {
				t.Errorf("accepted %s %d with %d bytes", resp.Proto, resp.Status, len(resp.Body))
			}
			if err == nil {
				for _, h := range resp.Header {
					if !token(h[0]) || strings.ContainsAny(h[1], "\r\n") {
						t.Errorf("accepted header %q", h)
					}
				}
			}
			readResponse(bufio.NewReader(strings.NewReader(string(b))), false, true, lim)
		}
	})
}
