//! Connections to the platform. `Connector` is the state machine that makes one (name lookup,
//! TCP connect, TLS handshake), driven by the loop's readiness and timers; the result is a
//! `Conn`, a non-blocking TCP stream, optionally wrapped in rustls, on which a read or write
//! that would block returns `WouldBlock`. Both the REST client and the WebSocket run over it.
//!
//! The one-shot commands (`check`, `register`) have no loop: `connect` runs a `Connector` to
//! the end with `run_alone`, and `Conn::set_deadline` makes their reads and writes wait (on
//! that one socket, until the deadline).

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[cfg(feature = "tls")]
use rustls::{pki_types::ServerName, ClientConnection, StreamOwned};

use super::dns::{DnsError, Lookup, Query, Resolver};
use super::tls::ClientConfig;
use crate::config::Url;
use crate::sys::poll::{PollSet, Ready, Token, Want};
use crate::sys::tcp::Started;

/// A non-blocking TCP stream. With a deadline (one-shot commands only) a read or write that
/// would block waits for the socket until then and fails with `TimedOut` after it; without
/// one it returns `WouldBlock` at once (the loop's poll decides when to come back).
pub struct Sock {
    tcp: TcpStream,
    deadline: Option<Instant>,
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "timed out")
}

impl Sock {
    fn io(
        &mut self,
        write: bool,
        mut op: impl FnMut(&mut TcpStream) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let Some(deadline) = self.deadline else {
            return op(&mut self.tcp);
        };
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left < Duration::from_millis(1) {
                return Err(timed_out());
            }
            match op(&mut self.tcp) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r,
            }
            let want = if write { Want::WRITE } else { Want::READ };
            let mut set = PollSet::new();
            set.register(Token(0), self.tcp.as_fd(), want);
            set.wait(Instant::now(), left)?;
        }
    }
}

impl Read for Sock {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.io(false, |t| t.read(buf))
    }
}

impl Write for Sock {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.io(true, |t| t.write(buf))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A plain or TLS connection.
pub enum Conn {
    /// Plain TCP.
    Plain(Sock),
    /// TLS over TCP.
    #[cfg(feature = "tls")]
    Tls(Box<StreamOwned<ClientConnection, Sock>>),
}

impl Conn {
    fn sock(&self) -> &Sock {
        match self {
            Conn::Plain(s) => s,
            #[cfg(feature = "tls")]
            Conn::Tls(t) => &t.sock,
        }
    }
    fn sock_mut(&mut self) -> &mut Sock {
        match self {
            Conn::Plain(s) => s,
            #[cfg(feature = "tls")]
            Conn::Tls(t) => &mut t.sock,
        }
    }
    /// Some(deadline): reads and writes wait until then (one-shot commands); None: they
    /// return `WouldBlock` (the loop).
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.sock_mut().deadline = deadline;
    }
    /// True while TLS has encrypted bytes that did not reach the socket yet.
    pub fn wants_write(&self) -> bool {
        match self {
            Conn::Plain(_) => false,
            #[cfg(feature = "tls")]
            Conn::Tls(t) => t.conn.wants_write(),
        }
    }
    /// Whether the peer closed (or broke) an idle connection: a read that does not block and
    /// finds an end, an error or bytes nobody asked for.
    pub fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        !matches!(self.read(&mut b), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

impl AsFd for Conn {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock().tcp.as_fd()
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            #[cfg(feature = "tls")]
            Conn::Tls(t) => t.read(buf).map_err(super::tls::io_error),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            #[cfg(feature = "tls")]
            Conn::Tls(t) => t.write(buf).map_err(super::tls::io_error),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            #[cfg(feature = "tls")]
            Conn::Tls(t) => t.flush().map_err(super::tls::io_error),
        }
    }
}

