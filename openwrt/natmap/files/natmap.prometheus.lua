-- natmap's collector for prometheus-node-exporter-lua: the mappings of
-- `ubus call natmap status`, one series per section. Installed with natmap;
-- the exporter loads it from /usr/lib/lua/prometheus-collectors/ when it
-- is installed, and nothing uses it otherwise.
local ubus = require "ubus"

local states = { "starting", "mapped", "retrying", "error", "disabled" }

local function scrape()
	local conn = ubus.connect()
	if not conn then
		error("natmap: cannot connect to ubus")
	end
	local status = conn:call("natmap", "status", {})
	conn:close()
	if type(status) ~= "table" or type(status.mappings) ~= "table" then
		error("natmap: no status (is natmap running?)")
	end

	local state = metric("natmap_mapping_state", "gauge")
	local port = metric("natmap_mapping_public_port", "gauge")
	local info = metric("natmap_mapping_info", "gauge")
	local changed = metric("natmap_mapping_last_change_seconds", "gauge")
	local sessions = metric("natmap_sessions_total", "counter")
	local failures = metric("natmap_session_failures_total", "counter")
	local changes = metric("natmap_address_changes_total", "counter")
	local relay_active = metric("natmap_relay_active", "gauge")
	local relay_total = metric("natmap_relay_connections_total", "counter")
	local relay_bytes = metric("natmap_relay_bytes_total", "counter")

	for _, m in ipairs(status.mappings) do
		local l = { section = m.section, protocol = m.protocol, mode = m.mode }
		for _, s in ipairs(states) do
			state({ section = m.section, protocol = m.protocol, mode = m.mode, state = s }, m.state == s and 1 or 0)
		end
		if m.public_port and m.public_port > 0 then
			port(l, m.public_port)
			info({ section = m.section, protocol = m.protocol, public_ip = m.public_ip,
				public_port = tostring(m.public_port), ip4p = m.ip4p or "" }, 1)
		end
		if m.last_change and m.last_change > 0 then
			changed(l, m.last_change)
		end
		if m.metrics then
			sessions(l, m.metrics.sessions)
			failures(l, m.metrics.failures)
			changes(l, m.metrics.address_changes)
		end
		if m.relay then
			relay_active(l, m.relay.active)
			relay_total(l, m.relay.total)
			relay_bytes({ section = m.section, protocol = m.protocol, mode = m.mode, direction = "up" }, m.relay.bytes_up)
			relay_bytes({ section = m.section, protocol = m.protocol, mode = m.mode, direction = "down" }, m.relay.bytes_down)
		end
	end
end

return { scrape = scrape }
