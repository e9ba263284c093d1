package openwrt_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/natmap-go/natmap/internal/pkgtools/apk"
	"github.com/natmap-go/natmap/internal/pkgtools/usign"
	"github.com/natmap-go/natmap/internal/testkit/owlab"
)

// The package's files, relative to this directory.
const (
	filesDir     = "natmap/files"
	feedMakefile = "natmap/Makefile"
	initScript   = filesDir + "/natmap.init"
	rpcdPlugin   = filesDir + "/natmap.rpcd"
	fwInclude    = filesDir + "/firewall.include"
	uciDefaults  = filesDir + "/natmap.uci-defaults"
	configFile   = filesDir + "/natmap.config"
	stockConfig  = "../internal/uci/testdata/stock-natmap.config" // OpenWrt's stock /etc/config/natmap
)

// shells are the shells the scripts are run with: sh (dash on Debian, a
// POSIX shell), and busybox ash, OpenWrt's own shell, when installed.
func shells(t *testing.T) [][]string {
	t.Helper()
	out := [][]string{{"sh"}}
	if bb, err := exec.LookPath("busybox"); err == nil {
		if exec.Command(bb, "ash", "-c", "true").Run() == nil {
			out = append(out, []string{bb, "ash"})
		}
	}
	return out
}

func shellName(sh []string) string { return filepath.Base(strings.Join(sh, "-")) }

// run runs a command and returns its stdout, stderr and exit code.
func run(t *testing.T, env []string, stdin string, name string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("%s %v: %v", name, args, err)
		}
		code = ee.ExitCode()
	}
	return stdout.String(), stderr.String(), code
}

// writeFile writes a file, making its directory.
func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// rewrite copies a script into dir with absolute paths of the router
// replaced by test doubles: each old path must occur in the script (so a
// change to the script cannot silently skip the double).
func rewrite(t *testing.T, src, dst string, repl ...string) string {
	t.Helper()
	s := readFile(t, src)
	for i := 0; i < len(repl); i += 2 {
		if !strings.Contains(s, repl[i]) {
			t.Fatalf("%s does not mention %s", src, repl[i])
		}
		s = strings.ReplaceAll(s, repl[i], repl[i+1])
	}
	writeFile(t, dst, s, 0o755)
	return dst
}

// recorder is a directory of stub commands that log their arguments, one
// call per line, arguments separated by \x1f.
type recorder struct {
	dir string
	log string
}

func newRecorder(t *testing.T) *recorder {
	t.Helper()
	d := t.TempDir()
	r := &recorder{dir: filepath.Join(d, "bin"), log: filepath.Join(d, "calls.log")}
	writeFile(t, r.log, "", 0o644)
	return r
}

// stub adds a command that records its name and arguments, then runs body.
func (r *recorder) stub(t *testing.T, name, body string) string {
	t.Helper()
	path := filepath.Join(r.dir, name)
	script := "#!/bin/sh\n{ printf '%s' " + shq(name) + "; for a in \"$@\"; do printf '\\037%s' \"$a\"; done; printf '\\n'; } >>" + shq(r.log) + "\n" + body + "\n"
	writeFile(t, path, script, 0o755)
	return path
}

// calls returns the recorded calls, each as its argv.
func (r *recorder) calls(t *testing.T) [][]string {
	t.Helper()
	var out [][]string
	for _, line := range strings.Split(readFile(t, r.log), "\n") {
		if line != "" {
			out = append(out, strings.Split(line, "\x1f"))
		}
	}
	return out
}

// path is PATH with the stubs first.
func (r *recorder) path() string { return "PATH=" + r.dir + ":" + os.Getenv("PATH") }

// shq quotes a string for sh.
func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func joinArgs(argv []string) string { return strings.Join(argv, " ") }

// feedKeys makes a feed's keys in a temporary directory, named as `mkfeed
// keygen` names them: the usign secret (FEED_KEY, returned as secret) and,
// withAPK, its apk twin NAME.apk.sec beside it (nil otherwise).
func feedKeys(t *testing.T, withAPK bool) (secret string, key *usign.Key, apkKey *apk.Key) {
	t.Helper()
	key, err := usign.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	secret = filepath.Join(dir, "feed.sec")
	writeFile(t, secret, string(key.MarshalSecret()), 0o600)
	if withAPK {
		if apkKey, err = apk.GenerateKey(nil); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "feed.apk.sec"), string(apkKey.Private), 0o600)
	}
	return secret, key, apkKey
}

// apkTools is apk-tools v3's apk binary: the one APK_TOOLS_BIN names, else
// the OpenWrt lab's (which owlab builds, or skips or fails without).
func apkTools(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("APK_TOOLS_BIN"); bin != "" {
		return bin
	}
	return owlab.APK(t)
}
