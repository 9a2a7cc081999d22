//! Frame -> [`Observation`]: who sent it, to whom, on which VLAN, and which address bindings it
//! proves. Pure, allocation-free and panic-free on any input; it takes bytes and returns a value,
//! so the live ring, pcap replay, tests and the fuzzer share it.
//!
//! Public API (stable):
//! - [`decode(&Frame) -> Observation`](decode)
//! - [`Observation`]: `ts`, `len` (the frame's original length), `src`/`dst` (MACs of the
//!   outermost Ethernet header; for Linux cooked captures `src` is the recorded sender and `dst`
//!   is unknown), `vlan` (out-of-band first, else the first in-band 802.1Q (0x8100) tag, else the
//!   first 802.1ad/0x9100 tag: tshark's `vlan.id`), `malformed`, and what the frame proves: `arp` (sender MAC <-> IPv4 of an ARP
//!   request/reply), `ipv4_src` / `ipv6_src` (source of the first IP header), `ndp` (MAC <-> IPv6
//!   from an NDP link-layer address option), `dhcp` (client MAC and option-12 host name, borrowed
//!   from the frame).
//!
//! Layers: Ethernet II (and 802.3 LLC/SNAP), any number (up to 8) of stacked 802.1Q/802.1ad
//! tags, ARP (smoltcp's strict `ArpRepr`), IPv4 (header fields only, so snaplen-truncated
//! packets still give their source), UDP 68->67 DHCP, IPv6 and ICMPv6 NDP (smoltcp's
//! `NdiscRepr`). Tunnels are not followed: only the outermost Ethernet header is a device (Cisco FabricPath,
//! whose outer header is switch addressing in front of the host's frame, counts the inner one).
//!
//! `malformed` is set when the frame cannot be attributed (shorter than two MAC addresses, a
//! cooked header cut short) or a header that was captured in full is impossible (IP with a
//! wrong version or header length, NDP with broken options). ARP for other hardware/protocol
//! pairs is not malformed, just of no use; ARP with hardware type 6 (IEEE 802) is read too.
//! A header cut short by the snap length is not malformed: decoding just stops there.

use std::net::{Ipv4Addr, Ipv6Addr};

use smoltcp::wire::{
    ArpHardware, ArpOperation, ArpPacket, ArpRepr, EthernetProtocol, Icmpv6Message, Icmpv6Packet,
    IpProtocol, Ipv4Packet, Ipv6Packet, NdiscRepr,
};

use crate::frame::{Frame, LinkType};
use crate::wire::{dhcp, sll, vlan};

/// A MAC address.
pub type Mac = [u8; 6];

/// An ARP sender binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpBinding {
    /// The sender's MAC.
    pub mac: Mac,
    /// The sender's IPv4 address.
    pub ip: Ipv4Addr,
    /// An ARP reply (a sign of life that also counts for the active status).
    pub reply: bool,
}

/// An NDP link-layer address option binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdpBinding {
    /// The MAC in the option.
    pub mac: Mac,
    /// The IPv6 address it belongs to (source for RS/RA/NS, target for NA).
    pub ip: Ipv6Addr,
}

/// A host name announced in a DHCP client message (option 12), as raw bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhcpName<'a> {
    /// The client's MAC (chaddr).
    pub mac: Mac,
    /// The name as sent.
    pub name: &'a [u8],
}

