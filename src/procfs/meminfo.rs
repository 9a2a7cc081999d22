//! /proc/meminfo: `Key:   value kB` lines. The agent needs MemTotal and MemAvailable; kernels
//! before 3.14 (and vendor kernels without the backport) have no MemAvailable, and there
//! MemFree + Buffers + Cached stands in for it, as `free` of that era printed on its
//! "-/+ buffers/cache" line.

use super::{parse_u64, ParseError};
use crate::snapshot::{self, Memory};

/// The file parsed here.
pub const FILE: &str = "/proc/meminfo";

/// The fields the agent uses, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemInfo {
    /// MemTotal, bytes.
    pub total: u64,
    /// MemFree, bytes.
    pub free: u64,
    /// MemAvailable, bytes (kernels since 3.14).
    pub available: Option<u64>,
    /// Buffers, bytes.
    pub buffers: u64,
    /// Cached, bytes.
    pub cached: u64,
}

impl MemInfo {
    /// MemAvailable, or MemFree + Buffers + Cached without it; never more than MemTotal.
    pub fn available_bytes(&self) -> u64 {
        self.available
            .unwrap_or_else(|| {
                self.free
                    .saturating_add(self.buffers)
                    .saturating_add(self.cached)
            })
            .min(self.total)
    }

    /// The payload's memory object: used = total - available, free = total - used.
    pub fn to_memory(self) -> Memory {
        let available = self.available_bytes();
        let used = self.total - available;
        Memory {
            total_bytes: self.total,
            used_bytes: used,
            free_bytes: self.total - used,
            available_bytes: available,
            percent_used: if self.total == 0 {
                0.0
            } else {
                snapshot::percent(used as f64 * 100.0 / self.total as f64)
            },
        }
    }
}

/// Parses the text of /proc/meminfo.
pub fn parse(text: &str) -> Result<MemInfo, ParseError> {
    if text.trim().is_empty() {
        return Err(ParseError::Empty { file: FILE });
    }
    let (mut total, mut free, mut available, mut buffers, mut cached) =
        (None, None, None, None, None);
    for (i, line) in text.lines().enumerate() {
        // Lines without a colon are not ours (there are none in real files).
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let slot = match key.trim() {
            "MemTotal" => &mut total,
            "MemFree" => &mut free,
            "MemAvailable" => &mut available,
            "Buffers" => &mut buffers,
            "Cached" => &mut cached,
            _ => continue,
        };
        if slot.is_some() {
            return Err(ParseError::bad(FILE, i, "key repeated"));
        }
        let mut words = rest.split_ascii_whitespace();
        let n = words
            .next()
            .and_then(parse_u64)
            .ok_or(ParseError::bad(FILE, i, "bad number"))?;
        let bytes = match words.next() {
            Some("kB") => n
                .checked_mul(1024)
                .ok_or(ParseError::bad(FILE, i, "value too large"))?,
            None => n,
            Some(_) => return Err(ParseError::bad(FILE, i, "unknown unit")),
        };
        *slot = Some(bytes);
    }
    let total = total.ok_or(ParseError::Missing {
        file: FILE,
        what: "MemTotal",
    })?;
    if available.is_none() && free.is_none() {
        return Err(ParseError::Missing {
            file: FILE,
            what: "MemAvailable or MemFree",
        });
    }
    Ok(MemInfo {
        total,
        free: free.unwrap_or(0),
        available,
        buffers: buffers.unwrap_or(0),
        cached: cached.unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str = include_str!("../../tests/fixtures/proc/debian-x86_64/meminfo");
    const OPENWRT: &str = include_str!("../../tests/fixtures/proc/openwrt-mipsel/meminfo");
    const CENTOS6: &str = include_str!("../../tests/fixtures/proc/centos6-linux-2.6.32/meminfo");

    #[test]
    fn debian_x86_64() {
        let m = parse(DEBIAN).unwrap();
        assert_eq!(m.total, 24684084 * 1024);
        assert_eq!(m.available, Some(24040252 * 1024));
        let mem = m.to_memory();
        assert_eq!(mem.total_bytes, 25276502016);
        assert_eq!(mem.available_bytes, 24617218048);
        assert_eq!(mem.used_bytes, 25276502016 - 24617218048);
        assert_eq!(mem.free_bytes, 24617218048);
        assert_eq!(mem.percent_used, 2.61);
    }

    #[test]
    fn openwrt_mipsel() {
        let mem = parse(OPENWRT).unwrap().to_memory();
        assert_eq!(mem.total_bytes, 246504 * 1024);
        // MemAvailable below MemFree, as on small routers (watermarks are subtracted).
        assert_eq!(mem.available_bytes, 171380 * 1024);
        assert_eq!(mem.used_bytes, (246504 - 171380) * 1024);
        assert_eq!(mem.percent_used, 30.48);
    }

    #[test]
    fn centos6_without_memavailable() {
        let m = parse(CENTOS6).unwrap();
        assert_eq!(m.available, None);
        let mem = m.to_memory();
        // MemFree 122124 + Buffers 29476 + Cached 156632 kB.
        assert_eq!(mem.available_bytes, 308232 * 1024);
        assert_eq!(mem.used_bytes, (1019972 - 308232) * 1024);
        assert_eq!(mem.free_bytes, 308232 * 1024);
        assert_eq!(mem.percent_used, 69.78);
    }

    #[test]
    fn available_never_exceeds_total() {
        let m = parse("MemTotal: 100 kB\nMemFree: 90 kB\nBuffers: 20 kB\nCached: 30 kB\n").unwrap();
        let mem = m.to_memory();
        assert_eq!((mem.available_bytes, mem.used_bytes), (100 * 1024, 0));
        let zero = parse("MemTotal: 0 kB\nMemAvailable: 0 kB\n")
            .unwrap()
            .to_memory();
        assert_eq!(zero.percent_used, 0.0);
    }

    #[test]
    fn odd_input() {
        assert_eq!(parse(""), Err(ParseError::Empty { file: FILE }));
        assert_eq!(
            parse("MemFree: 1 kB\n"),
            Err(ParseError::Missing {
                file: FILE,
                what: "MemTotal"
            })
        );
        assert_eq!(
            parse("MemTotal: 1 kB\nBuffers: 1 kB\n")
                .unwrap_err()
                .to_string(),
            "/proc/meminfo: no MemAvailable or MemFree"
        );
        assert_eq!(
            parse("MemTotal: 1 kB\nMemFree: x kB\n")
                .unwrap_err()
                .to_string(),
            "/proc/meminfo:2: bad number"
        );
        assert!(parse("MemTotal: 1 MB\nMemFree: 1 kB\n").is_err());
        assert!(parse("MemTotal:\nMemFree: 1 kB\n").is_err());
        assert!(parse("MemTotal: 18446744073709551615 kB\nMemFree: 1 kB\n").is_err());
        assert!(parse("MemTotal: 2 kB\nMemTotal: 2 kB\nMemFree: 1 kB\n").is_err());
        // Garbage, unknown keys and extra columns are skipped.
        let m = parse("junk\n\nMemTotal: 8 kB extra\nNew_Thing: ??\nMemFree: 4 kB\n::\n").unwrap();
        assert_eq!((m.total, m.free), (8192, 4096));
        for end in 0..CENTOS6.len() {
            let _ = parse(&CENTOS6[..end]);
        }
    }
}
