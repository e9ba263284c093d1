package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// ResolveInterface resolves a section's interface as the stock package's
// init script does (network_get_device, else the name itself): a logical
// network known to netifd (ubus network.interface.NAME) gives its L3
// device; otherwise the name must be a device that exists.
func ResolveInterface(ctx context.Context, name string) (string, error) {
	if dev, err := ubusDevice(ctx, name); err == nil && dev != "" {
		return dev, nil
	}
	if _, err := os.Stat(filepath.Join("/sys/class/net", filepath.Base(name))); err == nil {
		return name, nil
	}
	return "", fmt.Errorf("%q is neither an up network (netifd) nor a device", name)
}

func ubusDevice(ctx context.Context, network string) (string, error) {
	ubus, err := exec.LookPath("ubus")
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, ubus, "call", "network.interface."+network, "status").Output()
	if err != nil {
		return "", err
	}
	var st struct {
		Up       bool   `json:"up"`
		L3Device string `json:"l3_device"`
		Device   string `json:"device"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return "", err
	}
	if st.L3Device != "" {
		return st.L3Device, nil
	}
	if st.Device != "" {
		return st.Device, nil
	}
	return "", errors.New("network has no device")
}