/// Why a connection could not be made. Each names the host.
#[derive(Debug)]
pub enum ConnectError {
    /// The host name did not resolve.
    Resolve {
        /// The host.
        host: String,
        /// Why.
        source: DnsError,
    },
    /// No address accepted the connection.
    Connect {
        /// The host.
        host: String,
        /// The port.
        port: u16,
        /// The last error.
        source: io::Error,
    },
    /// The TLS handshake failed.
    Tls {
        /// The host.
        host: String,
        /// rustls's reason.
        reason: String,
    },
    /// https/wss without a usable CA bundle.
    NoRoots(String),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Resolve { host, source } => {
                write!(f, "cannot resolve {host}: {source}")
            }
            ConnectError::Connect { host, port, source } => {
                write!(f, "cannot connect to {host}:{port}: {source}")
            }
            ConnectError::Tls { host, reason } => write!(f, "TLS with {host} failed: {reason}"),
            ConnectError::NoRoots(m) => write!(f, "{m}"),
        }
    }
}

/// How a step of a state machine ended.
pub enum Progress<T, E> {
    /// Waiting for readiness or a timer.
    Pending,
    /// Finished with a value.
    Done(T),
    /// Finished with an error.
    Failed(E),
}

enum Stage {
    Resolve(Box<Query>),
    /// Connecting to `addrs[next - 1]` (a connect in progress) or about to try `addrs[next]`.
    Tcp {
        addrs: Vec<SocketAddr>,
        next: usize,
        tcp: Option<TcpStream>,
        last: Option<io::Error>,
    },
    #[cfg(feature = "tls")]
    Tls(Box<ClientConnection>, Option<Sock>),
    Over,
}

/// Makes one connection to a URL's host and port (TLS for https/wss), all before a deadline:
/// name lookup (`dns`), a non-blocking connect to each address in turn, the TLS handshake.
pub struct Connector {
    host: String,
    port: u16,
    tls: Option<Option<Arc<ClientConfig>>>,
    deadline: Instant,
    stage: Stage,
    /// How it ended when it ended within `start` (a refused connect, a loopback connect that
    /// completed at once, a bad name): reported on the first `advance`.
    early: Option<Result<Conn, ConnectError>>,
}

impl Connector {
    /// Starts connecting to `url` (resolving its host first when needed).
    pub fn start(
        url: &Url,
        tls: Option<&Arc<ClientConfig>>,
        dns: &mut Resolver,
        now: Instant,
        deadline: Instant,
    ) -> Connector {
        let mut c = Connector {
            host: url.host.clone(),
            port: url.port,
            tls: url.is_tls().then(|| tls.cloned()),
            deadline,
            stage: Stage::Over,
            early: None,
        };
        match dns.start(&url.host, now, deadline) {
            Lookup::Done(addrs) => c.stage = c.tcp_stage(addrs),
            Lookup::Query(q) => c.stage = Stage::Resolve(q),
            Lookup::Failed(source) => {
                c.early = Some(Err(ConnectError::Resolve {
                    host: c.host.clone(),
                    source,
                }))
            }
        }
        // The first step at once (the connect starts, so there is an fd to wait on).
        if c.early.is_none() {
            match c.step(Ready::default(), dns, now) {
                Progress::Pending => {}
                Progress::Done(conn) => c.early = Some(Ok(conn)),
                Progress::Failed(e) => c.early = Some(Err(e)),
            }
        }
        c
    }

    fn tcp_stage(&self, addrs: Vec<IpAddr>) -> Stage {
        Stage::Tcp {
            addrs: addrs
                .into_iter()
                .map(|a| SocketAddr::new(a, self.port))
                .collect(),
            next: 0,
            tcp: None,
            last: None,
        }
    }

    /// The fd this stage waits on, and for what.
    pub fn interest(&self) -> Option<(BorrowedFd<'_>, Want)> {
        match &self.stage {
            Stage::Resolve(q) => Some((q.fd(), Want::READ)),
            Stage::Tcp { tcp: Some(t), .. } => Some((t.as_fd(), Want::WRITE)),
            #[cfg(feature = "tls")]
            Stage::Tls(c, Some(s)) => Some((
                s.tcp.as_fd(),
                Want {
                    read: c.wants_read(),
                    write: c.wants_write(),
                },
            )),
            _ => None,
        }
    }

