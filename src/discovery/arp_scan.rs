//! Our own ARP scanner: a who-has for every host address of NETWORK_RANGE, paced at SCAN_RATE
//! bits/s (arp-scan's rule: one frame's bits per interval), each address tried up to
//! SCAN_RETRIES times (a retry only for addresses that have not answered, after arp-scan's
//! 500 ms per-host timeout), a new scan every SCAN_INTERVAL. The scheduler is pure: it is told
//! the time and the replies, and says which address to probe next and when it wants to be
//! woken. Frames are built and read with smoltcp's `wire`.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr,
};

use crate::addr::Ipv4Cidr;

/// Length of a who-has frame as we send it (Ethernet header + ARP); the kernel/NIC pads it.
pub const PROBE_LEN: usize = 42;
/// How long to wait for an answer before retrying an address (arp-scan's default timeout).
pub const HOST_TIMEOUT: Duration = Duration::from_millis(500);
/// Largest prefix we scan without SCAN_FORCE: a /16 is 65 534 probes.
pub const MAX_UNFORCED_PREFIX: u8 = 16;
/// Probes sent in one wake-up at most, so a late loop does not burst.
const MAX_BURST: u32 = 32;
/// Probes due within this much of now go out in the same wake-up: at 256 kbit/s one probe is
/// due every 1.3 ms, and waking for each would cost ~500 wake-ups per scan of a /24. The
/// average rate stays SCAN_RATE; probes leave in small bursts (15 at the default rate).
pub const SLACK: Duration = Duration::from_millis(20);

/// What to scan and how fast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// The addresses to ask for.
    pub range: Ipv4Cidr,
    /// Pacing in bits/s on the wire (SCAN_RATE).
    pub rate_bps: u64,
    /// Who-has tries per address (SCAN_RETRIES).
    pub retries: u32,
    /// Zero: one scan only (the `scan` subcommand, or SCAN_INTERVAL=0 for none at all).
    pub interval: Duration,
    /// Allow ranges larger than /16 (SCAN_FORCE).
    pub force: bool,
}

/// Checks a range against the size limit; the error names the key to set.
pub fn check_range(range: Ipv4Cidr, force: bool) -> Result<(), String> {
    if range.prefix() < MAX_UNFORCED_PREFIX && !force {
        return Err(format!(
            "NETWORK_RANGE {range} has {} addresses, more than a /16: refused (set SCAN_FORCE=1 to scan it anyway)",
            range.size()
        ));
    }
    Ok(())
}

/// The gap between two probes at `rate_bps` (arp-scan: packet bits / bandwidth).
pub fn probe_gap(rate_bps: u64) -> Duration {
    let bits = (PROBE_LEN as u64) * 8;
    Duration::from_nanos(bits.saturating_mul(1_000_000_000) / rate_bps.max(1))
}

/// The scan state. Memory is fixed at creation: one answered bit and one send time (ms since
/// scan start) per address.
pub struct Scanner {
    settings: Settings,
    first: u32,
    count: u32,
    gap: Duration,
    answered: Vec<u64>,
    sent_ms: Vec<u32>,
    state: State,
    scan_start: Instant,
    /// Scans completed.
    pub scans: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Sending pass `pass` (0-based), next address index `pos`, next probe at `at`.
    Sending { pass: u32, pos: u32, at: Instant },
    /// A pass is out; waiting for answers until `until`, then the next pass or the end.
    Waiting { pass: u32, until: Instant },
    /// Done; the next scan starts at `next` (None: never).
    Idle { next: Option<Instant> },
}

impl Scanner {
    /// A scanner whose first scan starts at `now`. The range must have passed `check_range`.
    pub fn new(settings: Settings, now: Instant) -> Scanner {
        let (first, count) = host_span(settings.range);
        let words = (count as usize).div_ceil(64);
        Scanner {
            settings,
            first,
            count,
            gap: probe_gap(settings.rate_bps),
            answered: vec![0; words],
            sent_ms: vec![0; count as usize],
            state: State::Sending {
                pass: 0,
                pos: 0,
                at: now,
            },
            scan_start: now,
            scans: 0,
        }
    }

