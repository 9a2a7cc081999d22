//! /proc/uptime: `645.08 892.48` — seconds since boot, then the idle time of all CPUs summed.

use super::ParseError;

/// The file parsed here.
pub const FILE: &str = "/proc/uptime";

/// Seconds since boot, as the kernel prints them (hundredths).
pub fn parse(text: &str) -> Result<f64, ParseError> {
    let line = text.lines().next().unwrap_or("");
    let Some(first) = line.split_ascii_whitespace().next() else {
        return Err(ParseError::Empty { file: FILE });
    };
    super::parse_f64(first).ok_or(ParseError::bad(FILE, 0, "bad uptime"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_files() {
        let debian = include_str!("../../tests/fixtures/proc/debian-x86_64/uptime");
        assert_eq!(parse(debian), Ok(645.08));
        let openwrt = include_str!("../../tests/fixtures/proc/openwrt-mipsel/uptime");
        assert_eq!(parse(openwrt), Ok(26098.43));
    }

    #[test]
    fn odd_input() {
        assert_eq!(parse(""), Err(ParseError::Empty { file: FILE }));
        assert_eq!(parse("   \n"), Err(ParseError::Empty { file: FILE }));
        assert_eq!(
            parse("-1.0 2.0").unwrap_err().to_string(),
            "/proc/uptime:1: bad uptime"
        );
        assert!(parse("up 3 days").is_err());
        assert!(parse("NaN 1").is_err());
        assert_eq!(parse("12"), Ok(12.0));
        assert_eq!(parse("12.5 1 2 3 extra"), Ok(12.5));
    }
}
