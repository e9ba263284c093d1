package firewall

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// FW4 is OpenWrt's nftables firewall. Rules go into chain input_<zone> of
// table inet fw4, which fw4 enters for the zone's devices and ends with a
// jump to the zone's reject or drop: just before that jump, so after the
// user's own rules for the zone (a drop of some sources to the same port
// still wins), as a rule of /etc/config/firewall would be:
//
//	nft insert rule inet fw4 input_wan position 14 meta nfproto ipv4 tcp dport 8080 counter accept comment "natmap:ssh"
//
// List reads `nft -j list table inet fw4` (fw4 itself needs nftables' JSON
// support, so it is there) and Delete removes a listed rule by its handle.
type FW4 struct{ run Exec }

// NewFW4 returns the fw4 backend running nft through run.
func NewFW4(run Exec) *FW4 { return &FW4{run: run} }

// Name is "fw4".
func (f *FW4) Name() string { return "fw4" }

func (f *FW4) chain(zone string) string { return "input_" + zone }

// present reports whether table inet fw4 exists.
func (f *FW4) present(ctx context.Context) (bool, error) {
	out, err := f.run(ctx, "nft", "-j", "list", "tables")
	if err != nil {
		return false, fmt.Errorf("fw4: %w", err)
	}
	objs, err := nftObjects(out)
	if err != nil {
		return false, fmt.Errorf("fw4: nft -j list tables: %w", err)
	}
	for _, o := range objs {
		if raw, ok := o["table"]; ok {
			var t struct{ Family, Name string }
			if json.Unmarshal(raw, &t) == nil && t.Family == "inet" && t.Name == "fw4" {
				return true, nil
			}
		}
	}
	return false, nil
}

// List returns natmap's rules in table inet fw4.
func (f *FW4) List(ctx context.Context) ([]Rule, error) {
	rules, _, err := f.read(ctx)
	return rules, err
}

func (f *FW4) read(ctx context.Context) ([]Rule, map[string]uint64, error) {
	out, err := f.run(ctx, "nft", "-j", "list", "table", "inet", "fw4")
	if err != nil {
		return nil, nil, fmt.Errorf("fw4: list rules: %w", err)
	}
	rules, chains, err := parseFW4(out)
	if err != nil {
		return nil, nil, fmt.Errorf("fw4: nft -j list table inet fw4: %w", err)
	}
	return rules, chains, nil
}

// Add puts r into input_<zone> before the chain's final jump (the zone's
// verdict), or at its end when it has none.
func (f *FW4) Add(ctx context.Context, r Rule) error {
	if err := r.validate(); err != nil {
		return err
	}
	chain := f.chain(r.Zone)
	_, chains, err := f.read(ctx)
	if err != nil {
		return err
	}
	verdict, ok := chains[chain]
	if !ok {
		return fmt.Errorf("fw4: add %s: %w: %q (table inet fw4 has no chain %s)", r, ErrNoZone, r.Zone, chain)
	}
	where := []string{"add", "rule", "inet", "fw4", chain}
	if verdict != 0 {
		where = []string{"insert", "rule", "inet", "fw4", chain, "position", strconv.FormatUint(verdict, 10)}
	}
	// nft joins its arguments and parses them as one command, so the
	// comment needs nft's quotes; validate let no quote into it.
	_, err = f.run(ctx, "nft", append(where,
		"meta", "nfproto", r.family(), r.Proto, "dport", strconv.Itoa(int(r.Port)),
		"counter", "accept", "comment", `"`+r.tag()+`"`)...)
	if err != nil {
		return fmt.Errorf("fw4: add %s: %w", r, err)
	}
	return nil
}

// Delete removes r by its handle when r came from List, else every tagged
// rule Equal to r.
func (f *FW4) Delete(ctx context.Context, r Rule) error {
	if r.handle != 0 {
		return f.deleteHandle(ctx, r)
	}
	have, err := f.List(ctx)
	if err != nil {
		return err
	}
	for _, h := range have {
		if h.Equal(r) {
			if err := f.deleteHandle(ctx, h); err != nil {
				return err
			}
		}
	}
	return nil
}

