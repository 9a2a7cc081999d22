//! The Prometheus text exposition format (version 0.0.4), rendered into a caller's buffer.
//!
//! Pure: the caller passes plain samples (no table, no socket), so the page is tested on values
//! and checked by `promtool`. Nothing is allocated here beyond the growth of the caller's `Vec`,
//! which is reused from one scrape to the next; the page of a full table is at most
//! [`PAGE_FIXED_MAX`] + [`PAGE_PER_DEVICE_MAX`] bytes per device.
//!
//! Names follow the Prometheus conventions: a `netmon_` prefix, base units (bytes, seconds),
//! `_total` on counters, `_bytes`/`_packets` before it. Each family is one `# HELP`, one
//! `# TYPE` and its samples, families never interleave (the format requires it).

use std::io::Write;
use std::net::Ipv4Addr;

/// One device's numbers, as the table holds them.
#[derive(Debug, Clone, Copy)]
pub struct DeviceSample<'a> {
    /// The capture interface.
    pub interface: &'a str,
    /// The device's MAC.
    pub mac: [u8; 6],
    /// Its IPv4 address.
    pub ip: Option<Ipv4Addr>,
    /// Empty when the device has no name.
    pub name: &'a str,
    /// Status `active`.
    pub active: bool,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Frames received.
    pub rx_packets: u64,
    /// Frames sent.
    pub tx_packets: u64,
    /// Bytes received from the internet.
    pub internet_rx_bytes: u64,
    /// Bytes sent to the internet.
    pub internet_tx_bytes: u64,
    /// Frames received from the internet.
    pub internet_rx_packets: u64,
    /// Frames sent to the internet.
    pub internet_tx_packets: u64,
}

/// One capture interface's numbers.
#[derive(Debug, Clone, Copy)]
pub struct CaptureSample<'a> {
    /// The capture interface.
    pub interface: &'a str,
    /// The ring is open and capturing.
    pub up: bool,
    /// Frames captured.
    pub packets_seen: u64,
    /// Bytes captured (lengths on the wire).
    pub bytes_seen: u64,
    /// The kernel's PACKET_STATISTICS drops.
    pub packets_dropped: u64,
}

/// The agent's own numbers.
#[derive(Debug, Clone, Copy, Default)]
pub struct AgentSample<'a> {
    /// The agent's version.
    pub version: &'a str,
    /// Milliseconds since the Unix epoch.
    pub start_time_ms: u64,
    /// Devices in the table.
    pub devices_tracked: u64,
    /// DEVICE_TABLE_SIZE.
    pub device_table_capacity: u64,
    /// Frames whose new device found the table full.
    pub device_table_full: u64,
    /// Devices removed before their time to make room for a newcomer.
    pub devices_evicted: u64,
    /// Devices removed because they expired.
    pub devices_expired: u64,
    /// Frames too short or impossible to decode (all interfaces).
    pub malformed: u64,
    /// Frames between a device and the router without a readable IP header (all interfaces).
    pub unclassified: u64,
    /// Snapshots waiting for the REST endpoint.
    pub backlog: u64,
    /// Snapshots dropped because the backlog was full.
    pub lost: u64,
    /// Unix seconds of the last snapshot a platform accepted; None: none yet (no sample).
    pub last_delivery_ms: Option<u64>,
}

/// Fixed part of a page (agent families, headers), upper bound.
pub const PAGE_FIXED_MAX: usize = 8 * 1024;
/// Upper bound of one interface's lines.
pub const PAGE_PER_INTERFACE_MAX: usize = 7 * 160;
/// Upper bound of one device's lines: 9 samples, each with the four labels at their longest
/// (interface 15 bytes, name 64 bytes escaped to at most 128, MAC 17, IPv4 15).
pub const PAGE_PER_DEVICE_MAX: usize = 9 * 320;

struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
}

macro_rules! family {
    ($name:literal, $kind:literal, $help:literal) => {
        Family {
            name: $name,
            kind: $kind,
            help: $help,
        }
    };
}

const DEVICE_FAMILIES: [Family; 9] = [
    family!(
        "netmon_device_receive_bytes_total",
        "counter",
        "Bytes of frames addressed to the device (original frame length, no FCS)."
    ),
    family!(
        "netmon_device_transmit_bytes_total",
        "counter",
        "Bytes of frames the device sent."
    ),
    family!(
        "netmon_device_receive_packets_total",
        "counter",
        "Frames addressed to the device."
    ),
    family!(
        "netmon_device_transmit_packets_total",
        "counter",
        "Frames the device sent."
    ),
    family!(
        "netmon_device_internet_receive_bytes_total",
        "counter",
        "Bytes the device received from outside every local range, through the router."
    ),
    family!(
        "netmon_device_internet_transmit_bytes_total",
        "counter",
        "Bytes the device sent to outside every local range, through the router."
    ),
    family!(
        "netmon_device_internet_receive_packets_total",
        "counter",
        "Frames the device received from outside every local range, through the router."
    ),
    family!(
        "netmon_device_internet_transmit_packets_total",
        "counter",
        "Frames the device sent to outside every local range, through the router."
    ),
    family!(
        "netmon_device_active",
        "gauge",
        "1 while the device showed a sign of life within DEVICE_TIMEOUT cycles, else 0."
    ),
];

