//! /proc and /sys: pure parsers over text (one module per file format) and a thin `Collector`
//! that reads them under configurable roots and turns two samples into rates.
//!
//! INTERFACE CONTRACT (used by agent.rs): `Collector::new`, `prime`, `sample`.
//!
//! Where each metric comes from:
//! - cpu.percent: /proc/stat, busy share of all CPUs between two samples; cores: its cpuN lines
//! - cpu.loadAverage: /proc/loadavg
//! - memory: /proc/meminfo (MemTotal, MemAvailable or MemFree + Buffers + Cached)
//! - disk: /proc/self/mountinfo (/proc/mounts) filtered like `df -l` (network and FUSE file
//!   systems only with DISK_REMOTE=1), sizes from statvfs(3)
//! - uptimeSeconds: /proc/uptime
//! - interfaces: /proc/net/dev, /sys/class/net/NAME/{operstate,speed,address,mtu,ifindex},
//!   addresses from getifaddrs(3)
//!
//! PROC_ROOT and SYS_ROOT move the files read; the system calls (stat/statvfs of mount points,
//! getifaddrs) always ask the live system.
//!
//! The Collector keeps one buffer per kind of file and reuses it, so after the first sample
//! the only allocations are the output's own vectors and strings.

pub mod loadavg;
pub mod meminfo;
pub mod mounts;
pub mod netdev;
pub mod stat;
pub mod uptime;

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::snapshot::{self, Cpu, Disk, Interface, LinkStatus, Memory, Metrics};
use crate::sys::{ifaddrs, statvfs};

/// A /proc file that is not what its format says. `line` counts from 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The file has no content at all.
    Empty {
        /// The file.
        file: &'static str,
    },
    /// A line of the wrong shape.
    BadLine {
        /// The file.
        file: &'static str,
        /// Line number, from 1.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Something every version of the file has is not there.
    Missing {
        /// The file.
        file: &'static str,
        /// What is missing.
        what: &'static str,
    },
}

impl ParseError {
    /// A bad line, from its 0-based index.
    pub(crate) const fn bad(file: &'static str, index: usize, reason: &'static str) -> Self {
        ParseError::BadLine {
            file,
            line: index + 1,
            reason,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Empty { file } => write!(f, "{file}: empty file"),
            ParseError::BadLine { file, line, reason } => write!(f, "{file}:{line}: {reason}"),
            ParseError::Missing { file, what } => write!(f, "{file}: no {what}"),
        }
    }
}

impl std::error::Error for ParseError {}

/// A decimal counter: ASCII digits only (no sign), no overflow.
pub(crate) fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A non-negative finite decimal such as `0.61`.
pub(crate) fn parse_f64(s: &str) -> Option<f64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    crate::decimal::parse(s).filter(|v| v.is_finite())
}

/// Everything the procfs side contributes to one snapshot.
#[derive(Debug, Clone)]
pub struct Sample {
    /// CPU, memory, disks, uptime.
    pub metrics: Metrics,
    /// Every interface with its counters and rates.
    pub interfaces: Vec<Interface>,
}

/// Counters of one interface kept from the previous sample.
#[derive(Debug, Clone)]
struct IfState {
    name: heapless::String<16>,
    ifindex: Option<u32>,
    rx_bytes: u64,
    tx_bytes: u64,
}

// Parts whose failure has been logged (each is logged once until it works again).
const STAT: u32 = 1;
const LOADAVG: u32 = 1 << 1;
const MEMINFO: u32 = 1 << 2;
const UPTIME: u32 = 1 << 3;
const MOUNTS: u32 = 1 << 4;
const MOUNTS_LINE: u32 = 1 << 5;
const NETDEV: u32 = 1 << 6;
const NETDEV_LINE: u32 = 1 << 7;

/// Reads /proc and /sys under their roots and turns two samples into rates.
pub struct Collector {
    proc_root: PathBuf,
    sys_root: PathBuf,
    /// The /proc file being parsed.
    buf: String,
    /// The path being opened.
    path: PathBuf,
    /// An unescaped mount point and mount source.
    scratch: String,
    device: String,
    slots: Vec<mounts::Slot>,
    /// DISK_REMOTE: also report (and statvfs) network and FUSE file systems.
    remote_disks: bool,
    cpu: Option<stat::CpuTimes>,
    cores: u32,
    net: Vec<IfState>,
    net_next: Vec<IfState>,
    /// When `net` was read; None when there is no baseline.
    net_at: Option<Instant>,
    failing: u32,
}

