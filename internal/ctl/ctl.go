// Package ctl is the daemon's control socket: `natmap status`, `natmap
// reload`, `natmap restart SECTION`, and the rpcd plugin (through `natmap
// status --json`) talk to `natmap daemon` over a unix socket.
//
// Protocol: the client sends one JSON Request per line; the daemon answers
// each with one JSON Response per line, in order. A connection may carry
// several requests. Limits (a bad client must never disturb the daemon): a
// request line is at most MaxRequest bytes, newline included (longer: an
// error response, then the connection is closed); each request line must
// arrive within Server.IdleTimeout; each response must be taken by the
// client within Server.WriteTimeout; at most Server.MaxConns connections are
// served at once, and those beyond get an error line and are closed.
package ctl

import (
	"context"
	"time"

	"github.com/natmap-go/natmap/internal/mapping"
)

// DefaultPath is where the daemon listens when no other path is given.
const DefaultPath = "/var/run/natmap/natmap.sock"

// Limits, see the package comment.
const (
	MaxRequest          = 64 << 10 // bytes in a request line, newline included
	MaxResponse         = 64 << 20 // bytes Call accepts in a response line
	DefaultIdleTimeout  = 10 * time.Second
	DefaultWriteTimeout = 5 * time.Second
	DefaultMaxConns     = 16
)

// Commands, the values of Request.Cmd.
const (
	CmdStatus       = "status"        // Section optional: only that mapping
	CmdReload       = "reload"        // re-read the configuration; no Section
	CmdRestart      = "restart"       // Section required
	CmdFirewallSync = "firewall-sync" // re-apply firewall rules (after a firewall reload)
)

// MappingStatus is one configured mapping as the daemon sees it. The JSON
// field names are an interface: LuCI and the rpcd plugin read them, so they
// only ever get added to, never renamed.
type MappingStatus struct {
	Section     string        `json:"section"` // UCI section name
	Comment     string        `json:"comment"` // the section's comment option
	Enabled     bool          `json:"enabled"`
	State       mapping.State `json:"state"`
	Protocol    string        `json:"protocol"` // "tcp" or "udp"
	Mode        string        `json:"mode"`     // "bind" or "forward"
	PrivateIP   string        `json:"private_ip"`
	PrivatePort int           `json:"private_port"`
	PublicIP    string        `json:"public_ip"` // empty until mapped
	PublicPort  int           `json:"public_port"`
	IP4P        string        `json:"ip4p"`        // empty for IPv6
	Since       int64         `json:"since"`       // unix seconds: when State was entered
	LastChange  int64         `json:"last_change"` // unix seconds: when the public address last changed (0: never)
	LastError   string        `json:"last_error"`
	Retries     int           `json:"retries"` // sessions that failed in a row
	STUNServer  string        `json:"stun_server"`
	NAT         mapping.NAT   `json:"nat,omitempty"`   // absent when untested
	Relay       *RelayStats   `json:"relay,omitempty"` // forward mode's relay only
	// The router in front (a double NAT), while it forwards the port:
	// the protocol ("pcp", "nat-pmp" or "upnp") and when its lease ends
	// (unix seconds; absent when permanent).
	Front         string `json:"front,omitempty"`
	FrontLeaseEnd int64  `json:"front_lease_end,omitempty"`
	// ForwardMode is who forwards in forward mode: "kernel" (DNAT rules)
	// or "relay"; absent in bind mode. ForwardModeReason says why the
	// relay forwards when the kernel was asked for (forward_mode 'auto').
	ForwardMode       string   `json:"forward_mode,omitempty"`
	ForwardModeReason string   `json:"forward_mode_reason,omitempty"`
	ScriptError       string   `json:"script_error,omitempty"` // why the notify script failed last time, or cannot run
	Metrics           *Metrics `json:"metrics,omitempty"`      // running sections only
	History           []Event  `json:"history,omitempty"`      // the last events, oldest first
	// Updaters are the section's built-in updaters, in its list's order.
	Updaters []UpdaterStatus `json:"updaters,omitempty"`
	Reach    *Reach          `json:"reach,omitempty"` // mapped sections, once checked
}

