//! Configuration: built-in defaults < config file (`KEY=VALUE`, the seed's /etc/monitor.conf
//! format) < environment `NETMON_<KEY>` < command-line flags. Parsed and validated once into a
//! `Config`; every bad value is reported as `WHERE: KEY: reason` (WHERE is `FILE:LINE`, the
//! environment variable or the flag) and exits 2.
//!
//! Adding a key: one line in `KEYS`, one field in `Config`, one line in `Config::from_layers`.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::addr::Ipv4Cidr;
use crate::log::Level;
pub use crate::ship::url::Url;

/// The config file read when none is named.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/netmon-agent.conf";

/// The most read of a config file: a real one is a few hundred bytes; 1 MiB leaves room for
/// any amount of comments and still refuses `--config /dev/zero` or a runaway file at once.
pub const FILE_LIMIT: usize = 1 << 20;

/// The longest value accepted: longer than any URL, path (PATH_MAX) or key worth having.
pub const VALUE_LIMIT: usize = 4096;

/// Unknown keys named one by one per source (file or environment); the rest are counted.
const UNKNOWN_KEYS_SHOWN: usize = 10;

/// Every key the agent knows, with its one-line description (used by `check`; docs/configuration.md lists them too).
pub const KEYS: &[(&str, &str)] = &[
    (
        "SERVER_ID",
        "name of this agent on the platform (default: the hostname)",
    ),
    (
        "SERVER_IP",
        "IPv4 reported as serverIp (default: the capture interface's IPv4)",
    ),
    (
        "INTERFACE",
        "LAN interface(s) to watch, a space- or comma-separated list (default: br-lan if present, else the default route's)",
    ),
    (
        "NETWORK_RANGE",
        "IPv4 range of the LAN in CIDR, or IFACE=CIDR per interface (default: each interface's subnet)",
    ),
    ("CYCLE_TIME", "seconds between snapshots (default 5)"),
    (
        "PLATFORM_API_URL",
        "REST endpoint (http/https) receiving each snapshot",
    ),
    (
        "PLATFORM_WS_URL",
        "WebSocket endpoint (ws/wss) receiving each snapshot in real time",
    ),
    (
        "DEBUG_API_URL",
        "endpoint (http/https) for diagnostic events",
    ),
    (
        "GENERATE_KEY_URL",
        "endpoint (http/https) that issues an API key (`register`)",
    ),
    ("API_KEY", "bearer key for the platform (never logged)"),
    (
        "API_KEY_FILE",
        "file holding the API key; registration stores the issued key there (default: none, the key goes into the config file)",
    ),
    ("LOG_LEVEL", "error, warn, info or debug (default info)"),
    (
        "LOG_TARGET",
        "stderr, or syslog (/dev/log, facility daemon; default stderr)",
    ),
    (
        "DEVICE_TABLE_SIZE",
        "devices tracked at most, fixed at start (default 256, 1..65536)",
    ),
    (
        "DEVICE_EXPIRE",
        "seconds without a sign before a device is forgotten (default 3600)",
    ),
    (
        "DEVICE_TIMEOUT",
        "cycles without a sign before a device is inactive (default 3)",
    ),
    (
        "PROMISC",
        "1 to capture in promiscuous mode, 0 not to (default 1)",
    ),
    ("RING_KB", "capture ring size in KiB (default 1024)"),
    (
        "METRICS_LISTEN",
        "address:port serving Prometheus metrics at /metrics, e.g. 127.0.0.1:9101 (default: off)",
    ),
    (
        "SCAN_INTERVAL",
        "seconds between ARP scans, 0 = never (default 60)",
    ),
    (
        "SCAN_RATE",
        "ARP scan pacing in bits/s (default 256000, like arp-scan)",
    ),
    ("SCAN_RETRIES", "who-has tries per address (default 2)"),
    (
        "SCAN_FORCE",
        "1 to allow scanning ranges larger than /16 (default 0)",
    ),
    (
        "DISK_REMOTE",
        "1 to report network and FUSE file systems (nfs, cifs, sshfs, fuse.*, ...) in the disk metrics; their statfs can hang the agent (default 0)",
    ),
    (
        "HTTP_TIMEOUT",
        "seconds one platform call may take, connect included (default 5)",
    ),
    (
        "HTTP_KEEPALIVE",
        "1 to keep the REST connection open between POSTs (default 1)",
    ),
    (
        "BACKLOG_KB",
        "RAM for snapshots waiting for the REST endpoint (default 1024)",
    ),
    (
        "BACKLOG_DIR",
        "directory to spool the backlog to disk (default: none, RAM only)",
    ),
    (
        "CA_FILE",
        "PEM bundle of trusted CAs (default: the system bundle)",
    ),
    (
        "STATUS_FILE",
        "write the latest snapshot and the agent's state here every cycle, for a local page (LuCI)",
    ),
    (
        "LEASE_FILE",
        "dnsmasq leases file for device names (default: /tmp/dhcp.leases and /var/lib/misc/dnsmasq.leases)",
    ),
    (
        "RUN_AS_USER",
        "user to switch to after the capture socket is open (default: none)",
    ),
    (
        "PROC_ROOT",
        "where /proc is read from (default /proc; for tests)",
    ),
    (
        "SYS_ROOT",
        "where /sys is read from (default /sys; for tests)",
    ),
];

/// Keys of the seed's config that we accept and ignore without a warning.
const SEED_IGNORED: &[&str] = &[];

/// The API key. Its Display and Debug never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a key.
    pub fn new(s: String) -> Secret {
        Secret(s)
    }
    /// The key itself, for the Authorization header and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted, {} chars>", self.0.chars().count())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Where a value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A line of a config file.
    File {
        /// The file.
        path: PathBuf,
        /// Line number, from 1.
        line: usize,
    },
    /// An environment variable (its name).
    Env(String),
    /// A command-line flag (as typed).
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line } => write!(f, "{}:{}", path.display(), line),
            Origin::Env(var) => write!(f, "environment {var}"),
            Origin::Flag(flag) => write!(f, "{flag}"),
        }
    }
}