impl Collector {
    /// A collector reading under `proc_root` and `sys_root`.
    pub fn new(proc_root: PathBuf, sys_root: PathBuf) -> Collector {
        Collector {
            proc_root,
            sys_root,
            buf: String::with_capacity(8192),
            path: PathBuf::with_capacity(128),
            scratch: String::with_capacity(128),
            device: String::with_capacity(128),
            slots: Vec::with_capacity(32),
            remote_disks: false,
            cpu: None,
            cores: 1,
            net: Vec::with_capacity(16),
            net_next: Vec::with_capacity(16),
            net_at: None,
            failing: 0,
        }
    }

    /// A collector for the configuration: its roots and DISK_REMOTE.
    pub fn for_config(cfg: &crate::config::Config) -> Collector {
        let mut c = Collector::new(cfg.proc_root.clone(), cfg.sys_root.clone());
        c.remote_disks = cfg.disk_remote;
        c
    }

    /// Takes the baseline sample that the first `sample` computes CPU and rates against.
    pub fn prime(&mut self, now: Instant) {
        self.cpu_percent();
        self.interfaces(now);
    }

    /// Samples everything; CPU percent and rates cover the time since the previous call.
    /// Never fails as a whole: a part that cannot be read is logged once and left empty.
    pub fn sample(&mut self, now: Instant) -> Sample {
        let percent = self.cpu_percent();
        let load_average = match self.read_proc("loadavg").map(loadavg::parse) {
            Ok(Ok(v)) => self.ok(LOADAVG, v),
            Ok(Err(e)) => self.fail(LOADAVG, [0.0; 3], &e),
            Err(e) => self.fail(LOADAVG, [0.0; 3], &e),
        };
        let zero = Memory {
            total_bytes: 0,
            used_bytes: 0,
            free_bytes: 0,
            available_bytes: 0,
            percent_used: 0.0,
        };
        let memory = match self.read_proc("meminfo").map(meminfo::parse) {
            Ok(Ok(m)) => self.ok(MEMINFO, m.to_memory()),
            Ok(Err(e)) => self.fail(MEMINFO, zero, &e),
            Err(e) => self.fail(MEMINFO, zero, &e),
        };
        let uptime_seconds = match self.read_proc("uptime").map(uptime::parse) {
            Ok(Ok(s)) => self.ok(UPTIME, s as u64),
            Ok(Err(e)) => self.fail(UPTIME, 0, &e),
            Err(e) => self.fail(UPTIME, 0, &e),
        };
        let disk = self.disks();
        let interfaces = self.interfaces(now);
        Sample {
            metrics: Metrics {
                cpu: Cpu {
                    percent,
                    cores: self.cores,
                    load_average,
                },
                memory,
                disk,
                uptime_seconds,
            },
            interfaces,
        }
    }

    fn ok<T>(&mut self, part: u32, v: T) -> T {
        self.failing &= !part;
        v
    }

    fn fail<T>(&mut self, part: u32, v: T, e: &dyn fmt::Display) -> T {
        if self.failing & part == 0 {
            warn!("{e}");
            self.failing |= part;
        }
        v
    }

    /// Reads `rel` under the /proc root into the shared buffer.
    fn read_proc(&mut self, rel: &str) -> Result<&str, FileError> {
        read_into(&mut self.buf, &mut self.path, &self.proc_root, rel)?;
        Ok(&self.buf)
    }

    /// A /sys/class/net/NAME/ATTR value through `f`; None when it cannot be read.
    fn net_attr<T>(
        &mut self,
        name: &str,
        attr: &str,
        f: impl FnOnce(&str) -> Option<T>,
    ) -> Option<T> {
        set_path(&mut self.path, &self.sys_root, "class/net");
        self.path.push(name);
        self.path.push(attr);
        // These attributes are a few bytes, and sysfs returns the whole value in one read.
        let mut buf = [0u8; 128];
        let n = File::open(&self.path)
            .and_then(|mut f| f.read(&mut buf))
            .ok()?;
        f(std::str::from_utf8(&buf[..n]).ok()?)
    }

