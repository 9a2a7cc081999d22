//! Internet or local: which frames a device exchanged with the internet.
//!
//! Pure and allocation-free: [`classify`] takes a decoded frame, the router's own MACs and the
//! local ranges, and says where the frame goes. The rule (also in the accounting rules):
//! - a frame from a device to a router MAC whose IPv4/IPv6 **destination** is outside every local
//!   range is the device's internet **tx**; a frame from a router MAC to a device whose IP
//!   **source** is outside every local range is the device's internet **rx**;
//! - everything else is local: device to device, device to the router itself (its own
//!   addresses are local ranges too), broadcast and multicast;
//! - a frame between a device and a router MAC with no IP header the agent could read (cut by
//!   the snap length, or another protocol than IPv4/IPv6/ARP) is local and *unclassified*, which
//!   the capture counts; ARP never leaves the link and is plain local.
//!
//! Local ranges: those added with [`LocalNets::add_v4`]/[`LocalNets::add_v6`] (the LAN ranges,
//! the interfaces' IPv6 prefixes, the router's own addresses) plus the ranges that never route
//! to the internet: unspecified, loopback, link-local (169.254.0.0/16, fe80::/10), multicast,
//! the IPv4 limited broadcast.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::addr::Ipv4Cidr;
use crate::decode::{is_unicast, Mac, Observation, ETHERTYPE_ARP};
use crate::sys::ifaddrs::Addresses;

/// Ranges of each family kept at most (more are ignored; [`LocalNets::add_v4`] says so).
pub const MAX_NETS: usize = 64;

/// Where one frame goes, seen from the devices it concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Device to device, device to router, or no device involved.
    Local,
    /// The source device sent it to the internet.
    InternetTx,
    /// The destination device received it from the internet.
    InternetRx,
    /// Between a device and the router, without a readable IP header: local, and counted.
    Unclassified,
}

/// The local IPv4 and IPv6 ranges, fixed size.
#[derive(Debug, Clone, Default)]
pub struct LocalNets {
    v4: heapless::Vec<Ipv4Cidr, MAX_NETS>,
    /// (network, prefix length), host bits cleared.
    v6: heapless::Vec<(u128, u8), MAX_NETS>,
}

fn mask6(prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix.min(128) as u32)
    }
}

impl LocalNets {
    /// No range yet.
    pub fn new() -> LocalNets {
        LocalNets::default()
    }

    /// Adds an IPv4 range (once); false when [`MAX_NETS`] others are held already.
    pub fn add_v4(&mut self, net: Ipv4Cidr) -> bool {
        if self.v4.contains(&net) {
            return true;
        }
        self.v4.push(net).is_ok()
    }

    /// Adds an IPv6 prefix (once); false when [`MAX_NETS`] others are held already.
    pub fn add_v6(&mut self, addr: Ipv6Addr, prefix: u8) -> bool {
        let prefix = prefix.min(128);
        let net = (u128::from(addr) & mask6(prefix), prefix);
        if self.v6.contains(&net) {
            return true;
        }
        self.v6.push(net).is_ok()
    }

    /// The IPv4 ranges held.
    pub fn v4(&self) -> &[Ipv4Cidr] {
        &self.v4
    }

    /// True when `ip` is local (a range held, or one that never routes).
    pub fn is_local_v4(&self, ip: Ipv4Addr) -> bool {
        ip.is_unspecified()
            || ip.is_loopback()
            || ip.is_link_local()
            || ip.is_multicast()
            || ip.is_broadcast()
            || self.v4.iter().any(|n| n.contains(ip))
    }

    /// True when `ip` is local (a prefix held, or one that never routes).
    pub fn is_local_v6(&self, ip: Ipv6Addr) -> bool {
        let a = u128::from(ip);
        if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() {
            return true;
        }
        // fe80::/10 link-local.
        if a >> 118 == 0xfe80 >> 6 {
            return true;
        }
        // An IPv4-mapped address is as local as the IPv4 address.
        if let Some(v4) = ip.to_ipv4_mapped() {
            return self.is_local_v4(v4);
        }
        self.v6
            .iter()
            .any(|&(net, prefix)| a & mask6(prefix) == net)
    }
}

