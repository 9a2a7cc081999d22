//! /proc/net/dev: per-interface counters, and the rules that turn two readings into a rate.
//!
//! Format: two header lines (both contain `|`), then one line per interface:
//! `%6s:` name, 8 receive counters (bytes packets errs drop fifo frame compressed multicast),
//! 8 transmit counters (bytes packets errs drop fifo colls carrier compressed). Names longer than
//! six characters touch the colon (`phy0-ap0:`), and old kernels let a wide first counter touch
//! it too (`eth0:1234567890`), so the line is split at the first colon (interface names cannot
//! contain one).

use super::{parse_u64, ParseError};
use crate::snapshot::LinkStatus;

/// The file parsed here.
pub const FILE: &str = "/proc/net/dev";

/// The counters of one interface (those the payload carries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevStats<'a> {
    /// Interface name.
    pub name: &'a str,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Received packets dropped.
    pub rx_dropped: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Transmit errors.
    pub tx_errors: u64,
    /// Transmitted packets dropped.
    pub tx_dropped: u64,
}

/// The interface lines of the file, in order, each parsed on its own: a bad line is an error
/// for that line only, so a caller may skip it and keep the others. Allocates nothing.
pub fn entries(text: &str) -> impl Iterator<Item = Result<DevStats<'_>, ParseError>> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.contains('|') && !l.trim().is_empty())
        .map(|(i, l)| parse_line(i, l))
}

/// All interfaces, or the first bad line.
pub fn parse(text: &str) -> Result<Vec<DevStats<'_>>, ParseError> {
    if text.trim().is_empty() {
        return Err(ParseError::Empty { file: FILE });
    }
    entries(text).collect()
}

fn parse_line(i: usize, line: &str) -> Result<DevStats<'_>, ParseError> {
    let (name, rest) = line.split_once(':').ok_or(ParseError::bad(
        FILE,
        i,
        "no colon after the interface name",
    ))?;
    let name = name.trim();
    // The kernel's dev_valid_name: 1-15 bytes, no '/', ':' or white space, not "." or "..".
    if name.is_empty()
        || name.len() > 15
        || name.contains(|c: char| c == '/' || c.is_whitespace())
        || name == "."
        || name == ".."
    {
        return Err(ParseError::bad(FILE, i, "bad interface name"));
    }
    let mut v = [0u64; 16];
    let mut words = rest.split_ascii_whitespace();
    for slot in &mut v {
        let w = words
            .next()
            .ok_or(ParseError::bad(FILE, i, "fewer than 16 counters"))?;
        *slot = parse_u64(w).ok_or(ParseError::bad(FILE, i, "bad counter"))?;
    }
    // Columns a future kernel might append are ignored.
    Ok(DevStats {
        name,
        rx_bytes: v[0],
        rx_packets: v[1],
        rx_errors: v[2],
        rx_dropped: v[3],
        tx_bytes: v[8],
        tx_packets: v[9],
        tx_errors: v[10],
        tx_dropped: v[11],
    })
}

/// The most a counter can plausibly have moved over `secs` seconds: the link speed with a 25 %
/// margin where it is known, otherwise 2^31 (half the range of a 32-bit counter, so one wrap
/// is told apart from a reset).
pub fn plausible_bytes(speed_mbps: Option<u64>, secs: f64) -> u64 {
    const UNKNOWN: u64 = 1 << 31;
    match speed_mbps {
        Some(mbps) if secs > 0.0 => {
            let bytes = mbps as f64 * 125_000.0 * secs * 1.25 + 65536.0;
            if bytes >= u64::MAX as f64 {
                u64::MAX
            } else {
                bytes as u64
            }
        }
        _ => UNKNOWN,
    }
}

/// How much a byte counter moved from `prev` to `cur`, never negative and never giant:
/// - forward: the difference;
/// - backwards from a value that fits 32 bits, by a plausible amount: a 32-bit counter wrapped
///   (32-bit kernels keep `unsigned long` statistics), so the difference modulo 2^32;
/// - otherwise the counter was reset (interface re-created, driver reset): everything it
///   counted since the reset happened within the interval, so `cur` (or 0 if even that is more
///   than plausible).
///
/// `recreated` (the interface index changed) forces the reset rule.
pub fn counter_delta(prev: u64, cur: u64, recreated: bool, plausible: u64) -> u64 {
    if !recreated {
        if cur >= prev {
            return cur - prev;
        }
        if prev <= u64::from(u32::MAX) {
            let wrapped = (1u64 << 32) - prev + cur;
            if wrapped <= plausible {
                return wrapped;
            }
        }
    }
    if cur <= plausible {
        cur
    } else {
        0
    }
}

