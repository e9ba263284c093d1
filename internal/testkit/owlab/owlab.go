// Package owlab boots OpenWrt's real userspace (procd, ubusd, rpcd, uhttpd
// with LuCI, uci, opkg, apk, firewall4) for tests, from the openwrt-lab tool
// that stands beside the project in ../shared/openwrt-lab. It is tooling for
// tests, not part of natmap.
//
// The lab's rootfs is built once per LuCI snapshot into a shared cache
// (/var/tmp/natmap-owlab/<luci>, a lock serialises the build); each Start
// unpacks a fresh copy of it, so tests begin from a clean image and several
// labs (from parallel test processes too) can run at once, each with its own
// network namespace, veth and /24.
package owlab

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/testkit/testgate"
)

// CacheDir holds the built rootfs per LuCI snapshot and the locks.
const CacheDir = "/var/tmp/natmap-owlab"

// Options choose the lab to boot.
type Options struct {
	// LuCI is the LuCI snapshot: "2026" (default, as OpenWrt 25.12) or "2024".
	LuCI string
}

// Lab is one booted OpenWrt userspace.
type Lab struct {
	t      testing.TB
	tool   string // the openwrt-lab directory
	env    []string
	dir    string // this instance's OPENWRT_LAB_DIR
	Rootfs string // the instance's root, a host directory
	Subnet string // first three octets: host .1, lab .2
	NetNS  string
	veth   string // the host's end of the veth
}

var seq atomic.Int32

// ToolDir returns the openwrt-lab directory: $NATMAP_OPENWRT_LAB, or
// ../shared/openwrt-lab beside the repository (found from go.mod). Tests that
// need it are skipped (or fail in CI) when it is missing.
func ToolDir(t testing.TB) string {
	t.Helper()
	tool, err := toolDir()
	if err != nil {
		t.Fatalf("owlab: %v", err)
	}
	if _, err := os.Stat(filepath.Join(tool, "boot.sh")); err != nil {
		testgate.Unmet(t, "owlab: these tests need OpenWrt's userspace from "+tool+" (openwrt-lab), which is missing")
	}
	return tool
}

// toolDir is where the openwrt-lab directory is, or would be.
func toolDir() (string, error) {
	if d := os.Getenv("NATMAP_OPENWRT_LAB"); d != "" {
		return d, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(filepath.Dir(d), "shared", "openwrt-lab"), nil
		}
		if d == filepath.Dir(d) {
			return "", fmt.Errorf("no go.mod above %s", wd)
		}
	}
}

// Usable reports whether a lab can be built and booted here (root, and
// the openwrt-lab directory), for a test that uses the lab only for an
// extra check and must not be skipped without it.
func Usable() bool {
	tool, err := toolDir()
	if err != nil || os.Geteuid() != 0 {
		return false
	}
	_, err = os.Stat(filepath.Join(tool, "boot.sh"))
	return err == nil
}

// APK returns an executable that runs the lab's apk-tools v3 (the apk
// OpenWrt 25 ships, built by build.sh with the rest of the userspace) on
// the host, with the rootfs's libraries: to make and check apk indexes.
func APK(t testing.TB) string {
	t.Helper()
	rootfs := filepath.Join(filepath.Dir(Build(t, "")), "rootfs")
	bin := filepath.Join(rootfs, "usr", "bin", "apk")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("owlab: the lab's apk: %v", err)
	}
	script := filepath.Join(t.TempDir(), "apk")
	body := fmt.Sprintf("#!/bin/sh\nLD_LIBRARY_PATH='%s' exec '%s' \"$@\"\n", filepath.Join(rootfs, "usr", "lib"), bin)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return script
}

// Require checks for root and the lab's own needs without booting.
func Require(t testing.TB) string {
	t.Helper()
	testgate.Require(t, "owlab", true, map[string]string{"nsenter": "util-linux", "unshare": "util-linux", "tar": "tar"})
	return ToolDir(t)
}

// Build builds (or finds cached) the rootfs for the LuCI snapshot and
// returns the path of its pristine tarball.
func Build(t testing.TB, luci string) string {
	t.Helper()
	tool := Require(t)
	if luci == "" {
		luci = "2026"
	}
	cache := filepath.Join(CacheDir, luci)
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	unlock := lockFile(t, filepath.Join(CacheDir, "build-"+luci+".lock"))
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(tool, "build.sh"))
	cmd.Env = append(os.Environ(), "OPENWRT_LAB_DIR="+cache, "OPENWRT_LAB_LUCI="+luci)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("owlab: build.sh (LuCI %s): %v\n%s", luci, err, tail(out.String(), 40))
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Logf("owlab: built OpenWrt's userspace (LuCI %s) in %s", luci, d.Round(time.Second))
	}
	return filepath.Join(cache, "rootfs.pristine.tar")
}

