package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// parseFlags parses a subcommand's options. On a mistake it prints one line
// in natmap's words (not the flag package's) and then usage, as the classic
// command line does, and returns false; -h and --help print usage alone.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer, usage func()) bool {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {} // the flag package calls it on every error
	err := fs.Parse(args)
	if err == nil {
		return true
	}
	if !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stderr, "%s: %s\n", fs.Name(), flagMessage(err.Error(), args))
	}
	usage()
	return false
}

// flagMessage rewords the flag package's error msg; args are the parsed
// arguments, to name an unknown option as it was written (-x or --x).
func flagMessage(msg string, args []string) string {
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		spelled := "-" + name
		for _, a := range args {
			if a == "--"+name || strings.HasPrefix(a, "--"+name+"=") {
				spelled = "--" + name
				break
			}
		}
		return "unknown option " + spelled
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: "); ok {
		return "option " + name + " needs a value"
	}
	// invalid value "v" for flag -name: why / invalid boolean value "v" for -name: why
	for _, p := range []string{"invalid value ", "invalid boolean value "} {
		rest, ok := strings.CutPrefix(msg, p)
		if !ok {
			continue
		}
		val, rest, ok1 := strings.Cut(rest, " for ")
		name, why, ok2 := strings.Cut(strings.TrimPrefix(rest, "flag "), ": ")
		if ok1 && ok2 && strings.Contains(why, val) {
			return name + ": " + why
		}
		if ok1 && ok2 {
			return fmt.Sprintf("%s: %s: %s", name, val, why)
		}
	}
	return msg
}

// wantArgs checks that fs has from lo to hi arguments left after its
// options, else says what is wrong, prints usage and returns false.
func wantArgs(fs *flag.FlagSet, lo, hi int, stderr io.Writer, usage func()) bool {
	n := fs.NArg()
	switch {
	case n > hi:
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(hi))
	case n < lo:
		fmt.Fprintf(stderr, "%s: missing argument\n", fs.Name())
	default:
		return true
	}
	usage()
	return false
}
