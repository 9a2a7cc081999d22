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

/// One snapshot: what the agent measured over one cycle.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// Always [`MESSAGE_TYPE`].
    pub message_type: &'static str,
    /// Always [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// SERVER_ID (default: the hostname).
    pub server_id: String,
    /// SERVER_IP (default: the capture interface's IPv4); null when unknown.
    pub server_ip: Option<String>,
    /// End of the collection window, UTC `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub snapshot_time: String,
    /// The agent itself: version, run identity, capture and delivery state.
    pub agent: AgentInfo,
    /// System metrics from /proc.
    pub metrics: Metrics,
    /// Interfaces and LAN devices over the window.
    pub network: Network,
}

/// `messageType` of every snapshot.
pub const MESSAGE_TYPE: &str = "realtimeSnapshot";
/// `schemaVersion` of this payload format.
pub const SCHEMA_VERSION: u32 = 1;

/// `agent`: who sent the snapshot and the state of capture and delivery.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentInfo {
    /// The agent's version (Cargo.toml).
    pub version: &'static str,
    /// Random per process start; with `seq` it identifies a snapshot, so a receiver can drop
    /// retried duplicates.
    pub run_id: String,
    /// Snapshot number within this run, +1 per snapshot, never reused.
    pub seq: u64,
    /// When this process started (UTC).
    pub started_at: String,
    /// The capture and the device table.
    pub capture: CaptureInfo,
    /// Snapshots waiting for the REST endpoint.
    pub backlog: u64,
    /// Snapshots dropped because the backlog was full, cumulative.
    pub lost: u64,
}

/// Where the device counts come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptureMode {
    /// The AF_PACKET ring on the interface.
    Live,
    /// A capture file (`replay`).
    Replay,
    /// No capture; `offReason` says why.
    Off,
}

/// `agent.capture`: the capture source and the device table's counters.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CaptureInfo {
    /// Live, replay or off.
    pub mode: CaptureMode,
    /// The capture interface, when there is one.
    pub interface: Option<String>,
    /// Why capture is off (null while live).
    pub off_reason: Option<String>,
    /// Frames read and accounted, cumulative.
    pub packets_seen: u64,
    /// Frames the kernel dropped before the agent could read them (PACKET_STATISTICS),
    /// cumulative.
    pub packets_dropped: u64,
    /// Devices in the table now.
    pub devices_tracked: u64,
    /// DEVICE_TABLE_SIZE.
    pub device_table_capacity: u64,
    /// Frames whose new device found the table full, cumulative.
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

/// One capture interface's state and counters (`agent.capture.interfaces[]`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InterfaceCapture {
    /// The interface's name.
    pub interface: String,
    /// `live` or `off`.
    pub mode: CaptureMode,
    /// Why its capture is off (null while live).
    pub off_reason: Option<String>,
    /// Frames read from its ring, cumulative.
    pub packets_seen: u64,
    /// Their bytes (original lengths), cumulative.
    pub bytes_seen: u64,
    /// Frames the kernel dropped on its ring (PACKET_STATISTICS), cumulative.
    pub packets_dropped: u64,
}

/// `agent.capture.offload`: flow offloading on this host.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OffloadInfo {
    /// Offloading is on (software or hardware), or offloaded flows were seen.
    pub detected: bool,
    /// Software flow offloading (`flow_offloading` / `[OFFLOAD]` entries).
    pub software: bool,
    /// Hardware flow offloading (`flow_offloading_hw` / `[HW_OFFLOAD]` entries).
    pub hardware: bool,
    /// Offloaded flows in /proc/net/nf_conntrack at the last look; None (null) when it could
    /// not be read (it is root-only: an agent that dropped root knows only the firewall
    /// config's options).
    pub offloaded_flows: Option<u64>,
}

impl CaptureInfo {
    /// The capture part of a snapshot taken without capture, with the reason.
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

/// `metrics`: the host's system metrics.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    /// CPU use and load.
    pub cpu: Cpu,
    /// Memory from /proc/meminfo.
    pub memory: Memory,
    /// Filesystems as `df` shows them.
    pub disk: Vec<Disk>,
    /// Seconds since boot (/proc/uptime).
    pub uptime_seconds: u64,
}

/// `metrics.cpu`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cpu {
    /// Busy share of all CPUs over the window (idle = idle + iowait), 0..100.
    pub percent: f64,
    /// Number of CPUs (/proc/stat `cpuN` lines).
    pub cores: u32,
    /// 1, 5 and 15 minute load averages (/proc/loadavg).
    pub load_average: [f64; 3],
}

/// `metrics.memory`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Memory {
    /// MemTotal.
    pub total_bytes: u64,
    /// `total_bytes - available_bytes`.
    pub used_bytes: u64,
    /// `total_bytes - used_bytes`.
    pub free_bytes: u64,
    /// MemAvailable (MemFree + Buffers + Cached on kernels without it).
    pub available_bytes: u64,
    /// `used_bytes` over `total_bytes`, 0..100.
    pub percent_used: f64,
}

