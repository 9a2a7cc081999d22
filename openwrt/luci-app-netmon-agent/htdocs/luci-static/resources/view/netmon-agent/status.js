'use strict';
'require view';
'require poll';
'require rpc';
'require fs';
'require ui';
'require uci';
'require dom';

/*
 * Status -> Network monitor: the agent's state, a live rate chart and the device table.
 * Data: the status file the agent rewrites every cycle (STATUS_FILE, set by the init script),
 * read through rpcd's file object; whether the service runs comes from procd (service list).
 */

var STATUS_FILE = '/var/run/netmon-agent/status.json';
var HISTORY = 120;       /* chart points kept (10 minutes at the default 5 s cycle) */
var TOP_DEVICES = 3;     /* devices drawn beside the total */
var CHART_HEIGHT = 300;
var SVGNS = 'http://www.w3.org/2000/svg';
var DEVICE_COLORS = [ '#d9534f', '#f0ad4e', '#9b59b6' ];

var callServiceList = rpc.declare({
	object: 'service',
	method: 'list',
	params: [ 'name' ],
	expect: { '': {} }
});

function readStatus() {
	return fs.read(STATUS_FILE).then(function(text) {
		var data = JSON.parse(text);
		if (!L.isObject(data) || !L.isObject(data.status) || !L.isObject(data.snapshot))
			throw new Error(_('unexpected content'));
		return data;
	}).catch(function(err) {
		return { error: err };
	});
}

function serviceState(list) {
	var svc = L.isObject(list) ? list['netmon-agent'] : null,
	    inst = (svc && L.isObject(svc.instances)) ? svc.instances : {},
	    names = Object.keys(inst);

	for (var i = 0; i < names.length; i++)
		if (inst[names[i]].running)
			return { running: true, pid: inst[names[i]].pid };

	return { running: false, known: svc != null };
}

function bytes(n) {
	return '%1024.2mB'.format(n || 0);
}

function bitrate(n) {
	return '%1000.2mbit/s'.format(n || 0);
}

function when(iso) {
	if (!iso)
		return null;
	var d = new Date(iso);
	return isNaN(d) ? iso : d.toLocaleString();
}

/* every capture interface: agent.capture.interfaces when the agent reports several, else the
 * one of agent.capture */
function captureInterfaces(cap) {
	if (Array.isArray(cap.interfaces) && cap.interfaces.length)
		return cap.interfaces.filter(L.isObject);
	return [ { interface: cap.interface, mode: cap.mode, offReason: cap.offReason, packetsDropped: cap.packetsDropped } ];
}

/* whether any device carries a field (columns that only some agents report) */
function hasField(devices, get) {
	for (var i = 0; i < devices.length; i++)
		if (get(devices[i]) != null)
			return true;
	return false;
}

