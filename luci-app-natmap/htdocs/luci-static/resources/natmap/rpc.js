'use strict';
'require baseclass';
'require rpc';

/*
 * The natmap rpcd plugin's methods (ubus call natmap ...), and RPC errors
 * worded for users. The ACL (root/usr/share/rpcd/acl.d) grants exactly
 * these: status is read access, the others write access.
 */

/*
 * An RPC failure's first line: LuCI appends its stack trace to the message
 * of the errors it raises, and names ubus codes as
 * "RPC call to natmap/status failed with ubus code 4: Object not found".
 */
function firstLine(err) {
	return String((err && err.message) ? err.message : err).split('\n')[0];
}

return baseclass.extend({
	/* {"mappings":[...]}, or {"ok":false,"error":"..."} when the daemon fails */
	status: rpc.declare({
		object: 'natmap',
		method: 'status',
		reject: true
	}),

	reload: rpc.declare({
		object: 'natmap',
		method: 'reload',
		reject: true
	}),

	restart: rpc.declare({
		object: 'natmap',
		method: 'restart',
		params: [ 'section' ],
		reject: true
	}),

	/*
	 * natmap check --json's report (is the NAT a full cone?), with the STUN
	 * servers of the first enabled mapping; the plugin bounds it to 15 s.
	 */
	check: rpc.declare({
		object: 'natmap',
		method: 'check',
		params: [ 'udp', 'ipv6' ],
		reject: true
	}),

	/* Is the ubus object natmap (or its method) missing? */
	isMissing(err) {
		return /Object not found|Method not found|ubus code [34]\b/.test(firstLine(err));
	},

	/* An RPC failure in one line a user can read. */
	errorText(err) {
		const msg = firstLine(err);

		if (this.isMissing(err))
			return _('natmap is not available on ubus (is the natmap package installed?)');

		if (/Access denied|Permission denied|ubus code 6\b/.test(msg))
			return _('access denied: this login may not use natmap');

		if (/timed out|Request timeout|ubus code 7\b/i.test(msg))
			return _('no answer in time');

		return msg.replace(/^RPC call to \S+ failed with (?:ubus code|error) -?\d+: /, '');
	}
});
