//! Name resolution inside the loop: a small DNS client over UDP, so a resolver that never
//! answers costs the platform connection its timeout and nothing else (the system resolver
//! would block the one thread for its whole timeout, capture included).
//!
//! A name is looked up in this order: an IP literal needs nothing; /etc/hosts; the cache; the
//! nameservers of /etc/resolv.conf (at most 3, in order, rotating on each try), asking for A and
//! AAAA at once from a fresh socket and source port per try. Names are looked up as given (the
//! `search`/`domain` lines are not applied). Answers are cached for their TTL, held between
//! `TTL_FLOOR` and `TTL_CEILING`. Both files are read (at most 64 KiB each) when a lookup needs
//! them, so edits apply without a restart.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Cached answers live at least this long (a TTL of 0 would mean a query per request)...
pub const TTL_FLOOR: Duration = Duration::from_secs(10);
/// ...and at most this long (a moved platform is found again within the hour).
pub const TTL_CEILING: Duration = Duration::from_secs(3600);
/// One try's wait for an answer before the next nameserver is asked.
pub const TRY_TIMEOUT: Duration = Duration::from_millis(1000);
/// Most nameservers used from resolv.conf (as glibc and musl).
const MAX_SERVERS: usize = 3;
/// Most names cached (the agent talks to at most four hosts).
const CACHE_SIZE: usize = 8;
/// Most bytes read from resolv.conf or hosts.
const MAX_FILE: u64 = 64 * 1024;
/// Largest UDP answer read (EDNS is not asked for, so 512 is the protocol's limit).
const MAX_UDP: usize = 512;

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;

/// Why a name could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsError {
    /// The name cannot be a host name.
    BadName,
    /// resolv.conf names no nameserver (and the name is not in hosts).
    NoServers,
    /// The name does not exist, or has no A/AAAA record.
    NotFound,
    /// A nameserver refused or failed (the response code).
    ServerFailure(u8),
    /// No answer within the time given.
    Timeout {
        /// Queries sent.
        tries: u32,
    },
    /// A socket error.
    Io(String),
}

impl fmt::Display for DnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsError::BadName => write!(f, "not a valid host name"),
            DnsError::NoServers => write!(f, "no nameserver in /etc/resolv.conf"),
            DnsError::NotFound => write!(f, "no such host (no A or AAAA record)"),
            DnsError::ServerFailure(rcode) => {
                write!(f, "the nameserver failed (response code {rcode})")
            }
            DnsError::Timeout { tries } => write!(
                f,
                "no answer from the nameservers ({tries} {})",
                if *tries == 1 { "try" } else { "tries" }
            ),
            DnsError::Io(m) => write!(f, "{m}"),
        }
    }
}

// ---------- files ----------

/// The nameservers of a resolv.conf text (`nameserver ADDR` lines, at most 3), port 53.
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        // An IPv6 nameserver may carry a zone (%eth0): not supported, skipped.
        if let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) {
            if out.len() < MAX_SERVERS {
                out.push(SocketAddr::new(ip, 53));
            }
        }
    }
    out
}

/// The addresses a hosts text gives `name` (any case; comments and bad lines ignored).
pub fn parse_hosts(text: &str, name: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) else {
            continue;
        };
        if words.any(|w| w.eq_ignore_ascii_case(name)) && !out.contains(&ip) {
            out.push(ip);
        }
    }
    out
}