/// What one frame tells. See the module doc.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Observation<'a> {
    /// Capture time, nanoseconds since the Unix epoch.
    pub ts: u64,
    /// Length on the wire: the bytes that count.
    pub len: u32,
    /// Source MAC of the outermost Ethernet header (or the cooked header's sender).
    pub src: Option<Mac>,
    /// Destination MAC (None for cooked captures).
    pub dst: Option<Mac>,
    /// The frame's VLAN (out-of-band tag first, else the first 802.1Q, else 802.1ad).
    pub vlan: Option<u16>,
    /// Too short for both MACs, or a header that is impossible.
    pub malformed: bool,
    /// An ARP sender binding.
    pub arp: Option<ArpBinding>,
    /// Source of the first IPv4 header.
    pub ipv4_src: Option<Ipv4Addr>,
    /// Source of the first IPv6 header.
    pub ipv6_src: Option<Ipv6Addr>,
    /// Destination of the first IP header (set together with the source).
    pub ipv4_dst: Option<Ipv4Addr>,
    /// Destination of the first IPv6 header (set together with the source).
    pub ipv6_dst: Option<Ipv6Addr>,
    /// The EtherType after the VLAN tags and LLC/SNAP (0 when the frame ends before it or
    /// carries none, e.g. 802.3 without SNAP).
    pub ethertype: u16,
    /// An NDP link-layer address binding.
    pub ndp: Option<NdpBinding>,
    /// A host name from a DHCP client message.
    pub dhcp: Option<DhcpName<'a>>,
}

/// True for a unicast MAC: the I/G bit is clear (00:00:00:00:00:00 included, as tshark does).
#[inline]
pub fn is_unicast(mac: &Mac) -> bool {
    mac[0] & 1 == 0
}

/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// EtherType of Cisco FabricPath.
pub const ETHERTYPE_FABRICPATH: u16 = 0x8903;
const MAX_TAGS: usize = 8;

#[inline]
fn mac_at(b: &[u8], at: usize) -> Mac {
    let mut m = [0u8; 6];
    m.copy_from_slice(&b[at..at + 6]);
    m
}

/// Decodes one frame. Never panics, never allocates.
#[inline]
pub fn decode<'a>(frame: &Frame<'a>) -> Observation<'a> {
    let mut obs = Observation::default();
    decode_into(frame, &mut obs);
    obs
}

/// [`decode`] into `obs` (every field is set): the per-frame path decodes in place, as moving
/// a fresh 136-byte Observation out of the decoder cost a memcpy per frame. Inlined on x86_64: the
/// live path builds `frame` just before the call, and through memory its two 16-bit stores (the
/// VLAN option) are read back as one 32-bit load, which waits for both stores to retire.
/// Elsewhere (unmeasured) the compiler decides, which keeps the MIPS binary smaller.
#[cfg_attr(target_arch = "x86_64", inline(always))]
#[cfg_attr(not(target_arch = "x86_64"), inline)]
pub fn decode_into<'a>(frame: &Frame<'a>, obs: &mut Observation<'a>) {
    *obs = Observation {
        ts: frame.ts,
        len: frame.orig_len,
        vlan: frame.vlan,
        ..Observation::default()
    };
    let data = frame.data;
    match frame.link {
        LinkType::Ethernet => {
            if data.len() < 12 {
                obs.malformed = true;
                return;
            }
            if data.len() >= 14 && data[12..14] == ETHERTYPE_FABRICPATH.to_be_bytes() {
                fabricpath(obs, data);
                return;
            }
            obs.dst = Some(mac_at(data, 0));
            obs.src = Some(mac_at(data, 6));
            if data.len() >= 14 {
                let ethertype = u16::from_be_bytes([data[12], data[13]]);
                network(obs, ethertype, &data[14..]);
            }
        }
        LinkType::LinuxSll | LinkType::LinuxSll2 => {
            let v = if frame.link == LinkType::LinuxSll {
                sll::Version::V1
            } else {
                sll::Version::V2
            };
            let Ok(h) = sll::Header::new_checked(data, v) else {
                obs.malformed = true;
                return;
            };
            obs.src = h.sender_mac();
            network(obs, h.protocol(), h.payload());
        }
    }
}

/// Cisco FabricPath: a 16-byte outer header (switch addresses, 0x8903, FTag/TTL) in front of
/// the host's Ethernet frame. The hosts are the LAN's devices, so the inner addresses count,
/// as tshark dissects it (its eth.src/eth.dst are the inner ones). Too short for the inner
/// addresses: malformed, nobody's.
fn fabricpath<'a>(obs: &mut Observation<'a>, data: &'a [u8]) {
    const OUTER: usize = 16;
    if data.len() < OUTER + 12 {
        obs.malformed = true;
        return;
    }
    obs.dst = Some(mac_at(data, OUTER));
    obs.src = Some(mac_at(data, OUTER + 6));
    if data.len() >= OUTER + 14 {
        let ethertype = u16::from_be_bytes([data[OUTER + 12], data[OUTER + 13]]);
        network(obs, ethertype, &data[OUTER + 14..]);
    }
}

