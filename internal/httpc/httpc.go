// Package httpc is a small HTTP/1.1 client for the updaters: one request
// per connection, bodies read whole and bounded. It exists because net/http
// (and crypto/tls) would take natmap's router package over its size budget.
// http:// URLs are served in-process; https:// URLs through curl, when it
// is installed (OpenWrt: opkg install curl), with the request (headers,
// secrets included) handed over on curl's standard input, never in its
// arguments.
package httpc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
)

// MaxBody bounds a response body; an updater's answers are small.
const MaxBody = 1 << 20

// Request is one HTTP request.
type Request struct {
	Method string
	URL    string // http://[user:password@]host[:port]/path?query, or https://
	Header [][2]string
	Body   []byte
}

// Response is an answer, its body read whole.
type Response struct {
	Status int
	Header [][2]string
	Body   []byte
}

// Get is the first value of a header, by case-insensitive name.
func (r *Response) Get(name string) string {
	for _, h := range r.Header {
		if strings.EqualFold(h[0], name) {
			return h[1]
		}
	}
	return ""
}

// Values are every value of a header.
func (r *Response) Values(name string) []string {
	var out []string
	for _, h := range r.Header {
		if strings.EqualFold(h[0], name) {
			out = append(out, h[1])
		}
	}
	return out
}

// Client sends requests. The zero value works.
type Client struct {
	Curl   string // curl's path for https; "" finds it on PATH
	CACert string // for curl: trust this CA file too (tests)
}

// URL is a parsed http(s) URL.
type URL struct {
	HTTPS    bool
	Host     string // host:port, the port always set
	HostName string // as written, for the Host header
	Path     string // path and query, at least "/"
	User     string // userinfo, unescaped; "" without
	Password string
	HasUser  bool
}

// ParseURL reads an http:// or https:// URL. Its errors never quote the
// URL, which may hold a password.
func ParseURL(s string) (*URL, error) {
	u := &URL{}
	rest, ok := strings.CutPrefix(s, "http://")
	port := "80"
	if !ok {
		if rest, ok = strings.CutPrefix(s, "https://"); !ok {
			return nil, errors.New("URL: want http:// or https://")
		}
		u.HTTPS, port = true, "443"
	}
	authority, path := rest, "/"
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority, path = rest[:i], rest[i:]
		if path[0] != '/' {
			path = "/" + path
		}
	}
	path, _, _ = strings.Cut(path, "#")
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		userinfo := authority[:i]
		authority = authority[i+1:]
		user, pass, _ := strings.Cut(userinfo, ":")
		var err1, err2 error
		u.User, err1 = unescape(user)
		u.Password, err2 = unescape(pass)
		if err1 != nil || err2 != nil {
			return nil, errors.New("URL: bad %-escape in the user or password")
		}
		u.HasUser = true
	}
	if authority == "" {
		return nil, errors.New("URL: no host")
	}
	host := authority
	if h, p, err := net.SplitHostPort(authority); err == nil {
		if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 {
			return nil, fmt.Errorf("URL: bad port %q", p)
		}
		host, port = h, p
	} else if strings.HasPrefix(authority, "[") && strings.HasSuffix(authority, "]") {
		host = authority[1 : len(authority)-1]
	}
	if host == "" || strings.ContainsAny(host, " /\\\r\n") {
		return nil, errors.New("URL: bad host")
	}
	if strings.ContainsAny(path, " \r\n") {
		return nil, errors.New("URL: spaces or line breaks in the path (escape them)")
	}
	u.Host = net.JoinHostPort(host, port)
	u.HostName = authority
	u.Path = path
	return u, nil
}

// unescape undoes %XX escapes.
func unescape(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", errors.New("short escape")
		}
		n, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", err
		}
		b.WriteByte(byte(n))
		i += 2
	}
	return b.String(), nil
}

// QueryEscape escapes s for a URL query or a form body.
func QueryEscape(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == '~':
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

// Do sends req and reads the answer, within ctx.
func (c *Client) Do(ctx context.Context, req *Request) (*Response, error) {
	u, err := ParseURL(req.URL)
	if err != nil {
		return nil, err
	}
	for _, h := range req.Header {
		if strings.ContainsAny(h[0], ":\r\n ") || h[0] == "" || strings.ContainsAny(h[1], "\r\n") {
			return nil, fmt.Errorf("bad header %q", h[0])
		}
	}
	if strings.ContainsAny(req.Method, " \r\n") || req.Method == "" {
		return nil, errors.New("bad method")
	}
	if u.HTTPS {
		return c.curl(ctx, u, req)
	}
	return plain(ctx, u, req)
}

func plain(ctx context.Context, u *URL, req *Request) (*Response, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nUser-Agent: natmap\r\n", req.Method, u.Path, u.HostName)
	if u.HasUser && !hasHeader(req.Header, "Authorization") {
		fmt.Fprintf(&b, "Authorization: Basic %s\r\n", base64.StdEncoding.EncodeToString([]byte(u.User+":"+u.Password)))
	}
	for _, h := range req.Header {
		fmt.Fprintf(&b, "%s: %s\r\n", h[0], h[1])
	}
	if req.Body != nil || req.Method == "POST" || req.Method == "PUT" || req.Method == "PATCH" {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(req.Body))
	}
	b.WriteString("\r\n")
	b.Write(req.Body)
	if _, err := conn.Write(b.Bytes()); err != nil {
		return nil, ctxErr(ctx, err)
	}
	resp, err := ReadResponse(bufio.NewReader(conn), req.Method == "HEAD")
	return resp, ctxErr(ctx, err)
}

