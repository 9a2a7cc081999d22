//! SIGINT, SIGTERM and SIGHUP delivered through a signalfd, so the main loop sees them as a
//! readable fd in its one poll(2) instead of in an async handler.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::syscall;

/// A signal the loop acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT or SIGTERM: stop.
    Terminate,
    /// SIGHUP: reload the configuration.
    Reload,
}

/// The signalfd for SIGINT, SIGTERM and SIGHUP.
pub struct SignalFd {
    fd: OwnedFd,
}

/// SIGINT, SIGTERM and SIGHUP.
fn agent_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t owned by this frame.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
    }
    set
}

/// Blocks SIGINT, SIGTERM and SIGHUP for the process (see `block_signals_before_main!`).
pub fn block() {
    let set = agent_signals();
    // SAFETY: `set` is initialised; the old-set pointer may be null. Nothing can fail here
    // that the caller could act on: SignalFd::new blocks again and reports errors.
    unsafe {
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// In the executable (src/main.rs): an ELF constructor, run by the C runtime before `main`,
/// that blocks SIGINT, SIGTERM and SIGHUP, so that one arriving while the agent starts waits
/// for its signalfd instead of killing it (a SIGHUP's default action is to terminate).
/// Commands without a signal loop `unblock` first thing.
#[macro_export]
macro_rules! block_signals_before_main {
    () => {
        // SAFETY: a plain function pointer in .init_array, called once by the C runtime
        // before main with the process single-threaded; the function only changes the
        // signal mask.
        #[allow(unsafe_code)]
        #[used]
        #[link_section = ".init_array"]
        static BLOCK_SIGNALS_BEFORE_MAIN: extern "C" fn() = {
            extern "C" fn block() {
                $crate::sys::signals::block()
            }
            block
        };
    };
}

/// Undoes the block made before `main`: for the commands that do not read a signalfd, so
/// SIGINT/SIGTERM stop them as usual (one that came meanwhile is delivered now).
pub fn unblock() {
    let set = agent_signals();
    // SAFETY: `set` is initialised; the old-set pointer may be null.
    unsafe {
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}

impl SignalFd {
    /// Blocks SIGINT, SIGTERM and SIGHUP for this (single-threaded) process and returns a
    /// non-blocking signalfd that reports them.
    pub fn new() -> io::Result<SignalFd> {
        let set = agent_signals();
        // SAFETY: `set` is initialised; the old-set pointer may be null.
        let rc = unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        let raw = syscall!(signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC))?;
        // SAFETY: signalfd returned a new descriptor that nothing else owns.
        Ok(SignalFd {
            fd: unsafe { OwnedFd::from_raw_fd(raw) },
        })
    }

    /// Reads one pending signal, if any.
    pub fn read(&self) -> io::Result<Option<Signal>> {
        loop {
            // SAFETY: signalfd_siginfo is plain data, fully written by a successful read.
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let size = std::mem::size_of::<libc::signalfd_siginfo>();
            // SAFETY: `info` is a writable buffer of exactly `size` bytes.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    (&mut info as *mut libc::signalfd_siginfo).cast(),
                    size,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.kind() {
                    io::ErrorKind::WouldBlock => Ok(None),
                    io::ErrorKind::Interrupted => continue,
                    _ => Err(e),
                };
            }
            if n as usize != size {
                return Ok(None);
            }
            return Ok(match info.ssi_signo as i32 {
                libc::SIGHUP => Some(Signal::Reload),
                _ => Some(Signal::Terminate),
            });
        }
    }
}

impl AsFd for SignalFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
