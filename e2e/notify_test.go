package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/testkit/lab"
	"github.com/natmap-go/natmap/internal/testkit/wait"
)

// A stock-package user's script: "-e notify.sh" (in the current directory,
// no #! line) that hangs on the first mapping. Each time the NAT forgets its
// mappings while a script still reports the older address, natmap ends that
// script, with what it started (a setsid child), and runs the script for the
// new address at once, not after the 60 s kill; every address is reported.
func TestNewerMappingEndsHungScript(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConeTranslate)
	const port = 40091
	greeting := serve(t, l, port)
	dir := t.TempDir()
	// Every run records its arguments; all but the last hang, after
	// starting a child in a session of its own.
	body := `printf '%s|' "$@" >> notes; echo >> notes
runs=$(wc -l < notes)
if [ "$runs" -lt 3 ]; then
	setsid sh -c 'echo $$ > child'$runs'; exec sleep 1000' &
	sleep 1000
fi
`
	if err := os.WriteFile(filepath.Join(dir, "notify.sh"), []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	nm := runIn(t, l, l.LAN, dir, filepath.Join(dir, "notes"), natmapBin, bindArgs(l, port, "-e", "notify.sh")...)

	prev := nm.waitNotification(1, 15*time.Second)
	mustReach(t, l, prev.Public(), greeting)
	for i := 1; i <= 2; i++ {
		child := waitPid(t, filepath.Join(dir, "child"+strconv.Itoa(i)))
		if err := l.ForgetMappings(); err != nil {
			t.Fatal(err)
		}
		forgot := time.Now()
		next := nm.waitNotification(i+1, 20*time.Second)
		t.Logf("mapping %s -> %s: script run %v after the NAT forgot", prev.Public(), next.Public(), time.Since(forgot).Round(time.Millisecond))
		if next.Public() == prev.Public() {
			t.Fatalf("same mapping %s notified again", next.Public())
		}
		wait.For(t, 10*time.Second, fmt.Sprintf("pid %d, started by the stale script, to end", child), func() bool { return !processAlive(child) })
		mustReach(t, l, next.Public(), greeting)
		prev = next
	}
	nm.waitLog("a newer mapping arrived", 5*time.Second)
}

// waitPid reads the pid a script wrote to path.
func waitPid(t *testing.T, path string) int {
	t.Helper()
	var pid int
	wait.For(t, 15*time.Second, "a pid in "+path, func() bool {
		b, _ := os.ReadFile(path)
		var err error
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	return pid
}

// processAlive says whether pid runs (a zombie does not).
func processAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || !strings.HasPrefix(string(b[i+1:]), " Z")
}

// A stock-package user's tools read /var/run/natmap/*.json: the daemon
// writes one per mapped section (named after the section; libuci's cfgNNHHHH
// name for an anonymous one), replaces it when the mapping changes, and
// removes it when the section goes or the daemon stops. A missing notify
// script does not stop its mapping; the status says what is wrong.
func TestDaemonStockStatusFiles(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConeTranslate)
	run := filepath.Join(t.TempDir(), "run")
	withGone := daemonGlobal + `
config natmap 'ssh'
	option enable '1'
	option comment 'my ssh'
	option port '40060'
	option notify_script 'NOTIFY'

config natmap
	option enable '1'
	option udp_mode '1'
	option port '40061'
	option notify_script '/nonexistent/notify.sh'

config natmap 'gone'
	option enable '1'
	option port '40062'
	option notify_script 'NOTIFY'
`
	d := startDaemon(t, l, withGone, "--firewall=false", "--status-dir", run)
	ssh := d.waitSection("ssh", 1, 15*time.Second)
	d.waitSection("gone", 1, 15*time.Second)

	got := readStatusFile(t, filepath.Join(run, "ssh.json"))
	want := map[string]any{
		"ip": ssh.PublicIP, "port": json.Number(ssh.PublicPort), "inner_port": json.Number(ssh.PrivatePort),
		"protocol": "tcp", "section": "ssh", "comment": "my ssh", "ip4p": ssh.IP4P,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("ssh.json: %v, want %v", got, want)
	}

	// The anonymous UDP section maps without its script.
	var anon map[string]any
	wait.For(t, 15*time.Second, "the anonymous section's file", func() bool {
		names, _ := filepath.Glob(filepath.Join(run, "cfg*.json"))
		if len(names) != 1 {
			return false
		}
		anon = readStatusFile(t, names[0])
		return true
	})
	if anon["section"] != "@natmap[1]" || anon["protocol"] != "udp" || anon["inner_port"] != json.Number("40061") {
		t.Errorf("anonymous section's file: %v", anon)
	}
	st := d.status(t)["@natmap[1]"]
	if st.State != "mapped" || !strings.Contains(st.ScriptError, "/nonexistent/notify.sh") {
		t.Errorf("status of the section without its script: %+v", st)
	}
	d.waitLog("notify script cannot run", time.Second)

	// Removing a section removes its file.
	script := filepath.Join(filepath.Dir(d.notes), "notify.sh")
	d.writeConfig(t, strings.ReplaceAll(withGone[:strings.Index(withGone, "config natmap 'gone'")], "NOTIFY", script))
	if out, err := d.cli("reload"); err != nil {
		t.Fatalf("reload: %v %s", err, out)
	}
	wait.For(t, 10*time.Second, "gone.json removed", func() bool {
		_, err := os.Stat(filepath.Join(run, "gone.json"))
		return os.IsNotExist(err)
	})

	d.stop()
	if left, _ := os.ReadDir(run); len(left) != 0 {
		t.Fatalf("after the daemon stopped, %s holds %v", run, left)
	}
}

