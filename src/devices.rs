//! The device table: per-device accounting in memory fixed at start-up.
//!
//! Public API (stable; the live capture and discovery build on it):
//! - [`TableConfig`] (capacity, cycle, timeout in cycles, expiry, optional IPv4 range) and
//!   [`DeviceTable::new`], which allocates everything the table will ever use.
//! - Per frame: [`DeviceTable::observe`] (decode + account) or [`DeviceTable::account`] (an
//!   [`Observation`] from `crate::decode`). Neither allocates nor panics.
//! - From discovery: [`DeviceTable::learn_arp_reply`] (an ARP reply to our scan: IPv4 binding
//!   and a sign of life), [`DeviceTable::set_name`] (names from leases/ethers/hosts; they win
//!   over DHCP-sniffed names), [`DeviceTable::set_excluded`] (the agent's own MACs).
//! - Per cycle: [`DeviceTable::end_cycle`] (rates over the cycle, expiry), then
//!   [`DeviceTable::devices`] (`Vec<snapshot::Device>`, table order) and
//!   [`DeviceTable::capture_info`] (`snapshot::CaptureInfo` counters).
//! - Inspection: [`DeviceTable::get`], [`DeviceTable::iter`], [`DeviceTable::counters`].
//!
//! Time is always an argument (nanoseconds since the Unix epoch: the frame's timestamp, or the
//! wall clock the caller passes), so the table behaves the same live, in replay and in tests.
//!
//! Accounting rules (also in README.md, "Accounting rules"):
//! - Bytes are the frame's original length (`Observation::len`), never the captured length.
//! - A device is a unicast MAC (I/G bit clear, not all-zero) seen as the source or destination
//!   of the outermost Ethernet header, except the excluded (own) MACs.
//! - tx = frames the MAC sent; rx = frames addressed to it. Broadcast/multicast frames are tx of
//!   their sender and rx of nobody. A frame whose source equals its destination is both.
//! - Frames too short for two MACs are `malformed` and attributed to nobody.
//! - Signs of life (refresh `last_seen`): a frame sent by the device, an ARP reply from it, an
//!   NDP/DHCP message naming it. Being addressed is not a sign of life (anyone can send to a
//!   MAC that left). Status is active while `now - last_seen <= timeout_cycles * cycle`.
//! - IPv4: the most recent of an ARP sender binding or, when a range is set, an IPv4 source
//!   inside it; with a range set ARP bindings outside it are ignored too. IPv6: up to
//!   [`MAX_IPV6`] addresses (oldest replaced) from NDP link-layer options and link-local
//!   (fe80::/10) sources. VLAN: the frame's VLAN (see `crate::decode`) of the last frame the
//!   device sent.
//! - A device unseen for `expire` is removed at the next `end_cycle`. When the table is full, a
//!   new MAC evicts the device unseen the longest if that one has expired; otherwise the new
//!   MAC is not tracked and `table_full` counts the frame.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::addr::{format_mac, Ipv4Cidr};
use crate::decode::{self, is_unicast, Mac, Observation};
use crate::frame::Frame;
use crate::locality::{self, Internet, LocalNets, Scope};
use crate::snapshot::{self, Bandwidth, CaptureInfo, CaptureMode, DeviceStatus};

/// IPv6 addresses kept per device.
pub const MAX_IPV6: usize = 4;
/// Longest device name kept (bytes; longer names are cut at a character boundary).
pub const NAME_MAX: usize = 64;
/// Own MACs that can be excluded.
pub const MAX_EXCLUDED: usize = 16;
/// The largest capacity the index can address.
pub const MAX_CAPACITY: usize = 65_536;

const NS: u64 = 1_000_000_000;

/// What the table needs to know, fixed at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableConfig {
    /// Devices tracked at most (DEVICE_TABLE_SIZE), 1..=65536.
    pub capacity: usize,
    /// Cycle length in nanoseconds (CYCLE_TIME).
    pub cycle_ns: u64,
    /// Cycles without a sign of life before a device is inactive (DEVICE_TIMEOUT).
    pub timeout_cycles: u32,
    /// Nanoseconds without a sign of life before a device is forgotten (DEVICE_EXPIRE).
    pub expire_ns: u64,
    /// NETWORK_RANGE: when set, only IPv4 addresses inside it are learned.
    pub range: Option<Ipv4Cidr>,
}

