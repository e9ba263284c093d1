'use strict';
'require view';
'require form';
'require rpc';
'require poll';
'require ui';
'require uci';
'require dom';
'require network';
'require tools.widgets as widgets';
'require natmap.common as common';

/*
 * Services -> NATMap: the mappings (config natmap sections) in a table with
 * their live state, a modal editor with every option the daemon reads, and
 * the global defaults (config global), and the built-in updaters (config
 * updater) with their live results.
 *
 * Status comes from the daemon through the rpcd plugin: `ubus call natmap
 * status` lists every section as the daemon names it: a named section by
 * its name, an anonymous one as @natmap[i], its index among the natmap
 * sections of /etc/config/natmap. LuCI knows anonymous sections by their
 * cfgXXXXXX ids, so sectionRef() turns an id into @natmap[i] by its
 * position in uci.sections('natmap', 'natmap'), which lists the sections
 * of that type in file order, named ones included, as libuci counts them.
 * Sections added on this page and not saved yet (newXXXXXX) sort last and
 * have no status; while removals or additions are not applied, the daemon
 * still runs the old file, so a row whose comment, protocol or enable flag
 * differs from what the daemon reports says the changes are not applied.
 */

/* {"mappings":[...]}, or {"ok":false,"error":"..."} when the daemon fails */
var callStatus = rpc.declare({
	object: 'natmap',
	method: 'status',
	reject: true
});

var callReload = rpc.declare({
	object: 'natmap',
	method: 'reload',
	reject: true
});

var callRestart = rpc.declare({
	object: 'natmap',
	method: 'restart',
	params: [ 'section' ],
	reject: true
});

/*
 * natmap check --json's report (is the NAT a full cone?), with the STUN
 * servers of the first enabled mapping; the plugin bounds it to 15 s.
 */
var callCheck = rpc.declare({
	object: 'natmap',
	method: 'check',
	params: [ 'udp', 'ipv6' ],
	reject: true
});

/*
 * The daemon's latest status: ok is null before the first answer; when it
 * is false, error says why in one line and missing is true when the ubus
 * object itself is absent (natmap not installed, or rpcd not reloaded).
 * pending holds the LuCI ids of the sections with saved changes that are
 * not applied yet.
 */
var status = { ok: null, error: null, missing: false, list: [], bySection: {}, pending: {} };

/*
 * An RPC failure in one line a user can read: LuCI appends its stack trace
 * to the message of the errors it raises, and names ubus codes as
 * "RPC call to natmap/status failed with ubus code 4: Object not found".
 */
function errorText(err) {
	var msg = String((err && err.message) ? err.message : err).split('\n')[0];

	if (isMissing(err))
		return _('natmap is not available on ubus (is the natmap package installed?)');

	if (/Access denied|Permission denied|ubus code 6\b/.test(msg))
		return _('access denied: this login may not use natmap');

	if (/timed out|Request timeout|ubus code 7\b/i.test(msg))
		return _('no answer in time');

	return msg.replace(/^RPC call to \S+ failed with (?:ubus code|error) -?\d+: /, '');
}

/* Is the ubus object natmap (or its method) missing? */
function isMissing(err) {
	var msg = String((err && err.message) ? err.message : err).split('\n')[0];

	return /Object not found|Method not found|ubus code [34]\b/.test(msg);
}

/* Does the saved configuration enable a mapping? */
function anyEnabled() {
	return uci.sections('natmap', 'natmap').some(function(s) {
		return common.bool(s.enable) === true;
	});
}

function fetchStatus() {
	return callStatus().then(function(res) {
		if (!L.isObject(res) || !Array.isArray(res.mappings))
			throw new Error((L.isObject(res) && res.error) ? res.error : _('unexpected answer'));

		status.ok = true;
		status.error = null;
		status.missing = false;
		status.list = res.mappings;
		status.bySection = {};

		status.list.forEach(function(m) {
			if (L.isObject(m) && typeof(m.section) == 'string')
				status.bySection[m.section] = m;
		});
	}).catch(function(err) {
		status.ok = false;
		status.error = errorText(err);
		status.missing = isMissing(err);
		status.list = [];
		status.bySection = {};
	});
}

/* The daemon's name for a LuCI section id (see the comment at the top). */
function sectionRef(sid) {
	var s = uci.get('natmap', sid);

	if (!L.isObject(s) || s['.type'] != 'natmap')
		return null;

	if (!s['.anonymous'])
		return sid;

	if (/^new[0-9a-f]{6}$/.test(sid))
		return null;

	var list = uci.sections('natmap', 'natmap');

	for (var i = 0; i < list.length; i++)
		if (list[i]['.name'] == sid)
			return '@natmap[%d]'.format(i);

	return null;
}

function statusOf(sid) {
	var ref = sectionRef(sid);
	return ref ? (status.bySection[ref] || null) : null;
}

/* What the user calls a section: its comment, else its name. */
function sectionLabel(sid) {
	var comment = uci.get('natmap', sid, 'comment');

	if (comment)
		return comment;

	return sectionRef(sid) || sid;
}

