package httpc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
)

// curl sends an https request through curl. The whole request goes in a
// curl config on its standard input, so no token shows in the process list.
func (c *Client) curl(ctx context.Context, u *URL, req *Request) (*Response, error) {
	path := c.Curl
	if path == "" {
		p, err := exec.LookPath("curl")
		if err != nil {
			return nil, errors.New("https needs curl, which is not installed (OpenWrt: opkg install curl), or use http://")
		}
		path = p
	}
	var cfg bytes.Buffer
	opt := func(name, value string) { fmt.Fprintf(&cfg, "%s = %s\n", name, curlQuote(value)) }
	opt("url", req.URL)
	opt("request", req.Method)
	opt("header", "Expect:") // no 100-continue round trip
	for _, h := range req.Header {
		opt("header", h[0]+": "+h[1])
	}
	if req.Body != nil {
		opt("data-raw", string(req.Body))
	}
	if c.CACert != "" {
		opt("cacert", c.CACert)
	}
	cmd := exec.CommandContext(ctx, path, "--config", "-", "--silent", "--show-error", "--include", "--http1.1", "--proto", "=https")
	cmd.Stdin = &cfg
	var out, errOut bytes.Buffer
	cmd.Stdout = &limitedWriter{w: &out, n: c.Limits.header() + c.Limits.body() + 1}
	cmd.Stderr = &limitedWriter{w: &errOut, n: 4096}
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		msg := strings.TrimSpace(errOut.String())
		if msg == "" {
			msg = err.Error()
		}
		return nil, fmt.Errorf("curl: %s", msg)
	}
	// curl --include: the headers of each response, then the body, which
	// curl has already decoded.
	return readResponse(bufio.NewReader(&out), false, true, c.Limits)
}

// curlQuote quotes a value for a curl config file.
func curlQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`, "\t", `\t`, "\v", `\v`)
	return `"` + r.Replace(s) + `"`
}

type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if len(p) > l.n {
		l.w.Write(p[:l.n])
		l.n = 0
		return len(p), nil
	}
	l.n -= len(p)
	return l.w.Write(p)
}