func readStatusFile(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("%s: %v\n%s", path, err, b)
	}
	return m
}

// natmap runs on one processor from its start, and so does the notify-exec
// helper it starts for each script: GOMAXPROCS=1 in the helper's
// environment, with internal/oneproc's mark. The script sees the
// environment natmap was given: no GOMAXPROCS, unless the user set one.
func TestScriptEnvironment(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.FullConeTranslate)
	for i, user := range []string{"", "3"} {
		dir := t.TempDir()
		body := `env > script.env
tr '\0' '\n' < /proc/$PPID/environ > helper.env
printf '%s|' "$@" >> notes; echo >> notes
`
		if err := os.WriteFile(filepath.Join(dir, "notify.sh"), []byte("#!/bin/sh\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
		args := bindArgs(l, 40095+uint16(i), "-e", "./notify.sh")
		bin := natmapBin
		if user != "" {
			args = append([]string{"GOMAXPROCS=" + user, natmapBin}, args...)
			bin = "env"
		}
		nm := runIn(t, l, l.LAN, dir, filepath.Join(dir, "notes"), bin, args...)
		nm.waitNotification(1, 15*time.Second)
		nm.stop()
		envOf := func(name string) map[string]string {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			m := map[string]string{}
			for line := range strings.Lines(string(b)) {
				if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
					m[k] = v
				}
			}
			return m
		}
		script, helper := envOf("script.env"), envOf("helper.env")
		if user == "" {
			if helper["GOMAXPROCS"] != "1" || helper["NATMAP_ONE_PROC"] != "1" {
				t.Errorf("the helper started with GOMAXPROCS=%q NATMAP_ONE_PROC=%q, want 1 and 1", helper["GOMAXPROCS"], helper["NATMAP_ONE_PROC"])
			}
		} else if helper["GOMAXPROCS"] != user || helper["NATMAP_ONE_PROC"] != "" {
			t.Errorf("natmap given GOMAXPROCS=%s: the helper started with GOMAXPROCS=%q NATMAP_ONE_PROC=%q", user, helper["GOMAXPROCS"], helper["NATMAP_ONE_PROC"])
		}
		if got, ok := script["GOMAXPROCS"]; got != user || (user == "" && ok) {
			t.Errorf("natmap given GOMAXPROCS=%q: the script sees GOMAXPROCS=%q (set: %v)", user, got, ok)
		}
		if _, ok := script["NATMAP_ONE_PROC"]; ok {
			t.Error("the script sees NATMAP_ONE_PROC")
		}
	}
}
