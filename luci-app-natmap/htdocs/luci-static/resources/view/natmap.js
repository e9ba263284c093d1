'use strict';
'require view';
'require form';
'require poll';
'require ui';
'require uci';
'require network';
'require tools.widgets as widgets';
'require natmap.common as common';
'require natmap.status as status';
'require natmap.render as render';
'require natmap.check as check';
'require natmap.actions as actions';

/*
 * Services -> NATMap: the status summary, the NAT check, the mappings
 * (config natmap sections) in a table with their live state and a modal
 * editor with every option the daemon reads, the built-in updaters (config
 * updater) with their live results, and the global defaults (config
 * global). This file assembles the page and the form; the live status is
 * natmap/status.js (fetching, section names) and natmap/render.js (cells,
 * summary, history), the Restart and Reload buttons' work
 * natmap/actions.js, the NAT check natmap/check.js, the ubus methods
 * natmap/rpc.js, the validators and labels natmap/common.js.
 */

/* The address family chosen in the form for an option's section. */
function familyOf(option, sid) {
	return (typeof(option.section.formvalue) == 'function')
		? option.section.formvalue(sid, 'family') : null;
}

/* An option of the last config global section, the one the daemon uses. */
function globalValue(option) {
	const g = uci.sections('natmap', 'global'),
	      v = g.length ? g[g.length - 1][option] : null;

	return Array.isArray(v) ? v.join(', ') : (v || null);
}

/* Booleans as the daemon reads them (yes/on/true...), shown as 1/0. */
function loadBool(sid) {
	const v = form.Value.prototype.load.call(this, sid),
	      b = common.bool(v);

	return (b == null) ? v : (b ? '1' : '0');
}

function intervalPlaceholder(udp) {
	return globalValue('interval') || (udp ? '10' : '30');
}

/*
 * The interface: a logical network from the list, or typed in: a device
 * (pppoe-wan, eth0.2) or a local address, which widgets.NetworkSelect's
 * own 'uciname' check would refuse. Without the right to read the network
 * state (ACL group luci-base-network-status) the list is empty and the
 * field still takes a typed value.
 */
const IfaceSelect = widgets.NetworkSelect.extend({
	__name__: 'CBI.NATMapInterface',

	load(section_id) {
		return L.resolveDefault(network.getNetworks(), []).then((networks) => {
			this.networks = networks || [];
			return form.Value.prototype.load.call(this, section_id);
		});
	},

	renderWidget(section_id, option_index, cfgvalue) {
		const value = (cfgvalue != null) ? cfgvalue : '',
		      choices = { '': E('em', {}, [ _('any (the default route)') ]) };

		for (const net of this.networks)
			if (net.getName() != 'loopback')
				choices[net.getName()] = this.renderIfaceBadge(net);

		const widget = new ui.Dropdown(value, choices, {
			id: this.cbid(section_id),
			sort: true,
			optional: true,
			create: true,
			custom_placeholder: _('-- custom: device or local address --'),
			validate: (value) => this.validate(section_id, value),
			disabled: (this.readonly != null) ? this.readonly : this.map.readonly,
			display_items: 3,
			dropdown_items: 8
		});

		return widget.render();
	},

	textvalue(section_id) {
		return '%h'.format(this.cfgvalue(section_id) || '');
	}
});

/*
 * A secret (password, token, key): a password field that never shows the
 * saved value; left empty, the saved one is kept.
 */
function secretOption(section, name, title, description) {
	const o = section.option(form.Value, name, title, description);

	o.password = true;
	o.modalonly = true;
	o.load = () => '';
	o.write = function(section_id, value) {
		if (value)
			uci.set('natmap', section_id, name, value);
	};
	o.remove = () => {};
	o.renderWidget = function(section_id, ...rest) {
		this.placeholder = uci.get('natmap', section_id, name) ? _('(saved; empty keeps it)') : '';
		return form.Value.prototype.renderWidget.call(this, section_id, ...rest);
	};

	return o;
}

/* An updater option used by the given types only. */
function typed(o, types) {
	o.modalonly = true;
	for (const t of types)
		o.depends('type', t);
	return o;
}

