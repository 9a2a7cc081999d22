//! /proc/loadavg: `1.94 0.61 0.24 4/126 9082` — the 1, 5 and 15 minute load averages, then
//! runnable/total tasks and the last PID, which the agent does not use.

use super::ParseError;

/// The file parsed here.
pub const FILE: &str = "/proc/loadavg";

/// The three load averages.
pub fn parse(text: &str) -> Result<[f64; 3], ParseError> {
    let line = text.lines().next().unwrap_or("");
    let mut words = line.split_ascii_whitespace();
    let mut out = [0.0; 3];
    if line.trim().is_empty() {
        return Err(ParseError::Empty { file: FILE });
    }
    for v in &mut out {
        let w = words
            .next()
            .ok_or(ParseError::bad(FILE, 0, "fewer than 3 load averages"))?;
        *v = super::parse_f64(w).ok_or(ParseError::bad(FILE, 0, "bad load average"))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_files() {
        let debian = include_str!("../../tests/fixtures/proc/debian-x86_64/loadavg");
        assert_eq!(parse(debian), Ok([2.16, 1.23, 0.53]));
        let openwrt = include_str!("../../tests/fixtures/proc/openwrt-mipsel/loadavg");
        assert_eq!(parse(openwrt), Ok([0.08, 0.05, 0.01]));
    }

    #[test]
    fn odd_input() {
        assert_eq!(parse(""), Err(ParseError::Empty { file: FILE }));
        assert_eq!(parse("\n1 2 3\n"), Err(ParseError::Empty { file: FILE }));
        assert_eq!(
            parse("0.5 0.4\n").unwrap_err().to_string(),
            "/proc/loadavg:1: fewer than 3 load averages"
        );
        for bad in [
            "a b c",
            "1 -2 3",
            "nan 1 1",
            "inf 1 1",
            "1e999 1 1",
            "1,5 1 1",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        // Only the three averages are required; extra or missing tail columns are fine.
        assert_eq!(parse("0.00 0.01 0.05"), Ok([0.0, 0.01, 0.05]));
        assert_eq!(parse("1 2 3 x/y z extra\n"), Ok([1.0, 2.0, 3.0]));
    }
}