// Start boots a fresh lab and stops and removes it when the test ends.
func Start(t testing.TB, o Options) *Lab {
	t.Helper()
	tool := ToolDir(t)
	pristine := Build(t, o.LuCI)

	// A /24 of 10.199.0.0/16 (the tool's own range) not used by another
	// lab: each is held by a lock for the lab's life; the kernel drops it
	// with the process, so a crashed run frees it.
	var subnet string
	for i := 10; i < 250 && subnet == ""; i++ {
		if unlock, ok := tryLock(filepath.Join(CacheDir, fmt.Sprintf("subnet-%d.lock", i))); ok {
			t.Cleanup(unlock)
			subnet = fmt.Sprintf("10.199.%d", i)
		}
	}
	if subnet == "" {
		t.Fatal("owlab: no free subnet")
	}
	n := seq.Add(1)
	name := fmt.Sprintf("nmow%d-%d", os.Getpid()%100000, n)
	dir, err := os.MkdirTemp(CacheDir, "lab-")
	if err != nil {
		t.Fatal(err)
	}
	l := &Lab{t: t, tool: tool, dir: dir, Rootfs: filepath.Join(dir, "rootfs"), Subnet: subnet, NetNS: name, veth: "ow" + name[4:]}
	l.env = append(os.Environ(),
		"OPENWRT_LAB_DIR="+dir, "OPENWRT_LAB_ROOTFS="+l.Rootfs,
		"OPENWRT_LAB_NETNS="+name, "OPENWRT_LAB_VETH="+l.veth, "OPENWRT_LAB_SUBNET="+subnet)
	t.Cleanup(func() {
		l.boot("stop")
		l.boot("net-down")
		// The rootfs's /proc and /dev were mounted in the lab's own mount
		// namespace, gone with procd; nothing is mounted here.
		os.RemoveAll(dir)
	})
	if err := os.MkdirAll(l.Rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("tar", "-C", l.Rootfs, "-xpf", pristine).CombinedOutput(); err != nil {
		t.Fatalf("owlab: unpack %s: %v\n%s", pristine, err, out)
	}
	if out, err := l.boot("start"); err != nil {
		t.Fatalf("owlab: boot.sh start: %v\n%s\nconsole:\n%s", err, out, tail(l.Console(), 30))
	}
	return l
}

func (l *Lab) boot(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(l.tool, "boot.sh"), args...)
	cmd.Env = l.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Addr is the lab's address (uhttpd on port 80), HostAddr the host's end of
// the veth, where the host can serve files to the lab.
func (l *Lab) Addr() string     { return l.Subnet + ".2" }
func (l *Lab) HostAddr() string { return l.Subnet + ".1" }

// Env is the environment for the tool's scripts (boot.sh, browser/) aimed
// at this lab.
func (l *Lab) Env() []string { return l.env }

// Tool is the openwrt-lab directory.
func (l *Lab) Tool() string { return l.tool }

// Exec runs cmd with the lab's /bin/sh, as root inside, with stdin; it
// returns stdout and stderr together.
func (l *Lab) Exec(stdin io.Reader, cmd string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, filepath.Join(l.tool, "boot.sh"), "exec", cmd)
	c.Env = l.env
	c.Stdin = stdin
	out, err := c.CombinedOutput()
	if err != nil {
		err = fmt.Errorf("in the lab: %q: %w", cmd, err)
	}
	return string(out), err
}

// Sh runs cmd inside and fails the test when it fails.
func (l *Lab) Sh(cmd string) string {
	l.t.Helper()
	out, err := l.Exec(nil, cmd)
	if err != nil {
		l.t.Fatalf("%v\n%s", err, out)
	}
	return out
}

// WaitSh runs cmd inside until it succeeds or d passes.
func (l *Lab) WaitSh(d time.Duration, cmd string) string {
	l.t.Helper()
	deadline := time.Now().Add(d)
	for {
		out, err := l.Exec(nil, cmd)
		if err == nil {
			return out
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("after %s: %v\n%s", d, err, out)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// CopyIn copies a host file to path inside (a rootfs path, not under the
// lab's tmpfs /tmp).
func (l *Lab) CopyIn(src, path string) {
	l.t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		l.t.Fatal(err)
	}
	dst := filepath.Join(l.Rootfs, path)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		l.t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		l.t.Fatal(err)
	}
}

// Console is procd's console output so far.
func (l *Lab) Console() string {
	b, _ := os.ReadFile(filepath.Join(l.dir, "run", "console.log"))
	return string(b)
}

// Log is logd's buffer (logread).
func (l *Lab) Log() string {
	out, _ := l.Exec(nil, "/usr/sbin/logread")
	return out
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func lockFile(t testing.TB, path string) func() {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatal(err)
	}
	return func() { f.Close() }
}

func tryLock(path string) (func(), bool) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, false
	}
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		f.Close()
		return nil, false
	}
	return func() { f.Close() }, true
}
