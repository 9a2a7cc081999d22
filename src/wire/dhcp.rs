//! DHCPv4 (BOOTP) messages, read only as far as the agent needs: the client's hardware address
//! and the host name it announces (option 12) in DISCOVER/REQUEST/INFORM messages.
//!
//! Layout (RFC 2131): op, htype, hlen, hops, xid(4), secs(2), flags(2), ciaddr, yiaddr, siaddr,
//! giaddr (4 each), chaddr(16), sname(64), file(128), magic cookie 63 82 53 63, options.
//! Options are `code, length, value` except pad (0) and end (255). The scan stops at the end of
//! the captured bytes: a truncated option is not returned.

use super::{Error, Result};

mod field {
    use super::super::Field;
    pub const OP: usize = 0;
    pub const HTYPE: usize = 1;
    pub const HLEN: usize = 2;
    pub const CHADDR: Field = 28..44;
    pub const MAGIC: Field = 236..240;
    pub const OPTIONS: usize = 240;
}

/// The DHCP magic cookie after the BOOTP header.
pub const MAGIC_COOKIE: [u8; 4] = [0x63, 0x82, 0x53, 0x63];
/// BOOTREQUEST: a message from a client.
pub const OP_REQUEST: u8 = 1;
/// Option 0: padding.
pub const OPT_PAD: u8 = 0;
/// Option 12: host name.
pub const OPT_HOST_NAME: u8 = 12;
/// Option 255: end of options.
pub const OPT_END: u8 = 255;
/// UDP ports: clients send from 68 to 67.
pub const SERVER_PORT: u16 = 67;
/// The client's port.
pub const CLIENT_PORT: u16 = 68;

/// A read-only view of a BOOTP/DHCP message.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// A view without any check (see [`Packet::check_len`]).
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// A view of a buffer that passed [`Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Packet::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Ok when the fixed part and the magic cookie are there and the cookie is right; after
    /// that, no accessor panics.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < field::OPTIONS || b[field::MAGIC] != MAGIC_COOKIE {
            Err(Error)
        } else {
            Ok(())
        }
    }

    /// `op`: 1 request, 2 reply.
    pub fn op(&self) -> u8 {
        self.buffer.as_ref()[field::OP]
    }

    /// The client's MAC when the message says it is a 6-byte Ethernet address.
    pub fn client_mac(&self) -> Option<[u8; 6]> {
        let b = self.buffer.as_ref();
        (b[field::HTYPE] == 1 && b[field::HLEN] == 6).then(|| {
            let mut m = [0u8; 6];
            m.copy_from_slice(&b[field::CHADDR][..6]);
            m
        })
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The value of the first option `code`, if it is complete in the captured bytes.
    pub fn option(&self, code: u8) -> Option<&'a [u8]> {
        let b: &'a [u8] = self.buffer.as_ref();
        let mut i = field::OPTIONS;
        while i < b.len() {
            match b[i] {
                OPT_PAD => i += 1,
                OPT_END => return None,
                c => {
                    let len = *b.get(i + 1)? as usize;
                    let v = b.get(i + 2..i + 2 + len)?;
                    if c == code {
                        return Some(v);
                    }
                    i += 2 + len;
                }
            }
        }
        None
    }

    /// Option 12 of a client message.
    pub fn host_name(&self) -> Option<&'a [u8]> {
        if self.op() != OP_REQUEST {
            return None;
        }
        self.option(OPT_HOST_NAME).filter(|v| !v.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DHCPREQUEST from 3c:22:fb:12:34:56 announcing host name "iPhone" (the shape of the
    /// request in nDPI's iphone.pcap), options: 53=3, 12="iPhone", 255.
    fn request() -> Vec<u8> {
        let mut b = vec![0u8; 240];
        b[0] = 1;
        b[1] = 1;
        b[2] = 6;
        b[28..34].copy_from_slice(&[0x3c, 0x22, 0xfb, 0x12, 0x34, 0x56]);
        b[236..240].copy_from_slice(&MAGIC_COOKIE);
        b.extend_from_slice(&[53, 1, 3, 0, 12, 6]);
        b.extend_from_slice(b"iPhone");
        b.push(255);
        b
    }

    #[test]
    fn fields() {
        let b = request();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.op(), OP_REQUEST);
        assert_eq!(p.client_mac(), Some([0x3c, 0x22, 0xfb, 0x12, 0x34, 0x56]));
        assert_eq!(p.host_name(), Some(&b"iPhone"[..]));
        assert_eq!(p.option(53), Some(&[3u8][..]));
        assert_eq!(p.option(50), None);
    }

    #[test]
    fn replies_and_bad_cookies_give_no_name() {
        let mut b = request();
        b[0] = 2;
        assert_eq!(Packet::new_checked(&b[..]).unwrap().host_name(), None);
        let mut b = request();
        b[236] = 0;
        assert!(Packet::new_checked(&b[..]).is_err());
    }

    #[test]
    fn truncated_at_every_length() {
        let b = request();
        for n in 0..=b.len() {
            let r = Packet::new_checked(&b[..n]);
            assert_eq!(r.is_ok(), n >= 240, "length {n}");
            if let Ok(p) = r {
                let name = p.host_name();
                // The name is returned only when complete.
                assert_eq!(name.is_some(), n >= 240 + 4 + 2 + 6, "length {n}");
                let _ = (p.client_mac(), p.option(53), p.option(99));
            }
        }
    }
}
