//! The wall clock beside the monotonic one. Everything that measures (cycles, rates, status,
//! expiry) runs on the monotonic clock; the wall clock only labels. A router without an RTC
//! boots at its image's build date and NTP steps the wall clock by months or years later:
//! [`StepWatch`] notices such a step (the offset between the two clocks moves) so the agent
//! can say so once, with its size.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Offset changes smaller than this are not steps (NTP slews those, and reading two clocks
/// one after the other has jitter).
pub const STEP_MIN_NS: i128 = 1_000_000_000;

/// Wall-clock nanoseconds since the Unix epoch (negative before 1970).
pub fn wall_ns(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// Watches the offset wall - monotonic.
#[derive(Debug, Clone)]
pub struct StepWatch {
    origin: Instant,
    offset: i128,
}

impl StepWatch {
    /// Starts watching from a pair of readings taken together.
    pub fn new(mono: Instant, wall: SystemTime) -> StepWatch {
        StepWatch {
            origin: mono,
            offset: wall_ns(wall),
        }
    }

    /// The wall clock's step in nanoseconds since the last step seen (None: no step).
    pub fn check(&mut self, mono: Instant, wall: SystemTime) -> Option<i128> {
        let elapsed = mono.saturating_duration_since(self.origin).as_nanos() as i128;
        let offset = wall_ns(wall) - elapsed;
        let step = offset - self.offset;
        if step.abs() < STEP_MIN_NS {
            return None;
        }
        self.offset = offset;
        Some(step)
    }
}

/// "+126230400.000 s (about 4.0 years)" for a log line.
pub fn describe_step(ns: i128) -> String {
    let s = ns as f64 / 1e9;
    let a = s.abs();
    let about = if a >= 365.25 * 86_400.0 {
        format!(
            "{} years",
            crate::decimal::Fixed(a / (365.25 * 86_400.0), 1)
        )
    } else if a >= 86_400.0 {
        format!("{} days", crate::decimal::Fixed(a / 86_400.0, 1))
    } else if a >= 3600.0 {
        format!("{} hours", crate::decimal::Fixed(a / 3600.0, 1))
    } else {
        format!("{} s", crate::decimal::Fixed(a, 1))
    };
    format!("{:+} s (about {about})", crate::decimal::Fixed(s, 3))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn steps_are_seen_once_with_their_size() {
        let t0 = Instant::now();
        let w0 = UNIX_EPOCH + Duration::from_secs(1_600_000_000);
        let mut w = StepWatch::new(t0, w0);
        // Both clocks advance together, with a little jitter: no step.
        let t1 = t0 + Duration::from_secs(5);
        assert_eq!(w.check(t1, w0 + Duration::from_millis(5_200)), None);
        // NTP steps the wall clock forward 4 years.
        let four_years = Duration::from_secs(126_230_400);
        let t2 = t0 + Duration::from_secs(10);
        let step = w.check(t2, w0 + Duration::from_secs(10) + four_years);
        assert_eq!(step, Some(126_230_400 * 1_000_000_000));
        // Seen once: the next cycle on the new time is not a step.
        let t3 = t0 + Duration::from_secs(15);
        assert_eq!(w.check(t3, w0 + Duration::from_secs(15) + four_years), None);
        // Back 30 days.
        let t4 = t0 + Duration::from_secs(20);
        let back = w.check(
            t4,
            w0 + Duration::from_secs(20) + four_years - Duration::from_secs(2_592_000),
        );
        assert_eq!(back, Some(-2_592_000 * 1_000_000_000));
        assert_eq!(
            describe_step(-2_592_000 * 1_000_000_000),
            "-2592000.000 s (about 30.0 days)"
        );
        assert_eq!(
            describe_step(126_230_400 * 1_000_000_000),
            "+126230400.000 s (about 4.0 years)"
        );
    }

    #[test]
    fn before_1970_is_negative() {
        assert_eq!(wall_ns(UNIX_EPOCH - Duration::from_secs(1)), -1_000_000_000);
    }
}
