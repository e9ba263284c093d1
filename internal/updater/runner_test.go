package updater

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/testkit/freeport"
	"github.com/natmap-go/natmap/internal/testkit/httpserve"
	"github.com/natmap-go/natmap/internal/testkit/wait"
)

func startRunner(t *testing.T, b *Built, minB, maxB time.Duration) *Runner {
	r := NewRunner(b, slog.New(slog.NewTextHandler(io.Discard, nil)), minB, maxB)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

func TestRunnerServerDown(t *testing.T) {
	port := freeport.Both(t, "127.0.0.1") // nothing listens there yet
	b := build(t, "webhook", map[string]string{"url": "http://127.0.0.1:" + strconv.Itoa(port) + "/hook"})
	r := startRunner(t, b, 20*time.Millisecond, 160*time.Millisecond)
	r.Update(testFields("203.0.113.7:45678"))
	wait.For(t, 30*time.Second, "retries", func() bool { return r.Status().Attempts >= 5 })
	st := r.Status()
	if st.State != StateRetrying && st.State != StateRunning || !strings.Contains(st.LastError, "refused") || st.Public != "203.0.113.7:45678" {
		t.Errorf("status %+v", st)
	}
	// The backoff doubles up to its bound: over 1.2s at most about
	// 1.2/0.16 + 4 attempts, not hundreds.
	n0 := r.Status().Attempts
	time.Sleep(1200 * time.Millisecond)
	if n := r.Status().Attempts - n0; n > 12 || n < 2 {
		t.Errorf("%d attempts in 1.2s with backoff bounded at 160ms", n)
	}
	// The server comes up: the next retry works.
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Skipf("port taken meanwhile: %v", err)
	}
	httpserve.Serve(t, l, nil)
	wait.For(t, 30*time.Second, "success", func() bool { return r.Status().State == StateOK })
	if st := r.Status(); st.LastError != "" || st.LastOK.IsZero() {
		t.Errorf("after success %+v", st)
	}
}

func TestRunnerWrongCredentialsNoRetryStorm(t *testing.T) {
	srv := newRecorder(t, 401)
	r := startRunner(t, build(t, "webhook", map[string]string{"url": srv.URL}), 10*time.Millisecond, 20*time.Millisecond)
	r.Update(testFields("203.0.113.7:45678"))
	wait.For(t, 30*time.Second, "failure", func() bool { return r.Status().State == StateFailed })
	time.Sleep(300 * time.Millisecond) // room for retries that must not come
	if n := len(srv.requests()); n != 1 {
		t.Errorf("%d requests after a 401, want 1", n)
	}
	if st := r.Status(); !strings.Contains(st.LastError, "HTTP 401") {
		t.Errorf("status %+v", st)
	}
	// A new address tries again, once.
	r.Update(testFields("203.0.113.7:1000"))
	wait.For(t, 30*time.Second, "second request", func() bool { return len(srv.requests()) == 2 })
}

func TestRunnerSlowServerTimesOut(t *testing.T) {
	var hits atomic.Int32
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	defer srv.Close()
	defer close(stop)
	b := build(t, "webhook", map[string]string{"url": srv.URL})
	b.Timeout = 200 * time.Millisecond
	r := startRunner(t, b, time.Hour, time.Hour)
	r.Update(testFields("203.0.113.7:45678"))
	wait.For(t, 30*time.Second, "timeout", func() bool { return r.Status().State == StateRetrying })
	if st := r.Status(); !strings.Contains(st.LastError, "timed out after 200ms") || st.NextRetry.IsZero() {
		t.Errorf("status %+v", st)
	}
}

func TestRunnerNewerAddressSupersedesRetry(t *testing.T) {
	srv := newRecorder(t, 503)
	r := startRunner(t, build(t, "webhook", map[string]string{"url": srv.URL, "body": "{public_port}", "header": "Content-Type: text/plain"}), time.Hour, time.Hour)
	r.Update(testFields("203.0.113.7:1111"))
	wait.For(t, 30*time.Second, "first failure", func() bool { return r.Status().State == StateRetrying })
	srv.mu.Lock()
	srv.code = 200
	srv.mu.Unlock()
	// The retry for 1111 is an hour away; the new address goes now.
	r.Update(testFields("203.0.113.7:2222"))
	wait.For(t, 30*time.Second, "success", func() bool { return r.Status().State == StateOK })
	reqs := srv.requests()
	if len(reqs) != 2 || reqs[0].Body != "1111" || reqs[1].Body != "2222" {
		t.Errorf("requests %+v", reqs)
	}
	if st := r.Status(); st.Public != "203.0.113.7:2222" || st.Attempts != 1 {
		t.Errorf("status %+v", st)
	}
}