/* Does the daemon run other settings than the ones on this page? */
function notApplied(sid, st) {
	var s = uci.get('natmap', sid) || {},
	    udp = common.bool(s.udp_mode) === true,
	    enabled = common.bool(s.enable) === true;

	return (st.comment || '') != String(s.comment || '').trim() ||
		st.protocol != (udp ? 'udp' : 'tcp') ||
		!!st.enabled != enabled;
}

/* The last config global section is the one the daemon uses. */
/* The address family chosen in the form for an option's section. */
function familyOf(option, sid) {
	return (typeof(option.section.formvalue) == 'function')
		? option.section.formvalue(sid, 'family') : null;
}

function globalValue(option) {
	var g = uci.sections('natmap', 'global'),
	    v = g.length ? g[g.length - 1][option] : null;

	return Array.isArray(v) ? v.join(', ') : (v || null);
}

function notify(msg, isError) {
	var node = E('p', {}, [ msg ]);

	if (!isError && typeof(ui.addTimeLimitedNotification) == 'function')
		ui.addTimeLimitedNotification(null, node, 5000, 'info');
	else
		ui.addNotification(null, node, isError ? 'danger' : 'info');
}

function copyText(text) {
	var done = function() { notify(_('Copied %s').format(text)) },
	    fallback = function() {
		var ta = E('textarea', { 'style': 'position:fixed;top:0;left:0;opacity:0' });

		ta.value = text;
		document.body.appendChild(ta);
		ta.select();

		var ok = false;

		try { ok = document.execCommand('copy') } catch (e) {}

		document.body.removeChild(ta);

		if (ok)
			done();
		else
			notify(_('Cannot copy here; select the address and copy it by hand.'), true);
	    };

	if (navigator.clipboard && window.isSecureContext)
		navigator.clipboard.writeText(text).then(done, fallback);
	else
		fallback();
}

function copyable(text, tooltip) {
	return E('span', {
		'style': 'cursor:pointer;text-decoration:underline dotted',
		'title': tooltip || _('Click to copy'),
		'click': function(ev) { ev.preventDefault(); copyText(text) }
	}, [ text ]);
}

function renderPublic(st) {
	if (!st || !st.public_ip)
		return E('em', {}, [ '-' ]);

	var nodes = [
		copyable(common.addr(st.public_ip, st.public_port),
			st.private_ip ? _('Local address %s; click to copy').format(common.addr(st.private_ip, st.private_port)) : null)
	];

	if (st.ip4p)
		nodes.push(E('br'), E('small', {}, [ 'IP4P ', copyable(st.ip4p) ]));

	return E('div', {}, nodes);
}

function natName(nat) {
	switch (nat) {
	case 'restricted cone':      return _('a restricted cone');
	case 'port-restricted cone': return _('a port-restricted cone');
	case 'symmetric':            return _('symmetric');
	default:                     return nat;
	}
}

function renderState(sid, st) {
	if (status.ok === false)
		return (common.bool(uci.get('natmap', sid, 'enable')) === true)
			? E('em', {}, [ _('unknown') ]) : common.stateBadge('disabled');

	if (!st)
		return E('em', {}, [ sectionRef(sid) ? _('Not running: save and apply') : _('New: save and apply') ]);

	var info = [],
	    age = common.age((st.state == 'mapped' && st.last_change) ? st.last_change : st.since),
	    nodes = [ common.stateBadge(st.state, st.last_error || null) ];

	if (age != null)
		info.push((st.state == 'mapped')
			? _('address kept for %s').format(common.duration(age))
			: _('for %s').format(common.duration(age)));

	if (st.retries > 0)
		info.push(N_(st.retries, '%d failed attempt', '%d failed attempts').format(st.retries));

	if (st.stun_server && st.state == 'mapped')
		info.push(_('STUN %s').format(st.stun_server));

	if (st.nat == 'full cone')
		info.push(_('full-cone NAT'));

	if (st.front)
		info.push(st.front_lease_end
			? _('router in front forwards it (%s, lease until %s)').format(st.front, new Date(st.front_lease_end * 1000).toLocaleTimeString())
			: _('router in front forwards it (%s)').format(st.front));

	if (info.length)
		nodes.push(E('br'), E('small', {}, [ info.join(', ') ]));

	if (st.nat && st.nat != 'full cone')
		nodes.push(E('div', {
			'style': 'color:#c62828;font-size:90%;max-width:32em'
		}, [ _('The NAT is %s, not full cone: outside clients cannot reach this address.').format(natName(st.nat)) ]));

	if (st.last_error)
		nodes.push(E('div', {
			'style': 'color:#c62828;font-size:90%;max-width:32em;overflow-wrap:anywhere'
		}, [ st.last_error ]));

	if (st.script_error)
		nodes.push(E('div', {
			'style': 'color:#c62828;font-size:90%;max-width:32em;overflow-wrap:anywhere'
		}, [ _('Notify script: %s').format(st.script_error) ]));

	if (st.state == 'mapped' && L.isObject(st.reach))
		nodes.push(renderReach(st.reach));

	if (notApplied(sid, st))
		nodes.push(E('div', { 'style': 'font-size:90%' }, [
			E('em', {}, [ _('Changes not applied yet') ])
		]));

	var history = renderHistory(st);
	if (history)
		nodes.push(history);

	return E('div', {}, nodes);
}

