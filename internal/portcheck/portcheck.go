// Package portcheck asks an outside port checker whether a public address
// accepts connections: a GET of a URL template with the address
// substituted, answered with a body of "1" (reachable) or "0" (not).
//
// The contract, for a checker of the user's own or a Transmission-style one:
//
//   - The template is an http:// or https:// URL; {ip}, {port} and {proto}
//     anywhere in its path or query are replaced by the public IP address,
//     the public port (decimal) and "tcp" or "udp". Nothing else in braces
//     is allowed. A template without {ip} suits checkers that test the
//     address the request comes from (Transmission's does): natmap's
//     request leaves through the same NAT.
//   - natmap sends "GET <path> HTTP/1.1" with Host, User-Agent: natmap and
//     Connection: close (http:// in-process, with natmap's interface and
//     mark; https:// through curl, see package httpc), and reads at most
//     4 KiB of header and a body of at most 64 bytes.
//   - The checker connects to ip:port (TCP) or sends a datagram there (UDP:
//     the service must answer, a checker cannot see a datagram arrive
//     otherwise) and answers status 200 with a body that, without
//     surrounding white space, is exactly "1" (reached) or "0" (not).
//     Anything else is an error: natmap then says it could not tell.
package portcheck

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/natmap-go/natmap/internal/httpc"
)

// URL is a parsed port-check URL template.
type URL struct {
	raw   string
	https bool
	host  string // host:port to connect to
	name  string // Host header
	path  string // request target with placeholders, starting with "/"
}

// Placeholders a template may use.
var placeholders = []string{"{ip}", "{port}", "{proto}"}

// ParseURL checks a template: http://host[:port][/path][?query], with only
// the known placeholders in braces, no user info and no fragment.
func ParseURL(s string) (*URL, error) {
	rest, ok := strings.CutPrefix(s, "http://")
	https, port := false, "80"
	if !ok {
		if rest, ok = strings.CutPrefix(s, "https://"); !ok {
			return nil, fmt.Errorf("port-check URL %q: want http(s)://HOST[:PORT]/PATH", s)
		}
		https, port = true, "443"
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
	host := authority
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
	return &URL{raw: s, https: https, host: net.JoinHostPort(host, port), name: authority, path: path}, nil
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

// limits bound what is read from a checker: a short header, and an answer
// of "1" or "0" and some white space.
var limits = httpc.Limits{Header: 4096, Body: maxAnswer}

// Check asks the checker at u whether public accepts proto from outside.
// ctx bounds the whole exchange. dial serves http:// URLs; https:// ones
// go through httpc's curl.
func Check(ctx context.Context, dial Dialer, u *URL, public netip.AddrPort, proto string) (bool, error) {
	scheme := "http://"
	if u.https {
		scheme = "https://"
	}
	c := httpc.Client{Dial: dial, Limits: limits}
	resp, err := c.Do(ctx, &httpc.Request{Method: "GET", URL: scheme + u.name + u.Target(public, proto)})
	if err != nil {
		return false, fmt.Errorf("port checker %s: %w", u.host, err)
	}
	ok, err := Answer(resp)
	if err != nil {
		return false, fmt.Errorf("port checker %s: %w", u.host, err)
	}
	return ok, nil
}

// maxAnswer bounds the body of an answer: "1" or "0" and some white space.
const maxAnswer = 64

// Answer reads a checker's response strictly: status 200 and a body of
// "1" (true) or "0" (false), surrounding white space allowed.
func Answer(resp *httpc.Response) (bool, error) {
	if resp.Status != 200 {
		return false, fmt.Errorf("status %d", resp.Status)
	}
	if len(resp.Body) > maxAnswer {
		return false, fmt.Errorf("answer of %d bytes, want 1 or 0", len(resp.Body))
	}
	switch strings.Trim(string(resp.Body), " \t\r\n") {
	case "1":
		return true, nil
	case "0":
		return false, nil
	}
	return false, fmt.Errorf("answer %.20q, want 1 or 0", resp.Body)
}
