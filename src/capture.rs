//! The capture ring's lifecycle on INTERFACE: opening the AF_PACKET socket (`sys::packet`),
//! noticing the interface going down, away or being re-created (as netifd does), reopening with
//! backoff, draining the ring and reading the kernel's drop counter. The loop polls `fd()`,
//! calls `drain` on each wake and `check` once per cycle; the reasons capture is off end up in
//! `agent.capture.offReason`.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::addr::parse_mac;
use crate::config::Config;
use crate::frame::{Direction, Frame, LinkType};
use crate::sys::packet::{self, OpenError, Options, PacketSocket, RawFrame, RingGeometry};

/// First and largest wait before reopening a capture that failed or went away.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How long the kernel may hold a partly filled block before handing it to us.
pub const BLOCK_TIMEOUT_MS: u32 = 50;

/// What the agent knows of the capture interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// ifindex.
    pub index: i32,
    /// Hardware address, when it has one.
    pub mac: Option<[u8; 6]>,
    /// IFF_UP.
    pub up: bool,
}

/// Reads ifindex, MAC and IFF_UP of `name` from `sys_root`/class/net; None when it is absent.
pub fn link(sys_root: &Path, name: &str) -> Option<Link> {
    let dir = sys_root.join("class/net").join(name);
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
    let index = read("ifindex")?.trim().parse().ok()?;
    let mac = read("address").and_then(|m| parse_mac(m.trim()));
    let flags = read("flags")
        .and_then(|f| u32::from_str_radix(f.trim().trim_start_matches("0x"), 16).ok())
        .unwrap_or(0);
    Some(Link {
        index,
        mac,
        up: flags & 1 != 0,
    })
}

/// The MACs of every interface of this host (frames from them are the agent's own).
pub fn own_macs(sys_root: &Path) -> Vec<[u8; 6]> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(sys_root.join("class/net")) {
        for e in rd.flatten() {
            if let Ok(m) = std::fs::read_to_string(e.path().join("address")) {
                if let Some(mac) = parse_mac(m.trim()) {
                    if mac != [0; 6] && !out.contains(&mac) {
                        out.push(mac);
                    }
                }
            }
        }
    }
    out
}

/// The live capture: a socket when it is open, otherwise why not and when to try again.
pub struct Capture {
    interface: Option<String>,
    sys_root: PathBuf,
    promisc: bool,
    geometry: Result<RingGeometry, String>,
    sock: Option<PacketSocket>,
    /// Why capture is off now (None: live).
    off_reason: Option<String>,
    retry_at: Option<Instant>,
    backoff: Duration,
    /// Frames read from the ring since start.
    pub frames: u64,
    /// Frames the kernel dropped (ring full) since start, from PACKET_STATISTICS.
    pub dropped: u64,
    /// Blocks with a frame header pointing outside the block (never seen in practice).
    pub bad_blocks: u64,
    /// Times the capture was (re)opened.
    pub opens: u64,
}

impl Capture {
    /// The capture as configured, not opened yet (`open` opens it).
    pub fn new(cfg: &Config) -> Capture {
        Capture::on(cfg, cfg.interface.clone())
    }

    /// The capture of `interface` (one of INTERFACE's list) with the config's ring and mode.
    pub fn on(cfg: &Config, interface: Option<String>) -> Capture {
        Capture {
            interface,
            sys_root: cfg.sys_root.clone(),
            promisc: cfg.promisc,
            geometry: RingGeometry::new(cfg.ring_kb as u64, packet::page_size()),
            sock: None,
            off_reason: Some("not opened yet".into()),
            retry_at: None,
            backoff: BACKOFF_MIN,
            frames: 0,
            dropped: 0,
            bad_blocks: 0,
            opens: 0,
        }
    }

    /// The capture interface, when there is one.
    pub fn interface(&self) -> Option<&str> {
        self.interface.as_deref()
    }

    /// None while capturing; otherwise the reason capture is off.
    pub fn off_reason(&self) -> Option<&str> {
        self.off_reason.as_deref()
    }

