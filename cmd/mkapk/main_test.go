package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestRun(t *testing.T) {
	var errb bytes.Buffer
	for _, v := range []string{"1.2.3-r1", "20261126~d5ca06b-r1", "1.2_git3~abcdef1-r1", "1.0b_rc2_p1"} {
		if rc := run([]string{"--check-version", v}, &errb); rc != 0 {
			t.Errorf("%s refused: %s", v, errb.String())
		}
	}
	for _, v := range []string{"20261126~d5ca06b.dirty-r1", "1.2+git3.abcdef1-r1", "v1.2", "1.2~rc1", "1.2-1"} {
		if rc := run([]string{"--check-version", v}, &errb); rc == 0 {
			t.Errorf("%s accepted", v)
		}
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "root/usr/bin"), 0o755)
	os.WriteFile(filepath.Join(dir, "root/usr/bin/x"), []byte("x"), 0o755)
	out := filepath.Join(dir, "x.apk")
	base := []string{"--info", "name:x", "--info", "arch:noarch", "--files", filepath.Join(dir, "root"), "--output", out}
	if rc := run(append([]string{"--info", "version:1-r1"}, base...), &errb); rc != 0 {
		t.Fatalf("rc %d: %s", rc, errb.String())
	}
	if b, err := os.ReadFile(out); err != nil || !bytes.HasPrefix(b, []byte("ADBd")) {
		t.Errorf("output %q... %v", b[:min(len(b), 4)], err)
	}
	for _, args := range [][]string{
		append([]string{"--info", "version:1.dirty"}, base...),
		append([]string{"--info", "version:1", "--info", "depends:a>=1"}, base...),
		append([]string{"--info", "version:1", "--script", "post-install"}, base...),
		{"--info", "name:x"},
	} {
		if rc := run(args, &errb); rc == 0 {
			t.Errorf("%q accepted", args)
		}
	}
}
