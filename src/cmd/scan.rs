//! `netmon-agent scan`: one ARP scan of the LAN through its own socket, printed like arp-scan
//! (or as JSON), then exit.

use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use crate::addr::format_mac;
use crate::capture::link;
use crate::cli::{Common, ScanArgs};
use crate::config::Config;
use crate::discovery::arp_scan::{self, Scanner};
use crate::error::Error;
use crate::sys::packet::{self, Options, RingGeometry};
use crate::sys::poll::{poll, Interest, Ready};

/// One answer of a scan.
#[derive(Debug, Clone)]
pub struct Found {
    /// Who answered.
    pub ip: Ipv4Addr,
    /// Its MAC.
    pub mac: [u8; 6],
    /// Time from the first who-has to the reply.
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
        while let Some(mut block) = sock.next_block() {
            while let Some(f) = block.next_frame() {
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
pub fn command(common: &Common, args: &ScanArgs) -> Result<ExitCode, Error> {
    let cfg = &crate::agent::load_config(&common.load_options()?)?;
    let json = args.json;
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
        use crate::ship::json::{Field, Object};
        let list = found
            .iter()
            .map(|f| {
                Field::Obj(
                    Object::new()
                        .with("ip", f.ip.to_string())
                        .with("mac", format_mac(&f.mac))
                        .with("deviceName", name(f))
                        .with(
                            "responseMs",
                            (f.rtt.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
                        ),
                )
            })
            .collect();
        let doc = Object::new()
            .with("interface", iface)
            .with("range", range.map(|r| r.to_string()))
            .with("seconds", (took.as_secs_f64() * 1000.0).round() / 1000.0)
            .with("hosts", Field::List(list));
        println!("{}", doc.to_json());
    } else {
        println!(
            "Interface: {iface}, range {}",
            range.map(|r| r.to_string()).unwrap_or_default()
        );
        for f in &found {
            println!(
                "{}\t{}\t{}\t{} ms",
                f.ip,
                format_mac(&f.mac),
                name(f).unwrap_or_else(|| "-".into()),
                crate::decimal::Fixed(f.rtt.as_secs_f64() * 1000.0, 3)
            );
        }
        println!();
        println!(
            "{} hosts scanned in {} seconds. {} responded",
            range.map(|r| r.hosts().count()).unwrap_or(0),
            crate::decimal::Fixed(took.as_secs_f64(), 3),
            found.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
