//! Per-frame cost of the device table with MACs chosen to collide vs random MACs (`make bench`
//! runs it), at table sizes 4096 and 65536:
//! - "old": the index the table had before (unkeyed multiplicative hash, linear probing),
//!   modelled here: decode + lookup (insert on a miss) + the tx counters of a 240-byte entry
//!   (the old entry size), per frame;
//! - "new": decode + account through `DeviceTable` (keyed two-choice buckets).
//!
//! MAC sets (the same number of MACs in each set at a size):
//! - random: xorshift MACs;
//! - crafted-old: MACs whose keys are multiples of 2,971,215,073, a denominator of a continued
//!   fraction of the old hash's constant: their products all fall in the last few home slots
//!   of the old index (one cluster), whatever the table size. Anyone on a LAN can send them;
//! - crafted-new: MACs sharing their first bucket in the new index, found by brute force with
//!   the seed known (the agent draws the seed from getrandom at start, so nobody knows it):
//!   the worst case the bounded probing allows.
//!
//! Frames: 60-byte Ethernet frames from each MAC in turn to the broadcast address, after one
//! warm-up pass (so the MACs are in the table); each row runs for at least 0.3 s (at most 2 M
//! frames), best of 3; a new clock reading every 1000 frames, like a drained ring block.
//! Prints `table SIZE HASH SET: NS ns/frame (MACS MACs)` per row.

use std::time::Instant;

use netmon_agent::decode;
use netmon_agent::devices::{DeviceTable, TableConfig};
use netmon_agent::frame::Frame;

type Mac = [u8; 6];

const FRAMES: usize = 2_000_000;
const CHUNK: usize = 1000;

/// The old index: slots of MAC << 16 | index, linear probing from a multiplicative hash.
struct OldIndex {
    slots: Vec<u64>,
    shift: u32,
    entries: Vec<[u64; 30]>,
    capacity: usize,
    table_full: u64,
}

const EMPTY: u64 = u64::MAX;

fn key(m: &Mac) -> u64 {
    m.iter().fold(0u64, |k, &b| k << 8 | b as u64)
}

impl OldIndex {
    fn new(capacity: usize) -> OldIndex {
        let slots = (capacity * 2).next_power_of_two().max(8);
        OldIndex {
            slots: vec![EMPTY; slots],
            shift: 64 - slots.trailing_zeros(),
            entries: Vec::with_capacity(capacity),
            capacity,
            table_full: 0,
        }
    }

