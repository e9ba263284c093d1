package daemon

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/natmap-go/natmap/internal/ip4p"
	"github.com/natmap-go/natmap/internal/notify"
	"github.com/natmap-go/natmap/internal/uciconf"
)

// statusFile is a section's mapping as OpenWrt's stock natmap package
// publishes it for scripts and tools: DIR/ID.json with the keys of its
// wrapper (ip, port, inner_port, protocol), plus section, comment and ip4p.
// The stock package names the file after the pid of the section's natmap
// process; one daemon runs every section here, so the name is the
// section's: its UCI name, or for an anonymous section the cfgNNHHHH name
// libuci gives it (the stock package's procd instance name).
type statusFile struct {
	path string // "": none
	sec  uciconf.Section
}

// fileStatus is the JSON, keys in the stock package's order.
type fileStatus struct {
	IP        string `json:"ip"`
	Port      int    `json:"port"`
	InnerPort int    `json:"inner_port"`
	Protocol  string `json:"protocol"`
	Section   string `json:"section"`
	Comment   string `json:"comment"`
	IP4P      string `json:"ip4p"`
}

func newStatusFile(dir string, sec uciconf.Section) statusFile {
	id := sec.ID
	if dir == "" || id == "" || strings.ContainsAny(id, "/\x00") || strings.HasPrefix(id, ".") {
		return statusFile{}
	}
	return statusFile{path: filepath.Join(dir, id+".json"), sec: sec}
}

// write replaces the file at once (a temporary file renamed over it), so
// a reader sees the old mapping or the new one, never a part.
func (f statusFile) write(m notify.Mapping) error {
	if f.path == "" {
		return nil
	}
	b, err := json.Marshal(fileStatus{
		IP:        m.Public.Addr().Unmap().String(),
		Port:      int(m.Public.Port()),
		InnerPort: int(m.Private.Port()),
		Protocol:  m.Protocol,
		Section:   f.sec.Ref,
		Comment:   f.sec.Comment,
		IP4P:      ip4p.Format(m.Public),
	})
	if err != nil {
		return err
	}
	dir := filepath.Dir(f.path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(f.path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a failure; gone after the rename
	_, err = tmp.Write(append(b, '\n'))
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), f.path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", f.path, err)
	}
	return nil
}

func (f statusFile) remove() {
	if f.path != "" {
		os.Remove(f.path)
	}
}

// clearStatusFiles removes what a daemon that did not exit cleanly left
// (the stock init script clears the directory at start too).
func clearStatusFiles(dir string) {
	if dir == "" {
		return
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	for _, n := range names {
		os.Remove(n)
	}
}