/// The local ranges of a router: the configured LAN ranges, the IPv4 subnets and IPv6 prefixes
/// of the monitored interfaces, and every address of the router itself (any interface, as a
/// single host: traffic to the router's WAN address is traffic to the router). `addresses` is
/// what `sys::ifaddrs::all` returns. Past [`MAX_NETS`] per family the rest are left out.
pub fn router_nets(
    ranges: &[Ipv4Cidr],
    monitored: &[&str],
    addresses: &[(String, Addresses)],
) -> LocalNets {
    let mut nets = LocalNets::new();
    for r in ranges {
        nets.add_v4(*r);
    }
    for (name, a) in addresses {
        let lan = monitored.contains(&name.as_str());
        for &(ip, prefix) in &a.ipv4 {
            let prefix = if lan { prefix } else { 32 };
            if let Some(net) = Ipv4Cidr::new(ip, prefix) {
                nets.add_v4(net);
            }
        }
        for &(ip, prefix) in &a.ipv6 {
            nets.add_v6(ip, if lan { prefix } else { 128 });
        }
    }
    nets
}

/// One device's internet traffic: totals and the rates of the last cycle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Internet {
    /// Bytes received from the internet.
    pub rx_bytes: u64,
    /// Bytes sent to the internet.
    pub tx_bytes: u64,
    /// Frames received from the internet.
    pub rx_packets: u64,
    /// Frames sent to the internet.
    pub tx_packets: u64,
    /// Bits per second over the last finished cycle.
    pub rx_rate_bps: u64,
    /// Bits per second sent over the last finished cycle.
    pub tx_rate_bps: u64,
    cycle_rx_bytes: u64,
    cycle_tx_bytes: u64,
}

impl Internet {
    /// Counts a frame of `len` bytes sent to the internet.
    #[inline]
    pub fn add_tx(&mut self, len: u64) {
        self.tx_bytes += len;
        self.tx_packets += 1;
    }

    /// Counts a frame of `len` bytes received from the internet.
    #[inline]
    pub fn add_rx(&mut self, len: u64) {
        self.rx_bytes += len;
        self.rx_packets += 1;
    }

    /// Closes a cycle of `dt_ns`: the rates are the bytes since the previous close.
    pub fn end_cycle(&mut self, dt_ns: u64, rate: impl Fn(u64, u64) -> u64) {
        self.rx_rate_bps = rate(self.rx_bytes - self.cycle_rx_bytes, dt_ns);
        self.tx_rate_bps = rate(self.tx_bytes - self.cycle_tx_bytes, dt_ns);
        self.cycle_rx_bytes = self.rx_bytes;
        self.cycle_tx_bytes = self.tx_bytes;
    }
}

/// Classifies one decoded frame. `router` holds the router's own MACs (the gateway MACs).
#[inline]
pub fn classify(obs: &Observation, router: &[Mac], nets: &LocalNets) -> Scope {
    let is_router = |m: Option<Mac>| m.is_some_and(|m| router.contains(&m));
    classify_known(obs, is_router(obs.src), is_router(obs.dst), nets)
}

