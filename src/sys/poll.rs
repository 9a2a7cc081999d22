//! The agent's one wait: a poll(2) over the fds and deadlines its components registered.
//!
//! Each turn of the loop starts with an empty `PollSet`; every component registers the fd it
//! waits on (with a token naming the component) and the next time it has something to do; one
//! `wait` sleeps until an fd is ready or the earliest deadline passes; each component then reads
//! its own readiness by token.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

/// Readiness of one polled fd.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ready {
    /// Data to read (or a peer that closed).
    pub readable: bool,
    /// Room to write.
    pub writable: bool,
    /// Error or hang-up on the fd.
    pub error: bool,
}

impl Ready {
    /// Anything at all to pick up (data, room, or an error / hang-up).
    pub fn any(self) -> bool {
        self.readable || self.writable || self.error
    }
}

/// What a component waits for on its fd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Want {
    /// Wake when readable.
    pub read: bool,
    /// Wake when writable.
    pub write: bool,
}

impl Want {
    /// Readable only.
    pub const READ: Want = Want {
        read: true,
        write: false,
    };
    /// Writable only.
    pub const WRITE: Want = Want {
        read: false,
        write: true,
    };
}

/// Names a registration (a component, or one socket of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token(pub u16);

/// Most fds one set holds: the rings, the signalfd, the platform and metrics sockets.
pub const MAX_FDS: usize = 32;

/// The fds and deadlines of one turn of the loop.
pub struct PollSet {
    pfds: [libc::pollfd; MAX_FDS],
    tokens: [Token; MAX_FDS],
    n: usize,
    deadline: Option<Instant>,
}

impl Default for PollSet {
    fn default() -> Self {
        PollSet::new()
    }
}

impl PollSet {
    /// An empty set.
    pub fn new() -> PollSet {
        PollSet {
            pfds: [libc::pollfd {
                fd: -1,
                events: 0,
                revents: 0,
            }; MAX_FDS],
            tokens: [Token(0); MAX_FDS],
            n: 0,
            deadline: None,
        }
    }

    /// Empties the set for the next turn.
    pub fn clear(&mut self) {
        self.n = 0;
        self.deadline = None;
    }

    /// Adds `fd` under `token`. The fd only has to stay open until `wait` returns (a closed
    /// fd polls as an error, never as someone else's readiness, because the caller owns it for
    /// the turn). Registrations past `MAX_FDS` are refused with false (and logged by the caller).
    pub fn register(&mut self, token: Token, fd: BorrowedFd<'_>, want: Want) -> bool {
        if self.n == MAX_FDS {
            return false;
        }
        self.pfds[self.n] = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: if want.read { libc::POLLIN } else { 0 }
                | if want.write { libc::POLLOUT } else { 0 },
            revents: 0,
        };
        self.tokens[self.n] = token;
        self.n += 1;
        true
    }

    /// Wakes `wait` no later than `at`.
    pub fn wake_at(&mut self, at: Instant) {
        self.deadline = Some(self.deadline.map_or(at, |d| d.min(at)));
    }

    /// Like `wake_at` for an optional time.
    pub fn wake_at_opt(&mut self, at: Option<Instant>) {
        if let Some(t) = at {
            self.wake_at(t);
        }
    }

    /// The earliest registered deadline.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Sleeps until a registered fd is ready or the earliest deadline passes (rounded up to a
    /// whole millisecond, so a deadline is never woken for early); with no deadline at most
    /// `max`. EINTR is a normal return with nothing ready.
    pub fn wait(&mut self, now: Instant, max: Duration) -> io::Result<usize> {
        let timeout = self
            .deadline
            .map_or(max, |d| d.saturating_duration_since(now).min(max));
        for p in &mut self.pfds[..self.n] {
            p.revents = 0;
        }
        let ms = timeout.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32;
        // SAFETY: `pfds[..n]` are initialised pollfd entries owned by self; poll(2) writes only
        // their revents fields.
        let rc = unsafe { libc::poll(self.pfds.as_mut_ptr(), self.n as libc::nfds_t, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(0);
            }
            return Err(e);
        }
        Ok(rc as usize)
    }

    /// The readiness `wait` found for `token` (all its fds together).
    pub fn ready(&self, token: Token) -> Ready {
        let mut r = Ready::default();
        for (p, t) in self.pfds[..self.n].iter().zip(&self.tokens[..self.n]) {
            if *t == token {
                r.readable |= p.revents & libc::POLLIN != 0;
                r.writable |= p.revents & libc::POLLOUT != 0;
                r.error |= p.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0;
            }
        }
        r
    }
}

/// One fd of a one-off `poll` (the one-shot commands: `scan`, `capture`, `snapshot`).
pub struct Interest<'a> {
    /// The fd.
    pub fd: BorrowedFd<'a>,
    /// Wake when readable.
    pub read: bool,
    /// Wake when writable.
    pub write: bool,
}

/// Waits until one of `fds` (at most `MAX_FDS`) is ready or `timeout` passes; `out[i]` is the
/// readiness of `fds[i]`. EINTR is a normal return with nothing ready.
pub fn poll(fds: &[Interest<'_>], timeout: Duration, out: &mut [Ready]) -> io::Result<usize> {
    let mut set = PollSet::new();
    for (i, f) in fds.iter().enumerate().take(MAX_FDS) {
        set.register(
            Token(i as u16),
            f.fd,
            Want {
                read: f.read,
                write: f.write,
            },
        );
    }
    let now = Instant::now();
    set.wake_at(now + timeout);
    let n = set.wait(now, timeout)?;
    for (i, o) in out.iter_mut().enumerate().take(fds.len()) {
        *o = set.ready(Token(i as u16));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn readiness_by_token_and_the_earliest_deadline() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let (c, _d) = UnixStream::pair().unwrap();
        let mut set = PollSet::new();
        set.register(Token(1), a.as_fd(), Want::READ);
        set.register(Token(2), c.as_fd(), Want::READ);
        let t0 = Instant::now();
        set.wake_at(t0 + Duration::from_millis(500));
        set.wake_at(t0 + Duration::from_millis(40));
        assert_eq!(set.wait(Instant::now(), Duration::from_secs(5)).unwrap(), 0);
        let took = t0.elapsed();
        assert!(took >= Duration::from_millis(40) && took < Duration::from_millis(400));
        assert!(!set.ready(Token(1)).any());
        b.write_all(b"x").unwrap();
        assert_eq!(set.wait(Instant::now(), Duration::from_secs(5)).unwrap(), 1);
        assert!(set.ready(Token(1)).readable);
        assert!(!set.ready(Token(2)).any());
        // The same token twice: readiness of either.
        set.clear();
        set.register(Token(3), c.as_fd(), Want::WRITE);
        set.register(Token(3), a.as_fd(), Want::READ);
        set.wait(Instant::now(), Duration::from_secs(5)).unwrap();
        let r = set.ready(Token(3));
        assert!(r.readable && r.writable);
        assert_eq!(set.deadline(), None);
    }

    #[test]
    fn full_set_refuses_more() {
        let (a, _b) = UnixStream::pair().unwrap();
        let mut set = PollSet::new();
        for i in 0..MAX_FDS {
            assert!(set.register(Token(i as u16), a.as_fd(), Want::READ));
        }
        assert!(!set.register(Token(99), a.as_fd(), Want::READ));
    }
}