impl Default for TableConfig {
    fn default() -> Self {
        TableConfig {
            capacity: 256,
            cycle_ns: 5 * NS,
            timeout_cycles: 3,
            expire_ns: 3600 * NS,
            range: None,
        }
    }
}

/// One tracked device. Fields are public for reading; only the table changes them.
#[derive(Debug, Clone)]
pub struct Entry {
    pub mac: Mac,
    pub vlan: Option<u16>,
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: heapless::Vec<Ipv6Addr, MAX_IPV6>,
    pub name: heapless::String<NAME_MAX>,
    /// The name came from discovery (leases, hosts) and is not replaced by DHCP sniffing.
    pub name_fixed: bool,
    pub first_seen: u64,
    pub last_seen: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
    /// Totals at the start of the current cycle, for the rates.
    cycle_rx_bytes: u64,
    cycle_tx_bytes: u64,
    /// Bits per second over the last finished cycle.
    pub rx_rate_bps: u64,
    pub tx_rate_bps: u64,
    /// The part of the traffic exchanged with the internet (see `crate::locality`).
    pub internet: Internet,
}

impl Entry {
    fn new(mac: Mac, now: u64) -> Entry {
        Entry {
            mac,
            vlan: None,
            ipv4: None,
            ipv6: heapless::Vec::new(),
            name: heapless::String::new(),
            name_fixed: false,
            first_seen: now,
            last_seen: now,
            rx_bytes: 0,
            tx_bytes: 0,
            rx_packets: 0,
            tx_packets: 0,
            cycle_rx_bytes: 0,
            cycle_tx_bytes: 0,
            rx_rate_bps: 0,
            tx_rate_bps: 0,
            internet: Internet::default(),
        }
    }

    fn seen(&mut self, now: u64) {
        if now > self.last_seen {
            self.last_seen = now;
        }
    }

    fn add_ipv6(&mut self, ip: Ipv6Addr) {
        if self.ipv6.contains(&ip) {
            return;
        }
        if self.ipv6.is_full() {
            self.ipv6.remove(0);
        }
        let _ = self.ipv6.push(ip);
    }

    fn set_name(&mut self, name: &str) {
        self.name.clear();
        let mut end = name.len().min(NAME_MAX);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        let _ = self.name.push_str(&name[..end]);
    }
}

/// Cumulative counters (they never decrease).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames accounted.
    pub packets_seen: u64,
    /// Their bytes (original lengths).
    pub bytes_seen: u64,
    /// Frames that could not be decoded far enough (see `crate::decode`).
    pub malformed: u64,
    /// Frames whose new device found the table full.
    pub table_full: u64,
    /// Devices removed because they expired (at a cycle end or to make room).
    pub expired: u64,
    /// Frames between a device and the router without a readable IP header (counted local).
    pub unclassified: u64,
}

/// Index slots: MAC (48 bits) << 16 | entry index (16 bits); EMPTY is never a valid slot
/// because ff:ff:ff:ff:ff:ff is not unicast.
const EMPTY: u64 = u64::MAX;

#[inline]
fn key(mac: &Mac) -> u64 {
    (mac[0] as u64) << 40
        | (mac[1] as u64) << 32
        | (mac[2] as u64) << 24
        | (mac[3] as u64) << 16
        | (mac[4] as u64) << 8
        | mac[5] as u64
}

/// The fixed-size device table. See the module doc.
pub struct DeviceTable {
    cfg: TableConfig,
    /// Dense: `entries.len()` devices, capacity reserved once, never grown past it.
    entries: Vec<Entry>,
    /// Open addressing, linear probing, backward-shift deletion; 2..4 slots per device.
    index: Box<[u64]>,
    shift: u32,
    excluded: heapless::Vec<Mac, MAX_EXCLUDED>,
    /// The local ranges: a frame through the router (an excluded MAC) to or from outside them
    /// is internet traffic.
    local: LocalNets,
    counters: Counters,
    /// Start of the current cycle (None until the first frame or `end_cycle`).
    cycle_start: Option<u64>,
    /// While the table is full of unexpired devices: the earliest time one can expire.
    full_until: u64,
}

