//! Logging: a level in an atomic and a few macros, one line per event, to stderr or to syslog.
//! Per-packet problems are counters, never log lines. Nothing here ever formats the API key:
//! callers pass `config::Secret`, whose Display is redacted.
//!
//! Under procd (OpenWrt) stderr becomes `daemon.err` whatever the line says, so the init script
//! sets LOG_TARGET=syslog: each line then goes to /dev/log with its own priority (facility
//! daemon; error -> LOG_ERR, warn -> LOG_WARNING, info -> LOG_INFO, debug -> LOG_DEBUG) and one
//! tag, `netmon-agent[pid]`. On stderr a line is `netmon-agent: LEVEL: message`.

use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;

/// How much is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Errors only.
    Error = 0,
    /// Errors and warnings.
    Warn = 1,
    /// State changes too (the default).
    Info = 2,
    /// Everything, including each delivery.
    Debug = 3,
}

impl Level {
    /// From `error`, `warn`/`warning`, `info`, `debug`/`trace` (any case).
    pub fn parse(s: &str) -> Option<Level> {
        match s.to_ascii_lowercase().as_str() {
            "error" => Some(Level::Error),
            "warn" | "warning" => Some(Level::Warn),
            "info" => Some(Level::Info),
            "debug" | "trace" => Some(Level::Debug),
            _ => None,
        }
    }
    /// The name written in each line.
    pub fn name(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
        }
    }
    /// The syslog severity (RFC 5424 numbers, as in <syslog.h>).
    pub fn severity(self) -> u8 {
        match self {
            Level::Error => 3, // LOG_ERR
            Level::Warn => 4,  // LOG_WARNING
            Level::Info => 6,  // LOG_INFO
            Level::Debug => 7, // LOG_DEBUG
        }
    }
}

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `netmon-agent: LEVEL: message` lines on stderr.
    Stderr,
    /// Datagrams to /dev/log with the line's priority (facility daemon).
    Syslog,
}

impl Target {
    /// `stderr` or `syslog` (any case).
    pub fn parse(s: &str) -> Option<Target> {
        match s.to_ascii_lowercase().as_str() {
            "stderr" => Some(Target::Stderr),
            "syslog" => Some(Target::Syslog),
            _ => None,
        }
    }
}

/// LOG_DAEMON from <syslog.h> (facility 3, shifted).
const FACILITY_DAEMON: u8 = 3 << 3;
/// The local syslog socket.
pub const SYSLOG_PATH: &str = "/dev/log";
const TAG: &str = "netmon-agent";

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);
/// The connected /dev/log socket when the target is syslog.
static SYSLOG: Mutex<Option<UnixDatagram>> = Mutex::new(None);

/// Sets the level for the whole process.
pub fn set_level(level: Level) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

/// True when lines of `level` are written.
pub fn enabled(level: Level) -> bool {
    level as u8 <= LEVEL.load(Ordering::Relaxed)
}

/// Switches the target. Syslog connects to /dev/log now (before privileges are dropped, and
/// so that a missing syslog daemon is said at once, on stderr); false when it cannot, and the
/// lines stay on stderr.
pub fn set_target(target: Target) -> bool {
    let mut slot = SYSLOG.lock().unwrap_or_else(|p| p.into_inner());
    match target {
        Target::Stderr => {
            *slot = None;
            true
        }
        Target::Syslog if slot.is_some() => true,
        Target::Syslog => match connect(SYSLOG_PATH) {
            Ok(s) => {
                *slot = Some(s);
                true
            }
            Err(e) => {
                drop(slot);
                write_stderr(
                    Level::Warn,
                    format_args!("LOG_TARGET=syslog: {SYSLOG_PATH}: {e}; logging to stderr"),
                );
                false
            }
        },
    }
}

fn connect(path: &str) -> std::io::Result<UnixDatagram> {
    let s = UnixDatagram::unbound()?;
    s.connect(path)?;
    // A syslog daemon that stops reading must never stall the loop: a line that does not fit
    // in the socket buffer is dropped.
    s.set_nonblocking(true)?;
    Ok(s)
}