func (f *FW4) deleteHandle(ctx context.Context, r Rule) error {
	// The chain comes from nft's listing; it goes back into an nft
	// command line, so it must be a plain identifier too.
	if err := checkName("chain", r.chain, ""); err != nil {
		return fmt.Errorf("fw4: delete %s: %w", r, err)
	}
	_, err := f.run(ctx, "nft", "delete", "rule", "inet", "fw4", r.chain, "handle", strconv.FormatUint(r.handle, 10))
	if err != nil {
		return fmt.Errorf("fw4: delete %s: %w", r, err)
	}
	return nil
}

// nftObjects decodes nft's JSON output: {"nftables": [{"KIND": {...}}, ...]}.
func nftObjects(out []byte) ([]map[string]json.RawMessage, error) {
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return nil, err
	}
	return doc.Nftables, nil
}

// nftRule is a rule in nft's JSON. natmap's rule reads:
//
//	{"match": {"op": "==", "left": {"meta": {"key": "nfproto"}}, "right": "ipv4"}},
//	{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 8080}},
//	{"counter": {...}}, {"accept": null}
type nftRule struct {
	Family, Table, Chain string
	Handle               uint64
	Comment              string
	Expr                 []map[string]json.RawMessage
}

type nftMatch struct {
	Op   string
	Left struct {
		Meta    *struct{ Key string }
		Payload *struct{ Protocol, Field string }
	}
	Right json.RawMessage
}

// parseFW4 reads `nft -j list table inet fw4`: natmap's rules, and each
// chain with the handle of its final jump or goto (0 when its last rule is
// none), which nft lists in chain order.
func parseFW4(out []byte) ([]Rule, map[string]uint64, error) {
	objs, err := nftObjects(out)
	if err != nil {
		return nil, nil, err
	}
	var rules []Rule
	chains := map[string]uint64{}
	for _, o := range objs {
		if raw, ok := o["chain"]; ok {
			var c struct{ Family, Table, Name string }
			if err := json.Unmarshal(raw, &c); err != nil {
				return nil, nil, fmt.Errorf("chain %s: %w", raw, err)
			}
			if c.Family == "inet" && c.Table == "fw4" {
				chains[c.Name] = 0
			}
		}
		raw, ok := o["rule"]
		if !ok {
			continue
		}
		var nr nftRule
		if err := json.Unmarshal(raw, &nr); err != nil {
			return nil, nil, fmt.Errorf("rule %s: %w", raw, err)
		}
		if nr.Family != "inet" || nr.Table != "fw4" {
			continue
		}
		// natmap's own rules do not count: one left after the jump (by an
		// older natmap, or a crash) must not make the chain look jumpless.
		ours := strings.HasPrefix(nr.Comment, TagPrefix) || strings.HasPrefix(nr.Comment, DNATTagPrefix)
		if _, ok := chains[nr.Chain]; ok && !ours {
			chains[nr.Chain] = 0
			if n := len(nr.Expr); n > 0 && (nr.Expr[n-1]["jump"] != nil || nr.Expr[n-1]["goto"] != nil) {
				chains[nr.Chain] = nr.Handle
			}
		}
		section, ok := strings.CutPrefix(nr.Comment, TagPrefix)
		if !ok {
			continue
		}
		rules = append(rules, fw4Rule(nr, section))
	}
	return rules, chains, nil
}

// fw4Rule reads what it can of a tagged rule. One not of natmap's shape
// keeps an empty Proto or a zero Port, so it matches no wanted rule.
func fw4Rule(nr nftRule, section string) Rule {
	r := Rule{Section: section, chain: nr.Chain, handle: nr.Handle}
	r.Zone, _ = strings.CutPrefix(nr.Chain, "input_")
	if r.Zone == nr.Chain {
		r.Zone = "" // not a zone input chain
	}
	family, accept := "", false
	for _, e := range nr.Expr {
		if _, ok := e["accept"]; ok {
			accept = true
		}
		raw, ok := e["match"]
		if !ok {
			continue
		}
		var m nftMatch
		if json.Unmarshal(raw, &m) != nil || m.Op != "==" {
			continue
		}
		switch {
		case m.Left.Meta != nil && m.Left.Meta.Key == "nfproto":
			_ = json.Unmarshal(m.Right, &family)
		case m.Left.Payload != nil && m.Left.Payload.Field == "dport":
			r.Proto = m.Left.Payload.Protocol
			_ = json.Unmarshal(m.Right, &r.Port)
		}
	}
	r.IPv6 = family == "ipv6"
	if (family != "ipv4" && family != "ipv6") || !accept {
		r.Proto = ""
	}
	return r
}