    /// When the scanner next has something to do (None: never again).
    pub fn deadline(&self) -> Option<Instant> {
        match self.state {
            State::Sending { at, .. } => Some(at),
            State::Waiting { until, .. } => Some(until),
            State::Idle { next } => next,
        }
    }

    /// True once a one-shot scan (interval 0) has finished.
    pub fn finished(&self) -> bool {
        matches!(self.state, State::Idle { next: None })
    }

    /// Addresses to probe now, written into `out`; returns how many. Call at every wake-up.
    pub fn due(&mut self, now: Instant, out: &mut [Ipv4Addr]) -> usize {
        let mut n = 0;
        loop {
            match self.state {
                State::Idle { next: Some(t) } if now >= t => self.start(now),
                State::Idle { .. } => return n,
                State::Waiting { pass, until } => {
                    if now < until {
                        return n;
                    }
                    if pass + 1 < self.settings.retries && !self.all_answered() {
                        self.state = State::Sending {
                            pass: pass + 1,
                            pos: 0,
                            at: now,
                        };
                    } else {
                        self.finish(now);
                    }
                }
                State::Sending { pass, pos, at } => {
                    if now + SLACK < at || n >= out.len() || n as u32 >= MAX_BURST {
                        return n;
                    }
                    // Skip answered addresses (on retries).
                    let mut p = pos;
                    while p < self.count && self.is_answered(p) {
                        p += 1;
                    }
                    if p >= self.count {
                        self.state = State::Waiting {
                            pass,
                            until: now + HOST_TIMEOUT,
                        };
                        continue;
                    }
                    out[n] = Ipv4Addr::from(self.first.wrapping_add(p));
                    n += 1;
                    self.sent_ms[p as usize] =
                        now.saturating_duration_since(self.scan_start)
                            .as_millis()
                            .min(u32::MAX as u128) as u32;
                    // Keep the grid if we are behind by less than a gap; never catch up in a burst
                    // beyond MAX_BURST.
                    let next = if now.saturating_duration_since(at) > self.gap * MAX_BURST {
                        now + self.gap
                    } else {
                        at + self.gap
                    };
                    self.state = if p + 1 >= self.count {
                        State::Waiting {
                            pass,
                            until: now + HOST_TIMEOUT,
                        }
                    } else {
                        State::Sending {
                            pass,
                            pos: p + 1,
                            at: next,
                        }
                    };
                }
            }
        }
    }

    /// Records an answer from `ip`; returns the time since its last probe when it is one of
    /// ours and the first answer of this scan.
    pub fn answer(&mut self, ip: Ipv4Addr, now: Instant) -> Option<Duration> {
        let idx = u32::from(ip).wrapping_sub(self.first);
        if idx >= self.count || !self.settings.range.contains(ip) || self.is_answered(idx) {
            return None;
        }
        self.answered[(idx / 64) as usize] |= 1 << (idx % 64);
        let sent = self.scan_start + Duration::from_millis(self.sent_ms[idx as usize] as u64);
        Some(now.saturating_duration_since(sent))
    }

    fn is_answered(&self, idx: u32) -> bool {
        self.answered[(idx / 64) as usize] & (1 << (idx % 64)) != 0
    }

    fn all_answered(&self) -> bool {
        (0..self.count).all(|i| self.is_answered(i))
    }

    fn start(&mut self, now: Instant) {
        self.answered.iter_mut().for_each(|w| *w = 0);
        self.scan_start = now;
        self.state = State::Sending {
            pass: 0,
            pos: 0,
            at: now,
        };
    }

    fn finish(&mut self, now: Instant) {
        self.scans += 1;
        let next = (!self.settings.interval.is_zero())
            .then(|| self.scan_start + self.settings.interval)
            .map(|t| t.max(now));
        self.state = State::Idle { next };
    }
}

/// First host address and number of hosts (what `Ipv4Cidr::hosts` yields).
fn host_span(range: Ipv4Cidr) -> (u32, u32) {
    let net = u32::from(range.network());
    if range.prefix() >= 31 {
        (net, range.size() as u32)
    } else {
        (net + 1, (range.size() - 2).min(u32::MAX as u64) as u32)
    }
}

