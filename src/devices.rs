//! The device table: per-device accounting in memory fixed at start-up.
//!
//! Public API (stable; the live capture and discovery build on it):
//! - [`TableConfig`] (capacity, cycle, timeout in cycles, expiry, optional IPv4 range, hash
//!   seed) and [`DeviceTable::new`], which allocates everything the table will ever use.
//! - Per frame: [`DeviceTable::observe`] (decode + account at the frame's own timestamp, for
//!   capture files) or [`DeviceTable::account`] (an [`Observation`] from `crate::decode` at a
//!   time the caller gives: the live capture passes its monotonic clock). Neither allocates nor
//!   panics, and each costs at most a bounded number of index probes whatever the MACs.
//! - From discovery: [`DeviceTable::learn_arp_reply`] (an ARP reply to our scan: IPv4 binding
//!   and a sign of life), [`DeviceTable::set_name`] (names from leases/ethers/hosts; they win
//!   over DHCP-sniffed names), [`DeviceTable::set_excluded`] (the agent's own MACs).
//! - Per cycle: [`DeviceTable::end_cycle`] (rates over the cycle, expiry), then
//!   [`DeviceTable::devices`] (`Vec<snapshot::Device>`, table order) and
//!   [`DeviceTable::capture_info`] (`snapshot::CaptureInfo` counters).
//! - Inspection: [`DeviceTable::get`], [`DeviceTable::iter`], [`DeviceTable::counters`].
//!
//! Time is always an argument, in nanoseconds on one clock that never steps: the monotonic
//! clock live, capture time in replay, whatever a test wants. Intervals, status, expiry and
//! rates are differences on that clock; [`DeviceTable::devices`] turns instants into wall-clock
//! labels with the wall time the caller gives for `now`, so a step of the wall clock changes
//! labels only.
//!
//! Accounting rules (also in docs/accounting.md):
//! - Bytes are the frame's original length (`Observation::len`), never the captured length.
//! - A device is a unicast MAC (I/G bit clear) seen as the source or destination of the
//!   outermost Ethernet header, except the excluded (own) MACs.
//! - tx = frames the MAC sent; rx = frames addressed to it. Broadcast/multicast frames are tx of
//!   their sender and rx of nobody. A frame whose source equals its destination is both.
//! - Frames too short for two MACs are `malformed` and attributed to nobody.
//! - Signs of life (refresh `last_seen`): a frame sent by the device, an ARP reply from it, an
//!   ARP/NDP/DHCP message naming it. Being addressed is not a sign of life (anyone can send to a
//!   MAC that left). Status is active while `now - last_seen <= timeout_cycles * cycle`.
//! - IPv4: the most recent of an ARP sender binding or, when a range is set, an IPv4 source
//!   inside it; with a range set ARP bindings outside it are ignored too. IPv6: up to
//!   [`MAX_IPV6`] addresses (oldest replaced) from NDP link-layer options and link-local
//!   (fe80::/10) sources. VLAN: the frame's VLAN (see `crate::decode`) of the last frame the
//!   device sent.
//! - A device without a sign of life for `expire` (0: never) is removed at the next
//!   `end_cycle`; a MAC only ever addressed expires `expire` after it was first addressed.
//!   An expired or evicted device that returns starts from zero.
//!
//! Admission and eviction (what a full table does). Every entry is in one of three classes,
//! from least to most valuable:
//! 1. *addressed*: the MAC has only been seen as a destination;
//! 2. *newcomer*: it gave signs of life at one instant of the clock only (one drained ring
//!    block live, one timestamp in a file);
//! 3. *established*: it gave signs of life at two instants or more.
//!
//! A MAC seen only as a destination is tracked while there is a free slot; when the table is
//! full it is not tracked (`table_full` counts the frame) and evicts nobody. A MAC giving a
//! sign of life when the table is full takes the slot of the least valuable entry: the oldest
//! addressed entry, else the newcomer whose sign of life is oldest, else the established entry
//! whose last sign of life is oldest (`evicted` counts them; an entry whose time was up anyway
//! counts as `expired`). So a flood of MACs that each send once only ever replaces addressed
//! entries and other flood MACs: a device that sent at two instants keeps its slot and its
//! counts while any newcomer or addressed entry exists. Victims come from three lists kept in
//! order, so admission costs O(1) whatever the table holds.
//!
//! The index: 8-slot buckets of one cache line, two candidate buckets per MAC from a hash keyed
//! with [`TableConfig::seed`] (random per start live), at most half the slots in use. A lookup
//! reads at most two cache lines, hit or miss, whatever the MACs; MACs chosen to collide cost
//! the same as random ones. A MAC whose two buckets are both full (after one round of moving
//! occupants to their other bucket; with a random seed at half load this did not happen in
//! the tests' churn of random MACs at the largest size) is not tracked and counted in
//! `table_full`.

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
/// Capture interfaces (ports) a table can hold devices of.
pub const MAX_PORTS: usize = 8;
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
    /// Nanoseconds without a sign of life before a device is forgotten (DEVICE_EXPIRE);
    /// 0 = never.
    pub expire_ns: u64,
    /// NETWORK_RANGE: when set, only IPv4 addresses inside it are learned.
    pub range: Option<Ipv4Cidr>,
    /// Key of the index hash. Live and replay draw it from getrandom at start, so nobody can
    /// choose MACs that share buckets; tests use fixed ones.
    pub seed: [u64; 2],
}

impl Default for TableConfig {
    fn default() -> Self {
        TableConfig {
            capacity: 256,
            cycle_ns: 5 * NS,
            timeout_cycles: 3,
            expire_ns: 3600 * NS,
            range: None,
            seed: [0x243F_6A88_85A3_08D3, 0x1319_8A2E_0370_7344],
        }
    }
}

/// How much an entry is worth keeping when the table is full (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Class {
    /// Only ever seen as a destination.
    Addressed = 0,
    /// Signs of life at one instant only.
    Newcomer = 1,
    /// Signs of life at two instants or more.
    Established = 2,
}

const NIL: u32 = u32::MAX;

