'use strict';
'require baseclass';
'require natmap.rpc as natrpc';
'require natmap.common as common';

/*
 * Status -> Overview: the enabled mappings, their public address and
 * state. Hidden when natmap does not answer (not installed, not running,
 * or no right to ask) or has no mapping enabled.
 */

return baseclass.extend({
	title: _('NATMap'),

	load() {
		return L.resolveDefault(natrpc.status(), null);
	},

	render(res) {
		if (!L.isObject(res) || !Array.isArray(res.mappings))
			return null;

		const mappings = res.mappings.filter((m) => L.isObject(m) && m.section != '(config)' && m.enabled);

		if (!mappings.length)
			return null;

		const table = E('table', { 'class': 'table' }, [
			E('tr', { 'class': 'tr table-titles' }, [
				E('th', { 'class': 'th' }, [ _('Mapping') ]),
				E('th', { 'class': 'th' }, [ _('Protocol') ]),
				E('th', { 'class': 'th' }, [ _('Local address') ]),
				E('th', { 'class': 'th' }, [ _('Public address') ]),
				E('th', { 'class': 'th' }, [ _('State') ])
			])
		]);

		for (const m of mappings) {
			const age = common.age((m.state == 'mapped' && m.last_change) ? m.last_change : m.since);

			table.appendChild(E('tr', { 'class': 'tr' }, [
				E('td', { 'class': 'td', 'data-title': _('Mapping') }, [ m.comment || m.section ]),
				E('td', { 'class': 'td', 'data-title': _('Protocol') }, [
					String(m.protocol || '').toUpperCase(),
					/* the router in front (double NAT) forwards the port */
					m.front ? E('small', {
						'title': m.front_lease_end
							? _('router in front forwards it (%s, lease until %s)').format(m.front, new Date(m.front_lease_end * 1000).toLocaleTimeString())
							: _('router in front forwards it (%s)').format(m.front)
					}, [ ` (${m.front.toUpperCase()})` ]) : ''
				]),
				E('td', { 'class': 'td', 'data-title': _('Local address') }, [ common.addr(m.private_ip, m.private_port) || '-' ]),
				E('td', { 'class': 'td', 'data-title': _('Public address') }, [
					(m.state == 'mapped' && m.public_ip) ? common.addr(m.public_ip, m.public_port) : '-'
				]),
				E('td', { 'class': 'td', 'data-title': _('State') }, [
					common.stateBadge(m.state, m.last_error || m.script_error || null),
					(age != null) ? ` ${common.duration(age)}` : ''
				])
			]));
		}

		return table;
	}
});
