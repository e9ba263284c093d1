'use strict';
'require baseclass';
'require uci';
'require natmap.rpc as natrpc';
'require natmap.common as common';
'require natmap.status as status';
'require natmap.render as render';

/*
 * What the page's buttons do: restart a mapping, make the daemon reload its
 * configuration, and the poll that keeps the live parts current. Each says
 * how it went in a notification.
 */

return baseclass.extend({
	/* The status now, drawn into the page (the poll, every 5 s). */
	refresh() {
		return status.refresh().then(() => render.update());
	},

	/*
	 * Restart one mapping. The daemon restarts a disabled mapping too
	 * (into the same disabled state), so the page says why there is
	 * nothing to restart instead of asking it.
	 */
	restart(sid) {
		/* The status and the pending changes as they are now, not at the last poll. */
		return status.refresh().then(() => {
			const ref = status.ref(sid),
			      st = status.of(sid),
			      label = status.label(sid),
			      enabled = st ? !!st.enabled : (common.bool(uci.get('natmap', sid, 'enable')) === true);

			if (!ref)
				return render.notify(_('Mapping "%s" is new: save and apply it first.').format(label), true);

			if (!enabled)
				return render.notify(_('Mapping "%s" is disabled: enable it, then save and apply.').format(label), true);

			if (!st && (status.ok !== false || status.pending[sid]))
				return render.notify(_('Mapping "%s" is not applied yet: save and apply first.').format(label), true);

			if (status.ok === false)
				return render.notify(_('Cannot restart "%s": %s').format(label, status.error), true);

			return natrpc.restart(ref).then((res) => {
				if (L.isObject(res) && res.ok)
					render.notify(_('Mapping "%s" restarted.').format(label));
				else
					render.notify(_('Restart failed: %s').format((L.isObject(res) && res.error) || _('no answer')), true);
			}).catch((err) => {
				render.notify(_('Restart failed: %s').format(natrpc.errorText(err)), true);
			});
		}).then(() => render.update());
	},

	/* The daemon re-reads /etc/config/natmap; only changed mappings restart. */
	reload() {
		return natrpc.reload().then((res) => {
			if (L.isObject(res) && res.ok)
				render.notify(_('The daemon re-read /etc/config/natmap.'));
			else
				render.notify(_('Reload failed: %s').format((L.isObject(res) && res.error) || _('no answer')), true);
		}).catch((err) => {
			render.notify(_('Reload failed: %s').format(natrpc.errorText(err)), true);
		}).then(() => this.refresh());
	}
});
