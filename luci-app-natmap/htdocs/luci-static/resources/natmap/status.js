'use strict';
'require baseclass';
'require uci';
'require natmap.rpc as natrpc';
'require natmap.common as common';

/*
 * The daemon's latest status, shared by the page's parts (LuCI loads a
 * class once, so every 'require natmap.status' gets this one instance),
 * and the daemon's names for LuCI's sections.
 *
 * `ubus call natmap status` lists every section as the daemon names it: a
 * named section by its name, an anonymous one as @natmap[i], its index
 * among the natmap sections of /etc/config/natmap. LuCI knows anonymous
 * sections by their cfgXXXXXX ids, so ref() turns an id into @natmap[i] by
 * its position in uci.sections('natmap', 'natmap'), which lists the
 * sections of that type in file order, named ones included, as libuci
 * counts them. Sections added on the page and not saved yet (newXXXXXX)
 * sort last and have no status; while removals or additions are not
 * applied, the daemon still runs the old file, so a row whose comment,
 * protocol or enable flag differs from what the daemon reports says the
 * changes are not applied.
 */

return baseclass.extend({
	/*
	 * ok is null before the first answer; when it is false, error says why
	 * in one line and missing is true when the ubus object itself is
	 * absent (natmap not installed, or rpcd not reloaded). pending holds
	 * the LuCI ids of the sections with saved changes that are not applied
	 * yet.
	 */
	__init__() {
		this.ok = null;
		this.error = null;
		this.missing = false;
		this.list = [];
		this.bySection = {};
		this.pending = {};
	},

	fetch() {
		return natrpc.status().then((res) => {
			if (!L.isObject(res) || !Array.isArray(res.mappings))
				throw new Error((L.isObject(res) && res.error) ? res.error : _('unexpected answer'));

			this.ok = true;
			this.error = null;
			this.missing = false;
			this.list = res.mappings;
			this.bySection = {};

			for (const m of this.list)
				if (L.isObject(m) && typeof(m.section) == 'string')
					this.bySection[m.section] = m;
		}).catch((err) => {
			this.ok = false;
			this.error = natrpc.errorText(err);
			this.missing = natrpc.isMissing(err);
			this.list = [];
			this.bySection = {};
		});
	},

	/* The sections with saved, not applied changes (ubus uci changes). */
	fetchPending() {
		return L.resolveDefault(uci.changes(), {}).then((changes) => {
			const p = {};

			for (const c of (L.isObject(changes) && Array.isArray(changes.natmap)) ? changes.natmap : [])
				if (Array.isArray(c) && c[1])
					p[c[1]] = true;

			this.pending = p;
		});
	},

	/* The status and the pending changes as they are now. */
	refresh() {
		return Promise.all([ this.fetch(), this.fetchPending() ]);
	},

	/* Does the saved configuration enable a mapping? */
	anyEnabled() {
		return uci.sections('natmap', 'natmap').some((s) => common.bool(s.enable) === true);
	},

	/* The daemon's name for a LuCI section id (see the comment at the top). */
	ref(sid) {
		const s = uci.get('natmap', sid);

		if (!L.isObject(s) || s['.type'] != 'natmap')
			return null;

		if (!s['.anonymous'])
			return sid;

		if (/^new[0-9a-f]{6}$/.test(sid))
			return null;

		const i = uci.sections('natmap', 'natmap').findIndex((s) => s['.name'] == sid);

		return (i >= 0) ? `@natmap[${i}]` : null;
	},

	of(sid) {
		const ref = this.ref(sid);
		return ref ? (this.bySection[ref] || null) : null;
	},

	/* What the user calls a section: its comment, else its name. */
	label(sid) {
		return uci.get('natmap', sid, 'comment') || this.ref(sid) || sid;
	},

	/* Does the daemon run other settings than the ones on this page? */
	notApplied(sid, st) {
		const s = uci.get('natmap', sid) || {},
		      udp = common.bool(s.udp_mode) === true,
		      enabled = common.bool(s.enable) === true;

		return (st.comment || '') != String(s.comment || '').trim() ||
			st.protocol != (udp ? 'udp' : 'tcp') ||
			!!st.enabled != enabled;
	}
});
