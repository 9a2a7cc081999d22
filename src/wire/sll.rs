//! Linux "cooked" capture headers: what libpcap writes for `-i any` and non-Ethernet devices.
//!
//! v1 (LINKTYPE_LINUX_SLL, 113), 16 bytes:
//! `packet type (2) | ARPHRD type (2) | address length (2) | address (8, padded) | protocol (2)`
//! v2 (LINKTYPE_LINUX_SLL2, 276), 20 bytes:
//! `protocol (2) | reserved (2) | ifindex (4) | ARPHRD type (2) | packet type (1) |
//!  address length (1) | address (8, padded)`
//!
//! Only the *sender's* link-layer address is recorded; the packet type says whether the frame
//! was addressed to this host, broadcast, multicast, to another host, or sent by this host.
//! All fields are big-endian (network order) in both versions.

use super::{Error, Result};

/// Linux `PACKET_*` packet types (`sll_pkttype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketType {
    /// To this host (PACKET_HOST).
    Host,
    /// Broadcast (PACKET_BROADCAST).
    Broadcast,
    /// Multicast (PACKET_MULTICAST).
    Multicast,
    /// To another host (PACKET_OTHERHOST).
    OtherHost,
    /// Sent by this host (PACKET_OUTGOING).
    Outgoing,
    /// Any other value.
    Unknown(u16),
}

impl From<u16> for PacketType {
    fn from(v: u16) -> Self {
        match v {
            0 => PacketType::Host,
            1 => PacketType::Broadcast,
            2 => PacketType::Multicast,
            3 => PacketType::OtherHost,
            4 => PacketType::Outgoing,
            n => PacketType::Unknown(n),
        }
    }
}

/// ARPHRD_ETHER: the address is a 6-byte MAC.
pub const ARPHRD_ETHER: u16 = 1;

mod v1 {
    use super::super::Field;
    pub const PKTTYPE: Field = 0..2;
    pub const HATYPE: Field = 2..4;
    pub const HALEN: Field = 4..6;
    pub const ADDR: Field = 6..14;
    pub const PROTOCOL: Field = 14..16;
    pub const PAYLOAD: usize = 16;
}

mod v2 {
    use super::super::Field;
    pub const PROTOCOL: Field = 0..2;
    pub const IFINDEX: Field = 4..8;
    pub const HATYPE: Field = 8..10;
    pub const PKTTYPE: usize = 10;
    pub const HALEN: usize = 11;
    pub const ADDR: Field = 12..20;
    pub const PAYLOAD: usize = 20;
}

/// Which of the two header versions a view reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// LINKTYPE_LINUX_SLL (113), 16 bytes.
    V1,
    /// LINKTYPE_LINUX_SLL2 (276), 20 bytes.
    V2,
}

/// A read-only view of a cooked header (either version).
#[derive(Debug, Clone, Copy)]
pub struct Header<T: AsRef<[u8]>> {
    buffer: T,
    version: Version,
}

impl<T: AsRef<[u8]>> Header<T> {
    /// A view without any check (see [`Header::check_len`]).
    pub const fn new_unchecked(buffer: T, version: Version) -> Header<T> {
        Header { buffer, version }
    }

    /// A view of a buffer that passed [`Header::check_len`].
    pub fn new_checked(buffer: T, version: Version) -> Result<Header<T>> {
        let h = Header::new_unchecked(buffer, version);
        h.check_len()?;
        Ok(h)
    }

