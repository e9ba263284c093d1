// Package tcpserve runs a test's small TCP server: a handler for each
// connection accepted on a listener, until the test ends.
package tcpserve

import (
	"net"
	"sync"
	"testing"
)

// Each accepts connections on ln until the test ends, runs handle on each
// in a goroutine of its own and closes the connection when handle returns.
// ln is closed when the test ends (its cleanup waits for the accepting
// goroutine; a handler ends with its connection).
func Each(t testing.TB, ln net.Listener, handle func(net.Conn)) {
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() { Accept(ln, handle) })
}

// Accept accepts connections on ln until it is closed, runs handle on each
// in a goroutine of its own and closes the connection when handle returns.
// For a server that is no test's (the MIPS VM's init); a test calls Each.
func Accept(ln net.Listener, handle func(net.Conn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			handle(c)
		}()
	}
}