/// Why the configuration cannot be loaded (exit code 2).
#[derive(Debug)]
pub enum ConfigError {
    /// A value that does not parse or is out of range.
    Value {
        /// Where the value came from.
        origin: Origin,
        /// The key.
        key: String,
        /// What is wrong with the value (never the value of API_KEY).
        reason: String,
    },
    /// A line of the config file that is not `KEY=VALUE`.
    Syntax {
        /// The file.
        path: PathBuf,
        /// Line number, from 1.
        line: usize,
        /// What is wrong with the line.
        reason: String,
    },
    /// The config file named with --config cannot be read (or is not a regular file, or is
    /// larger than FILE_LIMIT).
    Read {
        /// The file.
        path: PathBuf,
        /// Why it cannot be read.
        source: crate::sys::fs::ReadError,
    },
    /// An environment variable whose name starts with NETMON_ but is not UTF-8 (`var` is its
    /// name with the bad bytes replaced).
    EnvName {
        /// The variable's name, bad bytes replaced.
        var: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Value {
                origin,
                key,
                reason,
            } => write!(f, "{origin}: {key}: {reason}"),
            ConfigError::Syntax { path, line, reason } => {
                write!(f, "{}:{}: {reason}", path.display(), line)
            }
            ConfigError::Read { path, source } => {
                write!(f, "{}: cannot read config: {source}", path.display())
            }
            ConfigError::EnvName { var } => write!(
                f,
                "environment {var}: the variable's name is not valid UTF-8"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

/// One `KEY=VALUE` setting and where it came from.
#[derive(Debug, Clone)]
pub struct Setting {
    /// The key, upper case.
    pub key: String,
    /// The value, unquoted.
    pub value: String,
    /// Where it came from.
    pub origin: Origin,
}

/// Parses config-file text. Pure: returns the settings in file order and the warnings
/// (unknown keys, with their line; after the first ten, one line with the count). A UTF-8
/// byte-order mark at the start is skipped. Blank lines and `#` comments are skipped;
/// `export KEY=V` is accepted (shell-sourced configs); values may be quoted with `"` or `'`;
/// an unquoted value ends at a `#` that follows whitespace (a comment, as in the shell), so
/// `KEY= # note` is an empty value while URLs keep their `#fragment`.
pub fn parse_file(text: &str, path: &Path) -> Result<(Vec<Setting>, Vec<String>), ConfigError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut settings = Vec::new();
    let mut warnings = Vec::new();
    let mut unknown = 0usize;
    for (idx, raw) in text.lines().enumerate() {
        let line_no = idx + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line
            .strip_prefix("export ")
            .map(str::trim_start)
            .unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err(ConfigError::Syntax {
                path: path.to_owned(),
                line: line_no,
                reason: format!("expected KEY=VALUE, found '{}'", shown(line)),
            });
        };
        let key = key.trim();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(ConfigError::Syntax {
                path: path.to_owned(),
                line: line_no,
                reason: format!("'{}' is not a key name", shown(key)),
            });
        }
        let key = key.to_ascii_uppercase();
        let origin = Origin::File {
            path: path.to_owned(),
            line: line_no,
        };
        let value = unquote(value).map_err(|reason| ConfigError::Value {
            origin: origin.clone(),
            key: key.clone(),
            reason,
        })?;
        if !is_known(&key) {
            if !SEED_IGNORED.contains(&key.as_str()) {
                unknown += 1;
                if unknown <= UNKNOWN_KEYS_SHOWN {
                    warnings.push(format!(
                        "{}:{}: unknown key {} ignored",
                        path.display(),
                        line_no,
                        shown(&key)
                    ));
                }
            }
            continue;
        }
        settings.push(Setting { key, value, origin });
    }
    if unknown > UNKNOWN_KEYS_SHOWN {
        warnings.push(format!(
            "{}: {} more unknown keys ignored ({unknown} in all)",
            path.display(),
            unknown - UNKNOWN_KEYS_SHOWN
        ));
    }
    Ok((settings, warnings))
}

/// Config-file bytes as text: a file that is not UTF-8 is an error naming the line.
pub fn file_text<'a>(bytes: &'a [u8], path: &Path) -> Result<&'a str, ConfigError> {
    std::str::from_utf8(bytes).map_err(|e| {
        let good = &bytes[..e.valid_up_to()];
        ConfigError::Syntax {
            path: path.to_owned(),
            line: good.iter().filter(|&&b| b == b'\n').count() + 1,
            reason: format!(
                "not valid UTF-8 (byte {} of the line)",
                good.len() - good.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1) + 1
            ),
        }
    })
}

/// A value or name as it may appear in a message: at most 40 characters, control and invisible
/// characters (a byte-order mark, zero-width spaces, direction marks) written as `\u{feff}`, and
/// the full length said when cut.
pub fn shown(s: &str) -> String {
    let invisible = |c: char| {
        c.is_control()
            || matches!(c, '\u{00ad}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2064}' | '\u{feff}')
    };
    let clean = |s: &str| -> String {
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            if invisible(c) {
                out.push_str(&format!("\\u{{{:04x}}}", c as u32));
            } else {
                out.push(c);
            }
        }
        out
    };
    if s.chars().count() <= 40 {
        clean(s)
    } else {
        let head: String = s.chars().take(40).collect();
        format!("{}... ({} bytes)", clean(&head), s.len())
    }
}

/// The value part of a line (everything after the first `=`), unquoted, its comment removed.
fn unquote(raw: &str) -> Result<String, String> {
    let v = raw.trim();
    for q in ['"', '\''] {
        if let Some(rest) = v.strip_prefix(q) {
            let Some(end) = rest.find(q) else {
                return Err(format!("missing closing {q}"));
            };
            let after = rest[end + 1..].trim();
            if !after.is_empty() && !after.starts_with('#') {
                return Err(format!("unexpected text after the closing {q}"));
            }
            return Ok(rest[..end].to_owned());
        }
    }
    // Unquoted: a comment starts at a '#' that follows whitespace, the whitespace after the
    // '=' included (`KEY= # note` is empty; `KEY=#x` is "#x", as in the shell).
    let bytes = raw.as_bytes();
    let end = (1..bytes.len())
        .find(|&i| bytes[i] == b'#' && bytes[i - 1].is_ascii_whitespace())
        .unwrap_or(bytes.len());
    Ok(raw[..end].trim().to_owned())
}

/// True for a key of [`KEYS`].
pub fn is_known(key: &str) -> bool {
    KEYS.iter().any(|(k, _)| *k == key)
}

/// `NETMON_*` variables as (name, value) text, and NETMON_CONFIG.
pub type EnvVars = (Vec<(String, String)>, Option<PathBuf>);

