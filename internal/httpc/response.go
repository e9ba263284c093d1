package httpc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Default limits of a response.
const (
	DefaultMaxHeader = 64 << 10
	DefaultMaxBody   = 1 << 20
)

// Limits bound what is read of one response, so that a hostile server
// costs a bounded amount of memory. A zero field takes its default.
type Limits struct {
	// Header bounds the status line and header lines, 1xx responses' and
	// chunked trailers included (DefaultMaxHeader).
	Header int
	// Body bounds the body as decoded (DefaultMaxBody).
	Body int
}

func (l Limits) header() int {
	if l.Header > 0 {
		return l.Header
	}
	return DefaultMaxHeader
}

func (l Limits) body() int {
	if l.Body > 0 {
		return l.Body
	}
	return DefaultMaxBody
}

// wire bounds the bytes read from a connection for one response: the
// header, the body and as much again for chunked framing.
func (l Limits) wire() int64 { return int64(l.header()) + 2*int64(l.body()) }

// maxChunkLine bounds a chunk-size line (size and extensions).
const maxChunkLine = 1024

var errLineTooLong = errors.New("line too long")

// ReadResponse reads one HTTP/1.x response: status line, headers (1xx
// responses skipped), and a body framed by chunked encoding,
// Content-Length, or the end of the connection (RFC 9112 §6.3). noBody is
// for HEAD. Transfer codings other than chunked are refused (natmap sends
// no TE and decodes none); so are conflicting Content-Lengths.
func ReadResponse(r *bufio.Reader, noBody bool, lim Limits) (*Response, error) {
	return readResponse(r, noBody, false, lim)
}

// readResponse is ReadResponse; decoded says the body is already unframed
// and runs to the end (curl's output).
func readResponse(r *bufio.Reader, noBody, decoded bool, lim Limits) (*Response, error) {
	budget := lim.header()
	for {
		resp, err := readHead(r, &budget)
		if err != nil {
			return nil, err
		}
		if resp.Status < 200 {
			continue
		}
		if noBody || resp.Status == 204 || resp.Status == 304 {
			return resp, nil
		}
		chunked, length, err := framing(resp)
		if err != nil {
			return nil, err
		}
		switch {
		case decoded:
			resp.Body, err = readToEnd(r, lim.body())
		case chunked:
			resp.Body, err = readChunked(r, lim.body(), &budget)
		case length >= 0:
			if length > int64(lim.body()) {
				return nil, fmt.Errorf("HTTP response: body of %d bytes, over %d", length, lim.body())
			}
			resp.Body = make([]byte, length)
			if _, err = io.ReadFull(r, resp.Body); err != nil {
				err = fmt.Errorf("HTTP response body: %w", err)
			}
		default:
			resp.Body, err = readToEnd(r, lim.body())
		}
		if err != nil {
			return nil, err
		}
		return resp, nil
	}
}

// readLine reads a line of at most max bytes, its end included, and
// returns it without the CRLF (or bare LF, RFC 9112 §2.2) and its length.
func readLine(r *bufio.Reader, max int) (string, int, error) {
	var b []byte
	for {
		frag, err := r.ReadSlice('\n')
		if len(b)+len(frag) > max {
			return "", 0, errLineTooLong
		}
		b = append(b, frag...)
		if err == nil {
			break
		}
		if err != bufio.ErrBufferFull {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return "", 0, err
		}
	}
	n := len(b)
	b = bytes.TrimSuffix(b[:n-1], []byte{'\r'})
	if bytes.IndexByte(b, '\r') >= 0 {
		return "", 0, errors.New("bare CR in a line")
	}
	return string(b), n, nil
}

// readHead reads a status line and header lines up to the empty line,
// taking what it reads from *budget.
func readHead(r *bufio.Reader, budget *int) (*Response, error) {
	var lines []string
	for {
		line, n, err := readLine(r, *budget)
		if err == errLineTooLong {
			return nil, errors.New("HTTP response: header too long")
		}
		if err != nil {
			return nil, fmt.Errorf("HTTP response: %w", err)
		}
		*budget -= n
		if line == "" {
			if len(lines) == 0 {
				continue // stray blank line before the status
			}
			break
		}
		lines = append(lines, line)
	}
	resp, err := parseStatus(lines[0])
	if err != nil {
		return nil, err
	}
	for _, l := range lines[1:] {
		k, v, ok := strings.Cut(l, ":")
		if !ok || !token(k) {
			return nil, fmt.Errorf("HTTP response: bad header line %q", trunc(l))
		}
		resp.Header = append(resp.Header, [2]string{k, strings.Trim(v, " \t")})
	}
	return resp, nil
}