/// One filesystem of `metrics.disk`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Disk {
    /// Where it is mounted.
    pub mount_point: String,
    /// The mounted device (or source).
    pub device: String,
    /// Filesystem type.
    pub fs_type: String,
    /// Size (statvfs `f_blocks`).
    pub total_bytes: u64,
    /// Bytes in use (`f_blocks - f_bfree`).
    pub used_bytes: u64,
    /// Bytes available to an unprivileged user (`f_bavail`), as `df` shows.
    pub free_bytes: u64,
    /// Used share as `df` computes it, 0..100.
    pub percent_used: f64,
}

/// `network`: the window, the interfaces and the LAN devices.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Network {
    /// Start of the window the rates cover (UTC).
    pub collection_start_time: String,
    /// End of the window (UTC).
    pub collection_end_time: String,
    /// Length of the window in seconds.
    pub collection_duration_seconds: f64,
    /// Every interface of /proc/net/dev.
    pub interfaces: Vec<Interface>,
    /// The LAN devices of the device table.
    pub connected_devices: Vec<Device>,
}

/// An interface's operational state (/sys/class/net/NAME/operstate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkStatus {
    /// `up`.
    Up,
    /// `down` (or lower layer down, dormant, ...).
    Down,
    /// `unknown` (e.g. loopback, tunnels).
    Unknown,
}

/// One interface of `network.interfaces`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Interface {
    /// Interface name.
    pub name: String,
    /// Hardware address, when it has one.
    pub mac: Option<String>,
    /// Operational state.
    pub status: LinkStatus,
    /// MTU, when readable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// IPv4 addresses (getifaddrs).
    pub ipv4: Vec<String>,
    /// IPv6 addresses (getifaddrs).
    pub ipv6: Vec<String>,
    /// Link speed; null where the kernel does not know it (wireless, virtual).
    pub speed_mbps: Option<u64>,
    /// Bytes received, cumulative (/proc/net/dev).
    pub rx_bytes_total: u64,
    /// Bytes sent, cumulative.
    pub tx_bytes_total: u64,
    /// Packets received, cumulative.
    pub rx_packets_total: u64,
    /// Packets sent, cumulative.
    pub tx_packets_total: u64,
    /// Receive errors, cumulative.
    pub rx_errors: u64,
    /// Transmit errors, cumulative.
    pub tx_errors: u64,
    /// Received packets dropped, cumulative.
    pub rx_dropped: u64,
    /// Transmitted packets dropped, cumulative.
    pub tx_dropped: u64,
    /// Receive rate over the window, bits/s.
    pub rx_rate_bps: u64,
    /// Transmit rate over the window, bits/s.
    pub tx_rate_bps: u64,
    /// max(rx, tx) rate over the link speed; null where the speed is unknown.
    pub utilization_percent: Option<f64>,
}

/// Whether a device showed a sign of life lately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceStatus {
    /// A sign of life within DEVICE_TIMEOUT cycles.
    Active,
    /// No sign of life for DEVICE_TIMEOUT cycles.
    Inactive,
}

/// One LAN device of `network.connectedDevices` (see docs/accounting.md).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    /// Primary IPv4 address; null for a device seen only over IPv6.
    pub ip: Option<String>,
    /// IPv6 addresses (NDP, link-local sources), at most four.
    pub ipv6: Vec<String>,
    /// The capture interface it was seen on (live; absent in replay).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// The device's MAC, `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// Name from leases, /etc/ethers, /etc/hosts or DHCP option 12.
    pub device_name: Option<String>,
    /// VLAN of the last frame the device sent.
    pub vlan: Option<u16>,
    /// Active or inactive.
    pub status: DeviceStatus,
    /// When the table first saw the device (UTC).
    pub first_seen: String,
    /// When this entry was produced: the end of the window (UTC).
    pub time_checked: String,
    /// Traffic counters and rates.
    pub bandwidth: Bandwidth,
}

/// A device's traffic.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bandwidth {
    /// Bytes of unicast frames addressed to the device, cumulative.
    pub rx_bytes_total: u64,
    /// Bytes of frames the device sent, cumulative.
    pub tx_bytes_total: u64,
    /// Unicast frames addressed to the device, cumulative.
    pub rx_packets_total: u64,
    /// Frames the device sent, cumulative.
    pub tx_packets_total: u64,
    /// Receive rate over the last cycle, bits/s.
    pub rx_rate_bps: u64,
    /// Transmit rate over the last cycle, bits/s.
    pub tx_rate_bps: u64,
    /// Always null: a device's link speed is not known (the field is kept for the payload format).
    pub utilization_percent: Option<f64>,
    /// The internet part of `rx_bytes_total` (docs/accounting.md, "Internet and local").
    pub internet_rx_bytes_total: u64,
    /// The internet part of `tx_bytes_total`.
    pub internet_tx_bytes_total: u64,
    /// The internet part of `rx_packets_total`.
    pub internet_rx_packets_total: u64,
    /// The internet part of `tx_packets_total`.
    pub internet_tx_packets_total: u64,
    /// The internet part of `rx_rate_bps`.
    pub internet_rx_rate_bps: u64,
    /// The internet part of `tx_rate_bps`.
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