/// The environment's `NETMON_*` variables as text. Other variables are not looked at (a
/// non-UTF-8 one is none of our business); a `NETMON_*` name or value that is not UTF-8 is an
/// error naming the variable. NETMON_CONFIG, a path, is returned apart and may be any bytes.
pub fn env_vars(
    vars: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> Result<EnvVars, ConfigError> {
    use std::os::unix::ffi::OsStrExt;
    let mut out = Vec::new();
    let mut config = None;
    for (name, value) in vars {
        if !name.as_bytes().starts_with(b"NETMON_") {
            continue;
        }
        let Some(name) = name.to_str() else {
            return Err(ConfigError::EnvName {
                var: shown(&name.to_string_lossy()),
            });
        };
        if name == "NETMON_CONFIG" {
            config = Some(PathBuf::from(value));
            continue;
        }
        let Some(value) = value.to_str() else {
            return Err(ConfigError::Value {
                origin: Origin::Env(shown(name)),
                key: shown(&name["NETMON_".len()..]),
                reason: "the value is not valid UTF-8".into(),
            });
        };
        out.push((name.to_owned(), value.to_owned()));
    }
    Ok((out, config))
}

/// Settings from the environment: every `NETMON_<KEY>` with a known KEY (unknown ones warn,
/// the first ten by name, the rest counted).
pub fn env_settings(vars: impl Iterator<Item = (String, String)>) -> (Vec<Setting>, Vec<String>) {
    let mut settings = Vec::new();
    let mut warnings = Vec::new();
    let mut unknown = 0usize;
    for (var, value) in vars {
        let Some(key) = var.strip_prefix("NETMON_") else {
            continue;
        };
        if key == "CONFIG" {
            continue; // the config path itself, handled by the caller
        }
        if !is_known(key) {
            unknown += 1;
            if unknown <= UNKNOWN_KEYS_SHOWN {
                warnings.push(format!(
                    "environment {}: unknown key {} ignored",
                    shown(&var),
                    shown(key)
                ));
            }
            continue;
        }
        settings.push(Setting {
            key: key.to_owned(),
            value,
            origin: Origin::Env(var.clone()),
        });
    }
    if unknown > UNKNOWN_KEYS_SHOWN {
        warnings.push(format!(
            "environment: {} more unknown NETMON_ keys ignored ({unknown} in all)",
            unknown - UNKNOWN_KEYS_SHOWN
        ));
    }
    (settings, warnings)
}

/// The validated configuration the whole program runs on.
#[derive(Debug, Clone)]
pub struct Config {
    /// The config file that was read (None when the default one does not exist).
    pub source: Option<PathBuf>,
    /// SERVER_ID.
    pub server_id: String,
    /// SERVER_IP.
    pub server_ip: Option<Ipv4Addr>,
    /// The first of `interfaces` (the one `capture.interface` and `serverIp` refer to).
    pub interface: Option<String>,
    /// INTERFACE: every interface captured (empty: detected, then only `interface`).
    pub interfaces: Vec<String>,
    /// The range of the first interface.
    pub network_range: Option<Ipv4Cidr>,
    /// NETWORK_RANGE's IFACE=CIDR entries for the other interfaces (theirs default to their
    /// subnet).
    pub network_ranges: Vec<(String, Ipv4Cidr)>,
    /// CYCLE_TIME.
    pub cycle: Duration,
    /// PLATFORM_API_URL.
    pub platform_api_url: Option<Url>,
    /// PLATFORM_WS_URL.
    pub platform_ws_url: Option<Url>,
    /// DEBUG_API_URL.
    pub debug_api_url: Option<Url>,
    /// GENERATE_KEY_URL.
    pub generate_key_url: Option<Url>,
    /// API_KEY.
    pub api_key: Option<Secret>,
    /// LOG_LEVEL.
    pub log_level: Level,
    /// LOG_TARGET.
    pub log_target: crate::log::Target,
    /// API_KEY_FILE.
    pub api_key_file: Option<PathBuf>,
    /// DEVICE_TABLE_SIZE.
    pub device_table_size: usize,
    /// DEVICE_EXPIRE (zero: never).
    pub device_expire: Duration,
    /// DEVICE_TIMEOUT, in cycles.
    pub device_timeout_cycles: u32,
    /// PROMISC.
    pub promisc: bool,
    /// RING_KB.
    pub ring_kb: u32,
    /// METRICS_LISTEN: where `/metrics` is served (None: off).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// SCAN_INTERVAL (zero: no scanning).
    pub scan_interval: Duration,
    /// SCAN_RATE, bits/s.
    pub scan_rate_bps: u64,
    /// SCAN_RETRIES.
    pub scan_retries: u32,
    /// SCAN_FORCE.
    pub scan_force: bool,
    /// HTTP_TIMEOUT.
    pub http_timeout: Duration,
    /// HTTP_KEEPALIVE: keep the REST connection (and its TLS session) open between POSTs.
    pub http_keep_alive: bool,
    /// BACKLOG_KB.
    pub backlog_kb: u32,
    /// BACKLOG_DIR.
    pub backlog_dir: Option<PathBuf>,
    /// DISK_REMOTE: network and FUSE file systems in metrics.disk.
    pub disk_remote: bool,
    /// CA_FILE.
    pub ca_file: Option<PathBuf>,
    /// RUN_AS_USER.
    pub run_as_user: Option<String>,
    /// LEASE_FILE.
    pub lease_file: Option<PathBuf>,
    /// STATUS_FILE.
    pub status_file: Option<PathBuf>,
    /// PROC_ROOT.
    pub proc_root: PathBuf,
    /// SYS_ROOT.
    pub sys_root: PathBuf,
    /// Warnings found while loading (unknown keys, detection that failed), printed once.
    pub warnings: Vec<String>,
}

/// Looks up the last setting of a key (later layers override earlier ones).
struct Layers<'a> {
    settings: &'a [Setting],
}

impl<'a> Layers<'a> {
    fn get(&self, key: &str) -> Option<&'a Setting> {
        self.settings.iter().rev().find(|s| s.key == key)
    }

    /// An error about the value of `key` (which is set), naming where it came from.
    fn value_error(&self, key: &str, reason: String) -> ConfigError {
        let s = self.get(key);
        ConfigError::Value {
            origin: s.map_or(Origin::Flag(key.to_owned()), |s| s.origin.clone()),
            key: key.to_owned(),
            reason,
        }
    }

    /// Parses the key with `parse`, or returns `default` when it is unset or empty.
    fn parse<T>(
        &self,
        key: &str,
        default: T,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        match self.get(key) {
            Some(s) if !s.value.trim().is_empty() => {
                let v = s.value.trim();
                let err = |reason| ConfigError::Value {
                    origin: s.origin.clone(),
                    key: key.to_owned(),
                    reason,
                };
                if v.len() > VALUE_LIMIT {
                    return Err(err(format!(
                        "the value is {} bytes long, more than {VALUE_LIMIT}",
                        v.len()
                    )));
                }
                // A long value is shown cut, with its length, and invisible characters escaped,
                // wherever a reason quotes it.
                parse(v).map_err(|reason| {
                    let visible = shown(v);
                    match visible != v {
                        true => err(reason.replace(v, &visible)),
                        false => err(reason),
                    }
                })
            }
            _ => Ok(default),
        }
    }

    fn opt<T>(
        &self,
        key: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        self.parse(key, None, |v| parse(v).map(Some))
    }
}

/// Room a snapshot needs besides its devices (agent, metrics, interfaces, disks): a router's
/// is 2-4 KB; this leaves room for some hundred interfaces and disks.
pub const SNAPSHOT_BASE_BYTES: usize = 64 << 10;

