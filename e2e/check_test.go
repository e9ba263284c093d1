package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/testkit/lab"
)

// natmap check tells each of the lab's NATs apart, over TCP and UDP, with
// the exit status scripts can test.
func TestCheck(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		kind lab.Kind
		udp  bool
		code int
		want []string
		json *checkJSON // also run with --json and expect this
	}{
		{lab.FullConePreserve, false, 0, []string{"endpoint-independent, public port preserved", "filtering: endpoint-independent", "full cone (NAT-1)"},
			&checkJSON{Verdict: "full-cone", NAT: "full cone", Mapping: "endpoint-independent", Filtering: "endpoint-independent", PortPreserved: true}},
		{lab.FullConeTranslate, true, 0, []string{"public port translated", "full cone (NAT-1)"}, nil},
		{lab.Symmetric, false, 3, []string{"endpoint-dependent", "symmetric NAT"},
			&checkJSON{Verdict: "not-full-cone", NAT: "symmetric", Mapping: "endpoint-dependent", Filtering: "unknown"}},
		{lab.Symmetric, true, 3, []string{"symmetric NAT"}, nil},
		{lab.RestrictedCone, false, 3, []string{"address-dependent (restricted cone)", "not a full cone"},
			&checkJSON{Verdict: "not-full-cone", NAT: "restricted cone", Mapping: "endpoint-independent", Filtering: "address-dependent", PortPreserved: true}},
	} {
		name := c.kind.String() + map[bool]string{false: "/tcp", true: "/udp"}[c.udp]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			l := lab.New(t, c.kind)
			args := append([]string{"check"}, stunArgs(l)...)
			if c.udp {
				args = append(args, "-u")
			}
			var out strings.Builder
			code := natmapExit(t, l, l.LAN, &out, &out, args...)
			if code != c.code {
				t.Errorf("exit status %d, want %d", code, c.code)
			}
			for _, w := range c.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q", w)
				}
			}
			if t.Failed() {
				t.Logf("natmap %s:\n%s", strings.Join(args, " "), out.String())
			}
			if c.json != nil {
				checkJSONRun(t, l, append(args, "--json"), c.code, c.udp, c.json)
			}
		})
	}
}