/* The section's last events and counters, folded. */
function renderHistory(st) {
	var events = Array.isArray(st.history) ? st.history : [],
	    m = st.metrics;

	if (!events.length && !m)
		return null;

	var rows = events.slice().reverse().map(function(ev) {
		var what = ev.public_ip ? common.addr(ev.public_ip, ev.public_port) : (ev.error || '');

		return E('li', {}, [
			new Date(ev.time * 1000).toLocaleString(), ' ',
			common.stateLabel(ev.state), what ? ': ' + what : ''
		]);
	});

	return E('details', { 'class': 'natmap-history', 'style': 'font-size:90%' }, [
		E('summary', {}, [ m
			? _('History: %d sessions, %d failed, %d addresses').format(m.sessions, m.failures, m.address_changes)
			: _('History') ]),
		E('ul', { 'style': 'margin:0 0 0 1.5em' }, rows)
	]);
}

/* The daemon's last check that outside hosts reach the public address. */
function renderReach(r) {
	if (r.state == 'reachable')
		return E('div', { 'style': 'font-size:90%' }, [
			_('reachable (verified %s)').format(new Date(r.verified * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }))
		]);

	return E('div', {
		'style': 'color:%s;font-size:90%;max-width:32em;overflow-wrap:anywhere'.format(r.state == 'unreachable' ? '#c62828' : '#ef6c00')
	}, [ (r.state == 'unreachable' ? _('Not reachable from outside: %s') : _('Reachability not verified: %s')).format(r.detail || '?') ]);
}

function renderTraffic(st) {
	if (st && st.forward_mode == 'kernel')
		return E('em', { 'title': _('The kernel forwards to the target, which sees the client\'s own address.') }, [ _('Kernel forwarding') ]);

	if (!st || !L.isObject(st.relay))
		return E('em', {}, [ '-' ]);

	var r = st.relay,
	    nodes = [
		E('span', { 'class': 'nowrap' }, [ '↑ %s ↓ %s'.format(common.bytes(r.bytes_up), common.bytes(r.bytes_down)) ]),
		E('br'),
		E('small', {}, [ _('%d active, %d in total').format(r.active || 0, r.total || 0) ])
	];

	if (st.forward_mode_reason)
		nodes.push(E('br'), E('small', { 'style': 'overflow-wrap:anywhere' }, [ _('Relayed, not in the kernel: %s').format(st.forward_mode_reason) ]));

	return E('div', {}, nodes);
}

/*
 * An updater's live result: one line per mapping that runs it (the daemon
 * reports updaters per mapping), with its state, when it last ran and its
 * last error.
 */
function renderUpdater(name) {
	var lines = [];

	status.list.forEach(function(m) {
		(Array.isArray(m.updaters) ? m.updaters : []).forEach(function(u) {
			if (!L.isObject(u) || u.name != name)
				return;

			var age = common.age(u.last_run),
			    nodes = [ E('strong', {}, [ (m.comment || m.section) + ': ' ]), common.stateBadge(u.state, u.last_error || null) ];

			if (age != null)
				nodes.push(' ', E('small', {}, [ _('ran %s ago').format(common.duration(age)) ]));

			if (u.attempts > 1)
				nodes.push(' ', E('small', {}, [ N_(u.attempts, '%d attempt', '%d attempts').format(u.attempts) ]));

			if (u.last_error)
				nodes.push(E('div', {
					'style': 'color:#c62828;font-size:90%;max-width:32em;overflow-wrap:anywhere'
				}, [ u.last_error ]));

			lines.push(E('div', {}, nodes));
		});
	});

	if (!lines.length)
		return E('em', {}, [ status.ok === false ? _('unknown') : _('Not used by a running mapping') ]);

	return E('div', {}, lines);
}

function renderCell(kind, sid) {
	if (kind == 'updater')
		return renderUpdater(sid);

	var st = statusOf(sid);

	switch (kind) {
	case 'public':  return renderPublic(st);
	case 'state':   return renderState(sid, st);
	case 'traffic': return renderTraffic(st);
	}

	return E([]);
}

function liveCell(kind) {
	return function(sid) {
		return E('div', { 'data-natmap-cell': kind, 'data-natmap-sid': sid }, [ renderCell(kind, sid) ]);
	};
}