/// Whether a snapshot of a full table of `devices` can always ship: it must fit the REST
/// backlog (`backlog`: its bytes when REST is on; otherwise a snapshot whose POST failed is
/// lost at once) and the WebSocket's send buffer. Err: why not and what would do.
pub fn shippable(devices: usize, backlog: Option<usize>, websocket: bool) -> Result<(), String> {
    let per = crate::devices::max_device_json_bytes();
    let full = SNAPSHOT_BASE_BYTES + devices * per;
    let most = |room: usize| room.saturating_sub(SNAPSHOT_BASE_BYTES) / per;
    let mib = |b: usize| b as f64 / (1 << 20) as f64;
    if let Some(room) = backlog.filter(|&room| full > room) {
        // A backlog below the base room fits no table size: name only the backlog then.
        let table = match most(room) {
            0 => String::new(),
            n => format!("DEVICE_TABLE_SIZE to at most {n} or "),
        };
        return Err(format!(
            "{devices} devices make a snapshot of up to {:.1} MiB ({per} bytes a device), more than BACKLOG_KB holds ({} KiB), so a snapshot whose POST failed would be lost at once; set {table}BACKLOG_KB to at least {}",
            mib(full),
            room / 1024,
            full.div_ceil(1024)
        ));
    }
    let ws = crate::ship::ws::MAX_SEND;
    if websocket && full > ws {
        return Err(format!(
            "{devices} devices make a snapshot of up to {:.1} MiB ({per} bytes a device), more than a WebSocket message may be ({:.0} MiB); set DEVICE_TABLE_SIZE to at most {}",
            mib(full),
            mib(ws),
            most(ws)
        ));
    }
    Ok(())
}

fn number<T: std::str::FromStr + PartialOrd + fmt::Display + Copy>(
    min: T,
    max: T,
) -> impl Fn(&str) -> Result<T, String> {
    move |v| match v.parse::<T>() {
        Ok(n) if n >= min && n <= max => Ok(n),
        Ok(_) => Err(format!("{v} is out of range ({min}..={max})")),
        Err(_) => Err(format!("'{v}' is not a number")),
    }
}

fn seconds(min: u64, max: u64) -> impl Fn(&str) -> Result<Duration, String> {
    move |v| {
        let n: u64 = number(min, max)(v)?;
        Ok(Duration::from_secs(n))
    }
}

fn boolean(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Ok(true),
        "0" | "no" | "false" | "off" => Ok(false),
        _ => Err(format!("'{v}' is not a boolean (1/0, yes/no, true/false)")),
    }
}

fn url(schemes: &'static [&'static str]) -> impl Fn(&str) -> Result<Url, String> {
    move |v| Url::parse(v, schemes)
}

/// METRICS_LISTEN: `a.b.c.d:port` or `[v6]:port`, with an error that shows both forms.
pub fn listen_addr(v: &str) -> Result<std::net::SocketAddr, String> {
    let bad = || format!("'{v}' is not an address:port (e.g. 127.0.0.1:9101 or [::1]:9101)");
    let (host, port) = v.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let ip: std::net::IpAddr = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(h6) => h6.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?.into(),
        None => host.parse::<Ipv4Addr>().map_err(|_| bad())?.into(),
    };
    Ok(std::net::SocketAddr::new(ip, port))
}

/// Interfaces captured at most (INTERFACE's list).
pub const MAX_INTERFACES: usize = crate::devices::MAX_PORTS;

/// INTERFACE: names separated by spaces or commas, at most [`MAX_INTERFACES`], no repeats.
pub fn interface_list(v: &str) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for name in v.split([' ', ',', '\t']).filter(|n| !n.is_empty()) {
        let name = interface_name(name)?;
        if out.contains(&name) {
            return Err(format!("{name} is listed twice"));
        }
        out.push(name);
    }
    if out.len() > MAX_INTERFACES {
        return Err(format!(
            "{} interfaces listed, at most {MAX_INTERFACES}",
            out.len()
        ));
    }
    Ok(out)
}

/// NETWORK_RANGE: `CIDR` (the first interface's) and/or `IFACE=CIDR` entries, separated by
/// spaces or commas.
pub fn range_list(v: &str) -> Result<Vec<(Option<String>, Ipv4Cidr)>, String> {
    let mut out: Vec<(Option<String>, Ipv4Cidr)> = Vec::new();
    for item in v.split([' ', ',', '\t']).filter(|n| !n.is_empty()) {
        match item.split_once('=') {
            Some((name, cidr)) => {
                let name = interface_name(name)?;
                let r = Ipv4Cidr::parse(cidr).map_err(|e| format!("{name}={cidr}: {e}"))?;
                if out.iter().any(|(n, _)| n.as_ref() == Some(&name)) {
                    return Err(format!("{name}= is given twice"));
                }
                out.push((Some(name), r));
            }
            None => out.push((None, Ipv4Cidr::parse(item)?)),
        }
    }
    Ok(out)
}

/// A Linux interface name as the kernel's dev_valid_name() accepts it: 1..15 bytes, not "."
/// or "..", no '/', ':' or whitespace; control characters are refused too.
pub fn interface_name(v: &str) -> Result<String, String> {
    let ok = !v.is_empty()
        && v.len() <= 15
        && v != "."
        && v != ".."
        && !v
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if ok {
        Ok(v.to_owned())
    } else {
        Err(format!(
            "'{v}' is not an interface name (1 to 15 bytes, not '.' or '..', no '/', ':' or \
             spaces)"
        ))
    }
}

/// A user name as useradd and busybox adduser accept it: 1..32 characters, no '/', ':',
/// whitespace or control characters, not starting with '-'.
fn user_name(v: &str) -> Result<String, String> {
    let ok = v.len() <= 32
        && !v.starts_with('-')
        && !v
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if ok {
        Ok(v.to_owned())
    } else {
        Err(format!("'{v}' is not a user name"))
    }
}

const HTTP: &[&str] = &["http", "https"];
const WS: &[&str] = &["ws", "wss"];

