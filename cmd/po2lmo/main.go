// Command po2lmo compiles a gettext .po file into LuCI's .lmo format, as
// LuCI's own po2lmo does (see internal/pkgtools/po2lmo for the format and the few
// differences).
//
//	po2lmo input.po output.lmo   compile; no output file when nothing is translated
//	po2lmo -d file.lmo           list an .lmo file's entries
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/natmap-go/natmap/internal/pkgtools/po2lmo"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) == 2 && args[0] == "-d":
		b, err := os.ReadFile(args[1])
		if err == nil {
			err = dump(b, stdout)
		}
		if err != nil {
			fmt.Fprintln(stderr, "po2lmo:", err)
			return 1
		}
		return 0
	case len(args) == 2 && args[0] != "" && args[0][0] != '-':
		if err := compile(args[0], args[1]); err != nil {
			if errors.Is(err, po2lmo.ErrEmpty) {
				fmt.Fprintf(stderr, "po2lmo: %s: %v; %s not written\n", args[0], err, args[1])
				return 0
			}
			fmt.Fprintln(stderr, "po2lmo:", err)
			return 1
		}
		return 0
	}
	fmt.Fprintln(stderr, "usage: po2lmo input.po output.lmo\n       po2lmo -d file.lmo")
	return 2
}

func compile(in, out string) error {
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	cat, err := po2lmo.ParsePO(f)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	b, err := po2lmo.Compile(cat)
	if err != nil {
		return err
	}
	tmp := out + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}

func dump(b []byte, w io.Writer) error {
	a, err := po2lmo.Read(b)
	if err != nil {
		return err
	}
	for _, e := range a.Entries {
		fmt.Fprintf(w, "%08x %d %q\n", e.Key, e.Val, a.String(e))
	}
	return nil
}
