//! Every wait of the shipping code (a connect, a read or write that would block, the TLS and
//! WebSocket handshakes that run over them) goes through `wait`, so the one thread can keep
//! doing the loop's other work while a platform is slow: the agent registers a service that
//! polls the platform socket together with the capture ring and drains the ring whenever the
//! kernel hands over a block (`monitor::Monitor::wait_beside`). Without a service (tests, `check`,
//! `register`), `wait` polls the socket alone.
//!
//! A service is a closure `(socket, want write, timeout) -> socket ready?`: it must return when
//! the socket is ready or the timeout has passed, never earlier without a reason and never
//! later, so the callers' deadlines hold as they are.

use std::cell::RefCell;
use std::io;
use std::marker::PhantomData;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use crate::sys::poll::{poll, Interest, Ready};

/// Waits for `fd` (readable, or writable with `write`) for at most `timeout`, doing its own
/// work meanwhile; true when the socket is ready (an error or hang-up counts as ready).
pub type Service = Box<dyn FnMut(BorrowedFd<'_>, bool, Duration) -> io::Result<bool>>;

thread_local! {
    static SERVICE: RefCell<Option<Service>> = const { RefCell::new(None) };
}

/// Keeps a service registered for this thread until dropped.
#[must_use = "the service is unregistered when this is dropped"]
pub struct Registered {
    // Not Send: the registration belongs to the thread that made it.
    _thread: PhantomData<*const ()>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        SERVICE.with(|s| s.borrow_mut().take());
    }
}

/// Registers `service` for the waits of this thread (replacing any earlier one).
pub fn register(service: Service) -> Registered {
    SERVICE.with(|s| *s.borrow_mut() = Some(service));
    Registered {
        _thread: PhantomData,
    }
}

/// Waits until `fd` is ready or `timeout` passes; through the registered service when there
/// is one. True when the socket is ready.
pub fn wait(fd: BorrowedFd<'_>, write: bool, timeout: Duration) -> io::Result<bool> {
    SERVICE.with(|s| match s.try_borrow_mut() {
        Ok(mut guard) => match guard.as_mut() {
            Some(service) => service(fd, write, timeout),
            None => alone(fd, write, timeout),
        },
        // A wait from inside the service itself (it never does that): the socket alone.
        Err(_) => alone(fd, write, timeout),
    })
}

/// One poll on the socket alone.
pub fn alone(fd: BorrowedFd<'_>, write: bool, timeout: Duration) -> io::Result<bool> {
    let mut ready = [Ready::default()];
    let i = [Interest {
        fd,
        read: !write,
        write,
    }];
    poll(&i, timeout, &mut ready)?;
    Ok(is_ready(ready[0]))
}

/// Whether a socket polled ready: readable, writable, or an error / hang-up to pick up.
pub fn is_ready(r: Ready) -> bool {
    r.readable || r.writable || r.error
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsFd;
    use std::rc::Rc;
    use std::time::Instant;

    #[test]
    fn without_a_service_the_socket_alone_with_one_while_registered() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let s = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut peer, _) = l.accept().unwrap();
        let t0 = Instant::now();
        assert!(!wait(s.as_fd(), false, Duration::from_millis(30)).unwrap());
        assert!(t0.elapsed() >= Duration::from_millis(30));
        assert!(wait(s.as_fd(), true, Duration::from_secs(5)).unwrap());
        let calls = Rc::new(std::cell::Cell::new(0));
        {
            let c = calls.clone();
            let _r = register(Box::new(move |fd, write, t| {
                c.set(c.get() + 1);
                alone(fd, write, t)
            }));
            peer.write_all(b"x").unwrap();
            assert!(wait(s.as_fd(), false, Duration::from_secs(5)).unwrap());
            assert_eq!(calls.get(), 1);
        }
        // Unregistered on drop.
        assert!(wait(s.as_fd(), false, Duration::ZERO).unwrap());
        assert_eq!(calls.get(), 1);
    }
}
