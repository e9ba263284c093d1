package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "script")
	os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "a STUN server is required (-s)"},
		{[]string{"-s", "stun"}, "needs a keep-alive HTTP server (-h)"},
		{[]string{"-s", "stun", "-h", "web", "-k", "x"}, `-k: "x" is not a whole number`},
		{[]string{"-s", "stun", "-h", "web", "-z"}, "unknown option -z"},
		{[]string{"-s", "stun", "-h", "web", "-e", filepath.Join(dir, "missing")}, "-e: stat"},
		{[]string{"-s", "stun", "-h", "web", "-e", notExec}, "is not an executable file"},
		{[]string{"-s", "stun", "-h", "web", "-e", dir}, "is not an executable file"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(tc.args, &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), tc.want) || !strings.Contains(stderr.String(), "Usage:") || stdout.Len() != 0 {
			t.Errorf("natmap %q: exit %d, stderr %q; want exit 2, %q and the usage on stderr", tc.args, code, stderr.String(), tc.want)
		}
	}
}

func TestHelpAndVersion(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--help"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "-b                  port number range") {
		t.Fatalf("--help: exit %d, %q", code, stdout.String())
	}
	stdout.Reset()
	if code := run([]string{"--version"}, &stdout, &stderr); code != 0 || !strings.HasPrefix(stdout.String(), "natmap ") {
		t.Fatalf("--version: exit %d, %q", code, stdout.String())
	}
}
