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
use crate::snapshot::{CaptureInfo, CaptureMode, Device, InterfaceCapture, OffloadInfo};

/// An instant on the device table's clock: nanoseconds since `origin` (monotonic).
fn table_clock(origin: Instant, at: Instant) -> u64 {
    at.saturating_duration_since(origin).as_nanos() as u64
}

fn wall_ns(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// One capture interface: its ring, its ARP scanner and range. Its index in
/// [`Monitor::ports`] is its port in the device table.
pub struct Port {
    /// The capture ring of this interface.
    pub capture: Capture,
    scanner: Option<Scanner>,
    /// The scan to run (None: SCAN_INTERVAL=0); the scanner is made once the range is known.
    scan: Option<arp_scan::Settings>,
    /// The IPv4 range: NETWORK_RANGE's for this interface, else its subnet once it is open.
    range: Option<crate::addr::Ipv4Cidr>,
    range_set: bool,
    /// Why there is no scanner, once said.
    scan_note: Option<String>,
    /// Source MAC and IPv4 of our probes (from the interface, refreshed on each open).
    probe_src: Option<([u8; 6], Ipv4Addr)>,
    opens_seen: u64,
    /// Bytes of the frames read from its ring (original lengths).
    pub bytes: u64,
}

/// The device table's settings from the config (live capture and replay alike); a fresh
/// random hash seed each time.
pub fn table_config(cfg: &Config) -> TableConfig {
    TableConfig {
        capacity: cfg.device_table_size,
        cycle_ns: cfg.cycle.as_nanos().max(1) as u64,
        timeout_cycles: cfg.device_timeout_cycles,
        expire_ns: cfg.device_expire.as_nanos() as u64,
        range: cfg.network_range,
        seed: [crate::sys::random::u64(), crate::sys::random::u64()],
    }
}

/// Everything live the loop drives: the captures (one per interface of INTERFACE), the one
/// device table they feed, the ARP scanners sending through their sockets, names and the
/// offload check.
pub struct Monitor {
    ports: Vec<Port>,
    /// The device table the rings feed.
    pub table: DeviceTable,
    names: Names,
    proc_root: PathBuf,
    sys_root: PathBuf,
    offload: Option<OffloadInfo>,
    offload_at: Option<Instant>,
    /// Zero of the table's clock: the table runs on the monotonic clock (nanoseconds since
    /// this instant), never on frame timestamps or the wall clock, which NTP steps.
    clock_origin: Instant,
}

/// How often /proc/net/nf_conntrack is read for offloaded flows.
const OFFLOAD_EVERY: Duration = Duration::from_secs(60);

impl Monitor {
    /// Opens the captures (or records why not), seeds the table from /proc/net/arp and the
    /// lease files, and checks for flow offloading once (with a warning when on).
    pub fn new(cfg: &Config, now: Instant) -> Monitor {
        let table = DeviceTable::new(table_config(cfg));
        let names: Vec<Option<String>> = match cfg.interfaces.len() {
            0 => vec![cfg.interface.clone()],
            _ => cfg.interfaces.iter().cloned().map(Some).collect(),
        };
        let ports = names
            .into_iter()
            .take(crate::devices::MAX_PORTS)
            .enumerate()
            .map(|(i, name)| {
                let range = match i {
                    0 => cfg.network_range,
                    _ => cfg
                        .network_ranges
                        .iter()
                        .find(|(n, _)| Some(n) == name.as_ref())
                        .map(|(_, r)| *r),
                };
                // Without a range the interface's subnet is used, known once it is open (see
                // `after_open`); 0.0.0.0/32 holds its place until then.
                let scan = range
                    .or(crate::addr::Ipv4Cidr::new(Ipv4Addr::UNSPECIFIED, 32))
                    .filter(|_| !cfg.scan_interval.is_zero())
                    .map(|range| arp_scan::Settings {
                        range,
                        rate_bps: cfg.scan_rate_bps,
                        retries: cfg.scan_retries,
                        interval: cfg.scan_interval,
                        force: cfg.scan_force,
                    });
                Port {
                    capture: Capture::on(cfg, name),
                    scanner: None,
                    scan,
                    range,
                    range_set: range.is_some(),
                    scan_note: None,
                    probe_src: None,
                    opens_seen: 0,
                    bytes: 0,
                }
            })
            .collect();
        let mut cap = Monitor {
            ports,
            table,
            names: Names::system(cfg.lease_file.clone()),
            proc_root: cfg.proc_root.clone(),
            sys_root: cfg.sys_root.clone(),
            offload: None,
            offload_at: None,
            clock_origin: now,
        };
        cap.table.begin(0);
        for i in 0..cap.ports.len() {
            cap.ports[i].capture.open(now);
            cap.after_open(i);
        }
        cap.seed(0);
        cap.refresh_offload(now);
        if let Some(w) = cap.offload.as_ref().and_then(offload::warning) {
            warn!("{w}");
        }
        cap
    }

    /// The captures, in INTERFACE's order.
    pub fn ports(&self) -> &[Port] {
        &self.ports
    }

    /// The first interface's capture (`agent.capture.interface`).
    pub fn first(&self) -> &Capture {
        &self.ports[0].capture
    }

    /// After each (re)open of port `i`: our own MACs out of the table, the probes' source
    /// addresses, the range and the scanner.
    fn after_open(&mut self, i: usize) {
        let sys_root = self.sys_root.clone();
        let p = &mut self.ports[i];
        if p.capture.opens == p.opens_seen {
            return;
        }
        p.opens_seen = p.capture.opens;
        let addr = p.capture.interface().and_then(crate::sys::ifaddrs::ipv4_of);
        p.probe_src = p.capture.interface().and_then(|name| {
            let mac = link(&sys_root, name)?.mac?;
            Some((mac, addr.map_or(Ipv4Addr::UNSPECIFIED, |a| a.0)))
        });
        if !p.range_set {
            p.range = addr.and_then(|(a, p)| crate::addr::Ipv4Cidr::new(a, p));
        }
        self.table.set_excluded(&own_macs(&self.sys_root));
        self.refresh_local_nets();
        let p = &mut self.ports[i];
        if p.scanner.is_some() {
            return;
        }
        let Some(mut settings) = p.scan else {
            return;
        };
        let name = p.capture.interface().unwrap_or("").to_owned();
        match p.range {
            Some(r) => settings.range = r,
            None => {
                return note_scan(
                    p,
                    format!("ARP scanning off on {name} until it has an IPv4 subnet (or set NETWORK_RANGE)"),
                );
            }
        }
        match arp_scan::check_range(settings.range, settings.force) {
            Ok(()) => p.scanner = Some(Scanner::new(settings, Instant::now())),
            Err(e) => note_scan(p, format!("ARP scanning off on {name}: {e}")),
        }
    }

    /// The ranges that are not the internet: NETWORK_RANGE, the captured interfaces' subnets
    /// and prefixes, the router's own addresses (they change: DHCP on the WAN, a new IPv6
    /// prefix), read again at each cycle end.
    fn refresh_local_nets(&mut self) {
        let ranges: Vec<_> = self.ports.iter().filter_map(|p| p.range).collect();
        let monitored: Vec<&str> = self
            .ports
            .iter()
            .filter_map(|p| p.capture.interface())
            .collect();
        let nets = crate::locality::router_nets(&ranges, &monitored, &crate::sys::ifaddrs::all());
        self.table.set_local_nets(nets);
    }

    /// `now` on the device table's clock (for [`DeviceTable::status`]).
    pub fn table_now(&self, now: Instant) -> u64 {
        table_clock(self.clock_origin, now)
    }

    fn select(&mut self, i: usize) {
        self.table.select_port(i as u8, self.ports[i].range);
    }

    /// Devices the kernel's ARP cache and the lease files already know.
    fn seed(&mut self, now_ns: u64) {
        if let Ok(text) = std::fs::read_to_string(self.proc_root.join("net/arp")) {
            for i in 0..self.ports.len() {
                let Some(name) = self.ports[i].capture.interface().map(str::to_owned) else {
                    continue;
                };
                self.select(i);
                for (ip, mac) in crate::discovery::parse_proc_net_arp(&text, &name) {
                    self.table.learn_arp_reply(mac, ip, now_ns);
                }
            }
        }
        self.names.refresh();
        self.apply_names();
    }

    fn apply_names(&mut self) {
        let known: Vec<(u8, [u8; 6], Option<Ipv4Addr>)> = self
            .table
            .iter()
            .map(|e| (e.port, e.mac, e.ipv4()))
            .collect();
        for (port, mac, ip) in known {
            if let Some(name) = self.names.lookup(&mac, ip.map(Into::into)) {
                let name = name.to_owned();
                self.table.select_port(port, None);
                self.table.set_name(&mac, &name);
            }
        }
    }

    fn refresh_offload(&mut self, now: Instant) {
        if self.offload_at.map_or(true, |t| now >= t) {
            self.offload = offload::read(&self.proc_root);
            self.offload_at = Some(now + OFFLOAD_EVERY);
        }
    }

    /// The fds to poll: (port, ring fd) of every capture that is open.
    pub fn fds(&self) -> impl Iterator<Item = (usize, BorrowedFd<'_>)> {
        self.ports
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.capture.fd().map(|fd| (i, fd)))
    }

    /// The nearest time something is due here: a reopen or the next ARP probe.
    pub fn deadline(&self) -> Option<Instant> {
        self.ports
            .iter()
            .flat_map(|p| {
                let scan = p
                    .scanner
                    .as_ref()
                    .filter(|_| p.capture.fd().is_some())
                    .and_then(|s| s.deadline());
                [p.capture.deadline(), scan]
            })
            .flatten()
            .min()
    }

    /// On every wake-up, for every port: reopen when due or on a socket error (`error(port)`),
    /// drain the ring into the table, send the ARP probes that are due. One interface going
    /// away leaves the others capturing.
    pub fn wake(&mut self, now: Instant, error: impl Fn(usize) -> bool) {
        for i in 0..self.ports.len() {
            self.wake_port(i, now, error(i));
        }
    }

    fn wake_port(&mut self, i: usize, now: Instant, error: bool) {
        let p = &mut self.ports[i];
        if error || p.capture.deadline().is_some_and(|t| now >= t) {
            p.capture.check(now, error);
            self.after_open(i);
        }
        self.select(i);
        let table = &mut self.table;
        let p = &mut self.ports[i];
        let scanner = &mut p.scanner;
        let bytes = &mut p.bytes;
        let clock = self.clock_origin;
        // One clock reading per block: the frames of a block share it.
        let mut block = (now, table_clock(clock, now));
        p.capture.drain(|f, at| {
            if at != block.0 {
                block = (at, table_clock(clock, at));
            }
            let mut obs = crate::decode::Observation::default();
            crate::decode::decode_into(&to_frame(f), &mut obs);
            *bytes += obs.len as u64;
            table.account(&obs, block.1);
            if let (Some(a), Some(s)) = (obs.arp, scanner.as_mut()) {
                s.answer(a.ip, now);
            }
        });
        if p.capture.fd().is_none() {
            return;
        }
        if let (Some(s), Some((mac, ip))) = (p.scanner.as_mut(), p.probe_src) {
            let mut due = [Ipv4Addr::UNSPECIFIED; 32];
            let n = s.due(now, &mut due);
            let mut probe = [0u8; arp_scan::PROBE_LEN];
            for target in &due[..n] {
                arp_scan::build_probe(mac, ip, *target, &mut probe);
                p.capture.send(&probe);
            }
        }
    }

    /// At the cycle end: one last drain, link check, kernel drop counter, names, rates and
    /// expiry; returns `agent.capture` and the devices.
    pub fn end_cycle(&mut self, now: Instant, wall: SystemTime) -> (CaptureInfo, Vec<Device>) {
        self.wake(now, |_| false);
        for i in 0..self.ports.len() {
            self.ports[i].capture.check(now, false);
            self.after_open(i);
            self.ports[i].capture.update_stats();
        }
        if self.names.refresh() {
            debug!("name files changed, re-read");
        }
        self.apply_names();
        self.refresh_offload(now);
        self.refresh_local_nets();
        let now_ns = table_clock(self.clock_origin, now);
        self.table.end_cycle(now_ns);
        let mut devices = self.table.devices(now_ns, wall_ns(wall));
        // Same order as the table: each device's interface from its port.
        for (d, e) in devices.iter_mut().zip(self.table.iter()) {
            d.interface = self.ports[e.port as usize]
                .capture
                .interface()
                .map(str::to_owned);
        }
        (self.info(), devices)
    }

    /// `agent.capture` now: the first interface's capture, as with one interface, and every
    /// interface's in `interfaces`.
    pub fn info(&self) -> CaptureInfo {
        let first = self.first();
        let mode = |c: &Capture| match c.off_reason() {
            None => CaptureMode::Live,
            Some(_) => CaptureMode::Off,
        };
        let mut info = self.table.capture_info(
            mode(first),
            first.interface().map(str::to_owned),
            first.dropped,
        );
        info.off_reason = first.off_reason().map(str::to_owned);
        info.offload = self.offload.clone();
        info.interfaces = self
            .ports
            .iter()
            .map(|p| InterfaceCapture {
                interface: p.capture.interface().unwrap_or("").to_owned(),
                mode: mode(&p.capture),
                off_reason: p.capture.off_reason().map(str::to_owned),
                packets_seen: p.capture.frames,
                bytes_seen: p.bytes,
                packets_dropped: p.capture.dropped,
            })
            .collect();
        info
    }
}

fn note_scan(p: &mut Port, note: String) {
    if p.scan_note.as_deref() != Some(note.as_str()) {
        warn!("{note}");
        p.scan_note = Some(note);
    }
}
