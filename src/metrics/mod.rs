//! Prometheus exposition: the text format ([`exposition`]), the `/metrics` listener
//! ([`server`]) that the agent's poll loop drives when METRICS_LISTEN is set, and [`page`],
//! which reads the live state (device table, capture, shipping) into a page.

pub mod exposition;
pub mod server;

use std::time::{Instant, SystemTime};

use exposition::{AgentSample, CaptureSample, DeviceSample};

use crate::monitor::Monitor;

/// What shipping contributes to the page.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shipping {
    /// Snapshots waiting for REST.
    pub backlog: u64,
    /// Snapshots dropped because the backlog was full.
    pub lost: u64,
    /// When a platform last accepted a snapshot.
    pub last_delivery: Option<SystemTime>,
}

fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Renders the page from the live state at `now` (the active status is on the table's clock).
pub fn page(out: &mut Vec<u8>, mon: &Monitor, ship: Shipping, started: SystemTime, now: Instant) {
    let table = &mon.table;
    let counters = table.counters();
    let agent = AgentSample {
        version: crate::VERSION,
        start_time_ms: unix_millis(started),
        devices_tracked: table.len() as u64,
        device_table_capacity: table.capacity() as u64,
        device_table_full: counters.table_full,
        devices_evicted: counters.evicted,
        devices_expired: counters.expired,
        malformed: counters.malformed,
        unclassified: counters.unclassified,
        backlog: ship.backlog,
        lost: ship.lost,
        last_delivery_ms: ship.last_delivery.map(unix_millis),
    };
    let ports = mon.ports();
    let name = |port: u8| {
        ports
            .get(port as usize)
            .and_then(|p| p.capture.interface())
            .unwrap_or("")
    };
    let interfaces = || {
        ports.iter().map(|p| CaptureSample {
            interface: p.capture.interface().unwrap_or(""),
            up: p.capture.off_reason().is_none(),
            packets_seen: p.capture.frames,
            bytes_seen: p.bytes,
            packets_dropped: p.capture.dropped,
        })
    };
    let now_ns = mon.table_now(now);
    let devices = || {
        table.iter().map(|e| DeviceSample {
            interface: name(e.port),
            mac: e.mac,
            ip: e.ipv4(),
            name: e.name.as_str(),
            active: table.status(e, now_ns) == crate::snapshot::DeviceStatus::Active,
            rx_bytes: e.rx_bytes,
            tx_bytes: e.tx_bytes,
            rx_packets: e.rx_packets,
            tx_packets: e.tx_packets,
            internet_rx_bytes: e.internet.rx_bytes,
            internet_tx_bytes: e.internet.tx_bytes,
            internet_rx_packets: e.internet.rx_packets,
            internet_tx_packets: e.internet.tx_packets,
        })
    };
    exposition::render(out, &agent, interfaces, devices);
}
