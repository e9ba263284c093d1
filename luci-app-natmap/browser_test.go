package luciapp_test

// The LuCI app in headless Chromium on OpenWrt's own userspace (openwrt-lab,
// through internal/testkit/owlab), on both LuCI snapshots: test/browser.js
// drives the browser; this side builds and installs the packages, runs the
// STUN and keep-alive servers the new mapping uses, and does and checks
// what happens on the router between the browser's steps.
//
// Screenshots go to test/shots/LUCI/ (ignored by git), kept after the test.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/testkit/coturn"
	"github.com/natmap-go/natmap/internal/testkit/httpserve"
	"github.com/natmap-go/natmap/internal/testkit/owlab"
	"github.com/natmap-go/natmap/internal/testkit/portchecker"
	"github.com/natmap-go/natmap/internal/testkit/testgate"
)

const browserScript = "test/browser.js"

// The bind port of the mapping the browser adds.
const webPort = 20000

func TestBrowser(t *testing.T) {
	tool := owlab.Require(t)
	testgate.Require(t, "LuCI browser test", true, map[string]string{"node": "nodejs", "turnserver": "coturn"})
	pkgs := buildPackages(t)
	browserDir := installBrowser(t, tool)
	start := time.Now()
	t.Cleanup(func() { t.Logf("both LuCI snapshots: %s", time.Since(start).Round(time.Second)) })
	// The two labs have their own subnets, servers and screenshots: they
	// run side by side.
	for _, luci := range []string{"2026", "2024"} {
		t.Run("LuCI"+luci, func(t *testing.T) {
			t.Parallel()
			testBrowser(t, luci, pkgs, browserDir)
		})
	}
}

// buildPackages runs `make ipk`'s script for x86_64 into a temporary
// directory and returns the two packages.
func buildPackages(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("scripts/ipk.sh", "-o", dir, "x86_64")
	cmd.Dir = ".."
	cmd.Env = os.Environ()
	if g, err := exec.LookPath("go"); err == nil { // go test puts its go first in PATH
		cmd.Env = append(cmd.Env, "GO="+g)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/ipk.sh: %v\n%s", err, out)
	}
	pkgs, _ := filepath.Glob(filepath.Join(dir, "*.ipk"))
	if len(pkgs) != 2 {
		t.Fatalf("scripts/ipk.sh made %v, want natmap and luci-app-natmap", pkgs)
	}
	return pkgs
}

// installBrowser installs Chromium, Node.js and playwright-core with the
// tool's script, playwright-core into the owlab cache shared by every run.
func installBrowser(t *testing.T, tool string) string {
	t.Helper()
	dir := filepath.Join(owlab.CacheDir, "browser")
	cmd := exec.Command(filepath.Join(tool, "browser", "install.sh"))
	// Fonts for legible Chinese in the screenshots.
	cmd.Env = append(os.Environ(), "OPENWRT_LAB_BROWSER_DIR="+dir, "OPENWRT_LAB_FONTS=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("browser/install.sh: %v\n%s", err, out)
	}
	return dir
}