/// Bytes over seconds as bits per second, rounded; 0 for an empty or negative interval.
pub fn rate_bps(bytes: u64, secs: f64) -> u64 {
    if secs.is_nan() || secs <= 0.0 {
        return 0;
    }
    let r = (bytes as f64 * 8.0 / secs).round();
    if r >= u64::MAX as f64 {
        u64::MAX
    } else {
        r as u64
    }
}

/// /sys/class/net/NAME/operstate (RFC 2863 states) as the payload's three states: dormant and
/// lower-layer-down interfaces cannot pass traffic, so they are down; `unknown` (loopback, many
/// virtual interfaces) and `testing` stay unknown.
pub fn parse_operstate(text: &str) -> LinkStatus {
    match text.trim() {
        "up" => LinkStatus::Up,
        "down" | "lowerlayerdown" | "notpresent" | "dormant" => LinkStatus::Down,
        _ => LinkStatus::Unknown,
    }
}

/// /sys/class/net/NAME/speed in Mbit/s; None where the kernel reports none: -1 (SPEED_UNKNOWN),
/// 0, the same as an unsigned 32 bit value (older kernels), or garbage. Reading the file fails
/// with EINVAL for interfaces without ethtool link settings; the caller treats that as None.
pub fn parse_speed(text: &str) -> Option<u64> {
    let v: i64 = text.trim().parse().ok()?;
    (v > 0 && v < i64::from(u32::MAX)).then_some(v as u64)
}

/// /sys/class/net/NAME/address when it is a 6-byte MAC (`02:fc:00:00:00:01`), lower case; None
/// for other link types (tunnels have none or longer ones).
pub fn parse_mac(text: &str) -> Option<&str> {
    let t = text.trim();
    let b = t.as_bytes();
    let ok = b.len() == 17
        && b.iter().enumerate().all(|(i, &c)| {
            if i % 3 == 2 {
                c == b':'
            } else {
                c.is_ascii_digit() || (b'a'..=b'f').contains(&c)
            }
        });
    ok.then_some(t)
}

