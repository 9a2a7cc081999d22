//! A TCP connect that does not block: the socket is non-blocking from its first syscall, so the
//! caller waits for it to turn writable in its own poll (the agent's one poll, through
//! `ship::net::Connector`) and then reads how the connect ended with `TcpStream::take_error`.

use std::io;
use std::mem::size_of;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::syscall;

/// Whether the connect finished inside `connect(2)` (loopback often does) or is under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// The connection is up.
    Connected,
    /// The connection is under way: wait for writability.
    InProgress,
}

/// Opens a non-blocking, close-on-exec TCP socket and starts connecting it to `addr`. With
/// `InProgress`, the connect has ended once the socket polls writable (or with an error);
/// `take_error` then says whether it worked. Any other failure of `connect(2)` (unreachable,
/// refused at once) is returned as it is.
pub fn connect_start(addr: &SocketAddr) -> io::Result<(TcpStream, Started)> {
    let family = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    let raw = syscall!(socket(
        family,
        libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        0
    ))?;
    // SAFETY: `raw` is a descriptor socket(2) just returned; nothing else owns or closes it.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    set_liveness(&fd)?;
    let rc = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_in is plain data; all zeroes is a valid value of it.
            let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            sa.sin_family = libc::AF_INET as libc::sa_family_t;
            sa.sin_port = a.port().to_be();
            sa.sin_addr = libc::in_addr {
                s_addr: u32::from_ne_bytes(a.ip().octets()),
            };
            // SAFETY: `sa` is an initialised sockaddr_in and the length passed is its size.
            unsafe { connect_to(&fd, &sa) }
        }
        SocketAddr::V6(a) => {
            // SAFETY: sockaddr_in6 is plain data; all zeroes is a valid value of it.
            let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sa.sin6_port = a.port().to_be();
            sa.sin6_flowinfo = a.flowinfo().to_be();
            sa.sin6_addr = libc::in6_addr {
                s6_addr: a.ip().octets(),
            };
            sa.sin6_scope_id = a.scope_id();
            // SAFETY: `sa` is an initialised sockaddr_in6 and the length passed is its size.
            unsafe { connect_to(&fd, &sa) }
        }
    };
    if rc == 0 {
        return Ok((TcpStream::from(fd), Started::Connected));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        // EINTR: a non-blocking connect goes on in the background, as with EINPROGRESS.
        Some(libc::EINPROGRESS) | Some(libc::EINTR) => {
            Ok((TcpStream::from(fd), Started::InProgress))
        }
        _ => Err(e),
    }
}

/// How long a platform connection may go without a sign of the peer before the kernel gives it
/// up. A connection idle for `KEEPALIVE_IDLE` is probed every `KEEPALIVE_INTERVAL`, and dropped
/// after `KEEPALIVE_PROBES` unanswered probes (15 + 3 x 5 = 30 s); data unacknowledged for
/// `USER_TIMEOUT` drops it too (a peer that vanished while we were sending). Without them a dead
/// path is only noticed after tcp_retries2 (about 15 minutes) or, when idle, never.
pub const KEEPALIVE_IDLE: u32 = 15;
/// Seconds between keep-alive probes.
pub const KEEPALIVE_INTERVAL: u32 = 5;
/// Unanswered probes before the connection is dropped.
pub const KEEPALIVE_PROBES: u32 = 3;
/// How long sent data may stay unacknowledged (TCP_USER_TIMEOUT).
pub const USER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Sets an `int` socket option. Sound for any fd and value: the kernel reads exactly one int.
fn set_int(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: u32) -> io::Result<()> {
    let v = value as libc::c_int;
    syscall!(setsockopt(
        fd.as_raw_fd(),
        level,
        name,
        (&v as *const libc::c_int).cast(),
        size_of::<libc::c_int>() as libc::socklen_t
    ))
    .map(drop)
}

/// Reads an `int` socket option.
pub fn get_int(fd: &impl AsRawFd, level: libc::c_int, name: libc::c_int) -> io::Result<u32> {
    let mut v: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    syscall!(getsockopt(
        fd.as_raw_fd(),
        level,
        name,
        (&mut v as *mut libc::c_int).cast(),
        &mut len
    ))?;
    Ok(v as u32)
}

