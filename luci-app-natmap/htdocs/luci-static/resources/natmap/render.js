'use strict';
'require baseclass';
'require dom';
'require ui';
'require uci';
'require natmap.common as common';
'require natmap.status as status';

/*
 * The live parts of the NATMap page, drawn from natmap.status: the status
 * summary above the form, and the table's cells (public address, state
 * with its history, relay traffic, an updater's results), redrawn at each
 * poll. Colours come from the theme's classes only (label, alert-message),
 * so light and dark themes both stay readable.
 */

/* A message under the page's header; errors stay until closed. */
function notify(msg, isError) {
	const node = E('p', {}, [ msg ]);

	if (!isError && typeof(ui.addTimeLimitedNotification) == 'function')
		ui.addTimeLimitedNotification(null, node, 5000, 'info');
	else
		ui.addNotification(null, node, isError ? 'danger' : 'info');
}

function copyText(text) {
	const done = () => notify(_('Copied %s').format(text));
	const fallback = () => {
		const ta = E('textarea', { 'style': 'position:fixed;top:0;left:0;opacity:0' });

		ta.value = text;
		document.body.appendChild(ta);
		ta.select();

		let ok = false;

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
		'click': (ev) => { ev.preventDefault(); copyText(text) }
	}, [ text ]);
}

function renderPublic(st) {
	if (!st || !st.public_ip)
		return E('em', {}, [ '-' ]);

	const nodes = [
		copyable(common.addr(st.public_ip, st.public_port),
			st.private_ip ? _('Local address %s; click to copy').format(common.addr(st.private_ip, st.private_port)) : null)
	];

	if (st.ip4p)
		nodes.push(E('br'), E('small', {}, [ 'IP4P ', copyable(st.ip4p) ]));

	return E('div', {}, nodes);
}

/* The section's last events and counters, folded. */
function renderHistory(st) {
	const events = Array.isArray(st.history) ? st.history : [],
	      m = st.metrics;

	if (!events.length && !m)
		return null;

	const rows = events.slice().reverse().map((ev) => {
		const what = ev.public_ip ? common.addr(ev.public_ip, ev.public_port) : (ev.error || '');

		return E('li', {}, [ E('small', {}, [
			new Date(ev.time * 1000).toLocaleString(), ' ',
			common.stateLabel(ev.state), what ? `: ${what}` : ''
		]) ]);
	});

	return E('details', { 'class': 'natmap-history' }, [
		E('summary', {}, [ E('small', {}, [ m
			? _('History: %d sessions, %d failed, %d addresses').format(m.sessions, m.failures, m.address_changes)
			: _('History') ]) ]),
		E('ul', { 'style': 'margin:0 0 0 1.5em' }, rows)
	]);
}

function renderState(sid, st) {
	if (status.ok === false)
		return (common.bool(uci.get('natmap', sid, 'enable')) === true)
			? E('em', {}, [ _('unknown') ]) : common.stateBadge('disabled');

	if (!st)
		return E('em', {}, [ status.ref(sid) ? _('Not running: save and apply') : _('New: save and apply') ]);

	const info = [],
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
		nodes.push(common.problem(_('The NAT is %s, not full cone: outside clients cannot reach this address.').format(common.natName(st.nat))));

	if (st.last_error)
		nodes.push(common.problem(st.last_error));

	if (st.script_error)
		nodes.push(common.problem(_('Notify script: %s').format(st.script_error)));

	if (st.state == 'mapped' && L.isObject(st.reach))
		nodes.push(common.reach(st.reach));

	if (status.notApplied(sid, st))
		nodes.push(E('div', {}, [ E('small', {}, [ E('em', {}, [ _('Changes not applied yet') ]) ]) ]));

	const history = renderHistory(st);
	if (history)
		nodes.push(history);

	return E('div', {}, nodes);
}

