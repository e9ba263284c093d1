package updater

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/natmap-go/natmap/internal/ip4p"
)

// The DNS records rfc2136 and cloudflare publish, the same options for
// both:
//
//	option name 'nas.example.org'   # owner of the a, ip4p and txt records
//	list record 'a'                 # A (or AAAA) of the public address (default)
//	list record 'ip4p'              # AAAA 2001::PPPP:AABB:CCDD (IPv4 mappings)
//	list record 'txt'               # TXT "IP:PORT"
//	list record 'srv'               # SRV at srv_name, port the public port
//	option srv_name '_minecraft._tcp.example.org'
//	option srv_target 'nas.example.org'  # default: name
//	option srv_priority '0'
//	option srv_weight '0'
//	option ttl '60'
var recordOptions = []string{"name", "record", "ttl", "srv_name", "srv_target", "srv_priority", "srv_weight"}

// record is one DNS record to publish (its whole RRset is replaced).
type record struct {
	Name   string // FQDN, without the final dot
	Type   uint16 // typeA ...
	TTL    uint32
	Addr   netip.Addr // A, AAAA
	Text   string     // TXT
	SRV    srvData
	Source string // the record option it comes from, for messages
}

type srvData struct {
	Priority, Weight, Port uint16
	Target                 string
}

const (
	typeA    = 1
	typeTXT  = 16
	typeAAAA = 28
	typeSRV  = 33
)

func typeName(t uint16) string {
	switch t {
	case typeA:
		return "A"
	case typeTXT:
		return "TXT"
	case typeAAAA:
		return "AAAA"
	case typeSRV:
		return "SRV"
	}
	return fmt.Sprint(t)
}

// recordSpec is the records option set, checked.
type recordSpec struct {
	name, srvName, srvTarget string
	kinds                    []string
	ttl                      uint32
	priority, weight         uint16
}

func readRecords(o *opts) recordSpec {
	s := recordSpec{
		name:     fqdn(o.str("name")),
		kinds:    o.list("record"),
		ttl:      uint32(o.uint("ttl", 60, 1<<31-1)),
		priority: uint16(o.uint("srv_priority", 0, 65535)),
		weight:   uint16(o.uint("srv_weight", 0, 65535)),
		srvName:  fqdn(o.str("srv_name")),
	}
	s.srvTarget = fqdn(o.str("srv_target"))
	if s.srvTarget == "" {
		s.srvTarget = s.name
	}
	if len(s.kinds) == 0 {
		s.kinds = []string{"a"}
	}
	for _, k := range s.kinds {
		switch strings.ToLower(k) {
		case "a", "ip4p", "txt":
			if s.name == "" {
				o.fail("name", fmt.Errorf("missing (record %s needs it)", k))
			}
		case "srv":
			if s.srvName == "" {
				o.fail("srv_name", errors.New("missing (record srv needs it)"))
			}
			if s.srvTarget == "" {
				o.fail("srv_target", errors.New("missing (or set name)"))
			}
		default:
			o.fail("record", fmt.Errorf("%q: want a, ip4p, txt or srv", k))
		}
	}
	for _, n := range []struct{ opt, v string }{{"name", s.name}, {"srv_name", s.srvName}, {"srv_target", s.srvTarget}} {
		if n.v != "" {
			if _, err := appendName(nil, n.v); err != nil {
				o.fail(n.opt, err)
			}
		}
	}
	return s
}

func fqdn(s string) string { return strings.TrimSuffix(strings.TrimSpace(s), ".") }

// records are what to publish for f.
func (s recordSpec) records(f Fields) ([]record, error) {
	pub := netip.AddrPortFrom(f.Public.Addr().Unmap(), f.Public.Port())
	var out []record
	for _, k := range s.kinds {
		r := record{Name: s.name, TTL: s.ttl, Source: strings.ToLower(k)}
		switch r.Source {
		case "a":
			r.Type, r.Addr = typeA, pub.Addr()
			if pub.Addr().Is6() {
				r.Type = typeAAAA
			}
		case "ip4p":
			if !pub.Addr().Is4() {
				return nil, Permanent(errors.New("record ip4p: the mapping is not IPv4"))
			}
			a, err := netip.ParseAddr(ip4p.Format(pub))
			if err != nil {
				return nil, err
			}
			r.Type, r.Addr = typeAAAA, a
		case "txt":
			r.Type, r.Text = typeTXT, pub.String()
		case "srv":
			r.Name, r.Type = s.srvName, typeSRV
			r.SRV = srvData{Priority: s.priority, Weight: s.weight, Port: pub.Port(), Target: s.srvTarget}
		}
		out = append(out, r)
	}
	return out, nil
}
