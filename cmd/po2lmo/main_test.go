package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	po := filepath.Join(dir, "x.po")
	lmo := filepath.Join(dir, "x.zh-cn.lmo")
	os.WriteFile(po, []byte("msgid \"\"\nmsgstr \"Plural-Forms: nplurals=1; plural=0;\\n\"\n\nmsgid \"Enable\"\nmsgstr \"启用\"\n"), 0o644)

	var out, errb bytes.Buffer
	if rc := run([]string{po, lmo}, &out, &errb); rc != 0 {
		t.Fatalf("compile: rc %d, %s", rc, errb.String())
	}
	if rc := run([]string{"-d", lmo}, &out, &errb); rc != 0 {
		t.Fatalf("dump: rc %d, %s", rc, errb.String())
	}
	want := "00000000 0 \"nplurals=1; plural=0;\"\n78c2105b 1 \"启用\"\n"
	if out.String() != want {
		t.Errorf("dump:\n%s\nwant:\n%s", out.String(), want)
	}

	// Nothing translated: no file, like LuCI's po2lmo, and no failure.
	os.WriteFile(po, []byte("msgid \"Enable\"\nmsgstr \"\"\n"), 0o644)
	empty := filepath.Join(dir, "empty.lmo")
	errb.Reset()
	if rc := run([]string{po, empty}, &out, &errb); rc != 0 || !strings.Contains(errb.String(), "not written") {
		t.Fatalf("empty catalog: rc %d, %q", rc, errb.String())
	}
	if _, err := os.Stat(empty); !os.IsNotExist(err) {
		t.Errorf("empty catalog wrote %s", empty)
	}

	// A broken .po is an error naming the line.
	os.WriteFile(po, []byte("msgid \"a\"\nmsgbogus \"x\"\n"), 0o644)
	errb.Reset()
	if rc := run([]string{po, lmo}, &out, &errb); rc != 1 || !strings.Contains(errb.String(), "line 2") {
		t.Errorf("bad po: rc %d, %q", rc, errb.String())
	}
	if rc := run(nil, &out, &errb); rc != 2 {
		t.Errorf("no arguments: rc %d, want 2", rc)
	}
}