/// One tracked device. Fields are public for reading; only the table changes them.
/// Laid out by hand (`repr(C)`): what every frame touches (counters, last sign of life,
/// class, VLAN, IPv4, MAC, port) comes first, so accounting a frame reads the entry's first
/// 64 bytes, not its names and addresses.
#[derive(Debug, Clone)]
#[repr(C)]
pub struct Entry {
    /// Bytes of unicast frames addressed to it.
    pub rx_bytes: u64,
    /// Bytes of frames it sent.
    pub tx_bytes: u64,
    /// Unicast frames addressed to it.
    pub rx_packets: u64,
    /// Frames it sent.
    pub tx_packets: u64,
    /// The last sign of life (for an addressed-only MAC: when it was first addressed).
    pub last_seen: u64,
    /// Addressed, newcomer or established (admission and eviction).
    pub class: Class,
    /// The name came from discovery (leases, hosts) and is not replaced by DHCP sniffing.
    pub name_fixed: bool,
    /// VLAN ID, NO_VLAN when none (see [`Entry::vlan`]).
    vlan: u16,
    /// IPv4 address, 0.0.0.0 when none (never learned: see [`Entry::ipv4`]).
    ipv4: [u8; 4],
    /// The key.
    pub mac: Mac,
    /// The capture interface it was seen on (see [`DeviceTable::select_port`]).
    pub port: u8,
    /// When the table first saw it.
    pub first_seen: u64,
    /// Totals at the start of the current cycle, for the rates.
    cycle_rx_bytes: u64,
    cycle_tx_bytes: u64,
    /// Bits per second over the last finished cycle.
    pub rx_rate_bps: u64,
    /// Bits per second sent over the last finished cycle.
    pub tx_rate_bps: u64,
    /// IPv6 addresses, oldest replaced.
    pub ipv6: heapless::Vec<Ipv6Addr, MAX_IPV6, u8>,
    /// Its name (empty when none).
    pub name: heapless::String<NAME_MAX, u8>,
    /// The part of the traffic exchanged with the internet (see `crate::locality`).
    pub internet: Internet,
}

/// VLAN IDs are 12 bits: this is none.
const NO_VLAN: u16 = u16::MAX;

impl Entry {
    /// The VLAN of the last frame it sent.
    pub fn vlan(&self) -> Option<u16> {
        (self.vlan != NO_VLAN).then_some(self.vlan)
    }