impl Config {
    /// Builds the config from settings in precedence order (defaults are implied; file, then
    /// environment, then flags). Auto-detected defaults (hostname, interface, range, server IP)
    /// are filled in by `detect`, which tests replace.
    pub fn from_layers(
        source: Option<PathBuf>,
        settings: &[Setting],
        mut warnings: Vec<String>,
        detect: &dyn Detect,
    ) -> Result<Config, ConfigError> {
        let l = Layers { settings };
        let ident = |v: &str| -> Result<String, String> {
            if v.chars().any(|c| c.is_control()) {
                Err("contains control characters".into())
            } else {
                Ok(v.to_owned())
            }
        };
        let path = |v: &str| -> Result<PathBuf, String> {
            if v.chars().any(|c| c.is_control()) {
                Err("the path contains control characters".into())
            } else {
                Ok(PathBuf::from(v))
            }
        };
        // Paths the running agent opens: relative ones would depend on the working directory
        // of a daemon.
        let abs_path = |v: &str| -> Result<PathBuf, String> {
            let p = path(v)?;
            if !p.is_absolute() {
                return Err(format!("'{v}' is not an absolute path"));
            }
            Ok(p)
        };

        let interfaces = l.parse("INTERFACE", Vec::new(), interface_list)?;
        let interface = interfaces.first().cloned();
        let ranges = l.parse("NETWORK_RANGE", Vec::new(), range_list)?;
        let mut network_range = None;
        let mut network_ranges = Vec::new();
        for (name, r) in ranges {
            match name {
                None if network_range.is_none() => network_range = Some(r),
                None => {
                    return Err(l.value_error(
                        "NETWORK_RANGE",
                        "more than one range without IFACE= (one for the first interface; IFACE=CIDR for the others)".into(),
                    ))
                }
                Some(n) if !interfaces.is_empty() && !interfaces.contains(&n) => {
                    return Err(l.value_error(
                        "NETWORK_RANGE",
                        format!("{n}= names an interface that is not in INTERFACE"),
                    ))
                }
                Some(n) if interface.as_deref() == Some(n.as_str()) => network_range = Some(r),
                Some(n) => network_ranges.push((n, r)),
            }
        }
        let server_ip = l.opt("SERVER_IP", |v| {
            v.parse::<Ipv4Addr>()
                .map_err(|_| format!("'{v}' is not an IPv4 address"))
        })?;
        let server_id = l.opt("SERVER_ID", ident)?;
        let mut cfg = Config {
            source,
            server_id: server_id.unwrap_or_default(),
            server_ip,
            interface,
            interfaces,
            network_range,
            network_ranges,
            cycle: l.parse("CYCLE_TIME", Duration::from_secs(5), |v| {
                if v.trim() == "0" {
                    return Err("must be at least 1 second".into());
                }
                seconds(1, 86_400)(v)
            })?,
            platform_api_url: l.opt("PLATFORM_API_URL", url(HTTP))?,
            platform_ws_url: l.opt("PLATFORM_WS_URL", url(WS))?,
            debug_api_url: l.opt("DEBUG_API_URL", url(HTTP))?,
            generate_key_url: l.opt("GENERATE_KEY_URL", url(HTTP))?,
            api_key: l.opt("API_KEY", |v| {
                if v.bytes().any(|b| b.is_ascii_control() || b == b' ') {
                    Err("contains spaces or control characters".into())
                } else {
                    Ok(Secret::new(v.to_owned()))
                }
            })?,
            log_level: l.parse("LOG_LEVEL", Level::Info, |v| {
                Level::parse(v)
                    .ok_or_else(|| format!("'{v}' is not one of error, warn, info, debug"))
            })?,
            log_target: l.parse("LOG_TARGET", crate::log::Target::Stderr, |v| {
                crate::log::Target::parse(v)
                    .ok_or_else(|| format!("'{v}' is not one of stderr, syslog"))
            })?,
            api_key_file: l.opt("API_KEY_FILE", path)?,
            device_table_size: l.parse("DEVICE_TABLE_SIZE", 256, number(1, 65_536))?,
            device_expire: l.parse(
                "DEVICE_EXPIRE",
                Duration::from_secs(3600),
                seconds(0, 31_536_000),
            )?,
            device_timeout_cycles: l.parse("DEVICE_TIMEOUT", 3, number(1, 100_000))?,
            promisc: l.parse("PROMISC", true, boolean)?,
            ring_kb: l.parse("RING_KB", 1024, number(64, 1_048_576))?,
            metrics_listen: l.opt("METRICS_LISTEN", listen_addr)?,
            scan_interval: l.parse("SCAN_INTERVAL", Duration::from_secs(60), seconds(0, 86_400))?,
            scan_rate_bps: l.parse("SCAN_RATE", 256_000, number(1_000, 10_000_000_000))?,
            scan_retries: l.parse("SCAN_RETRIES", 2, number(1, 10))?,
            scan_force: l.parse("SCAN_FORCE", false, boolean)?,
            http_timeout: l.parse("HTTP_TIMEOUT", Duration::from_secs(5), seconds(1, 300))?,
            http_keep_alive: l.parse("HTTP_KEEPALIVE", true, boolean)?,
            backlog_kb: l.parse("BACKLOG_KB", 1024, number(0, 1_048_576))?,
            backlog_dir: l.opt("BACKLOG_DIR", abs_path)?,
            disk_remote: l.parse("DISK_REMOTE", false, boolean)?,
            ca_file: l.opt("CA_FILE", abs_path)?,
            run_as_user: l.opt("RUN_AS_USER", user_name)?,
            lease_file: l.opt("LEASE_FILE", abs_path)?,
            status_file: l.opt("STATUS_FILE", abs_path)?,
            proc_root: l.parse("PROC_ROOT", PathBuf::from("/proc"), path)?,
            sys_root: l.parse("SYS_ROOT", PathBuf::from("/sys"), path)?,
            warnings: Vec::new(),
        };

        if cfg.server_id.is_empty() {
            cfg.server_id = detect
                .hostname()
                .unwrap_or_else(|| "netmon-agent".to_owned());
        }
        if cfg.interface.is_none() {
            cfg.interface = detect.default_interface();
            cfg.interfaces = cfg.interface.iter().cloned().collect();
            if cfg.interface.is_none() {
                warnings.push(
                    "INTERFACE: not set, and neither br-lan nor a default route was found".into(),
                );
            }
        }
        // Only ask the kernel when something is missing (both given: no netlink dump at all).
        let missing = cfg.server_ip.is_none() || cfg.network_range.is_none();
        if let Some(ifname) = cfg.interface.as_deref().filter(|_| missing) {
            let addr = detect.interface_ipv4(ifname);
            if cfg.server_ip.is_none() {
                cfg.server_ip = addr.map(|c| c.0);
            }
            if cfg.network_range.is_none() {
                cfg.network_range = addr.and_then(|(a, p)| Ipv4Cidr::new(a, p));
            }
        }
        if let Err(reason) = shippable(
            cfg.device_table_size,
            cfg.platform_api_url
                .as_ref()
                .filter(|_| cfg.backlog_kb > 0)
                .map(|_| cfg.backlog_kb as usize * 1024),
            cfg.platform_ws_url.is_some(),
        ) {
            return Err(l.value_error("DEVICE_TABLE_SIZE", reason));
        }
        cfg.warnings = warnings;
        Ok(cfg)
    }

    /// Whether snapshots go to a platform (otherwise `run` prints them to stdout).
    pub fn has_platform(&self) -> bool {
        self.platform_api_url.is_some() || self.platform_ws_url.is_some()
    }
}

