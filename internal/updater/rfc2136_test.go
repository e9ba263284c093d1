package updater

import (
	"context"
	"encoding/base64"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/testkit/freeport"
	"github.com/natmap-go/natmap/internal/testkit/testgate"
	"github.com/natmap-go/natmap/internal/testkit/wait"
)

const testKey = "natmap-key"

// bind runs BIND 9 on a loopback port with a zone example.test that the
// key may update, and returns the port and the key's secret.
func bind(t *testing.T) (int, string) {
	testgate.Require(t, "rfc2136 against BIND", false, map[string]string{"named": "bind9", "dig": "bind9-dnsutils"})
	dir := t.TempDir()
	port := freeport.Both(t, "127.0.0.1")
	secret := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	conf := fmt.Sprintf(`options {
	directory %[1]q;
	pid-file %[1]q "/named.pid";
	listen-on port %[2]d { 127.0.0.1; };
	listen-on-v6 { none; };
	recursion no;
	dnssec-validation no;
	session-keyfile none;
	managed-keys-directory %[1]q;
};
controls { };
key %[3]q { algorithm hmac-sha256; secret %[4]q; };
zone "example.test" {
	type primary;
	file "example.test.zone";
	update-policy { grant %[3]s zonesub ANY; };
};
`, dir, port, testKey, secret)
	conf = strings.Replace(conf, `"/named.pid"`, "", 1)
	conf = strings.Replace(conf, fmt.Sprintf("pid-file %q ", dir), fmt.Sprintf("pid-file %q", filepath.Join(dir, "named.pid")), 1)
	zone := `$TTL 300
@ IN SOA ns.example.test. admin.example.test. 1 3600 600 86400 60
@ IN NS ns.example.test.
ns IN A 127.0.0.1
`
	if err := os.WriteFile(filepath.Join(dir, "named.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "example.test.zone"), []byte(zone), 0o644); err != nil {
		t.Fatal(err)
	}
	startProcess(t, "named", "-g", "-c", filepath.Join(dir, "named.conf"), "-n", "1")
	wait.For(t, 60*time.Second, "named to answer", func() bool {
		return len(digLines(t, port, "example.test", "SOA")) == 1
	})
	return port, secret
}

// digLines reads records back with dig, one answer a line.
func digLines(t *testing.T, port int, name, typ string) []string {
	out, _ := exec.Command("dig", "@127.0.0.1", "-p", strconv.Itoa(port), "+short", "+time=2", "+tries=1", name, typ).Output()
	s := strings.TrimSpace(string(out))
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func TestRFC2136AgainstBIND(t *testing.T) {
	port, secret := bind(t)
	opts := map[string]string{
		"server": "127.0.0.1:" + strconv.Itoa(port), "zone": "example.test",
		"key_name": testKey, "key_secret": secret,
		"name": "nas.example.test", "record": "a|ip4p|txt|srv",
		"srv_name": "_natmap._tcp.example.test", "ttl": "120",
	}
	b := build(t, "rfc2136", opts)
	for _, pub := range []string{"203.0.113.7:45678", "198.51.100.9:1234"} {
		if err := update(t, b, pub); err != nil {
			t.Fatalf("%s: %v", pub, err)
		}
	}
	// The second update replaced the first: one record of each.
	want := map[string][]string{
		"A":    {"198.51.100.9"},
		"AAAA": {"2001::4d2:c633:6409"},
		"TXT":  {`"198.51.100.9:1234"`},
	}
	for typ, w := range want {
		if got := digLines(t, port, "nas.example.test", typ); !slices.Equal(got, w) {
			t.Errorf("%s: dig says %q, want %q", typ, got, w)
		}
	}
	if got := digLines(t, port, "_natmap._tcp.example.test", "SRV"); !slices.Equal(got, []string{"0 0 1234 nas.example.test."}) {
		t.Errorf("SRV: dig says %q", got)
	}

	// An IPv6 mapping: AAAA.
	b6 := build(t, "rfc2136", map[string]string{"server": opts["server"], "zone": "example.test", "key_name": testKey, "key_secret": secret, "name": "v6.example.test"})
	if err := update(t, b6, "[2001:db8::5]:4000"); err != nil {
		t.Fatal(err)
	}
	if got := digLines(t, port, "v6.example.test", "AAAA"); !slices.Equal(got, []string{"2001:db8::5"}) {
		t.Errorf("v6 AAAA: %q", got)
	}

	t.Run("wrong secret", func(t *testing.T) {
		o := with(opts, "key_secret", base64.StdEncoding.EncodeToString([]byte("not the key")))
		err := update(t, build(t, "rfc2136", o), "192.0.2.1:1")
		if err == nil || !IsPermanent(err) || !strings.Contains(err.Error(), "BADSIG") {
			t.Errorf("err %v, want a permanent BADSIG", err)
		}
		if err != nil && strings.Contains(err.Error(), o["key_secret"]) {
			t.Error("the error shows the secret")
		}
	})
	t.Run("unknown key", func(t *testing.T) {
		err := update(t, build(t, "rfc2136", with(opts, "key_name", "other-key")), "192.0.2.1:1")
		if err == nil || !IsPermanent(err) || !strings.Contains(err.Error(), "BADKEY") {
			t.Errorf("err %v, want a permanent BADKEY", err)
		}
	})
	t.Run("unsigned refused", func(t *testing.T) {
		err := update(t, build(t, "rfc2136", map[string]string{"server": opts["server"], "zone": "example.test", "name": "x.example.test"}), "192.0.2.1:1")
		if err == nil || !IsPermanent(err) || !strings.Contains(err.Error(), "REFUSED") {
			t.Errorf("err %v, want a permanent REFUSED", err)
		}
	})
	if got := digLines(t, port, "nas.example.test", "A"); !slices.Equal(got, []string{"198.51.100.9"}) {
		t.Errorf("after refused updates, A is %q", got)
	}
}

// with is opts with one option changed.
func with(opts map[string]string, k, v string) map[string]string {
	o := maps.Clone(opts)
	o[k] = v
	return o
}

// A server that is down or never answers: an error worth retrying, within
// the attempt's deadline.
func TestRFC2136ServerDownOrSilent(t *testing.T) {
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	for name, server := range map[string]string{
		"down":   "127.0.0.1:" + strconv.Itoa(freeport.Both(t, "127.0.0.1")),
		"silent": silent.LocalAddr().String(),
	} {
		b := build(t, "rfc2136", map[string]string{"server": server, "zone": "example.test", "name": "nas.example.test"})
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		start := time.Now()
		err := b.Updater.Update(ctx, testFields("192.0.2.1:1"))
		cancel()
		if err == nil || IsPermanent(err) || time.Since(start) > 20*time.Second {
			t.Errorf("%s: %v after %v, want a retried error", name, err, time.Since(start))
		}
	}
}
