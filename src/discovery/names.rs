//! Device names from the files a router already has: dnsmasq leases (`/tmp/dhcp.leases` on
//! OpenWrt, `/var/lib/misc/dnsmasq.leases` on Debian), `/etc/ethers` and `/etc/hosts`. The
//! parsers are pure; `Names::refresh` re-reads a file only when its mtime or size changed, so
//! calling it every cycle costs one stat per file. No DNS: nothing here blocks on the network.
//! Precedence: leases, then ethers (by MAC), then hosts (by IP).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::SystemTime;

use crate::addr::parse_mac;

pub const DEFAULT_LEASE_FILES: &[&str] = &["/tmp/dhcp.leases", "/var/lib/misc/dnsmasq.leases"];
pub const ETHERS: &str = "/etc/ethers";
pub const HOSTS: &str = "/etc/hosts";

/// One name binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub mac: [u8; 6],
    pub ip: IpAddr,
    pub name: Option<String>,
}

/// dnsmasq leases: `EXPIRY MAC IP NAME CLIENT-ID` per line; `*` for no name. DHCPv6 lines (an
/// IAID instead of a MAC) and the `duid` line are skipped; so is any line that does not parse,
/// since dnsmasq rewrites the file in place and a reader may see it half-written.
pub fn parse_leases(text: &str) -> Vec<Lease> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let _expiry: u64 = f.next()?.parse().ok()?;
            let mac = parse_mac(f.next()?)?;
            let ip: IpAddr = f.next()?.parse().ok()?;
            let name = f.next().filter(|n| *n != "*").map(str::to_owned);
            Some(Lease { mac, ip, name })
        })
        .collect()
}

/// /etc/ethers: `MAC NAME-OR-IP` per line, `#` comments. Entries naming an IP are skipped.
pub fn parse_ethers(text: &str) -> Vec<([u8; 6], String)> {
    text.lines()
        .filter_map(|line| {
            let line = line.split('#').next()?;
            let mut f = line.split_whitespace();
            let mac = parse_mac(f.next()?)?;
            let name = f.next()?;
            if name.parse::<IpAddr>().is_ok() {
                return None;
            }
            Some((mac, name.to_owned()))
        })
        .collect()
}