/// The parts of the defaults that depend on the machine.
pub trait Detect {
    /// The host name (the default SERVER_ID).
    fn hostname(&self) -> Option<String>;
    /// The interface to watch when INTERFACE is not set.
    fn default_interface(&self) -> Option<String>;
    /// The interface's first IPv4 address and prefix length.
    fn interface_ipv4(&self, ifname: &str) -> Option<(Ipv4Addr, u8)>;
}

/// Detection on the running system, rooted at the configured /proc and /sys.
pub struct SystemDetect {
    /// Where /proc is read.
    pub proc_root: PathBuf,
    /// Where /sys is read.
    pub sys_root: PathBuf,
}

impl Detect for SystemDetect {
    fn hostname(&self) -> Option<String> {
        let h = std::fs::read_to_string(self.proc_root.join("sys/kernel/hostname")).ok()?;
        let h = h.trim();
        (!h.is_empty()).then(|| h.to_owned())
    }

    fn default_interface(&self) -> Option<String> {
        if self.sys_root.join("class/net/br-lan").exists() {
            return Some("br-lan".into());
        }
        let route = std::fs::read_to_string(self.proc_root.join("net/route")).ok()?;
        default_route_interface(&route)
    }

    fn interface_ipv4(&self, ifname: &str) -> Option<(Ipv4Addr, u8)> {
        crate::sys::ifaddrs::ipv4_of(ifname)
    }
}

/// The interface of the default route in /proc/net/route text (lowest metric wins).
pub fn default_route_interface(route: &str) -> Option<String> {
    let mut best: Option<(u64, &str)> = None;
    for line in route.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 8 {
            continue;
        }
        // Iface Destination Gateway Flags RefCnt Use Metric Mask
        let (iface, dest, flags, metric, mask) = (cols[0], cols[1], cols[3], cols[6], cols[7]);
        let up = u32::from_str_radix(flags, 16)
            .map(|f| f & 1 != 0)
            .unwrap_or(false);
        if dest != "00000000" || mask != "00000000" || !up {
            continue;
        }
        let metric: u64 = metric.parse().unwrap_or(u64::MAX);
        if best.map_or(true, |(m, _)| metric < m) {
            best = Some((metric, iface));
        }
    }
    best.map(|(_, i)| i.to_owned())
}

/// Where the config comes from: the path (explicit or default), and the flag-level settings.
pub struct LoadOptions {
    /// `--config PATH`; None means the default path, which may be absent.
    pub explicit_path: Option<PathBuf>,
    /// Settings from command-line flags, already named by key.
    pub flags: Vec<Setting>,
}

/// Reads the config file: a regular file of at most FILE_LIMIT bytes (symbolic links are
/// followed: /etc is root's), or /dev/null, which is an empty config. Anything else (a FIFO,
/// /dev/zero, a directory) is refused after a stat, without being opened.
fn read_file(path: &Path, out: &mut Vec<u8>) -> Result<(), crate::sys::fs::ReadError> {
    use crate::sys::fs::{is_null_device, kind_of, read_regular, ReadError};
    let meta = std::fs::metadata(path).map_err(ReadError::Io)?;
    if is_null_device(&meta) {
        out.clear();
        return Ok(());
    }
    if !meta.is_file() {
        return Err(ReadError::NotRegular(kind_of(&meta)));
    }
    read_regular(path, true, FILE_LIMIT, out)
}

