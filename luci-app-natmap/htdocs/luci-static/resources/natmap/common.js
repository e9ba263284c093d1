'use strict';
'require baseclass';

/*
 * Shared by the NATMap page and its Status -> Overview block: the
 * validators of the options where LuCI's datatypes differ from the
 * daemon's rules (each accepts only what the natmap daemon accepts: see
 * internal/config, internal/portspec and internal/uciconf in the natmap
 * sources; luci_test.go checks them against those parsers), the labels of
 * the daemon's states and NAT types, and the formatting of its status.
 *
 * A validator returns true, or the error message to show.
 */

function isIPv4(s) {
	const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);

	if (!m)
		return false;

	for (let i = 1; i <= 4; i++)
		if (+m[i] > 255 || (m[i].length > 1 && m[i].charAt(0) == '0'))
			return false;

	return true;
}

function isIPv6(s) {
	const zone = s.indexOf('%');

	if (zone >= 0) {
		if (!/^[A-Za-z0-9_.-]+$/.test(s.slice(zone + 1)))
			return false;
		s = s.slice(0, zone);
	}

	const halves = s.split('::');

	if (halves.length > 2)
		return false;

	let groups = 0;

	for (let h = 0; h < halves.length; h++) {
		if (halves[h] == '')
			continue;

		const parts = halves[h].split(':');

		for (let i = 0; i < parts.length; i++) {
			const last = (h == halves.length - 1 && i == parts.length - 1);

			if (last && parts[i].indexOf('.') >= 0) {
				if (!isIPv4(parts[i]))
					return false;
				groups += 2;
			}
			else if (/^[0-9A-Fa-f]{1,4}$/.test(parts[i])) {
				groups++;
			}
			else {
				return false;
			}
		}
	}

	return (halves.length == 2) ? (groups < 8) : (groups == 8);
}

function isHostname(s) {
	if (s.length == 0 || s.length > 253)
		return false;

	const labels = s.replace(/\.$/, '').split('.');

	if (!labels.every((l) => /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/.test(l)))
		return false;

	/* all digits and dots: that is an IPv4 address or nothing */
	return !/^[0-9.]+$/.test(s) || isIPv4(s);
}

function isPortNumber(s, zeroOK) {
	if (!/^[0-9]+$/.test(s))
		return false;

	const n = parseInt(s, 10);
	return (n <= 65535) && (zeroOK || n > 0);
}

/*
 * One server: host, host:port, [IPv6]:port or a bare IPv6 address; an
 * address literal must be of the mapping's family ('' and ipv4: IPv4), as
 * the daemon asks; 'any' (the global defaults) takes either.
 */
function checkServer(s, family) {
	const res = checkServerSyntax(s);

	if (res !== true || family == 'any')
		return res;

	let host = s.replace(/^\[([^\]]*)\].*$/, '$1');

	if (host == s && s.split(':').length == 2)
		host = s.slice(0, s.indexOf(':'));

	/* ::ffff:1.2.3.4 is IPv4 to the daemon; a zone may hold dots */
	const v4 = isIPv4(host) || (isIPv6(host) && host.split('%')[0].indexOf('.') >= 0);

	if (v4 && family == 'ipv6')
		return _('An IPv4 address needs the IPv4 address family');

	if (!v4 && isIPv6(host) && family != 'ipv6')
		return _('An IPv6 address needs the IPv6 address family');

	return true;
}

function checkServerSyntax(s) {
	const colons = s.split(':').length - 1;
	let host = s, port = null;

	if (s.charAt(0) == '[') {
		const end = s.indexOf(']');

		if (end < 0)
			return _('Missing "]" after the IPv6 address');

		host = s.slice(1, end);

		const rest = s.slice(end + 1);

		if (rest != '') {
			if (rest.charAt(0) != ':')
				return _('Expecting [IPv6 address]:port');
			port = rest.slice(1);
		}

		if (!isIPv6(host))
			return _('"%s" is not an IPv6 address').format(host);
	}
	else if (colons == 1) {
		host = s.slice(0, s.indexOf(':'));
		port = s.slice(s.indexOf(':') + 1);

		if (!isIPv4(host) && !isHostname(host))
			return _('"%s" is not a host name or IPv4 address').format(host);
	}
	else if (colons > 1) {
		if (!isIPv6(s))
			return _('Expecting host, host:port or [IPv6 address]:port');
	}
	else if (!isIPv4(host) && !isHostname(host)) {
		return _('"%s" is not a host name or IP address').format(host);
	}

	if (port != null && !isPortNumber(port, false))
		return _('Port "%s" is not a number from 1 to 65535').format(port);

	return true;
}

