//! What smoltcp's `wire` lacks, written in its style: zero-copy views over `T: AsRef<[u8]>`,
//! a private `mod field` of byte ranges, `check_len` after which no accessor panics, and
//! byte-array tests (each format truncated at every length) at the bottom of each file.
//!
//! - [`vlan`]: 802.1Q / 802.1ad tags (one view per tag; stacked tags are views over the payload)
//! - [`sll`]: Linux cooked capture headers, v1 (LINKTYPE_LINUX_SLL 113) and v2 (LINUX_SLL2 276)
//! - [`dhcp`]: a DHCPv4/BOOTP request view and a scan for option 12 (host name)
//!
//! Everything else (Ethernet, ARP, IPv4, IPv6, ICMPv6/NDP) comes from `smoltcp::wire`.

pub mod dhcp;
pub mod sll;
pub mod vlan;

/// The error of every view here: the buffer is too short or a field is impossible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error;

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("truncated or malformed header")
    }
}

/// The result of the views here.
pub type Result<T> = core::result::Result<T, Error>;

type Field = core::ops::Range<usize>;
