//! The `/metrics` listener: a bounded, non-blocking HTTP/1.x server state machine driven by the
//! agent's one poll loop.
//!
//! The loop polls [`MetricsServer::interests`], wakes at [`MetricsServer::deadline`] and calls
//! [`MetricsServer::step`] whenever one of those fds is ready or the deadline passed; `step` does
//! every accept, read and write that can be done without blocking and returns. Time is an
//! argument. Bounds:
//! - at most [`MAX_CONNECTIONS`] connections at once (the listener is not polled while they are
//!   all in use, so further clients wait in the kernel's accept queue);
//! - a request head of at most [`MAX_REQUEST`] bytes (431 beyond), read into a buffer allocated
//!   once at start;
//! - each connection has [`CONNECTION_DEADLINE`] from accept to the last byte of its response,
//!   then it is closed;
//! - one response buffer, reused: the page is rendered once and shared by every connection that
//!   is sending it; it is rendered again only when no connection is in the middle of sending.
//!
//! Only `GET /metrics` (query string ignored) is served; another path is 404, another method
//! 405. Every response closes the connection (`Connection: close`): a scrape every few seconds
//! does not need keep-alive, and a closed connection holds nothing.

use std::io::{self, IoSlice, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 4;
/// Longest request head accepted (Prometheus sends ~250 bytes).
pub const MAX_REQUEST: usize = 4096;
/// From accept to the end of the response.
pub const CONNECTION_DEADLINE: Duration = Duration::from_secs(5);

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const NOT_FOUND: &[u8] = b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 33\r\nConnection: close\r\n\r\nnot found: the page is /metrics\r\n";
const NOT_ALLOWED: &[u8] = b"HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\nContent-Type: text/plain\r\nContent-Length: 24\r\nConnection: close\r\n\r\nonly GET /metrics here\r\n";
const BAD_REQUEST: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: close\r\n\r\nbad request\r\n";
const TOO_LARGE: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain\r\nContent-Length: 19\r\nConnection: close\r\n\r\nrequest too large\r\n";

/// Counters of the listener itself (for logs and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Pages served in full.
    pub pages: u64,
    /// Requests answered with 4xx.
    pub rejected: u64,
    /// Connections closed at their deadline or by an error before the response was sent.
    pub aborted: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading the request head; `len` bytes so far in this slot's request buffer.
    Reading { len: usize },
    /// Sending the shared page; `sent` bytes of head + body so far.
    Page { sent: usize },
    /// Sending a fixed error response.
    Fixed { what: &'static [u8], sent: usize },
}

struct Conn {
    stream: TcpStream,
    deadline: Instant,
    phase: Phase,
}

/// See the module doc.
pub struct MetricsServer {
    listener: TcpListener,
    conns: [Option<Conn>; MAX_CONNECTIONS],
    /// One request buffer per connection slot, allocated at start.
    requests: Box<[[u8; MAX_REQUEST]; MAX_CONNECTIONS]>,
    /// The response head of the current page (status line, headers with Content-Length).
    head: heapless::Vec<u8, 192>,
    /// The current page's body, reused from scrape to scrape.
    body: Vec<u8>,
    stats: ServerStats,
}

/// What went wrong opening the listener.
#[derive(Debug)]
pub struct ListenError {
    /// The address asked for.
    pub addr: SocketAddr,
    /// Why it cannot be bound.
    pub source: io::Error,
}

impl std::fmt::Display for ListenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "METRICS_LISTEN {}: {}", self.addr, self.source)
    }
}

impl MetricsServer {
    /// Binds `addr` (non-blocking). The page buffer starts at `page_capacity` bytes and grows
    /// to the largest page served (it never shrinks): reserving a full table's worst case up
    /// front (2.9 KB per entry) would ask a small router for more than it has.
    pub fn bind(addr: SocketAddr, page_capacity: usize) -> Result<MetricsServer, ListenError> {
        let err = |source| ListenError { addr, source };
        let listener = TcpListener::bind(addr).map_err(err)?;
        listener.set_nonblocking(true).map_err(err)?;
        Ok(MetricsServer {
            listener,
            conns: std::array::from_fn(|_| None),
            requests: Box::new([[0; MAX_REQUEST]; MAX_CONNECTIONS]),
            head: heapless::Vec::new(),
            body: Vec::with_capacity(page_capacity),
            stats: ServerStats::default(),
        })
    }