func ctxErr(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

func hasHeader(h [][2]string, name string) bool {
	for _, kv := range h {
		if strings.EqualFold(kv[0], name) {
			return true
		}
	}
	return false
}

// ReadResponse reads one response: status line, headers (1xx answers
// skipped), and a body framed by chunked encoding, Content-Length, or the
// end of the connection. noBody is for HEAD.
func ReadResponse(r *bufio.Reader, noBody bool) (*Response, error) {
	return readResponse(r, noBody, false)
}

// readResponse is ReadResponse; decoded says the body is already unframed
// and runs to the end (curl's output).
func readResponse(r *bufio.Reader, noBody, decoded bool) (*Response, error) {
	for {
		resp, err := readHead(r)
		if err != nil {
			return nil, err
		}
		switch {
		case resp.Status >= 100 && resp.Status < 200:
			continue
		case decoded:
			resp.Body, err = io.ReadAll(io.LimitReader(r, MaxBody))
		case noBody || resp.Status == 204 || resp.Status == 304:
		default:
			resp.Body, err = readBody(r, resp)
		}
		return resp, err
	}
}

const maxHead = 64 << 10

func readHead(r *bufio.Reader) (*Response, error) {
	var lines []string
	size := 0
	for {
		line, err := r.ReadString('\n')
		size += len(line)
		if size > maxHead {
			return nil, errors.New("HTTP response: header too long")
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("HTTP response: %w", err)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if len(lines) == 0 {
				continue // stray blank line before the status
			}
			break
		}
		lines = append(lines, line)
	}
	proto, rest, _ := strings.Cut(lines[0], " ")
	code, _, _ := strings.Cut(rest, " ")
	n, err := strconv.Atoi(code)
	if !strings.HasPrefix(proto, "HTTP/") || err != nil || n < 100 || n > 999 {
		return nil, fmt.Errorf("HTTP response: bad status line %q", trunc(lines[0]))
	}
	resp := &Response{Status: n}
	for _, l := range lines[1:] {
		k, v, ok := strings.Cut(l, ":")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("HTTP response: bad header line %q", trunc(l))
		}
		resp.Header = append(resp.Header, [2]string{k, strings.TrimSpace(v)})
	}
	return resp, nil
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

func readBody(r *bufio.Reader, resp *Response) ([]byte, error) {
	if strings.EqualFold(resp.Get("Transfer-Encoding"), "chunked") {
		return readChunked(r)
	}
	if cl := resp.Get("Content-Length"); cl != "" {
		n, err := strconv.ParseInt(cl, 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("HTTP response: bad Content-Length %q", trunc(cl))
		}
		if n > MaxBody {
			return nil, fmt.Errorf("HTTP response: body of %d bytes, over %d", n, MaxBody)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, fmt.Errorf("HTTP response body: %w", err)
		}
		return b, nil
	}
	b, err := io.ReadAll(io.LimitReader(r, MaxBody+1))
	if err != nil {
		return nil, fmt.Errorf("HTTP response body: %w", err)
	}
	if len(b) > MaxBody {
		return nil, fmt.Errorf("HTTP response: body over %d bytes", MaxBody)
	}
	return b, nil
}

func readChunked(r *bufio.Reader) ([]byte, error) {
	var out []byte
	for {
		line, err := r.ReadString('\n')
		if err != nil || len(line) > 1024 {
			return nil, errors.New("HTTP response: bad chunk size line")
		}
		size, _, _ := strings.Cut(strings.TrimSpace(line), ";")
		n, err := strconv.ParseUint(size, 16, 32)
		if err != nil {
			return nil, fmt.Errorf("HTTP response: bad chunk size %q", trunc(size))
		}
		if n == 0 {
			// Trailers, up to the blank line.
			for {
				l, err := r.ReadString('\n')
				if err != nil || strings.TrimRight(l, "\r\n") == "" {
					return out, nil
				}
			}
		}
		if uint64(len(out))+n > MaxBody {
			return nil, fmt.Errorf("HTTP response: body over %d bytes", MaxBody)
		}
		chunk := make([]byte, n)
		if _, err := io.ReadFull(r, chunk); err != nil {
			return nil, fmt.Errorf("HTTP response body: %w", err)
		}
		out = append(out, chunk...)
		if l, err := r.ReadString('\n'); err != nil || strings.TrimRight(l, "\r\n") != "" {
			return nil, errors.New("HTTP response: chunk not followed by a line break")
		}
	}
}