/* A grid whose tab options live in the modal only, with a Restart button. */
const MappingGrid = form.GridSection.extend({
	taboption(...args) {
		const o = this.super('taboption', args);

		if (o.modalonly == null)
			o.modalonly = true;

		return o;
	},

	renderRowActions(section_id) {
		const td = this.super('renderRowActions', [ section_id ]),
		      box = td.lastElementChild || td;

		box.insertBefore(E('button', {
			'class': 'cbi-button cbi-button-action',
			'title': _('Restart this mapping now (a new session; the public port may change)'),
			'click': ui.createHandlerFn(actions, 'restart', section_id),
			'disabled': this.map.readonly || null
		}, [ _('Restart') ]), box.firstChild);

		return td;
	}
});

return view.extend({
	load() {
		return Promise.all([
			uci.load('natmap'),
			status.refresh()
		]);
	},

	render() {
		let m, s, g, o;

		/*
		 * The title and description are the page's, not the Map's: the
		 * Map redraws its own element after each save, and the status
		 * and NAT check go between the description and the mappings.
		 */
		m = new form.Map('natmap');

		s = m.section(MappingGrid, 'natmap', _('Port mappings'));
		s.anonymous = true;
		s.addremove = true;
		s.nodescriptions = true;
		s.addbtntitle = _('Add mapping');
		s.modaltitle = (section_id) => `${_('NATMap')} » ${uci.get('natmap', section_id, 'comment') || _('Port mapping')}`;

		s.tab('general', _('General Settings'));
		s.tab('servers', _('Servers'));
		s.tab('forward', _('Forward mode'));
		s.tab('advanced', _('Advanced Settings'));

		/* The table */

		o = s.option(form.Flag, 'enable', _('Enable'));
		o.editable = true;
		o.modalonly = false;
		o.rmempty = false;
		o.load = loadBool;

		o = s.option(form.Value, 'comment', _('Comment'));
		o.modalonly = false;
		o.textvalue = function(section_id) {
			const c = this.cfgvalue(section_id);
			return c ? '%h'.format(c) : E('em', {}, [ status.ref(section_id) || '-' ]);
		};

		o = s.option(form.ListValue, 'udp_mode', _('Protocol'));
		o.modalonly = false;
		o.value('0', _('TCP'));
		o.value('1', _('UDP'));
		o.default = '0';
		o.load = loadBool;
		/* A ListValue's table cell shows the value (0/1), not its label. */
		o.textvalue = function(section_id) {
			return (common.bool(this.cfgvalue(section_id)) === true) ? _('UDP') : _('TCP');
		};

		o = s.option(form.Value, 'port', _('Bind port'));
		o.modalonly = false;
		o.textvalue = function(section_id) {
			let p = this.cfgvalue(section_id);

			if (!p || p == '0')
				return E('em', {}, [ _('any') ]);

			if (/-/.test(p) && common.bool(uci.get('natmap', section_id, 'port_random')))
				p = p.replace('-', '~');

			return '%h'.format(p) + (/~/.test(p) ? ` (${_('random')})` : '');
		};

		o = s.option(form.DummyValue, '_public', _('Public address'));
		o.modalonly = false;
		o.textvalue = render.liveCell('public');

		o = s.option(form.DummyValue, '_state', _('State'));
		o.modalonly = false;
		o.textvalue = render.liveCell('state');

		o = s.option(form.DummyValue, '_traffic', _('Relay traffic'));
		o.modalonly = false;
		o.textvalue = render.liveCell('traffic');

		/* The editor: General */

		o = s.taboption('general', form.Flag, 'enable', _('Enable'));
		o.rmempty = false;
		o.load = loadBool;

		o = s.taboption('general', form.Value, 'comment', _('Comment'),
			_('A name for this mapping; the notify script gets it as its 8th argument.'));

		o = s.taboption('general', form.ListValue, 'udp_mode', _('Protocol'));
		o.value('0', _('TCP'));
		o.value('1', _('UDP'));
		o.default = '0';
		o.load = loadBool;
		o.onchange = function(ev, section_id, value) {
			const field = this.map.findElement('data-field', `cbid.natmap.${section_id}.interval`),
			      input = field ? field.querySelector('input') : null;

			if (input)
				input.placeholder = intervalPlaceholder(value == '1');
		};

		o = s.taboption('general', form.ListValue, 'family', _('Address family'),
			_('Which address to map. With IPv6, the notify script gets an empty IP4P argument.'));
		o.value('', _('IPv4 (default)'));
		o.value('ipv4', _('IPv4'));
		o.value('ipv6', _('IPv6'));

		o = s.taboption('general', IfaceSelect, 'interface', _('Interface'),
			_('Bind every socket to this network or device, or to this local address. Empty: the default route.'));
		o.validate = function(section_id, value) { return common.iface(value, familyOf(this, section_id)) };

		o = s.taboption('general', form.Value, 'port', _('Bind port'),
			_('The local port the NAT maps: <code>0</code> or empty lets the kernel pick one (kept on retry), <code>N</code> a port, <code>A-B</code> the first free port of a range, <code>A~B</code> a random one. In bind mode your service listens on this port itself.'));
		o.placeholder = '0';
		o.validate = (section_id, value) => common.portSpec(value);

		o = s.taboption('general', form.Flag, 'port_random', _('Random port'),
			_('Pick the port of the range A-B at random instead of in order.'));
		o.load = loadBool;
		o.depends({ port: /^[0-9]+-[0-9]+$/ });

		o = s.taboption('general', form.ListValue, 'firewall', _('Open in firewall'),
			_('Accept incoming connections to the bind port in the firewall. Automatic: when the interface is in the wan zone.'));
		o.value('', _('Automatic'));
		o.value('1', _('Always'));
		o.value('0', _('Never'));
		o.load = loadBool;

		o = s.taboption('general', form.ListValue, 'upnp', _('Router in front'),
			_('Behind another router (a double NAT): ask it to forward the bind port with PCP, NAT-PMP or UPnP IGD. Only the default gateway of the interface is asked, and only when it is a private address. Global setting: as in the global settings, automatic when unset there.'));
		o.value('', _('Global setting'));
		o.value('auto', _('Automatic: when it answers'));
		o.value('1', _('Required: fail when none answers'));
		o.value('0', _('Never'));

		/* Servers */

		o = s.taboption('servers', form.DynamicList, 'stun_server', _('STUN servers'),
			_('Asked for the public address, in order, the next one when one fails; with two or more, natmap also checks that the NAT is full cone. <code>host</code>, <code>host:port</code> or <code>[IPv6]:port</code>; the default port is 3478. Required unless set in the global settings.'));
		o.placeholder = globalValue('stun_server') || 'host[:3478]';
		o.validate = function(section_id, value) { return common.serverList(value, familyOf(this, section_id)) };

		o = s.taboption('servers', form.Value, 'http_server', _('HTTP server'),
			_('TCP mode keeps the NAT mapping alive with HTTP requests to this server: <code>host</code> or <code>host:port</code>; the default port is 80. Required in TCP mode unless set in the global settings.'));
		o.placeholder = globalValue('http_server') || 'host[:80]';
		o.validate = function(section_id, value) { return common.server(value, familyOf(this, section_id)) };
		o.depends('udp_mode', '0');

		o = s.taboption('servers', form.Value, 'reachability_url', _('Reachability check URL'),
			_('A port checker that proves outside hosts reach the public address: an <code>http://</code> or <code>https://</code> URL in which natmap replaces <code>{ip}</code>, <code>{port}</code> and <code>{proto}</code>; it must answer <code>1</code> (reached) or <code>0</code>. Empty: natmap checks with RFC 5780 STUN servers and hairpinning only.'));
		o.placeholder = 'http://host/check?ip={ip}&port={port}&proto={proto}';

		o = s.taboption('servers', form.Value, 'interval', _('Keep-alive interval'),
			_('Seconds between keep-alives and STUN checks. Default: 30 for TCP, 10 for UDP.'));
		o.validate = (section_id, value) => common.count(value);
		o.renderWidget = function(section_id, ...rest) {
			this.placeholder = intervalPlaceholder(common.bool(uci.get('natmap', section_id, 'udp_mode')) === true);
			return form.Value.prototype.renderWidget.call(this, section_id, ...rest);
		};

		/* Forward mode */

		o = s.taboption('forward', form.Flag, '_forward', _('Forward mode'),
			_('natmap listens on the bind port itself and relays every connection to the target. Off (bind mode): your service listens on the bind port.'));
		o.load = (section_id) => uci.get('natmap', section_id, 'forward_target') ? '1' : '0';
		o.write = () => {};
		o.remove = () => {};

		o = s.taboption('forward', form.Value, 'forward_target', _('Forward target'),
			_('Host name or IP address of the service to relay to.'));
		o.depends('_forward', '1');
		o.rmempty = false;
		/* LuCI's host: a host name or an IP address, no port; the daemon resolves it at each connection */
		o.datatype = 'host';

		o = s.taboption('forward', form.Value, 'forward_port', _('Forward target port'),
			_('Port of the service; <code>0</code> or empty: the same as the public port.'));
		o.depends('_forward', '1');
		o.placeholder = '0';
		o.validate = (section_id, value) => common.port(value);

		o = s.taboption('forward', form.ListValue, 'forward_mode', _('Forwarded by'),
			_('The kernel forwards at wire speed, and the target sees the client\'s own address (a DNAT rule in the firewall); the relay works everywhere, but the target sees the router.'));
		o.depends('_forward', '1');
		o.value('', _('Automatic: the kernel where the firewall allows, else the relay'));
		o.value('kernel', _('The kernel'));
		o.value('relay', _('The relay'));
		o.load = (section_id) => {
			const v = uci.get('natmap', section_id, 'forward_mode');
			return v == 'auto' ? '' : v;
		};

		o = s.taboption('forward', form.Value, 'forward_timeout', _('Idle timeout'),
			_('Seconds after which an idle relayed connection or UDP session is closed. Default: 300.'));
		o.depends('_forward', '1');
		o.placeholder = '300';
		o.validate = (section_id, value) => common.count(value);

		o = s.taboption('forward', form.Value, 'stun_cycle', _('STUN check cycle'),
			_('UDP forward mode checks the public address every this many keep-alive intervals. Default: 10.'));
		o.depends({ _forward: '1', udp_mode: '1' });
		o.placeholder = globalValue('stun_cycle') || '10';
		o.validate = (section_id, value) => common.count(value);

		o = s.taboption('forward', form.Value, 'forward_congestion', _('Congestion control'),
			_('TCP congestion control algorithm of the relayed connections; empty: the system default.'));
		o.depends({ _forward: '1', udp_mode: '0' });
		o.value('cubic');
		o.value('bbr');
		o.value('reno');
		o.validate = (section_id, value) => common.congestion(value);

		/* Advanced */

		o = s.taboption('advanced', form.Value, 'notify_script', _('Notify script'),
			_('Run (without a shell) when the public address changes, with the arguments: public IP, public port, IP4P, private port, protocol, private IP, section name, comment.'));
		o.placeholder = globalValue('notify_script') || _('none');
		o.validate = (section_id, value) => common.script(value);

		o = s.taboption('advanced', form.Flag, 'log_stdout', _('Log script output'),
			_('Write what the notify script prints to the system log.'));
		o.default = '1';
		o.load = loadBool;

		o = s.taboption('advanced', form.Flag, 'log_stderr', _('Log script errors'),
			_('Write what the notify script prints on its error output to the system log.'));
		o.default = '1';
		o.load = loadBool;

		o = s.taboption('advanced', form.Value, 'fwmark', _('Firewall mark'),
			_('Mark (SO_MARK) of every socket, for policy routing: hexadecimal <code>0x1</code>, decimal <code>1</code> or octal <code>01</code>.'));
		o.validate = (section_id, value) => common.fwmark(value);

		o = s.taboption('advanced', form.MultiValue, 'updater', _('Updaters'),
			_('Built-in updaters run after the notify script each time the public address changes; define them under Updaters below.'));
		for (const u of uci.sections('natmap', 'updater'))
			o.value(u['.name'], `${u['.name']} (${u.type || '?'})`);
		/* LuCI's multi-select cannot render without a choice */
		if (!(o.keylist && o.keylist.length))
			o.renderWidget = () => E('em', {}, [ _('None yet: add one under Updaters below, save, then choose it here.') ]);

		/* Updaters: config updater sections, named, as mappings refer to them by name */

		const dns = [ 'rfc2136', 'cloudflare' ],
		      u = m.section(form.GridSection, 'updater', _('Updaters'),
			_('Jobs natmap does itself with a new public address, after the notify script: call a webhook, update DNS records, set a BitTorrent client\'s listen port. Failed runs are retried with growing pauses; wrong credentials are not retried until the address changes. A mapping uses the updaters chosen in its Advanced Settings.'));

		u.anonymous = false;
		u.addremove = true;
		u.nodescriptions = true;
		u.addbtntitle = _('Add updater');
		u.modaltitle = (section_id) => `${_('Updater')} » ${section_id}`;

		o = u.option(form.ListValue, 'type', _('Type'));
		o.value('webhook', _('Webhook (HTTP request)'));
		o.value('rfc2136', _('DNS update (RFC 2136, BIND, Knot...)'));
		o.value('cloudflare', _('Cloudflare DNS'));
		o.value('transmission', _('Transmission'));
		o.value('qbittorrent', _('qBittorrent'));
		o.rmempty = false;

		o = u.option(form.DummyValue, '_result', _('Last result'));
		o.modalonly = false;
		o.textvalue = render.liveCell('updater');

		o = typed(u.option(form.Value, 'url', _('URL'),
			_('Webhook: <code>{public_ip}</code>, <code>{public_port}</code>, <code>{ip4p}</code>, <code>{private_ip}</code>, <code>{private_port}</code>, <code>{protocol}</code>, <code>{section}</code> and <code>{comment}</code> are replaced by the mapping\'s values. Transmission: its RPC URL; qBittorrent: its WebUI address. https:// needs curl on the router.')),
			[ 'webhook', 'transmission', 'qbittorrent' ]);
		o.placeholder = 'http://127.0.0.1:9091/transmission/rpc';
		o.validate = (section_id, value) => (!value || /^https?:\/\/[^\s]+$/.test(value)) ? true : _('Expecting an http:// or https:// URL');

		o = typed(u.option(form.Value, 'method', _('Method')), [ 'webhook' ]);
		o.placeholder = 'POST';
		o.value('POST');
		o.value('PUT');
		o.value('GET');

		o = typed(u.option(form.DynamicList, 'header', _('Headers'),
			_('<code>Name: value</code>, with the same placeholders as the URL.')), [ 'webhook' ]);

		o = typed(u.option(form.TextValue, 'body', _('Body'),
			_('With the same placeholders; escaped for JSON when the body is JSON. Empty: a JSON object of every field.')), [ 'webhook' ]);
		o.rows = 4;

		o = typed(u.option(form.Value, 'server', _('DNS server'),
			_('The primary server of the zone: <code>host</code> or <code>host:port</code>.')), [ 'rfc2136' ]);
		o.validate = (section_id, value) => common.server(value, 'any');

		o = typed(u.option(form.Value, 'zone', _('Zone')), [ 'rfc2136' ]);
		o.placeholder = 'example.org';
		o.validate = (section_id, value) => common.dnsName(value);

		o = typed(u.option(form.Value, 'key_name', _('TSIG key name')), [ 'rfc2136' ]);
		o.validate = (section_id, value) => common.dnsName(value);

		o = typed(u.option(form.ListValue, 'key_algorithm', _('TSIG algorithm')), [ 'rfc2136' ]);
		o.value('hmac-sha256');

		o = secretOption(u, 'key_secret', _('TSIG secret'), _('Base64, as tsig-keygen writes it.'));
		o.depends('type', 'rfc2136');

		o = typed(u.option(form.Value, 'zone_id', _('Zone ID'),
			_('On the zone\'s Overview page in the Cloudflare dashboard.')), [ 'cloudflare' ]);

		o = secretOption(u, 'api_token', _('API token'), _('A token with the DNS Write permission for the zone. Cloudflare needs curl on the router (https).'));
		o.depends('type', 'cloudflare');

		o = typed(u.option(form.Value, 'name', _('Record name'),
			_('The full name of the A, AAAA, IP4P and TXT records.')), dns);
		o.placeholder = 'nas.example.org';
		o.validate = (section_id, value) => common.dnsName(value);

		o = typed(u.option(form.MultiValue, 'record', _('Records')), dns);
		o.value('a', _('A or AAAA: the public address'));
		o.value('ip4p', _('AAAA in IP4P form (address and port)'));
		o.value('txt', _('TXT: address:port'));
		o.value('srv', _('SRV: the public port'));
		o.default = 'a';

		o = typed(u.option(form.Value, 'srv_name', _('SRV record name')), dns);
		o.placeholder = '_minecraft._tcp.example.org';
		o.validate = (section_id, value) => common.dnsName(value);

		o = typed(u.option(form.Value, 'srv_target', _('SRV target'),
			_('Default: the record name.')), dns);
		o.validate = (section_id, value) => common.dnsName(value);

		o = typed(u.option(form.Value, 'srv_priority', _('SRV priority')), dns);
		o.placeholder = '0';
		o.validate = (section_id, value) => common.port(value);

		o = typed(u.option(form.Value, 'srv_weight', _('SRV weight')), dns);
		o.placeholder = '0';
		o.validate = (section_id, value) => common.port(value);

		o = typed(u.option(form.Value, 'ttl', _('TTL')), dns);
		o.placeholder = '60';
		o.validate = (section_id, value) => common.count(value);

		o = typed(u.option(form.Value, 'username', _('Username')), [ 'transmission', 'qbittorrent' ]);

		o = secretOption(u, 'password', _('Password'));
		o.depends('type', 'transmission');
		o.depends('type', 'qbittorrent');

		o = u.option(form.Value, 'timeout', _('Timeout'),
			_('Seconds one attempt may take. Default: 30.'));
		o.modalonly = true;
		o.placeholder = '30';
		/* the daemon takes at most an hour */
		o.validate = (section_id, value) => common.count(value, 3600);

		/* Global defaults: the last config global section, the one the daemon uses */

		const globals = uci.sections('natmap', 'global');

		g = m.section(form.NamedSection,
			globals.length ? globals[globals.length - 1]['.name'] : 'global', 'global',
			_('Global settings'),
			_('Defaults for every mapping that does not set its own.'));
		g.addremove = true;

		o = g.option(form.DynamicList, 'stun_server', _('STUN servers'),
			_('<code>host</code>, <code>host:port</code> or <code>[IPv6]:port</code>; the default port is 3478.'));
		o.placeholder = 'host[:3478]';
		o.validate = (section_id, value) => common.serverList(value, 'any');

		o = g.option(form.Value, 'http_server', _('HTTP server'),
			_('For TCP mode: <code>host</code> or <code>host:port</code>; the default port is 80.'));
		o.placeholder = 'host[:80]';
		o.validate = (section_id, value) => common.server(value, 'any');

		o = g.option(form.Value, 'interval', _('Keep-alive interval'),
			_('Seconds. Default: 30 for TCP, 10 for UDP.'));
		o.placeholder = _('30 (TCP), 10 (UDP)');
		o.validate = (section_id, value) => common.count(value);

		o = g.option(form.Value, 'stun_cycle', _('STUN check cycle'),
			_('UDP forward mode: keep-alive intervals between STUN checks. Default: 10.'));
		o.placeholder = '10';
		o.validate = (section_id, value) => common.count(value);

		o = g.option(form.Value, 'notify_script', _('Notify script'));
		o.validate = (section_id, value) => common.script(value);

		o = g.option(form.ListValue, 'upnp', _('Router in front'),
			_('Ask the router in front (a double NAT) to forward each bind port with PCP, NAT-PMP or UPnP IGD.'));
		o.value('', _('Automatic (default)'));
		o.value('auto', _('Automatic: when it answers'));
		o.value('1', _('Required: fail when none answers'));
		o.value('0', _('Never'));

		o = g.option(form.Value, 'reachability_url', _('Reachability check URL'));
		o.placeholder = 'http://host/check?ip={ip}&port={port}&proto={proto}';

		o = g.option(form.Value, 'memory_limit', _('Memory limit'),
			_('MiB, for the whole daemon: a soft limit, above which it collects garbage harder; it never fails for it. Default: an eighth of the RAM, within 8 and 64 MiB.'));
		o.placeholder = _('automatic');
		o.validate = (section_id, value) => common.memoryLimit(value);

		/* The status summary, above the form */

		const summary = E('div', { 'class': 'cbi-section' }, [
			E('h3', {}, [ _('Status') ]),
			render.summary(),
			E('div', { 'class': 'right' }, [
				E('button', {
					'class': 'cbi-button cbi-button-action',
					'title': _('Make the daemon re-read /etc/config/natmap; only changed mappings restart'),
					'click': ui.createHandlerFn(actions, 'reload')
				}, [ _('Reload configuration') ])
			])
		]);

		const nat = check.render();

		return m.render().then((mapEl) => {
			/* Reload and the NAT check need write access. */
			if (m.readonly)
				for (const b of [ ...summary.querySelectorAll('button'), ...nat.querySelectorAll('button') ])
					b.disabled = true;

			poll.add(() => actions.refresh(), 5);

			return E([
				E('h2', { 'name': 'content' }, [ _('NATMap') ]),
				E('div', { 'class': 'cbi-map-descr' }, [
					_('Opens a port to the internet from behind a full-cone NAT (NAT-1) without port forwarding at the ISP: natmap learns the public address from STUN servers, keeps the NAT mapping alive, and runs a notify script whenever the address changes.')
				]),
				summary, nat, mapEl
			]);
		});
	}
});