function renderSummary() {
	if (status.ok === null)
		return E('em', {}, [ _('Collecting data…') ]);

	if (status.ok === false && status.missing)
		return E('div', { 'class': 'alert-message warning' }, [
			_('natmap is not available on ubus: is the natmap package installed? After installing it, restart rpcd (/etc/init.d/rpcd restart) or the router.')
		]);

	/* With no mapping enabled, the service does not run the daemon. */
	if (status.ok === false && Object.keys(status.pending).length)
		return E('p', {}, [ _('The natmap daemon is not running: save and apply the changes to start it.') ]);

	if (status.ok === false && !anyEnabled())
		return E('p', {}, [ _('No mapping is enabled, so the natmap daemon is not running.') ]);

	if (status.ok === false)
		return E('div', { 'class': 'alert-message warning' }, [
			_('The natmap daemon does not answer: %s. Is the natmap service running (/etc/init.d/natmap start)?').format(status.error)
		]);

	var nodes = [],
	    n = { total: 0, enabled: 0, mapped: 0, busy: 0, error: 0 };

	status.list.forEach(function(m) {
		if (m.section == '(config)') {
			nodes.push(E('div', { 'class': 'alert-message error' }, [
				_('The configuration cannot be read; the mappings keep running with the previous one: %s').format(m.last_error || '?')
			]));
			return;
		}

		n.total++;

		if (m.enabled)
			n.enabled++;

		if (m.state == 'mapped')
			n.mapped++;
		else if (m.state == 'starting' || m.state == 'retrying')
			n.busy++;
		else if (m.state == 'error')
			n.error++;
	});

	if (n.total == 0) {
		nodes.push(E('p', {}, [ _('No mapping is configured yet.') ]));
		return E('div', {}, nodes);
	}

	var line = [ _('%d of %d enabled mappings are up').format(n.mapped, n.enabled) ];

	if (n.busy)
		line.push(_('%d connecting').format(n.busy));

	if (n.error)
		line.push(_('%d failed').format(n.error));

	if (n.total > n.enabled)
		line.push(_('%d disabled').format(n.total - n.enabled));

	nodes.push(E('p', {}, [ line.join(', ') ]));

	var active = status.list.filter(function(m) { return m.state == 'mapped' && m.public_ip });

	if (active.length) {
		nodes.push(E('p', {}, active.map(function(m, i) {
			return E('span', { 'class': 'nowrap', 'style': 'margin-right:1.5em' }, [
				E('strong', {}, [ (m.comment || m.section) + ': ' ]),
				copyable(common.addr(m.public_ip, m.public_port)),
				' (%s %s)'.format(String(m.protocol || '').toUpperCase(), m.private_port || '')
			]);
		})));
	}

	return E('div', {}, nodes);
}

function updateLive() {
	document.querySelectorAll('[data-natmap-cell]').forEach(function(el) {
		dom.content(el, renderCell(el.getAttribute('data-natmap-cell'), el.getAttribute('data-natmap-sid')));
	});

	var sum = document.querySelector('[data-natmap-summary]');

	if (sum)
		dom.content(sum, renderSummary());
}

/* The sections with saved, not applied changes (ubus uci changes). */
function fetchPending() {
	return L.resolveDefault(uci.changes(), {}).then(function(changes) {
		var p = {};

		((L.isObject(changes) && Array.isArray(changes.natmap)) ? changes.natmap : []).forEach(function(c) {
			if (Array.isArray(c) && c[1])
				p[c[1]] = true;
		});

		status.pending = p;
	});
}

function refresh() {
	return Promise.all([ fetchStatus(), fetchPending() ]).then(updateLive);
}

/*
 * Restart one mapping. The daemon restarts a disabled mapping too (into
 * the same disabled state), so the page says why there is nothing to
 * restart instead of asking it.
 */
function handleRestart(sid) {
	/* The status and the pending changes as they are now, not at the last poll. */
	return Promise.all([ fetchStatus(), fetchPending() ]).then(function() {
		var ref = sectionRef(sid),
		    st = statusOf(sid),
		    label = sectionLabel(sid),
		    enabled = st ? !!st.enabled : (common.bool(uci.get('natmap', sid, 'enable')) === true);

		if (!ref)
			return notify(_('Mapping "%s" is new: save and apply it first.').format(label), true);

		if (!enabled)
			return notify(_('Mapping "%s" is disabled: enable it, then save and apply.').format(label), true);

		if (!st && (status.ok !== false || status.pending[sid]))
			return notify(_('Mapping "%s" is not applied yet: save and apply first.').format(label), true);

		if (status.ok === false)
			return notify(_('Cannot restart "%s": %s').format(label, status.error), true);

		return callRestart(ref).then(function(res) {
			if (L.isObject(res) && res.ok)
				notify(_('Mapping "%s" restarted.').format(label));
			else
				notify(_('Restart failed: %s').format((L.isObject(res) && res.error) || _('no answer')), true);
		}).catch(function(err) {
			notify(_('Restart failed: %s').format(errorText(err)), true);
		});
	}).then(updateLive);
}

function handleReload() {
	return callReload().then(function(res) {
		if (L.isObject(res) && res.ok)
			notify(_('The daemon re-read /etc/config/natmap.'));
		else
			notify(_('Reload failed: %s').format((L.isObject(res) && res.error) || _('no answer')), true);
	}).catch(function(err) {
		notify(_('Reload failed: %s').format(errorText(err)), true);
	}).then(refresh);
}

function checkMapping(res) {
	switch (res.mapping) {
	case 'endpoint-independent':
		return res.port_preserved ? _('endpoint-independent, public port preserved')
			: _('endpoint-independent, public port translated');
	case 'endpoint-dependent':
		return _('endpoint-dependent: each destination sees another public port');
	}

	return _('not checked: fewer than two STUN servers answered');
}

function checkFiltering(res) {
	var srv = res.filtering_server || '?';

	switch (res.filtering) {
	case 'endpoint-independent':       return _('endpoint-independent (full cone), tested with %s').format(srv);
	case 'address-dependent':          return _('address-dependent (restricted cone), tested with %s').format(srv);
	case 'address-and-port-dependent': return _('address and port-dependent (port-restricted cone), tested with %s').format(srv);
	}

	if (res.mapping == 'endpoint-dependent')
		return _('not tested');

	return _('not tested: no STUN server here answers from a second address (RFC 5780)');
}