/// Everything above the link header: VLAN tags, LLC/SNAP, then ARP / IPv4 / IPv6.
#[inline]
fn network<'a>(obs: &mut Observation<'a>, mut ethertype: u16, mut rest: &'a [u8]) {
    // The device's VLAN, as tshark's vlan.id: the first 802.1Q (0x8100) tag; with only
    // 802.1ad / 0x9100 tags, the first of those. An out-of-band tag (set already) wins.
    let mut tags = 0;
    let mut other = None;
    while vlan::is_tpid(ethertype) {
        let Ok(tag) = vlan::Tag::new_checked(rest) else {
            break;
        };
        if ethertype == vlan::TPID_8021Q {
            obs.vlan = obs.vlan.or(Some(tag.vid()));
        } else {
            other = other.or(Some(tag.vid()));
        }
        ethertype = tag.ethertype();
        rest = tag.payload();
        tags += 1;
        if tags > MAX_TAGS {
            break;
        }
    }
    obs.vlan = obs.vlan.or(other);
    if vlan::is_tpid(ethertype) {
        return; // cut short inside the tags, or too many of them
    }
    if ethertype <= 1500 {
        // 802.3 length field: only LLC/SNAP with an OUI of 0 carries an EtherType.
        if rest.len() >= 8 && rest[..6] == [0xaa, 0xaa, 0x03, 0, 0, 0] {
            ethertype = u16::from_be_bytes([rest[6], rest[7]]);
            rest = &rest[8..];
        } else {
            return;
        }
    }
    obs.ethertype = ethertype;
    match ethertype {
        ETHERTYPE_ARP => arp(obs, rest),
        ETHERTYPE_IPV4 => ipv4(obs, rest),
        ETHERTYPE_IPV6 => ipv6(obs, rest),
        _ => {}
    }
}

fn arp(obs: &mut Observation, rest: &[u8]) {
    // A short ARP is cut by the snap length (the frame is padded to 60 bytes on the wire).
    let Ok(packet) = ArpPacket::new_checked(rest) else {
        return;
    };
    let (operation, mac, ip) = match ArpRepr::parse(&packet) {
        Ok(ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr,
            source_protocol_addr,
            ..
        }) => (operation, source_hardware_addr.0, source_protocol_addr),
        // smoltcp's strict repr wants hardware type 1; IEEE 802 networks (and ARP over
        // LLC/SNAP) use 6 with the same MAC/IPv4 layout.
        _ if packet.hardware_type() == ArpHardware::Unknown(6)
            && packet.protocol_type() == EthernetProtocol::Ipv4
            && packet.hardware_len() == 6
            && packet.protocol_len() == 4 =>
        {
            let ip = packet.source_protocol_addr();
            (
                packet.operation(),
                mac_at(packet.source_hardware_addr(), 0),
                Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]),
            )
        }
        // Other hardware/protocol pairs are legitimate ARP we have no use for.
        _ => return,
    };
    let reply = match operation {
        ArpOperation::Request => false,
        ArpOperation::Reply => true,
        _ => return,
    };
    if is_unicast(&mac) && mac != [0; 6] && !ip.is_unspecified() {
        obs.arp = Some(ArpBinding { mac, ip, reply });
    }
}