    /// CPU busy percent since the last reading (0 without one); updates `cores`.
    fn cpu_percent(&mut self) -> f64 {
        match self.read_proc("stat").map(stat::parse) {
            Ok(Ok(s)) => {
                self.failing &= !STAT;
                self.cores = s.cores.max(1);
                let p = self
                    .cpu
                    .map(|prev| stat::busy_percent(&prev, &s.cpu))
                    .unwrap_or(0.0);
                self.cpu = Some(s.cpu);
                snapshot::percent(p)
            }
            // The old baseline stays: the next good reading averages over both intervals.
            Ok(Err(e)) => self.fail(STAT, 0.0, &e),
            Err(e) => self.fail(STAT, 0.0, &e),
        }
    }

    /// The disks `df` shows (see `mounts`).
    fn disks(&mut self) -> Vec<Disk> {
        let format = match self.read_proc("self/mountinfo") {
            Ok(_) => mounts::Format::MountInfo,
            Err(first) => match self.read_proc("mounts") {
                Ok(_) => mounts::Format::Mounts,
                Err(_) => return self.fail(MOUNTS, Vec::new(), &first),
            },
        };
        self.failing &= !MOUNTS;
        let text = std::mem::take(&mut self.buf);
        let stat_dev = |p: &str| std::fs::metadata(p).ok().map(|m| m.dev());
        let bad = mounts::select(
            &text,
            format,
            self.remote_disks,
            stat_dev,
            &mut self.scratch,
            &mut self.slots,
        );
        match bad {
            Some(e) => {
                self.fail(MOUNTS_LINE, (), &e);
            }
            None => self.failing &= !MOUNTS_LINE,
        }
        let mut out = Vec::with_capacity(self.slots.len());
        for slot in &self.slots {
            let Some(m) = slot.mount(&text, format) else {
                continue;
            };
            if m.is_dummy() || slot.network {
                continue;
            }
            self.scratch.clear();
            mounts::unescape_into(m.target, &mut self.scratch);
            if !self.scratch.starts_with('/') {
                continue;
            }
            let usage = match statvfs::statvfs(Path::new(&self.scratch)) {
                Ok(u) => u,
                Err(e) => {
                    debug!("statvfs {}: {e}", self.scratch);
                    continue;
                }
            };
            self.device.clear();
            mounts::unescape_into(m.source, &mut self.device);
            if mounts::has_uuid_suffix(&self.device) {
                if let Ok(p) = std::fs::canonicalize(&self.device) {
                    self.device.clear();
                    self.device.push_str(&p.to_string_lossy());
                }
            }
            if let Some(d) = mounts::to_disk(&m, &usage, &self.device, &self.scratch) {
                out.push(d);
            }
        }
        self.buf = text;
        out
    }