/* The verdict line: its text and colour. */
function checkVerdict(res) {
	switch (res.verdict) {
	case 'full-cone':
		return [ '#2e7d32', _('Full cone (NAT-1): natmap can open a port here.') ];
	case 'maybe-full-cone':
		return [ '#ef6c00', _('natmap can open a port here if the NAT lets anyone in (a full cone); the filtering could not be tested.') ];
	case 'not-full-cone':
		return [ '#c62828', _('The NAT is %s, not full cone: natmap cannot open a port here.').format(natName(res.nat || '?')) ];
	case 'no-nat':
		return [ '#1565c0', _('No NAT: %s is this router\'s own address; open the port in the firewall instead.').format(res.public_ip || '?') ];
	}

	return [ '#757575', _('Cannot tell: %s').format(res.error || res.summary || _('no answer')) ];
}

function renderCheck(res) {
	if (!L.isObject(res))
		return E('div', { 'class': 'alert-message warning' }, [ _('The check failed: %s').format(_('unexpected answer')) ]);

	if (res.ok === false || !res.verdict)
		return E('div', { 'class': 'alert-message warning' }, [ _('The check failed: %s').format(res.error || _('unexpected answer')) ]);

	var v = checkVerdict(res),
	    answers = Array.isArray(res.answers) ? res.answers : [];

	var table = E('table', { 'class': 'table' }, [
		E('tr', { 'class': 'tr table-titles' }, [
			E('th', { 'class': 'th' }, [ _('STUN server') ]),
			E('th', { 'class': 'th' }, [ _('Answer') ])
		])
	]);

	answers.forEach(function(a) {
		if (!L.isObject(a))
			return;

		table.appendChild(E('tr', { 'class': 'tr' }, [
			E('td', { 'class': 'td', 'data-title': _('STUN server') }, [ a.server || '?' ]),
			E('td', { 'class': 'td', 'data-title': _('Answer') }, [
				a.error ? E('span', { 'style': 'color:#c62828;overflow-wrap:anywhere' }, [ _('no answer: %s').format(a.error) ])
					: _('sees %s').format(common.addr(a.public_ip, a.public_port))
			])
		]));
	});

	return E('div', {}, [
		E('p', {}, [ E('strong', { 'style': 'color:' + v[0], 'title': res.summary || null }, [ v[1] ]) ]),
		res.local_port ? E('p', {}, [ _('%s over %s from local port %d').format(String(res.protocol || '').toUpperCase(),
			(res.family == 'ipv6') ? _('IPv6') : _('IPv4'), res.local_port) ]) : '',
		answers.length ? table : '',
		E('p', {}, [
			E('strong', {}, [ _('Mapping') + ': ' ]), checkMapping(res), E('br'),
			E('strong', {}, [ _('Filtering') + ': ' ]), checkFiltering(res)
		])
	]);
}

function handleCheck(udp, ipv6, box) {
	dom.content(box, E('p', {}, [ E('em', { 'class': 'spinning' }, [ _('Checking… (up to 15 seconds)') ]) ]));

	return callCheck(udp, ipv6).then(function(res) {
		dom.content(box, renderCheck(res));
	}).catch(function(err) {
		dom.content(box, E('div', { 'class': 'alert-message warning' }, [
			_('The check failed: %s').format(errorText(err))
		]));
	});
}

/* Is the NAT a full cone? A button that runs natmap check on the router. */
function renderCheckSection() {
	var proto = E('select', { 'class': 'cbi-input-select', 'style': 'width:auto' }, [
		E('option', { 'value': 'tcp' }, [ _('TCP') ]),
		E('option', { 'value': 'udp' }, [ _('UDP') ])
	]);

	var family = E('select', { 'class': 'cbi-input-select', 'style': 'width:auto' }, [
		E('option', { 'value': 'ipv4' }, [ _('IPv4') ]),
		E('option', { 'value': 'ipv6' }, [ _('IPv6') ])
	]);

	var result = E('div', { 'data-natmap-check': '' });

	return E('div', { 'class': 'cbi-section' }, [
		E('h3', {}, [ _('NAT check') ]),
		E('p', {}, [ _('natmap can open a port only behind a full-cone NAT (NAT-1). This asks the STUN servers of the first enabled mapping (else of any) what they see of one local port and, with a server that supports RFC 5780, whether any outside host may send to it.') ]),
		E('div', {}, [
			proto, ' ', family, ' ',
			E('button', {
				'class': 'cbi-button cbi-button-action',
				'title': _('Runs natmap check on the router'),
				'click': ui.createHandlerFn(this, function() {
					return handleCheck(proto.value == 'udp', family.value == 'ipv6', result);
				})
			}, [ _('Check NAT') ])
		]),
		result
	]);
}

