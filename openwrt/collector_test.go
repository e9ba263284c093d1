package openwrt_test

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/natmap-go/natmap/internal/ctl"
	"github.com/natmap-go/natmap/internal/mapping"
	"github.com/natmap-go/natmap/internal/testkit/testgate"
)

const collector = filesDir + "/natmap.prometheus.lua"

// collectorHarness stands in for prometheus-node-exporter-lua around the
// collector: its metric() (a function per metric that prints one sample
// line, labels sorted) and a ubus module answering natmap status with the
// JSON in arg[2], decoded by lua-cjson as the real ubus binding would hand
// over a table.
const collectorHarness = `
local cjson = require "cjson"
local f = assert(io.open(arg[2]))
local status = cjson.decode(f:read("*a"))
f:close()
if status == cjson.null then status = nil end -- ubus's answer when natmap is not there
package.preload["ubus"] = function()
	return { connect = function()
		return { call = function(_, obj, method, args)
			assert(obj == "natmap" and method == "status" and type(args) == "table")
			return status
		end, close = function() end }
	end }
end
local typed = {}
function metric(name, mtype)
	if not typed[name] then print("# TYPE " .. name .. " " .. mtype); typed[name] = true end
	return function(labels, value)
		local keys, parts = {}, {}
		for k in pairs(labels) do keys[#keys + 1] = k end
		table.sort(keys)
		for _, k in ipairs(keys) do parts[#parts + 1] = k .. '="' .. tostring(labels[k]) .. '"' end
		print(name .. "{" .. table.concat(parts, ",") .. "} " .. tostring(value))
	end
end
dofile(arg[1]).scrape()
`

func TestPrometheusCollector(t *testing.T) {
	testgate.Require(t, "prometheus collector", false, map[string]string{"lua5.1": "lua5.1"})
	if exec.Command("lua5.1", "-e", `require "cjson"`).Run() != nil {
		testgate.Unmet(t, "prometheus collector: lua5.1 cannot load cjson (Debian package lua-cjson)")
	}
	status := ctl.Response{OK: true, Mappings: []ctl.MappingStatus{
		{Section: "web", Protocol: "tcp", Mode: "forward", State: mapping.Mapped, PublicIP: "203.0.113.7", PublicPort: 4000,
			IP4P: "2001::fa0:0:cb00:7107", LastChange: 1700000000,
			Metrics: &ctl.Metrics{Sessions: 3, Failures: 2, AddressChanges: 1},
			Relay:   &ctl.RelayStats{Active: 1, Total: 9, BytesUp: 100, BytesDown: 2000}},
		{Section: "bad", Protocol: "udp", Mode: "bind", State: mapping.Error, LastError: "option port: bad"},
	}}
	b, err := json.Marshal(status)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "status.json"), string(b), 0o644)
	writeFile(t, filepath.Join(dir, "harness.lua"), collectorHarness, 0o644)
	out, stderr, code := run(t, nil, "", "lua5.1", filepath.Join(dir, "harness.lua"), collector, filepath.Join(dir, "status.json"))
	if code != 0 {
		t.Fatalf("collector: exit %d\n%s", code, stderr)
	}
	for _, want := range []string{
		"# TYPE natmap_mapping_state gauge",
		`natmap_mapping_state{mode="forward",protocol="tcp",section="web",state="mapped"} 1`,
		`natmap_mapping_state{mode="forward",protocol="tcp",section="web",state="retrying"} 0`,
		`natmap_mapping_state{mode="bind",protocol="udp",section="bad",state="error"} 1`,
		`natmap_mapping_public_port{mode="forward",protocol="tcp",section="web"} 4000`,
		`natmap_mapping_info{ip4p="2001::fa0:0:cb00:7107",protocol="tcp",public_ip="203.0.113.7",public_port="4000",section="web"} 1`,
		`natmap_mapping_last_change_seconds{mode="forward",protocol="tcp",section="web"} 1700000000`,
		"# TYPE natmap_sessions_total counter",
		`natmap_sessions_total{mode="forward",protocol="tcp",section="web"} 3`,
		`natmap_session_failures_total{mode="forward",protocol="tcp",section="web"} 2`,
		`natmap_address_changes_total{mode="forward",protocol="tcp",section="web"} 1`,
		`natmap_relay_active{mode="forward",protocol="tcp",section="web"} 1`,
		`natmap_relay_connections_total{mode="forward",protocol="tcp",section="web"} 9`,
		`natmap_relay_bytes_total{direction="down",mode="forward",protocol="tcp",section="web"} 2000`,
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("no %s in:\n%s", want, out)
		}
	}
	if strings.Contains(out, `natmap_mapping_public_port{mode="bind",protocol="udp",section="bad"}`) {
		t.Errorf("a section without an address has a port:\n%s", out)
	}

	// No daemon: the exporter reports the collector's error, not garbage.
	writeFile(t, filepath.Join(dir, "status.json"), "null", 0o644)
	if _, stderr, code := run(t, nil, "", "lua5.1", filepath.Join(dir, "harness.lua"), collector, filepath.Join(dir, "status.json")); code == 0 || !strings.Contains(stderr, "natmap: no status") {
		t.Errorf("without status: exit %d, %s", code, stderr)
	}
}
