package engine

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	pion "github.com/pion/stun/v3"

	"github.com/natmap-go/natmap/internal/config"
	"github.com/natmap-go/natmap/internal/testkit/stunserver"
)

// stunStandIn answers STUN Binding requests over UDP on loopback with the
// public address mapped gives for the request's source port, as a server
// behind some NAT would see it.
func stunStandIn(t *testing.T, mapped func(src uint16) netip.AddrPort) config.HostPort {
	t.Helper()
	addr := netip.MustParseAddrPort(stunserver.UDP(t, func(_ int, from netip.AddrPort, req *pion.Message) [][]byte {
		if req.Type != pion.BindingRequest {
			return nil
		}
		return [][]byte{stunserver.Answer(req, mapped(from.Port()))}
	}))
	return config.HostPort{Host: addr.Addr().String(), Port: addr.Port()}
}

// checkUDP runs CheckNAT over UDP with the servers.
func checkUDP(t *testing.T, servers ...config.HostPort) *NATReport {
	t.Helper()
	cfg := config.Mapping{UDP: true, STUN: servers}
	cfg.SetDefaults()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := CheckNAT(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Two servers that see the same public port are asked again from another
// local port: a symmetric NAT that picked the same port for both by
// chance is told from an endpoint-independent mapping.
func TestCheckNATRechecksAgreement(t *testing.T) {
	public := func(p uint16) netip.AddrPort {
		return netip.AddrPortFrom(netip.MustParseAddr("198.51.100.1"), 20000+p%5000)
	}
	for _, c := range []struct {
		name   string
		chance bool // the second server agrees only about the first local port
		want   NATMapping
	}{
		{"endpoint-independent", false, MappingIndependent},
		{"symmetric, agreeing by chance once", true, MappingDependent},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := stunStandIn(t, public)
			var (
				mu    sync.Mutex // guards first
				first uint16
			)
			b := stunStandIn(t, func(p uint16) netip.AddrPort {
				mu.Lock()
				defer mu.Unlock()
				if first == 0 {
					first = p
				}
				if c.chance && p != first {
					return netip.AddrPortFrom(public(p).Addr(), public(p).Port()+1)
				}
				return public(p)
			})
			r := checkUDP(t, a, b)
			if r.Answers[0].Public != r.Answers[1].Public || r.Answers[0].Public != public(r.Local.Port()) {
				t.Fatalf("answers %+v for local port %d", r.Answers, r.Local.Port())
			}
			if r.Mapping != c.want {
				t.Errorf("mapping %v, want %v", r.Mapping, c.want)
			}
			if r.Recheck == nil || len(r.Recheck.Answers) != 2 || r.Recheck.Local.Port() == r.Local.Port() {
				t.Fatalf("recheck %+v, want two answers about another local port than %d", r.Recheck, r.Local.Port())
			}
			for _, ans := range r.Recheck.Answers {
				if ans.Err != nil {
					t.Errorf("recheck answer %+v", ans)
				}
			}
			j := Judge(r, func(netip.Addr) bool { return false })
			if chance := strings.Contains(strings.Join(j.Lines, "\n"), "was chance"); chance != c.chance {
				t.Errorf("judgement lines %q: mention of chance %v, want %v", j.Lines, chance, c.chance)
			}
		})
	}
}

// A server that does not answer the recheck leaves the first agreement
// standing, and only servers that answered are asked again.
func TestCheckNATRecheckUnanswered(t *testing.T) {
	public := netip.MustParseAddrPort("198.51.100.1:20000")
	var (
		mu    sync.Mutex // guards ports
		ports = map[uint16]bool{}
	)
	a := stunStandIn(t, func(p uint16) netip.AddrPort { return public })
	b := stunStandIn(t, func(p uint16) netip.AddrPort {
		mu.Lock()
		defer mu.Unlock()
		ports[p] = true
		return public
	})
	dead := config.HostPort{Host: "127.0.0.1", Port: 9} // discard: refused
	r := checkUDP(t, a, dead, b)
	if r.Mapping != MappingIndependent || r.Answers[1].Err == nil || r.Recheck == nil {
		t.Fatalf("mapping %v, answers %+v, recheck %+v", r.Mapping, r.Answers, r.Recheck)
	}
	if len(r.Recheck.Answers) != 2 || r.Recheck.Answers[1].Server != b.String() || r.Recheck.Answers[1].Err != nil {
		t.Errorf("recheck %+v, want servers 0 and 2 asked", r.Recheck)
	}
	mu.Lock()
	defer mu.Unlock()
	if !ports[r.Local.Port()] || !ports[r.Recheck.Local.Port()] { // and the filtering test's port
		t.Errorf("server 2 asked from ports %v, want %d and %d", ports, r.Local.Port(), r.Recheck.Local.Port())
	}
}