// parseStatus reads "HTTP/1.x NNN[ reason]".
func parseStatus(line string) (*Response, error) {
	proto, rest, _ := strings.Cut(line, " ")
	bad := proto != "HTTP/1.1" && proto != "HTTP/1.0" || len(rest) < 3 || len(rest) > 3 && rest[3] != ' '
	n := 0
	if !bad {
		for _, c := range []byte(rest[:3]) {
			bad = bad || c < '0' || c > '9'
			n = n*10 + int(c-'0')
		}
	}
	if bad || n < 100 || n > 599 {
		return nil, fmt.Errorf("HTTP response: bad status line %q", trunc(line))
	}
	return &Response{Proto: proto, Status: n}, nil
}

// token reports whether s is an RFC 9110 token (a header name).
func token(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// framing is how resp's body is delimited (RFC 9112 §6.3): chunked, or a
// length (-1: up to the end of the connection). Of the transfer codings
// (RFC 9112 §7) only chunked is decoded, and it must be the last and
// applied once; "identity" (RFC 2616's no-op) is ignored; any other is
// refused, since its bytes could not be read. Transfer-Encoding overrides
// Content-Length; several Content-Lengths must agree.
func framing(resp *Response) (chunked bool, length int64, err error) {
	var codings []string
	for _, v := range resp.Values("Transfer-Encoding") {
		for _, c := range strings.Split(v, ",") {
			c = strings.ToLower(strings.Trim(c, " \t"))
			if c != "" && c != "identity" {
				codings = append(codings, c)
			}
		}
	}
	switch {
	case len(codings) == 1 && codings[0] == "chunked":
		return true, -1, nil
	case len(codings) > 0:
		return false, 0, fmt.Errorf("HTTP response: transfer-encoding %q not supported", trunc(strings.Join(codings, ", ")))
	}
	length = -1
	for _, v := range resp.Values("Content-Length") {
		for _, s := range strings.Split(v, ",") {
			s = strings.Trim(s, " \t")
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || s == "" || s[0] < '0' || s[0] > '9' || length >= 0 && n != length {
				return false, 0, fmt.Errorf("HTTP response: bad Content-Length %q", trunc(v))
			}
			length = n
		}
	}
	return false, length, nil
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// readToEnd reads the body up to the end of the connection.
func readToEnd(r io.Reader, max int) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, int64(max)+1))
	if err != nil {
		return nil, fmt.Errorf("HTTP response body: %w", err)
	}
	if len(b) > max {
		return nil, fmt.Errorf("HTTP response: body over %d bytes", max)
	}
	return b, nil
}

// readChunked decodes a chunked body of at most max bytes; its trailers,
// skipped, take from the header's *budget.
func readChunked(r *bufio.Reader, max int, budget *int) ([]byte, error) {
	var out []byte
	for {
		line, _, err := readLine(r, maxChunkLine)
		if err != nil {
			return nil, fmt.Errorf("HTTP response: chunk size line: %w", err)
		}
		size, _, _ := strings.Cut(line, ";")
		size = strings.Trim(size, " \t")
		n, err := strconv.ParseUint(size, 16, 32)
		if err != nil {
			return nil, fmt.Errorf("HTTP response: bad chunk size %q", trunc(size))
		}
		if n == 0 {
			for {
				l, n, err := readLine(r, *budget)
				switch {
				case err == errLineTooLong:
					return nil, errors.New("HTTP response: trailers too long")
				case errors.Is(err, io.ErrUnexpectedEOF):
					return out, nil // the last CRLF missing: the body is whole
				case err != nil:
					return nil, fmt.Errorf("HTTP response trailers: %w", err)
				}
				*budget -= n
				if l == "" {
					return out, nil
				}
			}
		}
		if uint64(len(out))+n > uint64(max) {
			return nil, fmt.Errorf("HTTP response: body over %d bytes", max)
		}
		start := len(out)
		out = append(out, make([]byte, n)...)
		if _, err := io.ReadFull(r, out[start:]); err != nil {
			return nil, fmt.Errorf("HTTP response body: %w", err)
		}
		if l, _, err := readLine(r, 2); err != nil || l != "" {
			return nil, errors.New("HTTP response: chunk not followed by a line break")
		}
	}
}
