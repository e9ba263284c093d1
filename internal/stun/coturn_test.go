package stun

import (
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/testkit/coturn"
	"github.com/natmap-go/natmap/internal/testkit/freeport"
)

// TestCoturn checks BindTCP and BindUDP against a real server: coturn in
// STUN-only mode on 127.0.0.1.
func TestCoturn(t *testing.T) {
	addr := coturn.Start(t, coturn.Config{Addrs: []string{"127.0.0.1"}, Port: freeport.Both(t, "127.0.0.1")}).Addr()

	t.Run("tcp", func(t *testing.T) {
		c := dial(t, "tcp", addr)
		got, err := BindTCP(ctxTimeout(t, 5*time.Second), c)
		if err != nil {
			t.Fatal(err)
		}
		if want := localAddr(c); got != want {
			t.Fatalf("got %v, want %v", got, want)
		}
	})
	t.Run("udp", func(t *testing.T) {
		c := dial(t, "udp", addr)
		got, err := BindUDP(ctxTimeout(t, 5*time.Second), c, 200*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if want := localAddr(c); got != want {
			t.Fatalf("got %v, want %v", got, want)
		}
	})
}
