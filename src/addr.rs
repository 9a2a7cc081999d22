//! Small address types shared by config, decoding and discovery: IPv4 CIDR ranges and MAC text.

use std::fmt;
use std::net::Ipv4Addr;

/// An IPv4 network in CIDR notation, stored normalised (host bits cleared).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Cidr {
    network: u32,
    prefix: u8,
}

impl Ipv4Cidr {
    /// The range of `addr`/`prefix` (host bits cleared); None when `prefix` is over 32.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Option<Ipv4Cidr> {
        if prefix > 32 {
            return None;
        }
        Some(Ipv4Cidr {
            network: u32::from(addr) & mask(prefix),
            prefix,
        })
    }

    /// Parses `a.b.c.d/n`; a bare address means /32. Host bits set in the address are cleared
    /// (`192.168.1.1/24` is the user's way of saying `192.168.1.0/24`).
    pub fn parse(s: &str) -> Result<Ipv4Cidr, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => {
                let p: u8 = p
                    .trim()
                    .parse()
                    .map_err(|_| format!("'{p}' is not a prefix length (0-32)"))?;
                (a, p)
            }
            None => (s, 32),
        };
        let addr: Ipv4Addr = addr
            .trim()
            .parse()
            .map_err(|_| format!("'{}' is not an IPv4 address", addr.trim()))?;
        Ipv4Cidr::new(addr, prefix).ok_or_else(|| format!("prefix length {prefix} is over 32"))
    }

    /// The network address.
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network)
    }
    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }
    /// True when `addr` is inside the range.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & mask(self.prefix) == self.network
    }
    /// Number of addresses in the range (2^(32-prefix)).
    pub fn size(&self) -> u64 {
        1u64 << (32 - self.prefix as u32)
    }
    /// The addresses worth probing: all of them for /31 and /32, otherwise without the network
    /// and broadcast addresses (what arp-scan --localnet does).
    pub fn hosts(&self) -> impl Iterator<Item = Ipv4Addr> {
        let (first, last) = if self.prefix >= 31 {
            (self.network as u64, self.network as u64 + self.size() - 1)
        } else {
            (
                self.network as u64 + 1,
                self.network as u64 + self.size() - 2,
            )
        };
        (first..=last).map(|a| Ipv4Addr::from(a as u32))
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix)
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix as u32)
    }
}

/// Prefix length of a contiguous netmask (255.255.255.0 -> 24); None for a non-contiguous one.
pub fn netmask_prefix(mask: Ipv4Addr) -> Option<u8> {
    let m = u32::from(mask);
    let ones = m.leading_ones();
    (m.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

/// A MAC address as the payload writes it: lowercase, colon separated.
pub fn format_mac(mac: &[u8; 6]) -> String {
    let mut s = String::with_capacity(17);
    for (i, b) in mac.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        const HEX: &[u8; 16] = b"0123456789abcdef";
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// Parses `aa:bb:cc:dd:ee:ff` (also `-` separated, any case).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for b in out.iter_mut() {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parse_and_hosts() {
        let c = Ipv4Cidr::parse("192.168.1.77/24").unwrap();
        assert_eq!(c.to_string(), "192.168.1.0/24");
        assert!(c.contains("192.168.1.255".parse().unwrap()));
        assert!(!c.contains("192.168.2.1".parse().unwrap()));
        assert_eq!(c.hosts().count(), 254);
        assert_eq!(c.hosts().next().unwrap().to_string(), "192.168.1.1");
        assert_eq!(Ipv4Cidr::parse("10.0.0.1").unwrap().hosts().count(), 1);
        assert_eq!(Ipv4Cidr::parse("10.0.0.0/31").unwrap().hosts().count(), 2);
        assert_eq!(Ipv4Cidr::parse("0.0.0.0/0").unwrap().size(), 1 << 32);
        assert!(Ipv4Cidr::parse("10.0.0.0/33").is_err());
        assert!(Ipv4Cidr::parse("10.0.0/8").is_err());
        assert!(Ipv4Cidr::parse("10.0.0.0/x").is_err());
    }

    #[test]
    fn netmask_prefixes() {
        assert_eq!(netmask_prefix("255.255.255.0".parse().unwrap()), Some(24));
        assert_eq!(netmask_prefix("0.0.0.0".parse().unwrap()), Some(0));
        assert_eq!(netmask_prefix("255.255.255.255".parse().unwrap()), Some(32));
        assert_eq!(netmask_prefix("255.0.255.0".parse().unwrap()), None);
    }

    #[test]
    fn mac_text() {
        let m = [0x00, 0x1b, 0x21, 0xAB, 0xcd, 0xef];
        assert_eq!(format_mac(&m), "00:1b:21:ab:cd:ef");
        assert_eq!(parse_mac("00:1B:21:ab:cd:ef"), Some(m));
        assert_eq!(parse_mac("00-1b-21-ab-cd-ef"), Some(m));
        assert_eq!(parse_mac("00:1b:21:ab:cd"), None);
        assert_eq!(parse_mac("00:1b:21:ab:cd:ef:00"), None);
        assert_eq!(parse_mac("00:1b:21:ab:cd:xg"), None);
    }
}
