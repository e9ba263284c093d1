'use strict';
'require baseclass';

/*
 * Shared by the NATMap page and its Status -> Overview block: the
 * validators (each accepts only what the natmap daemon accepts: see
 * internal/config, internal/portspec and internal/cli in the natmap
 * sources; luci_test.go checks them against those parsers) and the
 * formatting of the daemon's status.
 *
 * A validator returns true, or the error message to show.
 */

function isIPv4(s) {
	var m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);

	if (!m)
		return false;

	for (var i = 1; i <= 4; i++)
		if (+m[i] > 255 || (m[i].length > 1 && m[i].charAt(0) == '0'))
			return false;

	return true;
}

function isIPv6(s) {
	var zone = s.indexOf('%');

	if (zone >= 0) {
		if (!/^[A-Za-z0-9_.-]+$/.test(s.slice(zone + 1)))
			return false;
		s = s.slice(0, zone);
	}

	var halves = s.split('::');

	if (halves.length > 2)
		return false;

	var groups = 0;

	for (var h = 0; h < halves.length; h++) {
		if (halves[h] == '')
			continue;

		var parts = halves[h].split(':');

		for (var i = 0; i < parts.length; i++) {
			var last = (h == halves.length - 1 && i == parts.length - 1);

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

	var labels = s.replace(/\.$/, '').split('.');

	for (var i = 0; i < labels.length; i++)
		if (!/^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/.test(labels[i]))
			return false;

	/* all digits and dots: that is an IPv4 address or nothing */
	return !/^[0-9.]+$/.test(s) || isIPv4(s);
}

function isHost(s) {
	return isIPv4(s) || isIPv6(s) || isHostname(s);
}

function isPortNumber(s, zeroOK) {
	if (!/^[0-9]+$/.test(s))
		return false;

	var n = parseInt(s, 10);
	return (n <= 65535) && (zeroOK || n > 0);
}

/*
 * One server: host, host:port, [IPv6]:port or a bare IPv6 address; an
 * address literal must be of the mapping's family ('' and ipv4: IPv4), as
 * the daemon asks; 'any' (the global defaults) takes either.
 */
function checkServer(s, family) {
	var res = checkServerSyntax(s);

	if (res !== true || family == 'any')
		return res;

	var host = s.replace(/^\[([^\]]*)\].*$/, '$1');

	if (host == s && s.split(':').length == 2)
		host = s.slice(0, s.indexOf(':'));

	/* ::ffff:1.2.3.4 is IPv4 to the daemon; a zone may hold dots */
	var v4 = isIPv4(host) || (isIPv6(host) && host.split('%')[0].indexOf('.') >= 0);

	if (v4 && family == 'ipv6')
		return _('An IPv4 address needs the IPv4 address family');

	if (!v4 && isIPv6(host) && family != 'ipv6')
		return _('An IPv6 address needs the IPv6 address family');

	return true;
}

function checkServerSyntax(s) {
	var host = s, port = null, colons = s.split(':').length - 1;

	if (s.charAt(0) == '[') {
		var end = s.indexOf(']');

		if (end < 0)
			return _('Missing "]" after the IPv6 address');

		host = s.slice(1, end);

		var rest = s.slice(end + 1);

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

return baseclass.extend({
	isIPv4: isIPv4,
	isIPv6: isIPv6,
	isHost: isHost,

	/* stun_server: one server, or several separated by commas. */
	serverList: function(value, family) {
		if (value == null || value === '')
			return true;

		var items = String(value).split(',');

		for (var i = 0; i < items.length; i++) {
			var item = items[i].replace(/^\s+|\s+$/g, '');

			if (item == '')
				return _('Empty server name');

			var res = checkServer(item, family);

			if (res !== true)
				return res;
		}

		return true;
	},

	/* http_server: exactly one server. */
	server: function(value, family) {
		if (value == null || value === '')
			return true;

		return checkServer(String(value), family);
	},

	/* forward_target: a host name or an IP address, no port. */
	host: function(value) {
		if (value == null || value === '')
			return true;

		return isHost(String(value)) ? true
			: _('Expecting a host name or an IP address (without port)');
	},

	/*
	 * interface: a logical network (wan), a device (eth1) or a local
	 * address of the mapping's address family ('' and ipv4: IPv4).
	 */
	iface: function(value, family) {
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

	/* port: 0, N, A-B (sequential) or A~B (random). */
	portSpec: function(value) {
		if (value == null || value === '')
			return true;

		value = String(value);

		var m = /^([0-9]+)([-~])([0-9]+)$/.exec(value);

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
	fwmark: function(value) {
		if (value == null || value === '')
			return true;

		value = String(value);

		var n;

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

	/* interval, stun_cycle, forward_timeout: a whole number. */
	count: function(value) {
		if (value == null || value === '')
			return true;

		return (/^[0-9]+$/.test(String(value)) && parseInt(value, 10) <= 2147483647) ? true
			: _('Expecting a whole number');
	},

	/* forward_port: 0 to 65535. */
	port: function(value) {
		if (value == null || value === '')
			return true;

		return isPortNumber(String(value), true) ? true : _('Expecting a port from 0 to 65535');
	},

	/* forward_congestion: a kernel congestion control name. */
	congestion: function(value) {
		if (value == null || value === '')
			return true;

		return /^[A-Za-z0-9_-]{1,15}$/.test(String(value)) ? true
			: _('Expecting a congestion control name such as cubic or bbr');
	},

	/* notify_script: an absolute path; the daemon runs it without a shell. */
	script: function(value) {
		if (value == null || value === '')
			return true;

		return /^\/[^\n]*$/.test(String(value)) ? true : _('Expecting an absolute path');
	},

	/* UCI booleans as the daemon reads them; null when not one. */
	bool: function(value) {
		switch (String(value == null ? '' : value).toLowerCase()) {
		case '1': case 'yes': case 'on': case 'true': case 'enabled':
			return true;
		case '0': case 'no': case 'off': case 'false': case 'disabled':
			return false;
		}

		return null;
	},

	/* The address as one would type it: 1.2.3.4:5 or [2001:db8::1]:5. */
	addr: function(ip, port) {
		if (!ip)
			return '';

		return ((ip.indexOf(':') >= 0) ? '[' + ip + ']' : ip) + (port ? ':' + port : '');
	},

	stateLabel: function(state) {
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

	/* A colour for the state badge; theme independent. */
	stateColor: function(state) {
		switch (state) {
		case 'mapped':   return '#2e7d32';
		case 'ok':       return '#2e7d32';
		case 'starting': return '#1565c0';
		case 'running':  return '#1565c0';
		case 'retrying': return '#ef6c00';
		case 'error':    return '#c62828';
		case 'failed':   return '#c62828';
		}

		return '#757575';
	},

	stateBadge: function(state, tooltip) {
		return E('span', {
			'class': 'natmap-state',
			'style': 'display:inline-block;padding:0 .5em;border-radius:.3em;color:#fff;white-space:nowrap;background:' + this.stateColor(state),
			'data-tooltip': tooltip || null
		}, [ this.stateLabel(state) ]);
	},

	/* Seconds elapsed since a unix time, never negative. */
	age: function(since) {
		if (!since)
			return null;

		return Math.max(0, Math.floor(Date.now() / 1000) - since);
	},

	duration: function(secs) {
		return (secs == null) ? '-' : '%t'.format(secs);
	},

	bytes: function(n) {
		return '%1024.2mB'.format(n || 0);
	}
});
