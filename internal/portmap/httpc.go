package portmap

import (
	"bufio"
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

// A minimal HTTP/1.1 client for the router's description and SOAP control
// URLs: one request per connection, bodies bounded. net/http would add
// about half a megabyte to the mipsel package for two requests.

const (
	maxHeaderBytes = 8 << 10
	maxBodyBytes   = 64 << 10
)

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

// httpResponse is a parsed HTTP reply.
type httpResponse struct {
	Status int
	Header map[string]string // lower-case names
	Body   []byte
}

// doHTTP sends one request and reads the reply.
func doHTTP(ctx context.Context, o Options, method string, u httpURL, header map[string]string, body []byte) (httpResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout())
	defer cancel()
	d := net.Dialer{Control: o.Control}
	c, err := d.DialContext(ctx, "tcp4", u.Host.String())
	if err != nil {
		return httpResponse{}, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()

	var req bytes.Buffer
	fmt.Fprintf(&req, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nUser-Agent: natmap\r\n", method, u.Path, u.Host)
	for k, v := range header {
		fmt.Fprintf(&req, "%s: %s\r\n", k, v)
	}
	if body != nil {
		fmt.Fprintf(&req, "Content-Length: %d\r\n", len(body))
	}
	req.WriteString("\r\n")
	req.Write(body)
	if _, err := c.Write(req.Bytes()); err != nil {
		return httpResponse{}, err
	}
	resp, err := readHTTPResponse(bufio.NewReader(io.LimitReader(c, maxHeaderBytes+2*maxBodyBytes)))
	if err != nil {
		return resp, fmt.Errorf("%s %s: %w", method, u, err)
	}
	return resp, nil
}

// readHTTPResponse parses a reply: status line, headers, and a body framed
// by Content-Length, chunked encoding or the end of the connection.
func readHTTPResponse(r *bufio.Reader) (httpResponse, error) {
	resp := httpResponse{Header: map[string]string{}}
	head := 0
	line := func() (string, error) {
		s, err := r.ReadString('\n')
		head += len(s)
		if head > maxHeaderBytes {
			return "", errors.New("reply header too long")
		}
		if err != nil {
			return "", fmt.Errorf("reply header: %w", err)
		}
		return strings.TrimRight(s, "\r\n"), nil
	}
	status, err := line()
	if err != nil {
		return resp, err
	}
	proto, rest, _ := strings.Cut(status, " ")
	code, _, _ := strings.Cut(rest, " ")
	if proto != "HTTP/1.1" && proto != "HTTP/1.0" {
		return resp, fmt.Errorf("status line %q", truncate(status))
	}
	n, err := strconv.Atoi(code)
	if err != nil || len(code) != 3 || n < 100 {
		return resp, fmt.Errorf("status line %q", truncate(status))
	}
	resp.Status = n
	if resp.Header, err = readHeaders(line); err != nil {
		return resp, err
	}
	switch {
	case strings.EqualFold(resp.Header["transfer-encoding"], "chunked"):
		resp.Body, err = readChunked(r)
	case resp.Header["content-length"] != "":
		var n uint64
		n, err = strconv.ParseUint(resp.Header["content-length"], 10, 32)
		if err != nil || n > maxBodyBytes {
			return resp, fmt.Errorf("content-length %q", truncate(resp.Header["content-length"]))
		}
		resp.Body = make([]byte, n)
		_, err = io.ReadFull(r, resp.Body)
	case resp.Header["transfer-encoding"] != "":
		return resp, fmt.Errorf("transfer-encoding %q", truncate(resp.Header["transfer-encoding"]))
	default:
		resp.Body, err = io.ReadAll(io.LimitReader(r, maxBodyBytes+1))
		if err == nil && len(resp.Body) > maxBodyBytes {
			err = errors.New("body too long")
		}
	}
	if err != nil {
		return resp, fmt.Errorf("reply body: %w", err)
	}
	return resp, nil
}

// readHeaders reads "Name: value" lines up to an empty line; names are
// lower-cased, a repeated name keeps its first value.
func readHeaders(line func() (string, error)) (map[string]string, error) {
	h := map[string]string{}
	for {
		s, err := line()
		if err != nil {
			return h, err
		}
		if s == "" {
			return h, nil
		}
		name, value, ok := strings.Cut(s, ":")
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return h, fmt.Errorf("header line %q", truncate(s))
		}
		name = strings.ToLower(name)
		if _, dup := h[name]; !dup {
			h[name] = strings.TrimSpace(value)
		}
	}
}

func readChunked(r *bufio.Reader) ([]byte, error) {
	var body []byte
	for {
		s, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		size, _, _ := strings.Cut(strings.TrimRight(s, "\r\n"), ";")
		n, err := strconv.ParseUint(strings.TrimSpace(size), 16, 32)
		if err != nil {
			return nil, fmt.Errorf("chunk size %q", truncate(s))
		}
		if len(body)+int(n) > maxBodyBytes {
			return nil, errors.New("body too long")
		}
		if n == 0 {
			return body, nil // trailers are not needed
		}
		chunk := make([]byte, n+2)
		if _, err := io.ReadFull(r, chunk); err != nil {
			return nil, err
		}
		if string(chunk[n:]) != "\r\n" {
			return nil, errors.New("chunk not followed by CRLF")
		}
		body = append(body, chunk[:n]...)
	}
}

// truncate shortens outside text quoted in an error.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