/// /sys/class/net/NAME/mtu and ifindex: one decimal number.
pub fn parse_u32(text: &str) -> Option<u32> {
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str = include_str!("../../tests/fixtures/proc/debian-x86_64/net/dev");
    const OPENWRT: &str = include_str!("../../tests/fixtures/proc/openwrt-mipsel/net/dev");

    #[test]
    fn debian_x86_64() {
        let all = parse(DEBIAN).unwrap();
        let names: Vec<_> = all.iter().map(|d| d.name).collect();
        assert_eq!(names, ["lo", "ifb0", "ifb1", "eth0"]);
        assert_eq!(
            all[3],
            DevStats {
                name: "eth0",
                rx_bytes: 329932622,
                rx_packets: 10415,
                rx_errors: 0,
                rx_dropped: 0,
                tx_bytes: 511854,
                tx_packets: 6271,
                tx_errors: 0,
                tx_dropped: 0,
            }
        );
        assert_eq!((all[0].rx_bytes, all[0].tx_packets), (3193, 29));
    }

    #[test]
    fn openwrt_mipsel() {
        let all = parse(OPENWRT).unwrap();
        let names: Vec<_> = all.iter().map(|d| d.name).collect();
        assert_eq!(
            names,
            [
                "lo", "eth0", "lan1", "lan2", "lan3", "lan4", "wan", "br-lan", "phy0-ap0",
                "phy1-ap0", "wg0"
            ]
        );
        // A long name touching the colon.
        let ap = all.iter().find(|d| d.name == "phy0-ap0").unwrap();
        assert_eq!(ap.rx_bytes, 4294000000);
        assert_eq!(ap.tx_errors, 0);
        assert_eq!(ap.rx_dropped, 12);
        let wan = all.iter().find(|d| d.name == "wan").unwrap();
        assert_eq!((wan.rx_bytes, wan.tx_bytes), (1853310221, 402114007));
    }

    #[test]
    fn counter_touching_the_colon() {
        let text = "Inter-|\n face |\n  eth0:1234567890 5 0 0 0 0 0 0 77 6 0 0 0 0 0 0\n";
        let d = parse(text).unwrap();
        assert_eq!(
            (d[0].name, d[0].rx_bytes, d[0].tx_bytes),
            ("eth0", 1234567890, 77)
        );
    }

    #[test]
    fn odd_input() {
        assert_eq!(parse(""), Err(ParseError::Empty { file: FILE }));
        // Headers only: no interfaces, no error.
        let header: String = DEBIAN.lines().take(2).map(|l| format!("{l}\n")).collect();
        assert_eq!(parse(&header), Ok(vec![]));
        assert_eq!(
            parse("  eth0: 1 2 3\n").unwrap_err().to_string(),
            "/proc/net/dev:1: fewer than 16 counters"
        );
        assert!(parse("eth0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n").is_err());
        assert!(parse(": 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n").is_err());
        assert!(parse("a b: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n").is_err());
        assert!(parse("../x: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n").is_err());
        assert!(parse("..: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n").is_err());
        assert!(parse("averyveryverylongname: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n").is_err());
        assert!(parse("x: 1 2 3 4 5 6 7 8 -9 10 11 12 13 14 15 16\n").is_err());
        // Extra columns are ignored.
        let d = parse("x: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18\n").unwrap();
        assert_eq!((d[0].tx_bytes, d[0].tx_dropped), (9, 12));
        // A bad line does not hide the good ones from `entries`.
        let text = "garbage\n  lo: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n";
        let e: Vec<_> = entries(text).collect();
        assert!(e[0].is_err());
        assert_eq!(e[1].as_ref().unwrap().name, "lo");
        for end in 0..OPENWRT.len() {
            let _ = parse(&OPENWRT[..end]);
        }
    }

    #[test]
    fn deltas() {
        let unknown = plausible_bytes(None, 5.0);
        // Forward.
        assert_eq!(counter_delta(100, 250, false, unknown), 150);
        // A 32-bit wrap: 2^32 - 4294000000 + 1000000.
        assert_eq!(counter_delta(4294000000, 1000000, false, unknown), 1967296);
        // A reset of a 64-bit counter: what was counted since.
        assert_eq!(counter_delta(5_000_000_000, 12_000, false, unknown), 12_000);
        // A 32-bit value going back by more than a wrap could explain: a reset.
        assert_eq!(counter_delta(1_000_000_000, 10, false, unknown), 10);
        // ... and with a 100 Mbit/s link, even a "small" wrap is more than the link carries.
        let lan = plausible_bytes(Some(100), 5.0);
        assert_eq!(lan, 78_190_536);
        assert_eq!(counter_delta(3_000_000_000, 1000, false, lan), 1000);
        assert_eq!(counter_delta(4_294_000_000, 1000, false, lan), 968_296);
        // Re-created interface: everything counted since creation, even if above the old value.
        assert_eq!(counter_delta(900_000, 2_500_000, true, unknown), 2_500_000);
        // Nothing plausible: no progress rather than a giant rate.
        assert_eq!(counter_delta(u64::MAX, u64::MAX - 1, false, unknown), 0);
        assert_eq!(counter_delta(0, u64::MAX, true, unknown), 0);
    }

    #[test]
    fn sysfs_attributes() {
        assert_eq!(parse_operstate("up\n"), LinkStatus::Up);
        assert_eq!(parse_operstate("lowerlayerdown\n"), LinkStatus::Down);
        assert_eq!(parse_operstate("dormant"), LinkStatus::Down);
        assert_eq!(parse_operstate("unknown\n"), LinkStatus::Unknown);
        assert_eq!(parse_operstate(""), LinkStatus::Unknown);
        assert_eq!(parse_speed("1000\n"), Some(1000));
        assert_eq!(parse_speed("-1\n"), None);
        assert_eq!(parse_speed("0\n"), None);
        assert_eq!(parse_speed("4294967295\n"), None);
        assert_eq!(parse_speed("fast"), None);
        assert_eq!(parse_mac("02:fc:00:00:00:01\n"), Some("02:fc:00:00:00:01"));
        assert_eq!(parse_mac("00:00:00:00:00:00\n"), Some("00:00:00:00:00:00"));
        assert_eq!(parse_mac("02:FC:00:00:00:01"), None);
        assert_eq!(
            parse_mac("00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00"),
            None
        );
        assert_eq!(parse_mac("0:0:0:0:0:0"), None);
        assert_eq!(parse_mac(""), None);
        assert_eq!(parse_u32("1500\n"), Some(1500));
        assert_eq!(parse_u32("-1"), None);
    }

    #[test]
    fn rates() {
        assert_eq!(rate_bps(1967296, 5.0), 3147674);
        assert_eq!(rate_bps(1000, 0.0), 0);
        assert_eq!(rate_bps(1000, -1.0), 0);
        assert_eq!(rate_bps(1000, f64::NAN), 0);
        assert_eq!(rate_bps(u64::MAX, 1e-9), u64::MAX);
    }
}
