//! 802.1Q (C-tag, TPID 0x8100) and 802.1ad (S-tag, TPID 0x88a8) VLAN tags.
//!
//! The view starts *after* the TPID, which the Ethernet header (or the previous tag) carries as
//! its EtherType: a tag is 4 bytes, TCI (PCP 3 bits, DEI 1 bit, VID 12 bits) then the EtherType of
//! what follows. Stacked tags (Q-in-Q) are a tag whose `ethertype()` is again a TPID: take
//! `payload()` and view it as the next tag.

use super::{Error, Result};

/// TPIDs that introduce a tag: 802.1Q, 802.1ad, and the pre-standard 0x9100 Q-in-Q.
pub const TPID_8021Q: u16 = 0x8100;
/// TPID of an 802.1ad service tag.
pub const TPID_8021AD: u16 = 0x88a8;
/// TPID of pre-standard Q-in-Q tags.
pub const TPID_QINQ_OLD: u16 = 0x9100;

/// True when `ethertype` announces a VLAN tag.
pub fn is_tpid(ethertype: u16) -> bool {
    matches!(ethertype, TPID_8021Q | TPID_8021AD | TPID_QINQ_OLD)
}

mod field {
    use super::super::Field;
    pub const TCI: Field = 0..2;
    pub const ETHERTYPE: Field = 2..4;
    pub const PAYLOAD: usize = 4;
}

/// Length of one tag.
pub const HEADER_LEN: usize = field::PAYLOAD;

/// A read-only view of one VLAN tag.
#[derive(Debug, Clone, Copy)]
pub struct Tag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Tag<T> {
    /// A view without any check (see [`Tag::check_len`]).
    pub const fn new_unchecked(buffer: T) -> Tag<T> {
        Tag { buffer }
    }

    /// `new_unchecked` + `check_len`.
    pub fn new_checked(buffer: T) -> Result<Tag<T>> {
        let t = Tag::new_unchecked(buffer);
        t.check_len()?;
        Ok(t)
    }

    /// After this returned Ok, no accessor panics.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error)
        } else {
            Ok(())
        }
    }

    fn u16_at(&self, f: core::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[f];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The tag control information (PCP, DEI, VID).
    pub fn tci(&self) -> u16 {
        self.u16_at(field::TCI)
    }
    /// The VLAN identifier (12 bits).
    pub fn vid(&self) -> u16 {
        self.tci() & 0x0fff
    }
    /// The priority code point (3 bits).
    pub fn pcp(&self) -> u8 {
        (self.tci() >> 13) as u8
    }
    /// The drop-eligible indicator.
    pub fn dei(&self) -> bool {
        self.tci() & 0x1000 != 0
    }
    /// The EtherType of what follows the tag (maybe another TPID).
    pub fn ethertype(&self) -> u16 {
        self.u16_at(field::ETHERTYPE)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Tag<&'a T> {
    /// What follows the tag.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // S-tag VID 100 PCP 5 DEI 1, then a C-tag VID 10 PCP 0, then ARP (from tcpdump's
    // 802.1ad_QinQ.pcap layout: 88a8 / 8100 / 0806).
    static STACKED: [u8; 8] = [0xb0 | 0x10, 0x64, 0x81, 0x00, 0x00, 0x0a, 0x08, 0x06];

    #[test]
    fn fields_of_stacked_tags() {
        let s = Tag::new_checked(&STACKED[..]).unwrap();
        assert_eq!(s.vid(), 100);
        assert_eq!(s.pcp(), 5);
        assert!(s.dei());
        assert!(is_tpid(s.ethertype()));
        let c = Tag::new_checked(s.payload()).unwrap();
        assert_eq!(c.vid(), 10);
        assert_eq!(c.pcp(), 0);
        assert!(!c.dei());
        assert_eq!(c.ethertype(), 0x0806);
        assert!(c.payload().is_empty());
    }

    #[test]
    fn truncated_at_every_length() {
        for n in 0..STACKED.len() {
            let r = Tag::new_checked(&STACKED[..n]);
            assert_eq!(r.is_ok(), n >= HEADER_LEN, "length {n}");
            if let Ok(t) = r {
                let _ = (t.vid(), t.pcp(), t.dei(), t.ethertype(), t.payload());
            }
        }
    }

    #[test]
    fn tpids() {
        assert!(is_tpid(0x8100) && is_tpid(0x88a8) && is_tpid(0x9100));
        assert!(!is_tpid(0x0800) && !is_tpid(0x86dd));
    }
}
