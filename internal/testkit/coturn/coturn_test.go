package coturn

import (
	"net"
	"strconv"
	"testing"

	"github.com/natmap-go/natmap/internal/testkit/freeport"
)

func TestStartStop(t *testing.T) {
	port := freeport.Both(t, "127.0.0.1")
	s := Start(t, Config{Addrs: []string{"127.0.0.1"}, Port: port})
	if want := net.JoinHostPort("127.0.0.1", strconv.Itoa(port)); s.Addr() != want {
		t.Errorf("Addr %s, want %s", s.Addr(), want)
	}
	s.Stop()
	if c, err := net.Dial("tcp", s.Addr()); err == nil {
		c.Close()
		t.Error("coturn still listens after Stop")
	}
	s.Stop()
}