    /// Opens the capture now; on failure records the reason and schedules a retry.
    pub fn open(&mut self, now: Instant) {
        self.sock = None;
        let Some(name) = self.interface.clone() else {
            self.off(
                "no capture interface (INTERFACE not set and none detected)".into(),
                None,
            );
            return;
        };
        let geometry = match &self.geometry {
            Ok(g) => *g,
            Err(e) => {
                self.off(format!("RING_KB: {e}"), None);
                return;
            }
        };
        let opts = Options {
            interface: &name,
            promisc: self.promisc,
            ring: Some(geometry),
            snap: packet::SNAP_HEADERS,
            block_timeout_ms: BLOCK_TIMEOUT_MS,
        };
        match crate::sys::privdrop::with_net_raw(|| packet::open(&opts)) {
            Ok(sock) => {
                self.sock = Some(sock);
                self.opens += 1;
                self.off_reason = None;
                self.retry_at = None;
                self.backoff = BACKOFF_MIN;
                if link(&self.sys_root, &name).is_some_and(|l| !l.up) {
                    self.off_reason = Some(format!("interface {name} is down"));
                }
                info!("capture open on {name}");
            }
            Err(e) => {
                let retry = Some(now + self.backoff);
                self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                let reason = match &e {
                    OpenError::Permission(_) => format!(
                        "{e}; run as root or grant it (setcap cap_net_raw+ep, or procd's capabilities)"
                    ),
                    _ => e.to_string(),
                };
                self.off(reason, retry);
            }
        }
    }

    fn off(&mut self, reason: String, retry_at: Option<Instant>) {
        if self.off_reason.as_deref() != Some(reason.as_str()) {
            warn!("capture off: {reason}");
        }
        self.off_reason = Some(reason);
        self.retry_at = retry_at;
    }

    /// When the loop must wake to reopen (None: nothing scheduled).
    pub fn deadline(&self) -> Option<Instant> {
        self.retry_at
    }

    /// The fd to poll for frames.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.sock.as_ref().map(|s| s.as_fd())
    }

    /// Called on each wake-up (with `error` when poll reported POLLERR on the fd) and once per
    /// cycle: reopens when due, notices an interface that went down, away, or came back as a
    /// new interface with a new index.
    pub fn check(&mut self, now: Instant, error: bool) {
        if self.sock.is_none() {
            if self.retry_at.is_some_and(|t| now >= t) {
                self.open(now);
            }
            return;
        }
        let name = self.interface.clone().unwrap_or_default();
        if error {
            if let Some(Ok(Some(e))) = self.sock.as_ref().map(|s| s.take_error()) {
                debug!("capture socket error: {e}");
            }
        }
        let bound = self.sock.as_ref().map(|s| s.ifindex());
        match link(&self.sys_root, &name) {
            None => {
                self.sock = None;
                let retry = Some(now + BACKOFF_MIN);
                self.off(format!("interface {name} does not exist"), retry);
            }
            Some(l) if Some(l.index) != bound => {
                info!("interface {name} was re-created, reopening capture");
                self.open(now);
            }
            Some(l) if !l.up => self.off(format!("interface {name} is down"), None),
            Some(_) => {
                if self.off_reason.is_some() {
                    info!("interface {name} is up, capture live");
                }
                self.off_reason = None;
            }
        }
    }

    /// Reads every frame the kernel has handed over, each with the monotonic time its block
    /// was taken from the ring (one clock read per block, not per frame). Returns the number
    /// of frames.
    pub fn drain(&mut self, mut each: impl FnMut(&RawFrame<'_>, Instant)) -> u64 {
        let Some(sock) = self.sock.as_mut() else {
            return 0;
        };
        let mut n = 0;
        while let Some(mut block) = sock.next_block() {
            let at = Instant::now();
            while let Some(f) = block.next_frame() {
                each(&f, at);
                n += 1;
            }
            if block.malformed() {
                self.bad_blocks += 1;
            }
        }
        self.frames += n;
        n
    }

    /// Adds the kernel's drop counter since the last call to `dropped`.
    pub fn update_stats(&mut self) {
        if let Some(Ok(s)) = self.sock.as_ref().map(|s| s.statistics()) {
            self.dropped += s.drops as u64;
        }
    }

    /// Sends one frame (an ARP probe) when the capture is open.
    pub fn send(&self, frame: &[u8]) -> bool {
        self.sock.as_ref().is_some_and(|s| s.send(frame).is_ok())
    }
}

/// A raw ring frame as the decoder's `Frame`. A tag the kernel took out of the frame (VLAN
/// offload, or the untagging every receive path does) was on the wire: its 4 bytes count, as
/// in libpcap, tcpdump and tshark, which put the tag back.
pub fn to_frame<'a>(f: &RawFrame<'a>) -> Frame<'a> {
    Frame {
        ts: f.ts_sec as u64 * 1_000_000_000 + f.ts_nsec.min(999_999_999) as u64,
        orig_len: f.orig_len + if f.vlan_tci.is_some() { 4 } else { 0 },
        data: f.data,
        link: LinkType::Ethernet,
        direction: Direction::from_pkttype(f.pkttype as u16),
        vlan: f.vlan_tci.map(|t| t & 0x0fff),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_of_loopback() {
        let l = link(Path::new("/sys"), "lo").expect("lo exists");
        assert_eq!(l.index, 1);
        assert!(l.up);
        assert_eq!(l.mac, Some([0; 6]));
        assert!(link(Path::new("/sys"), "no-such-if0").is_none());
    }
}