impl DeviceTable {
    /// Allocates the table; `cfg.capacity` is clamped into 1..=65536.
    pub fn new(mut cfg: TableConfig) -> DeviceTable {
        cfg.capacity = cfg.capacity.clamp(1, MAX_CAPACITY);
        let slots = (cfg.capacity * 2).next_power_of_two().max(8);
        DeviceTable {
            entries: Vec::with_capacity(cfg.capacity),
            index: vec![EMPTY; slots].into_boxed_slice(),
            shift: 64 - slots.trailing_zeros(),
            excluded: heapless::Vec::new(),
            local: LocalNets::new(),
            counters: Counters::default(),
            cycle_start: None,
            full_until: 0,
            cfg,
        }
    }

    pub fn config(&self) -> &TableConfig {
        &self.cfg
    }
    pub fn capacity(&self) -> usize {
        self.cfg.capacity
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub fn counters(&self) -> Counters {
        self.counters
    }
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }
    pub fn get(&self, mac: &Mac) -> Option<&Entry> {
        self.find(mac)
            .ok()
            .map(|s| &self.entries[self.index[s] as u16 as usize])
    }

    /// MACs never tracked (the agent's own interfaces). At most [`MAX_EXCLUDED`]; already
    /// tracked ones are removed.
    pub fn set_excluded(&mut self, macs: &[Mac]) {
        self.excluded.clear();
        for m in macs.iter().take(MAX_EXCLUDED) {
            let _ = self.excluded.push(*m);
            if let Ok(s) = self.find(m) {
                let i = self.index[s] as u16 as usize;
                self.remove(i);
            }
        }
    }

    /// The local ranges for the internet/local split (`crate::locality`).
    pub fn set_local_nets(&mut self, nets: LocalNets) {
        self.local = nets;
    }

    pub fn local_nets(&self) -> &LocalNets {
        &self.local
    }

    #[inline]
    fn home(&self, k: u64) -> usize {
        (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    /// Ok(slot holding mac) or Err(empty slot where it would go).
    #[inline]
    fn find(&self, mac: &Mac) -> Result<usize, usize> {
        let k = key(mac);
        let mask = self.index.len() - 1;
        let mut s = self.home(k);
        loop {
            let v = self.index[s];
            if v == EMPTY {
                return Err(s);
            }
            if v >> 16 == k {
                return Ok(s);
            }
            s = (s + 1) & mask;
        }
    }

    /// The entry index for `mac`, inserting it when there is room. None: excluded or full.
    #[inline]
    fn slot(&mut self, mac: &Mac, now: u64) -> Option<usize> {
        match self.find(mac) {
            Ok(s) => Some(self.index[s] as u16 as usize),
            Err(s) => self.insert(mac, s, now),
        }
    }

    #[cold]
    fn insert(&mut self, mac: &Mac, mut s: usize, now: u64) -> Option<usize> {
        if self.excluded.contains(mac) {
            return None;
        }
        if self.entries.len() >= self.cfg.capacity {
            if now < self.full_until || !self.evict_expired(now) {
                self.counters.table_full += 1;
                return None;
            }
            // Removing shifted the index: find the empty slot again.
            s = match self.find(mac) {
                Err(s) => s,
                Ok(_) => unreachable_slot(),
            };
        }
        let i = self.entries.len();
        self.entries.push(Entry::new(*mac, now));
        self.index[s] = key(mac) << 16 | i as u64;
        Some(i)
    }

    /// Removes the device unseen the longest if it has expired; otherwise remembers when the
    /// first one can expire, so a flood of new MACs does not scan the table per frame.
    fn evict_expired(&mut self, now: u64) -> bool {
        let Some((i, oldest)) = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (i, e.last_seen))
            .min_by_key(|&(_, t)| t)
        else {
            return false;
        };
        if now.saturating_sub(oldest) >= self.cfg.expire_ns {
            self.remove(i);
            self.counters.expired += 1;
            true
        } else {
            self.full_until = oldest.saturating_add(self.cfg.expire_ns);
            false
        }
    }

    /// Removes entry `i` (swap-remove; the moved entry's slot is updated).
    fn remove(&mut self, i: usize) {
        let mac = self.entries[i].mac;
        if let Ok(s) = self.find(&mac) {
            self.delete_slot(s);
        }
        self.entries.swap_remove(i);
        if i < self.entries.len() {
            let moved = self.entries[i].mac;
            if let Ok(s) = self.find(&moved) {
                self.index[s] = key(&moved) << 16 | i as u64;
            }
        }
    }

    /// Backward-shift deletion for linear probing.
    fn delete_slot(&mut self, mut hole: usize) {
        let mask = self.index.len() - 1;
        self.index[hole] = EMPTY;
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let v = self.index[j];
            if v == EMPTY {
                return;
            }
            let home = self.home(v >> 16);
            // The entry at j may move to the hole when its home is not cyclically in (hole, j].
            let stays = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !stays {
                self.index[hole] = v;
                self.index[j] = EMPTY;
                hole = j;
            }
        }
    }