    /// Its IPv4 address (0.0.0.0 is never learned, so it stands for none).
    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        let ip = Ipv4Addr::from(self.ipv4);
        (!ip.is_unspecified()).then_some(ip)
    }

    fn set_ipv4(&mut self, ip: Ipv4Addr) {
        if !ip.is_unspecified() {
            self.ipv4 = ip.octets();
        }
    }

    fn new(mac: Mac, port: u8, class: Class, now: u64) -> Entry {
        Entry {
            port,
            rx_bytes: 0,
            tx_bytes: 0,
            rx_packets: 0,
            tx_packets: 0,
            last_seen: now,
            first_seen: now,
            mac,
            class,
            name_fixed: false,
            vlan: NO_VLAN,
            ipv4: [0; 4],
            cycle_rx_bytes: 0,
            cycle_tx_bytes: 0,
            rx_rate_bps: 0,
            tx_rate_bps: 0,
            ipv6: heapless::Vec::new(),
            name: heapless::String::new(),
            internet: Internet::default(),
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

    /// Keeps the first NAME_MAX bytes of `name` (whole characters), without control
    /// characters: they have no place in a name, and each would take 6 bytes of JSON.
    fn set_name(&mut self, name: &str) {
        self.name.clear();
        for c in name.chars().filter(|c| !c.is_control()) {
            if self.name.push(c).is_err() {
                break;
            }
        }
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
    /// Frames with a MAC that could not be tracked: addressed-only while the table was full
    /// (or, practically never, both of its index buckets full).
    pub table_full: u64,
    /// Devices removed because they expired (at a cycle end, or as the victim of a newcomer
    /// when their time was up anyway).
    pub expired: u64,
    /// Devices removed before their time to make room for a newcomer with a sign of life.
    pub evicted: u64,
    /// Frames between a device and the router without a readable IP header (counted local).
    pub unclassified: u64,
}

/// An entry's neighbours in its class's list (entry indices, NIL at the ends). Kept apart
/// from the entries: moving a device to the tail touches its neighbours' links, and 8-byte
/// links stay in cache where whole entries would not.
#[derive(Debug, Clone, Copy)]
struct Link {
    prev: u32,
    next: u32,
}

/// Index slots: MAC (48 bits) << 16 | entry index (16 bits); EMPTY is never a valid slot
/// because ff:ff:ff:ff:ff:ff is not unicast.
const EMPTY: u64 = u64::MAX;
const WAYS: usize = 8;

/// One cache line of index slots.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Bucket([u64; WAYS]);

#[inline]
fn key(mac: &Mac) -> u64 {
    let mut b = [0u8; 8];
    b[2..].copy_from_slice(mac);
    u64::from_be_bytes(b)
}

/// The MAC of a key.
#[inline]
fn mac_of(k: u64) -> Mac {
    let b = k.to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

/// The bit of a key in the excluded MACs' one-word filter: a device's MAC is told apart from
/// the router's own with one AND most of the time, whatever the number of own MACs.
#[inline]
fn filter_bit(k: u64) -> u64 {
    1 << (k.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58)
}

/// The fixed-size device table. See the module doc.
pub struct DeviceTable {
    cfg: TableConfig,
    /// Dense: `entries.len()` devices, capacity reserved once, never grown past it.
    entries: Vec<Entry>,
    /// `links[i]` belongs to `entries[i]`.
    links: Vec<Link>,
    /// Two-choice buckets; at most half the slots are used.
    index: Box<[Bucket]>,
    bucket_mask: usize,
    /// Per class: oldest (head) and newest (tail) entry; lists ordered by the last sign of
    /// life (addressed: by first being addressed).
    heads: [u32; 3],
    tails: [u32; 3],
    excluded: heapless::Vec<Mac, MAX_EXCLUDED>,
    /// `excluded` as keys, and the OR of their [`filter_bit`]s.
    excluded_keys: heapless::Vec<u64, MAX_EXCLUDED>,
    excluded_filter: u64,
    /// The local ranges: a frame through the router (an excluded MAC) to or from outside them
    /// is internet traffic.
    local: LocalNets,
    /// The selected port and its IPv4 range (see [`DeviceTable::select_port`]).
    port: u8,
    range: Option<Ipv4Cidr>,
    counters: Counters,
    /// Start of the current cycle (None until the first frame, `begin` or `end_cycle`).
    cycle_start: Option<u64>,
}

impl DeviceTable {
    /// Allocates the table; `cfg.capacity` is clamped into 1..=65536.
    pub fn new(mut cfg: TableConfig) -> DeviceTable {
        cfg.capacity = cfg.capacity.clamp(1, MAX_CAPACITY);
        let slots = (cfg.capacity * 2).next_power_of_two().max(2 * WAYS);
        let buckets = slots / WAYS;
        DeviceTable {
            entries: Vec::with_capacity(cfg.capacity),
            links: Vec::with_capacity(cfg.capacity),
            index: vec![Bucket([EMPTY; WAYS]); buckets].into_boxed_slice(),
            bucket_mask: buckets - 1,
            heads: [NIL; 3],
            tails: [NIL; 3],
            excluded: heapless::Vec::new(),
            excluded_keys: heapless::Vec::new(),
            excluded_filter: 0,
            local: LocalNets::new(),
            port: 0,
            range: cfg.range,
            counters: Counters::default(),
            cycle_start: None,
            cfg,
        }
    }

    /// The settings the table was made with.
    pub fn config(&self) -> &TableConfig {
        &self.cfg
    }
    /// Devices it can hold.
    pub fn capacity(&self) -> usize {
        self.cfg.capacity
    }
    /// Devices it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    /// True when it holds no device.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// The table-wide counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }
    /// Every tracked device.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }
    /// The device with this MAC.
    pub fn get(&self, mac: &Mac) -> Option<&Entry> {
        self.find(key(mac)).map(|i| &self.entries[i])
    }
    /// Bytes of memory one tracked device takes (entry + its share of the index).
    pub const fn bytes_per_device() -> usize {
        std::mem::size_of::<Entry>() + std::mem::size_of::<Link>() + 2 * std::mem::size_of::<u64>()
    }

    /// Starts the first cycle at `now` (otherwise it starts at the first frame).
    pub fn begin(&mut self, now: u64) {
        self.cycle_start.get_or_insert(now);
    }

    /// The local ranges for the internet/local split (`crate::locality`).
    pub fn set_local_nets(&mut self, nets: LocalNets) {
        self.local = nets;
    }

    /// The local ranges of the internet/local split.
    pub fn local_nets(&self) -> &LocalNets {
        &self.local
    }

    /// The port (capture interface, 0..[`MAX_PORTS`]) and its IPv4 range that the frames,
    /// bindings and lookups that follow belong to. A device is a (port, MAC) pair: the same MAC
    /// on two ports is two devices. Port 0 with the configured range until this is called.
    pub fn select_port(&mut self, port: u8, range: Option<Ipv4Cidr>) {
        self.port = port;
        self.range = range;
    }

    /// MACs never tracked (the agent's own interfaces), on any port. At most
    /// [`MAX_EXCLUDED`]; already tracked ones are removed.
    pub fn set_excluded(&mut self, macs: &[Mac]) {
        self.excluded.clear();
        self.excluded_keys.clear();
        self.excluded_filter = 0;
        for m in macs.iter().take(MAX_EXCLUDED) {
            let _ = self.excluded.push(*m);
            let _ = self.excluded_keys.push(key(m));
            self.excluded_filter |= filter_bit(key(m));
            while let Some(i) = self.entries.iter().position(|e| e.mac == *m) {
                self.remove(i);
            }
        }
    }

    /// The two candidate buckets of a key (keyed folded multiply: one 64x64->128 multiply).
    #[inline(always)]
    fn buckets(&self, k: u64) -> (usize, usize) {
        let m = ((k ^ self.cfg.seed[0]) as u128).wrapping_mul((self.cfg.seed[1] | 1) as u128);
        let h = (m as u64) ^ ((m >> 64) as u64);
        let b1 = h as usize & self.bucket_mask;
        let mut b2 = (h >> 32) as usize & self.bucket_mask;
        if b2 == b1 {
            b2 ^= 1;
        }
        (b1, b2)
    }

    /// The two index buckets `mac` may live in (benchmarks: MACs crafted with the seed known).
    #[doc(hidden)]
    pub fn index_buckets(&self, mac: &Mac) -> (usize, usize) {
        self.buckets(key(mac))
    }

    /// (bucket, way) of the slot holding `k` on the selected port. The port is checked in
    /// the entry, which the caller reads next anyway.
    #[inline(always)]
    fn find_slot(&self, k: u64) -> Option<(usize, usize)> {
        let (b1, b2) = self.buckets(k);
        for b in [b1, b2] {
            let bucket = &self.index[b].0;
            for (w, &v) in bucket.iter().enumerate() {
                if v >> 16 == k && self.entries[v as u16 as usize].port == self.port {
                    return Some((b, w));
                }
            }
        }
        None
    }

    /// (bucket, way) of the slot of key `k` pointing at entry `i` (any port).
    fn find_slot_of(&self, k: u64, i: usize) -> Option<(usize, usize)> {
        let (b1, b2) = self.buckets(k);
        for b in [b1, b2] {
            for (w, &v) in self.index[b].0.iter().enumerate() {
                if v >> 16 == k && v as u16 as usize == i {
                    return Some((b, w));
                }
            }
        }
        None
    }

    /// The entry index of `k`.
    #[inline(always)]
    fn find(&self, k: u64) -> Option<usize> {
        self.find_slot(k)
            .map(|(b, w)| self.index[b].0[w] as u16 as usize)
    }

    fn free_way(&self, b: usize) -> Option<usize> {
        self.index[b].0.iter().position(|&v| v == EMPTY)
    }

    /// Puts `k -> i` into one of its buckets (the emptier one); when both are full, first
    /// moves one occupant to its other bucket. False: no room (practically never).
    fn index_insert(&mut self, k: u64, i: usize) -> bool {
        let (b1, b2) = self.buckets(k);
        let used = |b: usize| self.index[b].0.iter().filter(|&&v| v != EMPTY).count();
        let (first, second) = if used(b2) < used(b1) {
            (b2, b1)
        } else {
            (b1, b2)
        };
        for b in [first, second] {
            if let Some(w) = self.free_way(b) {
                self.index[b].0[w] = k << 16 | i as u64;
                return true;
            }
        }
        for b in [b1, b2] {
            for w in 0..WAYS {
                let v = self.index[b].0[w];
                let (o1, o2) = self.buckets(v >> 16);
                let other = if o1 == b { o2 } else { o1 };
                if let Some(ow) = self.free_way(other) {
                    self.index[other].0[ow] = v;
                    self.index[b].0[w] = k << 16 | i as u64;
                    return true;
                }
            }
        }
        false
    }

    // ---- the class lists ----

    fn unlink(&mut self, i: usize) {
        let Link { prev, next } = self.links[i];
        let c = self.entries[i].class as usize;
        match prev {
            NIL => self.heads[c] = next,
            p => self.links[p as usize].next = next,
        }
        match next {
            NIL => self.tails[c] = prev,
            n => self.links[n as usize].prev = prev,
        }
    }

    fn push_tail(&mut self, i: usize, class: Class) {
        let c = class as usize;
        let tail = self.tails[c];
        self.entries[i].class = class;
        self.links[i] = Link {
            prev: tail,
            next: NIL,
        };
        match tail {
            NIL => self.heads[c] = i as u32,
            t => self.links[t as usize].next = i as u32,
        }
        self.tails[c] = i as u32;
    }

    /// A sign of life from entry `i` at `now`: promotes it and keeps the lists in order.
    #[inline(always)]
    fn life(&mut self, i: usize, now: u64) {
        let e = &self.entries[i];
        if e.class == Class::Established && (now <= e.last_seen || self.tails[2] == i as u32) {
            // The common case: nothing to move.
            if now > e.last_seen {
                self.entries[i].last_seen = now;
            }
            return;
        }
        self.life_slow(i, now);
    }

    #[cold]
    fn life_slow(&mut self, i: usize, now: u64) {
        let (class, last) = (self.entries[i].class, self.entries[i].last_seen);
        let to = match class {
            Class::Addressed => Class::Newcomer,
            Class::Newcomer if now > last => Class::Established,
            Class::Newcomer => return,
            Class::Established if now > last => Class::Established,
            Class::Established => return,
        };
        self.unlink(i);
        self.push_tail(i, to);
        self.entries[i].last_seen = now;
    }

    /// The entry index for `mac`, inserting it when there is room or, with a sign of life,
    /// when it can take an entry's slot. None: excluded, or not tracked (counted).
    #[inline(always)]
    fn slot(&mut self, mac: &Mac, life: bool, now: u64) -> Option<usize> {
        self.slot_of_key(key(mac), life, now)
    }

    /// [`DeviceTable::slot`] by the MAC's key.
    #[inline(always)]
    fn slot_of_key(&mut self, k: u64, life: bool, now: u64) -> Option<usize> {
        match self.find(k) {
            Some(i) => Some(i),
            None => self.admit(&mac_of(k), life, now),
        }
    }

    /// True when `k` is the key of one of the excluded (own) MACs.
    #[inline(always)]
    fn is_excluded(&self, k: u64) -> bool {
        self.excluded_filter & filter_bit(k) != 0 && self.excluded_keys.contains(&k)
    }

    #[cold]
    fn admit(&mut self, mac: &Mac, life: bool, now: u64) -> Option<usize> {
        if self.excluded.contains(mac) {
            return None;
        }
        if self.entries.len() >= self.cfg.capacity {
            if !life {
                self.counters.table_full += 1;
                return None;
            }
            let Some(victim) = self.heads.iter().copied().find(|&h| h != NIL) else {
                self.counters.table_full += 1;
                return None;
            };
            let victim = victim as usize;
            if self.expired(&self.entries[victim], now) {
                self.counters.expired += 1;
            } else {
                self.counters.evicted += 1;
            }
            self.remove(victim);
        }
        let i = self.entries.len();
        if !self.index_insert(key(mac), i) {
            self.counters.table_full += 1;
            return None;
        }
        let class = if life {
            Class::Newcomer
        } else {
            Class::Addressed
        };
        self.entries.push(Entry::new(*mac, self.port, class, now));
        self.links.push(Link {
            prev: NIL,
            next: NIL,
        });
        self.push_tail(i, class);
        Some(i)
    }

    fn expired(&self, e: &Entry, now: u64) -> bool {
        self.cfg.expire_ns != 0 && now.saturating_sub(e.last_seen) >= self.cfg.expire_ns
    }

    /// Removes entry `i` (swap-remove; the moved entry's slot and list links are updated).
    fn remove(&mut self, i: usize) {
        self.unlink(i);
        if let Some((b, w)) = self.find_slot_of(key(&self.entries[i].mac), i) {
            self.index[b].0[w] = EMPTY;
        }
        let last = self.entries.len() - 1;
        self.entries.swap_remove(i);
        self.links.swap_remove(i);
        if i == last {
            return;
        }
        // The entry that was at `last` is now at `i`.
        let Link { prev, next } = self.links[i];
        let (c, mac) = (self.entries[i].class as usize, self.entries[i].mac);
        match prev {
            NIL => self.heads[c] = i as u32,
            p => self.links[p as usize].next = i as u32,
        }
        match next {
            NIL => self.tails[c] = i as u32,
            n => self.links[n as usize].prev = i as u32,
        }
        let k = key(&mac);
        if let Some((b, w)) = self.find_slot_of(k, last) {
            self.index[b].0[w] = k << 16 | i as u64;
        }
    }

    /// Decode + account one frame at its own timestamp (capture files, tests).
    #[inline]
    pub fn observe(&mut self, frame: &Frame) {
        let mut obs = Observation::default();
        decode::decode_into(frame, &mut obs);
        self.account(&obs, frame.ts);
    }

    /// Accounts one decoded frame at `now` (the table's clock; `obs.ts` is not used).
    #[inline]
    pub fn account(&mut self, obs: &Observation, now: u64) {
        let len = obs.len as u64;
        self.counters.packets_seen += 1;
        self.counters.bytes_seen += len;
        if obs.malformed {
            self.counters.malformed += 1;
        }
        if self.cycle_start.is_none() {
            self.cycle_start = Some(now);
        }
        // Each unicast MAC's key, once; the router's own MACs are never in the table, so they
        // are not looked up.
        let src = obs.src.as_ref().filter(|m| is_unicast(m)).map(key);
        let dst = obs.dst.as_ref().filter(|m| is_unicast(m)).map(key);
        let src_own = src.is_some_and(|k| self.is_excluded(k));
        let dst_own = dst.is_some_and(|k| self.is_excluded(k));
        let scope = locality::classify_known(obs, src_own, dst_own, &self.local);
        if scope == Scope::Unclassified {
            self.counters.unclassified += 1;
        }
        if let Some(k) = src.filter(|_| !src_own) {
            if let Some(i) = self.slot_of_key(k, true, now) {
                self.life(i, now);
                let range = self.range;
                let e = &mut self.entries[i];
                e.tx_bytes += len;
                e.tx_packets += 1;
                if scope == Scope::InternetTx {
                    e.internet.add_tx(len);
                }
                if let Some(v) = obs.vlan {
                    e.vlan = v & 0x0fff;
                }
                if let (Some(ip), Some(r)) = (obs.ipv4_src, range) {
                    if r.contains(ip) {
                        e.set_ipv4(ip);
                    }
                }
                if let Some(ip) = obs.ipv6_src {
                    if ip.segments()[0] & 0xffc0 == 0xfe80 {
                        e.add_ipv6(ip);
                    }
                }
            }
        }
        if let Some(k) = dst.filter(|_| !dst_own) {
            if let Some(i) = self.slot_of_key(k, false, now) {
                let e = &mut self.entries[i];
                e.rx_bytes += len;
                e.rx_packets += 1;
                if scope == Scope::InternetRx {
                    e.internet.add_rx(len);
                }
            }
        }
        if obs.arp.is_some() || obs.ndp.is_some() || obs.dhcp.is_some() {
            self.bindings(obs, now);
        }
    }

    #[cold]
    fn bindings(&mut self, obs: &Observation, now: u64) {
        if let Some(a) = obs.arp {
            if self.range_allows(a.ip) {
                if let Some(i) = self.find(key(&a.mac)) {
                    self.entries[i].set_ipv4(a.ip);
                    self.life(i, now);
                }
            }
        }
        if let Some(n) = obs.ndp {
            if let Some(i) = self.find(key(&n.mac)) {
                self.entries[i].add_ipv6(n.ip);
                self.life(i, now);
            }
        }
        if let Some(d) = obs.dhcp {
            if let Some(i) = self.find(key(&d.mac)) {
                self.life(i, now);
                let e = &mut self.entries[i];
                if !e.name_fixed {
                    if let Some(name) = clean_name(d.name) {
                        e.set_name(name);
                    }
                }
            }
        }
    }

    fn range_allows(&self, ip: Ipv4Addr) -> bool {
        self.range.map_or(true, |r| r.contains(ip))
    }

    /// An ARP reply to the agent's scan (discovery): the IPv4 binding and a sign of life.
    /// Creates the device (taking a slot when full, see the module doc). Returns false when it
    /// is not tracked.
    pub fn learn_arp_reply(&mut self, mac: Mac, ip: Ipv4Addr, now: u64) -> bool {
        if !is_unicast(&mac) {
            return false;
        }
        let Some(i) = self.slot(&mac, true, now) else {
            return false;
        };
        self.life(i, now);
        let allowed = self.range_allows(ip);
        if allowed {
            self.entries[i].set_ipv4(ip);
        }
        true
    }

    /// A name from discovery (leases, ethers, hosts) for a tracked device; it wins over names
    /// sniffed from DHCP. Returns false when the MAC is not tracked.
    pub fn set_name(&mut self, mac: &Mac, name: &str) -> bool {
        let Some(i) = self.find(key(mac)) else {
            return false;
        };
        let e = &mut self.entries[i];
        e.set_name(name.trim());
        e.name_fixed = !e.name.is_empty();
        true
    }

    /// Ends the cycle at `now`: rates over the cycle, removal of expired devices.
    /// Returns how many devices expired.
    pub fn end_cycle(&mut self, now: u64) -> u64 {
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
        let mut n = 0;
        let mut i = 0;
        while i < self.entries.len() {
            if self.expired(&self.entries[i], now) {
                self.remove(i);
                n += 1;
            } else {
                i += 1;
            }
        }
        self.counters.expired += n;
        self.cycle_start = Some(now);
        n
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
    /// `wall_now_ns` is the wall-clock time (ns since the Unix epoch) at `now`: instants on the
    /// table's clock become labels by their distance from `now`.
    pub fn devices(&self, now: u64, wall_now_ns: u64) -> Vec<snapshot::Device> {
        let label = |t: u64| {
            let wall = wall_now_ns.saturating_sub(now.saturating_sub(t));
            crate::timefmt::format_millis(wall / 1_000_000)
        };
        let checked = label(now);
        self.entries
            .iter()
            .map(|e| snapshot::Device {
                interface: None,
                ip: e.ipv4().map(|ip| ip.to_string()),
                ipv6: e.ipv6.iter().map(|ip| ip.to_string()).collect(),
                mac: format_mac(&e.mac),
                device_name: (!e.name.is_empty()).then(|| e.name.to_string()),
                vlan: e.vlan(),
                status: self.status(e, now),
                first_seen: label(e.first_seen),
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
            devices_evicted: self.counters.evicted,
            malformed: self.counters.malformed,
            unclassified: self.counters.unclassified,
            interfaces: Vec::new(),
            offload: None,
        }
    }

    /// Checks the index and the lists against the entries (tests).
    #[cfg(test)]
    fn check_invariants(&self) {
        let mut in_lists = 0;
        for c in 0..3 {
            let mut prev = NIL;
            let mut i = self.heads[c];
            let mut last_t = 0;
            while i != NIL {
                let e = &self.entries[i as usize];
                assert_eq!(e.class as usize, c);
                assert_eq!(self.links[i as usize].prev, prev);
                if c > 0 {
                    assert!(e.last_seen >= last_t, "list {c} out of order");
                    last_t = e.last_seen;
                }
                prev = i;
                i = self.links[i as usize].next;
                in_lists += 1;
            }
            assert_eq!(self.tails[c], prev);
        }
        assert_eq!(in_lists, self.entries.len());
        let used: usize = self
            .index
            .iter()
            .map(|b| b.0.iter().filter(|&&v| v != EMPTY).count())
            .sum();
        assert_eq!(used, self.entries.len());
        for (i, e) in self.entries.iter().enumerate() {
            assert!(self.find_slot_of(key(&e.mac), i).is_some());
        }
    }
}

/// The most bytes one device can take in a snapshot's compact JSON, comma included: the
/// length of [`longest_device`] serialised.
pub fn max_device_json_bytes() -> usize {
    serde_json::to_string(&longest_device()).map_or(4096, |j| j.len() + 1)
}

/// A device with every field at its longest in JSON: counters at u64::MAX, four full IPv6
/// addresses, a 64-byte name of characters JSON escapes, the longest interface name.
pub fn longest_device() -> snapshot::Device {
    let mut t = DeviceTable::new(TableConfig {
        capacity: 1,
        ..TableConfig::default()
    });
    t.learn_arp_reply([0x02, 0xff, 0xff, 0xff, 0xff, 0xff], Ipv4Addr::BROADCAST, 0);
    let e = &mut t.entries[0];
    (e.rx_bytes, e.tx_bytes, e.rx_packets, e.tx_packets) = (u64::MAX, u64::MAX, u64::MAX, u64::MAX);
    (e.rx_rate_bps, e.tx_rate_bps, e.vlan) = (u64::MAX, u64::MAX, 4095);
    let i = &mut e.internet;
    (i.rx_bytes, i.tx_bytes, i.rx_packets, i.tx_packets) = (u64::MAX, u64::MAX, u64::MAX, u64::MAX);
    (i.rx_rate_bps, i.tx_rate_bps) = (u64::MAX, u64::MAX);
    for n in 0..MAX_IPV6 as u16 {
        e.add_ipv6(Ipv6Addr::new(
            0xffff,
            0xffff,
            0xffff,
            0xffff,
            0xffff,
            0xffff,
            0xffff,
            0xfff0 | n,
        ));
    }
    e.set_name(&"\"".repeat(NAME_MAX));
    // Inactive is the longer status.
    let now = 100 * 365 * 86_400 * NS;
    let mut d = t.devices(now, now);
    d[0].interface = Some("x".repeat(15));
    d.swap_remove(0)
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

    fn obs(src: Mac, dst: Mac, len: u32) -> Observation<'static> {
        Observation {
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
            ..TableConfig::default()
        }
    }

    /// xorshift64*: reproducible random numbers for the tests.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn unicast_mac(&mut self) -> Mac {
            let b = self.next().to_be_bytes();
            [b[0] & 0xfe, b[1], b[2], b[3], b[4], b[5]]
        }
    }

    #[test]
    fn tx_rx_broadcast_and_self() {
        let mut t = DeviceTable::new(cfg(8));
        t.account(&obs(A, B, 100), NS);
        t.account(&obs(B, A, 60), NS);
        t.account(&obs(A, BCAST, 42), NS);
        t.account(&obs(B, B, 10), NS);
        t.account(&obs([0x01, 0, 0x5e, 0, 0, 1], A, 7), NS);
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
        t.check_invariants();
    }

    #[test]
    fn a_full_table_refuses_addressed_macs_and_counts_them() {
        let mut t = DeviceTable::new(cfg(4));
        for n in 0..4 {
            t.account(&obs(mac(n), BCAST, 60), NS);
        }
        // Only addressed: not tracked, nobody evicted.
        for n in 10..16 {
            t.account(&obs(mac(0), mac(n), 60), 2 * NS);
        }
        assert_eq!(t.len(), 4);
        assert_eq!(t.counters().table_full, 6);
        assert_eq!(t.counters().evicted, 0);
        for n in 0..4 {
            assert!(t.get(&mac(n)).is_some());
        }
        // Known devices still count while the table is full.
        t.account(&obs(mac(1), mac(2), 60), 2 * NS);
        assert_eq!(t.get(&mac(2)).unwrap().rx_bytes, 60);
        assert_eq!(t.counters().table_full, 6);
        t.check_invariants();
    }

    /// The scenario: one device sends to 300 made-up destinations, filling the default
    /// table with MACs that never sent anything; a phone joining afterwards is tracked at once.
    #[test]
    fn made_up_destinations_never_block_a_newcomer() {
        let mut t = DeviceTable::new(TableConfig::default());
        let scanner = mac(0xffff);
        for n in 0..300 {
            t.account(&obs(scanner, mac(n), 60), NS + n as u64);
        }
        assert_eq!(t.len(), 256);
        assert_eq!(t.counters().table_full, 300 - 255);
        let phone = [0x3a, 1, 2, 3, 4, 5];
        t.account(&obs(phone, BCAST, 342), 2 * NS);
        t.account(&obs(phone, scanner, 100), 3 * NS);
        let p = t.get(&phone).expect("the newcomer is tracked");
        assert_eq!((p.tx_packets, p.tx_bytes), (2, 442));
        assert_eq!(t.get(&scanner).unwrap().rx_bytes, 100);
        // It took the slot of the oldest addressed-only MAC.
        assert!(t.get(&mac(0)).is_none() && t.get(&mac(1)).is_some());
        assert_eq!(t.counters().evicted, 1);
        assert_eq!(t.get(&phone).unwrap().class, Class::Established);
        t.check_invariants();
    }

    /// 100,000 random source MACs, each sending once, while 20 steady devices keep sending to
    /// each other: every steady device stays tracked with exact counts.
    #[test]
    fn steady_devices_survive_a_flood_of_random_source_macs() {
        let mut t = DeviceTable::new(TableConfig::default());
        let steady: Vec<Mac> = (0..20).map(|n| [0x0a, 0, 0, 0, 0, n as u8]).collect();
        let mut want = vec![(0u64, 0u64, 0u64, 0u64); 20]; // tx pk, tx B, rx pk, rx B
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut now = NS;
        let step =
            |t: &mut DeviceTable, now: u64, k: usize, want: &mut Vec<(u64, u64, u64, u64)>| {
                let (s, d) = (k % 20, (k * 7 + 3) % 20);
                let len = 60 + (k % 1400) as u32;
                t.account(&obs(steady[s], steady[d], len), now);
                want[s].0 += 1;
                want[s].1 += len as u64;
                want[d].2 += 1;
                want[d].3 += len as u64;
            };
        // The steady devices are there first, at two instants (established).
        for k in 0..200 {
            step(&mut t, now + (k as u64 / 20) * 1000, k, &mut want);
        }
        now += NS;
        let mut k = 200;
        for f in 0..100_000u64 {
            // A ring block of ~1000 frames shares one clock reading.
            let at = now + (f / 1000) * 10_000_000;
            let flood = rng.unicast_mac();
            t.account(&obs(flood, BCAST, 64), at);
            if f % 50 == 0 {
                step(&mut t, at, k, &mut want);
                k += 1;
            }
        }
        for (n, m) in steady.iter().enumerate() {
            let e = t.get(m).expect("steady device tracked");
            assert_eq!(
                (e.tx_packets, e.tx_bytes, e.rx_packets, e.rx_bytes),
                want[n],
                "device {n}"
            );
        }
        assert_eq!(t.len(), 256);
        assert_eq!(t.counters().evicted, 100_000 - 236);
        assert_eq!(t.counters().table_full, 0);
        t.check_invariants();
    }

    #[test]
    fn eviction_order_addressed_then_newcomers_then_least_recent() {
        let mut t = DeviceTable::new(cfg(4));
        // mac(1), mac(2) established (signs at 1 s and 2 s / 3 s and 4 s); mac(3) a newcomer;
        // mac(4) only addressed.
        t.account(&obs(mac(1), BCAST, 1), NS);
        t.account(&obs(mac(2), BCAST, 1), NS);
        t.account(&obs(mac(1), BCAST, 1), 2 * NS);
        t.account(&obs(mac(2), BCAST, 1), 3 * NS);
        t.account(&obs(mac(3), mac(4), 1), 4 * NS);
        assert_eq!(t.get(&mac(4)).unwrap().class, Class::Addressed);
        assert_eq!(t.get(&mac(3)).unwrap().class, Class::Newcomer);
        t.account(&obs(mac(5), BCAST, 1), 5 * NS);
        assert!(t.get(&mac(4)).is_none(), "addressed first");
        t.account(&obs(mac(6), BCAST, 1), 6 * NS);
        assert!(t.get(&mac(3)).is_none(), "then the oldest newcomer");
        t.account(&obs(mac(7), BCAST, 1), 7 * NS);
        assert!(t.get(&mac(6)).is_some() && t.get(&mac(5)).is_none());
        // mac(5) sends again: established. mac(6), mac(7) are newcomers; then none.
        t.account(&obs(mac(6), BCAST, 1), 8 * NS);
        t.account(&obs(mac(7), BCAST, 1), 8 * NS);
        // Now all four are established: last signs mac(1) 2 s, mac(2) 3 s, mac(6), mac(7) 8 s.
        t.account(&obs(mac(8), BCAST, 1), 9 * NS);
        assert!(t.get(&mac(1)).is_none(), "least recent sign of life");
        assert!(t.get(&mac(2)).is_some());
        assert_eq!(t.counters().evicted, 4);
        // Past its expiry the victim counts as expired, not evicted.
        t.account(&obs(mac(9), BCAST, 1), 200 * NS);
        assert_eq!(t.counters().expired, 1);
        assert_eq!(t.counters().evicted, 4);
        // An evicted device that returns starts from zero.
        t.account(&obs(mac(1), BCAST, 5), 201 * NS);
        assert_eq!(t.get(&mac(1)).unwrap().tx_bytes, 5);
        t.check_invariants();
    }

    #[test]
    fn inactive_after_timeout_then_expired() {
        let mut t = DeviceTable::new(cfg(8));
        t.account(&obs(A, B, 100), 0);
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
        assert_eq!(b.ipv4(), Some(Ipv4Addr::new(10, 0, 0, 2)));
        let d = t.devices(20 * NS, 1_700_000_000 * NS);
        assert_eq!(d.len(), 2);
        assert_eq!(t.end_cycle(99 * NS), 0);
        assert_eq!(t.len(), 2);
        assert_eq!(t.end_cycle(100 * NS), 1);
        assert!(t.get(&A).is_none() && t.get(&B).is_some());
        t.end_cycle(116 * NS);
        assert!(t.is_empty());
        assert_eq!(t.counters().expired, 2);
    }

    #[test]
    fn expire_zero_never_expires() {
        let mut c = cfg(2);
        c.expire_ns = 0;
        let mut t = DeviceTable::new(c);
        t.account(&obs(A, B, 100), 0);
        t.end_cycle(4 * 365 * 86_400 * NS);
        assert_eq!(t.len(), 2);
        assert_eq!(t.counters().expired, 0);
        // A full table still takes newcomers (the victim counts as evicted).
        t.account(&obs(mac(1), BCAST, 1), 4 * 365 * 86_400 * NS);
        assert!(t.get(&mac(1)).is_some() && t.get(&B).is_none());
        assert_eq!(t.counters().evicted, 1);
    }

    #[test]
    fn labels_follow_the_wall_clock_given_for_now() {
        let mut t = DeviceTable::new(cfg(8));
        // Table clock: monotonic ns since boot. First seen 10 s before the snapshot.
        t.account(&obs(A, BCAST, 100), 50 * NS);
        let wall = 1_767_225_600 * NS; // 2026-01-01T00:00:00Z
        let d = t.devices(60 * NS, wall);
        assert_eq!(d[0].first_seen, "2025-12-31T23:59:50.000Z");
        assert_eq!(d[0].time_checked, "2026-01-01T00:00:00.000Z");
        // The wall clock stepped back 30 days: labels move, status and totals do not.
        let d = t.devices(60 * NS, wall - 30 * 86_400 * NS);
        assert_eq!(d[0].first_seen, "2025-12-01T23:59:50.000Z");
        assert_eq!(d[0].status, DeviceStatus::Active);
        assert_eq!(d[0].bandwidth.tx_bytes_total, 100);
    }

    #[test]
    fn rates_over_the_last_cycle() {
        let mut t = DeviceTable::new(cfg(8));
        t.account(&obs(A, B, 1000), 0);
        t.account(&obs(A, B, 1500), 2 * NS);
        t.end_cycle(5 * NS);
        let a = t.get(&A).unwrap();
        assert_eq!(a.tx_rate_bps, 2500 * 8 / 5);
        assert_eq!(t.get(&B).unwrap().rx_rate_bps, 2500 * 8 / 5);
        t.end_cycle(10 * NS);
        assert_eq!(t.get(&A).unwrap().tx_rate_bps, 0);
        assert_eq!(t.get(&A).unwrap().tx_bytes, 2500);
    }

    #[test]
    fn begin_starts_the_first_cycle() {
        let mut t = DeviceTable::new(cfg(8));
        t.begin(0);
        t.account(&obs(A, B, 1000), 4 * NS);
        t.end_cycle(5 * NS);
        assert_eq!(t.get(&A).unwrap().tx_rate_bps, 1000 * 8 / 5);
    }

    #[test]
    fn counters_never_decrease_and_structures_agree_under_churn() {
        let mut t = DeviceTable::new(cfg(16));
        let mut last = Counters::default();
        let mut rng = Rng(12345);
        for i in 0..20_000u64 {
            let r = rng.next();
            let src = mac((r % 40) as u32);
            let dst = if r & 0x100 == 0 {
                BCAST
            } else {
                mac(((r >> 9) % 40) as u32)
            };
            let ts = i * NS / 10;
            let before = t.get(&src).map(|e| (e.tx_bytes, e.tx_packets));
            t.account(&obs(src, dst, (r % 1500) as u32), ts);
            if let (Some(b), Some(e)) = (before, t.get(&src)) {
                assert!(e.tx_bytes >= b.0 && e.tx_packets > b.1);
            }
            if i % 50 == 0 {
                t.end_cycle(ts);
            }
            let c = t.counters();
            assert!(c.packets_seen > last.packets_seen && c.bytes_seen >= last.bytes_seen);
            assert!(c.table_full >= last.table_full && c.expired >= last.expired);
            assert!(c.malformed >= last.malformed && c.evicted >= last.evicted);
            last = c;
            assert!(t.len() <= 16);
            if i % 997 == 0 {
                t.check_invariants();
            }
        }
        t.check_invariants();
    }

    /// At the largest size, filled and churned with random MACs, every MAC finds a slot.
    #[test]
    fn the_index_never_overflows_at_max_capacity() {
        let mut c = cfg(MAX_CAPACITY);
        c.seed = [0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3211];
        let mut t = DeviceTable::new(c);
        let mut rng = Rng(777);
        for n in 0..400_000u64 {
            t.account(&obs(rng.unicast_mac(), BCAST, 60), n);
        }
        assert_eq!(t.len(), MAX_CAPACITY);
        assert_eq!(t.counters().table_full, 0);
        assert_eq!(t.counters().evicted, 400_000 - MAX_CAPACITY as u64);
        t.check_invariants();
    }

    /// MACs crafted to share buckets (found by brute force with the seed known, which an
    /// attacker does not have) cost a bounded number of probes: those that do not fit are
    /// counted, never searched for.
    #[test]
    fn colliding_macs_are_bounded() {
        let mut t = DeviceTable::new(cfg(4096));
        let target = t.buckets(key(&mac(0)));
        let mut crafted = Vec::new();
        let mut n = 1u32;
        while crafted.len() < 40 {
            let m = mac(n);
            if t.buckets(key(&m)) == target {
                crafted.push(m);
            }
            n += 1;
        }
        for (i, m) in crafted.iter().enumerate() {
            t.account(&obs(*m, BCAST, 60), i as u64);
        }
        // Two buckets of 8 slots (a moved occupant could free one, but all share both).
        assert_eq!(t.len(), 16);
        assert_eq!(t.counters().table_full, 24);
        t.check_invariants();
    }

    /// The internet/local split with the router's MACs found through the key filter agrees
    /// with `locality::classify` (a plain search of the MAC list), for own MACs, MACs whose
    /// filter bit collides with an own MAC's, and MACs that share nothing with them.
    #[test]
    fn own_macs_by_filter_classify_as_by_list() {
        let own: Vec<Mac> = (0..MAX_EXCLUDED as u8)
            .map(|i| [0x02, 0, 0x5e, 0, 1, i])
            .collect();
        let mut t = DeviceTable::new(cfg(1024));
        t.set_excluded(&own);
        let mut nets = LocalNets::new();
        nets.add_v4(Ipv4Cidr::new(Ipv4Addr::new(192, 168, 1, 0), 24).unwrap());
        t.set_local_nets(nets.clone());
        let own_bits = own.iter().fold(0, |f, m| f | filter_bit(key(m)));
        // Devices: the first 8 whose filter bit is one of the own MACs', then 8 whose is not.
        let candidates = (0..10_000u32).map(|i| [0x02, 0x11, 0, 0, (i >> 8) as u8, i as u8]);
        let (collide, apart): (Vec<Mac>, Vec<Mac>) =
            candidates.partition(|m| own_bits & filter_bit(key(m)) != 0);
        let devices: Vec<Mac> = collide
            .iter()
            .take(8)
            .chain(apart.iter().take(8))
            .copied()
            .collect();
        assert_eq!(devices.len(), 16);
        let lan = Ipv4Addr::new(192, 168, 1, 50);
        let wan = Ipv4Addr::new(8, 8, 8, 8);
        let mut want: std::collections::HashMap<Mac, (u64, u64)> = Default::default();
        let macs: Vec<Mac> = own.iter().take(3).chain(devices.iter()).copied().collect();
        let mut n = 0u64;
        for &src in &macs {
            for &dst in &macs {
                for (s_ip, d_ip) in [(lan, wan), (wan, lan), (lan, lan)] {
                    n += 1;
                    let o = Observation {
                        len: 100 + n as u32,
                        src: Some(src),
                        dst: Some(dst),
                        ipv4_src: Some(s_ip),
                        ipv4_dst: Some(d_ip),
                        ethertype: crate::decode::ETHERTYPE_IPV4,
                        ..Observation::default()
                    };
                    match locality::classify(&o, &own, &nets) {
                        Scope::InternetTx => want.entry(src).or_default().0 += o.len as u64,
                        Scope::InternetRx => want.entry(dst).or_default().1 += o.len as u64,
                        _ => {}
                    }
                    t.account(&o, n);
                }
            }
        }
        for m in &own {
            assert!(t.get(m).is_none());
        }
        for m in &devices {
            let e = t.get(m).expect("device tracked");
            let (tx, rx) = want.get(m).copied().unwrap_or_default();
            assert_eq!(
                (e.internet.tx_bytes, e.internet.rx_bytes),
                (tx, rx),
                "{m:02x?}"
            );
        }
        assert!(want.values().any(|&(tx, rx)| tx > 0 && rx > 0));
        t.check_invariants();
    }

    #[test]
    fn excluded_macs_are_not_tracked() {
        let mut t = DeviceTable::new(cfg(8));
        t.account(&obs(A, B, 10), 0);
        t.set_excluded(&[A]);
        assert!(t.get(&A).is_none());
        t.account(&obs(A, B, 10), 0);
        assert!(t.get(&A).is_none());
        assert_eq!(t.get(&B).unwrap().rx_bytes, 20);
        t.check_invariants();
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
        assert_eq!(a.ipv4(), Some(Ipv4Addr::new(192, 168, 1, 23)));
        assert_eq!(a.ipv6.as_slice(), &["fe80::1".parse::<Ipv6Addr>().unwrap()]);
        assert_eq!(a.vlan(), Some(10));
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
        let mut o = obs(A, B, 10);
        o.ipv4_src = Some(Ipv4Addr::new(8, 8, 8, 8));
        t.account(&o, 0);
        assert_eq!(t.get(&A).unwrap().ipv4(), None);
        o.ipv4_src = Some(Ipv4Addr::new(10, 0, 0, 5));
        t.account(&o, 0);
        assert_eq!(t.get(&A).unwrap().ipv4(), Some(Ipv4Addr::new(10, 0, 0, 5)));
        assert!(t.learn_arp_reply(A, Ipv4Addr::new(192, 168, 0, 1), 0));
        assert_eq!(t.get(&A).unwrap().ipv4(), Some(Ipv4Addr::new(10, 0, 0, 5)));
    }

    #[test]
    fn long_and_odd_names() {
        let mut e = Entry::new(A, 0, Class::Newcomer, 0);
        e.set_name(&"é".repeat(40));
        assert!(e.name.len() <= NAME_MAX && e.name.chars().all(|c| c == 'é'));
        assert_eq!(clean_name(b"ab\x01"), None);
        assert_eq!(clean_name(b"host\0"), Some("host"));
        assert_eq!(clean_name(b"\xff"), None);
    }

    #[test]
    fn a_mac_on_two_ports_is_two_devices() {
        let mut t = DeviceTable::new(cfg(8));
        t.account(&obs(A, B, 100), 0);
        t.select_port(1, None);
        t.account(&obs(A, B, 300), 0);
        t.account(&obs(A, BCAST, 60), 0);
        assert_eq!(t.len(), 4);
        assert_eq!(t.get(&A).map(|e| (e.port, e.tx_bytes)), Some((1, 360)));
        t.select_port(0, None);
        assert_eq!(t.get(&A).map(|e| (e.port, e.tx_bytes)), Some((0, 100)));
        t.check_invariants();
        // Removing one keeps the other findable (the index points at the right entry).
        t.set_excluded(&[B]);
        assert_eq!(t.len(), 2);
        t.check_invariants();
        assert_eq!(t.get(&A).map(|e| e.tx_bytes), Some(100));
        t.select_port(1, None);
        assert_eq!(t.get(&A).map(|e| e.tx_bytes), Some(360));
        t.set_excluded(&[A]);
        assert!(t.is_empty());
    }

    #[test]
    fn entry_size() {
        // 240 B before the u8 lengths, the sentinels for VLAN and IPv4 and the layout by hand.
        let size = std::mem::size_of::<Entry>();
        println!(
            "entry {size} B, {} B per device with the index",
            DeviceTable::bytes_per_device()
        );
        // + 64 B for the internet part (`locality::Internet`: totals, last-cycle rates), + 8 B
        // (one byte and alignment) for the port.
        assert!(size <= 232 + 64 + 8, "entry is {size} B");
    }
}
