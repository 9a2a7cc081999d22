'use strict';
'require view';
'require form';
'require uci';
'require tools.widgets as widgets';

/*
 * Services -> Network monitor: the agent's UCI config (/etc/config/netmon-agent, section 'main').
 * Values are checked here with the agent's own rules; Save & Apply commits and LuCI's apply
 * fires the config trigger, on which procd reloads the service with the new values.
 */

var URL_HTTP = [ 'http', 'https' ];
var URL_WS = [ 'ws', 'wss' ];

function isIPv4(s) {
	var m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
	return !!m && m.slice(1).every(function(o) { return +o <= 255; });
}

/* the agent's URL rules: visible ASCII, an allowed scheme, no credentials, a host name, an
 * IPv4 address or a bracketed IPv6 address, a port 1-65535, '%' escapes complete */
function checkUrl(value, schemes) {
	if (value == null || value === '')
		return true;
	for (var i = 0; i < value.length; i++) {
		var c = value.charCodeAt(i);
		if (c < 0x21 || c > 0x7e)
			return _('the URL contains a space, a control or a non-ASCII character (at %d)').format(i + 1);
	}
	var m = /^([^:\/?#]*):\/\/([^\/?#]*)(.*)$/.exec(value);
	if (!m)
		return _('not a URL (expected %s://host/...)').format(schemes[0]);
	if (schemes.indexOf(m[1].toLowerCase()) < 0)
		return _('scheme "%s" is not one of %s').format(m[1].toLowerCase(), schemes.join(', '));
	var auth = m[2], host = auth, port = null;
	if (auth.indexOf('@') >= 0)
		return _('credentials in the URL are not supported: use the API key');
	if (auth.charAt(0) == '[') {
		var end = auth.indexOf(']');
		if (end < 0)
			return _('unclosed "[" in the host');
		host = auth.substring(1, end);
		if (!/^[0-9a-fA-F:.]+$/.test(host) || host.indexOf(':') < 0)
			return _('"[%s]" is not an IPv6 address').format(host);
		var after = auth.substring(end + 1);
		if (after !== '' && after.charAt(0) != ':')
			return _('unexpected "%s" after the host').format(after);
		port = after !== '' ? after.substring(1) : null;
	}
	else {
		if ((auth.match(/:/g) || []).length > 1)
			return _('an IPv6 address must be in brackets, as in http://[::1]:8080/');
		var colon = auth.indexOf(':');
		if (colon >= 0) {
			host = auth.substring(0, colon);
			port = auth.substring(colon + 1);
		}
		if (host === '')
			return _('the URL has no host');
		if (host.length > 253)
			return _('the host name is longer than 253 characters');
		if (/^[0-9.]+$/.test(host)) {
			if (!isIPv4(host))
				return _('"%s" is not an IPv4 address').format(host);
		}
		else {
			var labels = host.replace(/\.$/, '').split('.');
			for (var j = 0; j < labels.length; j++)
				if (!/^[A-Za-z0-9_-]{1,63}$/.test(labels[j]))
					return _('"%s" is not a host name').format(host);
		}
	}
	if (port != null && !(/^\d{1,5}$/.test(port) && +port >= 1 && +port <= 65535))
		return _('"%s" is not a port (1-65535)').format(port);
	if (/%(?![0-9a-fA-F]{2})/.test(m[3]))
		return _('"%" not followed by two hex digits in the path');
	if (!/^[A-Za-z0-9\-._~!$&'()*+,;=:@\/?%#]*$/.test(m[3]) || (m[3].match(/#/g) || []).length > 1)
		return _('the path contains a character a URL may not hold');
	return true;
}

function checkNumber(value, min, max) {
	if (value == null || value === '')
		return true;
	if (!/^\d+$/.test(value))
		return _('"%s" is not a number').format(value);
	if (+value < min || +value > max)
		return _('%s is out of range (%d..%d)').format(value, min, max);
	return true;
}

function checkRange(value) {
	if (value == null || value === '')
		return true;
	var parts = value.split('/');
	if (parts.length > 2 || !isIPv4(parts[0].trim()))
		return _('"%s" is not an IPv4 address').format(parts[0]);
	if (parts.length == 2 && !(/^\d+$/.test(parts[1].trim()) && +parts[1] <= 32))
		return _('"%s" is not a prefix length (0-32)').format(parts[1]);
	return true;
}

/* INTERFACE: names separated by spaces or commas, each as the kernel accepts it (1 to 15
 * bytes, not "." or "..", no "/", ":", spaces or control characters), none twice, at most
 * MAX_INTERFACES */
var MAX_INTERFACES = 8;

function checkIfnames(value) {
	var names = L.toArray(value).join(' ').split(/[ ,\t]+/).filter(function(n) { return n !== ''; }),
	    seen = {};
	for (var i = 0; i < names.length; i++) {
		var n = names[i];
		if (n.length > 15 || n == '.' || n == '..' || /[\/:\s\x00-\x1f\x7f]/.test(n))
			return _('"%s" is not an interface name (1 to 15 bytes, not "." or "..", no "/", ":" or spaces)').format(n);
		if (seen[n])
			return _('%s is listed twice').format(n);
		seen[n] = true;
	}
	if (names.length > MAX_INTERFACES)
		return _('%d interfaces listed, at most %d').format(names.length, MAX_INTERFACES);
	return true;
}

/* METRICS_LISTEN: IPv4:port or [IPv6]:port, as Rust's SocketAddr parses it */
function checkListen(value) {
	if (value == null || value === '')
		return true;
	var m = /^(?:(\d+\.\d+\.\d+\.\d+)|\[([0-9a-fA-F:.]+)\]):(\d{1,5})$/.exec(value);
	if (!m || (m[1] && !isIPv4(m[1])) || (m[2] && m[2].indexOf(':') < 0) || +m[3] > 65535)
		return _('"%s" is not an address:port (e.g. 127.0.0.1:9101 or [::1]:9101)').format(value);
	return true;
}

function checkText(value) {
	return /[\x00-\x1f\x7f]/.test(value || '') ? _('contains control characters') : true;
}

return view.extend({
	load: function() {
		return uci.load('netmon-agent');
	},

	render: function() {
		var m, s, o;
		var keySet = !!uci.get('netmon-agent', 'main', 'api_key');

		m = new form.Map('netmon-agent', _('Network monitor'),
			_('Settings of the netmon-agent: what it watches and where its snapshots go. Save & Apply restarts the agent with the new values.'));

		s = m.section(form.NamedSection, 'main', 'agent');
		s.addremove = false;
		s.tab('general', _('General Settings'));
		s.tab('advanced', _('Advanced Settings'));

		o = s.taboption('general', form.Flag, 'enabled', _('Enabled'));
		o.default = '1';
		o.rmempty = false;

		o = s.taboption('general', form.Flag, 'local_only', _('Local use only'),
			_('Run the agent just for the Status -> Network monitor page, without a platform: nothing is sent anywhere.'));
		o.default = '0';
		o.rmempty = false;

		o = s.taboption('general', form.Value, 'api_url', _('Platform REST URL'),
			_('http:// or https:// endpoint that receives every snapshot.'));
		o.placeholder = 'https://platform.example/api/monitor';
		o.depends('local_only', '0');
		o.retain = true;
		o.validate = function(sid, v) { return checkUrl(v, URL_HTTP); };

		o = s.taboption('general', form.Value, 'ws_url', _('Platform WebSocket URL'),
			_('ws:// or wss:// endpoint that receives every snapshot in real time.'));
		o.placeholder = 'wss://platform.example/ws/monitor';
		o.depends('local_only', '0');
		o.retain = true;
		o.validate = function(sid, v) { return checkUrl(v, URL_WS); };

		/* write-only: the stored key is never put into the field */
		o = s.taboption('general', form.Value, 'api_key', _('API key'),
			keySet ? _('A key is set. Leave the field empty to keep it, type a new one to replace it.')
			       : _('No key is set here (a key the agent obtained by registration is kept by the agent itself).'));
		o.password = true;
		o.depends('local_only', '0');
		o.retain = true;
		o.placeholder = keySet ? _('(unchanged)') : '';
		o.cfgvalue = function() { return ''; };
		o.remove = function() {};
		o.validate = function(sid, v) {
			return /[\x00-\x20\x7f]/.test(v || '') ? _('contains spaces or control characters') : true;
		};

		if (keySet) {
			o = s.taboption('general', form.Flag, '_clear_key', _('Remove the API key'));
			o.depends({ local_only: '0', api_key: '' });
			o.cfgvalue = function() { return '0'; };
			o.write = function(sid, v) {
				if (v == '1')
					uci.unset('netmon-agent', sid, 'api_key');
			};
			o.remove = function() {};
		}

		o = s.taboption('general', form.Value, 'generate_key_url', _('Key registration URL'),
			_('When no API key is set, the agent registers this router here once and keeps the key it gets.'));
		o.placeholder = 'https://platform.example/api/register';
		o.depends('local_only', '0');
		o.retain = true;
		o.validate = function(sid, v) { return checkUrl(v, URL_HTTP); };

		/* one UCI option holding a space-separated list, as the agent's INTERFACE */
		o = s.taboption('general', widgets.DeviceSelect, 'interface', _('Interfaces'),
			_('The LAN devices to watch. None chosen: the device of the lan network.'));
		o.noaliases = true;
		o.multiple = true;
		o.optional = true;
		o.rmempty = true;
		o.cfgvalue = function(sid) {
			var v = uci.get('netmon-agent', sid, 'interface');
			return v ? L.toArray(v).join(' ').split(/[ ,\t]+/).filter(function(n) { return n !== ''; }) : null;
		};
		o.write = function(sid, v) {
			uci.set('netmon-agent', sid, 'interface', L.toArray(v).join(' '));
		};
		o.validate = function(sid, v) { return checkIfnames(v); };

		o = s.taboption('general', form.Value, 'network_range', _('Network range'),
			_('IPv4 range of the LAN in CIDR notation. Empty: the interface\'s subnet.'));
		o.placeholder = '192.168.1.0/24';
		o.validate = function(sid, v) { return checkRange(v); };

		o = s.taboption('general', form.Value, 'cycle_time', _('Cycle'),
			_('Seconds between snapshots (1-86400).'));
		o.placeholder = '5';
		o.validate = function(sid, v) {
			return (v === '0') ? _('must be at least 1 second') : checkNumber(v, 1, 86400);
		};

		o = s.taboption('general', form.Value, 'scan_interval', _('Scan interval'),
			_('Seconds between ARP scans of the range (0 = never, at most 86400).'));
		o.placeholder = '60';
		o.validate = function(sid, v) { return checkNumber(v, 0, 86400); };

		o = s.taboption('general', form.ListValue, 'log_level', _('Log level'));
		o.value('error', _('Error'));
		o.value('warn', _('Warning'));
		o.value('info', _('Info'));
		o.value('debug', _('Debug'));
		o.default = 'info';

		o = s.taboption('advanced', form.Value, 'server_id', _('Server ID'),
			_('Name of this router on the platform. Empty: the hostname.'));
		o.validate = function(sid, v) { return checkText(v); };

		o = s.taboption('advanced', form.Value, 'debug_url', _('Debug events URL'),
			_('http:// or https:// endpoint for diagnostic events.'));
		o.depends('local_only', '0');
		o.retain = true;
		o.validate = function(sid, v) { return checkUrl(v, URL_HTTP); };

		o = s.taboption('advanced', form.Value, 'ca_file', _('CA bundle'),
			_('PEM file of trusted CAs. Empty: the system bundle.'));
		o.depends('local_only', '0');
		o.retain = true;
		o.validate = function(sid, v) { return checkText(v); };

		o = s.taboption('advanced', form.Value, 'http_timeout', _('HTTP timeout'),
			_('Seconds one platform call may take, connect included (1-300).'));
		o.placeholder = '5';
		o.depends('local_only', '0');
		o.retain = true;
		o.validate = function(sid, v) { return checkNumber(v, 1, 300); };

		o = s.taboption('advanced', form.Value, 'metrics_listen', _('Prometheus metrics'),
			_('address:port serving /metrics, e.g. 127.0.0.1:9101. Empty: off. Also a local use: the agent runs for it without a platform.'));
		o.placeholder = '127.0.0.1:9101';
		o.validate = function(sid, v) { return checkListen(v); };

		o = s.taboption('advanced', form.Value, 'backlog_kb', _('Backlog (KiB)'),
			_('RAM for snapshots waiting for the REST endpoint (0-1048576).'));
		o.placeholder = '1024';
		o.depends('local_only', '0');
		o.retain = true;
		o.validate = function(sid, v) { return checkNumber(v, 0, 1048576); };

		o = s.taboption('advanced', form.Value, 'device_table_size', _('Device table size'),
			_('Devices tracked at most, fixed when the agent starts (1-65536).'));
		o.placeholder = '256';
		o.validate = function(sid, v) { return checkNumber(v, 1, 65536); };

		o = s.taboption('advanced', form.Flag, 'promisc', _('Promiscuous capture'),
			_('Also see traffic between other devices on the LAN.'));
		o.default = '1';
		o.rmempty = false;

		o = s.taboption('advanced', widgets.NetworkSelect, 'trigger_interface', _('Restart with network'),
			_('The agent restarts when this network comes up.'));
		o.nocreate = true;
		o.optional = true;

		o = s.taboption('advanced', form.Value, 'user', _('Run as user'),
			_('The agent drops to this user (with CAP_NET_RAW only) after opening its capture.'));
		o.placeholder = 'netmon';
		o.validate = function(sid, v) { return checkText(v); };

		return m.render();
	}
});
