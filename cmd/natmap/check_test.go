package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/natmap-go/natmap/internal/config"
	"github.com/natmap-go/natmap/internal/engine"
	"github.com/natmap-go/natmap/internal/stun"
	"github.com/natmap-go/natmap/internal/testkit/stunserver"
)

// The keys of natmap check --json, always present (the others are omitted
// when empty).
var checkKeys = []string{"protocol", "family", "answers", "port_preserved", "mapping", "filtering", "verdict", "summary", "exit_status"}

func decodeCheck(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("not a JSON object: %v\n%s", err, b)
	}
	for _, k := range checkKeys {
		if _, ok := v[k]; !ok {
			t.Errorf("no %q in %s", k, b)
		}
	}
	return v
}

func TestCheckJSON(t *testing.T) {
	lp := netip.MustParseAddrPort("0.0.0.0:40000")
	pub := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr("198.51.100.1"), port) }
	two := func(a, b netip.AddrPort) []engine.STUNAnswer {
		return []engine.STUNAnswer{{Server: "198.51.100.11:3478", Public: a}, {Server: "198.51.100.12:3478", Public: b}}
	}
	notLocal := func(netip.Addr) bool { return false }
	for _, c := range []struct {
		name    string
		udp     bool
		r       *engine.NATReport
		err     error
		isLocal func(netip.Addr) bool
		want    map[string]any // keys that must have these values
		absent  []string
	}{
		{"full cone", false, &engine.NATReport{Local: lp, Answers: two(pub(40000), pub(40000)), Mapping: engine.MappingIndependent,
			Filtering: stun.EndpointIndependent, FilteringServer: "198.51.100.11:3478"}, nil, notLocal,
			map[string]any{"protocol": "tcp", "family": "ipv4", "local_port": 40000.0, "public_ip": "198.51.100.1", "public_port": 40000.0,
				"port_preserved": true, "mapping": "endpoint-independent", "filtering": "endpoint-independent",
				"filtering_server": "198.51.100.11:3478", "nat": "full cone", "verdict": "full-cone",
				"summary": "full cone (NAT-1): natmap can open a port here", "exit_status": 0.0},
			[]string{"error"}},
		{"filtering untested", true, &engine.NATReport{Local: lp, Answers: two(pub(5), pub(5)), Mapping: engine.MappingIndependent}, nil, notLocal,
			map[string]any{"protocol": "udp", "port_preserved": false, "mapping": "endpoint-independent", "filtering": "unknown",
				"verdict": "maybe-full-cone", "exit_status": 0.0},
			[]string{"nat", "filtering_server", "error"}},
		{"symmetric", false, &engine.NATReport{Local: lp, Answers: two(pub(5), pub(6)), Mapping: engine.MappingDependent}, nil, notLocal,
			map[string]any{"mapping": "endpoint-dependent", "filtering": "unknown", "nat": "symmetric", "verdict": "not-full-cone", "exit_status": 3.0},
			[]string{"error"}},
		{"restricted", false, &engine.NATReport{Local: lp, Answers: two(pub(5), pub(5)), Mapping: engine.MappingIndependent,
			Filtering: stun.AddressDependent, FilteringServer: "x:3478"}, nil, notLocal,
			map[string]any{"filtering": "address-dependent", "nat": "restricted cone", "verdict": "not-full-cone", "exit_status": 3.0}, nil},
		{"port-restricted", false, &engine.NATReport{Local: lp, Answers: two(pub(5), pub(5)), Mapping: engine.MappingIndependent,
			Filtering: stun.AddressPortDependent, FilteringServer: "x:3478"}, nil, notLocal,
			map[string]any{"filtering": "address-and-port-dependent", "nat": "port-restricted cone", "verdict": "not-full-cone", "exit_status": 3.0}, nil},
		{"one answer", false, &engine.NATReport{Local: lp, Answers: []engine.STUNAnswer{
			{Server: "a:3478", Err: errors.New("i/o timeout")}, {Server: "b:3478", Public: pub(7)}}}, nil, notLocal,
			map[string]any{"mapping": "unknown", "verdict": "unknown", "public_port": 7.0, "exit_status": 1.0}, []string{"nat", "error"}},
		{"no answer", false, &engine.NATReport{Local: lp, Answers: []engine.STUNAnswer{{Server: "a:3478", Err: errors.New("refused")}}},
			errors.New("no STUN server answered (see each one's error)"), notLocal,
			map[string]any{"verdict": "unknown", "error": "no STUN server answered (see each one's error)", "exit_status": 1.0},
			[]string{"public_ip", "nat"}},
		{"no port", false, nil, errors.New("hold a local port: denied"), notLocal,
			map[string]any{"verdict": "unknown", "answers": []any{}, "error": "hold a local port: denied", "exit_status": 1.0},
			[]string{"local_port", "public_ip"}},
		{"no NAT", false, &engine.NATReport{Local: lp, Answers: two(pub(40000), pub(40000)), Mapping: engine.MappingIndependent}, nil,
			func(netip.Addr) bool { return true },
			map[string]any{"verdict": "no-nat", "exit_status": 0.0}, []string{"nat"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := &config.Mapping{UDP: c.udp}
			b, err := json.Marshal(checkJSON(m, c.r, c.err, c.isLocal))
			if err != nil {
				t.Fatal(err)
			}
			v := decodeCheck(t, b)
			for k, w := range c.want {
				if !reflect.DeepEqual(v[k], w) {
					t.Errorf("%s: %#v, want %#v", k, v[k], w)
				}
			}
			for _, k := range c.absent {
				if _, ok := v[k]; ok {
					t.Errorf("%s present: %v", k, v[k])
				}
			}
			if s, _ := v["summary"].(string); s == "" || strings.Contains(s, "\n") {
				t.Errorf("summary %q: want one line", s)
			}
			if c.r != nil {
				as, _ := v["answers"].([]any)
				if len(as) != len(c.r.Answers) {
					t.Fatalf("answers %v", v["answers"])
				}
				for i, a := range c.r.Answers {
					got := as[i].(map[string]any)
					if got["server"] != a.Server {
						t.Errorf("answer %d: server %v", i, got["server"])
					}
					if a.Err != nil && (got["error"] != a.Err.Error() || got["public_ip"] != nil) {
						t.Errorf("answer %d: %v, want the error %v", i, got, a.Err)
					}
					if a.Err == nil && (got["public_ip"] != a.Public.Addr().String() || got["public_port"] != float64(a.Public.Port()) || got["error"] != nil) {
						t.Errorf("answer %d: %v, want %v", i, got, a.Public)
					}
				}
			}
			// The text report says the same and exits the same.
			if c.err == nil {
				j := engine.Judge(c.r, c.isLocal)
				if exitStatus(j) != int(v["exit_status"].(float64)) || !slices.Contains(j.Lines, j.Summary) && j.Verdict != engine.VerdictUnknown {
					t.Errorf("text judgement %+v disagrees with %s", j, b)
				}
			}
		})
	}
}