function renderTraffic(st) {
	if (st && st.forward_mode == 'kernel')
		return E('em', { 'title': _('The kernel forwards to the target, which sees the client\'s own address.') }, [ _('Kernel forwarding') ]);

	if (!st || !L.isObject(st.relay))
		return E('em', {}, [ '-' ]);

	const r = st.relay,
	      nodes = [
		E('span', { 'class': 'nowrap' }, [ `↑ ${common.bytes(r.bytes_up)} ↓ ${common.bytes(r.bytes_down)}` ]),
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
	const lines = [];

	for (const m of status.list) {
		for (const u of Array.isArray(m.updaters) ? m.updaters : []) {
			if (!L.isObject(u) || u.name != name)
				continue;

			const age = common.age(u.last_run),
			      nodes = [ E('strong', {}, [ `${m.comment || m.section}: ` ]), common.stateBadge(u.state, u.last_error || null) ];

			if (age != null)
				nodes.push(' ', E('small', {}, [ _('ran %s ago').format(common.duration(age)) ]));

			if (u.attempts > 1)
				nodes.push(' ', E('small', {}, [ N_(u.attempts, '%d attempt', '%d attempts').format(u.attempts) ]));

			if (u.last_error)
				nodes.push(common.problem(u.last_error));

			lines.push(E('div', {}, nodes));
		}
	}

	if (!lines.length)
		return E('em', {}, [ status.ok === false ? _('unknown') : _('Not used by a running mapping') ]);

	return E('div', {}, lines);
}

function renderCell(kind, sid) {
	if (kind == 'updater')
		return renderUpdater(sid);

	const st = status.of(sid);

	switch (kind) {
	case 'public':  return renderPublic(st);
	case 'state':   return renderState(sid, st);
	case 'traffic': return renderTraffic(st);
	}

	return E([]);
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

	if (status.ok === false && !status.anyEnabled())
		return E('p', {}, [ _('No mapping is enabled, so the natmap daemon is not running.') ]);

	if (status.ok === false)
		return E('div', { 'class': 'alert-message warning' }, [
			_('The natmap daemon does not answer: %s. Is the natmap service running (/etc/init.d/natmap start)?').format(status.error)
		]);

	const nodes = [],
	      n = { total: 0, enabled: 0, mapped: 0, busy: 0, error: 0 };

	for (const m of status.list) {
		if (m.section == '(config)') {
			nodes.push(E('div', { 'class': 'alert-message error' }, [
				_('The configuration cannot be read; the mappings keep running with the previous one: %s').format(m.last_error || '?')
			]));
			continue;
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
	}

	if (n.total == 0) {
		nodes.push(E('p', {}, [ _('No mapping is configured yet.') ]));
		return E('div', {}, nodes);
	}

	const line = [ _('%d of %d enabled mappings are up').format(n.mapped, n.enabled) ];

	if (n.busy)
		line.push(_('%d connecting').format(n.busy));

	if (n.error)
		line.push(_('%d failed').format(n.error));

	if (n.total > n.enabled)
		line.push(_('%d disabled').format(n.total - n.enabled));

	nodes.push(E('p', {}, [ line.join(', ') ]));

	const active = status.list.filter((m) => m.state == 'mapped' && m.public_ip);

	if (active.length)
		nodes.push(E('p', {}, active.map((m) => E('span', { 'class': 'nowrap', 'style': 'margin-right:1.5em' }, [
			E('strong', {}, [ `${m.comment || m.section}: ` ]),
			copyable(common.addr(m.public_ip, m.public_port)),
			` (${String(m.protocol || '').toUpperCase()} ${m.private_port || ''})`
		]))));

	return E('div', {}, nodes);
}

return baseclass.extend({
	notify,

	/* A table cell that update() redraws: public, state, traffic or updater. */
	liveCell(kind) {
		return (sid) => E('div', { 'data-natmap-cell': kind, 'data-natmap-sid': sid }, [ renderCell(kind, sid) ]);
	},

	/* The status summary, redrawn by update(). */
	summary() {
		return E('div', { 'data-natmap-summary': '' }, [ renderSummary() ]);
	},

	/* Redraw every live part from natmap.status. */
	update() {
		for (const el of document.querySelectorAll('[data-natmap-cell]'))
			dom.content(el, renderCell(el.getAttribute('data-natmap-cell'), el.getAttribute('data-natmap-sid')));

		const sum = document.querySelector('[data-natmap-summary]');

		if (sum)
			dom.content(sum, renderSummary());
	}
});
