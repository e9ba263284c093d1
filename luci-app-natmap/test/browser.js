'use strict';
// Services -> NATMap and Status -> Overview in headless Chromium, on the
// OpenWrt userspace of openwrt-lab (see browser_test.go, which runs this).
//
//   node browser.js CONFIG_JSON
//
// CONFIG_JSON: { tool, base, out, lab, stun: [host:port, ...], http, port }:
// the openwrt-lab directory (its browser/luci.js drives Chromium), LuCI's
// URL, the screenshot directory, the lab's address, the STUN and keep-alive
// servers and the bind port for the new mapping.
//
// What the router must do between the browser's steps (stop the daemon,
// read /etc/config/natmap...) the Go test does: this script prints
// "STEP {json}" on stdout and waits for "OK" (or "ERR why") on stdin.
// Anything else it says goes to stderr. Exit 0: every check passed.
const path = require('path');
const readline = require('readline');

const cfg = JSON.parse(process.argv[2]);
const { LuciSession } = require(path.join(cfg.tool, 'browser', 'luci.js'));

const replies = [];
let waiting = null;
readline.createInterface({ input: process.stdin }).on('line', (line) => {
	if (waiting) { const w = waiting; waiting = null; w(line); } else replies.push(line);
});

// host asks the Go test to do (and check) something on the router.
async function host(step, data) {
	log(`host: ${step}`);
	process.stdout.write('STEP ' + JSON.stringify({ step, data: data || {} }) + '\n');
	const line = replies.length ? replies.shift() : await new Promise((r) => { waiting = r; });
	if (line !== 'OK')
		throw new Error(`host step ${step}: ${line}`);
}

const t0 = Date.now();
function log(msg) { process.stderr.write(`${((Date.now() - t0) / 1000).toFixed(1)}s ${msg}\n`); }

function check(ok, what) {
	if (!ok) throw new Error(what);
}

let s;
let shot = 0;
async function screenshot(name) {
	const f = path.join(cfg.out, `${String(++shot).padStart(2, '0')}-${name}.png`);
	await s.screenshot(f);
	log(`screenshot ${f}`);
}

// problems: what the browser reported since the last call that is wrong
// (console errors, page errors, failed requests, HTTP >= 400). Leaving a
// page aborts its polls: those requests are not failures. Save & Apply asks
// cgi-io (/cgi-bin/cgi-exec) for luci-peeraddr, which the lab does not have
// (a router does); LuCI goes on without it.
let seen = 0;
function newProblems() {
	const all = s.problems(/\/cgi-bin\/cgi-exec\?/).filter((e) => !(e.kind == 'requestfailed' && e.text == 'net::ERR_ABORTED'));
	const p = all.slice(seen);
	seen = all.length;
	return p;
}

function noProblems(where) {
	const p = newProblems();
	check(p.length == 0, `${where}: the browser reported ${JSON.stringify(p, null, 1)}`);
}

// The text of the element, '' when absent.
async function text(sel) {
	return s.page.evaluate((sel) => { const e = document.querySelector(sel); return e ? e.innerText : ''; }, sel);
}

// The table row of the mapping whose Comment cell says comment (the
// stock section has none: it shows its name, @natmap[0]), as a selector.
async function row(comment) {
	const sid = await s.page.evaluate((c) => {
		for (const tr of document.querySelectorAll('#cbi-natmap-natmap tr.cbi-section-table-row')) {
			const td = tr.querySelector('td[data-name="comment"]');
			if (td && td.innerText.trim() == c) return tr.getAttribute('data-sid');
		}
		return null;
	}, comment);
	check(sid, `no row for mapping ${comment}`);
	return `#cbi-natmap-natmap tr[data-sid="${sid}"]`;
}

// Click and wait for a notification matching re; old ones matching it are
// removed first.
async function clickForNotice(sel, re) {
	await s.page.evaluate((src) => {
		const re = new RegExp(src);
		document.querySelectorAll('.alert-message').forEach((e) => { if (re.test(e.innerText)) e.remove(); });
	}, re.source);
	await s.page.click(sel);
	const h = await s.page.waitForFunction((src) => {
		const re = new RegExp(src);
		for (const e of document.querySelectorAll('.alert-message'))
			if (re.test(e.innerText)) return e.innerText;
		return null;
	}, re.source, { timeout: 30000 }).catch(() => null);
	const got = h ? await h.jsonValue() : null;
	if (!got) {
		const all = await s.page.evaluate(() => [...document.querySelectorAll('.alert-message')].map((e) => e.innerText));
		throw new Error(`after clicking ${sel}: no notification matching ${re}; have ${JSON.stringify(all)}`);
	}
	return got;
}