/* The theme's label class of each state: LuCI themes colour these for light and dark. */
const stateClasses = {
	mapped: 'success', ok: 'success',
	starting: 'notice', running: 'notice',
	retrying: 'warning',
	error: 'important', failed: 'important'
};

return baseclass.extend({
	isIPv4,
	isIPv6,

	/*
	 * stun_server: one server, or several separated by commas. LuCI's
	 * hostport needs a port and knows no [IPv6]:port, lists or families.
	 */
	serverList(value, family) {
		if (value == null || value === '')
			return true;

		for (const raw of String(value).split(',')) {
			const item = raw.trim();

			if (item == '')
				return _('Empty server name');

			const res = checkServer(item, family);

			if (res !== true)
				return res;
		}

		return true;
	},

	/* http_server: exactly one server, the port optional. */
	server(value, family) {
		if (value == null || value === '')
			return true;

		return checkServer(String(value), family);
	},

	/*
	 * interface: a logical network (wan), a device (eth1) or a local
	 * address of the mapping's address family ('' and ipv4: IPv4).
	 */
	iface(value, family) {
		if (value == null || value === '')
			return true;

		value = String(value);

		if (isIPv4(value))
			return (family != 'ipv6') ? true : _('An IPv4 address needs the IPv4 address family');

		if (isIPv6(value)) {
			if (value.indexOf('.') >= 0)
				return _('Expecting a plain IPv6 address');

			return (family == 'ipv6') ? true : _('An IPv6 address needs the IPv6 address family');
		}

		return /^[\x21-\x2e\x30-\x39\x3b-\x7e]{1,15}$/.test(value) ? true
			: _('Expecting a network, a device name (at most 15 characters) or a local IP address');
	},

	/* port: 0, N, A-B (sequential) or A~B (random); LuCI's portrange knows no A~B. */
	portSpec(value) {
		if (value == null || value === '')
			return true;

		value = String(value);

		const m = /^([0-9]+)([-~])([0-9]+)$/.exec(value);

		if (m) {
			if (!isPortNumber(m[1], false) || !isPortNumber(m[3], false))
				return _('A port range is from 1 to 65535');

			if (parseInt(m[1], 10) > parseInt(m[3], 10))
				return _('The range starts above its end');

			return true;
		}

		return isPortNumber(value, true) ? true
			: _('Expecting 0, a port, a range A-B or a random range A~B');
	},

	/* fwmark: 0x1 (hex), 1 (decimal) or 01 (octal), 32 bits. */
	fwmark(value) {
		if (value == null || value === '')
			return true;

		value = String(value);

		let n;

		if (/^0[xX][0-9A-Fa-f]+$/.test(value))
			n = parseInt(value.slice(2), 16);
		else if (/^0[0-7]+$/.test(value))
			n = parseInt(value.slice(1), 8);
		else if (/^(?:0|[1-9][0-9]*)$/.test(value))
			n = parseInt(value, 10);
		else
			return _('Expecting a mark: hexadecimal 0x1, decimal 1 or octal 01');

		return (n <= 4294967295) ? true : _('The mark does not fit in 32 bits');
	},

	/*
	 * interval, stun_cycle, forward_timeout, ttl, timeout: a whole number,
	 * at most max (default 2^31-1). Not LuCI's uinteger: that takes -0,
	 * which the daemon's strconv.ParseUint refuses, and has no upper bound.
	 */
	count(value, max) {
		if (value == null || value === '')
			return true;

		return (/^[0-9]+$/.test(String(value)) && parseInt(value, 10) <= (max ? +max : 2147483647)) ? true
			: (max ? _('Expecting a whole number up to %d').format(+max) : _('Expecting a whole number'));
	},

	/*
	 * Global option memory_limit, as the daemon takes it: MiB from 4 to
	 * 4096, or 0 for the default.
	 */
	memoryLimit(value) {
		if (value == null || value === '')
			return true;

		const n = /^[0-9]+$/.test(String(value)) ? parseInt(value, 10) : NaN;
		return (n === 0 || (n >= 4 && n <= 4096)) ? true
			: _('Expecting 0 (automatic) or a whole number of MiB from 4 to 4096');
	},

	/*
	 * An updater's zone, TSIG key and record names, as the daemon's DNS
	 * encoder takes them: labels of 1 to 63 bytes, at most 255 bytes on
	 * the wire, a trailing dot optional. Not LuCI's hostname: DNS names may
	 * hold underscores (_minecraft._tcp) and any other byte.
	 */
	dnsName(value) {
		/* the daemon drops a trailing dot, and its encoder one more */
		const name = (value == null) ? '' : String(value).trim().replace(/\.\.?$/, '');
		const utf8 = new TextEncoder();
		let wire = 1;

		if (name === '')
			return true;

		for (const label of name.split('.')) {
			const len = utf8.encode(label).length;

			if (len == 0 || len > 63)
				return _('Expecting a DNS name: labels of 1 to 63 bytes between dots');

			wire += 1 + len;
		}

		return (wire <= 255) ? true : _('Expecting a DNS name of at most 255 bytes');
	},

	/* forward_port, srv_priority, srv_weight: 0 to 65535. Not LuCI's port, which takes -0. */
	port(value) {
		if (value == null || value === '')
			return true;

		return isPortNumber(String(value), true) ? true : _('Expecting a port from 0 to 65535');
	},

	/* forward_congestion: a kernel congestion control name. */
	congestion(value) {
		if (value == null || value === '')
			return true;

		return /^[A-Za-z0-9_-]{1,15}$/.test(String(value)) ? true
			: _('Expecting a congestion control name such as cubic or bbr');
	},

	/* notify_script: an absolute path; the daemon runs it without a shell. */
	script(value) {
		if (value == null || value === '')
			return true;

		return /^\/[^\n]*$/.test(String(value)) ? true : _('Expecting an absolute path');
	},

	/* UCI booleans as the daemon reads them; null when not one. */
	bool(value) {
		switch (String(value == null ? '' : value).toLowerCase()) {
		case '1': case 'yes': case 'on': case 'true': case 'enabled':
			return true;
		case '0': case 'no': case 'off': case 'false': case 'disabled':
			return false;
		}

		return null;
	},

	/* The address as one would type it: 1.2.3.4:5 or [2001:db8::1]:5. */
	addr(ip, port) {
		if (!ip)
			return '';

		return `${(ip.indexOf(':') >= 0) ? `[${ip}]` : ip}${port ? `:${port}` : ''}`;
	},

	stateLabel(state) {
		switch (state) {
		case 'starting': return _('Starting');
		case 'mapped':   return _('Mapped');
		case 'retrying': return _('Retrying');
		case 'error':    return _('Error');
		case 'disabled': return _('Disabled');
		case 'ok':       return _('OK');
		case 'running':  return _('Running');
		case 'failed':   return _('Failed');
		case 'idle':     return _('Waiting');
		}

		return state || _('Unknown');
	},

	/* A NAT that is not a full cone, as in "The NAT is %s, not full cone". */
	natName(nat) {
		switch (nat) {
		case 'restricted cone':      return _('a restricted cone');
		case 'port-restricted cone': return _('a port-restricted cone');
		case 'symmetric':            return _('symmetric');
		default:                     return nat;
		}
	},

	/* A problem under a state or in a report: the theme's error or warning box. */
	problem(text, kind) {
		return E('div', { 'class': `alert-message ${kind || 'error'}`, 'style': 'overflow-wrap:anywhere' }, [ E('small', {}, [ text ]) ]);
	},

	/* What decided a reachability verdict (its method). */
	reachMethod(method) {
		switch (method) {
		case 'port-check': return _('port checker');
		case 'hairpin':    return _('hairpin connection');
		case 'rfc5780':    return _('RFC 5780 filtering test');
		}

		return method || '?';
	},

	/*
	 * A reachability verdict, a mapping's (status) or natmap check's: can
	 * outside hosts reach the public address? Reachable in small print,
	 * else the theme's error or warning box.
	 */
	reach(r) {
		const method = this.reachMethod(r.method);

		if (r.state == 'reachable')
			return E('div', {}, [ E('small', {}, [
				_('Reachable from outside (verified %s, %s)').format(
					new Date((r.verified || r.checked) * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }), method)
			]) ]);

		return (r.state == 'unreachable')
			? this.problem(_('Not reachable from outside (%s): %s').format(method, r.detail || '?'), 'error')
			: this.problem(_('Reachability not verified: %s').format(r.detail || '?'), 'warning');
	},

	/* A state badge in the theme's label colours (no colour of its own: dark themes stay readable). */
	stateBadge(state, tooltip) {
		return E('span', {
			'class': `natmap-state label ${stateClasses[state] || ''}`.trim(),
			'data-tooltip': tooltip || null
		}, [ this.stateLabel(state) ]);
	},

	/* Seconds elapsed since a unix time, never negative. */
	age(since) {
		if (!since)
			return null;

		return Math.max(0, Math.floor(Date.now() / 1000) - since);
	},

	duration(secs) {
		return (secs == null) ? '-' : '%t'.format(secs);
	},

	bytes(n) {
		return '%1024.2mB'.format(n || 0);
	}
});
