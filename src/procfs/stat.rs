//! /proc/stat: CPU time counters of all CPUs together, and the number of CPUs online.
//!
//! Format (proc(5)): the `cpu` line holds the sums over all CPUs in USER_HZ ticks, in the order
//! user nice system idle iowait irq softirq steal guest guest_nice; kernels before 2.6.11 stop
//! after fewer columns, newer ones may add more. `guest` and `guest_nice` are already counted in
//! `user` and `nice`, so they are not added again. One `cpuN` line follows per online CPU.

use super::{parse_u64, ParseError};

/// The file parsed here.
pub const FILE: &str = "/proc/stat";

/// The aggregate CPU counters, in ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// Normal processes in user mode.
    pub user: u64,
    /// Niced processes in user mode.
    pub nice: u64,
    /// Kernel mode.
    pub system: u64,
    /// Idle.
    pub idle: u64,
    /// Waiting for I/O (counted as idle).
    pub iowait: u64,
    /// Servicing interrupts.
    pub irq: u64,
    /// Servicing softirqs.
    pub softirq: u64,
    /// Stolen by the hypervisor.
    pub steal: u64,
}

/// What the agent takes from /proc/stat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// The aggregate `cpu` line.
    pub cpu: CpuTimes,
    /// Number of `cpuN` lines: the CPUs online.
    pub cores: u32,
}

/// Parses the text of /proc/stat.
pub fn parse(text: &str) -> Result<Stat, ParseError> {
    if text.trim().is_empty() {
        return Err(ParseError::Empty { file: FILE });
    }
    let mut cpu = None;
    let mut cores = 0u32;
    for (i, line) in text.lines().enumerate() {
        let mut words = line.split_ascii_whitespace();
        let Some(key) = words.next() else { continue };
        if key == "cpu" {
            if cpu.is_some() {
                return Err(ParseError::bad(FILE, i, "second aggregate cpu line"));
            }
            let mut v = [0u64; 8];
            let mut n = 0;
            for w in words {
                if n == v.len() {
                    break; // guest, guest_nice and later additions
                }
                v[n] = parse_u64(w).ok_or(ParseError::bad(FILE, i, "cpu line: bad number"))?;
                n += 1;
            }
            if n < 4 {
                return Err(ParseError::bad(FILE, i, "cpu line: fewer than 4 counters"));
            }
            cpu = Some(CpuTimes {
                user: v[0],
                nice: v[1],
                system: v[2],
                idle: v[3],
                iowait: v[4],
                irq: v[5],
                softirq: v[6],
                steal: v[7],
            });
        } else if let Some(n) = key.strip_prefix("cpu") {
            if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
                cores = cores.saturating_add(1);
            }
        }
        // Every other line (intr, ctxt, btime, ... and anything unknown) is not ours.
    }
    let cpu = cpu.ok_or(ParseError::Missing {
        file: FILE,
        what: "aggregate cpu line",
    })?;
    Ok(Stat { cpu, cores })
}

