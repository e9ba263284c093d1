// Package mapping names what natmap says about a mapping: the states it
// goes through and the kinds of NAT it can tell apart. The engine, the
// daemon, the control socket's JSON, natmap check and the LuCI views all use
// these values; luci-app-natmap's tests fail when LuCI has no label for one.
package mapping

// State is where a mapping is in its life. A section that runs goes
// Starting -> Mapped when STUN reports its public address, Mapped ->
// Retrying when its keep-alive or a STUN check fails (or the network
// changes), and Retrying -> Mapped when a new session maps it again. A
// section that does not run stays Disabled or Error.
type State string

// The states, as the status JSON spells them.
const (
	Starting State = "starting" // first session under way
	Mapped   State = "mapped"   // public address known and kept alive
	Retrying State = "retrying" // a session ended; the next one is paced
	Error    State = "error"    // bad configuration: not running
	Disabled State = "disabled" // the section has enabled '0'
)

// States lists every State, in the order above.
func States() []State { return []State{Starting, Mapped, Retrying, Error, Disabled} }

// NAT is the NAT's type as far as natmap could tell ("" when untested).
type NAT string

// The NAT types, as the status and natmap check JSON spell them.
const (
	FullCone           NAT = "full cone"            // endpoint-independent mapping and filtering: natmap works
	RestrictedCone     NAT = "restricted cone"      // address-dependent filtering
	PortRestrictedCone NAT = "port-restricted cone" // address-and-port-dependent filtering
	Symmetric          NAT = "symmetric"            // endpoint-dependent mapping
)

// NATs lists every NAT, in the order above.
func NATs() []NAT { return []NAT{FullCone, RestrictedCone, PortRestrictedCone, Symmetric} }