    /// Decode + account one frame.
    #[inline]
    pub fn observe(&mut self, frame: &Frame) {
        let obs = decode::decode(frame);
        self.account(&obs);
    }

    /// Accounts one decoded frame at time `obs.ts`.
    #[inline]
    pub fn account(&mut self, obs: &Observation) {
        let now = obs.ts;
        let len = obs.len as u64;
        self.counters.packets_seen += 1;
        self.counters.bytes_seen += len;
        if obs.malformed {
            self.counters.malformed += 1;
        }
        if self.cycle_start.is_none() {
            self.cycle_start = Some(now);
        }
        let scope = locality::classify(obs, &self.excluded, &self.local);
        if scope == Scope::Unclassified {
            self.counters.unclassified += 1;
        }
        if let Some(src) = obs.src.as_ref().filter(|m| is_unicast(m)) {
            if let Some(i) = self.slot(src, now) {
                let range = self.cfg.range;
                let e = &mut self.entries[i];
                e.tx_bytes += len;
                e.tx_packets += 1;
                if scope == Scope::InternetTx {
                    e.internet.add_tx(len);
                }
                e.seen(now);
                if obs.vlan.is_some() {
                    e.vlan = obs.vlan;
                }
                if let (Some(ip), Some(r)) = (obs.ipv4_src, range) {
                    if r.contains(ip) && !ip.is_unspecified() {
                        e.ipv4 = Some(ip);
                    }
                }
                if let Some(ip) = obs.ipv6_src {
                    if ip.segments()[0] & 0xffc0 == 0xfe80 {
                        e.add_ipv6(ip);
                    }
                }
            }
        }
        if let Some(dst) = obs.dst.as_ref().filter(|m| is_unicast(m)) {
            if let Some(i) = self.slot(dst, now) {
                let e = &mut self.entries[i];
                e.rx_bytes += len;
                e.rx_packets += 1;
                if scope == Scope::InternetRx {
                    e.internet.add_rx(len);
                }
            }
        }
        if obs.arp.is_some() || obs.ndp.is_some() || obs.dhcp.is_some() {
            self.bindings(obs);
        }
    }

    #[cold]
    fn bindings(&mut self, obs: &Observation) {
        let now = obs.ts;
        if let Some(a) = obs.arp {
            if self.range_allows(a.ip) {
                if let Ok(s) = self.find(&a.mac) {
                    let e = &mut self.entries[self.index[s] as u16 as usize];
                    e.ipv4 = Some(a.ip);
                    e.seen(now);
                }
            }
        }
        if let Some(n) = obs.ndp {
            if let Ok(s) = self.find(&n.mac) {
                let e = &mut self.entries[self.index[s] as u16 as usize];
                e.add_ipv6(n.ip);
                e.seen(now);
            }
        }
        if let Some(d) = obs.dhcp {
            if let Ok(s) = self.find(&d.mac) {
                let e = &mut self.entries[self.index[s] as u16 as usize];
                e.seen(now);
                if !e.name_fixed {
                    if let Some(name) = clean_name(d.name) {
                        e.set_name(name);
                    }
                }
            }
        }
    }

    fn range_allows(&self, ip: Ipv4Addr) -> bool {
        self.cfg.range.map_or(true, |r| r.contains(ip))
    }

    /// An ARP reply to the agent's scan (discovery): the IPv4 binding and a sign of life.
    /// Creates the device if there is room. Returns false when it is not tracked.
    pub fn learn_arp_reply(&mut self, mac: Mac, ip: Ipv4Addr, now: u64) -> bool {
        if !is_unicast(&mac) {
            return false;
        }
        let Some(i) = self.slot(&mac, now) else {
            return false;
        };
        let allowed = self.range_allows(ip);
        let e = &mut self.entries[i];
        if allowed && !ip.is_unspecified() {
            e.ipv4 = Some(ip);
        }
        e.seen(now);
        true
    }

