package stun

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestCoturn checks BindTCP and BindUDP against a real server: coturn in
// STUN-only mode on 127.0.0.1. It is skipped where turnserver is missing.
func TestCoturn(t *testing.T) {
	bin, err := exec.LookPath("turnserver")
	if err != nil {
		t.Skip("turnserver (coturn) not installed")
	}
	port := freePort(t)
	dir := t.TempDir()
	cmd := exec.Command(bin,
		"-n", // no config file: only these flags count
		"--stun-only", "--no-cli", "--no-tls", "--no-dtls", "--no-rfc5780",
		"--listening-ip", "127.0.0.1", "--listening-port", strconv.Itoa(port),
		"--log-file", filepath.Join(dir, "turn.log"), "--simple-log", "--no-stdout-log",
		"--pidfile", filepath.Join(dir, "turn.pid"),
		"--db", filepath.Join(dir, "turndb"), // not the system one
	)
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting turnserver: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "turn.log"))
			t.Logf("turnserver log:\n%s", log)
		}
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	waitListening(t, addr)

	t.Run("tcp", func(t *testing.T) {
		c := dial(t, "tcp", addr)
		got, err := BindTCP(ctxTimeout(t, 5*time.Second), c)
		if err != nil {
			t.Fatal(err)
		}
		if want := localAddr(c); got != want {
			t.Fatalf("got %v, want %v", got, want)
		}
	})
	t.Run("udp", func(t *testing.T) {
		c := dial(t, "udp", addr)
		got, err := BindUDP(ctxTimeout(t, 5*time.Second), c, 200*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if want := localAddr(c); got != want {
			t.Fatalf("got %v, want %v", got, want)
		}
	})
}

// freePort finds a port free for both TCP and UDP on 127.0.0.1.
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", ln.Addr().String())
		ln.Close()
		if err == nil {
			pc.Close()
			return port
		}
	}
	t.Fatal("no port free for both TCP and UDP")
	return 0
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("turnserver not listening on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
