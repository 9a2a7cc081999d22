//! One poll(2) over a few fds with a timeout: the only place the agent sleeps.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

/// Readiness of one polled fd.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ready {
    /// Data to read (or a peer that closed).
    pub readable: bool,
    /// Room to write.
    pub writable: bool,
    /// Error or hang-up on the fd.
    pub error: bool,
}

/// One fd to poll and what for.
pub struct Interest<'a> {
    /// The fd.
    pub fd: BorrowedFd<'a>,
    /// Wake when readable.
    pub read: bool,
    /// Wake when writable.
    pub write: bool,
}

/// Fds one poll takes at most.
pub const MAX_FDS: usize = 16;

/// Waits until one of `fds` is ready or `timeout` passes (rounded up to whole milliseconds, so
/// a deadline is never woken for early). EINTR is a normal return with nothing ready.
/// At most [`MAX_FDS`] fds (the rings, the signalfd, the platform and metrics sockets).
pub fn poll(fds: &[Interest<'_>], timeout: Duration, out: &mut [Ready]) -> io::Result<usize> {
    let mut pfds = [libc::pollfd {
        fd: -1,
        events: 0,
        revents: 0,
    }; MAX_FDS];
    let n = fds.len().min(MAX_FDS).min(out.len());
    for (p, i) in pfds.iter_mut().zip(&fds[..n]) {
        p.fd = i.fd.as_raw_fd();
        p.events = if i.read { libc::POLLIN } else { 0 } | if i.write { libc::POLLOUT } else { 0 };
    }
    let ms = timeout.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32;
    // SAFETY: `pfds` holds `n` initialised pollfd entries.
    let rc = unsafe { libc::poll(pfds.as_mut_ptr(), n as libc::nfds_t, ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(0);
        }
        return Err(e);
    }
    for (o, p) in out.iter_mut().zip(&pfds[..n]) {
        *o = Ready {
            readable: p.revents & libc::POLLIN != 0,
            writable: p.revents & libc::POLLOUT != 0,
            error: p.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0,
        };
    }
    Ok(rc as usize)
}
