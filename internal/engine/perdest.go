package engine

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// With one STUN server answering, the NAT check at the start of a session
// cannot compare two servers' views. A NAT that maps per destination
// (symmetric) still shows: each check, from a fresh connection, sees a new
// public port, though nothing else changed. One change is a NAT that
// forgot its mappings and is notified; a second in a row is the diagnosis:
// the session ends, nothing more is notified, and sessions are retried
// once an interval until an address holds over two checks.

// checks follows the public addresses one session's STUN checks saw.
type checks struct {
	seen    []netip.AddrPort // the last three, oldest first
	changes int              // checks in a row that saw a new address
}

// observe records a check's answer and notifies it (mapped), unless the
// answers show a NAT that maps per destination: then it returns a
// *perDestError, and nothing is notified until an address holds over two
// checks of a later session.
func (e *Engine) observe(c *checks, private, public netip.AddrPort, server string) error {
	first := len(c.seen) == 0
	changed := !first && public != c.seen[len(c.seen)-1]
	switch {
	case changed:
		c.changes++
	case !first:
		c.changes = 0
	}
	c.seen = append(c.seen[max(0, len(c.seen)-2):], public)

	e.mu.Lock()
	suspect := e.perDest
	if c.changes >= 2 {
		e.perDest = true
	}
	e.mu.Unlock()
	switch {
	case c.changes >= 2:
		return &perDestError{seen: c.seen, server: server, interval: e.cfg.Keepalive}
	case suspect && (first || changed):
		e.log.Debug("NAT mapped per destination before: waiting for the address to hold", "public", public, "stun", server)
		return nil
	case suspect:
		e.mu.Lock()
		e.perDest = false
		e.mu.Unlock()
		e.log.Info("the public address held over two checks: the NAT maps one address for every destination again", "public", public)
	}
	e.mapped(private, public, server)
	return nil
}

// perDestError says the public port changed at every check from the same
// local port: the NAT maps per destination (or per connection), and nobody
// outside can use the address.
type perDestError struct {
	seen     []netip.AddrPort
	server   string
	interval time.Duration
}

func (e *perDestError) Error() string {
	s := make([]string, len(e.seen))
	for i, a := range e.seen {
		s[i] = a.String()
	}
	return fmt.Sprintf("NAT is not full cone (it maps per destination, symmetric NAT): STUN server %s saw %s "+
		"at consecutive checks of one local port; an outside client cannot reach this port, natmap needs a "+
		"full-cone (NAT-1) NAT; notifying nothing until an address holds over two checks, retrying after %v",
		e.server, strings.Join(s, " then "), e.interval)
}
