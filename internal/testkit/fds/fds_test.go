package fds

import (
	"net"
	"os"
	"testing"
)

func TestCount(t *testing.T) {
	before, kinds := Count(t), Of(t, os.Getpid())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	after, k := Count(t), Of(t, os.Getpid())
	if after != before+3 {
		t.Errorf("%d open after a socket and a pipe, %d before", after, before)
	}
	if k.Sockets != kinds.Sockets+1 || k.Pipes != kinds.Pipes+2 {
		t.Errorf("kinds %+v after a socket and a pipe, %+v before", k, kinds)
	}
	ln.Close()
	r.Close()
	w.Close()
	if n := Count(t); n != before {
		t.Errorf("%d open after closing them, %d before", n, before)
	}
}
