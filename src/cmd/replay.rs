//! `netmon-agent replay FILE`: feeds a capture file through the same decode -> device table
//! pipeline as the live capture. The capture's own timestamps are the clock: cycles start at the
//! first frame and follow capture time, so rates and status are what the live agent would have
//! reported. Prints one snapshot at the end (`--json`, schema-valid, `capture.mode` "replay"),
//! one per cycle as JSON lines (`--every-cycle`), or a table sorted by total bytes.
//! A corrupt or truncated file: what was counted up to there is printed, then the error
//! (packet index, byte offset) and exit 1.
//!
//! Cycles without any frame are not printed: after a gap the clock jumps to the cycle of the
//! next frame (one cycle ends at the first boundary after the gap began).
//! Metrics and interfaces in the snapshot are those of the machine running the replay.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Instant, SystemTime};

use crate::agent::{self, RunState};
use crate::cli::{Common, ReplayArgs};
use crate::config::{Config, LoadOptions};
use crate::devices::DeviceTable;
use crate::error::Error;
use crate::frame::linktype_name;
use crate::pcap::file::FileSource;
use crate::pcap::FrameSource;
use crate::procfs::Collector;
use crate::snapshot::{CaptureMode, Device};
use crate::timefmt;

// Here rather than in pcap/: pcap, frame, wire, decode and devices stay free of the program's
// error and config types.
impl From<crate::pcap::CaptureError> for Error {
    fn from(e: crate::pcap::CaptureError) -> Self {
        Error::Other(e.to_string())
    }
}

/// Checks the arguments and replays the file.
pub fn command(common: &Common, args: &ReplayArgs) -> Result<ExitCode, Error> {
    let mut common = common.clone();
    if let Some(n) = &args.table_size {
        common.set.push(format!("DEVICE_TABLE_SIZE={n}"));
    }
    let opts = common.load_options()?;
    let Some(file) = args.file.clone() else {
        return Err(Error::Usage("replay: no capture file given".into()));
    };
    if args.every_cycle && !args.json {
        return Err(Error::Usage("replay: --every-cycle needs --json".into()));
    }
    let range = match common.range.as_deref() {
        Some(r) => Some(
            crate::addr::Ipv4Cidr::parse(r).map_err(|e| Error::Usage(format!("--range: {e}")))?,
        ),
        None => None,
    };
    let mut gateways = Vec::new();
    for g in &args.gateway {
        let mac = crate::addr::parse_mac(g)
            .filter(crate::decode::is_unicast)
            .ok_or_else(|| Error::Usage(format!("--gateway {g}: not a unicast MAC address")))?;
        gateways.push(mac);
    }
    if gateways.len() > crate::devices::MAX_EXCLUDED {
        return Err(Error::Usage(format!(
            "--gateway: at most {} MACs",
            crate::devices::MAX_EXCLUDED
        )));
    }
    let mut local = crate::locality::LocalNets::new();
    if let Some(r) = range {
        local.add_v4(r);
    }
    for l in &args.local {
        if !add_local(&mut local, l) {
            return Err(Error::Usage(format!(
                "--local {l}: expected an IPv4 or IPv6 range (a.b.c.d/n or x:y::/n), at most {}",
                crate::locality::MAX_NETS
            )));
        }
    }
    if !gateways.is_empty() && range.is_none() && args.local.is_empty() {
        return Err(Error::Usage(
            "replay: --gateway needs the local ranges (--range and/or --local): without them every address would be the internet".into(),
        ));
    }
    let ro = ReplayOptions {
        file,
        range,
        json: args.json,
        every_cycle: args.every_cycle,
        gateways,
        local,
    };
    run(opts, ro).map(|()| ExitCode::SUCCESS)
}

/// What to replay and how to print it.
pub struct ReplayOptions {
    /// The capture file.
    pub file: PathBuf,
    /// `--range` only: the range auto-detected on this machine says nothing about the capture.
    pub range: Option<crate::addr::Ipv4Cidr>,
    /// Print a JSON snapshot instead of the table.
    pub json: bool,
    /// With `json`: one snapshot per cycle.
    pub every_cycle: bool,
    /// `--gateway`: the router's MACs (the internet/local split needs them).
    pub gateways: Vec<crate::decode::Mac>,
    /// `--range` and `--local`.
    pub local: crate::locality::LocalNets,
}

/// Adds `a.b.c.d/n` or `x:y::/n` to `nets`; false when it is neither or there is no room.
fn add_local(nets: &mut crate::locality::LocalNets, text: &str) -> bool {
    if let Ok(c) = crate::addr::Ipv4Cidr::parse(text) {
        return nets.add_v4(c);
    }
    let (addr, prefix) = text.split_once('/').unwrap_or((text, "128"));
    match (
        addr.trim().parse::<std::net::Ipv6Addr>(),
        prefix.trim().parse::<u8>(),
    ) {
        (Ok(a), Ok(p)) if p <= 128 => nets.add_v6(a, p),
        _ => false,
    }
}

struct Printer<'a> {
    cfg: &'a Config,
    opts: &'a ReplayOptions,
    state: RunState,
    collector: Collector,
    window_start: u64,
}

