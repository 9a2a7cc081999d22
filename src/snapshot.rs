//! The payload: one snapshot as sent to the platform (REST and WebSocket) and printed by
//! `snapshot`/`run`. Field names follow the seed agent (camelCase); the contract is
//! `schema/snapshot.schema.json` in this repository (at least as strict as the shared one).
//!
//! Where each field comes from:
//! - `metrics.*`               -> `procfs` (cpu: /proc/stat, memory: /proc/meminfo, disk: mountinfo +
//!   statvfs, uptime: /proc/uptime, loadAverage: /proc/loadavg)
//! - `network.interfaces`      -> `procfs::netdev` (/proc/net/dev + /sys/class/net) and `sys::ifaddrs`
//! - `network.connectedDevices`, `agent.capture` -> the device table and the capture source
//! - `agent.*` (runId, seq, backlog, lost) -> `agent.rs` and `ship`

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub message_type: &'static str,
    pub schema_version: u32,
    pub server_id: String,
    pub server_ip: Option<String>,
    pub snapshot_time: String,
    pub agent: AgentInfo,
    pub metrics: Metrics,
    pub network: Network,
}

pub const MESSAGE_TYPE: &str = "realtimeSnapshot";
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentInfo {
    pub version: &'static str,
    pub run_id: String,
    pub seq: u64,
    pub started_at: String,
    pub capture: CaptureInfo,
    pub backlog: u64,
    pub lost: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptureMode {
    Live,
    Replay,
    Off,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CaptureInfo {
    pub mode: CaptureMode,
    pub interface: Option<String>,
    pub off_reason: Option<String>,
    pub packets_seen: u64,
    pub packets_dropped: u64,
    pub devices_tracked: u64,
    pub device_table_capacity: u64,
    pub device_table_full: u64,
    /// Devices removed before their time to make room for a newcomer, cumulative.
    pub devices_evicted: u64,
    /// Frames that could not be decoded far enough to attribute them (too short, bad headers).
    pub malformed: u64,
    /// Frames between a device and the router without a readable IP header (counted local).
    pub unclassified: u64,
    /// Every capture interface (INTERFACE's list, in order; live only). The fields above
    /// `packetsSeen` describe the first one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<InterfaceCapture>,
    /// Flow offloading detected on this host (forwarded traffic bypasses the capture); null = unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offload: Option<OffloadInfo>,
}

/// One capture interface's state and counters.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InterfaceCapture {
    pub interface: String,
    pub mode: CaptureMode,
    pub off_reason: Option<String>,
    pub packets_seen: u64,
    pub bytes_seen: u64,
    pub packets_dropped: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OffloadInfo {
    pub detected: bool,
    pub software: bool,
    pub hardware: bool,
    pub offloaded_flows: u64,
}

impl CaptureInfo {
    pub fn off(interface: Option<String>, reason: impl Into<String>, capacity: usize) -> Self {
        CaptureInfo {
            mode: CaptureMode::Off,
            interface,
            off_reason: Some(reason.into()),
            packets_seen: 0,
            packets_dropped: 0,
            devices_tracked: 0,
            device_table_capacity: capacity as u64,
            device_table_full: 0,
            devices_evicted: 0,
            malformed: 0,
            unclassified: 0,
            interfaces: Vec::new(),
            offload: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    pub cpu: Cpu,
    pub memory: Memory,
    pub disk: Vec<Disk>,
    pub uptime_seconds: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cpu {
    pub percent: f64,
    pub cores: u32,
    pub load_average: [f64; 3],
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Memory {
    pub total_bytes: u64,
    pub used_bytes: u64,
    pub free_bytes: u64,
    pub available_bytes: u64,
    pub percent_used: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Disk {
    pub mount_point: String,
    pub device: String,
    pub fs_type: String,
    pub total_bytes: u64,
    pub used_bytes: u64,
    pub free_bytes: u64,
    pub percent_used: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Network {
    pub collection_start_time: String,
    pub collection_end_time: String,
    pub collection_duration_seconds: f64,
    pub interfaces: Vec<Interface>,
    pub connected_devices: Vec<Device>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkStatus {
    Up,
    Down,
    Unknown,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Interface {
    pub name: String,
    pub mac: Option<String>,
    pub status: LinkStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    pub ipv4: Vec<String>,
    pub ipv6: Vec<String>,
    pub speed_mbps: Option<u64>,
    pub rx_bytes_total: u64,
    pub tx_bytes_total: u64,
    pub rx_packets_total: u64,
    pub tx_packets_total: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
    pub rx_rate_bps: u64,
    pub tx_rate_bps: u64,
    pub utilization_percent: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceStatus {
    Active,
    Inactive,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    pub ip: Option<String>,
    pub ipv6: Vec<String>,
    /// The capture interface it was seen on (live; absent in replay).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    pub mac: String,
    pub device_name: Option<String>,
    pub vlan: Option<u16>,
    pub status: DeviceStatus,
    pub first_seen: String,
    pub time_checked: String,
    pub bandwidth: Bandwidth,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bandwidth {
    pub rx_bytes_total: u64,
    pub tx_bytes_total: u64,
    pub rx_packets_total: u64,
    pub tx_packets_total: u64,
    pub rx_rate_bps: u64,
    pub tx_rate_bps: u64,
    pub utilization_percent: Option<f64>,
    /// The part exchanged with the internet (README, accounting rules: "Internet and local").
    pub internet_rx_bytes_total: u64,
    pub internet_tx_bytes_total: u64,
    pub internet_rx_packets_total: u64,
    pub internet_tx_packets_total: u64,
    pub internet_rx_rate_bps: u64,
    pub internet_tx_rate_bps: u64,
}

/// Rounds a percentage to two decimals and clamps it into 0..=100 (the schema's bounds), so a
/// rounding error or a counter glitch can never produce an invalid payload.
pub fn percent(value: f64) -> f64 {
    if !value.is_finite() || value <= 0.0 {
        return 0.0;
    }
    ((value * 100.0).round() / 100.0).min(100.0)
}

/// The snapshot as indented JSON, exactly as `serde_json::to_string_pretty` writes it, but by
/// re-indenting the compact text: one serializer instead of two (8 kB less on mipsel).
pub fn to_pretty_json(snap: &Snapshot) -> serde_json::Result<String> {
    serde_json::to_string(snap).map(|s| reindent(&s))
}

/// Indents compact JSON (two spaces, `": "`, empty `[]`/`{}` kept on one line).
fn reindent(compact: &str) -> String {
    let b = compact.as_bytes();
    let mut out = Vec::with_capacity(b.len() * 2);
    let mut depth = 0usize;
    let newline = |out: &mut Vec<u8>, depth: usize| {
        out.push(b'\n');
        out.resize(out.len() + 2 * depth, b' ');
    };
    let (mut in_str, mut escaped) = (false, false);
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        i += 1;
        if in_str {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_str = false;
            }
            continue;
        }
        match c {
            b'"' => {
                in_str = true;
                out.push(c);
            }
            b'{' | b'[' => {
                out.push(c);
                if matches!(b.get(i), Some(b'}' | b']')) {
                    out.push(b[i]);
                    i += 1;
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            b',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            b':' => out.extend_from_slice(b": "),
            _ => out.push(c),
        }
    }
    // Only ASCII bytes were inserted between whole UTF-8 sequences.
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reindent_equals_serde_json_pretty() {
        let v = serde_json::json!({
            "a": [], "b": {}, "c": [1, 2.5, -3e-7, null, true],
            "s": "x{y}[z],:\"q\" \\ \\\" é \u{1}",
            "n": {"m": [{"k": [[]]}, {}], "e": ""},
            "u": "\\"
        });
        let compact = serde_json::to_string(&v).unwrap();
        assert_eq!(
            reindent(&compact),
            serde_json::to_string_pretty(&v).unwrap()
        );
        assert_eq!(reindent("[]"), "[]");
        assert_eq!(reindent("\"a\""), "\"a\"");
    }

    #[test]
    fn percent_is_clamped_and_rounded() {
        assert_eq!(percent(-3.0), 0.0);
        assert_eq!(percent(f64::NAN), 0.0);
        assert_eq!(percent(100.0001), 100.0);
        assert_eq!(percent(12.3456), 12.35);
    }
}