// Reach is the last check that outside hosts can reach the public address.
type Reach struct {
	State    string `json:"state"`              // "reachable", "unreachable" or "unknown" (nothing could tell)
	Method   string `json:"method,omitempty"`   // what decided: "port-check", "hairpin" or "rfc5780"
	Checked  int64  `json:"checked"`            // unix seconds
	Verified int64  `json:"verified,omitempty"` // unix seconds: when last proven reachable
	Detail   string `json:"detail,omitempty"`   // why not, or why nobody could tell
	Summary  string `json:"summary"`            // one line for people, "reachable (verified 15:04, port-check)", in the daemon's time zone
}

// NewReach is a Reach from the engine's verdict; a zero verified time is
// left out.
func NewReach(state, method, detail, summary string, checked, verified time.Time) *Reach {
	r := &Reach{State: state, Method: method, Checked: checked.Unix(), Detail: detail, Summary: summary}
	if !verified.IsZero() {
		r.Verified = verified.Unix()
	}
	return r
}

// Metrics count what happened to a mapping since its section started.
type Metrics struct {
	Sessions       int64 `json:"sessions"`        // sessions started
	Failures       int64 `json:"failures"`        // sessions that ended in an error
	AddressChanges int64 `json:"address_changes"` // public addresses notified
}

// Event is one step in a mapping's life (see MappingStatus.History).
type Event struct {
	Time       int64         `json:"time"` // unix seconds
	State      mapping.State `json:"state"`
	PublicIP   string        `json:"public_ip,omitempty"`
	PublicPort int           `json:"public_port,omitempty"`
	Error      string        `json:"error,omitempty"`
}

// UpdaterStatus is one built-in updater of a mapping. It never holds a
// secret.
type UpdaterStatus struct {
	Name      string `json:"name"`                 // its "config updater" section
	Type      string `json:"type"`                 // webhook, rfc2136, cloudflare, transmission, qbittorrent
	State     string `json:"state"`                // idle, running, ok, retrying, failed, or error (bad configuration: never runs)
	Public    string `json:"public,omitempty"`     // the address of the last attempt
	LastRun   int64  `json:"last_run"`             // unix seconds: when the last attempt ended (0: never)
	LastOK    int64  `json:"last_ok"`              // unix seconds: the last success (0: never)
	LastError string `json:"last_error"`           // "" after a success
	Attempts  int    `json:"attempts"`             // for the current address
	NextRetry int64  `json:"next_retry,omitempty"` // unix seconds, while retrying
}

// RelayStats are a forward-mode relay's counters.
type RelayStats struct {
	Active    int64 `json:"active"`     // connections or UDP sessions open now
	Total     int64 `json:"total"`      // ever
	BytesUp   int64 `json:"bytes_up"`   // client -> target
	BytesDown int64 `json:"bytes_down"` // target -> client
}

// Request is one line from a client.
type Request struct {
	Cmd     string `json:"cmd"`
	Section string `json:"section,omitempty"`
}

// Response is the daemon's answer to one Request. When OK is false, Error
// says why (never empty). Mappings is set (possibly empty, never null) for
// status only.
type Response struct {
	OK       bool            `json:"ok"`
	Error    string          `json:"error,omitempty"`
	Version  string          `json:"version,omitempty"` // status only: the daemon's
	Mappings []MappingStatus `json:"mappings,omitzero"`
}

// Handler is the daemon behind the socket. ctx ends when the client's
// connection is dropped or the server stops; Reload and Restart should
// honour it, since Serve waits for them before it returns.
type Handler interface {
	Status(ctx context.Context) []MappingStatus
	Reload(ctx context.Context) error
	// Restart restarts one section's mapping; an unknown section is an
	// error, whose message the client shows as is.
	Restart(ctx context.Context, section string) error
}

// FirewallSyncer is a Handler that also re-applies its firewall rules,
// for the firewall's include script after a firewall reload.
type FirewallSyncer interface {
	FirewallSync(ctx context.Context) error
}

// RemoteError is a request the daemon answered with ok=false.
type RemoteError struct{ Msg string }

func (e *RemoteError) Error() string { return e.Msg }