    /// Interfaces with totals and rates since the previous reading.
    fn interfaces(&mut self, now: Instant) -> Vec<Interface> {
        let secs = self
            .net_at
            .map(|t| now.saturating_duration_since(t).as_secs_f64());
        if let Err(e) = self.read_proc("net/dev") {
            self.net.clear();
            self.net_at = None;
            return self.fail(NETDEV, Vec::new(), &e);
        }
        let text = std::mem::take(&mut self.buf);
        let mut out = Vec::with_capacity(self.net.len() + 2);
        self.net_next.clear();
        let mut bad = None;
        for entry in netdev::entries(&text) {
            let d = match entry {
                Ok(d) => d,
                Err(e) => {
                    bad.get_or_insert(e);
                    continue;
                }
            };
            let ifindex = self.net_attr(d.name, "ifindex", netdev::parse_u32);
            let speed = self.net_attr(d.name, "speed", netdev::parse_speed);
            let status = self
                .net_attr(d.name, "operstate", |s| Some(netdev::parse_operstate(s)))
                .unwrap_or(LinkStatus::Unknown);
            let mac = self.net_attr(d.name, "address", |s| {
                netdev::parse_mac(s).map(str::to_owned)
            });
            let mtu = self.net_attr(d.name, "mtu", netdev::parse_u32);
            let (rx_rate_bps, tx_rate_bps) = match secs {
                Some(secs) if secs > 0.0 => {
                    let plausible = netdev::plausible_bytes(speed, secs);
                    // An interface new since the last reading counted all it has since then.
                    let (prev_rx, prev_tx, recreated) =
                        match self.net.iter().find(|s| s.name.as_str() == d.name) {
                            Some(p) => (
                                p.rx_bytes,
                                p.tx_bytes,
                                matches!((p.ifindex, ifindex), (Some(a), Some(b)) if a != b),
                            ),
                            None => (0, 0, true),
                        };
                    let rx = netdev::counter_delta(prev_rx, d.rx_bytes, recreated, plausible);
                    let tx = netdev::counter_delta(prev_tx, d.tx_bytes, recreated, plausible);
                    (netdev::rate_bps(rx, secs), netdev::rate_bps(tx, secs))
                }
                _ => (0, 0),
            };
            let mut name = heapless::String::new();
            if name.push_str(d.name).is_ok() {
                self.net_next.push(IfState {
                    name,
                    ifindex,
                    rx_bytes: d.rx_bytes,
                    tx_bytes: d.tx_bytes,
                });
            }
            let utilization_percent = speed.map(|mbps| {
                let top = rx_rate_bps.max(tx_rate_bps) as f64;
                snapshot::percent(top * 100.0 / (mbps as f64 * 1e6))
            });
            out.push(Interface {
                name: d.name.to_owned(),
                mac,
                status,
                mtu,
                ipv4: Vec::new(),
                ipv6: Vec::new(),
                speed_mbps: speed,
                rx_bytes_total: d.rx_bytes,
                tx_bytes_total: d.tx_bytes,
                rx_packets_total: d.rx_packets,
                tx_packets_total: d.tx_packets,
                rx_errors: d.rx_errors,
                tx_errors: d.tx_errors,
                rx_dropped: d.rx_dropped,
                tx_dropped: d.tx_dropped,
                rx_rate_bps,
                tx_rate_bps,
                utilization_percent,
            });
        }
        self.buf = text;
        self.failing &= !NETDEV;
        match bad {
            Some(e) => {
                self.fail(NETDEV_LINE, (), &e);
            }
            None => self.failing &= !NETDEV_LINE,
        }
        std::mem::swap(&mut self.net, &mut self.net_next);
        self.net_at = Some(now);
        for (name, addrs) in ifaddrs::all() {
            if let Some(i) = out.iter_mut().find(|i| i.name == name) {
                i.ipv4 = addrs.ipv4.iter().map(|(a, _)| a.to_string()).collect();
                i.ipv6 = addrs.ipv6.iter().map(|(a, _)| a.to_string()).collect();
            }
        }
        out
    }
}

/// A file that could not be read, with its path.
#[derive(Debug)]
struct FileError {
    path: PathBuf,
    source: io::Error,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: cannot read: {}", self.path.display(), self.source)
    }
}

fn set_path(path: &mut PathBuf, root: &Path, rel: &str) {
    path.as_mut_os_string().clear();
    path.push(root);
    path.push(rel);
}

