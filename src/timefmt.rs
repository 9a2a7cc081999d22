//! Wall-clock timestamps as the payload wants them: `YYYY-MM-DDTHH:MM:SS.mmmZ`, UTC.
//! Written by hand (Howard Hinnant's days-from-civil algorithm) to keep a date crate out of a
//! router binary.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch; a clock before 1970 reads as the epoch.
pub fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}

/// Formats milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn format_millis(ms: u64) -> String {
    let secs = ms / 1000;
    let millis = ms % 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        y,
        m,
        d,
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        millis
    )
}

/// `t` as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn format(t: SystemTime) -> String {
    format_millis(unix_millis(t))
}

/// Seconds since the epoch as syslog's `Mmm dd hh:mm:ss` (RFC 3164: the day padded with a
/// space), UTC.
pub fn syslog_stamp(secs: u64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (_, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{} {:>2} {:02}:{:02}:{:02}",
        MONTHS[(m as usize).clamp(1, 12) - 1],
        d,
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(format_millis(0), "1970-01-01T00:00:00.000Z");
        // `date -u -d @951782400` -> 2000-02-29 00:00:00 (leap day of a century leap year)
        assert_eq!(format_millis(951_782_400_123), "2000-02-29T00:00:00.123Z");
        // `date -u -d @1704067199` -> 2023-12-31 23:59:59
        assert_eq!(format_millis(1_704_067_199_999), "2023-12-31T23:59:59.999Z");
        // `date -u -d @4107542400` -> 2100-03-01 (2100 is not a leap year)
        assert_eq!(format_millis(4_107_542_400_000), "2100-03-01T00:00:00.000Z");
    }

    #[test]
    fn agrees_with_date_command_for_now() {
        let out = std::process::Command::new("date")
            .args(["-u", "+%s %Y-%m-%dT%H:%M:%S"])
            .output();
        let Ok(out) = out else { return };
        let text = String::from_utf8_lossy(&out.stdout);
        let mut parts = text.split_whitespace();
        let secs: u64 = parts.next().unwrap().parse().unwrap();
        let expect = parts.next().unwrap();
        assert_eq!(&format_millis(secs * 1000)[..19], expect);
    }
}
