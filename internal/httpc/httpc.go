// Package httpc is natmap's small HTTP/1.1 client (the updaters, the port
// checker, UPnP's description and SOAP calls): one request per connection,
// responses read whole, strictly, within each caller's limits. It exists
// because net/http (and crypto/tls) would take natmap's router package over
// its size budget.
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

// Request is one HTTP request.
type Request struct {
	Method string
	URL    string // http://[user:password@]host[:port]/path?query, or https://
	Header [][2]string
	Body   []byte
}

// Response is an answer, its body read whole.
type Response struct {
	Proto  string // HTTP/1.1 or HTTP/1.0
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
	// Dial opens an http:// request's connection (natmap's socket
	// options: interface, mark); nil dials plain TCP.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Limits bound each response; zero fields are the defaults.
	Limits Limits
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
	return c.plain(ctx, u, req)
}

func (c *Client) plain(ctx context.Context, u *URL, req *Request) (*Response, error) {
	dial := c.Dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	conn, err := dial(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: natmap\r\nConnection: close\r\n", req.Method, u.Path, u.HostName)
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
	resp, err := ReadResponse(bufio.NewReader(io.LimitReader(conn, c.Limits.wire())), req.Method == "HEAD", c.Limits)
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
