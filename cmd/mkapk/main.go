// Command mkapk writes an unsigned apk v3 package (OpenWrt 25's format) from
// a directory, taking the arguments OpenWrt's build hands `apk mkpkg`, so
// packages can be built without apk-tools (see internal/pkgtools/apk):
//
//	mkapk --info name:NAME --info version:VERSION [--info KEY:VALUE...]
//	      [--script TYPE:FILE...] --files DIR --output FILE.apk
//
// Info keys: name, version, description, arch, license, origin,
// maintainer, url, depends and provides (space-separated package names).
// Script types: pre-install, post-install, pre-deinstall, post-deinstall,
// pre-upgrade, post-upgrade. Every file's mtime is SOURCE_DATE_EPOCH (0
// when unset) and its owner root:root; the output is compressed as apk
// mkpkg's is (--no-compress: not).
//
//	mkapk --check-version VERSION   exit 0 if VERSION is an apk version
package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/natmap-go/natmap/internal/pkgtools/apk"
)

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

const usage = `usage: mkapk --info name:NAME --info version:VERSION [--info KEY:VALUE...]
             [--script TYPE:FILE...] [--no-compress] --files DIR --output FILE
       mkapk --check-version VERSION`

func run(args []string, stderr io.Writer) int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "mkapk: "+format+"\n", a...)
		return 1
	}
	if len(args) == 2 && args[0] == "--check-version" {
		if !apk.ValidVersion(args[1]) {
			return fail("%q is not an apk version", args[1])
		}
		return 0
	}
	p := &apk.Package{Scripts: map[string][]byte{}, Compress: true}
	var output string
	seen := map[string]bool{}
	for i := 0; i < len(args); i++ {
		opt := args[i]
		if opt == "--no-compress" {
			p.Compress = false
			continue
		}
		if i+1 >= len(args) {
			fmt.Fprintln(stderr, usage)
			return 2
		}
		arg := args[i+1]
		i++
		switch opt {
		case "--info", "-I":
			k, v, ok := strings.Cut(arg, ":")
			if !ok {
				return fail("--info %q: want KEY:VALUE", arg)
			}
			if seen[k] {
				return fail("info %s given twice", k)
			}
			seen[k] = true
			switch k {
			case "name":
				p.Name = v
			case "version":
				p.Version = v
			case "description":
				p.Description = v
			case "arch":
				p.Arch = v
			case "license":
				p.License = v
			case "origin":
				p.Origin = v
			case "maintainer":
				p.Maintainer = v
			case "url":
				p.URL = v
			case "depends":
				p.Depends = strings.Fields(v)
			case "provides":
				p.Provides = strings.Fields(v)
			default:
				return fail("unsupported info field %q", k)
			}
		case "--script", "-s":
			k, path, ok := strings.Cut(arg, ":")
			if !ok {
				return fail("--script %q: want TYPE:FILE", arg)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return fail("%v", err)
			}
			p.Scripts[k] = b
		case "--files", "-F":
			p.Root = arg
		case "--output", "-o":
			output = arg
		default:
			fmt.Fprintln(stderr, usage)
			return 2
		}
	}
	if p.Name == "" || p.Version == "" || p.Root == "" || output == "" {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	if p.Arch == "" {
		return fail("no arch (--info arch:ARCH)")
	}
	if e := os.Getenv("SOURCE_DATE_EPOCH"); e != "" {
		t, err := strconv.ParseUint(e, 10, 64)
		if err != nil {
			return fail("SOURCE_DATE_EPOCH=%q is not a number", e)
		}
		p.MTime = t
	}
	var buf bytes.Buffer
	if err := apk.Write(&buf, p); err != nil {
		return fail("%v", err)
	}
	if err := os.WriteFile(output, buf.Bytes(), 0o644); err != nil {
		return fail("%v", err)
	}
	return 0
}
