// Package portcheck asks an outside port checker whether a public address
// accepts connections: a plain HTTP GET of a URL template with the address
// substituted, answered with a body of "1" (reachable) or "0" (not).
//
// The contract, for a checker of the user's own or a Transmission-style one:
//
//   - The template is an http:// URL; {ip}, {port} and {proto} anywhere in
//     its path or query are replaced by the public IP address, the public
//     port (decimal) and "tcp" or "udp". Nothing else in braces is allowed.
//     A template without {ip} suits checkers that test the address the
//     request comes from (Transmission's does): natmap's request leaves
//     through the same NAT.
//   - natmap sends "GET <path> HTTP/1.0" with Host, User-Agent: natmap and
//     Connection: close, and reads at most 4 KiB.
//   - The checker connects to ip:port (TCP) or sends a datagram there (UDP:
//     the service must answer, a checker cannot see a datagram arrive
//     otherwise) and answers status 200 with a body that, without
//     surrounding white space, is exactly "1" (reached) or "0" (not).
//     Anything else is an error: natmap then says it could not tell.
//
// HTTPS is not spoken: natmap stays one small binary without TLS. Run the
// checker on plain HTTP (or behind a local relay that adds TLS).
package portcheck

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// URL is a parsed port-check URL template.
type URL struct {
	raw  string
	host string // host:port to connect to
	name string // Host header
	path string // request target with placeholders, starting with "/"
}

// Placeholders a template may use.
var placeholders = []string{"{ip}", "{port}", "{proto}"}

// ParseURL checks a template: http://host[:port][/path][?query], with only
// the known placeholders in braces, no user info and no fragment.
func ParseURL(s string) (*URL, error) {
	rest, ok := strings.CutPrefix(s, "http://")
	if !ok {
		if strings.HasPrefix(s, "https://") {
			return nil, fmt.Errorf("port-check URL %q: https is not supported, give an http:// URL", s)
		}
		return nil, fmt.Errorf("port-check URL %q: want http://HOST[:PORT]/PATH", s)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '#' || c == '\\' || c == '"' {
			return nil, fmt.Errorf("port-check URL %q: character %q not allowed", s, c)
		}
	}
	authority, path := rest, "/"
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		authority, path = rest[:i], rest[i:]
		if path[0] == '?' {
			path = "/" + path
		}
	}
	if strings.ContainsAny(authority, "@{}") {
		return nil, fmt.Errorf("port-check URL %q: no user info or placeholder in the host", s)
	}
	host, port := authority, "80"
	if h, p, err := net.SplitHostPort(authority); err == nil {
		host, port = h, p
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 || p[0] == '+' {
			return nil, fmt.Errorf("port-check URL %q: bad port %q", s, p)
		}
	} else if strings.HasPrefix(authority, "[") {
		if !strings.HasSuffix(authority, "]") {
			return nil, fmt.Errorf("port-check URL %q: bad host %q", s, authority)
		}
		host = authority[1 : len(authority)-1]
	}
	if host == "" {
		return nil, fmt.Errorf("port-check URL %q: no host", s)
	}
	if _, err := netip.ParseAddr(host); err != nil && !hostname(host) {
		return nil, fmt.Errorf("port-check URL %q: bad host %q", s, host)
	}
	// Only known placeholders: a typo ({pot}) must not reach the checker.
	rem := path
	for _, p := range placeholders {
		rem = strings.ReplaceAll(rem, p, "")
	}
	if strings.ContainsAny(rem, "{}") {
		return nil, fmt.Errorf("port-check URL %q: unknown placeholder (use {ip}, {port}, {proto})", s)
	}
	return &URL{raw: s, host: net.JoinHostPort(host, port), name: authority, path: path}, nil
}

// hostname reports whether s is made of a DNS name's characters.
func hostname(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

func (u *URL) String() string { return u.raw }

// Target is the request target for public over proto ("tcp" or "udp").
func (u *URL) Target(public netip.AddrPort, proto string) string {
	r := strings.NewReplacer("{ip}", public.Addr().String(), "{port}", strconv.Itoa(int(public.Port())), "{proto}", proto)
	return r.Replace(u.path)
}

// Dialer opens the TCP connection to the checker (with natmap's socket
// options: interface, mark).
type Dialer func(ctx context.Context, network, addr string) (net.Conn, error)

// maxResponse bounds what is read from a checker.
const maxResponse = 4096

// Check asks the checker at u whether public accepts proto from outside.
// ctx bounds the whole exchange.
func Check(ctx context.Context, dial Dialer, u *URL, public netip.AddrPort, proto string) (bool, error) {
	c, err := dial(ctx, "tcp", u.host)
	if err != nil {
		return false, fmt.Errorf("port checker %s: %w", u.host, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if d, ok := ctx.Deadline(); ok {
		c.SetDeadline(d)
	}
	req := "GET " + u.Target(public, proto) + " HTTP/1.0\r\nHost: " + u.name +
		"\r\nUser-Agent: natmap\r\nConnection: close\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		return false, fmt.Errorf("port checker %s: %w", u.host, ctxErr(ctx, err))
	}
	resp, err := io.ReadAll(io.LimitReader(c, maxResponse+1))
	if err != nil {
		return false, fmt.Errorf("port checker %s: %w", u.host, ctxErr(ctx, err))
	}
	ok, err := ParseResponse(resp)
	if err != nil {
		return false, fmt.Errorf("port checker %s: %w", u.host, err)
	}
	return ok, nil
}

func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// ParseResponse reads a whole HTTP/1.x response, strictly: status 200, a
// Content-Length (when given) equal to the body's length, no transfer
// coding, and a body of "1" or "0" (surrounding white space allowed).
func ParseResponse(b []byte) (bool, error) {
	if len(b) > maxResponse {
		return false, errors.New("response longer than 4 KiB")
	}
	head, body, ok := bytes.Cut(b, []byte("\r\n\r\n"))
	if !ok {
		return false, errors.New("response ends before its body")
	}
	lines := strings.Split(string(head), "\r\n")
	status := lines[0]
	proto, rest, _ := strings.Cut(status, " ")
	code, _, _ := strings.Cut(rest, " ")
	if proto != "HTTP/1.0" && proto != "HTTP/1.1" {
		return false, fmt.Errorf("not an HTTP/1 response: %.40q", status)
	}
	if len(code) != 3 || code[0] < '1' || code[0] > '9' || strings.Trim(code, "0123456789") != "" {
		return false, fmt.Errorf("bad status line %.40q", status)
	}
	if code != "200" {
		return false, fmt.Errorf("status %s", code)
	}
	length := -1
	for _, l := range lines[1:] {
		name, val, ok := strings.Cut(l, ":")
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return false, fmt.Errorf("bad header line %.40q", l)
		}
		val = strings.Trim(val, " \t")
		switch strings.ToLower(name) {
		case "content-length":
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 || val[0] == '+' || length >= 0 {
				return false, fmt.Errorf("bad Content-Length %.20q", val)
			}
			length = n
		case "transfer-encoding":
			return false, fmt.Errorf("unexpected Transfer-Encoding %.20q", val)
		}
	}
	if length >= 0 && length != len(body) {
		return false, fmt.Errorf("body of %d bytes, Content-Length says %d", len(body), length)
	}
	switch strings.Trim(string(body), " \t\r\n") {
	case "1":
		return true, nil
	case "0":
		return false, nil
	}
	return false, fmt.Errorf("answer %.20q, want 1 or 0", body)
}
