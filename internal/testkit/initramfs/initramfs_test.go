package initramfs

import (
	"bytes"
	"io/fs"
	"os/exec"
	"strings"
	"testing"

	"github.com/natmap-go/natmap/internal/testkit/testgate"
)

// TestBusyboxReadsIt lists an archive with busybox's cpio, an independent
// reader of the newc format.
func TestBusyboxReadsIt(t *testing.T) {
	testgate.Require(t, "initramfs", false, map[string]string{"busybox": "busybox"})
	var b bytes.Buffer
	err := Write(&b, []Entry{
		Dir("dev"),
		CharDev("dev/console", 0o600, 5, 1),
		Dir("bin"),
		File("bin/init", 0o755, []byte("#!/bin/sh\necho odd length\n")),
		File("/etc", 0o644, []byte("abc")),
		Symlink("notify", "/bin/init"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if b.Len()%4 != 0 {
		t.Errorf("archive is %d bytes, not a multiple of 4", b.Len())
	}
	cmd := exec.Command("busybox", "cpio", "-tv")
	cmd.Stdin = &b
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("busybox cpio -tv: %v\n%s", err, out)
	}
	var got []string
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		got = append(got, f[0]+" "+strings.Join(f[len(f)-1-strings.Count(line, "->")*2:], " "))
	}
	want := []string{
		"drwxr-xr-x dev",
		"crw------- dev/console",
		"drwxr-xr-x bin",
		"-rwxr-xr-x bin/init",
		"-rw-r--r-- etc",
		"lrwxrwxrwx notify -> /bin/init",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("busybox lists\n%s\nwant\n%s\n(raw:\n%s)", strings.Join(got, "\n"), strings.Join(want, "\n"), out)
	}
}

func TestUnsupportedMode(t *testing.T) {
	var b bytes.Buffer
	if err := Write(&b, []Entry{{Name: "fifo", Mode: fs.ModeNamedPipe}}); err == nil {
		t.Error("a named pipe was written")
	}
}
