//! How long a server's `Retry-After` is honoured. A platform may ask for any delay (a
//! `Retry-After: 99999999999` would silence REST for three thousand years); the agent meanwhile
//! keeps a snapshot every cycle in a backlog of BACKLOG_KB, which drops its oldest entry once
//! full. So the request is honoured for at most `MAX_CYCLES` cycles, and never past the cycle
//! in which the backlog would start dropping; the usual backoff (1 s doubling to 5 min, with
//! jitter) stays the floor.

use std::time::Duration;

/// Cycles a Retry-After is honoured for at most.
pub const MAX_CYCLES: u64 = 3;

/// How much of a `retry_after` seconds request is honoured: at most `MAX_CYCLES` cycles and at
/// most `fits` cycles, `fits` being how many more snapshots the backlog takes before it drops
/// one.
pub fn honoured(retry_after: u64, cycle: Duration, fits: u64) -> Duration {
    let cycles = MAX_CYCLES.min(fits) as u32;
    Duration::from_secs(retry_after).min(cycle.saturating_mul(cycles))
}

/// The delay before the next POST: the backoff, or the honoured part of Retry-After when longer.
pub fn delay(backoff: Duration, retry_after: Option<u64>, cycle: Duration, fits: u64) -> Duration {
    match retry_after {
        Some(a) => backoff.max(honoured(a, cycle, fits)),
        None => backoff,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_by_cycles_and_by_backlog_room() {
        let s = Duration::from_secs;
        let cycle = s(5);
        // A huge request: three cycles while the backlog has room for more.
        assert_eq!(honoured(99_999_999_999, cycle, 100), s(15));
        assert_eq!(honoured(u64::MAX, cycle, 100), s(15));
        // A short one is honoured as asked.
        assert_eq!(honoured(7, cycle, 100), s(7));
        // Room for one more snapshot only: retry within one cycle; none: not delayed at all.
        assert_eq!(honoured(600, cycle, 1), s(5));
        assert_eq!(honoured(600, cycle, 0), s(0));
        // The backoff is the floor; without Retry-After it is the delay.
        assert_eq!(delay(s(40), Some(600), cycle, 100), s(40));
        assert_eq!(delay(s(1), Some(600), cycle, 100), s(15));
        assert_eq!(delay(s(1), None, cycle, 100), s(1));
    }
}
