'use strict';
'require baseclass';
'require rpc';
'require natmap.common as common';

/*
 * Status -> Overview: the mappings that are up, with their public address.
 * Hidden when natmap does not answer (not installed, not running, or no
 * right to ask) or has no mapping configured.
 */

/* {"mappings":[...]}, or {"ok":false,"error":"..."} when the daemon fails */
var callStatus = rpc.declare({
	object: 'natmap',
	method: 'status'
});

return baseclass.extend({
	title: _('NATMap'),

	load: function() {
		return L.resolveDefault(callStatus(), null);
	},

	render: function(res) {
		if (!L.isObject(res) || !Array.isArray(res.mappings))
			return null;

		var mappings = res.mappings.filter(function(m) {
			return L.isObject(m) && m.section != '(config)' && m.enabled;
		});

		if (!mappings.length)
			return null;

		var table = E('table', { 'class': 'table' }, [
			E('tr', { 'class': 'tr table-titles' }, [
				E('th', { 'class': 'th' }, [ _('Mapping') ]),
				E('th', { 'class': 'th' }, [ _('Protocol') ]),
				E('th', { 'class': 'th' }, [ _('Local address') ]),
				E('th', { 'class': 'th' }, [ _('Public address') ]),
				E('th', { 'class': 'th' }, [ _('State') ])
			])
		]);

		mappings.forEach(function(m) {
			var age = common.age((m.state == 'mapped' && m.last_change) ? m.last_change : m.since);

			table.appendChild(E('tr', { 'class': 'tr' }, [
				E('td', { 'class': 'td', 'data-title': _('Mapping') }, [ m.comment || m.section ]),
				E('td', { 'class': 'td', 'data-title': _('Protocol') }, [
					String(m.protocol || '').toUpperCase(),
					/* the router in front (double NAT) forwards the port */
					m.front ? E('small', {
						'title': m.front_lease_end
							? _('router in front forwards it (%s, lease until %s)').format(m.front, new Date(m.front_lease_end * 1000).toLocaleTimeString())
							: _('router in front forwards it (%s)').format(m.front)
					}, [ ' (' + m.front.toUpperCase() + ')' ]) : ''
				]),
				E('td', { 'class': 'td', 'data-title': _('Local address') }, [ common.addr(m.private_ip, m.private_port) || '-' ]),
				E('td', { 'class': 'td', 'data-title': _('Public address') }, [
					(m.state == 'mapped' && m.public_ip) ? common.addr(m.public_ip, m.public_port) : '-'
				]),
				E('td', { 'class': 'td', 'data-title': _('State') }, [
					common.stateBadge(m.state, m.last_error || m.script_error || null),
					(age != null) ? ' ' + common.duration(age) : ''
				])
			]));
		});

		return table;
	}
});