    /// The address actually bound (port 0 picks one).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Counters of the connections served.
    pub fn stats(&self) -> ServerStats {
        self.stats
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.conns.iter().flatten().count()
    }

    /// The fds to poll: (fd, want read, want write). The listener only while a slot is free.
    pub fn interests(&self) -> impl Iterator<Item = (BorrowedFd<'_>, bool, bool)> {
        let free = self.conns.iter().any(Option::is_none);
        let listener = free.then(|| (self.listener.as_fd(), true, false));
        listener
            .into_iter()
            .chain(self.conns.iter().flatten().map(|c| match c.phase {
                Phase::Reading { .. } => (c.stream.as_fd(), true, false),
                Phase::Page { .. } | Phase::Fixed { .. } => (c.stream.as_fd(), false, true),
            }))
    }

    /// The earliest connection deadline.
    pub fn deadline(&self) -> Option<Instant> {
        self.conns.iter().flatten().map(|c| c.deadline).min()
    }

    /// Accepts, reads and writes whatever is possible without blocking, closes connections
    /// past their deadline. `render` fills the page body when a new page is needed.
    pub fn step(&mut self, now: Instant, render: &mut dyn FnMut(&mut Vec<u8>)) {
        for i in 0..MAX_CONNECTIONS {
            if self.conns[i].as_ref().is_some_and(|c| now >= c.deadline) {
                self.conns[i] = None;
                self.stats.aborted += 1;
            }
        }
        self.accept(now);
        for i in 0..MAX_CONNECTIONS {
            self.service(i, render);
        }
    }

