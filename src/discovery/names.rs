//! Device names from the files a router already has: dnsmasq leases (`/tmp/dhcp.leases` on
//! OpenWrt, `/var/lib/misc/dnsmasq.leases` on Debian), `/etc/ethers` and `/etc/hosts`. The
//! parsers are pure; `Names::refresh` re-reads a file only when its mtime or size changed, so
//! calling it every cycle costs one stat per file. No DNS: nothing here blocks on the network.
//! Precedence: leases, then ethers (by MAC), then hosts (by IP).
//!
//! Reading never blocks and is bounded: each file is opened with O_NONBLOCK and checked with
//! fstat after the open (only a regular file is read: a FIFO or a device planted under the
//! name is skipped), and at most [`READ_LIMIT`] bytes of it are read (complete lines only).
//! A lease file is never reached through a symbolic link (O_NOFOLLOW): dnsmasq writes a
//! regular file, and on plain Linux /tmp, where OpenWrt keeps it, is writable by every user.
//! /etc/ethers and /etc/hosts may be links (root-owned /etc; some systems link them).
//! A file that cannot be used is warned about once, and again only after it changed.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::addr::parse_mac;
use crate::sys::fs::{open_regular, read_at_most, ReadError};

/// The most read of one names file: 1 MiB is ~10,000 dnsmasq leases (dnsmasq's own default
/// limit is 1,000; OpenWrt's 150) and far more than any /etc/ethers; a larger /etc/hosts (an
/// ad-block list) is used up to there.
pub const READ_LIMIT: usize = 1 << 20;

/// Where dnsmasq keeps its leases (OpenWrt, Debian).
pub const DEFAULT_LEASE_FILES: &[&str] = &["/tmp/dhcp.leases", "/var/lib/misc/dnsmasq.leases"];
/// MAC to name (or address) bindings.
pub const ETHERS: &str = "/etc/ethers";
/// Address to name bindings.
pub const HOSTS: &str = "/etc/hosts";

/// One name binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The MAC.
    pub mac: [u8; 6],
    /// The address.
    pub ip: IpAddr,
    /// The name, when the line has one.
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
    /// mtime, size, inode of the last look (lstat for lease files, stat otherwise).
    stamp: Option<(SystemTime, u64, u64)>,
}

impl Source {
    /// Symbolic links are followed for /etc files only.
    fn follow(&self) -> bool {
        self.kind != Kind::Leases
    }
}

/// Reads `path` into `buf` within the bounds (see the module doc); the text is its complete
/// lines. Problems other than a missing file are logged (the caller calls this only when the
/// file changed, so each is said once per change).
fn read_names_file(path: &Path, follow: bool, buf: &mut Vec<u8>) -> bool {
    buf.clear();
    let read = open_regular(path, follow)
        .and_then(|(mut f, _)| read_at_most(&mut f, READ_LIMIT, buf).map_err(ReadError::Io));
    match read {
        Ok(false) => true,
        Ok(true) => {
            // Cut at the last complete line.
            let end = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            buf.truncate(end);
            warn!(
                "{}: larger than {} bytes; only the first {} bytes (complete lines) are read",
                path.display(),
                READ_LIMIT,
                end
            );
            true
        }
        Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => {
            warn!("{}: {e}; not read for device names", path.display());
            false
        }
    }
}

/// The name tables, refreshed from their files.
#[derive(Debug)]
pub struct Names {
    sources: Vec<Source>,
    leases: Vec<Lease>,
    ethers: Vec<([u8; 6], String)>,
    hosts: Vec<(IpAddr, String)>,
    /// The file being read, reused.
    buf: Vec<u8>,
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
            buf: Vec::new(),
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