/// Busy share of the CPU time that passed between two readings, in percent (0..=100).
/// Each counter is compared on its own, and one that went backwards (iowait does on some
/// kernels, a counter of a CPU going offline does) counts as no progress rather than as a huge
/// value. No time passed at all gives 0.
pub fn busy_percent(prev: &CpuTimes, cur: &CpuTimes) -> f64 {
    let d = |a: u64, b: u64| b.saturating_sub(a);
    let busy = d(prev.user, cur.user)
        .saturating_add(d(prev.nice, cur.nice))
        .saturating_add(d(prev.system, cur.system))
        .saturating_add(d(prev.irq, cur.irq))
        .saturating_add(d(prev.softirq, cur.softirq))
        .saturating_add(d(prev.steal, cur.steal));
    let idle = d(prev.idle, cur.idle).saturating_add(d(prev.iowait, cur.iowait));
    let total = busy.saturating_add(idle);
    if total == 0 {
        return 0.0;
    }
    busy as f64 * 100.0 / total as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str = include_str!("../../tests/fixtures/proc/debian-x86_64/stat");
    const OPENWRT: &str = include_str!("../../tests/fixtures/proc/openwrt-mipsel/stat");
    const OPENWRT_NEXT: &str = include_str!("../../tests/fixtures/proc/openwrt-mipsel/stat.next");

    #[test]
    fn debian_x86_64() {
        let s = parse(DEBIAN).unwrap();
        assert_eq!(
            s.cpu,
            CpuTimes {
                user: 29919,
                nice: 0,
                system: 8597,
                idle: 89248,
                iowait: 500,
                irq: 0,
                softirq: 83,
                steal: 25,
            }
        );
        assert_eq!(s.cores, 2);
    }

    #[test]
    fn openwrt_mipsel_two_readings() {
        let a = parse(OPENWRT).unwrap();
        let b = parse(OPENWRT_NEXT).unwrap();
        assert_eq!(a.cores, 4);
        assert_eq!(a.cpu.user, 81234);
        assert_eq!(a.cpu.softirq, 95642);
        // 2000 ticks passed (4 CPUs x 5 s x 100 Hz): 300 user + 150 system + 190 softirq busy.
        assert_eq!(busy_percent(&a.cpu, &b.cpu), 32.0);
    }

    #[test]
    fn old_kernel_with_four_columns() {
        let s = parse("cpu  10 20 30 40\ncpu0 10 20 30 40\n").unwrap();
        assert_eq!(s.cpu.idle, 40);
        assert_eq!(s.cpu.iowait, 0);
        assert_eq!(s.cores, 1);
    }

    #[test]
    fn extra_columns_are_ignored() {
        let s = parse("cpu 1 2 3 4 5 6 7 8 9 10 11 12 13\n").unwrap();
        assert_eq!(s.cpu.steal, 8);
    }

    #[test]
    fn backwards_counter_is_no_progress() {
        let prev = CpuTimes {
            user: 100,
            idle: 1000,
            iowait: 50,
            ..Default::default()
        };
        // iowait went back by 40: counted as 0, not as 2^64 - 40.
        let cur = CpuTimes {
            user: 150,
            idle: 1050,
            iowait: 10,
            ..Default::default()
        };
        assert_eq!(busy_percent(&prev, &cur), 50.0);
        assert_eq!(busy_percent(&cur, &prev), 0.0);
        assert_eq!(busy_percent(&prev, &prev), 0.0);
    }

    #[test]
    fn saturates_instead_of_overflowing() {
        let prev = CpuTimes::default();
        let cur = CpuTimes {
            user: u64::MAX,
            system: u64::MAX,
            idle: u64::MAX,
            ..Default::default()
        };
        let p = busy_percent(&prev, &cur);
        assert!((0.0..=100.0).contains(&p), "{p}");
    }

    #[test]
    fn odd_input_is_an_error_not_a_panic() {
        assert_eq!(parse(""), Err(ParseError::Empty { file: FILE }));
        assert_eq!(parse(" \n\n"), Err(ParseError::Empty { file: FILE }));
        assert_eq!(
            parse("intr 1 2\nctxt 5\n"),
            Err(ParseError::Missing {
                file: FILE,
                what: "aggregate cpu line"
            })
        );
        assert_eq!(
            parse("ctxt 5\ncpu 1 2 x 4\n").unwrap_err().to_string(),
            "/proc/stat:2: cpu line: bad number"
        );
        assert!(parse("cpu 1 2 3\n").is_err());
        assert!(parse("cpu -1 2 3 4\n").is_err());
        assert!(parse("cpu 99999999999999999999999 2 3 4\n").is_err());
        assert!(parse("cpu 1 2 3 4\ncpu 1 2 3 4\n").is_err());
        // Garbage lines around a good cpu line are skipped.
        let s = parse("garbage\x00\u{fffd}\ncpu 1 2 3 4\ncpuX 1\ncpu7 1 2\n:::\n").unwrap();
        assert_eq!((s.cpu.system, s.cores), (3, 1));
        // Every prefix of a real file parses or fails cleanly.
        for end in 0..DEBIAN.len() {
            if DEBIAN.is_char_boundary(end) {
                let _ = parse(&DEBIAN[..end]);
            }
        }
    }
}