// No stack trace or source location in what the page shows.
async function noStackText(where) {
	const t = await s.page.evaluate(() => document.querySelector('#maincontent').innerText);
	check(!/\n\s*at \S|rpc\.js|handleCallReply|ClassConstructor/.test(t), `${where}: the page shows a stack trace:\n${t}`);
}

// Every select in scope shows its selected option's text whole.
async function selectsFit(scope, where) {
	const cut = await s.page.evaluate((scope) => {
		const ctx = document.createElement('canvas').getContext('2d');
		const out = [];
		for (const sel of document.querySelectorAll(scope + ' select')) {
			if (!sel.offsetParent || sel.selectedIndex < 0) continue;   // hidden tab
			const st = getComputedStyle(sel);
			ctx.font = st.font;
			const need = ctx.measureText(sel.options[sel.selectedIndex].text).width;
			// the room for text: the box less padding and the arrow
			const room = sel.clientWidth - parseFloat(st.paddingLeft) - parseFloat(st.paddingRight) - 16;
			if (need > room) out.push(`${sel.id || sel.name}: "${sel.options[sel.selectedIndex].text}" needs ${Math.ceil(need)}px, has ${Math.floor(room)}px`);
		}
		return out;
	}, scope);
	check(cut.length == 0, `${where}: select text cut off: ${cut.join('; ')}`);
}

// Wait until the mapping's row shows state (the page polls every 5 s). The
// badge is the theme's label, which may show it in capitals: its text is
// compared, not how it looks.
async function waitState(comment, label, timeout = 60000) {
	const sel = await row(comment);
	await s.page.waitForFunction(([sel, label]) => {
		const b = document.querySelector(sel + ' td[data-name="_state"] .natmap-state');
		return b && b.textContent.trim() == label;
	}, [sel, label], { timeout }).catch(async () => {
		throw new Error(`mapping ${comment}: state ${JSON.stringify(await text(sel + ' td[data-name="_state"]'))}, want ${label}`);
	});
}

// No element in scope carries a colour or background of its own: colours
// come from the theme's classes, so a dark theme keeps them readable.
async function noInlineColours(scope, where) {
	const bad = await s.page.evaluate((scope) => {
		const out = [];
		for (const root of document.querySelectorAll(scope))
			for (const e of [ root, ...root.querySelectorAll('[style]') ])
				if (e.style && (e.style.color || e.style.background || e.style.backgroundColor || e.style.backgroundImage))
					out.push(`<${e.tagName.toLowerCase()} class="${e.className}" style="${e.getAttribute('style')}">${(e.innerText || '').slice(0, 60)}`);
		return out;
	}, scope);
	check(bad.length == 0, `${where}: inline colours in ${scope}: ${bad.join('; ')}`);
}

// The text of the app's live parts with its colour and the background
// under it (a gradient's colours, or the nearest solid background), keyed
// by the element's place in the page (the polls redraw the elements).
const appParts = '[data-natmap-summary], [data-natmap-check], [data-natmap-cell]';
async function textColours() {
	return s.page.evaluate((parts) => {
		const rgb = (c) => {
			const m = /rgba?\(([^)]*)\)/.exec(c || '');
			if (!m) return null;
			const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number);
			return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
		};
		const under = (e) => {
			for (let n = e; n && n.nodeType == 1; n = n.parentElement) {
				const cs = getComputedStyle(n);
				if (/gradient/.test(cs.backgroundImage))
					return (cs.backgroundImage.match(/rgba?\([^)]*\)/g) || []).map(rgb);
				const bg = rgb(cs.backgroundColor);
				if (bg && bg.a >= 0.5) return [ bg ];
			}
			return [ { r: 255, g: 255, b: 255, a: 1 } ];
		};
		// the part (its data-natmap-* attributes), then the path inside it
		const place = (root, e) => {
			const path = [...root.attributes].filter((a) => a.name.startsWith('data-natmap')).map((a) => `${a.name}=${a.value}`);
			const inner = [];
			for (let n = e; n && n != root; n = n.parentElement)
				inner.unshift(`${n.tagName}:${[...n.parentElement.children].indexOf(n)}`);
			return path.concat(inner).join('/');
		};
		const out = [];
		for (const root of document.querySelectorAll(parts))
			for (const e of [ root, ...root.querySelectorAll('*') ]) {
				const own = [...e.childNodes].some((c) => c.nodeType == 3 && c.textContent.trim() != '');
				if (!own || !e.getClientRects().length) continue;
				out.push({ key: place(root, e), text: e.innerText.slice(0, 60), color: rgb(getComputedStyle(e).color), bg: under(e) });
			}
		return out;
	}, appParts);
}

