package ctl

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"
)

// FuzzRequest sends arbitrary bytes on one connection to a real server:
// the server must not panic, and everything it writes back must be whole,
// well-formed Response lines, at most one per request line, before it
// closes the connection.
func FuzzRequest(f *testing.F) {
	for _, seed := range []string{
		`{"cmd":"status"}` + "\n",
		`{"cmd":"status","section":"map1"}` + "\n" + `{"cmd":"reload"}` + "\n",
		`{"cmd":"restart","section":"nope"}`,
		`{"cmd":"restart"}` + "\n\n\n" + `{"cmd":"restart","section":"map0"}` + "\n",
		"{bad\n" + `{"cmd":"fly"}` + "\n" + `{"cmd":"status"}` + "\n",
		"null\n[]\n\"status\"\n{\"cmd\":7}\n{\"cmd\":\"status\",\"cmd\":\"reload\"}\n",
		"{\"cmd\":\"status\",\"section\":\"\xff\xfe\\ud800\"}\n",
		`{"cmd":"status"}` + strings.Repeat(" ", 300) + "\n" + `{"cmd":"status"}` + "\n",
		"\x00\r\n\t\n",
	} {
		f.Add([]byte(seed))
	}
	// A small line limit, so that small inputs reach it too: the minimizer
	// is slow with 64 KiB ones.
	s := serve(f, &Server{Path: sockPath(f), Handler: newHandler(3), IdleTimeout: 5 * time.Second, maxRequest: 256})
	f.Fuzz(func(t *testing.T, in []byte) {
		c := dial(t, s.Path)
		werr := make(chan error, 1)
		go func() {
			_, err := c.Write(in)
			c.CloseWrite()
			werr <- err
		}()
		out, err := io.ReadAll(c)
		if err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("reading: %v", err)
		}
		if err := <-werr; err != nil && !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("writing: %v", err)
		}
		if len(out) > 0 && out[len(out)-1] != '\n' {
			t.Fatalf("last response cut short: %q", out)
		}
		lines := bytes.Split(bytes.TrimSuffix(out, []byte("\n")), []byte("\n"))
		if len(out) == 0 {
			lines = nil
		}
		if most := bytes.Count(in, []byte("\n")) + 1; len(lines) > most {
			t.Fatalf("%d responses to %d lines", len(lines), most)
		}
		for _, line := range lines {
			var resp Response
			if err := json.Unmarshal(line, &resp); err != nil {
				t.Fatalf("malformed response %q: %v", line, err)
			}
			if resp.OK == (resp.Error != "") {
				t.Fatalf("response %q: ok and error disagree", line)
			}
		}
	})
}