const CAPTURE_FAMILIES: [Family; 4] = [
    family!(
        "netmon_capture_up",
        "gauge",
        "1 while the interface is being captured, 0 while capture is off."
    ),
    family!(
        "netmon_capture_packets_total",
        "counter",
        "Frames captured on the interface."
    ),
    family!(
        "netmon_capture_bytes_total",
        "counter",
        "Bytes of the frames captured on the interface (original lengths)."
    ),
    family!(
        "netmon_capture_dropped_packets_total",
        "counter",
        "Frames the kernel dropped because the capture ring was full."
    ),
];

fn header(out: &mut Vec<u8>, f: &Family) {
    out.extend_from_slice(b"# HELP ");
    out.extend_from_slice(f.name.as_bytes());
    out.push(b' ');
    out.extend_from_slice(f.help.as_bytes());
    out.extend_from_slice(b"\n# TYPE ");
    out.extend_from_slice(f.name.as_bytes());
    out.push(b' ');
    out.extend_from_slice(f.kind.as_bytes());
    out.push(b'\n');
}

/// Writes a label value with the format's three escapes (backslash, double quote, line feed).
pub fn escape_label_value(out: &mut Vec<u8>, value: &str) {
    for &b in value.as_bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            _ => out.push(b),
        }
    }
}

fn label(out: &mut Vec<u8>, first: bool, key: &str, value: &str) {
    if !first {
        out.push(b',');
    }
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"=\"");
    escape_label_value(out, value);
    out.push(b'"');
}

fn mac_label(out: &mut Vec<u8>, mac: &[u8; 6]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(b",mac=\"");
    for (i, b) in mac.iter().enumerate() {
        if i > 0 {
            out.push(b':');
        }
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 15) as usize]);
    }
    out.push(b'"');
}

fn value_u64(out: &mut Vec<u8>, v: u64) {
    // Writing into a Vec<u8> cannot fail.
    let _ = writeln!(out, " {v}");
}

/// Milliseconds as seconds with three decimals (integer formatting only: float formatting
/// costs ~20 kB of code on a router).
fn value_millis(out: &mut Vec<u8>, ms: u64) {
    let _ = writeln!(out, " {}.{:03}", ms / 1000, ms % 1000);
}

fn device_labels(out: &mut Vec<u8>, name: &str, d: &DeviceSample) {
    out.extend_from_slice(name.as_bytes());
    out.push(b'{');
    label(out, true, "interface", d.interface);
    mac_label(out, &d.mac);
    out.extend_from_slice(b",ip=\"");
    if let Some(ip) = d.ip {
        let _ = write!(out, "{ip}");
    }
    out.push(b'"');
    label(out, false, "name", d.name);
    out.push(b'}');
}

fn simple(out: &mut Vec<u8>, f: &Family, v: u64) {
    header(out, f);
    out.extend_from_slice(f.name.as_bytes());
    value_u64(out, v);
}