// WCAG's contrast ratio of two colours.
function contrast(a, b) {
	const lum = (c) => [ c.r, c.g, c.b ].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
		.reduce((s, v, i) => s + v * [ 0.2126, 0.7152, 0.0722 ][i], 0);
	const [ x, y ] = [ lum(a), lum(b) ].sort((p, q) => q - p);
	return (x + 0.05) / (y + 0.05);
}

// The page in the browser's light and dark colour scheme (LuCI's bootstrap
// theme follows prefers-color-scheme): no inline colours, and every text of
// the app's live parts follows the theme (its colour changes with the
// scheme, as the theme's text colours all do, where a fixed colour would
// not) and stays legible on its background in both.
async function lightAndDark(where) {
	await noInlineColours('#view', where);
	const seen = {};
	for (const scheme of [ 'dark', 'light' ]) {
		await s.page.emulateMedia({ colorScheme: scheme });
		await s.page.waitForFunction((dark) => document.documentElement.getAttribute('data-darkmode') == String(dark), scheme == 'dark')
			.catch(() => { throw new Error(`${where}: the theme did not switch to ${scheme} (html data-darkmode)`); });
		seen[scheme] = await textColours();
		check(seen[scheme].length > 0, `${where}: no text in ${appParts}`);
		for (const t of seen[scheme]) {
			const worst = Math.min(...t.bg.map((b) => contrast(t.color, b)));
			check(worst >= 2.5, `${where}, ${scheme}: "${t.text}" has contrast ${worst.toFixed(2)} on its background (${JSON.stringify(t)})`);
		}
		await noInlineColours('#view', `${where}, ${scheme}`);
		await screenshot(`${where.replace(/\W+/g, '-')}-${scheme}`);
	}
	const light = new Map(seen.light.map((t) => [ t.key, t ]));
	let compared = 0;
	for (const d of seen.dark) {
		const l = light.get(d.key);
		if (!l) continue;
		compared++;
		check(JSON.stringify(d.color) != JSON.stringify(l.color),
			`${where}: "${d.text}" has the same colour in light and dark (${JSON.stringify(d.color)}): a colour of its own, not the theme's`);
	}
	check(compared >= seen.dark.length / 2, `${where}: only ${compared} of ${seen.dark.length} texts found again in the light scheme`);
	// on stdout: the Go test logs it
	process.stdout.write(`${where}: ${compared} of ${seen.dark.length} texts follow the theme in light and dark\n`);
}

// Open the page, check the order of its parts.
async function openPage(where) {
	const { heading } = await s.goto('admin/services/natmap');
	check(heading == 'NATMap', `${where}: heading ${heading}`);
	// title, description, status, NAT check, then the mappings
	const order = await s.page.evaluate(() => {
		const v = document.querySelector('#view');
		return [ 'h2', '.cbi-map-descr', '[data-natmap-summary]', '[data-natmap-check]', '#cbi-natmap-natmap' ]
			.map((q) => { const e = v.querySelector(q); return e ? [...v.querySelectorAll('*')].indexOf(e) : -1; });
	});
	check(order.every((n, i) => n >= 0 && (i == 0 || n > order[i - 1])), `${where}: title, description, status, NAT check and mappings out of order: ${order}`);
}

