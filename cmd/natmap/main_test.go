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

// The subcommands speak as the classic command line does: one line naming
// the mistake, then the usage; never the flag package's own words.
func TestSubcommandUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"daemon", "--bogus"}, "natmap daemon: unknown option --bogus\n"},
		{[]string{"daemon", "-bogus=1"}, "natmap daemon: unknown option -bogus\n"},
		{[]string{"daemon", "--config"}, "natmap daemon: option -config needs a value\n"},
		{[]string{"daemon", "--watch=maybe"}, `natmap daemon: -watch: "maybe": parse error` + "\n"},
		{[]string{"daemon", "stray"}, `natmap daemon: unexpected argument "stray"` + "\n"},
		{[]string{"status", "-x"}, "natmap status: unknown option -x\n"},
		{[]string{"status", "a", "b"}, `natmap status: unexpected argument "b"` + "\n"},
		{[]string{"restart"}, "natmap restart: missing argument\n"},
		{[]string{"check", "--bogus"}, "natmap check: unknown option --bogus\n"},
		{[]string{"check", "-s", "a", "--timeout", "soon"}, `natmap check: -timeout: "soon": parse error` + "\n"},
		{[]string{"check", "-s", "a:0"}, `natmap check: -s: "a:0": `},
		{[]string{"check"}, "natmap check: a STUN server is required (-s)\n"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(tc.args, &stdout, &stderr)
		first, _, _ := strings.Cut(stderr.String(), "sage")
		if code != 2 || !strings.HasPrefix(stderr.String(), tc.want) || strings.Contains(stderr.String(), "flag") ||
			!strings.Contains(first, "\n") || stdout.Len() != 0 {
			t.Errorf("natmap %q: exit %d, stderr %q; want exit 2, %q first, then the usage", tc.args, code, stderr.String(), tc.want)
		}
	}
}

// The natmap that -d started knows it, and its notify scripts do not see
// the mark.
func TestDetachedTakesOutItsMark(t *testing.T) {
	t.Setenv(daemonEnv, "")
	if detached() {
		t.Fatal("detached() without the mark")
	}
	t.Setenv(daemonEnv, "1")
	if !detached() {
		t.Fatal("not detached() with the mark")
	}
	if _, ok := os.LookupEnv(daemonEnv); ok {
		t.Fatalf("%s is still in the environment", daemonEnv)
	}
}