/* Booleans as the daemon reads them (yes/on/true...), shown as 1/0. */
function loadBool(sid) {
	var v = form.Value.prototype.load.call(this, sid),
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
var IfaceSelect = widgets.NetworkSelect.extend({
	__name__: 'CBI.NATMapInterface',

	load: function(section_id) {
		return L.resolveDefault(network.getNetworks(), []).then(L.bind(function(networks) {
			this.networks = networks || [];
			return form.Value.prototype.load.call(this, section_id);
		}, this));
	},

	renderWidget: function(section_id, option_index, cfgvalue) {
		var value = (cfgvalue != null) ? cfgvalue : '',
		    choices = { '': E('em', {}, [ _('any (the default route)') ]) };

		for (var i = 0; i < this.networks.length; i++) {
			var name = this.networks[i].getName();

			if (name != 'loopback')
				choices[name] = this.renderIfaceBadge(this.networks[i]);
		}

		var widget = new ui.Dropdown(value, choices, {
			id: this.cbid(section_id),
			sort: true,
			optional: true,
			create: true,
			custom_placeholder: _('-- custom: device or local address --'),
			validate: L.bind(this.validate, this, section_id),
			disabled: (this.readonly != null) ? this.readonly : this.map.readonly,
			display_items: 3,
			dropdown_items: 8
		});

		return widget.render();
	},

	textvalue: function(section_id) {
		return '%h'.format(this.cfgvalue(section_id) || '');
	}
});

/*
 * A secret (password, token, key): a password field that never shows the
 * saved value; left empty, the saved one is kept.
 */
function secretOption(section, name, title, description) {
	var o = section.option(form.Value, name, title, description);

	o.password = true;
	o.modalonly = true;
	o.load = function() { return '' };
	o.write = function(section_id, value) {
		if (value)
			uci.set('natmap', section_id, name, value);
	};
	o.remove = function() {};
	o.renderWidget = function(section_id) {
		this.placeholder = uci.get('natmap', section_id, name) ? _('(saved; empty keeps it)') : '';
		return form.Value.prototype.renderWidget.apply(this, arguments);
	};

	return o;
}

/* An updater option used by the given types only. */
function typed(o, types) {
	o.modalonly = true;
	types.forEach(function(t) { o.depends('type', t) });
	return o;
}

/* A grid whose tab options live in the modal only, with a Restart button. */
var MappingGrid = form.GridSection.extend({
	taboption: function(/* ... */) {
		var o = this.super('taboption', arguments);

		if (o.modalonly == null)
			o.modalonly = true;

		return o;
	},

	renderRowActions: function(section_id) {
		var td = this.super('renderRowActions', [ section_id ]),
		    box = td.lastElementChild || td;

		box.insertBefore(E('button', {
			'class': 'cbi-button cbi-button-action',
			'title': _('Restart this mapping now (a new session; the public port may change)'),
			'click': ui.createHandlerFn(this, handleRestart, section_id),
			'disabled': this.map.readonly || null
		}, [ _('Restart') ]), box.firstChild);

		return td;
	}
});

return view.extend({
	load: function() {
		return Promise.all([
			uci.load('natmap'),
			fetchStatus(),
			fetchPending()
		]);
	},

	render: function() {
		var m, s, g, o;

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
		s.modaltitle = function(section_id) {
			return _('NATMap') + ' » ' + (uci.get('natmap', section_id, 'comment') || _('Port mapping'));
		};

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
			var c = this.cfgvalue(section_id);
			return c ? '%h'.format(c) : E('em', {}, [ sectionRef(section_id) || '-' ]);
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
			var p = this.cfgvalue(section_id);

			if (!p || p == '0')
				return E('em', {}, [ _('any') ]);

			if (/-/.test(p) && common.bool(uci.get('natmap', section_id, 'port_random')))
				p = p.replace('-', '~');

			return '%h'.format(p) + (/~/.test(p) ? ' (' + _('random') + ')' : '');
		};

		o = s.option(form.DummyValue, '_public', _('Public address'));
		o.modalonly = false;
		o.textvalue = liveCell('public');

		o = s.option(form.DummyValue, '_state', _('State'));
		o.modalonly = false;
		o.textvalue = liveCell('state');

		o = s.option(form.DummyValue, '_traffic', _('Relay traffic'));
		o.modalonly = false;
		o.textvalue = liveCell('traffic');

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
			var field = this.map.findElement('data-field', 'cbid.natmap.%s.interval'.format(section_id)),
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
		o.validate = function(section_id, value) { return common.portSpec(value) };

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
		o.validate = function(section_id, value) { return common.count(value) };
		o.renderWidget = function(section_id, option_index, cfgvalue) {
			this.placeholder = intervalPlaceholder(common.bool(uci.get('natmap', section_id, 'udp_mode')) === true);
			return form.Value.prototype.renderWidget.apply(this, arguments);
		};

		/* Forward mode */

		o = s.taboption('forward', form.Flag, '_forward', _('Forward mode'),
			_('natmap listens on the bind port itself and relays every connection to the target. Off (bind mode): your service listens on the bind port.'));
		o.load = function(section_id) {
			return uci.get('natmap', section_id, 'forward_target') ? '1' : '0';
		};
		o.write = function() {};
		o.remove = function() {};

		o = s.taboption('forward', form.Value, 'forward_target', _('Forward target'),
			_('Host name or IP address of the service to relay to.'));
		o.depends('_forward', '1');
		o.rmempty = false;
		o.validate = function(section_id, value) { return common.host(value) };

		o = s.taboption('forward', form.Value, 'forward_port', _('Forward target port'),
			_('Port of the service; <code>0</code> or empty: the same as the public port.'));
		o.depends('_forward', '1');
		o.placeholder = '0';
		o.validate = function(section_id, value) { return common.port(value) };

		o = s.taboption('forward', form.ListValue, 'forward_mode', _('Forwarded by'),
			_('The kernel forwards at wire speed, and the target sees the client\'s own address (a DNAT rule in the firewall); the relay works everywhere, but the target sees the router.'));
		o.depends('_forward', '1');
		o.value('', _('Automatic: the kernel where the firewall allows, else the relay'));
		o.value('kernel', _('The kernel'));
		o.value('relay', _('The relay'));
		o.load = function(section_id) {
			var v = uci.get('natmap', section_id, 'forward_mode');
			return v == 'auto' ? '' : v;
		};

		o = s.taboption('forward', form.Value, 'forward_timeout', _('Idle timeout'),
			_('Seconds after which an idle relayed connection or UDP session is closed. Default: 300.'));
		o.depends('_forward', '1');
		o.placeholder = '300';
		o.validate = function(section_id, value) { return common.count(value) };

		o = s.taboption('forward', form.Value, 'stun_cycle', _('STUN check cycle'),
			_('UDP forward mode checks the public address every this many keep-alive intervals. Default: 10.'));
		o.depends({ _forward: '1', udp_mode: '1' });
		o.placeholder = globalValue('stun_cycle') || '10';
		o.validate = function(section_id, value) { return common.count(value) };

		o = s.taboption('forward', form.Value, 'forward_congestion', _('Congestion control'),
			_('TCP congestion control algorithm of the relayed connections; empty: the system default.'));
		o.depends({ _forward: '1', udp_mode: '0' });
		o.value('cubic');
		o.value('bbr');
		o.value('reno');
		o.validate = function(section_id, value) { return common.congestion(value) };

		/* Advanced */

		o = s.taboption('advanced', form.Value, 'notify_script', _('Notify script'),
			_('Run (without a shell) when the public address changes, with the arguments: public IP, public port, IP4P, private port, protocol, private IP, section name, comment.'));
		o.placeholder = globalValue('notify_script') || _('none');
		o.validate = function(section_id, value) { return common.script(value) };

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
		o.validate = function(section_id, value) { return common.fwmark(value) };

		o = s.taboption('advanced', form.MultiValue, 'updater', _('Updaters'),
			_('Built-in updaters run after the notify script each time the public address changes; define them under Updaters below.'));
		uci.sections('natmap', 'updater').forEach(function(u) {
			o.value(u['.name'], '%s (%s)'.format(u['.name'], u.type || '?'));
		});
		/* LuCI's multi-select cannot render without a choice */
		if (!(o.keylist && o.keylist.length))
			o.renderWidget = function() { return E('em', {}, [ _('None yet: add one under Updaters below, save, then choose it here.') ]) };

		/* Updaters: config updater sections, named, as mappings refer to them by name */

		var dns = [ 'rfc2136', 'cloudflare' ],
		    u = m.section(form.GridSection, 'updater', _('Updaters'),
			_('Jobs natmap does itself with a new public address, after the notify script: call a webhook, update DNS records, set a BitTorrent client\'s listen port. Failed runs are retried with growing pauses; wrong credentials are not retried until the address changes. A mapping uses the updaters chosen in its Advanced Settings.'));

		u.anonymous = false;
		u.addremove = true;
		u.nodescriptions = true;
		u.addbtntitle = _('Add updater');
		u.modaltitle = function(section_id) { return _('Updater') + ' » ' + section_id };

		o = u.option(form.ListValue, 'type', _('Type'));
		o.value('webhook', _('Webhook (HTTP request)'));
		o.value('rfc2136', _('DNS update (RFC 2136, BIND, Knot...)'));
		o.value('cloudflare', _('Cloudflare DNS'));
		o.value('transmission', _('Transmission'));
		o.value('qbittorrent', _('qBittorrent'));
		o.rmempty = false;

		o = u.option(form.DummyValue, '_result', _('Last result'));
		o.modalonly = false;
		o.textvalue = liveCell('updater');

		o = typed(u.option(form.Value, 'url', _('URL'),
			_('Webhook: <code>{public_ip}</code>, <code>{public_port}</code>, <code>{ip4p}</code>, <code>{private_ip}</code>, <code>{private_port}</code>, <code>{protocol}</code>, <code>{section}</code> and <code>{comment}</code> are replaced by the mapping\'s values. Transmission: its RPC URL; qBittorrent: its WebUI address. https:// needs curl on the router.')),
			[ 'webhook', 'transmission', 'qbittorrent' ]);
		o.placeholder = 'http://127.0.0.1:9091/transmission/rpc';
		o.validate = function(section_id, value) {
			return (!value || /^https?:\/\/[^\s]+$/.test(value)) ? true : _('Expecting an http:// or https:// URL');
		};

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

		o = typed(u.option(form.Value, 'zone', _('Zone')), [ 'rfc2136' ]);
		o.placeholder = 'example.org';

		o = typed(u.option(form.Value, 'key_name', _('TSIG key name')), [ 'rfc2136' ]);

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

		o = typed(u.option(form.MultiValue, 'record', _('Records')), dns);
		o.value('a', _('A or AAAA: the public address'));
		o.value('ip4p', _('AAAA in IP4P form (address and port)'));
		o.value('txt', _('TXT: address:port'));
		o.value('srv', _('SRV: the public port'));
		o.default = 'a';

		o = typed(u.option(form.Value, 'srv_name', _('SRV record name')), dns);
		o.placeholder = '_minecraft._tcp.example.org';

		o = typed(u.option(form.Value, 'srv_target', _('SRV target'),
			_('Default: the record name.')), dns);

		o = typed(u.option(form.Value, 'srv_priority', _('SRV priority')), dns);
		o.placeholder = '0';
		o.validate = function(section_id, value) { return common.port(value) };

		o = typed(u.option(form.Value, 'srv_weight', _('SRV weight')), dns);
		o.placeholder = '0';
		o.validate = function(section_id, value) { return common.port(value) };

		o = typed(u.option(form.Value, 'ttl', _('TTL')), dns);
		o.placeholder = '60';
		o.validate = function(section_id, value) { return common.count(value) };

		o = typed(u.option(form.Value, 'username', _('Username')), [ 'transmission', 'qbittorrent' ]);

		o = secretOption(u, 'password', _('Password'));
		o.depends('type', 'transmission');
		o.depends('type', 'qbittorrent');

		o = u.option(form.Value, 'timeout', _('Timeout'),
			_('Seconds one attempt may take. Default: 30.'));
		o.modalonly = true;
		o.placeholder = '30';
		o.validate = function(section_id, value) { return common.count(value) };

		/* Global defaults: the last config global section, the one the daemon uses */

		var globals = uci.sections('natmap', 'global');

		g = m.section(form.NamedSection,
			globals.length ? globals[globals.length - 1]['.name'] : 'global', 'global',
			_('Global settings'),
			_('Defaults for every mapping that does not set its own.'));
		g.addremove = true;

		o = g.option(form.DynamicList, 'stun_server', _('STUN servers'),
			_('<code>host</code>, <code>host:port</code> or <code>[IPv6]:port</code>; the default port is 3478.'));
		o.placeholder = 'host[:3478]';
		o.validate = function(section_id, value) { return common.serverList(value, 'any') };

		o = g.option(form.Value, 'http_server', _('HTTP server'),
			_('For TCP mode: <code>host</code> or <code>host:port</code>; the default port is 80.'));
		o.placeholder = 'host[:80]';
		o.validate = function(section_id, value) { return common.server(value, 'any') };

		o = g.option(form.Value, 'interval', _('Keep-alive interval'),
			_('Seconds. Default: 30 for TCP, 10 for UDP.'));
		o.placeholder = _('30 (TCP), 10 (UDP)');
		o.validate = function(section_id, value) { return common.count(value) };

		o = g.option(form.Value, 'stun_cycle', _('STUN check cycle'),
			_('UDP forward mode: keep-alive intervals between STUN checks. Default: 10.'));
		o.placeholder = '10';
		o.validate = function(section_id, value) { return common.count(value) };

		o = g.option(form.Value, 'notify_script', _('Notify script'));
		o.validate = function(section_id, value) { return common.script(value) };

		o = g.option(form.ListValue, 'upnp', _('Router in front'),
			_('Ask the router in front (a double NAT) to forward each bind port with PCP, NAT-PMP or UPnP IGD.'));
		o.value('', _('Automatic (default)'));
		o.value('auto', _('Automatic: when it answers'));
		o.value('1', _('Required: fail when none answers'));
		o.value('0', _('Never'));

		o = g.option(form.Value, 'reachability_url', _('Reachability check URL'));
		o.placeholder = 'http://host/check?ip={ip}&port={port}&proto={proto}';

		/* The status summary, above the form */

		var summary = E('div', { 'class': 'cbi-section' }, [
			E('h3', {}, [ _('Status') ]),
			E('div', { 'data-natmap-summary': '' }, [ renderSummary() ]),
			E('div', { 'class': 'right' }, [
				E('button', {
					'class': 'cbi-button cbi-button-action',
					'title': _('Make the daemon re-read /etc/config/natmap; only changed mappings restart'),
					'click': ui.createHandlerFn(this, function() {
						return handleReload();
					})
				}, [ _('Reload configuration') ])
			])
		]);

		var check = renderCheckSection();

		return m.render().then(function(mapEl) {
			/* Reload and the NAT check need write access. */
			if (m.readonly)
				[ summary, check ].forEach(function(el) {
					el.querySelectorAll('button').forEach(function(b) { b.disabled = true });
				});

			poll.add(refresh, 5);

			return E([
				E('h2', { 'name': 'content' }, [ _('NATMap') ]),
				E('div', { 'class': 'cbi-map-descr' }, [
					_('Opens a port to the internet from behind a full-cone NAT (NAT-1) without port forwarding at the ISP: natmap learns the public address from STUN servers, keeps the NAT mapping alive, and runs a notify script whenever the address changes.')
				]),
				summary, check, mapEl
			]);
		});
	}
});