/// Keepalive probes and a user timeout on a TCP socket (see `KEEPALIVE_IDLE`).
fn set_liveness(fd: &OwnedFd) -> io::Result<()> {
    set_int(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1)?;
    set_int(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, KEEPALIVE_IDLE)?;
    set_int(
        fd,
        libc::IPPROTO_TCP,
        libc::TCP_KEEPINTVL,
        KEEPALIVE_INTERVAL,
    )?;
    set_int(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT, KEEPALIVE_PROBES)?;
    set_int(
        fd,
        libc::IPPROTO_TCP,
        libc::TCP_USER_TIMEOUT,
        USER_TIMEOUT.as_millis() as u32,
    )
}

/// # Safety
/// `T` must be the sockaddr type of the socket's family (sockaddr_in or sockaddr_in6).
unsafe fn connect_to<T>(fd: &OwnedFd, sa: &T) -> libc::c_int {
    // SAFETY: the caller guarantees `sa` is a whole sockaddr of the right family; the pointer
    // and length describe exactly that value, which outlives the call.
    unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (sa as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    }
}

/// For tests: a listener on 127.0.0.1 whose accept queue is full (backlog 0, one connection
/// waiting in it), so the SYNs of a further connect are dropped and it gets no answer. The
/// connections that fill it come back with it.
#[cfg(test)]
pub fn full_listener() -> (std::net::TcpListener, SocketAddr, Vec<TcpStream>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    syscall!(listen(l.as_raw_fd(), 0)).unwrap();
    let addr = l.local_addr().unwrap();
    let mut fill = Vec::new();
    // Full once a connect goes unanswered.
    while let Ok(s) = TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(200)) {
        fill.push(s);
        assert!(fill.len() < 16, "the accept queue does not fill");
    }
    (l, addr, fill)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    fn wait_writable(s: &TcpStream) {
        use crate::sys::poll::{poll, Interest, Ready};
        use std::os::fd::AsFd;
        let mut r = [Ready::default()];
        let i = [Interest {
            fd: s.as_fd(),
            read: false,
            write: true,
        }];
        poll(&i, std::time::Duration::from_secs(5), &mut r).unwrap();
        assert!(r[0].writable || r[0].error);
    }

    #[test]
    fn connects_non_blocking_v4_and_v6() {
        for bind in ["127.0.0.1:0", "[::1]:0"] {
            let Ok(l) = TcpListener::bind(bind) else {
                eprintln!("skip {bind}: cannot bind here");
                continue;
            };
            let (mut s, started) = connect_start(&l.local_addr().unwrap()).unwrap();
            if started == Started::InProgress {
                wait_writable(&s);
            }
            assert!(s.take_error().unwrap().is_none());
            let (mut peer, from) = l.accept().unwrap();
            assert_eq!(from, s.local_addr().unwrap());
            // Non-blocking: nothing to read is WouldBlock, not a wait.
            let mut b = [0u8; 4];
            assert_eq!(
                s.read(&mut b).unwrap_err().kind(),
                io::ErrorKind::WouldBlock
            );
            peer.write_all(b"ping").unwrap();
            s.set_nonblocking(false).unwrap();
            s.read_exact(&mut b).unwrap();
            assert_eq!(&b, b"ping");
        }
    }

    #[test]
    fn sockets_carry_keepalive_and_a_user_timeout() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let (s, _) = connect_start(&l.local_addr().unwrap()).unwrap();
        // Read back from the kernel.
        let get = |level, name| get_int(&s, level, name).unwrap();
        assert_eq!(get(libc::SOL_SOCKET, libc::SO_KEEPALIVE), 1);
        assert_eq!(get(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE), KEEPALIVE_IDLE);
        assert_eq!(
            get(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL),
            KEEPALIVE_INTERVAL
        );
        assert_eq!(get(libc::IPPROTO_TCP, libc::TCP_KEEPCNT), KEEPALIVE_PROBES);
        assert_eq!(get(libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT), 30_000);
    }

    #[test]
    fn refused_shows_in_take_error_or_at_once() {
        // A port nobody listens on: bind one, note it, close it.
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let err = match connect_start(&addr) {
            Err(e) => e,
            Ok((s, Started::InProgress)) => {
                wait_writable(&s);
                s.take_error().unwrap().expect("an error")
            }
            Ok((_, Started::Connected)) => panic!("connected to a closed port"),
        };
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    }
}
