//! Interface addresses from getifaddrs(3).

use std::net::{Ipv4Addr, Ipv6Addr};

/// The addresses of one interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Addresses {
    /// IPv4 addresses with their prefix lengths.
    pub ipv4: Vec<(Ipv4Addr, u8)>,
    /// IPv6 addresses with their prefix lengths.
    pub ipv6: Vec<(Ipv6Addr, u8)>,
}

/// All interfaces' IPv4/IPv6 addresses, as (name, addresses) in the kernel's order.
pub fn all() -> Vec<(String, Addresses)> {
    let mut out: Vec<(String, Addresses)> = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return out;
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, valid until freeifaddrs.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: ifa_addr is non-null and points to a sockaddr whose family says its type.
        let family = unsafe { (*ifa.ifa_addr).sa_family } as i32;
        let entry = match out.iter_mut().position(|(n, _)| *n == name) {
            Some(i) => &mut out[i].1,
            None => {
                out.push((name, Addresses::default()));
                &mut out.last_mut().unwrap().1
            }
        };
        match family {
            libc::AF_INET => {
                // SAFETY: family AF_INET means the sockaddr is a sockaddr_in (also the netmask).
                let addr = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                let ip = Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr));
                let prefix = if ifa.ifa_netmask.is_null() {
                    32
                } else {
                    // SAFETY: as above, the netmask of an AF_INET address is a sockaddr_in.
                    let m = unsafe { &*(ifa.ifa_netmask as *const libc::sockaddr_in) };
                    crate::addr::netmask_prefix(Ipv4Addr::from(u32::from_be(m.sin_addr.s_addr)))
                        .unwrap_or(32)
                };
                entry.ipv4.push((ip, prefix));
            }
            libc::AF_INET6 => {
                // SAFETY: family AF_INET6 means the sockaddr is a sockaddr_in6.
                let addr = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                let ip = Ipv6Addr::from(addr.sin6_addr.s6_addr);
                let prefix = if ifa.ifa_netmask.is_null() {
                    128
                } else {
                    // SAFETY: the netmask of an AF_INET6 address is a sockaddr_in6.
                    let m = unsafe { &*(ifa.ifa_netmask as *const libc::sockaddr_in6) };
                    u128::from_be_bytes(m.sin6_addr.s6_addr).leading_ones() as u8
                };
                entry.ipv6.push((ip, prefix));
            }
            _ => {}
        }
    }
    // SAFETY: `head` came from a successful getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    out
}

/// The first IPv4 address (and prefix) of `ifname`.
pub fn ipv4_of(ifname: &str) -> Option<(Ipv4Addr, u8)> {
    all()
        .into_iter()
        .find(|(n, _)| n == ifname)?
        .1
        .ipv4
        .first()
        .copied()
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_has_127_0_0_1() {
        let all = super::all();
        let lo = all.iter().find(|(n, _)| n == "lo").expect("lo exists");
        assert!(
            lo.1.ipv4.contains(&("127.0.0.1".parse().unwrap(), 8)),
            "{lo:?}"
        );
    }
}
