//! Logging: a level in an atomic and a few macros over stderr, one line per event.
//! Per-packet problems are counters, never log lines. Nothing here ever formats the API key:
//! callers pass `config::Secret`, whose Display is redacted.

use std::sync::atomic::{AtomicU8, Ordering};

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
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

/// Sets the level for the whole process.
pub fn set_level(level: Level) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

/// True when lines of `level` are written.
pub fn enabled(level: Level) -> bool {
    level as u8 <= LEVEL.load(Ordering::Relaxed)
}

#[doc(hidden)]
pub fn write(level: Level, args: std::fmt::Arguments) {
    use std::io::Write;
    // One write per line so lines from a respawned process never interleave mid-line in syslog.
    let line = format!("netmon-agent: {}: {}\n", level.name(), args);
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
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
