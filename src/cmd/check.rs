//! `netmon-agent check`: validate the config and describe what the agent would do (the API key
//! redacted); unless offline, send one real snapshot to each configured endpoint.

use std::process::ExitCode;
use std::time::{Instant, SystemTime};

use crate::agent::{build_snapshot, load_config, RunState};
use crate::capture::BLOCK_TIMEOUT_MS;
use crate::cli::{CheckArgs, Common};
use crate::config::Config;
use crate::discovery::{arp_scan, offload};
use crate::error::Error;
use crate::procfs::Collector;
use crate::snapshot::CaptureInfo;
use crate::sys::packet::{self, Options, RingGeometry};
use crate::timefmt;

/// `netmon-agent check`: validate and describe, never showing the key.
/// With `offline`, the endpoints are described but not contacted.
pub fn command(common: &Common, args: &CheckArgs) -> Result<ExitCode, Error> {
    let cfg = load_config(&common.load_options()?)?;
    let offline = args.offline;
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<14} {v}\n"));
    line(
        "config file",
        cfg.source
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "none (built-in defaults)".into()),
    );
    line("server id", cfg.server_id.clone());
    line(
        "server ip",
        cfg.server_ip
            .map(|i| i.to_string())
            .unwrap_or_else(|| "unknown".into()),
    );
    let names = interfaces(&cfg);
    let iface = match names.is_empty() {
        false => names
            .iter()
            .map(|name| {
                let exists = cfg.sys_root.join("class/net").join(name).exists();
                format!(
                    "{name}{}",
                    if exists { "" } else { " (does not exist now)" }
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
        true => "none found".into(),
    };
    line("interface", iface);
    let mut ranges = vec![cfg
        .network_range
        .map(|r| r.to_string())
        .unwrap_or_else(|| "unknown".into())];
    for name in names.iter().skip(1) {
        let r = cfg.network_ranges.iter().find(|(n, _)| n == name);
        ranges.push(match r {
            Some((_, r)) => format!("{name}={r}"),
            None => format!("{name}=its subnet"),
        });
    }
    line("network range", ranges.join(", "));
    line(
        "metrics",
        cfg.metrics_listen
            .map(|a| format!("http://{a}/metrics"))
            .unwrap_or_else(|| "off (METRICS_LISTEN not set)".into()),
    );
    line("cycle", format!("{} s", cfg.cycle.as_secs()));
    line(
        "REST",
        cfg.platform_api_url
            .as_ref()
            .map(|u| u.to_string())
            .unwrap_or_else(|| "not set".into()),
    );
    line(
        "WebSocket",
        cfg.platform_ws_url
            .as_ref()
            .map(|u| u.to_string())
            .unwrap_or_else(|| "not set".into()),
    );
    if !cfg.has_platform() {
        line(
            "output",
            "no platform configured: `run` prints one JSON snapshot per line to stdout".into(),
        );
    }
    line(
        "api key",
        match &cfg.api_key {
            Some(k) => format!("set {k}"),
            None => "not set".into(),
        },
    );
    for (k, v) in check_lines(&cfg) {
        line(k, v);
    }
    let mut spool_refused = None;
    if let Some(dir) = &cfg.backlog_dir {
        if cfg.platform_api_url.is_none() {
            line("spool", "not used (no PLATFORM_API_URL)".into());
        } else {
            // The owner `run` checks is the user it runs as after RUN_AS_USER.
            let uid = cfg
                .run_as_user
                .as_deref()
                .and_then(|u| crate::sys::privdrop::lookup_user(u).ok())
                .map_or_else(crate::sys::fs::euid, |u| u.uid);
            match crate::ship::backlog::inspect(dir, uid) {
                Ok(s) => line("spool", s),
                Err(reason) => {
                    line("spool", format!("refused: {reason}"));
                    spool_refused = Some(format!("BACKLOG_DIR {}: {reason}", dir.display()));
                }
            }
        }
    }
    print!("{out}");
    if let Some(e) = spool_refused {
        return Err(Error::Usage(e));
    }
    if !cfg.has_platform() || offline {
        return Ok(ExitCode::SUCCESS);
    }
    // Each endpoint once, with a real snapshot (no measuring window).
    let mut collector = Collector::for_config(&cfg);
    collector.prime(Instant::now());
    let ms = timefmt::unix_millis(SystemTime::now());
    let mut state = RunState::new(SystemTime::now());
    let sample = collector.sample(Instant::now());
    let snap = build_snapshot(
        &cfg,
        &mut state,
        sample,
        CaptureInfo::off(
            cfg.interface.clone(),
            "sent by `check`: no capture while checking",
            cfg.device_table_size,
        ),
        Vec::new(),
        (ms, ms),
    );
    let (lines, ok) = crate::ship::check(&cfg, &snap);
    for l in lines {
        println!("{l}");
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The capture interfaces: INTERFACE's list, else the detected one.
fn interfaces(cfg: &Config) -> Vec<String> {
    match cfg.interfaces.is_empty() {
        true => cfg.interface.iter().cloned().collect(),
        false => cfg.interfaces.clone(),
    }
}

/// `check`'s lines about capture: whether the socket can be opened now (it is opened and
/// closed again) and why not, the scan plan, flow offloading.
fn check_lines(cfg: &Config) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let names = interfaces(cfg);
    if names.is_empty() {
        out.push((
            "capture",
            "off: no capture interface (INTERFACE not set and none detected)".to_owned(),
        ));
    }
    for name in &names {
        let name = name.as_str();
        let capture = match RingGeometry::new(cfg.ring_kb as u64, packet::page_size()) {
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
                Err(e) => format!("off on {name}: {e}"),
            },
        };
        out.push(("capture", capture));
    }
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