func testBrowser(t *testing.T, luci string, pkgs []string, browserDir string) {
	l := owlab.Start(t, owlab.Options{LuCI: luci})
	for _, p := range pkgs {
		l.CopyIn(p, "/root/pkgs/"+filepath.Base(p))
	}
	l.Sh("opkg install /root/pkgs/*.ipk")

	stun := []string{net.JoinHostPort(l.HostAddr(), "3478"), net.JoinHostPort(l.HostAddr(), "3479")}
	coturn.Start(t, coturn.Config{Addrs: []string{l.HostAddr()}, Port: 3478})
	coturn.Start(t, coturn.Config{Addrs: []string{l.HostAddr()}, Port: 3479})
	keepalive := httpserve.Listen(t, l.HostAddr(), nil)
	// The NAT check proves the port reachable with the port checker of the
	// global section's reachability_url. It needs a NAT in front of the
	// lab: behind none (the lab's own address) natmap check gives no reach
	// verdict. The mapping's fixed port stays outside that NAT. The daemon
	// asks the checker too, for the mapping, and the status says it is
	// not reachable: nothing listens on the bind port in the lab.
	l.ConeNAT(t, 3478, 3479)
	_, checker := portchecker.Listen(t, l.HostAddr())
	l.Sh("uci add natmap global && uci set natmap.@global[-1].reachability_url='" + checker + "' && uci commit natmap")

	out := filepath.Join("test", "shots", luci)
	os.RemoveAll(out)
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(out)
	cfg, _ := json.Marshal(map[string]any{
		"tool": l.Tool(), "base": "http://" + l.Addr(), "out": abs, "lab": l.Addr(),
		"stun": stun, "http": keepalive, "port": webPort,
	})

	steps := map[string]func() error{
		// Save & Apply wrote what the modal says, and nothing else.
		"applied": func() error {
			all := l.Sh("uci show natmap")
			var sect []string
			for _, line := range strings.Split(all, "\n") {
				if strings.HasPrefix(line, "natmap.@natmap[1]") {
					sect = append(sect, line)
				}
			}
			got := strings.Join(sect, "\n")
			want := strings.Join([]string{
				"natmap.@natmap[1]=natmap",
				"natmap.@natmap[1].enable='1'",
				"natmap.@natmap[1].comment='web'",
				"natmap.@natmap[1].udp_mode='0'",
				fmt.Sprintf("natmap.@natmap[1].port='%d'", webPort),
				fmt.Sprintf("natmap.@natmap[1].stun_server='%s' '%s'", stun[0], stun[1]),
				fmt.Sprintf("natmap.@natmap[1].http_server='%s'", keepalive),
			}, "\n")
			if strings.TrimSpace(got) != want {
				return fmt.Errorf("/etc/config/natmap after Save & Apply:\n%s\nwant:\n%s", got, want)
			}
			if n := strings.Count(all, "=natmap\n"); n != 2 {
				return fmt.Errorf("%d natmap sections, want the stock one and the new one", n)
			}
			return nil
		},
		// Restart: the daemon starts the section again (its log says so).
		"mark-restart": func() error {
			l.Sh("logger -t natmap-test mark-restart")
			return nil
		},
		"restarted": func() error {
			log := l.Log()
			i := strings.LastIndex(log, "mark-restart")
			if i < 0 || !regexp.MustCompile(`section started.*@natmap\[1\]|@natmap\[1\].*section started`).MatchString(log[i:]) {
				return fmt.Errorf("the daemon did not start @natmap[1] again after the click:\n%s", log[max(i, 0):])
			}
			return nil
		},
		"stop-daemon": func() error {
			l.Sh("/etc/init.d/natmap stop")
			l.WaitSh(30*time.Second, "! ubus call natmap status | grep -q mappings")
			return nil
		},
		// The plugin gone, as before rpcd has loaded it.
		"remove-object": func() error {
			l.Sh("mv /usr/libexec/rpcd/natmap /root/natmap.rpcd && killall -HUP rpcd")
			l.WaitSh(30*time.Second, "! ubus list natmap")
			return nil
		},
		"restore": func() error {
			l.Sh("mv /root/natmap.rpcd /usr/libexec/rpcd/natmap && killall -HUP rpcd && /etc/init.d/natmap start")
			l.WaitSh(60*time.Second, `ubus call natmap status | grep -q '"state": "mapped"'`)
			return nil
		},
		"chinese": func() error {
			l.Sh("uci set luci.main.lang=zh_cn && uci commit luci")
			return nil
		},
	}

	start := time.Now()
	if err := runBrowser(t, l, browserDir, string(cfg), steps); err != nil {
		log := l.Log()
		t.Errorf("%v\nscreenshots in %s\nthe lab's log, last lines:\n%s", err, abs, log[max(0, len(log)-4000):])
	}
	t.Logf("LuCI %s in Chromium: %s (screenshots in %s)", luci, time.Since(start).Round(time.Second), abs)
}

// runBrowser runs test/browser.js and answers its host steps.
func runBrowser(t *testing.T, l *owlab.Lab, browserDir, cfg string, steps map[string]func() error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", browserScript, cfg)
	cmd.Env = append(l.Env(), "OPENWRT_LAB_BROWSER_DIR="+browserDir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	// A step that fails the test (l.Sh) ends this goroutine: the deferred
	// cancel then kills node.
	var stepErr error
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "STEP ")
		if !ok {
			t.Logf("browser.js: %s", sc.Text())
			continue
		}
		var st struct{ Step string }
		if err := json.Unmarshal([]byte(line), &st); err != nil {
			stepErr = fmt.Errorf("browser.js: %q: %v", line, err)
			break
		}
		f := steps[st.Step]
		if f == nil {
			stepErr = fmt.Errorf("browser.js asks for step %q, which this test does not know", st.Step)
			break
		}
		if err := f(); err != nil {
			stepErr = fmt.Errorf("step %s: %w", st.Step, err)
			fmt.Fprintf(stdin, "ERR %s\n", strings.ReplaceAll(err.Error(), "\n", " | "))
			continue
		}
		fmt.Fprintln(stdin, "OK")
	}
	stdin.Close()
	err = cmd.Wait()
	if stepErr != nil {
		return fmt.Errorf("%w\nbrowser.js:\n%s", stepErr, stderr.String())
	}
	if err != nil {
		return fmt.Errorf("browser.js: %v\n%s", err, stderr.String())
	}
	return nil
}