fn ipv4<'a>(obs: &mut Observation<'a>, rest: &'a [u8]) {
    if rest.len() < 20 {
        return;
    }
    // Header fields only: smoltcp's check_len also wants the whole payload, which a
    // snaplen-truncated packet does not have.
    let p = Ipv4Packet::new_unchecked(rest);
    let ihl = p.header_len() as usize;
    if p.version() != 4 || ihl < 20 {
        obs.malformed = true;
        return;
    }
    obs.ipv4_src = Some(p.src_addr());
    obs.ipv4_dst = Some(p.dst_addr());
    if p.next_header() != IpProtocol::Udp || p.frag_offset() != 0 || rest.len() < ihl + 8 {
        return;
    }
    let udp = &rest[ihl..];
    let sport = u16::from_be_bytes([udp[0], udp[1]]);
    let dport = u16::from_be_bytes([udp[2], udp[3]]);
    if sport != dhcp::CLIENT_PORT || dport != dhcp::SERVER_PORT {
        return;
    }
    if let Ok(d) = dhcp::Packet::new_checked(&udp[8..]) {
        if let (Some(mac), Some(name)) = (d.client_mac(), d.host_name()) {
            obs.dhcp = Some(DhcpName { mac, name });
        }
    }
}

fn ipv6(obs: &mut Observation, rest: &[u8]) {
    if rest.len() < 40 {
        return;
    }
    let p = Ipv6Packet::new_unchecked(rest);
    if p.version() != 6 {
        obs.malformed = true;
        return;
    }
    let src = p.src_addr();
    obs.ipv6_src = Some(src);
    obs.ipv6_dst = Some(p.dst_addr());
    if p.next_header() != IpProtocol::Icmpv6 {
        return;
    }
    let want = 40 + p.payload_len() as usize;
    let complete = rest.len() >= want;
    let icmp = &rest[40..rest.len().min(want)];
    let Ok(packet) = Icmpv6Packet::new_checked(icmp) else {
        return;
    };
    if !matches!(
        packet.msg_type(),
        Icmpv6Message::RouterSolicit
            | Icmpv6Message::RouterAdvert
            | Icmpv6Message::NeighborSolicit
            | Icmpv6Message::NeighborAdvert
    ) {
        return;
    }
    let repr = match NdiscRepr::parse(&packet) {
        Ok(r) => r,
        Err(_) => {
            if complete {
                obs.malformed = true;
            }
            return;
        }
    };
    let (lladdr, ip) = match repr {
        NdiscRepr::RouterSolicit { lladdr }
        | NdiscRepr::RouterAdvert { lladdr, .. }
        | NdiscRepr::NeighborSolicit { lladdr, .. } => (lladdr, src),
        NdiscRepr::NeighborAdvert {
            lladdr,
            target_addr,
            ..
        } => (lladdr, target_addr),
        NdiscRepr::Redirect { .. } => return,
    };
    let Some(ll) = lladdr else { return };
    let b = ll.as_bytes();
    if b.len() != 6 || ip.is_unspecified() || ip.is_multicast() {
        return;
    }
    let mac = mac_at(b, 0);
    if is_unicast(&mac) && mac != [0; 6] {
        obs.ndp = Some(NdpBinding { mac, ip });
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::frame::Direction;

    pub const A: Mac = [0x00, 0x1b, 0x21, 0x0a, 0x0b, 0x0c];
    pub const B: Mac = [0x3c, 0x22, 0xfb, 0x12, 0x34, 0x56];
    pub const BCAST: Mac = [0xff; 6];

    pub fn eth(dst: Mac, src: Mac, ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&dst);
        f.extend_from_slice(&src);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// ARP request "who has 192.168.1.1? tell 192.168.1.23" from A (28 bytes).
    pub fn arp_request() -> Vec<u8> {
        let mut p = vec![0, 1, 8, 0, 6, 4, 0, 1];
        p.extend_from_slice(&A);
        p.extend_from_slice(&[192, 168, 1, 23]);
        p.extend_from_slice(&[0; 6]);
        p.extend_from_slice(&[192, 168, 1, 1]);
        p
    }

    /// A 20-byte IPv4 header + UDP 68->67 + a DHCPREQUEST from B naming itself "iPhone".
    pub fn dhcp_request() -> Vec<u8> {
        let mut d = vec![0u8; 240];
        d[0] = 1;
        d[1] = 1;
        d[2] = 6;
        d[28..34].copy_from_slice(&B);
        d[236..240].copy_from_slice(&dhcp::MAGIC_COOKIE);
        d.extend_from_slice(&[53, 1, 3, 12, 6]);
        d.extend_from_slice(b"iPhone");
        d.push(255);
        let udp_len = 8 + d.len();
        let total = 20 + udp_len;
        let mut ip = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0,
            0,
            64,
            17,
            0,
            0,
        ];
        ip.extend_from_slice(&[0, 0, 0, 0, 255, 255, 255, 255]);
        ip.extend_from_slice(&[0, 68, 0, 67, (udp_len >> 8) as u8, udp_len as u8, 0, 0]);
        ip.extend_from_slice(&d);
        ip
    }

    /// IPv6 NS from fe80::1 for fe80::2 with a source link-layer option = A.
    pub fn ndp_ns() -> Vec<u8> {
        let mut icmp = vec![135, 0, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        icmp.extend_from_slice(&[1, 1]);
        icmp.extend_from_slice(&A);
        let mut ip = vec![0x60, 0, 0, 0, 0, icmp.len() as u8, 58, 255];
        ip.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        ip.extend_from_slice(&[0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 2]);
        ip.extend_from_slice(&icmp);
        ip
    }

    /// IPv6 NA for 2001:db8::7 with a target link-layer option = B.
    pub fn ndp_na() -> Vec<u8> {
        let target = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
        let mut icmp = vec![136, 0, 0, 0, 0x60, 0, 0, 0];
        icmp.extend_from_slice(&target);
        icmp.extend_from_slice(&[2, 1]);
        icmp.extend_from_slice(&B);
        let mut ip = vec![0x60, 0, 0, 0, 0, icmp.len() as u8, 58, 255];
        ip.extend_from_slice(&target);
        ip.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        ip.extend_from_slice(&icmp);
        ip
    }

    /// Every frame the tests here and in devices.rs use, with its name.
    pub fn fixtures() -> Vec<(&'static str, LinkType, Vec<u8>)> {
        let mut qinq = Vec::new();
        qinq.extend_from_slice(&[0x00, 0x64, 0x81, 0x00, 0x00, 0x0a, 0x08, 0x06]);
        qinq.extend_from_slice(&arp_request());
        let mut snap = vec![0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x06];
        snap.extend_from_slice(&arp_request());
        let mut sll1 = vec![0, 4, 0, 1, 0, 6];
        sll1.extend_from_slice(&A);
        sll1.extend_from_slice(&[0, 0, 0x08, 0x06]);
        sll1.extend_from_slice(&arp_request());
        let mut sll2 = vec![0x08, 0x06, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6];
        sll2.extend_from_slice(&A);
        sll2.extend_from_slice(&[0, 0]);
        sll2.extend_from_slice(&arp_request());
        vec![
            (
                "arp",
                LinkType::Ethernet,
                eth(BCAST, A, 0x0806, &arp_request()),
            ),
            ("qinq-arp", LinkType::Ethernet, eth(BCAST, A, 0x88a8, &qinq)),
            ("snap-arp", LinkType::Ethernet, eth(BCAST, A, 60, &snap)),
            (
                "dhcp",
                LinkType::Ethernet,
                eth(BCAST, B, 0x0800, &dhcp_request()),
            ),
            ("ns", LinkType::Ethernet, eth(BCAST, A, 0x86dd, &ndp_ns())),
            ("na", LinkType::Ethernet, eth(A, B, 0x86dd, &ndp_na())),
            ("sll-arp", LinkType::LinuxSll, sll1),
            ("sll2-arp", LinkType::LinuxSll2, sll2),
        ]
    }

    pub fn frame(link: LinkType, data: &[u8]) -> Frame<'_> {
        Frame {
            ts: 1,
            orig_len: 1000,
            data,
            link,
            direction: Direction::Unknown,
            vlan: None,
        }
    }

    fn arp_a() -> Option<ArpBinding> {
        Some(ArpBinding {
            mac: A,
            ip: Ipv4Addr::new(192, 168, 1, 23),
            reply: false,
        })
    }

    #[test]
    fn arp_over_ethernet_vlan_snap_and_cooked() {
        for (name, link, data) in fixtures() {
            if !name.contains("arp") {
                continue;
            }
            let o = decode(&frame(link, &data));
            assert_eq!(o.arp, arp_a(), "{name}");
            assert_eq!(o.src, Some(A), "{name}");
            assert!(!o.malformed, "{name}");
            assert_eq!(o.len, 1000);
            match name {
                "qinq-arp" => assert_eq!(o.vlan, Some(10)), // the C-tag, not the S-tag 100
                "sll-arp" | "sll2-arp" => assert_eq!(o.dst, None),
                _ => assert_eq!((o.dst, o.vlan), (Some(BCAST), None)),
            }
        }
    }

    #[test]
    fn fabricpath_counts_the_inner_hosts() {
        let mut f = vec![
            0x02, 0xaa, 0, 0, 0, 1, // outer DA (switch)
            0x02, 0xaa, 0, 0, 0, 2, // outer SA (switch)
            0x89, 0x03, 0x00, 0x3f, // FabricPath, FTag 0, TTL 63
        ];
        f.extend_from_slice(&B);
        f.extend_from_slice(&A);
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a, 0x08, 0x06]); // VLAN 10, ARP
        let arp = &fixtures()[0].2[14..];
        f.extend_from_slice(arp);
        let o = decode(&frame(LinkType::Ethernet, &f));
        assert_eq!((o.src, o.dst, o.vlan), (Some(A), Some(B), Some(10)));
        assert_eq!(o.arp, arp_a());
        assert!(!o.malformed);
        // Cut inside the inner addresses: nobody's.
        let o = decode(&frame(LinkType::Ethernet, &f[..27]));
        assert!(o.malformed && o.src.is_none() && o.dst.is_none());
        // Inner addresses only: still the hosts.
        let o = decode(&frame(LinkType::Ethernet, &f[..28]));
        assert_eq!((o.src, o.dst, o.malformed), (Some(A), Some(B), false));
    }

    #[test]
    fn out_of_band_vlan_wins() {
        let (_, link, data) = fixtures().swap_remove(1);
        let mut f = frame(link, &data);
        f.vlan = Some(7);
        assert_eq!(decode(&f).vlan, Some(7));
    }

    #[test]
    fn dhcp_name_and_ipv4_source() {
        let data = eth(BCAST, B, 0x0800, &dhcp_request());
        let o = decode(&frame(LinkType::Ethernet, &data));
        assert_eq!(o.ipv4_src, Some(Ipv4Addr::UNSPECIFIED));
        assert_eq!(
            o.dhcp,
            Some(DhcpName {
                mac: B,
                name: b"iPhone"
            })
        );
    }

    #[test]
    fn ndp_bindings() {
        let ns = eth(BCAST, A, 0x86dd, &ndp_ns());
        let o = decode(&frame(LinkType::Ethernet, &ns));
        let ll1: Ipv6Addr = "fe80::1".parse().unwrap();
        assert_eq!(o.ndp, Some(NdpBinding { mac: A, ip: ll1 }));
        assert_eq!(o.ipv6_src, Some(ll1));
        let na = eth(A, B, 0x86dd, &ndp_na());
        let o = decode(&frame(LinkType::Ethernet, &na));
        assert_eq!(
            o.ndp,
            Some(NdpBinding {
                mac: B,
                ip: "2001:db8::7".parse().unwrap()
            })
        );
    }

    #[test]
    fn broken_headers_are_malformed() {
        let mut a = arp_request();
        a[0] = 9; // hardware type 0x0901: no binding, but legitimate
        let data = eth(BCAST, A, 0x0806, &a);
        let o = decode(&frame(LinkType::Ethernet, &data));
        assert!(!o.malformed && o.arp.is_none() && o.src == Some(A));
        a[0] = 0;
        a[1] = 6; // IEEE 802
        let data = eth(BCAST, A, 0x0806, &a);
        assert_eq!(decode(&frame(LinkType::Ethernet, &data)).arp, arp_a());
        let mut ip = dhcp_request();
        ip[0] = 0x65;
        let data = eth(BCAST, A, 0x0800, &ip);
        assert!(decode(&frame(LinkType::Ethernet, &data)).malformed);
        assert!(decode(&frame(LinkType::Ethernet, &[0; 11])).malformed);
        assert!(decode(&frame(LinkType::LinuxSll, &[0; 15])).malformed);
    }

    /// Each fixture cut at every length: never a panic, the MACs are there from 12 bytes on,
    /// nothing is invented, and a cut by the snap length is not malformed.
    #[test]
    fn truncated_at_every_length() {
        for (name, link, data) in fixtures() {
            let full = decode(&frame(link, &data));
            let head = if link == LinkType::Ethernet { 12 } else { 0 };
            for n in 0..=data.len() {
                let o = decode(&frame(link, &data[..n]));
                if link == LinkType::Ethernet {
                    assert_eq!(o.src.is_some(), n >= 12, "{name} at {n}");
                    assert_eq!(o.malformed, n < head, "{name} at {n}");
                }
                if o.arp.is_some() {
                    assert_eq!(o.arp, full.arp, "{name} at {n}");
                }
                if o.ndp.is_some() {
                    assert_eq!(o.ndp, full.ndp, "{name} at {n}");
                }
                if let Some(d) = o.dhcp {
                    assert_eq!(Some(d), full.dhcp, "{name} at {n}");
                }
            }
        }
    }

    #[test]
    fn unicast() {
        assert!(is_unicast(&A));
        assert!(!is_unicast(&BCAST));
        assert!(!is_unicast(&[0x01, 0, 0x5e, 0, 0, 1]));
        assert!(is_unicast(&[0; 6]));
    }

    /// Real frames: from every capture in ../shared/pcaps that we can read, the first frames of
    /// each distinct shape (link type, EtherType, protocol byte), at most 12 per file, cut to
    /// 256 bytes.
    pub fn real_frames() -> Vec<(LinkType, u32, Vec<u8>)> {
        use crate::pcap::file::FileSource;
        use crate::pcap::FrameSource;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/pcaps");
        let Ok(rd) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut shapes = std::collections::HashSet::new();
        for e in rd.flatten() {
            let p = e.path();
            if !matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("pcap" | "pcapng")
            ) {
                continue;
            }
            let Ok(mut src) = FileSource::open(&p) else {
                continue;
            };
            let mut taken = 0;
            while let Some(Ok(f)) = src.next_frame() {
                // Shape: link, EtherType (or cooked protocol), IP protocol / ARP opcode byte.
                let d = f.data;
                let shape = (
                    f.link,
                    d.get(12..16).map(|s| s.to_vec()),
                    d.get(23).copied(),
                );
                if taken < 12 && shapes.insert(shape) {
                    taken += 1;
                    out.push((f.link, f.orig_len, f.data[..f.data.len().min(256)].to_vec()));
                }
            }
        }
        out
    }

    #[test]
    fn no_prefix_and_no_single_byte_corruption_panics() {
        let mut all: Vec<(LinkType, u32, Vec<u8>)> = fixtures()
            .into_iter()
            .map(|(_, l, d)| (l, d.len() as u32, d))
            .collect();
        let real = real_frames();
        all.extend(real);
        let mut table = crate::devices::DeviceTable::new(crate::devices::TableConfig {
            capacity: 64,
            ..Default::default()
        });
        let mut decoded = 0u64;
        for (link, orig, data) in &all {
            let mut buf = data.clone();
            for n in 0..=data.len() {
                let mut f = frame(*link, &buf[..n]);
                f.orig_len = *orig;
                table.observe(&f);
                decoded += 1;
            }
            // Every value at every position of the first 128 bytes (the headers we read),
            // a bit flip beyond.
            for i in 0..data.len() {
                let values: Vec<u8> = if i < 128 {
                    (0..=255).collect()
                } else {
                    vec![data[i] ^ 0xff]
                };
                for v in values {
                    buf[i] = v;
                    table.observe(&frame(*link, &buf));
                    decoded += 1;
                }
                buf[i] = data[i];
            }
        }
        assert!(decoded > 100_000, "{decoded}");
        println!("{} frames, {decoded} decodes", all.len());
    }
}
