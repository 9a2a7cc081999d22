//! Connections to the platform: a non-blocking TCP socket whose every read and write is bounded
//! by one deadline (so a server that drips a byte at a time cannot stretch a call), optionally
//! wrapped in rustls. Waiting is explicit (`wait::wait`), so the capture goes on meanwhile. Both the REST client and the WebSocket run over `Conn`.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[cfg(feature = "tls")]
use rustls::{pki_types::ServerName, ClientConnection, StreamOwned};

use super::tls::ClientConfig;
use super::wait;
use crate::config::Url;
use crate::sys::tcp::Started;

/// A non-blocking TCP stream with an optional absolute deadline. With a deadline, a read or
/// write that would block waits through `wait::wait` (which keeps the capture going while it
/// waits) at most until then, and fails with `TimedOut` after it; without one it returns
/// `WouldBlock` at once (the WebSocket between cycles, driven by the loop's poll).
pub struct Sock {
    tcp: TcpStream,
    deadline: Option<Instant>,
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "timed out")
}

/// The time left before `deadline`; TimedOut when under a millisecond (poll's resolution).
fn left(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left < Duration::from_millis(1) {
        return Err(timed_out());
    }
    Ok(left)
}

impl Sock {
    /// Runs `op` until it does not block, waiting for the socket in between.
    fn io(
        &mut self,
        write: bool,
        mut op: impl FnMut(&mut TcpStream) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let Some(deadline) = self.deadline else {
            return op(&mut self.tcp);
        };
        loop {
            let left = left(deadline)?;
            match op(&mut self.tcp) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r,
            }
            wait::wait(self.tcp.as_fd(), write, left)?;
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
    Plain(Sock),
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
    Resolve {
        host: String,
        source: io::Error,
    },
    Connect {
        host: String,
        port: u16,
        source: io::Error,
    },
    Tls {
        host: String,
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

/// Opens a connection to the URL's host and port (TLS for https/wss), all before `deadline`;
/// every wait in it (connect, TLS handshake) goes through `wait::wait`. Name resolution uses
/// the system resolver, blocks, and is not bounded by the deadline (an IP literal needs none).
pub fn connect(
    url: &Url,
    deadline: Instant,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<Conn, ConnectError> {
    let host = url.host.as_str();
    let addrs: Vec<_> = (host, url.port)
        .to_socket_addrs()
        .map_err(|source| ConnectError::Resolve {
            host: host.to_owned(),
            source,
        })?
        .collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    let mut tcp = None;
    for a in addrs {
        match connect_addr(&a, deadline) {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => {
                let out_of_time = e.kind() == io::ErrorKind::TimedOut;
                last = e;
                if out_of_time {
                    break;
                }
            }
        }
    }
    let Some(tcp) = tcp else {
        return Err(ConnectError::Connect {
            host: host.to_owned(),
            port: url.port,
            source: last,
        });
    };
    let _ = tcp.set_nodelay(true);
    let sock = Sock {
        tcp,
        deadline: Some(deadline),
    };
    if !url.is_tls() {
        return Ok(Conn::Plain(sock));
    }
    tls_handshake(sock, host, tls)
}

/// A non-blocking connect to one address, waiting (through `wait::wait`) until `deadline`.
fn connect_addr(addr: &SocketAddr, deadline: Instant) -> io::Result<TcpStream> {
    let connect_timed_out = || io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
    left(deadline).map_err(|_| connect_timed_out())?;
    let (tcp, started) = crate::sys::tcp::connect_start(addr)?;
    if started == Started::InProgress {
        loop {
            let left = left(deadline).map_err(|_| connect_timed_out())?;
            if wait::wait(tcp.as_fd(), true, left)? {
                break;
            }
        }
        if let Some(e) = tcp.take_error()? {
            return Err(e);
        }
    }
    Ok(tcp)
}

#[cfg(feature = "tls")]
fn tls_handshake(
    mut sock: Sock,
    host: &str,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<Conn, ConnectError> {
    let Some(cfg) = tls else {
        return Err(ConnectError::NoRoots(format!(
            "{}: TLS is not set up (no CA bundle)",
            host
        )));
    };
    let tls_err = |reason: String| ConnectError::Tls {
        host: host.to_owned(),
        reason,
    };
    let name = ServerName::try_from(host.to_owned())
        .map_err(|_| tls_err(format!("'{host}' is not a valid server name")))?;
    let mut conn = ClientConnection::new(cfg.clone(), name).map_err(|e| tls_err(e.to_string()))?;
    while conn.is_handshaking() {
        match conn.complete_io(&mut sock) {
            Ok((0, 0)) => return Err(tls_err("the server closed the connection".into())),
            Ok(_) => {}
            Err(e) => return Err(tls_err(super::tls::explain(&e, host))),
        }
    }
    Ok(Conn::Tls(Box::new(StreamOwned::new(conn, sock))))
}

#[cfg(not(feature = "tls"))]
fn tls_handshake(
    _sock: Sock,
    host: &str,
    _tls: Option<&Arc<ClientConfig>>,
) -> Result<Conn, ConnectError> {
    Err(ConnectError::NoRoots(format!(
        "{host}: this netmon-agent was built without TLS (feature tls)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::net::TcpListener;
    use std::rc::Rc;

    /// Connect and read both wait through the registered service, a few times only (no busy
    /// waiting), and fail with TimedOut at the deadline, not before and not much after.
    #[test]
    fn waits_go_through_the_service_until_the_deadline() {
        let calls = Rc::new(Cell::new(0u32));
        let c = calls.clone();
        let _r = wait::register(Box::new(move |fd, write, t| {
            c.set(c.get() + 1);
            wait::alone(fd, write, t)
        }));
        let ms = Duration::from_millis;
        // A connect nobody answers.
        let (_l, addr, _fill) = crate::sys::tcp::full_listener();
        let t0 = Instant::now();
        let e = connect_addr(&addr, t0 + ms(300)).unwrap_err();
        let took = t0.elapsed();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        assert!(took >= ms(299) && took < ms(800), "{took:?}");
        assert!((1..=3).contains(&calls.get()), "{} waits", calls.get());
        // A server that accepts and never answers.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp = connect_addr(&l.local_addr().unwrap(), Instant::now() + ms(2000)).unwrap();
        let (_peer, _) = l.accept().unwrap();
        let t0 = Instant::now();
        let mut sock = Sock {
            tcp,
            deadline: Some(t0 + ms(300)),
        };
        let before = calls.get();
        let mut buf = [0u8; 16];
        let e = sock.read(&mut buf).unwrap_err();
        let took = t0.elapsed();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        assert!(took >= ms(299) && took < ms(800), "{took:?}");
        assert!((1..=3).contains(&(calls.get() - before)));
        // Without a deadline (the WebSocket between cycles): WouldBlock at once.
        sock.deadline = None;
        let e = sock.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }
}
