//! decode + account over arbitrary frames. Input: a sequence of records
//! `[link selector][flags][orig_len: u16][data len: u8][data...]`; every 64 frames the cycle
//! ends and the snapshot's device list is built, as the agent does.
#![no_main]

use netmon_agent::devices::{DeviceTable, TableConfig};
use netmon_agent::frame::{Direction, Frame, LinkType};
use netmon_agent::{addr, decode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let mut table = DeviceTable::new(TableConfig {
        capacity: 8,
        cycle_ns: 1_000,
        timeout_cycles: 2,
        expire_ns: 5_000,
        range: addr::Ipv4Cidr::parse("10.0.0.0/8").ok(),
        ..TableConfig::default()
    });
    let mut rest = input;
    let mut ts = 0u64;
    let mut n = 0u64;
    while rest.len() >= 5 {
        let link = match rest[0] % 3 {
            0 => LinkType::Ethernet,
            1 => LinkType::LinuxSll,
            _ => LinkType::LinuxSll2,
        };
        let flags = rest[1];
        let orig_len = u16::from_le_bytes([rest[2], rest[3]]) as u32;
        let len = (rest[4] as usize).min(rest.len() - 5);
        let data = &rest[5..5 + len];
        rest = &rest[5 + len..];
        ts += (flags & 0x0f) as u64 * 300;
        let frame = Frame {
            ts,
            orig_len,
            data,
            link,
            direction: Direction::from_pkttype((flags >> 4) as u16 & 7),
            vlan: (flags & 0x80 != 0).then_some(flags as u16),
        };
        let obs = decode::decode(&frame);
        assert!(
            obs.src.is_some() || obs.malformed || link != LinkType::Ethernet || data.len() >= 12
        );
        let before = table.counters();
        table.account(&obs, ts);
        let after = table.counters();
        assert!(after.packets_seen == before.packets_seen + 1);
        assert!(table.len() <= table.capacity());
        n += 1;
        if n % 64 == 0 {
            table.end_cycle(ts);
            let _ = table.devices(ts, ts);
        }
    }
    for e in table.iter() {
        assert_eq!(table.get(&e.mac).map(|x| x.mac), Some(e.mac));
    }
});