/// Renders the whole page into `out` (cleared first). `interfaces` and `devices` make a fresh
/// iterator for each family (the format wants each family's samples together).
pub fn render<'a, I, D>(
    out: &mut Vec<u8>,
    agent: &AgentSample,
    interfaces: impl Fn() -> I,
    devices: impl Fn() -> D,
) where
    I: Iterator<Item = CaptureSample<'a>>,
    D: Iterator<Item = DeviceSample<'a>>,
{
    out.clear();
    header(
        out,
        &family!(
            "netmon_agent_info",
            "gauge",
            "Always 1; the agent's version as a label."
        ),
    );
    out.extend_from_slice(b"netmon_agent_info{");
    label(out, true, "version", agent.version);
    out.extend_from_slice(b"} 1\n");
    header(
        out,
        &family!(
            "netmon_agent_start_time_seconds",
            "gauge",
            "When the agent started, in seconds since the Unix epoch."
        ),
    );
    out.extend_from_slice(b"netmon_agent_start_time_seconds");
    value_millis(out, agent.start_time_ms);
    simple(
        out,
        &family!(
            "netmon_device_table_devices",
            "gauge",
            "Devices in the table."
        ),
        agent.devices_tracked,
    );
    simple(
        out,
        &family!(
            "netmon_device_table_capacity",
            "gauge",
            "Devices the table can hold (DEVICE_TABLE_SIZE)."
        ),
        agent.device_table_capacity,
    );
    simple(
        out,
        &family!(
            "netmon_device_table_full_packets_total",
            "counter",
            "Frames whose new device found the table full (not tracked)."
        ),
        agent.device_table_full,
    );
    simple(
        out,
        &family!(
            "netmon_device_table_evicted_total",
            "counter",
            "Devices removed before their time to make room for a newcomer with a sign of life."
        ),
        agent.devices_evicted,
    );
    simple(
        out,
        &family!(
            "netmon_device_table_expired_total",
            "counter",
            "Devices removed because DEVICE_EXPIRE passed without a sign of life."
        ),
        agent.devices_expired,
    );
    simple(
        out,
        &family!(
            "netmon_malformed_packets_total",
            "counter",
            "Frames too short or impossible to decode, on every interface."
        ),
        agent.malformed,
    );
    simple(
        out,
        &family!(
            "netmon_unclassified_packets_total",
            "counter",
            "Frames between a device and the router without a readable IP header (counted as local)."
        ),
        agent.unclassified,
    );
    simple(
        out,
        &family!(
            "netmon_backlog_snapshots",
            "gauge",
            "Snapshots waiting for the REST endpoint."
        ),
        agent.backlog,
    );
    simple(
        out,
        &family!(
            "netmon_lost_snapshots_total",
            "counter",
            "Snapshots dropped because the backlog was full."
        ),
        agent.lost,
    );
    header(
        out,
        &family!(
            "netmon_last_delivery_timestamp_seconds",
            "gauge",
            "When a platform last accepted a snapshot, in seconds since the Unix epoch (no sample before the first)."
        ),
    );
    if let Some(t) = agent.last_delivery_ms {
        out.extend_from_slice(b"netmon_last_delivery_timestamp_seconds");
        value_millis(out, t);
    }

    for (k, f) in CAPTURE_FAMILIES.iter().enumerate() {
        header(out, f);
        for c in interfaces() {
            out.extend_from_slice(f.name.as_bytes());
            out.push(b'{');
            label(out, true, "interface", c.interface);
            out.push(b'}');
            let v = match k {
                0 => c.up as u64,
                1 => c.packets_seen,
                2 => c.bytes_seen,
                _ => c.packets_dropped,
            };
            value_u64(out, v);
        }
    }

    for (k, f) in DEVICE_FAMILIES.iter().enumerate() {
        header(out, f);
        for d in devices() {
            device_labels(out, f.name, &d);
            let v = match k {
                0 => d.rx_bytes,
                1 => d.tx_bytes,
                2 => d.rx_packets,
                3 => d.tx_packets,
                4 => d.internet_rx_bytes,
                5 => d.internet_tx_bytes,
                6 => d.internet_rx_packets,
                7 => d.internet_tx_packets,
                _ => d.active as u64,
            };
            value_u64(out, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent() -> AgentSample<'static> {
        AgentSample {
            version: "0.1.0",
            start_time_ms: 1_790_000_000_250,
            devices_tracked: 2,
            device_table_capacity: 256,
            device_table_full: 7,
            devices_evicted: 3,
            devices_expired: 4,
            malformed: 1,
            unclassified: 2,
            backlog: 1,
            lost: 0,
            last_delivery_ms: Some(1_790_000_100_005),
        }
    }

    fn device(name: &'static str) -> DeviceSample<'static> {
        DeviceSample {
            interface: "br-lan",
            mac: [0x00, 0x1b, 0x21, 0x0a, 0x0b, 0x0c],
            ip: Some(Ipv4Addr::new(192, 168, 1, 23)),
            name,
            active: true,
            rx_bytes: 1000,
            tx_bytes: 2000,
            rx_packets: 10,
            tx_packets: 20,
            internet_rx_bytes: 600,
            internet_tx_bytes: 700,
            internet_rx_packets: 6,
            internet_tx_packets: 7,
        }
    }

    fn capture() -> CaptureSample<'static> {
        CaptureSample {
            interface: "br-lan",
            up: true,
            packets_seen: 30,
            bytes_seen: 3000,
            packets_dropped: 0,
        }
    }

    fn page(devices: &[DeviceSample<'static>]) -> String {
        let mut out = Vec::new();
        render(
            &mut out,
            &agent(),
            || std::iter::once(capture()),
            || devices.iter().copied(),
        );
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn device_lines_carry_the_four_labels_and_values() {
        let p = page(&[device("phone")]);
        assert!(p.contains(
            "netmon_device_receive_bytes_total{interface=\"br-lan\",mac=\"00:1b:21:0a:0b:0c\",ip=\"192.168.1.23\",name=\"phone\"} 1000\n"
        ), "{p}");
        assert!(p.contains("netmon_device_internet_transmit_bytes_total{interface=\"br-lan\",mac=\"00:1b:21:0a:0b:0c\",ip=\"192.168.1.23\",name=\"phone\"} 700\n"));
        assert!(p.contains("netmon_device_internet_receive_packets_total{interface=\"br-lan\",mac=\"00:1b:21:0a:0b:0c\",ip=\"192.168.1.23\",name=\"phone\"} 6\n"));
        assert!(p.contains("netmon_device_active{interface=\"br-lan\",mac=\"00:1b:21:0a:0b:0c\",ip=\"192.168.1.23\",name=\"phone\"} 1\n"));
        assert!(p.contains("netmon_unclassified_packets_total 2\n"));
        assert!(p.contains("netmon_capture_bytes_total{interface=\"br-lan\"} 3000\n"));
        assert!(p.contains("netmon_last_delivery_timestamp_seconds 1790000100.005\n"));
        assert!(p.contains("netmon_agent_start_time_seconds 1790000000.250\n"));
        assert!(p.contains("netmon_agent_info{version=\"0.1.0\"} 1\n"));
    }

    #[test]
    fn families_are_contiguous_and_typed_once() {
        let p = page(&[device("a"), device("b")]);
        let mut seen: Vec<&str> = Vec::new();
        let mut current = "";
        for line in p.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap();
                assert!(!seen.contains(&name), "{name} typed twice");
                seen.push(name);
                current = name;
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert_eq!(name, current, "sample of {name} outside its family");
            }
        }
        assert_eq!(seen.len(), 12 + 4 + 9);
    }

    #[test]
    fn label_values_are_escaped() {
        let p = page(&[device("a\"b\\c\nd")]);
        assert!(p.contains("name=\"a\\\"b\\\\c\\nd\""), "{p}");
        // No raw line feed inside a sample line: every device line is whole.
        for line in p.lines() {
            assert!(
                line.starts_with("# ") || line.starts_with("netmon_"),
                "{line}"
            );
        }
    }

    #[test]
    fn missing_ip_and_name_are_empty_labels_and_no_delivery_no_sample() {
        let mut d = device("");
        d.ip = None;
        let mut out = Vec::new();
        let a = AgentSample {
            last_delivery_ms: None,
            ..agent()
        };
        render(&mut out, &a, std::iter::empty, || std::iter::once(d));
        let p = String::from_utf8(out).unwrap();
        assert!(p.contains("ip=\"\",name=\"\"} 1000\n"));
        assert!(p.contains("# TYPE netmon_last_delivery_timestamp_seconds gauge\n"));
        assert!(!p.contains("\nnetmon_last_delivery_timestamp_seconds "));
    }

    /// The reference: Prometheus's own linter on a page with odd names and a missing IP.
    #[test]
    fn promtool_accepts_the_page() {
        use std::process::{Command, Stdio};
        let mut odd = device("quote\" back\\ newline\n ünï");
        odd.mac = [2, 0, 0, 0, 0, 9];
        odd.ip = None;
        let p = page(&[device("phone"), odd]);
        let child = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let Ok(mut child) = child else {
            eprintln!("skipped: promtool not found (Debian package prometheus)");
            return;
        };
        child.stdin.take().unwrap().write_all(p.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "promtool: {text}\n{p}");
        assert!(text.trim().is_empty(), "promtool lint: {text}");
    }

    #[test]
    fn the_buffer_is_reused_and_bounded() {
        let mut out = Vec::new();
        let longest = "\"".repeat(64);
        let devices: Vec<DeviceSample> = (0..50u8)
            .map(|i| DeviceSample {
                interface: "br-lan.4094-xyz",
                mac: [i; 6],
                ip: Some(Ipv4Addr::new(255, 255, 255, 255)),
                name: &longest,
                ..device("")
            })
            .map(|mut d| {
                d.rx_bytes = u64::MAX;
                d
            })
            .collect();
        let cap = |n: usize| PAGE_FIXED_MAX + PAGE_PER_INTERFACE_MAX + n * PAGE_PER_DEVICE_MAX;
        render(
            &mut out,
            &agent(),
            || std::iter::once(capture()),
            || devices.iter().copied(),
        );
        assert!(out.len() <= cap(devices.len()), "{} bytes", out.len());
        let first = out.as_ptr();
        let len = out.len();
        render(
            &mut out,
            &agent(),
            || std::iter::once(capture()),
            || devices.iter().copied(),
        );
        assert_eq!(
            (out.as_ptr(), out.len()),
            (first, len),
            "same buffer, same page"
        );
    }
}
