// Package procfs reads the "name: value" lines of /proc files
// (/proc/PID/status, smaps_rollup, meminfo...), for the memory benchmarks
// on this machine and in the MIPS VM.
package procfs

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Field is the value, trimmed, of the first "name: value" line of the
// file at path.
func Field(path, name string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return "", fmt.Errorf("%s has no %s", path, name)
}

// KiB is field name of /proc/pid/file ("status", "smaps_rollup"), a
// number of KiB ("1234 kB") or a count ("Threads: 7").
func KiB(pid int, file, name string) (float64, error) {
	path := fmt.Sprintf("/proc/%d/%s", pid, file)
	v, err := Field(path, name)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseFloat(strings.TrimSuffix(v, " kB"), 64)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", path, name, err)
	}
	return n, nil
}