/// [`classify`] for a caller that already knows whether the frame's source and destination
/// MACs are the router's own (`from_router`, `to_router`; only read when both are unicast).
#[inline]
pub fn classify_known(
    obs: &Observation,
    from_router: bool,
    to_router: bool,
    nets: &LocalNets,
) -> Scope {
    let (Some(src), Some(dst)) = (obs.src, obs.dst) else {
        return Scope::Local;
    };
    if !is_unicast(&src) || !is_unicast(&dst) {
        return Scope::Local;
    }
    if from_router == to_router {
        // Device to device, or the router to itself.
        return Scope::Local;
    }
    // The IP peer: the destination when the device sends, the source when it receives.
    let peer_local = match (obs.ipv4_src, obs.ipv4_dst, obs.ipv6_src, obs.ipv6_dst) {
        (Some(s), Some(d), _, _) => nets.is_local_v4(if to_router { d } else { s }),
        (_, _, Some(s), Some(d)) => nets.is_local_v6(if to_router { d } else { s }),
        _ if obs.ethertype == ETHERTYPE_ARP => return Scope::Local,
        _ => return Scope::Unclassified,
    };
    match (peer_local, to_router) {
        (true, _) => Scope::Local,
        (false, true) => Scope::InternetTx,
        (false, false) => Scope::InternetRx,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::decode;
    use crate::decode::tests::{arp_request, eth, A, B};
    use crate::frame::{Direction, Frame, LinkType};

    const ROUTER: Mac = [0x02, 0x00, 0x5e, 0x10, 0x00, 0x01];

    fn ipv4(src: [u8; 4], dst: [u8; 4], total_len: usize) -> Vec<u8> {
        let mut ip = vec![
            0x45,
            0,
            (total_len >> 8) as u8,
            total_len as u8,
            0,
            0,
            0,
            0,
            64,
            6,
            0,
            0,
        ];
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        ip.resize(total_len, 0);
        ip
    }

    fn ipv6(src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
        let mut ip = vec![0x60, 0, 0, 0, 0, 8, 17, 64];
        ip.extend_from_slice(&src.octets());
        ip.extend_from_slice(&dst.octets());
        ip.extend_from_slice(&[0; 8]);
        ip
    }

    fn nets() -> LocalNets {
        let mut n = LocalNets::new();
        assert!(n.add_v4(Ipv4Cidr::parse("192.168.1.0/24").unwrap()));
        assert!(n.add_v4(Ipv4Cidr::parse("10.20.0.0/16").unwrap()));
        // The router's own WAN address.
        assert!(n.add_v4(Ipv4Cidr::parse("203.0.113.1/32").unwrap()));
        assert!(n.add_v6("2001:db8:1:2::".parse().unwrap(), 64));
        assert!(n.add_v6("fd00:abcd::1".parse().unwrap(), 48));
        n
    }

    fn scope(dst: Mac, src: Mac, ethertype: u16, payload: &[u8]) -> Scope {
        let data = eth(dst, src, ethertype, payload);
        let f = Frame {
            ts: 0,
            orig_len: data.len() as u32,
            data: &data,
            link: LinkType::Ethernet,
            vlan: None,
            direction: Direction::Unknown,
        };
        classify(&decode(&f), &[ROUTER], &nets())
    }

    #[test]
    fn ipv4_device_to_router() {
        let wan = ipv4([192, 168, 1, 23], [198, 51, 100, 7], 60);
        assert_eq!(scope(ROUTER, A, 0x0800, &wan), Scope::InternetTx);
        let back = ipv4([198, 51, 100, 7], [192, 168, 1, 23], 60);
        assert_eq!(scope(A, ROUTER, 0x0800, &back), Scope::InternetRx);
        // To the router itself, on its LAN and on its WAN address.
        let own = ipv4([192, 168, 1, 23], [192, 168, 1, 1], 60);
        assert_eq!(scope(ROUTER, A, 0x0800, &own), Scope::Local);
        let own_wan = ipv4([192, 168, 1, 23], [203, 0, 113, 1], 60);
        assert_eq!(scope(ROUTER, A, 0x0800, &own_wan), Scope::Local);
        // Routed between two LAN ranges.
        let other_lan = ipv4([192, 168, 1, 23], [10, 20, 3, 4], 60);
        assert_eq!(scope(ROUTER, A, 0x0800, &other_lan), Scope::Local);
        // Link-local, multicast, broadcast, loopback never are the internet.
        for d in [
            [169, 254, 3, 4],
            [224, 0, 0, 251],
            [255, 255, 255, 255],
            [127, 0, 0, 1],
        ] {
            let p = ipv4([192, 168, 1, 23], d, 60);
            assert_eq!(scope(ROUTER, A, 0x0800, &p), Scope::Local, "{d:?}");
        }
        // A private address outside the LAN ranges is beyond the router: internet.
        let cgnat = ipv4([192, 168, 1, 23], [100, 64, 0, 9], 60);
        assert_eq!(scope(ROUTER, A, 0x0800, &cgnat), Scope::InternetTx);
    }

    #[test]
    fn device_to_device_is_local_whatever_the_addresses() {
        let wan = ipv4([192, 168, 1, 23], [198, 51, 100, 7], 60);
        assert_eq!(scope(B, A, 0x0800, &wan), Scope::Local);
        // The router to itself is no device's traffic.
        assert_eq!(scope(ROUTER, ROUTER, 0x0800, &wan), Scope::Local);
        // To a broadcast MAC.
        assert_eq!(scope([0xff; 6], A, 0x0800, &wan), Scope::Local);
    }

    #[test]
    fn ipv6_prefixes() {
        let a: Ipv6Addr = "2001:db8:1:2::23".parse().unwrap();
        let wan: Ipv6Addr = "2001:db8:ffff::7".parse().unwrap();
        assert_eq!(scope(ROUTER, A, 0x86dd, &ipv6(a, wan)), Scope::InternetTx);
        assert_eq!(scope(A, ROUTER, 0x86dd, &ipv6(wan, a)), Scope::InternetRx);
        for local in [
            "2001:db8:1:2::1",
            "fe80::1",
            "ff02::1",
            "fd00:abcd:0:9::5",
            "::1",
        ] {
            let l: Ipv6Addr = local.parse().unwrap();
            assert_eq!(
                scope(ROUTER, A, 0x86dd, &ipv6(a, l)),
                Scope::Local,
                "{local}"
            );
        }
        // IPv4-mapped: as local as the IPv4 address.
        let mapped: Ipv6Addr = "::ffff:192.168.1.9".parse().unwrap();
        assert_eq!(scope(ROUTER, A, 0x86dd, &ipv6(a, mapped)), Scope::Local);
        let mapped: Ipv6Addr = "::ffff:198.51.100.9".parse().unwrap();
        assert_eq!(
            scope(ROUTER, A, 0x86dd, &ipv6(a, mapped)),
            Scope::InternetTx
        );
    }

    #[test]
    fn vlan_tagged_frames_are_classified_by_their_inner_ip() {
        let mut tagged = vec![0x00, 0x14, 0x08, 0x00];
        tagged.extend_from_slice(&ipv4([192, 168, 1, 23], [198, 51, 100, 7], 60));
        assert_eq!(scope(ROUTER, A, 0x8100, &tagged), Scope::InternetTx);
    }

    #[test]
    fn no_ip_header_is_unclassified_and_arp_is_local() {
        assert_eq!(scope(ROUTER, A, 0x0806, &arp_request()), Scope::Local);
        // ARP cut short is still ARP.
        assert_eq!(scope(ROUTER, A, 0x0806, &arp_request()[..10]), Scope::Local);
        // An IPv4 header cut at every length below 20 bytes.
        let full = ipv4([192, 168, 1, 23], [198, 51, 100, 7], 60);
        for cut in 0..20 {
            assert_eq!(
                scope(ROUTER, A, 0x0800, &full[..cut]),
                Scope::Unclassified,
                "cut at {cut}"
            );
        }
        // IPv6 cut inside its 40-byte header.
        let v6 = ipv6(
            "2001:db8:1:2::23".parse().unwrap(),
            "2001:db8:ffff::7".parse().unwrap(),
        );
        assert_eq!(scope(ROUTER, A, 0x86dd, &v6[..39]), Scope::Unclassified);
        // Another protocol (PPPoE discovery) between a device and the router.
        assert_eq!(
            scope(ROUTER, A, 0x8863, &[0x11, 0x09, 0, 0, 0, 0]),
            Scope::Unclassified
        );
        // Frames too short for the EtherType.
        let data = [ROUTER, A].concat();
        let f = Frame {
            ts: 0,
            orig_len: 12,
            data: &data,
            link: LinkType::Ethernet,
            vlan: None,
            direction: Direction::Unknown,
        };
        assert_eq!(
            classify(&decode(&f), &[ROUTER], &nets()),
            Scope::Unclassified
        );
        // A device to device frame without IP stays plain local.
        assert_eq!(scope(B, A, 0x8863, &[0x11, 0x09, 0, 0, 0, 0]), Scope::Local);
    }

    #[test]
    fn the_snap_length_cut_keeps_the_addresses() {
        // The capture keeps the first 128 bytes: a 1500-byte packet is classified by them.
        let p = ipv4([192, 168, 1, 23], [198, 51, 100, 7], 1500);
        let data = eth(ROUTER, A, 0x0800, &p);
        let f = Frame {
            ts: 0,
            orig_len: data.len() as u32,
            data: &data[..128],
            link: LinkType::Ethernet,
            vlan: None,
            direction: Direction::Unknown,
        };
        assert_eq!(classify(&decode(&f), &[ROUTER], &nets()), Scope::InternetTx);
    }

    #[test]
    fn a_routers_nets() {
        let addrs = vec![
            (
                "br-lan".to_string(),
                Addresses {
                    ipv4: vec![(Ipv4Addr::new(192, 168, 1, 1), 24)],
                    ipv6: vec![
                        ("fe80::1".parse().unwrap(), 64),
                        ("2001:db8:1:2::1".parse().unwrap(), 64),
                    ],
                },
            ),
            (
                "wan".to_string(),
                Addresses {
                    ipv4: vec![(Ipv4Addr::new(203, 0, 113, 2), 24)],
                    ipv6: vec![("2001:db8:ffff::2".parse().unwrap(), 64)],
                },
            ),
        ];
        let n = router_nets(
            &[Ipv4Cidr::parse("10.9.0.0/16").unwrap()],
            &["br-lan"],
            &addrs,
        );
        let v4 = |s: &str| n.is_local_v4(s.parse().unwrap());
        let v6 = |s: &str| n.is_local_v6(s.parse().unwrap());
        assert!(v4("192.168.1.77") && v4("10.9.200.1") && v4("203.0.113.2"));
        // The WAN's subnet is not local: only the router's own address there.
        assert!(!v4("203.0.113.9"));
        assert!(v6("2001:db8:1:2::99") && v6("2001:db8:ffff::2"));
        assert!(!v6("2001:db8:ffff::9"));
    }

    #[test]
    fn ranges_are_bounded() {
        let mut n = LocalNets::new();
        for i in 0..MAX_NETS as u8 {
            assert!(n.add_v4(Ipv4Cidr::new(Ipv4Addr::new(10, i, 0, 0), 16).unwrap()));
        }
        assert!(!n.add_v4(Ipv4Cidr::new(Ipv4Addr::new(11, 0, 0, 0), 8).unwrap()));
        // Already there: no room needed.
        assert!(n.add_v4(Ipv4Cidr::new(Ipv4Addr::new(10, 0, 0, 0), 16).unwrap()));
        assert!(n.is_local_v4(Ipv4Addr::new(10, 31, 1, 1)));
        assert!(!n.is_local_v4(Ipv4Addr::new(11, 0, 0, 1)));
        assert!(n.add_v6(Ipv6Addr::UNSPECIFIED, 0));
        assert!(n.is_local_v6("2001:db8::1".parse().unwrap()));
    }
}
