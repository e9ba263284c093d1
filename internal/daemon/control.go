package daemon

import (
	"context"
	"errors"

	"github.com/natmap-go/natmap/internal/ctl"
)

// Control is the daemon as the control socket's handler.
func (d *Daemon) Control() ctl.Handler { return control{d} }

type control struct{ d *Daemon }

func (c control) Status(context.Context) []ctl.MappingStatus { return c.d.Status() }
func (c control) Reload(context.Context) error               { return c.d.Reload() }
func (c control) Restart(_ context.Context, section string) error {
	return c.d.Restart(section)
}

// FirewallSync puts back the accept rules and the kernel forwarding rules
// (a firewall reload dropped them).
func (c control) FirewallSync(ctx context.Context) error {
	err := c.d.FirewallSync(ctx)
	if kerr := c.d.KernelSync(ctx); kerr != nil {
		err = errors.Join(err, kerr)
	}
	return err
}