// natmap check --json on loopback: the servers see the host's own address.
func TestRunCheckJSON(t *testing.T) {
	var stdout, stderr bytes.Buffer
	args := []string{"--json", "-u", "-s", stunserver.UDP(t, nil), "-s", stunserver.UDP(t, nil), "--timeout", "10s"}
	code := runCheck(args, &stdout, &stderr)
	v := decodeCheck(t, stdout.Bytes())
	if code != 0 || v["verdict"] != "no-nat" || v["exit_status"] != 0.0 || v["mapping"] != "endpoint-independent" || v["protocol"] != "udp" {
		t.Errorf("exit %d, %s\nstderr: %s", code, stdout.String(), stderr.String())
	}
	if as, _ := v["answers"].([]any); len(as) != 2 || as[0].(map[string]any)["public_ip"] != "127.0.0.1" {
		t.Errorf("answers %v", v["answers"])
	}

	// Nobody answers: the same JSON, with the errors, and exit status 1.
	dead, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	stdout.Reset()
	code = runCheck([]string{"--json", "-u", "-s", dead.LocalAddr().String(), "--timeout", "2s"}, &stdout, &stderr)
	v = decodeCheck(t, stdout.Bytes())
	if code != 1 || v["verdict"] != "unknown" || v["exit_status"] != 1.0 || v["error"] == nil {
		t.Errorf("no answer: exit %d, %s", code, stdout.String())
	}
	if as, _ := v["answers"].([]any); len(as) != 1 || as[0].(map[string]any)["error"] == nil {
		t.Errorf("no answer: answers %v", v["answers"])
	}

	// Usage errors print no JSON.
	stdout.Reset()
	if code := runCheck([]string{"--json"}, &stdout, &stderr); code != 2 || stdout.Len() != 0 {
		t.Errorf("no server: exit %d, stdout %q", code, stdout.String())
	}
}