impl Printer<'_> {
    fn snapshot(&mut self, table: &DeviceTable, now: u64, last: bool) -> Result<(), Error> {
        let mut devices = table.devices(now, now);
        sort_devices(&mut devices);
        let io = |e| Error::Sys {
            what: "writing to stdout",
            source: e,
        };
        let mut out = std::io::stdout().lock();
        if !self.opts.json {
            if last {
                print_table(&mut out, &devices).map_err(io)?;
            }
            return Ok(());
        }
        let capture = table.capture_info(
            CaptureMode::Replay,
            Some(self.opts.file.display().to_string()),
            0,
        );
        let sample = self.collector.sample(Instant::now());
        let end_ms = now / 1_000_000;
        let snap = agent::build_snapshot(
            self.cfg,
            &mut self.state,
            sample,
            capture,
            devices,
            (self.window_start.min(end_ms), end_ms),
        );
        self.window_start = end_ms;
        let text = if self.opts.every_cycle {
            serde_json::to_string(&snap)
        } else {
            crate::snapshot::to_pretty_json(&snap)
        }
        .map_err(|e| Error::Other(format!("serialising snapshot: {e}")))?;
        writeln!(out, "{text}").map_err(io)
    }
}

/// Largest total first; ties by MAC.
fn sort_devices(d: &mut [Device]) {
    d.sort_by(|a, b| {
        let ta = a.bandwidth.rx_bytes_total + a.bandwidth.tx_bytes_total;
        let tb = b.bandwidth.rx_bytes_total + b.bandwidth.tx_bytes_total;
        tb.cmp(&ta).then_with(|| a.mac.cmp(&b.mac))
    });
}

fn print_table(out: &mut impl Write, devices: &[Device]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<17}  {:<15}  {:<20}  {:>4}  {:>12}  {:>12}  {:>9}  {:>9}  {:>12}  STATUS",
        "MAC", "IP", "NAME", "VLAN", "RX BYTES", "TX BYTES", "RX PKTS", "TX PKTS", "INTERNET"
    )?;
    for d in devices {
        let b = &d.bandwidth;
        writeln!(
            out,
            "{:<17}  {:<15}  {:<20}  {:>4}  {:>12}  {:>12}  {:>9}  {:>9}  {:>12}  {}",
            d.mac,
            d.ip.as_deref().unwrap_or("-"),
            d.device_name.as_deref().unwrap_or("-"),
            d.vlan.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
            b.rx_bytes_total,
            b.tx_bytes_total,
            b.rx_packets_total,
            b.tx_packets_total,
            b.internet_rx_bytes_total + b.internet_tx_bytes_total,
            match d.status {
                crate::snapshot::DeviceStatus::Active => "active",
                crate::snapshot::DeviceStatus::Inactive => "inactive",
            }
        )?;
    }
    Ok(())
}

/// Replays `opts.file` with the configuration `load` and prints the result.
pub fn run(load: LoadOptions, opts: ReplayOptions) -> Result<(), Error> {
    let cfg = agent::load_config(&load)?;
    let mut tc = crate::monitor::table_config(&cfg);
    tc.range = opts.range;
    let mut table = DeviceTable::new(tc);
    table.set_excluded(&opts.gateways);
    table.set_local_nets(opts.local.clone());
    let mut src = FileSource::open(&opts.file)?;
    let cycle = table.config().cycle_ns;
    let mut collector = Collector::for_config(&cfg);
    collector.prime(Instant::now());
    let mut printer = Printer {
        cfg: &cfg,
        opts: &opts,
        state: RunState::new(SystemTime::now()),
        collector,
        window_start: 0,
    };
    let mut origin: Option<u64> = None;
    let mut next_boundary = 0u64;
    let mut now = 0u64;
    let mut failure = None;
    while let Some(r) = src.next_frame() {
        let frame = match r {
            Ok(f) => f,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        let ts = frame.ts;
        if origin.is_none() {
            origin = Some(ts);
            now = ts;
            next_boundary = ts.saturating_add(cycle);
            printer.state.started_at = timefmt::format_millis(ts / 1_000_000);
            printer.window_start = ts / 1_000_000;
        }
        // Capture time never runs backwards for the table (interfaces of a pcapng interleave).
        now = now.max(ts);
        if now >= next_boundary {
            table.end_cycle(next_boundary);
            if opts.every_cycle {
                printer.snapshot(&table, next_boundary, false)?;
            }
            let o = origin.unwrap_or(0);
            let k = (now - o) / cycle + 1;
            next_boundary = o.saturating_add(k.saturating_mul(cycle));
        }
        let mut f = frame;
        f.ts = now;
        table.observe(&f);
    }
    // A pcapng whose interfaces all have unsupported link types is found out at its end:
    // nothing was counted, so there is nothing to print but the error.
    if let Some(e @ crate::pcap::CaptureError::Unsupported { .. }) = failure {
        return Err(e.into());
    }
    warn_skipped(&src);
    if origin.is_some() {
        table.end_cycle(now);
    }
    printer.snapshot(&table, now, true)?;
    let c = table.counters();
    let expiry = if c.expired > 0 {
        " (no sign of life for DEVICE_EXPIRE of capture time; DEVICE_EXPIRE=0 keeps every device)"
    } else {
        ""
    };
    info!(
        "{}: {} frames, {} bytes, {} devices, {} expired during the capture{expiry}, {} evicted, {} malformed, {} not tracked (table full)",
        opts.file.display(),
        c.packets_seen,
        c.bytes_seen,
        table.len(),
        c.expired,
        c.evicted,
        c.malformed,
        c.table_full
    );
    match failure {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

fn warn_skipped(src: &FileSource) {
    let skipped = src.skipped();
    if skipped.is_empty() {
        return;
    }
    let list: Vec<String> = skipped
        .iter()
        .map(|(l, n)| format!("{n} of link type {l} ({})", linktype_name(*l)))
        .collect();
    warn!(
        "{}: skipped frames of unsupported interfaces: {}",
        display(src.path()),
        list.join(", ")
    );
}

fn display(p: &Path) -> String {
    p.display().to_string()
}