// natmapExit runs natmap with args in namespace ns of the lab, for at most
// 60 s, writing to stdout and stderr, and returns its exit status.
func natmapExit(t *testing.T, l *lab.Lab, ns string, stdout, stderr io.Writer, args ...string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := l.Command(ctx, ns, natmapBin, args...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

// checkJSON is the part of natmap check --json the lab can predict.
type checkJSON struct {
	Protocol      string        `json:"protocol"`
	LocalPort     uint16        `json:"local_port"`
	PublicIP      string        `json:"public_ip"`
	PublicPort    uint16        `json:"public_port"`
	PortPreserved bool          `json:"port_preserved"`
	Mapping       string        `json:"mapping"`
	Filtering     string        `json:"filtering"`
	NAT           string        `json:"nat"`
	Verdict       string        `json:"verdict"`
	Summary       string        `json:"summary"`
	ExitStatus    int           `json:"exit_status"`
	Answers       []checkAnswer `json:"answers"`
	Recheck       *struct {
		LocalPort uint16        `json:"local_port"`
		Answers   []checkAnswer `json:"answers"`
	} `json:"recheck"`
}

type checkAnswer struct {
	Server     string `json:"server"`
	PublicIP   string `json:"public_ip"`
	PublicPort uint16 `json:"public_port"`
	Error      string `json:"error"`
}

// checkJSONRun runs natmap check --json and compares its report with want;
// stdout must be the JSON alone, the exit status that of the text mode.
func checkJSONRun(t *testing.T, l *lab.Lab, args []string, code int, udp bool, want *checkJSON) {
	t.Helper()
	var out, stderr strings.Builder
	got := natmapExit(t, l, l.LAN, &out, &stderr, args...)
	var r checkJSON
	dec := json.NewDecoder(strings.NewReader(out.String()))
	if err := dec.Decode(&r); err != nil || dec.More() {
		t.Fatalf("natmap %s: stdout is not one JSON object (%v):\n%s\nstderr: %s", strings.Join(args, " "), err, out.String(), stderr.String())
	}
	proto := map[bool]string{false: "tcp", true: "udp"}[udp]
	if got != code || r.ExitStatus != code || r.Verdict != want.Verdict || r.NAT != want.NAT || r.Mapping != want.Mapping ||
		r.Filtering != want.Filtering || r.PortPreserved != want.PortPreserved || r.Protocol != proto || r.Summary == "" {
		t.Errorf("natmap %s: exit %d, %+v; want exit %d, %+v", strings.Join(args, " "), got, r, code, *want)
	}
	if len(r.Answers) < 2 || r.LocalPort == 0 || r.PublicIP != l.PublicAddr.String() {
		t.Errorf("natmap %s: local port %d, public %s, answers %+v; want two answers, public IP %s", strings.Join(args, " "), r.LocalPort, r.PublicIP, r.Answers, l.PublicAddr)
	}
	for _, a := range r.Answers {
		if a.Server == "" || a.Error != "" || a.PublicIP != l.PublicAddr.String() || a.PublicPort == 0 {
			t.Errorf("natmap %s: answer %+v", strings.Join(args, " "), a)
		}
	}
	if want.PortPreserved && r.PublicPort != r.LocalPort {
		t.Errorf("natmap %s: public port %d, local %d: not preserved", strings.Join(args, " "), r.PublicPort, r.LocalPort)
	}
	// Servers that agreed were asked again from another local port, and
	// agreed again.
	if want.Mapping != "endpoint-independent" {
		return
	}
	if rc := r.Recheck; rc == nil || rc.LocalPort == r.LocalPort || len(rc.Answers) != 2 ||
		rc.Answers[0].PublicPort != rc.Answers[1].PublicPort || rc.Answers[1].Error != "" ||
		rc.Answers[0].Error != "" || rc.Answers[0].PublicIP != l.PublicAddr.String() ||
		(want.PortPreserved && rc.Answers[0].PublicPort != rc.LocalPort) {
		t.Errorf("natmap %s: recheck %+v from local port %d", strings.Join(args, " "), rc, r.LocalPort)
	}
}

// From the outside client's namespace there is no NAT: the STUN servers see
// the host's own address.
func TestCheckNoNAT(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConePreserve)
	var out strings.Builder
	code := natmapExit(t, l, l.Inet, &out, &out, append([]string{"check"}, stunArgs(l)...)...)
	if code != 0 || !strings.Contains(out.String(), "no NAT: ") {
		t.Fatalf("natmap check from outside: exit status %d\n%s", code, out.String())
	}
}

// Over IPv6 the lab's NAT is a full cone too (NAT66, port preserved).
func TestCheckIPv6(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConePreserve)
	args := []string{"check", "-6", "-u"}
	for _, s := range l.STUN6 {
		args = append(args, "-s", s.String())
	}
	var out strings.Builder
	code := natmapExit(t, l, l.LAN, &out, &out, args...)
	if code != 0 || !strings.Contains(out.String(), "udp over IPv6") || !strings.Contains(out.String(), "full cone (NAT-1)") {
		t.Fatalf("natmap %s: exit status %d\n%s", strings.Join(args, " "), code, out.String())
	}
}

// natmap check asks every server it is given, and reports each: here a
// fourth one (STUN server 0's other address) after one that refuses.
func TestCheckAsksEveryServer(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConePreserve)
	refused := netip.AddrPortFrom(l.HTTP.Addr(), 3999)
	servers := []string{l.STUN[0].String(), l.STUN[1].String(), refused.String(), l.STUNAlt.String()}
	args := []string{"check", "--json"}
	for _, s := range servers {
		args = append(args, "-s", s)
	}
	var out strings.Builder
	if code := natmapExit(t, l, l.LAN, &out, nil, args...); code != 0 {
		t.Fatalf("natmap %s: exit status %d\n%s", strings.Join(args, " "), code, out.String())
	}
	var r checkJSON
	if err := json.Unmarshal([]byte(out.String()), &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Answers) != len(servers) {
		t.Fatalf("%d answers for %d servers: %+v", len(r.Answers), len(servers), r.Answers)
	}
	for i, a := range r.Answers {
		if a.Server != servers[i] || (i == 2) != (a.Error != "") || (i != 2 && a.PublicIP != l.PublicAddr.String()) {
			t.Errorf("answer %d: %+v, want server %s", i, a, servers[i])
		}
	}
}