    fn accept(&mut self, now: Instant) {
        while let Some(slot) = self.conns.iter().position(Option::is_none) {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    self.conns[slot] = Some(Conn {
                        stream,
                        deadline: now + CONNECTION_DEADLINE,
                        phase: Phase::Reading { len: 0 },
                    });
                }
                // WouldBlock: nothing waiting. Other errors (ECONNABORTED, EMFILE) concern one
                // client; the next poll tries again.
                Err(_) => return,
            }
        }
    }

    /// True while some connection is in the middle of sending the page.
    fn page_in_use(&self) -> bool {
        self.conns
            .iter()
            .flatten()
            .any(|c| matches!(c.phase, Phase::Page { .. }))
    }

    fn service(&mut self, i: usize, render: &mut dyn FnMut(&mut Vec<u8>)) {
        loop {
            let Some(conn) = self.conns[i].as_mut() else {
                return;
            };
            match conn.phase {
                Phase::Reading { len } => {
                    let buf = &mut self.requests[i];
                    match conn.stream.read(&mut buf[len..]) {
                        Ok(0) => {
                            self.conns[i] = None;
                            self.stats.aborted += 1;
                            return;
                        }
                        Ok(n) => {
                            let len = len + n;
                            match route(&buf[..len]) {
                                Route::Incomplete if len == MAX_REQUEST => {
                                    self.respond_fixed(i, TOO_LARGE)
                                }
                                Route::Incomplete => {
                                    if let Some(c) = self.conns[i].as_mut() {
                                        c.phase = Phase::Reading { len };
                                    }
                                }
                                Route::Metrics => {
                                    if !self.page_in_use() {
                                        self.render_page(render);
                                    }
                                    if let Some(c) = self.conns[i].as_mut() {
                                        c.phase = Phase::Page { sent: 0 };
                                    }
                                }
                                Route::Fixed(what) => self.respond_fixed(i, what),
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => {
                            self.conns[i] = None;
                            self.stats.aborted += 1;
                            return;
                        }
                    }
                }
                Phase::Page { sent } => {
                    let total = self.head.len() + self.body.len();
                    let r = if sent < self.head.len() {
                        conn.stream.write_vectored(&[
                            IoSlice::new(&self.head[sent..]),
                            IoSlice::new(&self.body),
                        ])
                    } else {
                        conn.stream.write(&self.body[sent - self.head.len()..])
                    };
                    match r {
                        Ok(n) if sent + n >= total => {
                            self.conns[i] = None;
                            self.stats.pages += 1;
                            return;
                        }
                        Ok(0) => {
                            self.conns[i] = None;
                            self.stats.aborted += 1;
                            return;
                        }
                        Ok(n) => conn.phase = Phase::Page { sent: sent + n },
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => {
                            self.conns[i] = None;
                            self.stats.aborted += 1;
                            return;
                        }
                    }
                }
                Phase::Fixed { what, sent } => match conn.stream.write(&what[sent..]) {
                    Ok(n) if sent + n >= what.len() => {
                        self.conns[i] = None;
                        return;
                    }
                    Ok(0) => {
                        self.conns[i] = None;
                        return;
                    }
                    Ok(n) => {
                        conn.phase = Phase::Fixed {
                            what,
                            sent: sent + n,
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        self.conns[i] = None;
                        return;
                    }
                },
            }
        }
    }

    fn respond_fixed(&mut self, i: usize, what: &'static [u8]) {
        self.stats.rejected += 1;
        if let Some(c) = self.conns[i].as_mut() {
            c.phase = Phase::Fixed { what, sent: 0 };
        }
    }

    fn render_page(&mut self, render: &mut dyn FnMut(&mut Vec<u8>)) {
        render(&mut self.body);
        self.head.clear();
        let mut head = HeadWriter(&mut self.head);
        // 192 bytes hold the head with any Content-Length.
        let _ = write!(
            head,
            "HTTP/1.1 200 OK\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.body.len()
        );
    }
}

struct HeadWriter<'a>(&'a mut heapless::Vec<u8, 192>);

impl Write for HeadWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .extend_from_slice(buf)
            .map_err(|_| io::Error::other("response head too long"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Route {
    /// The head is not complete yet.
    Incomplete,
    Metrics,
    Fixed(&'static [u8]),
}

/// Decides what a request head asks for. Pure. Only the request line is read (`METHOD SP
/// TARGET SP HTTP/1.x`); header lines must hold a colon and are otherwise ignored, since no
/// header changes the answer. A broken request line is refused as soon as it is complete; the
/// rest waits for the blank line that ends the head.
fn route(request: &[u8]) -> Route {
    // Whole lines only (each ends with a line feed), without their line ending.
    let mut lines = request
        .split_inclusive(|&b| b == b'\n')
        .filter_map(|l| l.strip_suffix(b"\n"))
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let Some(first) = lines.next() else {
        return Route::Incomplete;
    };
    let Some((method, path)) = request_line(first) else {
        return Route::Fixed(BAD_REQUEST);
    };
    let mut complete = false;
    for line in lines {
        if line.is_empty() {
            complete = true;
            break;
        }
        if !line.contains(&b':') {
            return Route::Fixed(BAD_REQUEST);
        }
    }
    if !complete {
        return Route::Incomplete;
    }
    let path = path.split(|&b| b == b'?').next().unwrap_or(path);
    if path != b"/metrics" {
        Route::Fixed(NOT_FOUND)
    } else if method != b"GET" {
        Route::Fixed(NOT_ALLOWED)
    } else {
        Route::Metrics
    }
}

/// (method, target) of `METHOD SP TARGET SP HTTP/1.0|1.1`; None when it is not that.
fn request_line(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut parts = line.split(|&b| b == b' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    let token = |s: &[u8]| !s.is_empty() && s.iter().all(|b| b.is_ascii_alphabetic());
    let target_ok = target.first() == Some(&b'/') && target.iter().all(|&b| b > b' ' && b < 0x7f);
    let version_ok = version == b"HTTP/1.1" || version == b"HTTP/1.0";
    (parts.next().is_none() && token(method) && target_ok && version_ok).then_some((method, target))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{Ipv4Addr, Shutdown};

    #[test]
    fn routes() {
        assert_eq!(route(b"GET /metrics HTTP/1.1\r\n"), Route::Incomplete);
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Metrics
        );
        assert_eq!(route(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Route::Metrics);
        assert_eq!(
            route(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Route::Fixed(NOT_ALLOWED)
        );
        assert_eq!(
            route(b"HEAD /metrics HTTP/1.1\r\n\r\n"),
            Route::Fixed(NOT_ALLOWED)
        );
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Route::Fixed(NOT_FOUND));
        assert_eq!(
            route(b"GET /metricsx HTTP/1.1\r\n\r\n"),
            Route::Fixed(NOT_FOUND)
        );
        assert_eq!(route(b"\x00\x01garbage\r\n\r\n"), Route::Fixed(BAD_REQUEST));
        // A broken request line is refused before the head ends.
        assert_eq!(route(b"GET /metrics\r\n"), Route::Fixed(BAD_REQUEST));
        for bad in [
            &b"GET  /metrics HTTP/1.1\r\n\r\n"[..],
            b"GET /metrics HTTP/2\r\n\r\n",
            b"GET metrics HTTP/1.1\r\n\r\n",
            b"G3T /metrics HTTP/1.1\r\n\r\n",
            b"GET /met\x01rics HTTP/1.1\r\n\r\n",
            b"GET /metrics HTTP/1.1 x\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nno colon\r\n\r\n",
        ] {
            assert_eq!(route(bad), Route::Fixed(BAD_REQUEST), "{bad:?}");
        }
        // Bare line feeds end lines too; many headers are fine within MAX_REQUEST.
        assert_eq!(route(b"GET /metrics HTTP/1.0\nA: b\n\n"), Route::Metrics);
        let mut many = b"GET /metrics HTTP/1.1\r\n".to_vec();
        for i in 0..40 {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        assert_eq!(route(&many), Route::Incomplete);
        many.extend_from_slice(b"\r\n");
        assert_eq!(route(&many), Route::Metrics);
        // Every prefix of a good request is incomplete, never an error.
        let good = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9101\r\nAccept: */*\r\n\r\n";
        for n in 0..good.len() - 1 {
            assert_eq!(route(&good[..n]), Route::Incomplete, "{n}");
        }
    }

    #[test]
    fn fixed_responses_have_the_right_content_length() {
        for r in [NOT_FOUND, NOT_ALLOWED, BAD_REQUEST, TOO_LARGE] {
            let mut headers = [httparse::EMPTY_HEADER; 8];
            let mut resp = httparse::Response::new(&mut headers);
            let httparse::Status::Complete(at) = resp.parse(r).unwrap() else {
                panic!("incomplete");
            };
            let len: usize = std::str::from_utf8(
                resp.headers
                    .iter()
                    .find(|h| h.name == "Content-Length")
                    .unwrap()
                    .value,
            )
            .unwrap()
            .parse()
            .unwrap();
            assert_eq!(r.len() - at, len, "{}", String::from_utf8_lossy(r));
        }
    }

    fn server() -> (MetricsServer, SocketAddr) {
        let s = MetricsServer::bind((Ipv4Addr::LOCALHOST, 0).into(), 1024).unwrap();
        let a = s.local_addr().unwrap();
        (s, a)
    }

    /// Steps the server until `done` or 2 s pass (the client sockets are blocking with
    /// timeouts, the server is stepped from this thread between client operations).
    fn pump(s: &mut MetricsServer, page: &[u8], rounds: usize) {
        for _ in 0..rounds {
            s.step(Instant::now(), &mut |b: &mut Vec<u8>| {
                b.clear();
                b.extend_from_slice(page)
            });
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn exchange(s: &mut MetricsServer, addr: SocketAddr, req: &[u8], page: &[u8]) -> String {
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(req).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        pump(s, page, 20);
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn serves_the_page_and_rejects_the_rest() {
        let (mut s, a) = server();
        let page = b"netmon_agent_info{version=\"x\"} 1\n";
        let r = exchange(&mut s, a, b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n", page);
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
        assert!(r.contains(&format!("Content-Length: {}\r\n", page.len())));
        assert!(r.ends_with(std::str::from_utf8(page).unwrap()));
        let r = exchange(&mut s, a, b"GET /other HTTP/1.1\r\n\r\n", page);
        assert!(r.starts_with("HTTP/1.1 404 "), "{r}");
        let r = exchange(&mut s, a, b"DELETE /metrics HTTP/1.1\r\n\r\n", page);
        assert!(r.starts_with("HTTP/1.1 405 "), "{r}");
        assert_eq!(s.stats().pages, 1);
        assert_eq!(s.stats().rejected, 2);
        assert_eq!(s.connections(), 0);
    }

    #[test]
    fn an_oversized_request_gets_431() {
        let (mut s, a) = server();
        let mut req = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        req.resize(MAX_REQUEST + 100, b'a');
        let mut c = TcpStream::connect(a).unwrap();
        c.set_nonblocking(true).unwrap();
        let mut written = 0;
        for _ in 0..50 {
            if written < req.len() {
                if let Ok(n) = c.write(&req[written..]) {
                    written += n;
                }
            }
            pump(&mut s, b"", 1);
        }
        c.set_nonblocking(false).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        assert!(
            out.starts_with(b"HTTP/1.1 431 "),
            "{:?}",
            String::from_utf8_lossy(&out)
        );
    }

    #[test]
    fn connections_are_bounded_and_closed_at_their_deadline() {
        let (mut s, a) = server();
        let t0 = Instant::now();
        // Silent clients: they connect and send nothing.
        let idle: Vec<TcpStream> = (0..MAX_CONNECTIONS + 2)
            .map(|_| TcpStream::connect(a).unwrap())
            .collect();
        s.step(t0, &mut |_| {});
        assert_eq!(s.connections(), MAX_CONNECTIONS);
        // The listener is not polled while every slot is taken.
        assert_eq!(s.interests().count(), MAX_CONNECTIONS);
        assert_eq!(s.deadline(), Some(t0 + CONNECTION_DEADLINE));
        s.step(t0 + CONNECTION_DEADLINE, &mut |_| {});
        // The first four were closed; the two waiting in the accept queue took their slots.
        assert_eq!(s.stats().aborted, MAX_CONNECTIONS as u64);
        assert_eq!(s.connections(), 2);
        drop(idle);
    }

    #[test]
    fn a_large_page_is_sent_in_pieces_to_two_clients_at_once() {
        let (mut s, a) = server();
        let page: Vec<u8> = (0..4_000_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let clients: Vec<TcpStream> = (0..2)
            .map(|_| {
                let mut c = TcpStream::connect(a).unwrap();
                c.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
                c.set_nonblocking(true).unwrap();
                c
            })
            .collect();
        let mut got = vec![Vec::new(), Vec::new()];
        let mut renders = 0;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && got.iter().any(|g| g.len() < page.len() + 60) {
            s.step(Instant::now(), &mut |b: &mut Vec<u8>| {
                renders += 1;
                b.clear();
                b.extend_from_slice(&page);
            });
            let mut buf = [0u8; 65536];
            for (c, g) in clients.iter().zip(got.iter_mut()) {
                let mut c = c;
                while let Ok(n) = c.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    g.extend_from_slice(&buf[..n]);
                }
            }
            if s.connections() == 0 {
                break;
            }
        }
        assert_eq!(s.stats().pages, 2);
        for g in &got {
            let at = g.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            assert!(g[at..] == page[..], "body differs");
        }
        // Both were served from one rendering unless the first finished before the second
        // request was read.
        assert!((1..=2).contains(&renders));
    }
}