async function main() {
	s = await LuciSession.open(cfg.base, { settleMs: 300, locale: 'en-US' });
	s.page.setDefaultTimeout(30000);
	await s.login();
	noProblems('login');

	// 1. The page as installed: the stock section (disabled, UDP), no daemon.
	await openPage('fresh page');
	await screenshot('fresh');
	noProblems('fresh page');
	const stock = await row('@natmap[0]');
	check(await text(stock + ' td[data-name="udp_mode"]') == 'UDP', `stock mapping's protocol: ${await text(stock + ' td[data-name="udp_mode"]')}`);
	check(/No mapping is enabled/.test(await text('[data-natmap-summary]')), `summary: ${await text('[data-natmap-summary]')}`);
	let n = await clickForNotice(stock + ' .cbi-button-action', /disabled: enable it/);
	log(`restart disabled: ${n}`);

	// 2. Add a mapping in the modal, Save & Apply.
	await s.page.click('#cbi-natmap-natmap .cbi-section-create .cbi-button-add');
	await s.page.waitForSelector('.modal [data-tab="general"]');
	await s.page.check('.modal [data-name="enable"] input[type=checkbox]');
	await s.page.fill('.modal [data-name="comment"] input', 'web');
	await s.page.selectOption('.modal [data-name="udp_mode"] select', '0');
	await s.page.fill('.modal [data-name="port"] input', String(cfg.port));
	await selectsFit('.modal', 'modal, general tab');
	await screenshot('modal-general');
	await s.page.click('.modal .cbi-tabmenu [data-tab="servers"] a');
	for (const srv of cfg.stun) {
		await s.page.fill('.modal [data-name="stun_server"] input[type=text]', srv);
		await s.page.press('.modal [data-name="stun_server"] input[type=text]', 'Enter');
	}
	await s.page.fill('.modal [data-name="http_server"] input', cfg.http);
	await screenshot('modal-servers');
	await s.page.click('.modal .cbi-tabmenu [data-tab="advanced"] a');
	const ph = await s.page.getAttribute('.modal [data-name="notify_script"] input', 'placeholder');
	check(ph == 'none', `notify script placeholder ${JSON.stringify(ph)}, want none (no script ships)`);
	await selectsFit('.modal', 'modal, advanced tab');
	await s.page.click('.modal .cbi-button-save, .modal .cbi-button-positive');
	await s.page.waitForSelector('.modal', { state: 'hidden' });
	await s.page.waitForFunction(() => [...document.querySelectorAll('#cbi-natmap-natmap td[data-name="comment"]')].some((td) => td.innerText.trim() == 'web'));
	n = await clickForNotice((await row('web')) + ' .cbi-button-action', /"web" is not applied yet: save and apply first/);
	log(`restart unsaved: ${n}`);
	await Promise.all([
		s.page.waitForNavigation({ timeout: 120000 }),
		s.page.click('.cbi-page-actions .cbi-button-apply'),
	]);
	await s.waitView();
	await host('applied');
	noProblems('save and apply');

	// 3. The live table: mapped, public address, IP4P, TCP; Restart works.
	await waitState('web', 'Mapped', 90000);
	let web = await row('web');
	const pub = await text(web + ' td[data-name="_public"]');
	check(pub.includes(`${cfg.lab}:${cfg.port}`), `public address ${JSON.stringify(pub)}, want ${cfg.lab}:${cfg.port}`);
	check(/IP4P 2001:[0-9a-f:]+/.test(pub), `no IP4P address in ${JSON.stringify(pub)}`);
	check(await text(web + ' td[data-name="udp_mode"]') == 'TCP', `protocol ${await text(web + ' td[data-name="udp_mode"]')}`);
	check(/1 of 1 enabled mappings are up/.test(await text('[data-natmap-summary]')), `summary: ${await text('[data-natmap-summary]')}`);
	const hist = await text(web + ' td[data-name="_state"] details.natmap-history summary');
	check(/^History: [1-9]\d* sessions, \d+ failed, [1-9]\d* addresses$/.test(hist.trim()), `history ${JSON.stringify(hist)}`);
	await screenshot('mapped');
	await host('mark-restart');
	n = await clickForNotice(web + ' .cbi-button-action', /Mapping "web" restarted/);
	log(`restart: ${n}`);
	await host('restarted');
	await waitState('web', 'Mapped', 60000);
	noProblems('restart');

	// 4. Check NAT (TCP, IPv4): two STUN servers see the same port, and
	// the port checker of the global reachability_url reaches it.
	await s.page.selectOption('.cbi-section:has([data-natmap-check]) select >> nth=0', 'tcp');
	await s.page.click('.cbi-section:has([data-natmap-check]) button');
	await s.page.waitForFunction(() => /Mapping:/.test((document.querySelector('[data-natmap-check]') || {}).innerText || ''), null, { timeout: 45000 })
		.catch(async () => { throw new Error(`NAT check: ${await text('[data-natmap-check]')}`); });
	const verdict = await text('[data-natmap-check]');
	check(/Mapping: endpoint-independent, public port preserved/.test(verdict), `NAT check: ${verdict}`);
	const reach = await text('[data-natmap-check] [data-natmap-check-reach]');
	check(/^Reachable from outside \(verified [^,]+, port checker\)$/.test(reach.trim()), `NAT check's reach: ${JSON.stringify(reach)} in ${verdict}`);
	await screenshot('check');
	noProblems('NAT check');

	// 4b. The status and the check in light and dark.
	await lightAndDark('status and check');
	noProblems('light and dark');

	// 5. The daemon is down.
	await host('stop-daemon');
	await openPage('daemon down');
	check(/The natmap daemon does not answer: .*not running/.test(await text('[data-natmap-summary]')), `summary: ${await text('[data-natmap-summary]')}`);
	n = await clickForNotice((await row('web')) + ' .cbi-button-action', /Cannot restart "web": natmap daemon is not running/);
	log(`restart while down: ${n}`);
	await noStackText('daemon down');
	await noInlineColours('#view', 'daemon down');
	await screenshot('daemon-down');
	noProblems('daemon down');

	// 6. The ubus object is missing.
	await host('remove-object');
	await openPage('no ubus object');
	check(/natmap is not available on ubus/.test(await text('[data-natmap-summary]')), `summary: ${await text('[data-natmap-summary]')}`);
	n = await clickForNotice((await row('web')) + ' .cbi-button-action', /Cannot restart "web": natmap is not available on ubus/);
	log(`restart without object: ${n}`);
	await s.page.click('.cbi-section:has([data-natmap-check]) button');
	await s.page.waitForFunction(() => /The check failed/.test((document.querySelector('[data-natmap-check]') || {}).innerText || ''));
	await noStackText('no ubus object');
	await noInlineColours('#view', 'no ubus object');
	await screenshot('no-ubus-object');
	// the failed ubus calls are answered, not thrown: nothing else to report
	noProblems('no ubus object');

	// 7. Status -> Overview.
	await host('restore');
	await s.goto('admin/status/overview');
	const block = await s.page.waitForFunction(() => {
		for (const t of document.querySelectorAll('table'))
			if (/Public address/.test(t.innerText) && /\bweb\b/.test(t.innerText)) return t.innerText;
		return null;
	}, null, { timeout: 30000 }).then((h) => h.jsonValue()).catch(() => '');
	check(block.includes(`${cfg.lab}:${cfg.port}`) && /\bTCP\b/.test(block) && /Mapped/i.test(block), `overview block: ${JSON.stringify(block)}`);
	const badges = await s.page.evaluate(() => [...document.querySelectorAll('table .natmap-state')].map((e) => e.textContent.trim()));
	check(badges.includes('Mapped'), `overview states: ${JSON.stringify(badges)}`);
	await noInlineColours('#view table:has(.natmap-state)', 'overview');
	await screenshot('overview');
	noProblems('overview');

	// 8. Simplified Chinese.
	await host('chinese');
	await openPage('zh_Hans');
	const zh = await s.page.evaluate(() => ({
		status: (document.querySelector('[data-natmap-summary]').closest('.cbi-section').querySelector('h3') || {}).innerText,
		add: (document.querySelector('#cbi-natmap-natmap .cbi-section-create .cbi-button-add') || {}).innerText,
	}));
	check(zh.status == '状态' && zh.add == '添加映射', `Chinese page: ${JSON.stringify(zh)}`);
	await waitState('web', '已映射', 30000);
	web = await row('web');
	check(await text(web + ' td[data-name="udp_mode"]') == 'TCP', 'protocol in Chinese');
	await screenshot('zh-page');
	await s.page.click(web + ' .cbi-button-edit');
	await s.page.waitForSelector('.modal [data-tab="general"]');
	await selectsFit('.modal', 'Chinese modal');
	await screenshot('zh-modal');
	noProblems('zh_Hans');
}

main().then(async () => {
	await s.close();
	process.exit(0);
}, async (e) => {
	log(`FAIL: ${e && e.stack || e}`);
	if (s) {
		// What the page itself said (console and page errors): the cause.
		for (const p of s.problems())
			log(`page: ${p.kind} ${p.text || ''} ${p.url || ''}`);
		await screenshot('failure').catch(() => {});
		await s.close().catch(() => {});
	}
	process.exit(1);
});