    fn find(&self, k: u64) -> Result<usize, usize> {
        let mask = self.slots.len() - 1;
        let mut s = (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize;
        loop {
            let v = self.slots[s];
            if v == EMPTY {
                return Err(s);
            }
            if v >> 16 == k {
                return Ok(s);
            }
            s = (s + 1) & mask;
        }
    }

    fn account(&mut self, obs: &decode::Observation) {
        let Some(src) = obs.src else { return };
        let k = key(&src);
        let i = match self.find(k) {
            Ok(s) => self.slots[s] as u16 as usize,
            Err(s) => {
                if self.entries.len() >= self.capacity {
                    self.table_full += 1;
                    return;
                }
                let i = self.entries.len();
                self.entries.push([0; 30]);
                self.slots[s] = k << 16 | i as u64;
                i
            }
        };
        self.entries[i][0] += obs.len as u64;
        self.entries[i][1] += 1;
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn mac_of(k: u64) -> Mac {
    let b = k.to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

fn random_macs(n: usize) -> Vec<Mac> {
    let mut r = Rng(0x1234_5678_9abc_def1);
    (0..n)
        .map(|_| {
            let mut m = mac_of(r.next());
            m[0] &= 0xfe;
            m
        })
        .collect()
}

/// Unicast MACs whose keys are multiples of q, with q * C = -50,920,843 (mod 2^64).
fn crafted_old(n: usize) -> Vec<Mac> {
    const Q: u64 = 2_971_215_073;
    (1..(1u64 << 48) / Q)
        .map(|j| mac_of(j * Q))
        .filter(|m| m[0] & 1 == 0)
        .take(n)
        .collect()
}

/// Unicast MACs sharing their first bucket in `table`'s index (the seed known).
fn crafted_new(table: &DeviceTable, n: usize) -> Vec<Mac> {
    let target = table.index_buckets(&[0x02, 0, 0, 0, 0, 1]).0;
    let mut out = Vec::with_capacity(n);
    let mut k = 0x0200_0000_0000u64;
    while out.len() < n {
        let m = mac_of(k);
        if table.index_buckets(&m).0 == target {
            out.push(m);
        }
        k += 1;
    }
    out
}

fn frames(macs: &[Mac]) -> Vec<[u8; 60]> {
    macs.iter()
        .map(|m| {
            let mut f = [0u8; 60];
            f[..6].copy_from_slice(&[0xff; 6]);
            f[6..12].copy_from_slice(m);
            f[12..14].copy_from_slice(&[0x88, 0xb5]);
            f
        })
        .collect()
}

/// Best ns/frame of 3 runs; `run(from, n)` handles frames from..from+n.
fn time(mut run: impl FnMut(usize, usize)) -> f64 {
    let mut best = f64::MAX;
    let mut from = 0;
    for _ in 0..3 {
        let t = Instant::now();
        let mut n = 0;
        while n < FRAMES && (n < 10 * CHUNK || t.elapsed().as_secs_f64() < 0.3) {
            run(from, CHUNK);
            from += CHUNK;
            n += CHUNK;
        }
        best = best.min(t.elapsed().as_secs_f64() * 1e9 / n as f64);
    }
    best
}

fn old_row(capacity: usize, macs: &[Mac]) -> f64 {
    let fr = frames(macs);
    let mut idx = OldIndex::new(capacity);
    for f in &fr {
        idx.account(&decode::decode(&Frame::ethernet(0, 60, f)));
    }
    time(|from, n| {
        for i in from..from + n {
            let f = &fr[i % fr.len()];
            idx.account(&decode::decode(&Frame::ethernet(i as u64, 60, f)));
        }
    })
}

fn new_row(table: &mut DeviceTable, macs: &[Mac]) -> f64 {
    let fr = frames(macs);
    for f in &fr {
        table.observe(&Frame::ethernet(1, 60, f));
    }
    let ns = time(|from, n| {
        // One clock reading per chunk, like a drained ring block.
        let t = 2 + (from / CHUNK) as u64;
        for i in from..from + n {
            table.observe(&Frame::ethernet(t, 60, &fr[i % fr.len()]));
        }
    });
    std::hint::black_box(table.counters());
    ns
}

fn main() {
    // An optional argument keeps only the rows whose name contains it (profiling).
    let only = std::env::args().nth(1).unwrap_or_default();
    let want = |row: &str| row.contains(only.as_str());
    for capacity in [4096usize, 65536] {
        // The crafted-old set has ~47k unicast MACs below 2^48; the same count everywhere.
        let n = capacity.min(40_000);
        let cfg = TableConfig {
            capacity,
            seed: [0x5eed_0001, 0x5eed_0002],
            ..TableConfig::default()
        };
        let sets = [("random", random_macs(n)), ("crafted-old", crafted_old(n))];
        for (name, macs) in &sets {
            if !want(&format!("table {capacity} old {name}")) {
                continue;
            }
            let ns = old_row(capacity, macs);
            println!(
                "table {capacity} old {name}: {ns:.1} ns/frame ({} MACs)",
                macs.len()
            );
        }
        for (name, macs) in &sets {
            if !want(&format!("table {capacity} new {name}")) {
                continue;
            }
            let mut table = DeviceTable::new(cfg);
            let ns = new_row(&mut table, macs);
            println!(
                "table {capacity} new {name}: {ns:.1} ns/frame ({} MACs)",
                macs.len()
            );
        }
        if !want(&format!("table {capacity} new crafted-new")) {
            continue;
        }
        let mut table = DeviceTable::new(cfg);
        let macs = crafted_new(&table, 2_000);
        let ns = new_row(&mut table, &macs);
        println!(
            "table {capacity} new crafted-new: {ns:.1} ns/frame ({} MACs, {} tracked)",
            macs.len(),
            table.len()
        );
    }
}
