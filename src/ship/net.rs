//! Connections to the platform: a TCP socket whose every read and write is bounded by one
//! deadline (so a server that drips a byte at a time cannot stretch a call), optionally wrapped
//! in rustls. Both the REST client and the WebSocket run over `Conn`.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[cfg(feature = "tls")]
use rustls::{pki_types::ServerName, ClientConnection, StreamOwned};

use super::tls::ClientConfig;
use crate::config::Url;

/// A TCP stream with an optional absolute deadline. With a deadline, each read or write waits at
/// most until then and fails with `TimedOut` after it; without one the socket's own mode applies
/// (the WebSocket runs non-blocking between cycles).
pub struct Sock {
    tcp: TcpStream,
    deadline: Option<Instant>,
}

impl Sock {
    fn arm(&self, write: bool) -> io::Result<()> {
        let Some(d) = self.deadline else {
            return Ok(());
        };
        let left = d.saturating_duration_since(Instant::now());
        if left < Duration::from_millis(1) {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"));
        }
        if write {
            self.tcp.set_write_timeout(Some(left))
        } else {
            self.tcp.set_read_timeout(Some(left))
        }
    }
}

/// EAGAIN from a socket timeout reads as WouldBlock; with a deadline armed it is a timeout.
fn timed(deadline: Option<Instant>, r: io::Result<usize>) -> io::Result<usize> {
    match r {
        Err(e) if deadline.is_some() && e.kind() == io::ErrorKind::WouldBlock => {
            Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"))
        }
        r => r,
    }
}

impl Read for Sock {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.arm(false)?;
        let r = self.tcp.read(buf);
        timed(self.deadline, r)
    }
}

impl Write for Sock {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.arm(true)?;
        let r = self.tcp.write(buf);
        timed(self.deadline, r)
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
    pub fn set_nonblocking(&mut self, on: bool) -> io::Result<()> {
        self.sock().tcp.set_nonblocking(on)
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

/// Opens a connection to the URL's host and port (TLS for https/wss), all before `deadline`.
/// Name resolution uses the system resolver and is not bounded by the deadline (an IP literal
/// needs none).
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
        let left = deadline.saturating_duration_since(Instant::now());
        if left < Duration::from_millis(1) {
            last = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
            break;
        }
        match TcpStream::connect_timeout(&a, left) {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = e,
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