/// A small file read whole if it is a regular file (at most 64 KiB, the rest ignored); empty
/// when missing. Opened without blocking: a FIFO there is refused, never waited on.
fn read_small(path: &std::path::Path) -> String {
    let mut buf = Vec::new();
    if let Ok((mut f, _)) = crate::sys::fs::open_regular(path, true) {
        let _ = crate::sys::fs::read_at_most(&mut f, MAX_FILE as usize, &mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

// ---------- the wire format (RFC 1035 section 4) ----------

mod field {
    pub type Field = std::ops::Range<usize>;
    pub const ID: Field = 0..2;
    pub const FLAGS: Field = 2..4;
    pub const QDCOUNT: Field = 4..6;
    pub const ANCOUNT: Field = 6..8;
    pub const HEADER_LEN: usize = 12;
}

/// Whether `name` can be asked for: labels of 1..63 letters, digits, '-' or '_', 253 bytes
/// in all, one trailing dot allowed.
pub fn valid_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Writes a recursive query for `name` (already `valid_name`) into `buf`; returns its length.
pub fn build_query(id: u16, name: &str, qtype: u16, buf: &mut [u8; MAX_UDP]) -> usize {
    buf[field::ID].copy_from_slice(&id.to_be_bytes());
    buf[field::FLAGS].copy_from_slice(&0x0100u16.to_be_bytes()); // RD
    buf[field::QDCOUNT].copy_from_slice(&1u16.to_be_bytes());
    buf[6..12].fill(0);
    let mut at = field::HEADER_LEN;
    for label in name.strip_suffix('.').unwrap_or(name).split('.') {
        buf[at] = label.len() as u8;
        buf[at + 1..at + 1 + label.len()].copy_from_slice(label.as_bytes());
        at += 1 + label.len();
    }
    buf[at] = 0;
    buf[at + 1..at + 3].copy_from_slice(&qtype.to_be_bytes());
    buf[at + 3..at + 5].copy_from_slice(&CLASS_IN.to_be_bytes());
    at + 5
}

/// A DNS response as received (zero-copy).
pub struct Message<T: AsRef<[u8]>> {
    buffer: T,
}

/// One address record of an answer section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// The address.
    pub addr: IpAddr,
    /// Its time to live, seconds.
    pub ttl: u32,
}

impl<T: AsRef<[u8]>> Message<T> {
    /// A view without any check.
    pub fn new_unchecked(buffer: T) -> Self {
        Message { buffer }
    }

    /// After Ok, the header accessors do not panic.
    pub fn new_checked(buffer: T) -> Option<Self> {
        let m = Message { buffer };
        (m.buffer.as_ref().len() >= field::HEADER_LEN).then_some(m)
    }

    fn u16_at(&self, r: field::Field) -> u16 {
        let b = &self.buffer.as_ref()[r];
        u16::from_be_bytes([b[0], b[1]])
    }
    /// The message id.
    pub fn id(&self) -> u16 {
        self.u16_at(field::ID)
    }
    /// The QR bit: a response.
    pub fn is_response(&self) -> bool {
        self.u16_at(field::FLAGS) & 0x8000 != 0
    }
    /// The response code (0: no error).
    pub fn rcode(&self) -> u8 {
        (self.u16_at(field::FLAGS) & 0x000f) as u8
    }
    /// Entries in the question section.
    pub fn qdcount(&self) -> u16 {
        self.u16_at(field::QDCOUNT)
    }
    /// Entries in the answer section.
    pub fn ancount(&self) -> u16 {
        self.u16_at(field::ANCOUNT)
    }

    /// Whether the one question is (`name`, `qtype`, IN), and the offset after it.
    pub fn question_matches(&self, name: &str, qtype: u16) -> Option<usize> {
        let b = self.buffer.as_ref();
        if self.qdcount() != 1 {
            return None;
        }
        let mut at = field::HEADER_LEN;
        for label in name.strip_suffix('.').unwrap_or(name).split('.') {
            let len = *b.get(at)? as usize;
            let got = b.get(at + 1..at + 1 + len)?;
            if len != label.len() || !got.eq_ignore_ascii_case(label.as_bytes()) {
                return None;
            }
            at += 1 + len;
        }
        if *b.get(at)? != 0 {
            return None;
        }
        let t = b.get(at + 1..at + 5)?;
        (u16::from_be_bytes([t[0], t[1]]) == qtype && u16::from_be_bytes([t[2], t[3]]) == CLASS_IN)
            .then_some(at + 5)
    }

    /// The A (or AAAA) records of the answer section, after the question ending at `at`,
    /// into `out`; records of other types (a CNAME chain) are stepped over. None when the
    /// section is malformed.
    pub fn answers(&self, mut at: usize, qtype: u16, out: &mut Vec<Record>) -> Option<()> {
        let b = self.buffer.as_ref();
        for _ in 0..self.ancount() {
            at = skip_name(b, at)?;
            let h = b.get(at..at + 10)?;
            let rtype = u16::from_be_bytes([h[0], h[1]]);
            let class = u16::from_be_bytes([h[2], h[3]]);
            let ttl = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
            let len = u16::from_be_bytes([h[8], h[9]]) as usize;
            let data = b.get(at + 10..at + 10 + len)?;
            at += 10 + len;
            if class != CLASS_IN || rtype != qtype {
                continue;
            }
            let addr = match (rtype, len) {
                (TYPE_A, 4) => IpAddr::V4(Ipv4Addr::new(data[0], data[1], data[2], data[3])),
                (TYPE_AAAA, 16) => {
                    let mut o = [0u8; 16];
                    o.copy_from_slice(data);
                    IpAddr::V6(Ipv6Addr::from(o))
                }
                _ => return None,
            };
            if out.len() < 16 {
                out.push(Record { addr, ttl });
            }
        }
        Some(())
    }
}

/// The offset after a (possibly compressed) name at `at`; a pointer ends the name.
fn skip_name(b: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *b.get(at)?;
        match len & 0xc0 {
            0xc0 => {
                b.get(at + 1)?;
                return Some(at + 2);
            }
            0x00 if len == 0 => return Some(at + 1),
            0x00 => at += 1 + len as usize,
            _ => return None,
        }
    }
}

// ---------- the client ----------

/// One name being resolved: A and AAAA asked at once, one nameserver per try, until both are
/// answered or the deadline passes. Its socket sits in the loop's poll set.
pub struct Query {
    name: String,
    servers: Vec<SocketAddr>,
    sock: UdpSocket,
    tries: u32,
    ids: [u16; 2],
    /// Per type (A, AAAA): the records once that type is answered.
    answered: [Option<Vec<Record>>; 2],
    /// The worst response code seen (for the error when nothing came).
    rcode: u8,
    try_until: Instant,
    deadline: Instant,
}

const QTYPES: [u16; 2] = [TYPE_A, TYPE_AAAA];

impl Query {
    fn start(
        name: &str,
        servers: Vec<SocketAddr>,
        now: Instant,
        deadline: Instant,
    ) -> Result<Query, DnsError> {
        let (sock, ids) = Query::send_try(name, servers[0], &[0, 0])?;
        Ok(Query {
            name: name.to_owned(),
            servers,
            sock,
            tries: 1,
            ids,
            answered: [None, None],
            rcode: 0,
            try_until: (now + TRY_TIMEOUT).min(deadline),
            deadline,
        })
    }

    /// A fresh socket (new source port) connected to `server`, both questions sent on it.
    fn send_try(
        name: &str,
        server: SocketAddr,
        old_ids: &[u16; 2],
    ) -> Result<(UdpSocket, [u16; 2]), DnsError> {
        let io = |e: io::Error| DnsError::Io(format!("DNS socket to {server}: {e}"));
        let local: SocketAddr = match server {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let sock = UdpSocket::bind(local).map_err(io)?;
        sock.set_nonblocking(true).map_err(io)?;
        sock.connect(server).map_err(io)?;
        let mut ids = [0u16; 2];
        let mut buf = [0u8; MAX_UDP];
        for (i, qtype) in QTYPES.iter().enumerate() {
            loop {
                ids[i] = crate::sys::random::u64() as u16;
                if !old_ids.contains(&ids[i]) && (i == 0 || ids[i] != ids[0]) {
                    break;
                }
            }
            let n = build_query(ids[i], name, *qtype, &mut buf);
            // A send that fails (no route to this nameserver) is a try that gets no answer.
            let _ = sock.send(&buf[..n]);
        }
        Ok((sock, ids))
    }

    /// The name being looked up.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The UDP socket to poll.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    /// When `advance` must run even without an answer (the next try, or giving up).
    pub fn deadline(&self) -> Instant {
        self.try_until
    }

    /// Reads whatever answers arrived and moves on when a try timed out. Some(result) when the
    /// lookup is over: the addresses (IPv4 first) with the smallest TTL, or why not.
    pub fn advance(&mut self, now: Instant) -> Option<Result<(Vec<IpAddr>, u32), DnsError>> {
        let mut buf = [0u8; MAX_UDP];
        // Bounded: a flood of datagrams cannot keep the loop here.
        for _ in 0..16 {
            let n = match self.sock.recv(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // ICMP port unreachable and the like: this server is no use this try.
                Err(_) => {
                    self.try_until = now;
                    break;
                }
            };
            self.take(&buf[..n], now);
        }
        if self.answered.iter().all(Option::is_some) {
            return Some(self.result());
        }
        if now < self.try_until {
            return None;
        }
        // An A answer with addresses is enough once its try is over (a missing AAAA answer
        // must not cost the IPv4 address).
        if self.answered[0].as_ref().is_some_and(|a| !a.is_empty()) {
            return Some(self.result());
        }
        if now >= self.deadline {
            return Some(Err(match self.rcode {
                0 => DnsError::Timeout { tries: self.tries },
                r => DnsError::ServerFailure(r),
            }));
        }
        let server = self.servers[self.tries as usize % self.servers.len()];
        match Query::send_try(&self.name, server, &self.ids) {
            Ok((sock, ids)) => {
                self.sock = sock;
                self.ids = ids;
            }
            Err(e) => return Some(Err(e)),
        }
        self.tries += 1;
        self.try_until = (now + TRY_TIMEOUT).min(self.deadline);
        None
    }

    fn take(&mut self, packet: &[u8], now: Instant) {
        let Some(m) = Message::new_checked(packet) else {
            return;
        };
        let Some(i) = self.ids.iter().position(|&id| id == m.id()) else {
            return;
        };
        if !m.is_response() || self.answered[i].is_some() {
            return;
        }
        let Some(at) = m.question_matches(&self.name, QTYPES[i]) else {
            return;
        };
        match m.rcode() {
            // NXDOMAIN: the name does not exist, for both types.
            0 | 3 => {
                let mut recs = Vec::new();
                if m.rcode() == 0 && m.answers(at, QTYPES[i], &mut recs).is_none() {
                    return;
                }
                self.answered[i] = Some(recs);
            }
            // SERVFAIL, REFUSED, ...: this server is no use this try; another may answer.
            r => {
                self.rcode = self.rcode.max(r);
                self.try_until = now;
            }
        }
    }

    fn result(&self) -> Result<(Vec<IpAddr>, u32), DnsError> {
        let mut addrs = Vec::new();
        let mut ttl = u32::MAX;
        for r in self.answered.iter().flatten().flatten() {
            if !addrs.contains(&r.addr) {
                addrs.push(r.addr);
            }
            ttl = ttl.min(r.ttl);
        }
        if addrs.is_empty() {
            return Err(DnsError::NotFound);
        }
        Ok((addrs, ttl))
    }
}

/// How a lookup starts: done at once (literal, hosts, cache), or a query for the loop.
pub enum Lookup {
    /// Known at once: the addresses.
    Done(Vec<IpAddr>),
    /// A query the loop drives.
    Query(Box<Query>),
    /// Failed at once.
    Failed(DnsError),
}

struct Cached {
    name: String,
    addrs: Vec<IpAddr>,
    until: Instant,
}

/// Where lookups start and end: the files and the cache. One per agent.
pub struct Resolver {
    resolv_conf: PathBuf,
    hosts: PathBuf,
    cache: Vec<Cached>,
    /// Nameservers for tests (a port other than 53); None: from resolv.conf.
    servers: Option<Vec<SocketAddr>>,
}

impl Default for Resolver {
    fn default() -> Self {
        Resolver::system()
    }
}

impl Resolver {
    /// A resolver reading the system's /etc/resolv.conf and /etc/hosts.
    pub fn system() -> Resolver {
        Resolver {
            resolv_conf: "/etc/resolv.conf".into(),
            hosts: "/etc/hosts".into(),
            cache: Vec::new(),
            servers: None,
        }
    }

    /// A resolver with its own files or nameservers (tests).
    pub fn with(
        resolv_conf: PathBuf,
        hosts: PathBuf,
        servers: Option<Vec<SocketAddr>>,
    ) -> Resolver {
        Resolver {
            resolv_conf,
            hosts,
            cache: Vec::new(),
            servers,
        }
    }

    /// Starts looking `name` up, to be done by `deadline`.
    pub fn start(&mut self, name: &str, now: Instant, deadline: Instant) -> Lookup {
        if let Ok(ip) = name.parse::<IpAddr>() {
            return Lookup::Done(vec![ip]);
        }
        if !valid_name(name) {
            return Lookup::Failed(DnsError::BadName);
        }
        let from_hosts = parse_hosts(&read_small(&self.hosts), name);
        if !from_hosts.is_empty() {
            return Lookup::Done(from_hosts);
        }
        self.cache.retain(|c| now < c.until);
        if let Some(c) = self
            .cache
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
        {
            return Lookup::Done(c.addrs.clone());
        }
        if name.eq_ignore_ascii_case("localhost") {
            return Lookup::Done(vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()]);
        }
        let servers = match &self.servers {
            Some(s) => s.clone(),
            None => parse_resolv_conf(&read_small(&self.resolv_conf)),
        };
        if servers.is_empty() {
            return Lookup::Failed(DnsError::NoServers);
        }
        match Query::start(name, servers, now, deadline) {
            Ok(q) => Lookup::Query(Box::new(q)),
            Err(e) => Lookup::Failed(e),
        }
    }

    /// Ends a query: caches a success for its TTL (between the floor and the ceiling).
    pub fn finish(
        &mut self,
        name: &str,
        result: Result<(Vec<IpAddr>, u32), DnsError>,
        now: Instant,
    ) -> Result<Vec<IpAddr>, DnsError> {
        let (addrs, ttl) = result?;
        let ttl = Duration::from_secs(ttl as u64).clamp(TTL_FLOOR, TTL_CEILING);
        self.cache.retain(|c| !c.name.eq_ignore_ascii_case(name));
        if self.cache.len() == CACHE_SIZE {
            self.cache.remove(0);
        }
        self.cache.push(Cached {
            name: name.to_owned(),
            addrs: addrs.clone(),
            until: now + ttl,
        });
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// An answer to `query` (as a server would send it) with the given A/AAAA addresses.
    fn answer(query: &[u8], rcode: u8, addrs: &[IpAddr], ttl: u32) -> Vec<u8> {
        let mut r = query.to_vec();
        r[2] = 0x81;
        r[3] = 0x80 | rcode;
        r[6..8].copy_from_slice(&(addrs.len() as u16 + 1).to_be_bytes());
        // A CNAME first (to be stepped over), pointing at the question name.
        r.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 2, 0xc0, 12]);
        for a in addrs {
            r.extend_from_slice(&[0xc0, 12]);
            let (t, data): (u16, Vec<u8>) = match a {
                IpAddr::V4(v) => (TYPE_A, v.octets().to_vec()),
                IpAddr::V6(v) => (TYPE_AAAA, v.octets().to_vec()),
            };
            r.extend_from_slice(&t.to_be_bytes());
            r.extend_from_slice(&[0, 1]);
            r.extend_from_slice(&ttl.to_be_bytes());
            r.extend_from_slice(&(data.len() as u16).to_be_bytes());
            r.extend_from_slice(&data);
        }
        r
    }

    #[test]
    fn query_bytes_match_rfc_1035() {
        let mut buf = [0u8; MAX_UDP];
        let n = build_query(0x1234, "api.example.", TYPE_AAAA, &mut buf);
        assert_eq!(
            &buf[..n],
            b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03api\x07example\x00\x00\x1c\x00\x01"
        );
    }

    #[test]
    fn answers_parse_and_truncation_never_panics() {
        let mut buf = [0u8; MAX_UDP];
        let n = build_query(7, "platform.test", TYPE_A, &mut buf);
        let a: IpAddr = "10.1.2.3".parse().unwrap();
        let r = answer(&buf[..n], 0, &[a], 300);
        let m = Message::new_checked(&r[..]).unwrap();
        assert!(m.is_response());
        assert_eq!((m.id(), m.rcode(), m.ancount()), (7, 0, 2));
        assert_eq!(m.question_matches("platform.test", TYPE_AAAA), None);
        assert_eq!(m.question_matches("other.test", TYPE_A), None);
        let at = m.question_matches("PLATFORM.test", TYPE_A).unwrap();
        let mut out = Vec::new();
        m.answers(at, TYPE_A, &mut out).unwrap();
        assert_eq!(out, vec![Record { addr: a, ttl: 300 }]);
        // Cut at every length: None or fewer records, never a panic.
        for len in 0..r.len() {
            if let Some(m) = Message::new_checked(&r[..len]) {
                if let Some(at) = m.question_matches("platform.test", TYPE_A) {
                    let mut out = Vec::new();
                    assert!(m.answers(at, TYPE_A, &mut out).is_none(), "{len}");
                }
            } else {
                assert!(len < 12);
            }
        }
        // A pointer loop or a reserved label type is refused, not followed.
        assert_eq!(skip_name(&[0x80, 1], 0), None);
        assert_eq!(skip_name(&[3, b'a'], 0), None);
    }

    #[test]
    fn files_and_names() {
        let conf = "# comment\ndomain lan\nsearch lan\nnameserver 10.0.0.1\nnameserver ::1\nnameserver fe80::1%eth0\nnameserver bogus\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n";
        let s = parse_resolv_conf(conf);
        assert_eq!(
            s,
            vec![
                "10.0.0.1:53".parse().unwrap(),
                "[::1]:53".parse().unwrap(),
                "10.0.0.2:53".parse().unwrap()
            ]
        );
        let hosts = "127.0.0.1 localhost\n10.9.9.9 platform.test platform # ours\n::1 ip6-localhost\n# 1.2.3.4 platform.test\n";
        assert_eq!(
            parse_hosts(hosts, "Platform.Test"),
            vec!["10.9.9.9".parse::<IpAddr>().unwrap()]
        );
        assert!(parse_hosts(hosts, "nothere").is_empty());
        for good in ["a", "api.example.com", "x-1.y_2.", "a.b.c.d.e"] {
            assert!(valid_name(good), "{good}");
        }
        let long = "a".repeat(64);
        for bad in ["", ".", "a..b", "a b", "a/b", long.as_str(), "ä.com"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    /// resolv.conf and hosts are read bounded, and a FIFO or a device in their place is
    /// refused at once (the loop never waits on a file).
    #[test]
    fn files_are_read_bounded_and_never_block() {
        let dir = std::env::temp_dir().join(format!("netmon-dns-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("hosts");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let t0 = Instant::now();
        assert_eq!(read_small(&fifo), "");
        assert_eq!(read_small(std::path::Path::new("/dev/zero")), "");
        assert!(t0.elapsed() < Duration::from_secs(1));
        let big = dir.join("big");
        std::fs::write(&big, "x".repeat(MAX_FILE as usize + 10)).unwrap();
        assert_eq!(read_small(&big).len(), MAX_FILE as usize);
        assert_eq!(read_small(&dir.join("missing")), "");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A nameserver on 127.0.0.1 that answers A queries for `platform.test` and NODATA for
    /// AAAA, after dropping the first `ignore` questions.
    fn fake_server(ignore: usize, rcode: u8) -> (SocketAddr, std::thread::JoinHandle<usize>) {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = s.local_addr().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let t = std::thread::spawn(move || {
            let mut seen = 0;
            let mut b = [0u8; 512];
            while let Ok((n, from)) = s.recv_from(&mut b) {
                seen += 1;
                if seen <= ignore {
                    continue;
                }
                let q = &b[..n];
                let qtype = u16::from_be_bytes([q[n - 4], q[n - 3]]);
                let addrs: Vec<IpAddr> = if qtype == TYPE_A {
                    vec!["127.0.0.7".parse().unwrap()]
                } else {
                    vec![]
                };
                let _ = s.send_to(&answer(q, rcode, &addrs, 2), from);
                if seen >= ignore + 2 {
                    break;
                }
            }
            seen
        });
        (addr, t)
    }

    fn run(q: &mut Query) -> Result<(Vec<IpAddr>, u32), DnsError> {
        use crate::sys::poll::{PollSet, Token, Want};
        loop {
            let mut set = PollSet::new();
            set.register(Token(0), q.fd(), Want::READ);
            set.wake_at(q.deadline());
            set.wait(Instant::now(), Duration::from_secs(10)).unwrap();
            if let Some(r) = q.advance(Instant::now()) {
                return r;
            }
        }
    }

    #[test]
    fn a_query_retries_past_a_silent_server_and_caches() {
        let none = Path::new("/nonexistent").to_owned();
        let (live, t) = fake_server(0, 0);
        // A server that swallows everything, then one that answers.
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut r = Resolver::with(
            none.clone(),
            none.clone(),
            Some(vec![silent.local_addr().unwrap(), live]),
        );
        let t0 = Instant::now();
        let Lookup::Query(mut q) = r.start("platform.test", t0, t0 + Duration::from_secs(5)) else {
            panic!("expected a query");
        };
        let res = run(&mut q);
        let took = t0.elapsed();
        assert_eq!(t.join().unwrap(), 2);
        assert!(took >= TRY_TIMEOUT && took < TRY_TIMEOUT * 2, "{took:?}");
        let addrs = r.finish("platform.test", res, Instant::now()).unwrap();
        assert_eq!(addrs, vec!["127.0.0.7".parse::<IpAddr>().unwrap()]);
        // Cached (TTL 2 s raised to the floor), literal IPs need nothing.
        let now = Instant::now();
        assert!(matches!(r.start("platform.test", now, now), Lookup::Done(a) if a == addrs));
        assert!(matches!(
            r.start("platform.test", now + TTL_FLOOR, now + TTL_FLOOR),
            Lookup::Query(_)
        ));
        assert!(matches!(r.start("::1", now, now), Lookup::Done(_)));
        assert!(matches!(
            r.start("a b", now, now),
            Lookup::Failed(DnsError::BadName)
        ));
    }

    #[test]
    fn silence_ends_at_the_deadline_and_errors_are_named() {
        let none = Path::new("/nonexistent").to_owned();
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut r = Resolver::with(
            none.clone(),
            none.clone(),
            Some(vec![silent.local_addr().unwrap()]),
        );
        let t0 = Instant::now();
        let Lookup::Query(mut q) = r.start("platform.test", t0, t0 + Duration::from_millis(2500))
        else {
            panic!()
        };
        let e = run(&mut q).unwrap_err();
        let took = t0.elapsed();
        assert_eq!(e, DnsError::Timeout { tries: 3 });
        assert!(took >= Duration::from_millis(2500) && took < Duration::from_millis(2900));
        // NXDOMAIN.
        let (live, t) = fake_server(0, 3);
        let mut r = Resolver::with(none.clone(), none.clone(), Some(vec![live]));
        let now = Instant::now();
        let Lookup::Query(mut q) = r.start("platform.test", now, now + Duration::from_secs(3))
        else {
            panic!()
        };
        assert_eq!(run(&mut q).unwrap_err(), DnsError::NotFound);
        t.join().unwrap();
        // No nameserver at all; hosts first.
        let dir = std::env::temp_dir().join(format!("netmon-dns-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("resolv.conf"), "search lan\n").unwrap();
        std::fs::write(dir.join("hosts"), "10.1.1.1 in.hosts\n").unwrap();
        let mut r = Resolver::with(dir.join("resolv.conf"), dir.join("hosts"), None);
        assert!(matches!(
            r.start("platform.test", now, now),
            Lookup::Failed(DnsError::NoServers)
        ));
        assert!(
            matches!(r.start("in.hosts", now, now), Lookup::Done(a) if a == vec!["10.1.1.1".parse::<IpAddr>().unwrap()])
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