    /// A name from discovery (leases, ethers, hosts) for a tracked device; it wins over names
    /// sniffed from DHCP. Returns false when the MAC is not tracked.
    pub fn set_name(&mut self, mac: &Mac, name: &str) -> bool {
        let Ok(s) = self.find(mac) else {
            return false;
        };
        let e = &mut self.entries[self.index[s] as u16 as usize];
        e.set_name(name.trim());
        e.name_fixed = !e.name.is_empty();
        true
    }

    /// Ends the cycle at `now`: rates over the cycle, removal of expired devices.
    pub fn end_cycle(&mut self, now: u64) {
        let start = self.cycle_start.unwrap_or(now);
        let dt = now.saturating_sub(start);
        for e in &mut self.entries {
            let rx = e.rx_bytes - e.cycle_rx_bytes;
            let tx = e.tx_bytes - e.cycle_tx_bytes;
            e.rx_rate_bps = rate(rx, dt);
            e.tx_rate_bps = rate(tx, dt);
            e.cycle_rx_bytes = e.rx_bytes;
            e.cycle_tx_bytes = e.tx_bytes;
            e.internet.end_cycle(dt, rate);
        }
        let mut i = 0;
        while i < self.entries.len() {
            if now.saturating_sub(self.entries[i].last_seen) >= self.cfg.expire_ns {
                self.remove(i);
                self.counters.expired += 1;
            } else {
                i += 1;
            }
        }
        self.full_until = 0;
        self.cycle_start = Some(now);
    }

    /// Active while seen within `timeout_cycles` cycles of `now`.
    pub fn status(&self, e: &Entry, now: u64) -> DeviceStatus {
        let timeout = self
            .cfg
            .cycle_ns
            .saturating_mul(self.cfg.timeout_cycles as u64);
        if now.saturating_sub(e.last_seen) <= timeout {
            DeviceStatus::Active
        } else {
            DeviceStatus::Inactive
        }
    }

    /// The devices for a snapshot taken at `now` (table order; allocates: once per cycle).
    pub fn devices(&self, now: u64) -> Vec<snapshot::Device> {
        let checked = crate::timefmt::format_millis(now / 1_000_000);
        self.entries
            .iter()
            .map(|e| snapshot::Device {
                ip: e.ipv4.map(|ip| ip.to_string()),
                ipv6: e.ipv6.iter().map(|ip| ip.to_string()).collect(),
                mac: format_mac(&e.mac),
                device_name: (!e.name.is_empty()).then(|| e.name.to_string()),
                vlan: e.vlan,
                status: self.status(e, now),
                first_seen: crate::timefmt::format_millis(e.first_seen / 1_000_000),
                time_checked: checked.clone(),
                bandwidth: Bandwidth {
                    rx_bytes_total: e.rx_bytes,
                    tx_bytes_total: e.tx_bytes,
                    rx_packets_total: e.rx_packets,
                    tx_packets_total: e.tx_packets,
                    rx_rate_bps: e.rx_rate_bps,
                    tx_rate_bps: e.tx_rate_bps,
                    utilization_percent: None,
                    internet_rx_bytes_total: e.internet.rx_bytes,
                    internet_tx_bytes_total: e.internet.tx_bytes,
                    internet_rx_packets_total: e.internet.rx_packets,
                    internet_tx_packets_total: e.internet.tx_packets,
                    internet_rx_rate_bps: e.internet.rx_rate_bps,
                    internet_tx_rate_bps: e.internet.tx_rate_bps,
                },
            })
            .collect()
    }

    /// `agent.capture` for a snapshot; `dropped` comes from the source (PACKET_STATISTICS).
    pub fn capture_info(
        &self,
        mode: CaptureMode,
        interface: Option<String>,
        dropped: u64,
    ) -> CaptureInfo {
        CaptureInfo {
            mode,
            interface,
            off_reason: None,
            packets_seen: self.counters.packets_seen,
            packets_dropped: dropped,
            devices_tracked: self.entries.len() as u64,
            device_table_capacity: self.cfg.capacity as u64,
            device_table_full: self.counters.table_full,
            malformed: self.counters.malformed,
            unclassified: self.counters.unclassified,
            offload: None,
        }
    }
}