    /// Re-reads every file whose mtime, size or inode changed (or that appeared or vanished);
    /// true when anything was re-read.
    pub fn refresh(&mut self) -> bool {
        use std::os::unix::fs::MetadataExt;
        let mut changed = [false; 3];
        for s in &mut self.sources {
            let meta = match s.follow() {
                true => std::fs::metadata(&s.path),
                false => std::fs::symlink_metadata(&s.path),
            };
            let stamp = meta.ok().map(|m| {
                (
                    m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    m.len(),
                    m.ino(),
                )
            });
            if stamp != s.stamp {
                s.stamp = stamp;
                changed[s.kind as usize] = true;
            }
        }
        if changed[Kind::Leases as usize] {
            self.leases.clear();
            for s in self.sources.iter().filter(|s| s.kind == Kind::Leases) {
                if read_names_file(&s.path, s.follow(), &mut self.buf) {
                    self.leases
                        .extend(parse_leases(&String::from_utf8_lossy(&self.buf)));
                }
            }
        }
        for kind in [Kind::Ethers, Kind::Hosts] {
            if !changed[kind as usize] {
                continue;
            }
            self.buf.clear();
            if let Some(s) = self.sources.iter().find(|s| s.kind == kind) {
                read_names_file(&s.path, s.follow(), &mut self.buf);
            }
            let text = String::from_utf8_lossy(&self.buf);
            match kind {
                Kind::Ethers => self.ethers = parse_ethers(&text),
                _ => self.hosts = parse_hosts(&text),
            }
        }
        // A big file read once does not keep its buffer for ever.
        self.buf.clear();
        self.buf.shrink_to(64 << 10);
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

    #[test]
    fn hostile_lease_files_never_block_and_are_read_bounded() {
        let dir = std::env::temp_dir().join(format!("netmon-names-hostile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (lf, ef, hf) = (dir.join("leases"), dir.join("ethers"), dir.join("hosts"));
        // A FIFO nobody writes to, where dnsmasq's file should be: skipped at once.
        assert!(std::process::Command::new("mkfifo")
            .arg(&lf)
            .status()
            .unwrap()
            .success());
        let mut n = Names::new(std::slice::from_ref(&lf), ef.clone(), hf.clone());
        let t = std::time::Instant::now();
        n.refresh();
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
        assert!(n.leases.is_empty());
        // A link to a real leases file: not followed.
        std::fs::remove_file(&lf).unwrap();
        let real = dir.join("real-leases");
        std::fs::write(&real, "1 02:00:00:00:00:01 10.0.0.1 linked *\n").unwrap();
        std::os::unix::fs::symlink(&real, &lf).unwrap();
        assert!(n.refresh());
        assert_eq!(n.lookup(&[2, 0, 0, 0, 0, 1], None), None);
        // A 400 MB sparse file whose first line is a lease: at most READ_LIMIT is read.
        std::fs::remove_file(&lf).unwrap();
        let mut f = std::fs::File::create(&lf).unwrap();
        std::io::Write::write_all(&mut f, b"1 02:00:00:00:00:02 10.0.0.2 first *\n").unwrap();
        f.set_len(400 << 20).unwrap();
        let t = std::time::Instant::now();
        assert!(n.refresh());
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
        // The buffer is not kept at its peak (the peak itself is bounded by READ_LIMIT: see
        // tests/config.rs, which measures the agent's VmHWM with such a file).
        assert!(n.buf.capacity() <= 64 << 10, "{}", n.buf.capacity());
        assert_eq!(n.lookup(&[2, 0, 0, 0, 0, 2], None), Some("first"));
        // /etc/hosts larger than the bound (an ad-block list): its first MiB is used, the
        // line cut at the bound is not.
        let mut hosts = String::from("10.0.0.7 nas\n");
        while hosts.len() < READ_LIMIT + 100 {
            hosts.push_str("0.0.0.0 ads.example\n");
        }
        hosts.push_str("10.0.0.8 late\n");
        std::fs::write(&hf, &hosts).unwrap();
        assert!(n.refresh());
        let ip = |s: &str| Some(s.parse().unwrap());
        assert_eq!(n.lookup(&[2, 0, 0, 0, 0, 9], ip("10.0.0.7")), Some("nas"));
        assert_eq!(n.lookup(&[2, 0, 0, 0, 0, 9], ip("10.0.0.8")), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
