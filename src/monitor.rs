//! The monitor: everything live the loop drives besides shipping. The capture ring
//! ([`crate::capture::Capture`]), the device table it feeds, the ARP scanner sending through the
//! same socket, device names (leases, /etc/ethers) and the flow-offload check.

use std::net::Ipv4Addr;
use std::os::fd::BorrowedFd;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use crate::capture::{link, own_macs, to_frame, Capture};
use crate::config::Config;
use crate::devices::{DeviceTable, TableConfig};
use crate::discovery::arp_scan::{self, Scanner};
use crate::discovery::names::Names;
use crate::discovery::offload;
use crate::snapshot::{CaptureInfo, CaptureMode, Device, OffloadInfo};
use crate::sys::poll::{poll, Interest, Ready};

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
pub struct Monitor {
    /// The capture ring.
    pub capture: Capture,
    /// The device table the ring feeds.
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

impl Monitor {
    /// Opens the capture (or records why not), seeds the table from /proc/net/arp and the lease
    /// files, and checks for flow offloading once (with a warning when on).
    pub fn new(cfg: &Config, now: Instant) -> Monitor {
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
            .or(crate::addr::Ipv4Cidr::new(Ipv4Addr::UNSPECIFIED, 32));
        let scan = range
            .filter(|_| !cfg.scan_interval.is_zero())
            .map(|range| arp_scan::Settings {
                range,
                rate_bps: cfg.scan_rate_bps,
                retries: cfg.scan_retries,
                interval: cfg.scan_interval,
                force: cfg.scan_force,
            });
        let mut cap = Monitor {
            capture: Capture::new(cfg),
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
        cap.capture.open(now);
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
        if self.capture.opens == self.opens_seen {
            return;
        }
        self.opens_seen = self.capture.opens;
        self.table.set_excluded(&own_macs(&self.sys_root));
        self.refresh_local_nets();
        let addr = self
            .capture
            .interface()
            .and_then(crate::sys::ifaddrs::ipv4_of);
        self.probe_src = self.capture.interface().and_then(|name| {
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
            match addr.and_then(|(a, p)| crate::addr::Ipv4Cidr::new(a, p)) {
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

    /// The ranges that are not the internet: NETWORK_RANGE, the captured interface's subnets
    /// and prefixes, the router's own addresses (they change: DHCP on the WAN, a new IPv6
    /// prefix), read again at each cycle end.
    fn refresh_local_nets(&mut self) {
        let ranges: Vec<_> = self.table.config().range.into_iter().collect();
        let monitored: Vec<&str> = self.capture.interface().into_iter().collect();
        let nets = crate::locality::router_nets(&ranges, &monitored, &crate::sys::ifaddrs::all());
        self.table.set_local_nets(nets);
    }

    /// `now` on the device table's clock (for [`DeviceTable::status`]).
    pub fn table_now(&self, now: Instant) -> u64 {
        table_clock(self.clock_origin, now)
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
            self.capture.interface(),
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
        self.capture.fd()
    }

    /// The nearest time something is due here: a reopen or the next ARP probe.
    pub fn deadline(&self) -> Option<Instant> {
        let scan = self
            .scanner
            .as_ref()
            .filter(|_| self.capture.fd().is_some())
            .and_then(|s| s.deadline());
        match (self.capture.deadline(), scan) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// On every wake-up: reopen when due or on a socket error, drain the ring into the table,
    /// send the ARP probes that are due.
    pub fn wake(&mut self, now: Instant, error: bool) {
        if error || self.capture.deadline().is_some_and(|t| now >= t) {
            self.capture.check(now, error);
            self.after_open();
        }
        let table = &mut self.table;
        let scanner = &mut self.scanner;
        let clock = self.clock_origin;
        self.capture.drain(|f, at| {
            let obs = crate::decode::decode(&to_frame(f));
            table.account(&obs, table_clock(clock, at));
            if let (Some(a), Some(s)) = (obs.arp, scanner.as_mut()) {
                s.answer(a.ip, now);
            }
        });
        if self.capture.fd().is_none() {
            return;
        }
        if let (Some(s), Some((mac, ip))) = (self.scanner.as_mut(), self.probe_src) {
            let mut due = [Ipv4Addr::UNSPECIFIED; 32];
            let n = s.due(now, &mut due);
            let mut probe = [0u8; arp_scan::PROBE_LEN];
            for target in &due[..n] {
                arp_scan::build_probe(mac, ip, *target, &mut probe);
                self.capture.send(&probe);
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
        self.capture.check(now, false);
        self.after_open();
        self.capture.update_stats();
        if self.names.refresh() {
            debug!("name files changed, re-read");
        }
        self.apply_names();
        self.refresh_offload(now);
        self.refresh_local_nets();
        let now_ns = table_clock(self.clock_origin, now);
        self.table.end_cycle(now_ns);
        (self.info(), self.table.devices(now_ns, wall_ns(wall)))
    }

    /// `agent.capture` now.
    pub fn info(&self) -> CaptureInfo {
        let mode = if self.capture.off_reason().is_none() {
            CaptureMode::Live
        } else {
            CaptureMode::Off
        };
        let mut info = self.table.capture_info(
            mode,
            self.capture.interface().map(str::to_owned),
            self.capture.dropped,
        );
        info.off_reason = self.capture.off_reason().map(str::to_owned);
        info.offload = self.offload.clone();
        info
    }
}
