//! One captured frame and what it says about its bytes, shared by every source (the live ring,
//! pcap/pcapng files) and every consumer (decode, accounting, the pcap writer).
//!
//! [`Frame`]: one captured frame, borrowed from its source: `ts` (nanoseconds since the Unix
//! epoch), `orig_len` (length on the wire without FCS: pcap orig_len / pcapng packet length /
//! `tp_len`; this is what gets counted), `data` (the captured bytes, maybe fewer), `link`
//! ([`LinkType`] of `data`), `direction` (a hint from the kernel or a cooked header) and
//! `vlan` (an out-of-band tag, e.g. `tp_vlan_tci` with hardware VLAN offload; in-band tags
//! stay in `data`).

/// The link layer of a frame's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// Ethernet II / 802.3 (LINKTYPE_ETHERNET 1).
    Ethernet,
    /// Linux cooked v1 (LINKTYPE_LINUX_SLL 113).
    LinuxSll,
    /// Linux cooked v2 (LINKTYPE_LINUX_SLL2 276).
    LinuxSll2,
}

impl LinkType {
    /// The link types we decode, from their LINKTYPE_* number.
    pub fn from_linktype(n: u32) -> Option<LinkType> {
        match n {
            1 => Some(LinkType::Ethernet),
            113 => Some(LinkType::LinuxSll),
            276 => Some(LinkType::LinuxSll2),
            _ => None,
        }
    }

    /// The LINKTYPE_* number.
    pub fn number(self) -> u32 {
        match self {
            LinkType::Ethernet => 1,
            LinkType::LinuxSll => 113,
            LinkType::LinuxSll2 => 276,
        }
    }
}

/// A readable name for a LINKTYPE_* number, for error messages.
pub fn linktype_name(n: u32) -> &'static str {
    match n {
        0 => "BSD loopback",
        1 => "Ethernet",
        6 => "Token Ring",
        8 => "SLIP",
        9 => "PPP",
        12 | 101 => "raw IP",
        50 => "PPP in HDLC framing",
        104 => "Cisco HDLC",
        105 => "802.11",
        108 => "OpenBSD loopback",
        113 => "Linux cooked v1",
        119 => "802.11 Prism",
        127 => "802.11 radiotap",
        143 => "DOCSIS",
        163 => "802.11 AVS",
        192 => "PPI",
        195 => "802.15.4",
        220 => "USB Linux mmapped",
        228 => "raw IPv4",
        229 => "raw IPv6",
        253 => "netlink",
        276 => "Linux cooked v2",
        _ => "unknown",
    }
}

/// Where a frame was going, as far as the capture knows (Linux `sll_pkttype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// The source does not say (pcap/pcapng files without flags).
    #[default]
    Unknown,
    /// Addressed to this host (PACKET_HOST).
    Incoming,
    /// Broadcast (PACKET_BROADCAST).
    Broadcast,
    /// Multicast (PACKET_MULTICAST).
    Multicast,
    /// To another host, seen in promiscuous mode (PACKET_OTHERHOST).
    OtherHost,
    /// Sent by this host (PACKET_OUTGOING).
    Outgoing,
}

impl Direction {
    /// From a Linux `sll_pkttype` / `PACKET_*` value.
    pub fn from_pkttype(t: u16) -> Direction {
        match t {
            0 => Direction::Incoming,
            1 => Direction::Broadcast,
            2 => Direction::Multicast,
            3 => Direction::OtherHost,
            4 => Direction::Outgoing,
            _ => Direction::Unknown,
        }
    }
}

/// One captured frame, borrowed from its source. See the module doc.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Nanoseconds since the Unix epoch.
    pub ts: u64,
    /// Length on the wire (without FCS): the bytes that count.
    pub orig_len: u32,
    /// The captured bytes (maybe fewer than `orig_len`, maybe more when a record is broken).
    pub data: &'a [u8],
    /// What `data` starts with.
    pub link: LinkType,
    /// A hint from the kernel or a cooked header.
    pub direction: Direction,
    /// An out-of-band VLAN ID (hardware offload); in-band tags are in `data`.
    pub vlan: Option<u16>,
}

impl<'a> Frame<'a> {
    /// An Ethernet frame with no hints (tests, fuzzing).
    pub fn ethernet(ts: u64, orig_len: u32, data: &'a [u8]) -> Frame<'a> {
        Frame {
            ts,
            orig_len,
            data,
            link: LinkType::Ethernet,
            direction: Direction::Unknown,
            vlan: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkttypes() {
        assert_eq!(Direction::from_pkttype(4), Direction::Outgoing);
        assert_eq!(Direction::from_pkttype(0), Direction::Incoming);
        assert_eq!(Direction::from_pkttype(9), Direction::Unknown);
        for l in [LinkType::Ethernet, LinkType::LinuxSll, LinkType::LinuxSll2] {
            assert_eq!(LinkType::from_linktype(l.number()), Some(l));
        }
    }
}