/// Builds a broadcast who-has for `target` from (`src_mac`, `src_ip`) into `buf`.
pub fn build_probe(
    src_mac: [u8; 6],
    src_ip: Ipv4Addr,
    target: Ipv4Addr,
    buf: &mut [u8; PROBE_LEN],
) {
    let eth = EthernetRepr {
        src_addr: EthernetAddress(src_mac),
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EthernetProtocol::Arp,
    };
    let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.emit(&mut frame);
    let arp = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: EthernetAddress(src_mac),
        source_protocol_addr: src_ip,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: target,
    };
    let mut packet = ArpPacket::new_unchecked(frame.payload_mut());
    arp.emit(&mut packet);
}

/// The (IP, MAC) an ARP reply in an Ethernet frame announces; None for anything else.
pub fn parse_reply(frame: &[u8]) -> Option<(Ipv4Addr, [u8; 6])> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Arp {
        return None;
    }
    let arp = ArpPacket::new_checked(eth.payload()).ok()?;
    match ArpRepr::parse(&arp).ok()? {
        ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Reply,
            source_hardware_addr,
            source_protocol_addr,
            ..
        } => Some((source_protocol_addr, source_hardware_addr.0)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(range: &str, retries: u32, interval: u64) -> Settings {
        Settings {
            range: Ipv4Cidr::parse(range).unwrap(),
            rate_bps: 256_000,
            retries,
            interval: Duration::from_secs(interval),
            force: false,
        }
    }

    #[test]
    fn range_limit() {
        assert!(check_range(Ipv4Cidr::parse("10.0.0.0/16").unwrap(), false).is_ok());
        let e = check_range(Ipv4Cidr::parse("10.0.0.0/15").unwrap(), false).unwrap_err();
        assert!(e.contains("SCAN_FORCE"), "{e}");
        assert!(check_range(Ipv4Cidr::parse("10.0.0.0/8").unwrap(), true).is_ok());
    }

    #[test]
    fn pacing_like_arp_scan() {
        // 42 bytes * 8 bits at 256 kbit/s = 1.3125 ms.
        assert_eq!(probe_gap(256_000), Duration::from_nanos(1_312_500));
        assert_eq!(probe_gap(0), Duration::from_nanos(336 * 1_000_000_000));
    }

    /// Drives a /29 (6 hosts) through two passes with two answers, on a simulated clock.
    #[test]
    fn passes_retries_and_interval() {
        let t0 = Instant::now();
        let mut s = Scanner::new(settings("192.168.7.0/29", 2, 60), t0);
        let mut out = [Ipv4Addr::UNSPECIFIED; 64];
        let gap = probe_gap(256_000);
        // Pass 0: the 6 probes are due within SLACK (6 x 1.3 ms), so they leave in one wake-up.
        assert_eq!(s.deadline(), Some(t0));
        let n = s.due(t0, &mut out);
        let sent: Vec<String> = out[..n].iter().map(|a| a.to_string()).collect();
        assert_eq!(
            sent,
            [
                "192.168.7.1",
                "192.168.7.2",
                "192.168.7.3",
                "192.168.7.4",
                "192.168.7.5",
                "192.168.7.6"
            ]
        );
        assert_eq!(
            s.answer(
                "192.168.7.2".parse().unwrap(),
                t0 + Duration::from_millis(3)
            ),
            Some(Duration::from_millis(3)) // sent at t0 (early, within the slack)
        );
        assert_eq!(s.answer("192.168.7.2".parse().unwrap(), t0), None); // once
        assert_eq!(s.answer("192.168.8.2".parse().unwrap(), t0), None); // not ours
        s.answer("192.168.7.5".parse().unwrap(), t0);
        // The wait for answers, then pass 1 without the two that answered.
        let mut now = s.deadline().unwrap();
        assert_eq!(now, t0 + HOST_TIMEOUT);
        assert_eq!(s.due(now - gap, &mut out), 0);
        let n = s.due(now, &mut out);
        let r: Vec<String> = out[..n].iter().map(|a| a.to_string()).collect();
        assert_eq!(
            r,
            ["192.168.7.1", "192.168.7.3", "192.168.7.4", "192.168.7.6"]
        );
        // Then the final wait, then idle until t0 + 60 s.
        now = s.deadline().unwrap();
        assert_eq!(s.due(now - gap, &mut out), 0);
        assert_eq!(s.due(now, &mut out), 0);
        assert_eq!(s.scans, 1);
        assert_eq!(s.deadline(), Some(t0 + Duration::from_secs(60)));
        // The next scan probes everything again.
        assert_eq!(s.due(t0 + Duration::from_secs(60), &mut out), 6);
        assert_eq!(out[0].to_string(), "192.168.7.1");
    }

    /// A bigger range keeps the rate: over a pass, probe k never leaves before k gaps minus the
    /// slack, and bursts stay below MAX_BURST.
    #[test]
    fn pacing_holds_over_a_pass() {
        let t0 = Instant::now();
        let mut s = Scanner::new(settings("10.3.0.0/24", 1, 0), t0);
        let gap = probe_gap(256_000);
        let mut out = [Ipv4Addr::UNSPECIFIED; 64];
        let mut now = t0;
        let mut k = 0u32;
        let mut wakeups = 0;
        while k < 254 {
            let n = s.due(now, &mut out) as u32;
            assert!(n <= MAX_BURST);
            for j in 0..n {
                assert!(now + SLACK >= t0 + gap * (k + j), "probe {} early", k + j);
            }
            k += n;
            wakeups += 1;
            now = s.deadline().unwrap();
        }
        assert!(wakeups <= 254 / 14 + 2, "{wakeups} wake-ups");
    }

    #[test]
    fn one_shot_finishes_early_when_all_answer() {
        let t0 = Instant::now();
        let mut s = Scanner::new(settings("10.1.1.0/30", 3, 0), t0);
        let mut out = [Ipv4Addr::UNSPECIFIED; 8];
        let mut now = t0;
        let mut n = 0;
        while n < 2 {
            n += s.due(now, &mut out[n..]);
            now = s.deadline().unwrap();
        }
        s.answer("10.1.1.1".parse().unwrap(), now);
        s.answer("10.1.1.2".parse().unwrap(), now);
        now = s.deadline().unwrap();
        assert_eq!(s.due(now, &mut out), 0);
        assert!(s.finished());
        assert_eq!(s.deadline(), None);
    }

    #[test]
    fn late_wakeup_is_bounded() {
        let t0 = Instant::now();
        let mut s = Scanner::new(settings("10.2.0.0/22", 1, 0), t0);
        let mut out = [Ipv4Addr::UNSPECIFIED; 1024];
        // Two gaps late: the missed probes go out now, with those due within the slack.
        let gap = probe_gap(256_000);
        let n = s.due(t0 + gap * 2, &mut out);
        assert_eq!(n as u32, 3 + (SLACK.as_nanos() / gap.as_nanos()) as u32);
        // Woken 10 s late: no catching up, a new grid from now (what is due within the slack).
        let late = t0 + Duration::from_secs(10);
        let n = s.due(late, &mut out) as u32;
        assert_eq!(n, 1 + (SLACK.as_nanos() / gap.as_nanos()) as u32);
        assert!(s.deadline().unwrap() > late + SLACK - gap);
    }

    #[test]
    fn probe_round_trip() {
        let mut buf = [0u8; PROBE_LEN];
        let mac = [2, 0, 0, 0, 0, 1];
        build_probe(
            mac,
            "10.0.0.1".parse().unwrap(),
            "10.0.0.9".parse().unwrap(),
            &mut buf,
        );
        assert_eq!(&buf[0..6], &[0xff; 6]);
        assert_eq!(&buf[6..12], &mac);
        assert_eq!(&buf[12..14], &[0x08, 0x06]);
        assert_eq!(&buf[20..22], &[0, 1]); // request
        assert_eq!(&buf[38..42], &[10, 0, 0, 9]);
        assert_eq!(parse_reply(&buf), None); // a request is not a reply
                                             // Turn it into a reply from 10.0.0.9.
        let mut reply = buf;
        reply[21] = 2;
        reply[22..28].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
        reply[28..32].copy_from_slice(&[10, 0, 0, 9]);
        assert_eq!(
            parse_reply(&reply),
            Some(("10.0.0.9".parse().unwrap(), [2, 0, 0, 0, 0, 9]))
        );
        for n in 0..reply.len() {
            assert_eq!(parse_reply(&reply[..n]), None, "truncated at {n}");
        }
    }
}
