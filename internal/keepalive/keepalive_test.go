package keepalive

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestKeepsAliveWithRealHTTPServer(t *testing.T) {
	var heads atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead && r.Host == "example.com" {
			heads.Add(1)
		}
	}))
	defer srv.Close()
	c := dial(t, srv.Listener.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 350*time.Millisecond)
	defer cancel()
	err := Run(ctx, c, "example.com", 100*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run = %v, want the context's end", err)
	}
	if n := heads.Load(); n < 3 {
		t.Fatalf("server saw %d HEAD requests on one connection, want >= 3", n)
	}
}

// silentServer accepts and reads requests, answering only the first
// `answers` of them, and closing after them if close is set.
func silentServer(t *testing.T, answers int, closeAfter bool) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		for i := 0; ; i++ {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if strings.HasPrefix(line, "HEAD ") && i < answers {
				c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
			}
			if strings.HasPrefix(line, "HEAD ") && i+1 >= answers && closeAfter {
				return
			}
			if !strings.HasPrefix(line, "HEAD ") {
				i--
			}
		}
	}()
	return l.Addr().String()
}

func TestServerStopsAnswering(t *testing.T) {
	c := dial(t, silentServer(t, 1, false))
	start := time.Now()
	err := Run(context.Background(), c, "h", 100*time.Millisecond)
	if !errors.Is(err, ErrNoAnswer) {
		t.Fatalf("Run = %v, want ErrNoAnswer", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("took %v to notice", d)
	}
}

func TestServerCloses(t *testing.T) {
	c := dial(t, silentServer(t, 1, true))
	err := Run(context.Background(), c, "h", time.Minute)
	if err == nil || !strings.Contains(err.Error(), "closed the connection") {
		t.Fatalf("Run = %v, want closed", err)
	}
}
