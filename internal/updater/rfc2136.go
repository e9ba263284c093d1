package updater

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"time"

	"github.com/natmap-go/natmap/internal/config"
)

// rfc2136: DNS UPDATE, signed with a TSIG key, sent to the primary server
// over UDP, as nsupdate sends it.
var rfc2136Kind = kind{
	options: append([]string{"server", "zone", "key_name", "key_algorithm"}, recordOptions...),
	secrets: []string{"key_secret"},
	build:   newRFC2136,
}

type rfc2136 struct {
	server string // host:port
	zone   string
	key    *tsigKey // nil: unsigned
	recs   recordSpec
}

func newRFC2136(o *opts) (Updater, error) {
	u := &rfc2136{zone: fqdn(o.required("zone")), recs: readRecords(o)}
	if s := o.required("server"); s != "" {
		hp, err := config.ParseHostPort(s, 53)
		o.fail("server", err)
		u.server = hp.String()
	}
	if u.zone != "" {
		if _, err := appendName(nil, u.zone); err != nil {
			o.fail("zone", err)
		}
		for _, n := range []string{u.recs.name, u.recs.srvName} {
			if n != "" && n != u.zone && !strings.HasSuffix(strings.ToLower(n), "."+strings.ToLower(u.zone)) {
				o.fail("zone", fmt.Errorf("%s is not in zone %s", n, u.zone))
			}
		}
	}
	name, secret := fqdn(o.str("key_name")), o.str("key_secret")
	switch {
	case name == "" && secret == "":
	case name == "":
		o.fail("key_name", errors.New("missing (key_secret is set)"))
	case secret == "":
		o.fail("key_secret", errors.New("missing (key_name is set)"))
	default:
		k := &tsigKey{Name: strings.ToLower(name), Algorithm: strings.ToLower(o.str("key_algorithm"))}
		if k.Algorithm == "" {
			k.Algorithm = "hmac-sha256"
		}
		if k.Algorithm != tsigAlg {
			o.fail("key_algorithm", fmt.Errorf("%q: want hmac-sha256 (tsig-keygen's default)", k.Algorithm))
		}
		var err error
		if k.Secret, err = base64.StdEncoding.DecodeString(secret); err != nil || len(k.Secret) == 0 {
			o.fail("key_secret", errors.New("not base64 (the secret of a key file from tsig-keygen)"))
		}
		if _, err := appendName(nil, k.Name); err != nil {
			o.fail("key_name", err)
		}
		u.key = k
	}
	return u, nil
}

func (u *rfc2136) Update(ctx context.Context, f Fields) error {
	if err := u.update(ctx, f); err != nil {
		return fmt.Errorf("rfc2136: %s: %w", u.server, err)
	}
	return nil
}

func (u *rfc2136) update(ctx context.Context, f Fields) error {
	recs, err := u.recs.records(f)
	if err != nil {
		return err
	}
	id := uint16(rand.Uint32())
	msg, err := buildUpdate(id, u.zone, recs)
	var mac []byte
	if err == nil && u.key != nil {
		msg, mac, err = sign(msg, u.key, uint64(time.Now().Unix()))
	}
	if err != nil {
		return Permanent(err)
	}
	// The answer to an UPDATE is its header, the zone and a TSIG record:
	// never truncated, so UDP only.
	raw, err := exchangeUDP(ctx, u.server, msg, id)
	if err != nil {
		return err
	}
	a, err := parseAnswer(raw)
	if err != nil {
		return err
	}
	if a.TSIG != nil && a.TSIG.Error != 0 {
		return Permanent(fmt.Errorf("key %s refused: %s", u.key.name(), tsigErrorName(a.TSIG.Error)))
	}
	if u.key != nil && (a.Rcode == 0 || a.TSIG != nil) {
		if err := verify(raw, a, u.key, mac); err != nil {
			return err
		}
	}
	var why string
	switch a.Rcode {
	case 0:
		return nil
	case 2: // SERVFAIL: maybe later
		return errors.New("answered SERVFAIL")
	case 9:
		why = ": not authoritative for " + u.zone + ", or the key " + u.key.name() + " is not accepted"
	case 5:
		why = ": updates to " + u.zone + " not allowed (for key " + u.key.name() + ")"
	}
	return Permanent(errors.New("answered " + rcodeName(a.Rcode) + why))
}

func (k *tsigKey) name() string {
	if k == nil {
		return "(none)"
	}
	return k.Name
}

// exchangeUDP sends msg, again every 2s, until an answer with id comes.
func exchangeUDP(ctx context.Context, server string, msg []byte, id uint16) ([]byte, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", server)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 65535)
	for {
		if _, err := conn.Write(msg); err != nil {
			return nil, ctxOr(ctx, err)
		}
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		for {
			n, err := conn.Read(buf)
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				break // send again
			}
			if err != nil {
				return nil, err
			}
			if n >= 12 && binary.BigEndian.Uint16(buf) == id {
				return append([]byte(nil), buf[:n]...), nil
			}
		}
	}
}

func ctxOr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
