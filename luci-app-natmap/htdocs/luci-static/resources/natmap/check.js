'use strict';
'require baseclass';
'require dom';
'require ui';
'require natmap.rpc as natrpc';
'require natmap.common as common';

/*
 * Is the NAT a full cone? A section with a button that runs natmap check on
 * the router (ubus call natmap check) and draws its report: the verdict in
 * the theme's alert colours, what each STUN server saw, the mapping, the
 * filtering and whether an outside host reached the port (the plugin asks
 * the port checker of the global reachability_url, when one is set).
 */

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
	const srv = res.filtering_server || '?';

	switch (res.filtering) {
	case 'endpoint-independent':       return _('endpoint-independent (full cone), tested with %s').format(srv);
	case 'address-dependent':          return _('address-dependent (restricted cone), tested with %s').format(srv);
	case 'address-and-port-dependent': return _('address and port-dependent (port-restricted cone), tested with %s').format(srv);
	}

	if (res.mapping == 'endpoint-dependent')
		return _('not tested');

	return _('not tested: no STUN server here answers from a second address (RFC 5780)');
}

/* The verdict line: the theme's alert-message kind, and its text. */
function checkVerdict(res) {
	switch (res.verdict) {
	case 'full-cone':
		return [ 'success', _('Full cone (NAT-1): natmap can open a port here.') ];
	case 'maybe-full-cone':
		return [ 'warning', _('natmap can open a port here if the NAT lets anyone in (a full cone); the filtering could not be tested.') ];
	case 'not-full-cone':
		return [ 'error', _('The NAT is %s, not full cone: natmap cannot open a port here.').format(common.natName(res.nat || '?')) ];
	case 'no-nat':
		return [ 'notice', _('No NAT: %s is this router\'s own address; open the port in the firewall instead.').format(res.public_ip || '?') ];
	}

	return [ 'notice', _('Cannot tell: %s').format(res.error || res.summary || _('no answer')) ];
}

function failed(why) {
	return E('div', { 'class': 'alert-message warning' }, [ _('The check failed: %s').format(why) ]);
}

function renderCheck(res) {
	if (!L.isObject(res))
		return failed(_('unexpected answer'));

	if (res.ok === false || !res.verdict)
		return failed(res.error || _('unexpected answer'));

	const [ kind, verdict ] = checkVerdict(res),
	      answers = (Array.isArray(res.answers) ? res.answers : []).filter((a) => L.isObject(a));

	const table = E('table', { 'class': 'table' }, [
		E('tr', { 'class': 'tr table-titles' }, [
			E('th', { 'class': 'th' }, [ _('STUN server') ]),
			E('th', { 'class': 'th' }, [ _('Answer') ])
		]),
		...answers.map((a) => E('tr', { 'class': 'tr' }, [
			E('td', { 'class': 'td', 'data-title': _('STUN server') }, [ a.server || '?' ]),
			E('td', { 'class': 'td', 'data-title': _('Answer') }, [
				a.error ? E('em', { 'style': 'overflow-wrap:anywhere' }, [ _('no answer: %s').format(a.error) ])
					: _('sees %s').format(common.addr(a.public_ip, a.public_port))
			])
		]))
	]);

	return E('div', {}, [
		E('div', { 'class': `alert-message ${kind}`, 'title': res.summary || null }, [ E('strong', {}, [ verdict ]) ]),
		res.local_port ? E('p', {}, [ _('%s over %s from local port %d').format(String(res.protocol || '').toUpperCase(),
			(res.family == 'ipv6') ? _('IPv6') : _('IPv4'), res.local_port) ]) : '',
		answers.length ? table : '',
		E('p', {}, [
			E('strong', {}, [ `${_('Mapping')}: ` ]), checkMapping(res), E('br'),
			E('strong', {}, [ `${_('Filtering')}: ` ]), checkFiltering(res)
		]),
		L.isObject(res.reach) ? E('div', { 'data-natmap-check-reach': '' }, [ common.reach(res.reach) ]) : ''
	]);
}

function handleCheck(udp, ipv6, box) {
	dom.content(box, E('p', {}, [ E('em', { 'class': 'spinning' }, [ _('Checking… (up to 15 seconds)') ]) ]));

	return natrpc.check(udp, ipv6).then((res) => {
		dom.content(box, renderCheck(res));
	}).catch((err) => {
		dom.content(box, failed(natrpc.errorText(err)));
	});
}

return baseclass.extend({
	/* The NAT check section; its button needs write access (the view disables it). */
	render() {
		const proto = E('select', { 'class': 'cbi-input-select', 'style': 'width:auto' }, [
			E('option', { 'value': 'tcp' }, [ _('TCP') ]),
			E('option', { 'value': 'udp' }, [ _('UDP') ])
		]);

		const family = E('select', { 'class': 'cbi-input-select', 'style': 'width:auto' }, [
			E('option', { 'value': 'ipv4' }, [ _('IPv4') ]),
			E('option', { 'value': 'ipv6' }, [ _('IPv6') ])
		]);

		const result = E('div', { 'data-natmap-check': '' });

		return E('div', { 'class': 'cbi-section' }, [
			E('h3', {}, [ _('NAT check') ]),
			E('p', {}, [ _('natmap can open a port only behind a full-cone NAT (NAT-1). This asks the STUN servers of the first enabled mapping (else of any) what they see of one local port and, with a server that supports RFC 5780, whether any outside host may send to it.') ]),
			E('div', {}, [
				proto, ' ', family, ' ',
				E('button', {
					'class': 'cbi-button cbi-button-action',
					'title': _('Runs natmap check on the router'),
					'click': ui.createHandlerFn(this, () => handleCheck(proto.value == 'udp', family.value == 'ipv6', result))
				}, [ _('Check NAT') ])
			]),
			result
		]);
	}
});
