//! Finding devices and their names: the ARP scanner, names from leases/ethers/hosts, and the
//! flow-offload check that tells why capture may miss forwarded traffic.

pub mod arp_scan;
pub mod names;
pub mod offload;

use std::net::Ipv4Addr;

/// The complete entries of /proc/net/arp on `iface`: (IP, MAC), to seed the device table at
/// start. Columns: IP, HW type, flags (0x2 = complete), HW address, mask, device.
pub fn parse_proc_net_arp(text: &str, iface: &str) -> Vec<(Ipv4Addr, [u8; 6])> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 6 || f[5] != iface {
                return None;
            }
            let flags = u32::from_str_radix(f[2].trim_start_matches("0x"), 16).ok()?;
            if flags & 0x2 == 0 {
                return None;
            }
            Some((f[0].parse().ok()?, crate::addr::parse_mac(f[3])?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    /// /proc/net/arp from a Debian 12 router (addresses changed).
    const ARP: &str = "\
IP address       HW type     Flags       HW address            Mask     Device
192.168.1.20     0x1         0x2         dc:a6:32:ab:cd:ef     *        br-lan
192.168.1.21     0x1         0x0         00:00:00:00:00:00     *        br-lan
10.0.0.1         0x1         0x2         00:11:22:33:44:55     *        wan
192.168.1.30     0x1         0x6         a4:83:e7:12:34:56     *        br-lan
";

    #[test]
    fn proc_net_arp() {
        let v = super::parse_proc_net_arp(ARP, "br-lan");
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].0.to_string(), "192.168.1.20");
        assert_eq!(v[1].1, [0xa4, 0x83, 0xe7, 0x12, 0x34, 0x56]);
        assert!(super::parse_proc_net_arp("", "br-lan").is_empty());
    }
}