    /// After this returned Ok, no accessor panics.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < self.header_len() {
            Err(Error)
        } else {
            Ok(())
        }
    }

    /// Length of the header in this version.
    pub fn header_len(&self) -> usize {
        match self.version {
            Version::V1 => v1::PAYLOAD,
            Version::V2 => v2::PAYLOAD,
        }
    }

    fn u16_at(&self, f: core::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[f];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Where the frame was going.
    pub fn packet_type(&self) -> PacketType {
        match self.version {
            Version::V1 => PacketType::from(self.u16_at(v1::PKTTYPE)),
            Version::V2 => PacketType::from(self.buffer.as_ref()[v2::PKTTYPE] as u16),
        }
    }

    /// ARPHRD_* type of the device.
    pub fn hardware_type(&self) -> u16 {
        match self.version {
            Version::V1 => self.u16_at(v1::HATYPE),
            Version::V2 => self.u16_at(v2::HATYPE),
        }
    }

    /// The interface index (v2 only; 0 for v1).
    pub fn ifindex(&self) -> u32 {
        match self.version {
            Version::V1 => 0,
            Version::V2 => {
                let b = &self.buffer.as_ref()[v2::IFINDEX];
                u32::from_be_bytes([b[0], b[1], b[2], b[3]])
            }
        }
    }

    /// The sender's address length as recorded (may exceed 8: then only 8 bytes are kept).
    pub fn address_len(&self) -> u16 {
        match self.version {
            Version::V1 => self.u16_at(v1::HALEN),
            Version::V2 => self.buffer.as_ref()[v2::HALEN] as u16,
        }
    }

    /// The sender's address bytes (at most 8).
    pub fn address(&self) -> &[u8] {
        let n = (self.address_len() as usize).min(8);
        let f = match self.version {
            Version::V1 => v1::ADDR,
            Version::V2 => v2::ADDR,
        };
        &self.buffer.as_ref()[f.start..f.start + n]
    }

    /// The sender's MAC when the device is Ethernet-like with a 6-byte address.
    pub fn sender_mac(&self) -> Option<[u8; 6]> {
        let a = self.address();
        (self.hardware_type() == ARPHRD_ETHER && a.len() == 6).then(|| {
            let mut m = [0u8; 6];
            m.copy_from_slice(a);
            m
        })
    }

    /// The protocol (an EtherType for Ethernet-like devices).
    pub fn protocol(&self) -> u16 {
        match self.version {
            Version::V1 => self.u16_at(v1::PROTOCOL),
            Version::V2 => self.u16_at(v2::PROTOCOL),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Header<&'a T> {
    /// The bytes after the header.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // An outgoing ARP frame from 00:0c:29:3e:2b:1a as libpcap writes it (v1), then 2 ARP bytes.
    static V1: [u8; 18] = [
        0x00, 0x04, 0x00, 0x01, 0x00, 0x06, 0x00, 0x0c, 0x29, 0x3e, 0x2b, 0x1a, 0x00, 0x00, 0x08,
        0x06, 0x00, 0x01,
    ];
    // The same in v2, received (host) on ifindex 3.
    static V2: [u8; 22] = [
        0x08, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x01, 0x00, 0x06, 0x00, 0x0c, 0x29,
        0x3e, 0x2b, 0x1a, 0x00, 0x00, 0x00, 0x01,
    ];

    #[test]
    fn v1_fields() {
        let h = Header::new_checked(&V1[..], Version::V1).unwrap();
        assert_eq!(h.packet_type(), PacketType::Outgoing);
        assert_eq!(h.hardware_type(), ARPHRD_ETHER);
        assert_eq!(h.sender_mac(), Some([0x00, 0x0c, 0x29, 0x3e, 0x2b, 0x1a]));
        assert_eq!(h.protocol(), 0x0806);
        assert_eq!(h.payload(), &[0x00, 0x01]);
        assert_eq!(h.ifindex(), 0);
    }

    #[test]
    fn v2_fields() {
        let h = Header::new_checked(&V2[..], Version::V2).unwrap();
        assert_eq!(h.packet_type(), PacketType::Host);
        assert_eq!(h.ifindex(), 3);
        assert_eq!(h.sender_mac(), Some([0x00, 0x0c, 0x29, 0x3e, 0x2b, 0x1a]));
        assert_eq!(h.protocol(), 0x0806);
        assert_eq!(h.payload(), &[0x00, 0x01]);
    }

    #[test]
    fn long_or_non_ethernet_address_is_not_a_mac() {
        let mut b = V1;
        b[5] = 20; // address length 20: only 8 bytes are kept
        let h = Header::new_checked(&b[..], Version::V1).unwrap();
        assert_eq!(h.address().len(), 8);
        assert_eq!(h.sender_mac(), None);
        let mut b = V1;
        b[3] = 0x18; // ARPHRD 24 (firewire)
        assert_eq!(
            Header::new_checked(&b[..], Version::V1)
                .unwrap()
                .sender_mac(),
            None
        );
    }

    #[test]
    fn truncated_at_every_length() {
        for (buf, v, hl) in [(&V1[..], Version::V1, 16), (&V2[..], Version::V2, 20)] {
            for n in 0..=buf.len() {
                let r = Header::new_checked(&buf[..n], v);
                assert_eq!(r.is_ok(), n >= hl, "{v:?} length {n}");
                if let Ok(h) = r {
                    let _ = (h.packet_type(), h.sender_mac(), h.protocol(), h.payload());
                    let _ = (h.ifindex(), h.address(), h.hardware_type());
                }
            }
        }
    }
}