#[cold]
fn unreachable_slot() -> usize {
    // find() after a removal cannot return the MAC we are inserting: it was absent.
    0
}

fn rate(bytes: u64, dt_ns: u64) -> u64 {
    if dt_ns == 0 {
        return 0;
    }
    (bytes as u128 * 8 * NS as u128 / dt_ns as u128) as u64
}

/// A DHCP host name fit for the payload: UTF-8 without control characters.
fn clean_name(raw: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(raw).ok()?.trim_end_matches('\0').trim();
    (!s.is_empty() && !s.chars().any(char::is_control)).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::tests::{fixtures, A, B, BCAST};

    fn mac(n: u32) -> Mac {
        let b = n.to_be_bytes();
        [0x02, 0x00, b[0], b[1], b[2], b[3]]
    }

    fn obs(src: Mac, dst: Mac, len: u32, ts: u64) -> Observation<'static> {
        Observation {
            ts,
            len,
            src: Some(src),
            dst: Some(dst),
            ..Observation::default()
        }
    }

    fn cfg(capacity: usize) -> TableConfig {
        TableConfig {
            capacity,
            cycle_ns: 5 * NS,
            timeout_cycles: 3,
            expire_ns: 100 * NS,
            range: None,
        }
    }

    #[test]
    fn tx_rx_broadcast_and_self() {
        let mut t = DeviceTable::new(cfg(8));
        t.account(&obs(A, B, 100, NS));
        t.account(&obs(B, A, 60, NS));
        t.account(&obs(A, BCAST, 42, NS));
        t.account(&obs(B, B, 10, NS));
        t.account(&obs([0x01, 0, 0x5e, 0, 0, 1], A, 7, NS));
        let a = t.get(&A).unwrap();
        assert_eq!(
            (a.tx_bytes, a.tx_packets, a.rx_bytes, a.rx_packets),
            (142, 2, 67, 2)
        );
        let b = t.get(&B).unwrap();
        assert_eq!(
            (b.tx_bytes, b.tx_packets, b.rx_bytes, b.rx_packets),
            (70, 2, 110, 2)
        );
        assert_eq!(t.len(), 2);
        assert_eq!(t.counters().packets_seen, 5);
        assert_eq!(t.counters().bytes_seen, 219);
    }

    #[test]
    fn capacity_reached_counts_table_full() {
        let mut t = DeviceTable::new(cfg(4));
        for n in 0..10 {
            t.account(&obs(mac(n), BCAST, 60, NS));
        }
        assert_eq!(t.len(), 4);
        assert_eq!(t.counters().table_full, 6);
        for n in 0..4 {
            assert!(t.get(&mac(n)).is_some());
        }
        // Known devices still count while the table is full.
        t.account(&obs(mac(1), mac(2), 60, 2 * NS));
        assert_eq!(t.get(&mac(2)).unwrap().rx_bytes, 60);
        assert_eq!(t.counters().table_full, 6);
    }

    #[test]
    fn eviction_takes_the_longest_unseen_expired_device_first() {
        let mut t = DeviceTable::new(cfg(3));
        t.account(&obs(mac(1), BCAST, 1, 10 * NS));
        t.account(&obs(mac(2), BCAST, 1, 5 * NS)); // longest unseen
        t.account(&obs(mac(3), BCAST, 1, 20 * NS));
        // At 50 s nothing has expired (expire 100 s): not tracked.
        t.account(&obs(mac(4), BCAST, 1, 50 * NS));
        assert!(t.get(&mac(4)).is_none());
        assert_eq!(t.counters().table_full, 1);
        // At 106 s mac(2) (seen at 5) has expired: it goes, mac(1) (seen at 10) stays.
        t.account(&obs(mac(5), BCAST, 1, 106 * NS));
        assert!(t.get(&mac(2)).is_none());
        assert!(t.get(&mac(5)).is_some() && t.get(&mac(1)).is_some());
        // At 111 s mac(1) expired too.
        t.account(&obs(mac(6), BCAST, 1, 111 * NS));
        assert!(t.get(&mac(1)).is_none() && t.get(&mac(6)).is_some());
        assert_eq!(t.counters().expired, 2);
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn inactive_after_timeout_then_expired() {
        let mut t = DeviceTable::new(cfg(8));
        t.account(&obs(A, B, 100, 0));
        let e = t.get(&A).unwrap().clone();
        assert_eq!(t.status(&e, 15 * NS), DeviceStatus::Active);
        assert_eq!(t.status(&e, 15 * NS + 1), DeviceStatus::Inactive);
        // B was only addressed: no sign of life after its creation either.
        let b = t.get(&B).unwrap().clone();
        assert_eq!(t.status(&b, 16 * NS), DeviceStatus::Inactive);
        // An ARP reply is a sign of life.
        assert!(t.learn_arp_reply(B, Ipv4Addr::new(10, 0, 0, 2), 16 * NS));
        let b = t.get(&B).unwrap().clone();
        assert_eq!(t.status(&b, 20 * NS), DeviceStatus::Active);
        assert_eq!(b.ipv4, Some(Ipv4Addr::new(10, 0, 0, 2)));
        let d = t.devices(20 * NS);
        assert_eq!(d.len(), 2);
        t.end_cycle(99 * NS);
        assert_eq!(t.len(), 2);
        t.end_cycle(100 * NS);
        assert!(t.get(&A).is_none() && t.get(&B).is_some());
        t.end_cycle(116 * NS);
        assert!(t.is_empty());
    }

    #[test]
    fn rates_over_the_last_cycle() {
        let mut t = DeviceTable::new(cfg(8));
        t.account(&obs(A, B, 1000, 0));
        t.account(&obs(A, B, 1500, 2 * NS));
        t.end_cycle(5 * NS);
        let a = t.get(&A).unwrap();
        assert_eq!(a.tx_rate_bps, 2500 * 8 / 5);
        assert_eq!(t.get(&B).unwrap().rx_rate_bps, 2500 * 8 / 5);
        t.end_cycle(10 * NS);
        assert_eq!(t.get(&A).unwrap().tx_rate_bps, 0);
        assert_eq!(t.get(&A).unwrap().tx_bytes, 2500);
    }

    #[test]
    fn counters_never_decrease() {
        let mut t = DeviceTable::new(cfg(16));
        let mut last = Counters::default();
        let mut seed = 12345u32;
        for i in 0..20_000u64 {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let src = mac(seed % 40);
            let dst = if seed & 0x100 == 0 {
                BCAST
            } else {
                mac((seed >> 9) % 40)
            };
            let ts = i * NS / 10;
            let before = t.get(&src).map(|e| (e.tx_bytes, e.tx_packets));
            t.account(&obs(src, dst, seed % 1500, ts));
            if let (Some(b), Some(e)) = (before, t.get(&src)) {
                assert!(e.tx_bytes >= b.0 && e.tx_packets > b.1);
            }
            if i % 50 == 0 {
                t.end_cycle(ts);
            }
            let c = t.counters();
            assert!(c.packets_seen > last.packets_seen && c.bytes_seen >= last.bytes_seen);
            assert!(c.table_full >= last.table_full && c.expired >= last.expired);
            assert!(c.malformed >= last.malformed);
            last = c;
            assert!(t.len() <= 16);
        }
        // The index agrees with the entries after all the churn.
        for e in t.iter() {
            assert_eq!(t.get(&e.mac).unwrap().mac, e.mac);
        }
    }

    #[test]
    fn internet_and_local_split_per_device() {
        const ROUTER: Mac = [0x02, 0, 0, 0, 0, 1];
        let mut t = DeviceTable::new(cfg(8));
        t.set_excluded(&[ROUTER]);
        let mut nets = LocalNets::new();
        nets.add_v4(Ipv4Cidr::parse("192.168.1.0/24").unwrap());
        t.set_local_nets(nets);
        let lan = |o: &mut Observation, s: [u8; 4], d: [u8; 4]| {
            o.ipv4_src = Some(s.into());
            o.ipv4_dst = Some(d.into());
            o.ethertype = crate::decode::ETHERTYPE_IPV4;
        };
        // A -> WAN (through the router), WAN -> A, A -> B, A -> the router itself.
        let mut up = obs(A, ROUTER, 1000, 0);
        lan(&mut up, [192, 168, 1, 2], [198, 51, 100, 1]);
        let mut down = obs(ROUTER, A, 1500, 0);
        lan(&mut down, [198, 51, 100, 1], [192, 168, 1, 2]);
        let mut peer = obs(A, B, 700, 0);
        lan(&mut peer, [192, 168, 1, 2], [198, 51, 100, 1]);
        let mut own = obs(A, ROUTER, 300, 0);
        lan(&mut own, [192, 168, 1, 2], [192, 168, 1, 1]);
        // No IP header between A and the router: local, counted unclassified.
        let bare = obs(A, ROUTER, 60, 0);
        for o in [up, up, down, peer, own, bare] {
            t.account(&o);
        }
        t.end_cycle(NS);
        let a = t.get(&A).unwrap();
        assert_eq!((a.tx_bytes, a.rx_bytes), (3060, 1500));
        assert_eq!((a.internet.tx_bytes, a.internet.tx_packets), (2000, 2));
        assert_eq!((a.internet.rx_bytes, a.internet.rx_packets), (1500, 1));
        assert_eq!(a.internet.tx_rate_bps, 2000 * 8);
        assert_eq!(t.get(&B).unwrap().internet, Internet::default());
        assert_eq!(t.counters().unclassified, 1);
        let d = t.devices(NS);
        let bw = &d
            .iter()
            .find(|d| d.mac == format_mac(&A))
            .unwrap()
            .bandwidth;
        assert_eq!(bw.internet_tx_bytes_total, 2000);
        assert_eq!(bw.internet_rx_packets_total, 1);
        assert_eq!(bw.internet_rx_rate_bps, 1500 * 8);
    }

    #[test]
    fn excluded_macs_are_not_tracked() {
        let mut t = DeviceTable::new(cfg(8));
        t.account(&obs(A, B, 10, 0));
        t.set_excluded(&[A]);
        assert!(t.get(&A).is_none());
        t.account(&obs(A, B, 10, 0));
        assert!(t.get(&A).is_none());
        assert_eq!(t.get(&B).unwrap().rx_bytes, 20);
    }

    #[test]
    fn bindings_from_fixture_frames() {
        let mut t = DeviceTable::new(cfg(8));
        for (_, link, data) in fixtures() {
            let f = Frame {
                ts: NS,
                orig_len: data.len() as u32,
                data: &data,
                link,
                direction: crate::frame::Direction::Unknown,
                vlan: None,
            };
            t.observe(&f);
        }
        let a = t.get(&A).unwrap();
        assert_eq!(a.ipv4, Some(Ipv4Addr::new(192, 168, 1, 23)));
        assert_eq!(a.ipv6.as_slice(), &["fe80::1".parse::<Ipv6Addr>().unwrap()]);
        assert_eq!(a.vlan, Some(10));
        let b = t.get(&B).unwrap();
        assert_eq!(b.name.as_str(), "iPhone");
        assert_eq!(
            b.ipv6.as_slice(),
            &["2001:db8::7".parse::<Ipv6Addr>().unwrap()]
        );
        assert!(t.set_name(&B, "kitchen-tablet"));
        assert_eq!(t.get(&B).unwrap().name.as_str(), "kitchen-tablet");
        assert!(!t.set_name(&mac(9), "x"));
    }

    #[test]
    fn range_filters_ipv4() {
        let mut c = cfg(8);
        c.range = Some(Ipv4Cidr::parse("10.0.0.0/24").unwrap());
        let mut t = DeviceTable::new(c);
        let mut o = obs(A, B, 10, 0);
        o.ipv4_src = Some(Ipv4Addr::new(8, 8, 8, 8));
        t.account(&o);
        assert_eq!(t.get(&A).unwrap().ipv4, None);
        o.ipv4_src = Some(Ipv4Addr::new(10, 0, 0, 5));
        t.account(&o);
        assert_eq!(t.get(&A).unwrap().ipv4, Some(Ipv4Addr::new(10, 0, 0, 5)));
        assert!(t.learn_arp_reply(A, Ipv4Addr::new(192, 168, 0, 1), 0));
        assert_eq!(t.get(&A).unwrap().ipv4, Some(Ipv4Addr::new(10, 0, 0, 5)));
    }

    #[test]
    fn long_and_odd_names() {
        let mut e = Entry::new(A, 0);
        e.set_name(&"é".repeat(40));
        assert!(e.name.len() <= NAME_MAX && e.name.chars().all(|c| c == 'é'));
        assert_eq!(clean_name(b"ab\x01"), None);
        assert_eq!(clean_name(b"host\0"), Some("host"));
        assert_eq!(clean_name(b"\xff"), None);
    }
}