/// /etc/hosts: `IP NAME [ALIASES]` per line, `#` comments; the first name of each line.
/// Loopback entries are skipped (they name this host, not a LAN device).
pub fn parse_hosts(text: &str) -> Vec<(IpAddr, String)> {
    text.lines()
        .filter_map(|line| {
            let line = line.split('#').next()?;
            let mut f = line.split_whitespace();
            let ip: IpAddr = f.next()?.parse().ok()?;
            if ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() {
                return None;
            }
            let name = f.next()?;
            Some((ip, name.to_owned()))
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Leases,
    Ethers,
    Hosts,
}

#[derive(Debug)]
struct Source {
    path: PathBuf,
    kind: Kind,
    stamp: Option<(SystemTime, u64)>,
}

/// The name tables, refreshed from their files.
#[derive(Debug)]
pub struct Names {
    sources: Vec<Source>,
    leases: Vec<Lease>,
    ethers: Vec<([u8; 6], String)>,
    hosts: Vec<(IpAddr, String)>,
}

impl Names {
    /// `lease_files`: the dnsmasq leases files to read (the first ones that exist all count).
    pub fn new(lease_files: &[PathBuf], ethers: PathBuf, hosts: PathBuf) -> Names {
        let mut sources: Vec<Source> = lease_files
            .iter()
            .map(|p| Source {
                path: p.clone(),
                kind: Kind::Leases,
                stamp: None,
            })
            .collect();
        sources.push(Source {
            path: ethers,
            kind: Kind::Ethers,
            stamp: None,
        });
        sources.push(Source {
            path: hosts,
            kind: Kind::Hosts,
            stamp: None,
        });
        Names {
            sources,
            leases: Vec::new(),
            ethers: Vec::new(),
            hosts: Vec::new(),
        }
    }

    /// The system's default files.
    pub fn system(lease_file: Option<PathBuf>) -> Names {
        let leases: Vec<PathBuf> = match lease_file {
            Some(p) => vec![p],
            None => DEFAULT_LEASE_FILES.iter().map(PathBuf::from).collect(),
        };
        Names::new(&leases, ETHERS.into(), HOSTS.into())
    }

    /// Re-reads every file whose mtime or size changed (or that appeared or vanished); true when
    /// anything was re-read.
    pub fn refresh(&mut self) -> bool {
        let mut changed = [false; 3];
        for s in &mut self.sources {
            let stamp = std::fs::metadata(&s.path)
                .ok()
                .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
            if stamp != s.stamp {
                s.stamp = stamp;
                changed[s.kind as usize] = true;
            }
        }
        if changed[Kind::Leases as usize] {
            self.leases.clear();
            for s in self.sources.iter().filter(|s| s.kind == Kind::Leases) {
                if let Ok(t) = std::fs::read_to_string(&s.path) {
                    self.leases.extend(parse_leases(&t));
                }
            }
        }
        for kind in [Kind::Ethers, Kind::Hosts] {
            if !changed[kind as usize] {
                continue;
            }
            let text = self
                .sources
                .iter()
                .find(|s| s.kind == kind)
                .and_then(|s| std::fs::read_to_string(&s.path).ok())
                .unwrap_or_default();
            match kind {
                Kind::Ethers => self.ethers = parse_ethers(&text),
                _ => self.hosts = parse_hosts(&text),
            }
        }
        changed.iter().any(|c| *c)
    }

    /// The name of the device with `mac` and (if known) `ip`.
    pub fn lookup(&self, mac: &[u8; 6], ip: Option<IpAddr>) -> Option<&str> {
        self.leases
            .iter()
            .find(|l| l.mac == *mac && l.name.is_some())
            .and_then(|l| l.name.as_deref())
            .or_else(|| {
                self.ethers
                    .iter()
                    .find(|e| e.0 == *mac)
                    .map(|e| e.1.as_str())
            })
            .or_else(|| {
                let ip = ip?;
                self.hosts.iter().find(|h| h.0 == ip).map(|h| h.1.as_str())
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// From an OpenWrt 23.05 router (dnsmasq 2.89), addresses and names changed.
    const LEASES: &str = "\
1732611111 a4:83:e7:12:34:56 192.168.1.137 MacBook-Air 01:a4:83:e7:12:34:56
1732612222 dc:a6:32:ab:cd:ef 192.168.1.20 * 01:dc:a6:32:ab:cd:ef
duid 00:01:00:01:2c:1f:aa:bb:00:11:22:33:44:55
1732613333 1234567 fd00::1:2 phone 00:04:aa:bb
garbage line
1732614444 11:22:33:44:55:66 192.168.1.
";

    #[test]
    fn leases() {
        let l = parse_leases(LEASES);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].name.as_deref(), Some("MacBook-Air"));
        assert_eq!(l[0].ip.to_string(), "192.168.1.137");
        assert_eq!(l[1].name, None);
    }

    #[test]
    fn ethers_and_hosts() {
        let e = parse_ethers(
            "# comment\n08:00:20:00:61:CA printer # office\n08:00:20:00:61:cb 10.0.0.3\nbad\n",
        );
        assert_eq!(e, vec![([8, 0, 0x20, 0, 0x61, 0xca], "printer".into())]);
        let h = parse_hosts("127.0.0.1 localhost\n::1 ip6-localhost\n192.168.1.5 nas nas.lan # x\n#10.0.0.1 off\nfe80::1%eth0 x\n");
        assert_eq!(h, vec![("192.168.1.5".parse().unwrap(), "nas".into())]);
    }

    #[test]
    fn refresh_and_precedence() {
        let dir = std::env::temp_dir().join(format!("netmon-names-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (lf, ef, hf) = (dir.join("leases"), dir.join("ethers"), dir.join("hosts"));
        std::fs::write(
            &ef,
            "02:00:00:00:00:01 from-ethers\n02:00:00:00:00:02 eth2\n",
        )
        .unwrap();
        std::fs::write(&hf, "10.0.0.3 from-hosts\n").unwrap();
        let mut n = Names::new(&[lf.clone()], ef, hf);
        assert!(n.refresh());
        assert!(!n.refresh());
        let m1 = [2, 0, 0, 0, 0, 1];
        assert_eq!(n.lookup(&m1, None), Some("from-ethers"));
        assert_eq!(
            n.lookup(&[2, 0, 0, 0, 0, 3], Some("10.0.0.3".parse().unwrap())),
            Some("from-hosts")
        );
        std::fs::write(&lf, "1 02:00:00:00:00:01 10.0.0.1 from-leases *\n").unwrap();
        assert!(n.refresh());
        assert_eq!(n.lookup(&m1, None), Some("from-leases"));
        std::fs::remove_file(&lf).unwrap();
        assert!(n.refresh());
        assert_eq!(n.lookup(&m1, None), Some("from-ethers"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