return view.extend({
	history: null,
	lastSeq: null,
	table: null,
	columns: null,

	load: function() {
		return Promise.all([
			L.resolveDefault(callServiceList('netmon-agent'), {}),
			readStatus(),
			L.resolveDefault(uci.load('netmon-agent'), null)
		]);
	},

	/* ---- the agent's state ---- */

	stateRows: function(svc, data) {
		var rows = [],
		    st = data.status || {},
		    snap = data.snapshot || {},
		    agent = snap.agent || {},
		    cap = agent.capture || {},
		    dl = st.delivery || {};

		rows.push([ _('Running'), svc.running
			? _('yes (pid %d)').format(svc.pid)
			: (svc.known ? _('no') : _('no (the service is not started)')) ]);

		if (data.error) {
			var why = {
				NotFoundError: _('the agent has not written its status yet (not running, idle without a platform or a local use, or before its first cycle)'),
				PermissionError: _('no permission to read the status file'),
				UnsupportedError: _('the status file is too large for rpcd (256 KiB): too many devices for this page')
			}[data.error.name] || (data.error.message || String(data.error));
			rows.push([ _('Status'), _('No data: %s').format(why) ]);
			return rows;
		}

		var ports = captureInterfaces(cap);
		rows.push([ _('Capturing on'), ports.map(function(p) {
			return p.mode == 'live'
				? (p.interface || '-')
				: _('%s: capture off (%s)').format(p.interface || '-', p.offReason || _('unknown reason'));
		}).join(', ') ]);
		rows.push([ _('Output'), st.output == 'local'
			? _('this page only: nothing is sent anywhere')
			: [ st.rest ? _('REST') : null, st.websocket ? _('WebSocket') : null ].filter(function(x) { return x; }).join(' + ') ]);

		if (st.output != 'local') {
			rows.push([ _('Last delivery'), dl.lastAttempt
				? '%s: %s'.format(when(dl.lastAttempt), dl.lastResult)
				: (st.rest ? _('none yet') : _('no REST endpoint')) ]);
			rows.push([ _('Last delivered'), when(dl.lastDelivered) || _('never') ]);
			rows.push([ _('Delivered / failed'), '%d / %d'.format(dl.delivered || 0, dl.failed || 0) ]);
			if (dl.websocketUp != null)
				rows.push([ _('WebSocket'), dl.websocketUp ? _('connected') : _('disconnected') ]);
			rows.push([ _('Backlog'), _('%d snapshots waiting').format(agent.backlog || 0) ]);
			rows.push([ _('Lost'), _('%d snapshots').format(agent.lost || 0) ]);
			rows.push([ _('Registered'), st.apiKeySet
				? (st.keyRegistration ? _('yes (key obtained by registration)') : _('yes (API key set)'))
				: (st.keyRegistration ? _('not yet (registration pending)') : _('no API key')) ]);
		}

		rows.push([ _('Devices'), _('%d tracked (table holds %d)').format(cap.devicesTracked || 0, cap.deviceTableCapacity || 0) ]);
		rows.push([ _('Frames'), _('%d seen, %d dropped by the kernel').format(cap.packetsSeen || 0,
			captureInterfaces(cap).reduce(function(n, p) { return n + (p.packetsDropped || 0); }, 0)) ]);
		rows.push([ _('Snapshot'), E('span', {
			'id': 'netmon-snapshot',
			'data-seq': agent.seq,
			'data-run-id': agent.runId
		}, _('#%d at %s (every %d s)').format(agent.seq || 0, when(snap.snapshotTime) || '-', st.cycleSeconds || 0)) ]);

		return rows;
	},

	renderState: function(svc, data) {
		var table = E('table', { 'class': 'table', 'id': 'netmon-state' });

		this.stateRows(svc, data).forEach(function(r) {
			table.appendChild(E('tr', { 'class': 'tr' }, [
				E('td', { 'class': 'td left', 'width': '33%' }, r[0]),
				E('td', { 'class': 'td left' }, r[1])
			]));
		});

		return table;
	},

	renderNotices: function(data) {
		var st = data.status || {},
		    cap = ((data.snapshot || {}).agent || {}).capture || {},
		    out = [];

		if (st.output == 'local')
			out.push(E('div', { 'class': 'alert-message notice', 'id': 'netmon-local' },
				_('Local use: no platform is configured, so the agent runs only for this page. Nothing is sent anywhere.')));

		if (cap.offload && cap.offload.detected)
			out.push(E('div', { 'class': 'alert-message warning', 'id': 'netmon-offload' },
				_('Flow offloading is on (%s): forwarded traffic bypasses the capture, so per-device counts miss it. Turn off software and hardware flow offloading in the firewall settings for complete counts.')
					.format([ cap.offload.software ? _('software') : null, cap.offload.hardware ? _('hardware') : null ].filter(function(x) { return x; }).join(', ') || _('detected'))));

		return E('div', { 'id': 'netmon-notices' }, out);
	},

	/* ---- the chart ---- */

	pushHistory: function(data) {
		var snap = data.snapshot,
		    agent = snap.agent || {},
		    cap = agent.capture || {},
		    net = snap.network || {},
		    devices = Array.isArray(net.connectedDevices) ? net.connectedDevices : [],
		    ifaces = Array.isArray(net.interfaces) ? net.interfaces : [],
		    names = captureInterfaces(cap).map(function(p) { return p.interface; }),
		    rx = 0, tx = 0, point = { seq: agent.seq, devices: {} };

		ifaces.forEach(function(i) {
			if (names.indexOf(i.name) >= 0) {
				rx += i.rxRateBps || 0;
				tx += i.txRateBps || 0;
			}
		});
		point.rx = rx;
		point.tx = tx;
		devices.forEach(function(d) {
			var b = d.bandwidth || {};
			point.devices[d.mac] = {
				rate: (b.rxRateBps || 0) + (b.txRateBps || 0),
				name: d.deviceName || d.ip || d.mac
			};
		});

		this.history.push(point);
		if (this.history.length > HISTORY)
			this.history.shift();
	},

	renderChart: function() {
		var svg = document.createElementNS(SVGNS, 'svg');
		svg.setAttribute('id', 'netmon-chart');
		svg.setAttribute('width', '100%');
		svg.setAttribute('height', CHART_HEIGHT);
		svg.setAttribute('style', 'display:block');

		return E('div', {}, [
			E('div', { 'style': 'width:100%;height:%dpx;border:1px solid #000;background:#fff'.format(CHART_HEIGHT) }, svg),
			E('div', { 'class': 'right' }, E('small', { 'id': 'netmon-chart-scale' }, '-')),
			E('br'),
			E('table', { 'class': 'table', 'id': 'netmon-legend', 'style': 'width:100%;table-layout:fixed' })
		]);
	},

	drawChart: function() {
		var svg = document.getElementById('netmon-chart');
		if (!svg)
			return;

		var width = svg.getBoundingClientRect().width || 800,
		    height = CHART_HEIGHT,
		    hist = this.history,
		    step = width / (HISTORY - 1),
		    x0 = width - (hist.length - 1) * step;

		/* the top devices at the newest point */
		var newest = hist.length ? hist[hist.length - 1].devices : {},
		    top = Object.keys(newest).sort(function(a, b) { return newest[b].rate - newest[a].rate; })
		        .filter(function(mac) { return newest[mac].rate > 0; }).slice(0, TOP_DEVICES);

		var series = [
			{ id: 'rx', label: _('Interface in'), color: 'blue', fill: true, get: function(p) { return p.rx; } },
			{ id: 'tx', label: _('Interface out'), color: 'green', fill: true, get: function(p) { return p.tx; } }
		];
		top.forEach(function(mac, i) {
			series.push({ id: mac, label: newest[mac].name, color: DEVICE_COLORS[i], fill: false,
				get: function(p) { return p.devices[mac] ? p.devices[mac].rate : 0; } });
		});

		var peak = 0;
		series.forEach(function(s) {
			s.values = hist.map(s.get);
			s.peak = Math.max.apply(Math, s.values.concat([ 0 ]));
			s.current = s.values.length ? s.values[s.values.length - 1] : 0;
			s.average = s.values.length ? s.values.reduce(function(a, b) { return a + b; }, 0) / s.values.length : 0;
			peak = Math.max(peak, s.peak);
		});

		/* a round scale above the peak: 1, 2 or 5 times a power of ten */
		var scale = 1000;
		while (scale < peak)
			scale *= (String(scale)[0] == '2') ? 2.5 : 2;

		while (svg.firstChild)
			svg.removeChild(svg.firstChild);

		var add = function(tag, attrs, text) {
			var el = document.createElementNS(SVGNS, tag);
			for (var k in attrs)
				el.setAttribute(k, attrs[k]);
			if (text != null)
				el.appendChild(document.createTextNode(text));
			svg.appendChild(el);
			return el;
		};

		[ 0.25, 0.5, 0.75 ].forEach(function(f) {
			var y = Math.round(height * (1 - f));
			add('line', { x1: 0, y1: y, x2: '100%', y2: y, style: 'stroke:black;stroke-width:0.1' });
			add('text', { x: 10, y: y - 5, style: 'fill:#999999;font-size:9pt' }, bitrate(scale * f));
		});

		series.forEach(function(s) {
			var pts = s.values.map(function(v, j) {
				return '%.1f,%.1f'.format(x0 + j * step, height - v / scale * height);
			});
			if (!pts.length)
				return;
			if (s.fill)
				add('polygon', {
					'data-series': s.id,
					points: '%.1f,%d '.format(x0, height) + pts.join(' ') + ' %.1f,%d'.format(width, height),
					style: 'fill:%s;fill-opacity:0.25;stroke:%s;stroke-width:1'.format(s.color, s.color)
				});
			else
				add('polyline', {
					'data-series': s.id,
					points: pts.join(' '),
					style: 'fill:none;stroke:%s;stroke-width:2'.format(s.color)
				});
		});

		var secs = this.cycle * (HISTORY - 1);
		dom.content(document.getElementById('netmon-chart-scale'),
			_('(%d minute window, %d second interval)').format(Math.round(secs / 60), this.cycle));

		var legend = document.getElementById('netmon-legend');
		dom.content(legend, series.map(function(s) {
			return E('tr', { 'class': 'tr' }, [
				E('td', { 'class': 'td right top' }, E('strong', { 'style': 'border-bottom:2px solid %s'.format(s.color) }, [ s.label ])),
				E('td', { 'class': 'td' }, bitrate(s.current)),
				E('td', { 'class': 'td right top' }, E('strong', {}, [ _('Average:') ])),
				E('td', { 'class': 'td' }, bitrate(s.average)),
				E('td', { 'class': 'td right top' }, E('strong', {}, [ _('Peak:') ])),
				E('td', { 'class': 'td' }, bitrate(s.peak))
			]);
		}));
	},

	/* ---- the device table ---- */

	deviceColumns: function(devices) {
		var cols = [
			{ title: _('Name'), cell: function(d) { return d.deviceName || '-'; } },
			{ title: _('MAC'), cell: function(d) { return d.mac; } },
			{ title: _('IP'), cell: function(d) { return [ d.ip ].concat(d.ipv6 || []).filter(function(x) { return x; }).join(', ') || '-'; } }
		];

		if (hasField(devices, function(d) { return d.interface; }))
			cols.push({ title: _('Interface'), cell: function(d) { return d.interface || '-'; } });

		cols.push(
			{ title: _('Status'), cell: function(d) { return d.status == 'active' ? _('active') : _('inactive'); } },
			{ title: _('RX total'), cell: function(d) { return [ d.bandwidth.rxBytesTotal, bytes(d.bandwidth.rxBytesTotal) ]; } },
			{ title: _('TX total'), cell: function(d) { return [ d.bandwidth.txBytesTotal, bytes(d.bandwidth.txBytesTotal) ]; } },
			{ title: _('RX rate'), cell: function(d) { return [ d.bandwidth.rxRateBps, bitrate(d.bandwidth.rxRateBps) ]; } },
			{ title: _('TX rate'), cell: function(d) { return [ d.bandwidth.txRateBps, bitrate(d.bandwidth.txRateBps) ]; } }
		);

		if (hasField(devices, function(d) { return d.bandwidth.internetRxBytesTotal; })) {
			cols.push(
				{ title: _('Internet RX / TX'), cell: function(d) {
					var b = d.bandwidth, n = (b.internetRxBytesTotal || 0) + (b.internetTxBytesTotal || 0);
					return [ n, '%s / %s'.format(bytes(b.internetRxBytesTotal), bytes(b.internetTxBytesTotal)) ];
				} },
				{ title: _('Local RX / TX'), cell: function(d) {
					var b = d.bandwidth,
					    rx = Math.max(0, b.rxBytesTotal - (b.internetRxBytesTotal || 0)),
					    tx = Math.max(0, b.txBytesTotal - (b.internetTxBytesTotal || 0));
					return [ rx + tx, '%s / %s'.format(bytes(rx), bytes(tx)) ];
				} }
			);
		}

		return cols;
	},

	updateDevices: function(data) {
		var net = (data.snapshot || {}).network || {},
		    devices = (Array.isArray(net.connectedDevices) ? net.connectedDevices : [])
		        .filter(function(d) { return L.isObject(d) && L.isObject(d.bandwidth); }),
		    cols = this.deviceColumns(devices),
		    key = cols.map(function(c) { return c.title; }).join('|'),
		    holder = document.getElementById('netmon-devices-holder');

		if (!holder)
			return;

		if (this.columns !== key) {
			this.columns = key;
			this.table = new ui.Table(cols.map(function(c) { return c.title; }),
				{ id: 'netmon-devices', sortable: true, classes: 'cbi-section-table' },
				E('em', _('No devices seen yet')));
			dom.content(holder, this.table.render());
		}

		this.table.update(devices.map(function(d) {
			return cols.map(function(c) { return c.cell(d); });
		}), E('em', _('No devices seen yet')));
	},

	/* ---- refresh ---- */

	refresh: function(svc, data) {
		dom.content(document.getElementById('netmon-state-holder'), this.renderState(svc, data));
		dom.content(document.getElementById('netmon-notices-holder'), data.error ? [] : this.renderNotices(data));

		if (data.error)
			return;

		this.cycle = (data.status && data.status.cycleSeconds) || 5;

		var seq = (data.snapshot.agent || {}).runId + '/' + (data.snapshot.agent || {}).seq;
		if (seq !== this.lastSeq) {
			this.lastSeq = seq;
			this.pushHistory(data);
			this.updateDevices(data);
		}
		this.drawChart();
	},

	poll: function() {
		return Promise.all([
			L.resolveDefault(callServiceList('netmon-agent'), {}),
			readStatus()
		]).then(L.bind(function(res) {
			this.refresh(serviceState(res[0]), res[1]);
		}, this));
	},

	render: function(res) {
		var svc = serviceState(res[0]),
		    data = res[1];

		this.history = [];
		this.cycle = (data.status && data.status.cycleSeconds) || 5;

		var view = E('div', { 'class': 'cbi-map', 'id': 'netmon-status' }, [
			E('h2', {}, _('Network monitor')),
			E('div', { 'class': 'cbi-map-descr' },
				_('Devices on the LAN and their traffic as the netmon-agent measures them, refreshed every cycle. RX is what a device received, TX what it sent.')),
			E('div', { 'id': 'netmon-notices-holder' }),
			E('div', { 'class': 'cbi-section' }, [
				E('h3', {}, _('Agent')),
				E('div', { 'id': 'netmon-state-holder' })
			]),
			E('div', { 'class': 'cbi-section' }, [
				E('h3', {}, _('Traffic')),
				this.renderChart()
			]),
			E('div', { 'class': 'cbi-section' }, [
				E('h3', {}, _('Devices')),
				E('div', { 'id': 'netmon-devices-holder' })
			])
		]);

		/* the nodes must be in the document before the first refresh (the chart measures itself) */
		requestAnimationFrame(L.bind(function() { this.refresh(svc, data); }, this));

		/* twice per cycle, so a new snapshot shows at most half a cycle late */
		poll.add(L.bind(this.poll, this), Math.max(1, Math.ceil(this.cycle / 2)));

		return view;
	},

	handleSaveApply: null,
	handleSave: null,
	handleReset: null
});
