package updater

import (
	"context"
	"crypto/pbkdf2"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/httpc"
	"github.com/natmap-go/natmap/internal/testkit/freeport"
	"github.com/natmap-go/natmap/internal/testkit/testgate"
	"github.com/natmap-go/natmap/internal/testkit/wait"
)

func waitListening(t *testing.T, what string, port int) {
	wait.For(t, 60*time.Second, what+" to listen", func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// transmissionDaemon runs transmission-daemon on loopback with RPC
// credentials natmap/secret, DHT, LPD, PEX and port forwarding off.
func transmissionDaemon(t *testing.T) string {
	testgate.Require(t, "transmission updater", false, map[string]string{"transmission-daemon": "transmission-daemon"})
	dir := t.TempDir()
	rpc := freeport.Both(t, "127.0.0.1")
	settings := map[string]any{
		"rpc-enabled": true, "rpc-port": rpc, "rpc-bind-address": "127.0.0.1",
		"rpc-authentication-required": true, "rpc-username": "natmap", "rpc-password": "secret",
		"rpc-whitelist-enabled": true, "rpc-whitelist": "127.0.0.1", "rpc-host-whitelist-enabled": false,
		"peer-port": 51413, "peer-port-random-on-start": false, "bind-address-ipv4": "127.0.0.1", "bind-address-ipv6": "::1",
		"dht-enabled": false, "lpd-enabled": false, "pex-enabled": false, "utp-enabled": false,
		"port-forwarding-enabled": false, "blocklist-enabled": false,
		"download-dir": dir, "incomplete-dir-enabled": false, "message-level": 1,
	}
	b, _ := json.Marshal(settings)
	if err := os.WriteFile(filepath.Join(dir, "settings.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	startProcess(t, "transmission-daemon", "-f", "-g", dir)
	waitListening(t, "transmission-daemon", rpc)
	return fmt.Sprintf("http://127.0.0.1:%d/transmission/rpc", rpc)
}

// transmissionPeerPort reads the port back through the RPC.
func transmissionPeerPort(t *testing.T, url string) int {
	u := &transmission{url: url, auth: "Basic " + base64.StdEncoding.EncodeToString([]byte("natmap:secret"))}
	var reply struct {
		Arguments struct {
			PeerPort int `json:"peer-port"`
		} `json:"arguments"`
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := u.call(ctx, []byte(`{"method":"session-get","arguments":{"fields":["peer-port"]}}`), &reply); err != nil {
		t.Fatal(err)
	}
	return reply.Arguments.PeerPort
}

func TestTransmission(t *testing.T) {
	url := transmissionDaemon(t)
	b := build(t, "transmission", map[string]string{"url": url, "username": "natmap", "password": "secret"})
	for _, pub := range []string{"203.0.113.7:45678", "203.0.113.7:23456"} {
		if err := update(t, b, pub); err != nil {
			t.Fatal(err)
		}
		want, _ := strconv.Atoi(strings.Split(pub, ":")[1])
		if got := transmissionPeerPort(t, url); got != want {
			t.Errorf("peer-port %d, want %d", got, want)
		}
	}
	err := update(t, build(t, "transmission", map[string]string{"url": url, "username": "natmap", "password": "wrong"}), "203.0.113.7:1000")
	if err == nil || !IsPermanent(err) || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), "wrong") && !strings.Contains(err.Error(), "wrong username") {
		t.Errorf("wrong password: %v, want a permanent 401", err)
	}
	if got := transmissionPeerPort(t, url); got != 23456 {
		t.Errorf("after a refused update, peer-port %d", got)
	}
}

// qbittorrentNox runs qbittorrent-nox with a temporary profile, WebUI on
// loopback, user admin, password secret123, and DHT, LSD, PeX, UPnP off.
func qbittorrentNox(t *testing.T) string {
	testgate.Require(t, "qbittorrent updater", false, map[string]string{"qbittorrent-nox": "qbittorrent-nox"})
	dir := t.TempDir()
	port := freeport.Both(t, "127.0.0.1")
	salt := []byte("0123456789abcdef")
	key, err := pbkdf2.Key(sha512.New, "secret123", salt, 100000, 64)
	if err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`[LegalNotice]
Accepted=true

[BitTorrent]
Session\DHTEnabled=false
Session\LSDEnabled=false
Session\PeXEnabled=false
Session\Port=6881
Session\Interface=lo
Session\InterfaceName=lo
Session\DefaultSavePath=%[1]s

[Network]
PortForwardingEnabled=false

[Preferences]
Connection\UPnP=false
WebUI\Address=127.0.0.1
WebUI\Port=%[2]d
WebUI\Username=admin
WebUI\Password_PBKDF2="@ByteArray(%[3]s:%[4]s)"
WebUI\LocalHostAuth=true
WebUI\UseUPnP=false
`, dir, port, base64.StdEncoding.EncodeToString(salt), base64.StdEncoding.EncodeToString(key))
	cdir := filepath.Join(dir, "qBittorrent", "config")
	if err := os.MkdirAll(cdir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cdir, "qBittorrent.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	startProcess(t, "qbittorrent-nox", "--profile="+dir, fmt.Sprintf("--webui-port=%d", port))
	waitListening(t, "qbittorrent-nox", port)
	return fmt.Sprintf("http://127.0.0.1:%d", port)
}

// qbittorrentPort reads listen_port back through the WebUI API.
func qbittorrentPort(t *testing.T, base string) int {
	q := &qbittorrent{base: base, user: "admin", password: "secret123"}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cookie, err := q.login(ctx)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := q.client.Do(ctx, &httpc.Request{Method: "GET", URL: base + "/api/v2/app/preferences", Header: [][2]string{{"Cookie", cookie}}})
	if err != nil || resp.Status != 200 {
		t.Fatalf("preferences: %v %+v", err, resp)
	}
	var prefs struct {
		ListenPort int `json:"listen_port"`
	}
	if err := json.Unmarshal(resp.Body, &prefs); err != nil {
		t.Fatal(err)
	}
	return prefs.ListenPort
}

func TestQBittorrent(t *testing.T) {
	base := qbittorrentNox(t)
	b := build(t, "qbittorrent", map[string]string{"url": base, "username": "admin", "password": "secret123"})
	if err := update(t, b, "203.0.113.7:45678"); err != nil {
		t.Fatal(err)
	}
	if got := qbittorrentPort(t, base); got != 45678 {
		t.Errorf("listen_port %d, want 45678", got)
	}
	// The session ends (logout): the next update logs in again.
	q := b.Updater.(*qbittorrent)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	q.mu.Lock()
	cookie := q.cookie
	q.mu.Unlock()
	if _, err := q.client.Do(ctx, &httpc.Request{Method: "POST", URL: base + "/api/v2/auth/logout", Header: [][2]string{{"Cookie", cookie}}}); err != nil {
		t.Fatal(err)
	}
	if err := update(t, b, "203.0.113.7:34567"); err != nil {
		t.Fatalf("after logout: %v", err)
	}
	if got := qbittorrentPort(t, base); got != 34567 {
		t.Errorf("listen_port %d, want 34567", got)
	}
	err := update(t, build(t, "qbittorrent", map[string]string{"url": base, "username": "admin", "password": "nope"}), "203.0.113.7:1000")
	if err == nil || !IsPermanent(err) || !strings.Contains(err.Error(), "wrong username or password") {
		t.Errorf("wrong password: %v, want a permanent error", err)
	}
}
