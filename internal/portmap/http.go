package portmap

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/natmap-go/natmap/internal/httpc"
)

// The router's description and SOAP control URLs are read with httpc:
// net/http would add about half a megabyte to the mipsel package for two
// requests.

const (
	maxHeaderBytes = 8 << 10
	maxBodyBytes   = 64 << 10
)

// limits bound the router's HTTP replies (and SSDP's header).
var limits = httpc.Limits{Header: maxHeaderBytes, Body: maxBodyBytes}

// httpURL is an absolute http URL whose host is an IPv4 literal.
type httpURL struct {
	Host netip.AddrPort
	Path string // starts with "/"
}

func (u httpURL) String() string { return "http://" + u.Host.String() + u.Path }

// parseHTTPURL reads "http://a.b.c.d[:port][/path]".
func parseHTTPURL(s string) (httpURL, error) {
	rest, ok := strings.CutPrefix(s, "http://")
	if !ok {
		return httpURL{}, fmt.Errorf("URL %q: not http://", s)
	}
	hostport, path := rest, "/"
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		hostport, path = rest[:i], rest[i:]
	}
	host, port := hostport, "80"
	if i := strings.LastIndexByte(hostport, ':'); i >= 0 {
		host, port = hostport[:i], hostport[i+1:]
	}
	addr, err := netip.ParseAddr(host)
	if err != nil || !addr.Is4() {
		return httpURL{}, fmt.Errorf("URL %q: host is not an IPv4 address", s)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return httpURL{}, fmt.Errorf("URL %q: bad port", s)
	}
	if strings.ContainsAny(path, " \t\r\n#") {
		return httpURL{}, fmt.Errorf("URL %q: bad path", s)
	}
	return httpURL{Host: netip.AddrPortFrom(addr, uint16(n)), Path: path}, nil
}

// resolve reads ref (absolute, absolute-path or relative) against u.
func (u httpURL) resolve(ref string) (httpURL, error) {
	switch {
	case ref == "":
		return httpURL{}, errors.New("empty URL")
	case strings.HasPrefix(ref, "http://"):
		return parseHTTPURL(ref)
	case strings.Contains(ref, "://"):
		return httpURL{}, fmt.Errorf("URL %q: not http://", ref)
	case strings.HasPrefix(ref, "/"):
		return parseHTTPURL("http://" + u.Host.String() + ref)
	}
	dir := u.Path[:strings.LastIndexByte(u.Path, '/')+1]
	return parseHTTPURL("http://" + u.Host.String() + dir + ref)
}

// doHTTP sends one request to the router and reads the reply (httpc,
// within limits), from a socket with o's options.
func doHTTP(ctx context.Context, o Options, method string, u httpURL, header [][2]string, body []byte) (*httpc.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout())
	defer cancel()
	c := httpc.Client{Limits: limits, Dial: func(ctx context.Context, _, addr string) (net.Conn, error) {
		d := net.Dialer{Control: o.Control}
		return d.DialContext(ctx, "tcp4", addr)
	}}
	resp, err := c.Do(ctx, &httpc.Request{Method: method, URL: u.String(), Header: header, Body: body})
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, u, err)
	}
	return resp, nil
}

// truncate shortens outside text quoted in an error.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
