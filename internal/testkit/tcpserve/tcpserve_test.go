package tcpserve

import (
	"io"
	"net"
	"testing"
)

func TestEach(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("serve", func(t *testing.T) {
		Each(t, ln, func(c net.Conn) { io.WriteString(c, "hi") })
		for range 2 {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(c) // the handler's end closes it
			c.Close()
			if string(b) != "hi" || err != nil {
				t.Fatalf("read %q, %v; want hi", b, err)
			}
		}
	})
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Error("the listener is still open after the test")
	}
}
