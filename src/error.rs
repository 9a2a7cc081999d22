//! The program-level error: what `main` prints once and turns into an exit code.
//! Modules keep their own error enums (config::ConfigError, procfs::ParseError, ...) and lift
//! into this one with `From`.

use std::fmt;

/// What went wrong, for `main` to print once; [`Error::exit_code`] picks the exit code.
#[derive(Debug)]
pub enum Error {
    /// Bad configuration or command line: exit code 2.
    Config(crate::config::ConfigError),
    /// A usage error found after parsing (conflicting flags, missing argument): exit code 2.
    Usage(String),
    /// A system call failed outside any file (socket, signal setup, ...).
    Sys {
        /// The call that failed.
        what: &'static str,
        /// Its error.
        source: std::io::Error,
    },
    /// Anything else worth a sentence: exit code 1.
    Other(String),
}

impl Error {
    /// 2 for configuration and usage errors, 1 for the rest.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) | Error::Usage(_) => 2,
            _ => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(e) => write!(f, "{e}"),
            Error::Usage(m) => write!(f, "{m}"),
            Error::Sys { what, source } => write!(f, "{what}: {source}"),
            Error::Other(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<crate::config::ConfigError> for Error {
    fn from(e: crate::config::ConfigError) -> Self {
        Error::Config(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_formats_with_context() {
        let io = || std::io::Error::from_raw_os_error(libc::ENOENT);
        let cases = [
            Error::Usage("bad flag".into()),
            Error::Sys {
                what: "signalfd",
                source: io(),
            },
            Error::Other("boom".into()),
        ];
        for e in &cases {
            assert!(!e.to_string().is_empty());
        }
        assert_eq!(cases[1].to_string(), format!("signalfd: {}", io()));
        assert_eq!(cases[0].exit_code(), 2);
        assert_eq!(cases[2].exit_code(), 1);
    }
}