    /// When `advance` must run even without readiness (at once when it is over).
    pub fn deadline(&self) -> Instant {
        if self.early.is_some() {
            return Instant::now();
        }
        match &self.stage {
            Stage::Resolve(q) => q.deadline().min(self.deadline),
            _ => self.deadline,
        }
    }

    /// Registers its socket and deadline with the loop.
    pub fn register(&self, set: &mut PollSet, token: Token) {
        if let Some((fd, want)) = self.interest() {
            set.register(token, fd, want);
        }
        set.wake_at(self.deadline());
    }

    /// Moves on as far as it can without blocking.
    pub fn advance(
        &mut self,
        ready: Ready,
        dns: &mut Resolver,
        now: Instant,
    ) -> Progress<Conn, ConnectError> {
        match self.early.take() {
            Some(Ok(conn)) => Progress::Done(conn),
            Some(Err(e)) => Progress::Failed(e),
            None => self.step(ready, dns, now),
        }
    }

    fn step(
        &mut self,
        ready: Ready,
        dns: &mut Resolver,
        now: Instant,
    ) -> Progress<Conn, ConnectError> {
        let mut ready = ready;
        loop {
            match std::mem::replace(&mut self.stage, Stage::Over) {
                Stage::Over => {
                    return Progress::Failed(ConnectError::Connect {
                        host: self.host.clone(),
                        port: self.port,
                        source: io::Error::other("connection already made"),
                    })
                }
                Stage::Resolve(mut q) => match q.advance(now) {
                    None => {
                        self.stage = Stage::Resolve(q);
                        return Progress::Pending;
                    }
                    Some(r) => match dns.finish(q.name(), r, now) {
                        Ok(addrs) => self.stage = self.tcp_stage(addrs),
                        Err(source) => {
                            return Progress::Failed(ConnectError::Resolve {
                                host: self.host.clone(),
                                source,
                            })
                        }
                    },
                },
                Stage::Tcp {
                    addrs,
                    mut next,
                    tcp,
                    mut last,
                } => {
                    let fail = |last: Option<io::Error>| {
                        Progress::Failed(ConnectError::Connect {
                            host: self.host.clone(),
                            port: self.port,
                            source: last
                                .unwrap_or_else(|| io::Error::other("the name has no address")),
                        })
                    };
                    let connected = match tcp {
                        Some(t) if ready.writable || ready.error => match t.take_error() {
                            Ok(None) => Some(t),
                            Ok(Some(e)) | Err(e) => {
                                last = Some(e);
                                None
                            }
                        },
                        Some(t) => {
                            if now >= self.deadline {
                                return fail(Some(io::Error::new(
                                    io::ErrorKind::TimedOut,
                                    "connect timed out",
                                )));
                            }
                            self.stage = Stage::Tcp {
                                addrs,
                                next,
                                tcp: Some(t),
                                last,
                            };
                            return Progress::Pending;
                        }
                        None => None,
                    };
                    ready = Ready::default();
                    if let Some(t) = connected {
                        let _ = t.set_nodelay(true);
                        let sock = Sock {
                            tcp: t,
                            deadline: None,
                        };
                        match self.after_tcp(sock) {
                            Ok(Some(conn)) => return Progress::Done(conn),
                            Ok(None) => continue,
                            Err(e) => return Progress::Failed(e),
                        }
                    }
                    let Some(addr) = addrs.get(next).copied() else {
                        return fail(last);
                    };
                    if now >= self.deadline {
                        return fail(Some(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "connect timed out",
                        )));
                    }
                    next += 1;
                    match crate::sys::tcp::connect_start(&addr) {
                        Ok((t, Started::InProgress)) => {
                            self.stage = Stage::Tcp {
                                addrs,
                                next,
                                tcp: Some(t),
                                last,
                            };
                            return Progress::Pending;
                        }
                        Ok((t, Started::Connected)) => {
                            // Handled like a connect that polled writable.
                            ready.writable = true;
                            self.stage = Stage::Tcp {
                                addrs,
                                next,
                                tcp: Some(t),
                                last,
                            };
                        }
                        Err(e) => {
                            last = Some(e);
                            self.stage = Stage::Tcp {
                                addrs,
                                next,
                                tcp: None,
                                last,
                            };
                        }
                    }
                }
                #[cfg(feature = "tls")]
                Stage::Tls(mut conn, sock) => {
                    let mut sock = sock.expect("a socket during the handshake");
                    match self.handshake(&mut conn, &mut sock) {
                        Ok(true) => {
                            return Progress::Done(Conn::Tls(Box::new(StreamOwned::new(
                                *conn, sock,
                            ))))
                        }
                        Ok(false) if now >= self.deadline => {
                            return Progress::Failed(ConnectError::Tls {
                                host: self.host.clone(),
                                reason: "timed out in the TLS handshake".into(),
                            })
                        }
                        Ok(false) => {
                            self.stage = Stage::Tls(conn, Some(sock));
                            return Progress::Pending;
                        }
                        Err(reason) => {
                            return Progress::Failed(ConnectError::Tls {
                                host: self.host.clone(),
                                reason,
                            })
                        }
                    }
                }
            }
        }
    }

    /// After the TCP connect: the connection (plain), or the TLS stage set up (None).
    fn after_tcp(&mut self, sock: Sock) -> Result<Option<Conn>, ConnectError> {
        let Some(tls) = &self.tls else {
            return Ok(Some(Conn::Plain(sock)));
        };
        let host = self.host.as_str();
        #[cfg(feature = "tls")]
        {
            let Some(cfg) = tls else {
                return Err(ConnectError::NoRoots(format!(
                    "{host}: TLS is not set up (no CA bundle)"
                )));
            };
            let tls_err = |reason: String| ConnectError::Tls {
                host: host.to_owned(),
                reason,
            };
            let name = ServerName::try_from(host.to_owned())
                .map_err(|_| tls_err(format!("'{host}' is not a valid server name")))?;
            let conn =
                ClientConnection::new(cfg.clone(), name).map_err(|e| tls_err(e.to_string()))?;
            self.stage = Stage::Tls(Box::new(conn), Some(sock));
            Ok(None)
        }
        #[cfg(not(feature = "tls"))]
        {
            let _ = (tls, sock);
            Err(ConnectError::NoRoots(format!(
                "{host}: this netmon-agent was built without TLS (feature tls)"
            )))
        }
    }

    /// Runs the handshake as far as the socket allows: Ok(true) when it is complete.
    #[cfg(feature = "tls")]
    fn handshake(&self, conn: &mut ClientConnection, sock: &mut Sock) -> Result<bool, String> {
        let explain = |e: io::Error| super::tls::explain(&e, &self.host);
        loop {
            if conn.wants_write() {
                match conn.write_tls(sock) {
                    Ok(_) => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                    Err(e) => return Err(explain(e)),
                }
            }
            if !conn.is_handshaking() {
                return Ok(true);
            }
            match conn.read_tls(sock) {
                Ok(0) => return Err("the server closed the connection".into()),
                Ok(_) => {
                    if let Err(e) = conn.process_new_packets() {
                        // The alert that says why goes out if it can.
                        let _ = conn.write_tls(sock);
                        return Err(explain(io::Error::new(io::ErrorKind::InvalidData, e)));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(explain(e)),
            }
        }
    }
}

/// A state machine the loop drives; `run_alone` drives one without a loop.
pub trait Machine {
    /// What it ends with.
    type Output;
    /// Registers its fd and deadline.
    fn register(&self, set: &mut PollSet, token: Token);
    /// Moves on; Some when it is over. It must end by its own deadline.
    fn advance(&mut self, ready: Ready, dns: &mut Resolver, now: Instant) -> Option<Self::Output>;
}

impl Machine for Connector {
    type Output = Result<Conn, ConnectError>;
    fn register(&self, set: &mut PollSet, token: Token) {
        Connector::register(self, set, token)
    }
    fn advance(&mut self, ready: Ready, dns: &mut Resolver, now: Instant) -> Option<Self::Output> {
        match Connector::advance(self, ready, dns, now) {
            Progress::Pending => None,
            Progress::Done(c) => Some(Ok(c)),
            Progress::Failed(e) => Some(Err(e)),
        }
    }
}

/// Drives `m` to its end with a poll on its own fd: for the one-shot commands, which have no
/// loop (never called from `run`).
pub fn run_alone<M: Machine>(m: &mut M, dns: &mut Resolver) -> M::Output {
    let mut ready = Ready::default();
    loop {
        if let Some(out) = m.advance(ready, dns, Instant::now()) {
            return out;
        }
        let mut set = PollSet::new();
        m.register(&mut set, Token(0));
        // A poll that fails (it cannot, with valid fds) is retried after the next deadline.
        let _ = set.wait(Instant::now(), Duration::from_secs(1));
        ready = set.ready(Token(0));
    }
}

/// Opens a connection before `deadline`, waiting for it (one-shot commands). Reads and writes
/// on the result wait until `deadline` too.
pub fn connect(
    url: &Url,
    deadline: Instant,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<Conn, ConnectError> {
    let mut dns = Resolver::system();
    let mut c = Connector::start(url, tls, &mut dns, Instant::now(), deadline);
    let mut conn = run_alone(&mut c, &mut dns)?;
    conn.set_deadline(Some(deadline));
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn url(s: &str) -> Url {
        Url::parse(s, &["http", "https", "ws", "wss"]).unwrap()
    }

    /// A connect nobody answers ends at the deadline, not before and not much after, with a
    /// handful of wake-ups (no busy waiting).
    #[test]
    fn connect_ends_at_the_deadline_without_spinning() {
        let ms = Duration::from_millis;
        let (_l, addr, _fill) = crate::sys::tcp::full_listener();
        let mut dns = Resolver::system();
        let t0 = Instant::now();
        let mut c = Connector::start(
            &url(&format!("http://{addr}/x")),
            None,
            &mut dns,
            t0,
            t0 + ms(300),
        );
        let mut wakes = 0;
        let mut ready = Ready::default();
        let e = loop {
            match c.advance(ready, &mut dns, Instant::now()) {
                Progress::Pending => {}
                Progress::Done(_) => panic!("connected to a full listener"),
                Progress::Failed(e) => break e,
            }
            wakes += 1;
            let mut set = PollSet::new();
            c.register(&mut set, Token(1));
            set.wait(Instant::now(), Duration::from_secs(5)).unwrap();
            ready = set.ready(Token(1));
        };
        let took = t0.elapsed();
        assert!(e.to_string().contains("connect timed out"), "{e}");
        assert!(took >= ms(299) && took < ms(800), "{took:?}");
        assert!(wakes <= 3, "{wakes} wake-ups");
    }

    #[test]
    fn connects_reads_without_blocking_and_names_refusals() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let mut dns = Resolver::system();
        let now = Instant::now();
        let mut c = Connector::start(
            &url(&format!("http://127.0.0.1:{port}/")),
            None,
            &mut dns,
            now,
            now + Duration::from_secs(2),
        );
        let mut conn = run_alone(&mut c, &mut dns).unwrap();
        let (mut peer, _) = l.accept().unwrap();
        let mut b = [0u8; 4];
        assert_eq!(
            conn.read(&mut b).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        assert!(!conn.is_closed());
        peer.write_all(b"ping").unwrap();
        drop(peer);
        std::thread::sleep(Duration::from_millis(50));
        assert!(conn.is_closed());
        drop(l);
        let e = connect(
            &url(&format!("http://127.0.0.1:{port}/")),
            Instant::now() + Duration::from_secs(2),
            None,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.starts_with(&format!("cannot connect to 127.0.0.1:{port}")),
            "{e}"
        );
        // With a deadline (one-shot commands), a read waits and then times out.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let u = url(&format!("http://{}/", l.local_addr().unwrap()));
        let t0 = Instant::now();
        let mut conn = connect(&u, t0 + Duration::from_millis(300), None).unwrap();
        assert_eq!(
            conn.read(&mut b).unwrap_err().kind(),
            io::ErrorKind::TimedOut
        );
        assert!(t0.elapsed() >= Duration::from_millis(299));
    }
}