/// Loads the config the way every subcommand does: defaults, file, environment, flags.
pub fn load(opts: &LoadOptions) -> Result<Config, ConfigError> {
    let (env, env_path) = env_vars(std::env::vars_os())?;
    let (path, explicit) = match (&opts.explicit_path, env_path) {
        (Some(p), _) => (p.clone(), true),
        (None, Some(p)) => (p, true),
        (None, None) => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
    };
    let mut settings = Vec::new();
    let mut warnings = Vec::new();
    let mut bytes = Vec::new();
    let source = match read_file(&path, &mut bytes) {
        Ok(()) => {
            let (s, w) = parse_file(file_text(&bytes, &path)?, &path)?;
            settings.extend(s);
            warnings.extend(w);
            Some(path)
        }
        Err(e) if !explicit && e.is_not_found() => None,
        Err(e) => return Err(ConfigError::Read { path, source: e }),
    };
    let (s, w) = env_settings(env.into_iter());
    settings.extend(s);
    warnings.extend(w);
    settings.extend(opts.flags.iter().cloned());
    // PROC_ROOT/SYS_ROOT must be known before detection runs.
    let root = |key: &str, default: &str| {
        settings
            .iter()
            .rev()
            .find(|s| s.key == key && !s.value.is_empty())
            .map(|s| PathBuf::from(&s.value))
            .unwrap_or_else(|| PathBuf::from(default))
    };
    let detect = SystemDetect {
        proc_root: root("PROC_ROOT", "/proc"),
        sys_root: root("SYS_ROOT", "/sys"),
    };
    Config::from_layers(source, &settings, warnings, &detect)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The largest table the default BACKLOG_KB accepts, full of the longest devices, with
    /// this machine's metrics and interfaces: the snapshot, as shipped, fits the backlog.
    #[test]
    fn a_full_table_of_the_largest_accepted_size_ships() {
        let room = 1024 * 1024;
        let per = crate::devices::max_device_json_bytes();
        let most = (room - SNAPSHOT_BASE_BYTES) / per;
        assert!(shippable(most, Some(room), true).is_ok());
        let err = shippable(most + 1, Some(room), false).unwrap_err();
        assert!(
            err.contains(&format!("DEVICE_TABLE_SIZE to at most {most}")),
            "{err}"
        );
        let ws = crate::ship::ws::MAX_SEND;
        assert!(shippable(65_536, None, true).is_err());
        assert!(shippable((ws - SNAPSHOT_BASE_BYTES) / per, None, true).is_ok());
        assert!(
            shippable(65_536, None, false).is_ok(),
            "stdout only: no limit"
        );

        let cfg = Config::from_layers(None, &[], Vec::new(), &NoDetect).unwrap();
        let devices = vec![crate::devices::longest_device(); most];
        let sample = crate::procfs::Collector::for_config(&cfg).sample(std::time::Instant::now());
        let mut state = crate::agent::RunState::new(std::time::SystemTime::now());
        let snap = crate::agent::build_snapshot(
            &cfg,
            &mut state,
            sample.clone(),
            crate::snapshot::CaptureInfo::off(None, "test", most),
            devices,
            (0, 0),
        );
        let len = serde_json::to_string(&snap).unwrap().len();
        assert!(len <= room, "{len} bytes for {most} devices");
        let empty = crate::agent::build_snapshot(
            &cfg,
            &mut state,
            sample,
            crate::snapshot::CaptureInfo::off(None, "test", most),
            Vec::new(),
            (0, 0),
        );
        let base = serde_json::to_string(&empty).unwrap().len();
        assert!(
            base < SNAPSHOT_BASE_BYTES / 4,
            "{base} bytes without devices"
        );
        println!("{per} bytes a device at most; {most} devices: {len} bytes; {base} without");
    }

    struct NoDetect;
    impl Detect for NoDetect {
        fn hostname(&self) -> Option<String> {
            Some("testhost".into())
        }
        fn default_interface(&self) -> Option<String> {
            Some("eth9".into())
        }
        fn interface_ipv4(&self, _: &str) -> Option<(Ipv4Addr, u8)> {
            Some((Ipv4Addr::new(10, 1, 2, 3), 22))
        }
    }

    fn load_text(text: &str) -> Result<Config, ConfigError> {
        let (s, w) = parse_file(text, Path::new("/etc/t.conf"))?;
        Config::from_layers(None, &s, w, &NoDetect)
    }

    #[test]
    fn defaults_come_from_detection() {
        let c = load_text("").unwrap();
        assert_eq!(c.server_id, "testhost");
        assert_eq!(c.interface.as_deref(), Some("eth9"));
        assert_eq!(c.network_range.unwrap().to_string(), "10.1.0.0/22");
        assert_eq!(c.server_ip, Some(Ipv4Addr::new(10, 1, 2, 3)));
        assert_eq!(c.cycle, Duration::from_secs(5));
        assert!(!c.has_platform());
    }

    #[test]
    fn metrics_listen_addresses() {
        for (text, want) in [
            ("127.0.0.1:9101", "127.0.0.1:9101"),
            ("0.0.0.0:0", "0.0.0.0:0"),
            ("[::1]:9101", "[::1]:9101"),
            ("[fd00::1]:65535", "[fd00::1]:65535"),
        ] {
            assert_eq!(listen_addr(text).unwrap().to_string(), want);
        }
        for bad in [
            "",
            "127.0.0.1",
            ":9101",
            "127.0.0.1:",
            "127.0.0.1:65536",
            "::1:9101",
            "[::1]",
            "host:80",
            "[127.0.0.1]:80",
            "1.2.3.4:-1",
        ] {
            let e = listen_addr(bad).unwrap_err();
            assert!(e.contains("is not an address:port"), "{bad}: {e}");
        }
        let e = load_text("METRICS_LISTEN=localhost:9101\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/etc/t.conf:1: METRICS_LISTEN: 'localhost:9101' is not"),
            "{e}"
        );
    }

    #[test]
    fn interface_lists_and_ranges_per_interface() {
        let c = load_text(
            "INTERFACE=\"br-lan br-guest,br-lan.20\"\nNETWORK_RANGE=192.168.1.0/24 br-guest=192.168.2.0/24\n",
        )
        .unwrap();
        assert_eq!(c.interfaces, ["br-lan", "br-guest", "br-lan.20"]);
        assert_eq!(c.interface.as_deref(), Some("br-lan"));
        assert_eq!(c.network_range.unwrap().to_string(), "192.168.1.0/24");
        assert_eq!(c.network_ranges.len(), 1);
        assert_eq!(c.network_ranges[0].0, "br-guest");
        let c = load_text("INTERFACE=a b\nNETWORK_RANGE=a=10.0.0.0/8\n").unwrap();
        assert_eq!(c.network_range.unwrap().to_string(), "10.0.0.0/8");
        let c = load_text("").unwrap();
        assert_eq!(c.interfaces, ["eth9"]);
        for (text, want) in [
            (
                "INTERFACE=a b a\n",
                "/etc/t.conf:1: INTERFACE: a is listed twice",
            ),
            (
                "INTERFACE=a b\nNETWORK_RANGE=c=10.0.0.0/8\n",
                "/etc/t.conf:2: NETWORK_RANGE: c= names an interface that is not in INTERFACE",
            ),
            (
                "NETWORK_RANGE=10.0.0.0/8 10.1.0.0/16\n",
                "/etc/t.conf:1: NETWORK_RANGE: more than one range without IFACE=",
            ),
            (
                "NETWORK_RANGE=b=10.0.0.0/40\n",
                "/etc/t.conf:1: NETWORK_RANGE: b=10.0.0.0/40",
            ),
            (
                "INTERFACE=a b c d e f g h i\n",
                "9 interfaces listed, at most 8",
            ),
        ] {
            let e = load_text(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn quoting_comments_and_export() {
        let c = load_text(
            "# comment\n\n  export SERVER_ID = \"my box\"  # trailing\nINTERFACE='br-lan'\nPLATFORM_API_URL=http://h/api#frag\nCYCLE_TIME=7 # seconds\n",
        )
        .unwrap();
        assert_eq!(c.server_id, "my box");
        assert_eq!(c.interface.as_deref(), Some("br-lan"));
        assert_eq!(c.platform_api_url.unwrap().text, "http://h/api#frag");
        assert_eq!(c.cycle, Duration::from_secs(7));
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = load_text("\nCYCLE_TIME=0\n").unwrap_err().to_string();
        assert_eq!(e, "/etc/t.conf:2: CYCLE_TIME: must be at least 1 second");
        let e = load_text("NETWORK_RANGE=10.0.0.0/40")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/etc/t.conf:1: NETWORK_RANGE: "), "{e}");
        let e = load_text("PLATFORM_WS_URL=http://x")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/etc/t.conf:1: PLATFORM_WS_URL: scheme"),
            "{e}"
        );
        let e = load_text("a line without equals").unwrap_err().to_string();
        assert!(e.starts_with("/etc/t.conf:1: expected KEY=VALUE"), "{e}");
        let e = load_text("CYCLE_TIME=five").unwrap_err().to_string();
        assert_eq!(e, "/etc/t.conf:1: CYCLE_TIME: 'five' is not a number");
        let e = load_text("SERVER_ID=\"open").unwrap_err().to_string();
        assert!(e.contains("SERVER_ID: missing closing"), "{e}");
    }

    #[test]
    fn unknown_keys_warn_with_line() {
        let (_, w) = parse_file("FOO=1\nCYCLE_TIME=2\n", Path::new("c")).unwrap();
        assert_eq!(w, vec!["c:1: unknown key FOO ignored".to_string()]);
    }

    #[test]
    fn precedence_file_env_flag() {
        let (mut s, w) = parse_file(
            "CYCLE_TIME=2\nLOG_LEVEL=warn\nSCAN_RETRIES=3",
            Path::new("c"),
        )
        .unwrap();
        let (e, _) = env_settings(
            vec![
                ("NETMON_CYCLE_TIME".to_string(), "3".to_string()),
                ("NETMON_SCAN_RETRIES".into(), "4".into()),
            ]
            .into_iter(),
        );
        s.extend(e);
        s.push(Setting {
            key: "CYCLE_TIME".into(),
            value: "4".into(),
            origin: Origin::Flag("--cycle".into()),
        });
        let c = Config::from_layers(None, &s, w, &NoDetect).unwrap();
        assert_eq!(c.cycle, Duration::from_secs(4));
        assert_eq!(c.scan_retries, 4);
        assert_eq!(c.log_level, Level::Warn);
        // An error in an env value names the variable.
        let (e, _) =
            env_settings(vec![("NETMON_CYCLE_TIME".to_string(), "x".to_string())].into_iter());
        let err = Config::from_layers(None, &e, vec![], &NoDetect)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "environment NETMON_CYCLE_TIME: CYCLE_TIME: 'x' is not a number"
        );
    }

    #[test]
    fn secret_is_redacted() {
        let c = load_text("API_KEY=sk-very-secret-123").unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("sk-very-secret-123"));
        assert_eq!(c.api_key.as_ref().unwrap().expose(), "sk-very-secret-123");
    }

    #[test]
    fn default_route() {
        let route =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            eth1\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n\
            eth0\t00000000\t010011AC\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
            eth0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
        assert_eq!(default_route_interface(route).as_deref(), Some("eth0"));
        assert_eq!(default_route_interface(""), None);
    }

    #[test]
    fn comment_after_the_equals_sign_is_an_empty_value() {
        let c = load_text("BACKLOG_DIR= # none\nSERVER_ID=#1 box\nLEASE_FILE=\t# tab\n").unwrap();
        assert_eq!(c.backlog_dir, None);
        assert_eq!(c.lease_file, None);
        // Without whitespace before it, '#' is part of the value (as in the shell).
        assert_eq!(c.server_id, "#1 box");
    }

    #[test]
    fn bom_and_non_utf8_files() {
        let c = load_text("\u{feff}CYCLE_TIME=9\n").unwrap();
        assert_eq!(c.cycle, Duration::from_secs(9));
        // Anywhere else a BOM is shown, not left invisible in the message.
        let e = load_text("CYCLE_TIME=9\n\u{feff}SERVER_ID=x\n")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "/etc/t.conf:2: '\\u{feff}SERVER_ID' is not a key name");
        let e = load_text("INTERFACE=et\u{200b}h0\u{7}\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'et\\u{200b}h0\\u{0007}' is not an interface name"),
            "{e}"
        );
        let e = file_text(
            b"CYCLE_TIME=9\nSERVER_ID=caf\xe9\n",
            Path::new("/etc/t.conf"),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(e, "/etc/t.conf:2: not valid UTF-8 (byte 14 of the line)");
    }

    #[test]
    fn long_values_are_refused_and_never_echoed_whole() {
        let long = "9".repeat(10 << 20);
        let e = load_text(&format!("CYCLE_TIME={long}\n"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "/etc/t.conf:1: CYCLE_TIME: the value is 10485760 bytes long, more than 4096"
        );
        let e = load_text(&format!("CYCLE_TIME={}\n", "x".repeat(4000)))
            .unwrap_err()
            .to_string();
        assert!(e.len() < 200, "{e}");
        assert!(e.contains("... (4000 bytes)' is not a number"), "{e}");
        // A long key name, a long line without '='.
        let (_, w) = parse_file(&format!("{}=1\n", "K".repeat(5000)), Path::new("c")).unwrap();
        assert!(w[0].len() < 200, "{w:?}");
        let e = load_text(&"y".repeat(5000)).unwrap_err().to_string();
        assert!(e.len() < 200, "{e}");
    }

    #[test]
    fn many_unknown_keys_give_a_bounded_number_of_warnings() {
        let text: String = (0..100_000).map(|i| format!("K{i}=1\n")).collect();
        let (_, w) = parse_file(&text, Path::new("c")).unwrap();
        assert_eq!(w.len(), 11);
        assert_eq!(w[0], "c:1: unknown key K0 ignored");
        assert_eq!(w[10], "c: 99990 more unknown keys ignored (100000 in all)");
        let (_, w) = env_settings((0..5000).map(|i| (format!("NETMON_X{i}"), "1".to_string())));
        assert_eq!(w.len(), 11);
        assert!(w[10].contains("4990 more"), "{w:?}");
    }

    #[test]
    fn non_utf8_environment() {
        use std::ffi::OsString;
        use std::os::unix::ffi::OsStringExt;
        let os = |b: &[u8]| OsString::from_vec(b.to_vec());
        // Someone else's variable with bad bytes: ignored.
        let (v, p) = env_vars(
            vec![
                (os(b"LANG"), os(b"\xff")),
                (os(b"\xffX"), os(b"y")),
                (os(b"NETMON_CONFIG"), os(b"/etc/n\xe9.conf")),
                (os(b"NETMON_CYCLE_TIME"), os(b"3")),
            ]
            .into_iter(),
        )
        .unwrap();
        assert_eq!(v, vec![("NETMON_CYCLE_TIME".into(), "3".into())]);
        assert_eq!(p, Some(PathBuf::from(os(b"/etc/n\xe9.conf"))));
        // Ours: an error naming the variable.
        let e = env_vars(vec![(os(b"NETMON_SERVER_ID"), os(b"a\xffb"))].into_iter())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "environment NETMON_SERVER_ID: SERVER_ID: the value is not valid UTF-8"
        );
        let e = env_vars(vec![(os(b"NETMON_\xff"), os(b"1"))].into_iter())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "environment NETMON_\u{fffd}: the variable's name is not valid UTF-8"
        );
    }

    #[test]
    fn interface_and_path_names() {
        for bad in [
            ".",
            "..",
            "a/b",
            "eth0:1",
            "a b",
            "sixteen-chars-xx",
            "tab\t",
            "x\u{1}",
        ] {
            let e = interface_name(bad).unwrap_err();
            assert!(e.contains("is not an interface name"), "{bad}: {e}");
        }
        for good in ["br-lan", "eth0.100", "wlan0-1", "fifteen-chars-x", "..."] {
            assert_eq!(interface_name(good).unwrap(), good);
        }
        let e = load_text("INTERFACE=..").unwrap_err().to_string();
        assert!(
            e.starts_with("/etc/t.conf:1: INTERFACE: '..' is not"),
            "{e}"
        );
        let e = load_text("BACKLOG_DIR=spool").unwrap_err().to_string();
        assert_eq!(
            e,
            "/etc/t.conf:1: BACKLOG_DIR: 'spool' is not an absolute path"
        );
        let e = load_text("LEASE_FILE=/tmp/a\u{7}b")
            .unwrap_err()
            .to_string();
        assert!(e.contains("control characters"), "{e}");
        let e = load_text("RUN_AS_USER=a:b").unwrap_err().to_string();
        assert!(e.contains("is not a user name"), "{e}");
        assert!(load_text("RUN_AS_USER=nobody").is_ok());
    }
}