/// Reads `root/rel` into `buf` (cleared first), reusing both buffers.
fn read_into(
    buf: &mut String,
    path: &mut PathBuf,
    root: &Path,
    rel: &str,
) -> Result<(), FileError> {
    set_path(path, root, rel);
    buf.clear();
    File::open(&*path)
        .and_then(|mut f| f.read_to_string(buf))
        .map(drop)
        .map_err(|source| FileError {
            path: path.clone(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

    /// A fresh directory tree for one test.
    fn tree(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("netmon-procfs-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let dest = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy_dir(&e.path(), &dest);
            } else {
                std::fs::copy(e.path(), dest).unwrap();
            }
        }
    }

    fn put(path: PathBuf, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn iface<'a>(s: &'a Sample, name: &str) -> &'a Interface {
        s.interfaces
            .iter()
            .find(|i| i.name == name)
            .unwrap_or_else(|| panic!("no {name}"))
    }

    #[test]
    fn openwrt_tree_two_readings_five_seconds_apart() {
        let root = tree("openwrt");
        let (proc, sys) = (root.join("proc"), root.join("sys"));
        copy_dir(&Path::new(FIX).join("proc/openwrt-mipsel"), &proc);
        copy_dir(&Path::new(FIX).join("sys/openwrt-mipsel"), &sys);
        let mut c = Collector::new(proc.clone(), sys.clone());
        let t0 = Instant::now();
        c.prime(t0);

        // Five seconds later: new counters, phy1-ap0 re-created, wg0 gone, pppoe-wan new.
        std::fs::copy(proc.join("stat.next"), proc.join("stat")).unwrap();
        std::fs::copy(proc.join("net/dev.next"), proc.join("net/dev")).unwrap();
        put(sys.join("class/net/phy1-ap0/ifindex"), "13\n");
        std::fs::remove_dir_all(sys.join("class/net/wg0")).unwrap();
        put(sys.join("class/net/pppoe-wan/ifindex"), "12\n");
        put(sys.join("class/net/pppoe-wan/operstate"), "unknown\n");
        put(sys.join("class/net/pppoe-wan/mtu"), "1492\n");
        put(sys.join("class/net/pppoe-wan/address"), "\n");
        let s = c.sample(t0 + Duration::from_secs(5));

        let cpu = &s.metrics.cpu;
        assert_eq!(
            (cpu.percent, cpu.cores, cpu.load_average),
            (32.0, 4, [0.08, 0.05, 0.01])
        );
        assert_eq!(s.metrics.memory.total_bytes, 246504 * 1024);
        assert_eq!(s.metrics.memory.available_bytes, 171380 * 1024);
        assert_eq!(s.metrics.uptime_seconds, 26098);

        let names: Vec<_> = s.interfaces.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "lo",
                "eth0",
                "lan1",
                "lan2",
                "lan3",
                "lan4",
                "wan",
                "br-lan",
                "phy0-ap0",
                "phy1-ap0",
                "pppoe-wan"
            ]
        );
        let rates = |n: &str| {
            let i = iface(&s, n);
            (i.rx_rate_bps, i.tx_rate_bps)
        };
        // Plain traffic: 62.5 MB and 6.25 MB in 5 s on a 1000 Mbit/s port.
        let wan = iface(&s, "wan");
        assert_eq!(rates("wan"), (100_000_000, 10_000_000));
        assert_eq!(
            (wan.speed_mbps, wan.utilization_percent),
            (Some(1000), Some(10.0))
        );
        assert_eq!(
            (wan.rx_bytes_total, wan.rx_packets_total, wan.rx_dropped),
            (1915810221, 1743900, 3)
        );
        assert_eq!(wan.mac.as_deref(), Some("60:38:e0:1a:2b:3d"));
        assert_eq!((wan.status, wan.mtu), (LinkStatus::Up, Some(1500)));
        assert_eq!(rates("br-lan"), (2_000_000, 4_000_000));
        assert_eq!(iface(&s, "br-lan").utilization_percent, None);
        assert_eq!(rates("lo"), (3277, 3277));
        // 32-bit wrap of the receive counter: 1 967 296 bytes.
        assert_eq!(rates("phy0-ap0"), (3_147_674, 1_000_000));
        // Resets: what was counted since (64-bit counter; 32-bit one beyond the link's speed).
        assert_eq!(rates("eth0"), (19_200, 14_400));
        assert_eq!(rates("lan1"), (1_600, 3_200));
        // Re-created: counted anew although the new value is above the old one.
        assert_eq!(rates("phy1-ap0"), (4_000_000, 160_000));
        // Appeared within the interval.
        assert_eq!(rates("pppoe-wan"), (80_000, 32_000));
        let ppp = iface(&s, "pppoe-wan");
        assert_eq!(
            (ppp.mac.as_deref(), ppp.speed_mbps, ppp.mtu),
            (None, None, Some(1492))
        );
        // A port without link: speed -1 is unknown, so is its utilisation.
        let lan4 = iface(&s, "lan4");
        assert_eq!(
            (lan4.status, lan4.speed_mbps, lan4.utilization_percent),
            (LinkStatus::Down, None, None)
        );
        assert_eq!(rates("lan4"), (0, 0));
        for i in &s.interfaces {
            assert!(
                i.rx_rate_bps < 1_000_000_000 && i.tx_rate_bps < 1_000_000_000,
                "{i:?}"
            );
        }

        // A third reading without change: all rates 0; wg0 is gone for good.
        let s3 = c.sample(t0 + Duration::from_secs(10));
        assert!(s3
            .interfaces
            .iter()
            .all(|i| i.rx_rate_bps == 0 && i.tx_rate_bps == 0));
        assert_eq!(s3.metrics.cpu.percent, 0.0);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn first_sample_without_prime_has_no_rates() {
        let root = tree("noprime");
        let (proc, sys) = (root.join("proc"), root.join("sys"));
        copy_dir(&Path::new(FIX).join("proc/debian-x86_64"), &proc);
        let mut c = Collector::new(proc, sys);
        let s = c.sample(Instant::now());
        assert_eq!(s.metrics.cpu.percent, 0.0);
        assert_eq!(s.metrics.cpu.cores, 2);
        assert_eq!(s.metrics.memory.total_bytes, 25276502016);
        assert_eq!(s.metrics.uptime_seconds, 645);
        let eth0 = iface(&s, "eth0");
        assert_eq!((eth0.rx_bytes_total, eth0.rx_rate_bps), (329932622, 0));
        // No /sys tree: nothing known about the link, and no panic.
        assert_eq!(
            (eth0.status, eth0.mac.as_deref(), eth0.speed_mbps),
            (LinkStatus::Unknown, None, None)
        );
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn missing_and_broken_files_leave_parts_empty() {
        let root = tree("broken");
        let (proc, sys) = (root.join("proc"), root.join("sys"));
        put(proc.join("stat"), "");
        put(proc.join("meminfo"), "MemTotal: lots\n");
        put(
            proc.join("net/dev"),
            "garbage\n  lo: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n",
        );
        let mut c = Collector::new(proc.clone(), sys);
        let t0 = Instant::now();
        c.prime(t0);
        let s = c.sample(t0 + Duration::from_secs(1));
        assert_eq!(s.metrics.cpu.percent, 0.0);
        assert_eq!(s.metrics.cpu.cores, 1);
        assert_eq!(s.metrics.memory.total_bytes, 0);
        assert_eq!(s.metrics.uptime_seconds, 0);
        assert!(s.metrics.disk.is_empty());
        // The bad line is skipped, the good one kept.
        assert_eq!(s.interfaces.len(), 1);
        assert_eq!(s.interfaces[0].tx_bytes_total, 9);
        // net/dev disappears: no interfaces and no baseline; it comes back: rates restart at 0.
        std::fs::remove_file(proc.join("net/dev")).unwrap();
        assert!(c.sample(t0 + Duration::from_secs(2)).interfaces.is_empty());
        put(
            proc.join("net/dev"),
            "  lo: 100 2 3 4 5 6 7 8 900 10 11 12 13 14 15 16\n",
        );
        let s = c.sample(t0 + Duration::from_secs(3));
        assert_eq!(
            (s.interfaces[0].rx_rate_bps, s.interfaces[0].tx_rate_bps),
            (0, 0)
        );
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn live_system() {
        let mut c = Collector::new("/proc".into(), "/sys".into());
        let t0 = Instant::now();
        c.prime(t0);
        let s = c.sample(Instant::now());
        assert!(s.metrics.memory.total_bytes > 0);
        assert!(s.metrics.uptime_seconds > 0);
        assert!(
            s.metrics.disk.iter().any(|d| d.mount_point == "/"),
            "{:?}",
            s.metrics.disk
        );
        let lo = iface(&s, "lo");
        assert!(lo.ipv4.iter().any(|a| a == "127.0.0.1"), "{lo:?}");
        assert_eq!(lo.mtu, Some(65536));
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = ParseError::bad("/proc/stat", 2, "bad");
        assert_eq!(e.to_string(), "/proc/stat:3: bad");
        assert_eq!(
            ParseError::Empty {
                file: "/proc/uptime"
            }
            .to_string(),
            "/proc/uptime: empty file"
        );
        let e = read_into(
            &mut String::new(),
            &mut PathBuf::new(),
            Path::new("/nonexistent"),
            "stat",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/nonexistent/stat: cannot read: "),
            "{e}"
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u64("0"), Some(0));
        assert_eq!(parse_u64("18446744073709551615"), Some(u64::MAX));
        for bad in ["", "+1", "-1", "1 ", "18446744073709551616", "0x1"] {
            assert_eq!(parse_u64(bad), None, "{bad}");
        }
        assert_eq!(parse_f64("0.61"), Some(0.61));
        for bad in ["", "-0.5", "inf", "NaN", "1e3", "1,5"] {
            assert_eq!(parse_f64(bad), None, "{bad}");
        }
    }
}
