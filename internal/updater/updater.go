// Package updater holds natmap's built-in updaters: the jobs a notify script
// usually does with a new public address (a webhook, DNS records through
// RFC 2136 or Cloudflare, a BitTorrent client's listen port), configured in
// UCI "config updater" sections, and the Runner that runs them after the
// notify script with retries.
package updater

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/natmap-go/natmap/internal/ip4p"
)

// Fields are what an updater knows of a mapping.
type Fields struct {
	Public   netip.AddrPort
	Private  netip.AddrPort
	Protocol string // "tcp" or "udp"
	Section  string // the mapping's UCI section
	Comment  string
}

// Vars are the fields by the names templates and JSON bodies use.
func (f Fields) Vars() [][2]string {
	return [][2]string{
		{"public_ip", f.Public.Addr().Unmap().String()},
		{"public_port", strconv.Itoa(int(f.Public.Port()))},
		{"ip4p", ip4p.Format(f.Public)},
		{"private_ip", f.Private.Addr().Unmap().String()},
		{"private_port", strconv.Itoa(int(f.Private.Port()))},
		{"protocol", f.Protocol},
		{"section", f.Section},
		{"comment", f.Comment},
	}
}

// Updater publishes a mapping somewhere. Update is called with a deadline;
// an error wrapped by Permanent is not retried (wrong credentials, a
// request the server refuses) until the address changes again.
type Updater interface {
	Update(ctx context.Context, f Fields) error
}

// permanentError is a failure that retrying cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as not worth retrying.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// IsPermanent reports whether err was marked by Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// Config is one "config updater" section: its name, type and options (an
// option is a one-value list).
type Config struct {
	Name    string
	Type    string
	Options map[string][]string
	Err     string // the section is missing: New fails with this
}

// DefaultTimeout bounds one attempt when the section has no timeout option.
const DefaultTimeout = 30 * time.Second

// kind is one updater type: its options and its constructor.
type kind struct {
	options []string // besides the common ones
	secrets []string // options never shown: passwords, tokens, keys
	build   func(o *opts) (Updater, error)
}

var kinds = map[string]kind{
	"webhook":      webhookKind,
	"rfc2136":      rfc2136Kind,
	"cloudflare":   cloudflareKind,
	"transmission": transmissionKind,
	"qbittorrent":  qbittorrentKind,
}

// commonOptions are every type's.
var commonOptions = []string{"type", "timeout"}

// Types are the updater types, sorted.
func Types() []string {
	var t []string
	for k := range kinds {
		t = append(t, k)
	}
	slices.Sort(t)
	return t
}

// Built is an updater ready to run, with what the Runner needs of its
// section.
type Built struct {
	Name     string
	Type     string
	Timeout  time.Duration
	Updater  Updater
	Warnings []string // unknown options: logged, not fatal
}

// New checks c and builds its updater. The error names the option at fault
// and never quotes a secret.
func New(c Config) (*Built, error) {
	if c.Err != "" {
		return nil, errors.New(c.Err)
	}
	k, ok := kinds[c.Type]
	if !ok {
		if c.Type == "" {
			return nil, fmt.Errorf("updater %s: option type missing (want one of %s)", c.Name, strings.Join(Types(), ", "))
		}
		return nil, fmt.Errorf("updater %s: option type: unknown type %q (want one of %s)", c.Name, c.Type, strings.Join(Types(), ", "))
	}
	o := &opts{c: c}
	b := &Built{Name: c.Name, Type: c.Type, Timeout: o.seconds("timeout", DefaultTimeout)}
	u, err := k.build(o)
	if err == nil {
		err = o.err
	}
	if err != nil {
		return nil, fmt.Errorf("updater %s (%s): %w", c.Name, c.Type, err)
	}
	b.Updater = u
	for name := range c.Options {
		if !slices.Contains(commonOptions, name) && !slices.Contains(k.options, name) && !slices.Contains(k.secrets, name) {
			b.Warnings = append(b.Warnings, fmt.Sprintf("updater %s: unknown option %q (ignored)", c.Name, name))
		}
	}
	slices.Sort(b.Warnings)
	return b, nil
}

// Secrets are the options of a type that must never be shown.
func Secrets(typ string) []string { return kinds[typ].secrets }

// opts reads a section's options, keeping the first error.
type opts struct {
	c   Config
	err error
}

func (o *opts) fail(name string, err error) {
	if err != nil && o.err == nil {
		o.err = fmt.Errorf("option %s: %w", name, err)
	}
}

func (o *opts) str(name string) string {
	v := o.c.Options[name]
	if len(v) == 0 {
		return ""
	}
	if len(v) > 1 {
		o.fail(name, errors.New("is a list, want a single value"))
	}
	return strings.TrimSpace(v[0])
}

func (o *opts) required(name string) string {
	v := o.str(name)
	if v == "" {
		o.fail(name, errors.New("missing"))
	}
	return v
}

func (o *opts) list(name string) []string {
	var out []string
	for _, v := range o.c.Options[name] {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func (o *opts) uint(name string, def, max uint64) uint64 {
	v := o.str(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n > max {
		o.fail(name, fmt.Errorf("%q: want a whole number up to %d", v, max))
	}
	return n
}

func (o *opts) seconds(name string, def time.Duration) time.Duration {
	n := o.uint(name, 0, 3600)
	if n == 0 {
		return def
	}
	return time.Duration(n) * time.Second
}
