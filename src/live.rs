//! Live capture glue between `sys::packet` and the loop: opening the socket on INTERFACE,
//! noticing the interface going down, away or being re-created (as netifd does), reopening
//! with backoff, and the one-shot `scan` command. The loop in `agent.rs` polls `fd()`, calls
//! `drain` on each wake and `check` once per cycle; the reasons capture is off end up in
//! `agent.capture.offReason`.

use std::net::Ipv4Addr;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::capture::{Direction, Frame, LinkType};
use crate::config::Config;
use crate::devices::{DeviceTable, TableConfig};
use crate::discovery::arp_scan::{self, Scanner};
use crate::discovery::names::Names;
use crate::discovery::offload;
use crate::error::Error;
use crate::net::{format_mac, parse_mac};
use crate::snapshot::{CaptureInfo, CaptureMode, Device, OffloadInfo};
use crate::sys::packet::{self, OpenError, Options, PacketSocket, RawFrame, RingGeometry};
use crate::sys::poll::{poll, Interest, Ready};

/// First and largest wait before reopening a capture that failed or went away.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How long the kernel may hold a partly filled block before handing it to us.
pub const BLOCK_TIMEOUT_MS: u32 = 50;

/// What the agent knows of the capture interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: i32,
    pub mac: Option<[u8; 6]>,
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
pub struct Live {
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

impl Live {
    pub fn new(cfg: &Config) -> Live {
        Live {
            interface: cfg.interface.clone(),
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
    /// was taken (one clock read per block). Returns the number of frames.
    pub fn drain(&mut self, mut each: impl FnMut(&RawFrame<'_>, Instant)) -> u64 {
        let Some(sock) = self.sock.as_mut() else {
            return 0;
        };
        let mut n = 0;
        while let Some(mut block) = sock.next_block() {
            let at = Instant::now();
            for f in block.by_ref() {
                each(&f, at);
                n += 1;
            }
            if block.malformed {
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

/// An instant on the device table's clock: nanoseconds since `origin` (monotonic).
fn table_clock(origin: Instant, at: Instant) -> u64 {
    at.saturating_duration_since(origin).as_nanos() as u64
}

fn wall_ns(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Everything live the loop drives: the capture, the device table it feeds, the ARP scanner
/// sending through the same socket, names and the offload check.
pub struct Capture {
    pub live: Live,
    pub table: DeviceTable,
    scanner: Option<Scanner>,
    /// The scan to run (None: SCAN_INTERVAL=0); the scanner is made once the range is known.
    scan: Option<arp_scan::Settings>,
    scan_range_set: bool,
    /// Why there is no scanner, once said.
    scan_note: Option<String>,
    names: Names,
    proc_root: PathBuf,
    sys_root: PathBuf,
    /// Source MAC and IPv4 of our probes (from the interface, refreshed on each open).
    probe_src: Option<([u8; 6], Ipv4Addr)>,
    opens_seen: u64,
    offload: Option<OffloadInfo>,
    offload_at: Option<Instant>,
    /// Zero of the table's clock: the table runs on the monotonic clock (nanoseconds since
    /// this instant), never on frame timestamps or the wall clock, which NTP steps.
    clock_origin: Instant,
}

/// How often /proc/net/nf_conntrack is read for offloaded flows.
const OFFLOAD_EVERY: Duration = Duration::from_secs(60);

impl Capture {
    /// Opens the capture (or records why not), seeds the table from /proc/net/arp and the lease
    /// files, and checks for flow offloading once (with a warning when on).
    pub fn new(cfg: &Config, now: Instant) -> Capture {
        let table = DeviceTable::new(TableConfig {
            capacity: cfg.device_table_size,
            cycle_ns: cfg.cycle.as_nanos() as u64,
            timeout_cycles: cfg.device_timeout_cycles,
            expire_ns: cfg.device_expire.as_nanos() as u64,
            range: cfg.network_range,
            seed: [crate::sys::random::u64(), crate::sys::random::u64()],
        });
        // Without NETWORK_RANGE the range is the interface's subnet, known once it is open
        // (see `after_open`); 0.0.0.0/32 holds its place until then.
        let range = cfg
            .network_range
            .or(crate::net::Ipv4Cidr::new(Ipv4Addr::UNSPECIFIED, 32));
        let scan = range
            .filter(|_| !cfg.scan_interval.is_zero())
            .map(|range| arp_scan::Settings {
                range,
                rate_bps: cfg.scan_rate_bps,
                retries: cfg.scan_retries,
                interval: cfg.scan_interval,
                force: cfg.scan_force,
            });
        let mut cap = Capture {
            live: Live::new(cfg),
            table,
            scanner: None,
            scan,
            scan_range_set: cfg.network_range.is_some(),
            scan_note: None,
            names: Names::system(cfg.lease_file.clone()),
            proc_root: cfg.proc_root.clone(),
            sys_root: cfg.sys_root.clone(),
            probe_src: None,
            opens_seen: 0,
            offload: None,
            offload_at: None,
            clock_origin: now,
        };
        cap.table.begin(0);
        cap.live.open(now);
        cap.after_open();
        cap.seed(0);
        cap.refresh_offload(now);
        if let Some(w) = cap.offload.as_ref().and_then(offload::warning) {
            warn!("{w}");
        }
        cap
    }

    /// After each (re)open: our own MACs out of the table, the probes' source addresses.
    fn after_open(&mut self) {
        if self.live.opens == self.opens_seen {
            return;
        }
        self.opens_seen = self.live.opens;
        self.table.set_excluded(&own_macs(&self.sys_root));
        let addr = self.live.interface().and_then(crate::sys::ifaddrs::ipv4_of);
        self.probe_src = self.live.interface().and_then(|name| {
            let mac = link(&self.sys_root, name)?.mac?;
            Some((mac, addr.map_or(Ipv4Addr::UNSPECIFIED, |a| a.0)))
        });
        if self.scanner.is_some() {
            return;
        }
        let Some(mut settings) = self.scan else {
            return;
        };
        if !self.scan_range_set {
            match addr.and_then(|(a, p)| crate::net::Ipv4Cidr::new(a, p)) {
                Some(r) => settings.range = r,
                None => {
                    return self.note_scan(
                        "ARP scanning off until the interface has an IPv4 subnet (or set NETWORK_RANGE)".into(),
                    );
                }
            }
        }
        match arp_scan::check_range(settings.range, settings.force) {
            Ok(()) => self.scanner = Some(Scanner::new(settings, Instant::now())),
            Err(e) => self.note_scan(format!("ARP scanning off: {e}")),
        }
    }

    fn note_scan(&mut self, note: String) {
        if self.scan_note.as_deref() != Some(note.as_str()) {
            warn!("{note}");
            self.scan_note = Some(note);
        }
    }

    /// Devices the kernel's ARP cache and the lease files already know.
    fn seed(&mut self, now_ns: u64) {
        if let (Some(name), Ok(text)) = (
            self.live.interface(),
            std::fs::read_to_string(self.proc_root.join("net/arp")),
        ) {
            for (ip, mac) in crate::discovery::parse_proc_net_arp(&text, name) {
                self.table.learn_arp_reply(mac, ip, now_ns);
            }
        }
        self.names.refresh();
        self.apply_names();
    }

    fn apply_names(&mut self) {
        let known: Vec<([u8; 6], Option<Ipv4Addr>)> =
            self.table.iter().map(|e| (e.mac, e.ipv4())).collect();
        for (mac, ip) in known {
            if let Some(name) = self.names.lookup(&mac, ip.map(Into::into)) {
                let name = name.to_owned();
                self.table.set_name(&mac, &name);
            }
        }
    }

    fn refresh_offload(&mut self, now: Instant) {
        if self.offload_at.is_none_or(|t| now >= t) {
            self.offload = offload::read(&self.proc_root);
            self.offload_at = Some(now + OFFLOAD_EVERY);
        }
    }

    /// The fd to poll (None while capture is off).
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.live.fd()
    }

    /// The nearest time something is due here: a reopen or the next ARP probe.
    pub fn deadline(&self) -> Option<Instant> {
        let scan = self
            .scanner
            .as_ref()
            .filter(|_| self.live.fd().is_some())
            .and_then(|s| s.deadline());
        match (self.live.deadline(), scan) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// On every wake-up: reopen when due or on a socket error, drain the ring into the table,
    /// send the ARP probes that are due.
    pub fn wake(&mut self, now: Instant, error: bool) {
        if error || self.live.deadline().is_some_and(|t| now >= t) {
            self.live.check(now, error);
            self.after_open();
        }
        let table = &mut self.table;
        let scanner = &mut self.scanner;
        let clock = self.clock_origin;
        self.live.drain(|f, at| {
            let obs = crate::decode::decode(&to_frame(f));
            table.account(&obs, table_clock(clock, at));
            if let (Some(a), Some(s)) = (obs.arp, scanner.as_mut()) {
                s.answer(a.ip, now);
            }
        });
        if self.live.fd().is_none() {
            return;
        }
        if let (Some(s), Some((mac, ip))) = (self.scanner.as_mut(), self.probe_src) {
            let mut due = [Ipv4Addr::UNSPECIFIED; 32];
            let n = s.due(now, &mut due);
            let mut probe = [0u8; arp_scan::PROBE_LEN];
            for target in &due[..n] {
                arp_scan::build_probe(mac, ip, *target, &mut probe);
                self.live.send(&probe);
            }
        }
    }

    /// Waits for a platform socket (readable, or writable with `write`) for at most `timeout`
    /// while the capture goes on: one poll over the socket and the ring (with the timeout cut
    /// to the next ARP probe or reopen), and on each wake what the loop does (`wake`: drain the
    /// ring into the table, probes, reopen). True when the socket is ready. This is the
    /// `ship::wait` service of `run`, so a hanging platform never stalls the capture.
    pub fn wait_beside(
        &mut self,
        sock: BorrowedFd<'_>,
        write: bool,
        timeout: Duration,
    ) -> std::io::Result<bool> {
        let end = Instant::now() + timeout;
        loop {
            let now = Instant::now();
            let left = end.saturating_duration_since(now);
            let due = self.deadline().map(|d| d.saturating_duration_since(now));
            let timeout = due.map_or(left, |d| d.min(left));
            let s = Interest {
                fd: sock,
                read: !write,
                write,
            };
            let mut ready = [Ready::default(); 2];
            match self.fd() {
                Some(fd) => {
                    let ring = Interest {
                        fd,
                        read: true,
                        write: false,
                    };
                    poll(&[s, ring], timeout, &mut ready)?
                }
                None => poll(&[s], timeout, &mut ready)?,
            };
            let (r, ring) = (ready[0], ready[1]);
            let now = Instant::now();
            if ring.readable || ring.error || self.deadline().is_some_and(|d| now >= d) {
                self.wake(now, ring.error);
            }
            if crate::ship::wait::is_ready(r) {
                return Ok(true);
            }
            if now >= end {
                return Ok(false);
            }
        }
    }

    /// At the cycle end: one last drain, link check, kernel drop counter, names, rates and
    /// expiry; returns `agent.capture` and the devices.
    pub fn end_cycle(&mut self, now: Instant, wall: SystemTime) -> (CaptureInfo, Vec<Device>) {
        self.wake(now, false);
        self.live.check(now, false);
        self.after_open();
        self.live.update_stats();
        if self.names.refresh() {
            debug!("name files changed, re-read");
        }
        self.apply_names();
        self.refresh_offload(now);
        let now_ns = table_clock(self.clock_origin, now);
        self.table.end_cycle(now_ns);
        (self.info(), self.table.devices(now_ns, wall_ns(wall)))
    }

    /// `agent.capture` now.
    pub fn info(&self) -> CaptureInfo {
        let mode = if self.live.off_reason().is_none() {
            CaptureMode::Live
        } else {
            CaptureMode::Off
        };
        let mut info = self.table.capture_info(
            mode,
            self.live.interface().map(str::to_owned),
            self.live.dropped,
        );
        info.off_reason = self.live.off_reason().map(str::to_owned);
        info.offload = self.offload.clone();
        info
    }
}

/// One answer of a scan.
#[derive(Debug, Clone)]
pub struct Found {
    pub ip: Ipv4Addr,
    pub mac: [u8; 6],
    pub rtt: Duration,
}

/// Runs one ARP scan of `range` on `iface` through its own socket and returns the hosts that
/// answered, in the order they answered, and the time the scan took.
pub fn scan_once(cfg: &Config, iface: &str) -> Result<(Vec<Found>, Duration), Error> {
    let range = cfg.network_range.ok_or_else(|| {
        Error::Usage(format!(
            "no range to scan: {iface} has no IPv4 address; give one with -r CIDR"
        ))
    })?;
    arp_scan::check_range(range, cfg.scan_force).map_err(Error::Usage)?;
    let l = link(&cfg.sys_root, iface)
        .ok_or_else(|| Error::Other(format!("interface {iface} does not exist")))?;
    let src_mac = l
        .mac
        .ok_or_else(|| Error::Other(format!("interface {iface} has no MAC address")))?;
    let src_ip = crate::sys::ifaddrs::ipv4_of(iface)
        .map(|a| a.0)
        .unwrap_or(Ipv4Addr::UNSPECIFIED);
    let geometry = RingGeometry::new(1024, packet::page_size()).map_err(Error::Other)?;
    let mut sock = packet::open(&Options {
        interface: iface,
        promisc: false,
        ring: Some(geometry),
        snap: packet::SNAP_HEADERS,
        block_timeout_ms: 5,
    })
    .map_err(|e| Error::Other(format!("scan on {iface}: {e}")))?;
    let start = Instant::now();
    let mut scanner = Scanner::new(
        arp_scan::Settings {
            range,
            rate_bps: cfg.scan_rate_bps,
            retries: cfg.scan_retries,
            interval: Duration::ZERO,
            force: cfg.scan_force,
        },
        start,
    );
    let mut found: Vec<Found> = Vec::new();
    let mut due = [Ipv4Addr::UNSPECIFIED; 64];
    let mut probe = [0u8; arp_scan::PROBE_LEN];
    let mut ready = [Ready::default(); 1];
    loop {
        let now = Instant::now();
        let n = scanner.due(now, &mut due);
        for ip in &due[..n] {
            arp_scan::build_probe(src_mac, src_ip, *ip, &mut probe);
            // A full socket buffer (ENOBUFS) loses one probe; the retry pass covers it.
            let _ = sock.send(&probe);
        }
        // Read answers; the ring timestamp dates them, not the moment we got to read them.
        let wall = SystemTime::now();
        let now = Instant::now();
        while let Some(block) = sock.next_block() {
            for f in block {
                if let Some((ip, mac)) = arp_scan::parse_reply(f.data) {
                    let ts = SystemTime::UNIX_EPOCH
                        + Duration::new(f.ts_sec as u64, f.ts_nsec.min(999_999_999));
                    let at = now - wall.duration_since(ts).unwrap_or_default().min(now - start);
                    if let Some(rtt) = scanner.answer(ip, at) {
                        found.push(Found { ip, mac, rtt });
                    }
                }
            }
        }
        if scanner.finished() {
            break;
        }
        let timeout = scanner
            .deadline()
            .map(|d| d.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::ZERO);
        poll(
            &[Interest {
                fd: sock.as_fd(),
                read: true,
                write: false,
            }],
            timeout,
            &mut ready,
        )
        .map_err(|e| Error::Sys {
            what: "poll",
            source: e,
        })?;
    }
    Ok((found, start.elapsed()))
}

/// `netmon-agent scan`: one scan, printed like arp-scan (or as JSON), then exit.
pub fn scan_command(cfg: &Config, json: bool) -> Result<(), Error> {
    let iface = cfg
        .interface
        .clone()
        .ok_or_else(|| Error::Usage("no interface to scan: give one with -i IFACE".into()))?;
    let range = cfg.network_range;
    let (mut found, took) = scan_once(cfg, &iface)?;
    found.sort_by_key(|f| f.ip);
    let mut names = crate::discovery::names::Names::system(cfg.lease_file.clone());
    names.refresh();
    let name = |f: &Found| names.lookup(&f.mac, Some(f.ip.into())).map(str::to_owned);
    if json {
        let list: Vec<serde_json::Value> = found
            .iter()
            .map(|f| {
                serde_json::json!({
                    "ip": f.ip.to_string(),
                    "mac": format_mac(&f.mac),
                    "deviceName": name(f),
                    "responseMs": (f.rtt.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
                })
            })
            .collect();
        let doc = serde_json::json!({
            "interface": iface,
            "range": range.map(|r| r.to_string()),
            "seconds": (took.as_secs_f64() * 1000.0).round() / 1000.0,
            "hosts": list,
        });
        println!("{doc}");
    } else {
        println!(
            "Interface: {iface}, range {}",
            range.map(|r| r.to_string()).unwrap_or_default()
        );
        for f in &found {
            println!(
                "{}\t{}\t{}\t{:.3} ms",
                f.ip,
                format_mac(&f.mac),
                name(f).unwrap_or_else(|| "-".into()),
                f.rtt.as_secs_f64() * 1000.0
            );
        }
        println!();
        println!(
            "{} hosts scanned in {:.3} seconds. {} responded",
            range.map(|r| r.hosts().count()).unwrap_or(0),
            took.as_secs_f64(),
            found.len()
        );
    }
    Ok(())
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

/// `check`'s lines about capture: whether the socket can be opened now (it is opened and
/// closed again) and why not, the scan plan, flow offloading.
pub fn check_lines(cfg: &Config) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let capture = match cfg.interface.as_deref() {
        None => "off: no capture interface (INTERFACE not set and none detected)".to_owned(),
        Some(name) => match RingGeometry::new(cfg.ring_kb as u64, packet::page_size()) {
            Err(e) => format!("off: RING_KB: {e}"),
            Ok(g) => match packet::open(&Options {
                interface: name,
                promisc: false,
                ring: Some(g),
                snap: packet::SNAP_HEADERS,
                block_timeout_ms: BLOCK_TIMEOUT_MS,
            }) {
                Ok(_) => format!(
                    "can start on {name} ({}promiscuous, ring {} KiB in {} blocks)",
                    if cfg.promisc { "" } else { "not " },
                    g.len() / 1024,
                    g.block_nr
                ),
                Err(e) => format!("off: {e}"),
            },
        },
    };
    out.push(("capture", capture));
    out.push((
        "ARP scan",
        match cfg.network_range {
            _ if cfg.scan_interval.is_zero() => "off (SCAN_INTERVAL=0)".into(),
            None => "off: no NETWORK_RANGE".into(),
            Some(r) => match arp_scan::check_range(r, cfg.scan_force) {
                Ok(()) => format!(
                    "{r} every {} s at {} bit/s, {} tries",
                    cfg.scan_interval.as_secs(),
                    cfg.scan_rate_bps,
                    cfg.scan_retries
                ),
                Err(e) => format!("off: {e}"),
            },
        },
    ));
    out.push((
        "offload",
        match offload::read(&cfg.proc_root) {
            None => "unknown (no nf_conntrack, no /etc/config/firewall)".into(),
            Some(i) => offload::warning(&i).unwrap_or_else(|| "no flow offloading".into()),
        },
    ));
    out
}

/// `netmon-agent capture`: writes what the agent sees on the interface (frames as the filter
/// truncates them, original lengths kept) to a classic pcap file, until COUNT frames, SECONDS
/// or SIGINT/SIGTERM. A VLAN tag the kernel took out of a frame is put back (as libpcap does),
/// so the file holds the bytes the agent counts and `replay` of it gives the live numbers.
pub fn capture_command(
    cfg: &Config,
    file: &Path,
    count: Option<u64>,
    seconds: Option<f64>,
) -> Result<(), Error> {
    use crate::capture::writer::{PcapWriter, WriterOptions};
    use crate::sys::signals::SignalFd;
    let iface = cfg
        .interface
        .clone()
        .ok_or_else(|| Error::Usage("no interface to capture on: give one with -i IFACE".into()))?;
    let geometry = RingGeometry::new(cfg.ring_kb as u64, packet::page_size())
        .map_err(|e| Error::Usage(format!("RING_KB: {e}")))?;
    let signals = SignalFd::new().map_err(|e| Error::Sys {
        what: "signalfd",
        source: e,
    })?;
    let mut sock = packet::open(&Options {
        interface: &iface,
        promisc: cfg.promisc,
        ring: Some(geometry),
        snap: packet::SNAP_HEADERS,
        block_timeout_ms: BLOCK_TIMEOUT_MS,
    })
    .map_err(|e| Error::Other(format!("capture on {iface}: {e}")))?;
    let mut writer = PcapWriter::create(
        file,
        WriterOptions {
            nanoseconds: true,
            snaplen: packet::SNAP_DHCP,
            ..WriterOptions::default()
        },
    )
    .map_err(|e| Error::Other(e.to_string()))?;
    info!("capturing on {iface} to {}", file.display());
    let end = seconds.map(|s| Instant::now() + Duration::from_secs_f64(s));
    let mut written = 0u64;
    let mut dropped = 0u64;
    let mut ready = [Ready::default(); 2];
    let mut failed = None;
    'outer: loop {
        while let Some(block) = sock.next_block() {
            for f in block {
                if let Err(e) = write_frame(&mut writer, &f) {
                    failed = Some(e);
                    break 'outer;
                }
                written += 1;
                if count.is_some_and(|c| written >= c) {
                    break 'outer;
                }
            }
        }
        let timeout = match end {
            Some(t) if Instant::now() >= t => break,
            Some(t) => t - Instant::now(),
            None => Duration::from_secs(3600),
        };
        let interests = [
            Interest {
                fd: signals.as_fd(),
                read: true,
                write: false,
            },
            Interest {
                fd: sock.as_fd(),
                read: true,
                write: false,
            },
        ];
        poll(&interests, timeout, &mut ready).map_err(|e| Error::Sys {
            what: "poll",
            source: e,
        })?;
        if ready[0].readable && matches!(signals.read(), Ok(Some(_))) {
            // Frames already in the ring are still written.
            while let Some(block) = sock.next_block() {
                for f in block {
                    if write_frame(&mut writer, &f).is_ok() {
                        written += 1;
                    }
                }
            }
            break;
        }
        if ready[1].error {
            if let Ok(Some(e)) = sock.take_error() {
                failed = None;
                warn!("capture socket: {e}");
                break;
            }
        }
    }
    if let Ok(s) = sock.statistics() {
        dropped += s.drops as u64;
    }
    writer.finish().map_err(|e| Error::Other(e.to_string()))?;
    if let Some(e) = failed {
        return Err(Error::Other(e.to_string()));
    }
    info!(
        "{written} frames written to {}, {dropped} dropped by the kernel",
        file.display()
    );
    Ok(())
}

/// Writes one ring frame, its out-of-band VLAN tag put back after the MAC addresses.
fn write_frame(
    w: &mut crate::capture::writer::PcapWriter,
    f: &RawFrame<'_>,
) -> Result<(), crate::capture::CaptureError> {
    let fr = to_frame(f);
    match f.vlan_tci {
        Some(tci) if f.data.len() >= 12 => {
            let mut buf = [0u8; packet::SNAP_DHCP as usize + 4];
            let n = f.data.len().min(packet::SNAP_DHCP as usize);
            buf[..12].copy_from_slice(&f.data[..12]);
            buf[12..14].copy_from_slice(&f.vlan_tpid.to_be_bytes());
            buf[14..16].copy_from_slice(&tci.to_be_bytes());
            buf[16..n + 4].copy_from_slice(&f.data[12..n]);
            w.write(fr.ts, fr.orig_len, &buf[..n + 4])
        }
        _ => w.write(fr.ts, fr.orig_len, fr.data),
    }
}
