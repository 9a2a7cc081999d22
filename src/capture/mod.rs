//! Frames and the sources that yield them.
//!
//! Public API (stable; the live AF_PACKET source builds on it):
//! - [`Frame`]: one captured frame, borrowed from its source: `ts` (nanoseconds since the Unix
//!   epoch), `orig_len` (length on the wire without FCS: pcap orig_len / pcapng packet length /
//!   `tp_len`; this is what gets counted), `data` (the captured bytes, maybe fewer), `link`
//!   ([`LinkType`] of `data`), `direction` (a hint from the kernel or a cooked header) and
//!   `vlan` (an out-of-band tag, e.g. `tp_vlan_tci` with hardware VLAN offload; in-band tags
//!   stay in `data`).
//! - [`FrameSource`]: `next_frame()` lends the next frame until the source is exhausted.
//! - [`file::FileSource`]: pcap (both byte orders, µs/ns) and pcapng files.
//! - [`writer::PcapWriter`]: writes classic pcap files (tests, the `capture` command).
//! - [`CaptureError`]: what can go wrong reading a source, with the packet index and byte offset.
//!
//! Decoding lives in `crate::decode`, accounting in `crate::devices`; nothing here interprets
//! the bytes beyond the capture format.
// Parts of this API serve the live capture, discovery and the `capture` command (issues 4+).
#![allow(dead_code)]

pub mod file;
pub mod writer;

use std::fmt;
use std::path::PathBuf;

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
    pub link: LinkType,
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

/// A source of frames: a capture file, the live ring.
pub trait FrameSource {
    /// The next frame; `None` at the end of the source. An error ends the source.
    fn next_frame(&mut self) -> Option<Result<Frame<'_>, CaptureError>>;
}

/// What can go wrong reading frames.
#[derive(Debug)]
pub enum CaptureError {
    /// The file cannot be opened or read.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not a pcap/pcapng file, or its header is broken.
    NotACapture { path: PathBuf, reason: String },
    /// A record is cut short (the file ends inside it) or its fields are impossible.
    /// `index` is the 1-based number of the packet record being read, `offset` the byte offset
    /// of the record (or block) in the file.
    Corrupt {
        path: PathBuf,
        index: u64,
        offset: u64,
        reason: String,
    },
    /// No interface of the file has a link type we decode.
    Unsupported { path: PathBuf, linktypes: Vec<u32> },
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaptureError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            CaptureError::NotACapture { path, reason } => {
                write!(f, "{}: not a pcap or pcapng file: {reason}", path.display())
            }
            CaptureError::Corrupt {
                path,
                index,
                offset,
                reason,
            } => write!(
                f,
                "{}: packet {index} at byte offset {offset}: {reason}",
                path.display()
            ),
            CaptureError::Unsupported { path, linktypes } => {
                write!(f, "{}: ", path.display())?;
                for (i, n) in linktypes.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "link type {n} ({})", linktype_name(*n))?;
                }
                let s = if linktypes.len() == 1 { "is" } else { "are" };
                write!(
                    f,
                    " {s} not supported (supported: Ethernet, Linux cooked v1/v2)"
                )
            }
        }
    }
}

impl std::error::Error for CaptureError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_formats_with_context() {
        let p = PathBuf::from("capture.pcap");
        let e = CaptureError::Unsupported {
            path: p.clone(),
            linktypes: vec![127],
        };
        assert_eq!(
            e.to_string(),
            "capture.pcap: link type 127 (802.11 radiotap) is not supported (supported: Ethernet, Linux cooked v1/v2)"
        );
        let e = CaptureError::Corrupt {
            path: p.clone(),
            index: 7,
            offset: 1234,
            reason: "file ends inside the record".into(),
        };
        assert_eq!(
            e.to_string(),
            "capture.pcap: packet 7 at byte offset 1234: file ends inside the record"
        );
        let e = CaptureError::NotACapture {
            path: p.clone(),
            reason: "bad magic".into(),
        };
        assert!(e.to_string().starts_with("capture.pcap: not a pcap"));
        let e = CaptureError::Io {
            path: p,
            source: std::io::Error::from_raw_os_error(libc::ENOENT),
        };
        assert!(e.to_string().starts_with("capture.pcap: "));
    }

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