/// The datagram for one line: `<PRI>Mmm dd hh:mm:ss netmon-agent[pid]: message` (the
/// traditional /dev/log form that syslogd, rsyslog, journald and OpenWrt's logd all read;
/// logd drops the timestamp, which is UTC here). Control characters in the message become
/// spaces so a value cannot forge a second line.
pub fn syslog_line(level: Level, unix_secs: u64, pid: u32, msg: &str) -> String {
    let pri = FACILITY_DAEMON | level.severity();
    let stamp = crate::timefmt::syslog_stamp(unix_secs);
    let mut line = format!("<{pri}>{stamp} {TAG}[{pid}]: ");
    line.extend(msg.chars().map(|c| if c.is_control() { ' ' } else { c }));
    line
}

fn write_stderr(level: Level, args: std::fmt::Arguments) {
    use std::io::Write;
    // One write per line so lines from a respawned process never interleave mid-line.
    let line = format!("{TAG}: {}: {}\n", level.name(), args);
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

#[doc(hidden)]
pub fn write(level: Level, args: std::fmt::Arguments) {
    let mut slot = SYSLOG.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(sock) = slot.as_ref() {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let line = syslog_line(level, secs, std::process::id(), &args.to_string());
        match sock.send(line.as_bytes()) {
            Ok(_) => return,
            // Full: dropped (see `connect`).
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            // The daemon restarted (a new socket at the same path): connect again, once.
            Err(_) => {
                if let Ok(s) = connect(SYSLOG_PATH) {
                    if s.send(line.as_bytes()).is_ok() {
                        *slot = Some(s);
                        return;
                    }
                }
            }
        }
    }
    drop(slot);
    write_stderr(level, args);
}

/// Logs a line at error level, `format!`-style.
#[macro_export]
macro_rules! error { ($($t:tt)*) => { if $crate::log::enabled($crate::log::Level::Error) { $crate::log::write($crate::log::Level::Error, format_args!($($t)*)) } } }
/// Logs a line at warn level, `format!`-style.
#[macro_export]
macro_rules! warn { ($($t:tt)*) => { if $crate::log::enabled($crate::log::Level::Warn) { $crate::log::write($crate::log::Level::Warn, format_args!($($t)*)) } } }
/// Logs a line at info level, `format!`-style.
#[macro_export]
macro_rules! info { ($($t:tt)*) => { if $crate::log::enabled($crate::log::Level::Info) { $crate::log::write($crate::log::Level::Info, format_args!($($t)*)) } } }
/// Logs a line at debug level, `format!`-style.
#[macro_export]
macro_rules! debug { ($($t:tt)*) => { if $crate::log::enabled($crate::log::Level::Debug) { $crate::log::write($crate::log::Level::Debug, format_args!($($t)*)) } } }

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syslog_priorities_and_one_tag() {
        // 2023-11-14 22:13:20 UTC; <syslog.h>: LOG_DAEMON = 3<<3, LOG_ERR 3, LOG_WARNING 4,
        // LOG_INFO 6, LOG_DEBUG 7.
        let t = 1_700_000_000;
        assert_eq!(
            syslog_line(Level::Info, t, 42, "capture open on br-lan"),
            "<30>Nov 14 22:13:20 netmon-agent[42]: capture open on br-lan"
        );
        assert!(syslog_line(Level::Error, t, 1, "x").starts_with("<27>"));
        assert!(syslog_line(Level::Warn, t, 1, "x").starts_with("<28>"));
        assert!(syslog_line(Level::Debug, t, 1, "x").starts_with("<31>"));
        // The timestamp is always 15 characters and a space (a day below 10 is space-padded).
        let l = syslog_line(Level::Info, 1_700_000_000 - 10 * 86_400, 7, "m");
        assert_eq!(&l[4..20], "Nov  4 22:13:20 ");
        // A newline in a message cannot start a forged line.
        assert_eq!(
            syslog_line(Level::Info, t, 1, "a\nnetmon-agent[1]: b"),
            "<30>Nov 14 22:13:20 netmon-agent[1]: a netmon-agent[1]: b"
        );
    }

    #[test]
    fn target_names() {
        assert_eq!(Target::parse("SYSLOG"), Some(Target::Syslog));
        assert_eq!(Target::parse("stderr"), Some(Target::Stderr));
        assert_eq!(Target::parse("journal"), None);
    }
}
