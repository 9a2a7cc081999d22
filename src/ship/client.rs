//! An HTTP/1.1 POST client as a state machine the loop drives: connect (`net::Connector`), send
//! the request, read the reply, each step when poll says the socket is ready, the whole
//! exchange ending by one deadline. The connection is kept for the next request while the
//! server keeps it open (one TCP and TLS handshake per connection, not per request); a kept
//! connection the server closed meanwhile is replaced, once, by a fresh one.

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::dns::Resolver;
use super::http::{self, Framing, HttpError, Progress as Reply, ReplyError, ReplyParser, Response};
use super::net::{Conn, Connector, Machine, Progress};
use super::tls::ClientConfig;
use crate::config::Url;
use crate::sys::poll::{PollSet, Ready, Token, Want};

/// A kept connection unused for this long is closed rather than reused (servers close idle
/// connections after 5 to 120 s; a request on one they are closing is lost time).
pub const IDLE_MAX: Duration = Duration::from_secs(60);

enum State {
    Idle,
    Connecting(Box<Connector>),
    Sending { conn: Box<Conn>, off: usize },
    Receiving { conn: Box<Conn> },
}

/// One POST target: the URL, its TLS settings and the connection kept between requests.
pub struct Client {
    url: Url,
    tls: Option<Arc<ClientConfig>>,
    keep_alive: bool,
    /// The kept connection and since when it is idle.
    kept: Option<(Box<Conn>, Instant)>,
    state: State,
    /// The request in flight (head and body).
    request: Vec<u8>,
    /// The reply being read (nethard's bounded incremental parser), reset per request.
    parser: ReplyParser,
    /// Bytes of the reply read so far (a kept connection closed before any is retried).
    reply_bytes: usize,
    want_body: bool,
    deadline: Instant,
    /// The request runs on a kept connection (a close before any reply is retried once).
    reused: bool,
    /// TCP connections opened (TLS handshakes, for https).
    pub connects: u64,
}

impl Client {
    /// A client for `url` (TLS when it is https), keeping its connection when `keep_alive`.
    pub fn new(url: Url, tls: Option<Arc<ClientConfig>>, keep_alive: bool) -> Client {
        Client {
            url,
            tls,
            keep_alive,
            kept: None,
            state: State::Idle,
            request: Vec::new(),
            parser: ReplyParser::new(0),
            reply_bytes: 0,
            want_body: false,
            deadline: Instant::now(),
            reused: false,
            connects: 0,
        }
    }

    /// The endpoint.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// True while a request is in flight.
    pub fn busy(&self) -> bool {
        !matches!(self.state, State::Idle)
    }

    /// Starts a POST of `body` with `headers` (besides Host, User-Agent, Content-Type,
    /// Content-Length and Connection), to end by `deadline`. The body of a 2xx reply is kept
    /// only with `want_body` (it is read anyway when small, so the connection can be reused).
    pub fn start(
        &mut self,
        headers: &[(&str, &str)],
        body: &[u8],
        want_body: bool,
        dns: &mut Resolver,
        now: Instant,
        deadline: Instant,
    ) {
        let mut head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: netmon-agent/{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: {}\r\n",
            self.url.request_target(),
            http::host_header(&self.url),
            crate::VERSION,
            body.len(),
            if self.keep_alive { "keep-alive" } else { "close" }
        );
        for (k, v) in headers {
            head.push_str(k);
            head.push_str(": ");
            head.push_str(v);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        self.request.clear();
        self.request.extend_from_slice(head.as_bytes());
        self.request.extend_from_slice(body);
        self.want_body = want_body;
        self.parser = ReplyParser::new(if want_body { http::MAX_BODY_KEPT } else { 0 });
        self.deadline = deadline;
        self.reused = false;
        if let Some((mut conn, since)) = self.kept.take() {
            if now < since + IDLE_MAX && !conn.is_closed() {
                self.reused = true;
                self.state = State::Sending { conn, off: 0 };
                return;
            }
        }
        self.connect(dns, now);
    }

    fn connect(&mut self, dns: &mut Resolver, now: Instant) {
        self.connects += 1;
        self.state = State::Connecting(Box::new(Connector::start(
            &self.url,
            self.tls.as_ref(),
            dns,
            now,
            self.deadline,
        )));
    }

    /// Drops the kept connection (settings changed, or the owner is done with it).
    pub fn close(&mut self) {
        self.kept = None;
        self.state = State::Idle;
    }

    /// Registers its socket and deadline with the loop.
    pub fn register(&self, set: &mut PollSet, token: Token) {
        match &self.state {
            State::Idle => {}
            State::Connecting(c) => c.register(set, token),
            State::Sending { conn, .. } => {
                set.register(token, conn.as_fd(), Want::WRITE);
                set.wake_at(self.deadline);
            }
            State::Receiving { conn } => {
                let want = Want {
                    read: true,
                    write: conn.wants_write(),
                };
                set.register(token, conn.as_fd(), want);
                set.wake_at(self.deadline);
            }
        }
    }

    /// Moves the exchange on; Some(result) when it is over.
    pub fn advance(
        &mut self,
        ready: Ready,
        dns: &mut Resolver,
        now: Instant,
    ) -> Option<Result<Response, HttpError>> {
        let mut ready = ready;
        loop {
            let host = self.url.host.clone();
            match std::mem::replace(&mut self.state, State::Idle) {
                State::Idle => return None,
                State::Connecting(mut c) => match c.advance(ready, dns, now) {
                    Progress::Pending => {
                        self.state = State::Connecting(c);
                        return None;
                    }
                    Progress::Done(conn) => {
                        self.state = State::Sending {
                            conn: Box::new(conn),
                            off: 0,
                        }
                    }
                    Progress::Failed(e) => return Some(Err(HttpError::Connect(e))),
                },
                State::Sending { mut conn, mut off } => {
                    let res = loop {
                        if off == self.request.len() {
                            break conn.flush().map(|()| true);
                        }
                        match conn.write(&self.request[off..]) {
                            Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                            Ok(n) => off += n,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => break Err(e),
                        }
                    };
                    match res {
                        Ok(_) => {
                            self.parser.reset();
                            self.reply_bytes = 0;
                            self.state = State::Receiving { conn };
                            ready = Ready::default();
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            if now >= self.deadline {
                                return Some(Err(HttpError::Timeout {
                                    host,
                                    phase: "sending the request",
                                }));
                            }
                            self.state = State::Sending { conn, off };
                            return None;
                        }
                        Err(_) if self.reused => self.retry_fresh(dns, now),
                        Err(e) => {
                            return Some(Err(HttpError::Io {
                                host,
                                phase: "sending the request",
                                source: e,
                            }))
                        }
                    }
                }
                State::Receiving { mut conn } => {
                    match self.read_reply(&mut conn) {
                        ReplyStep::More if now < self.deadline => {
                            self.state = State::Receiving { conn };
                            return None;
                        }
                        // Out of time: a known status stands (the body is not needed), the
                        // connection is not reused.
                        ReplyStep::More => {
                            return Some(self.response().ok_or(HttpError::Timeout {
                                host,
                                phase: "waiting for the reply",
                            }))
                        }
                        ReplyStep::Done { reusable } => {
                            if reusable && self.keep_alive {
                                self.kept = Some((conn, now));
                            }
                            return self.response().map(Ok);
                        }
                        ReplyStep::Failed(e) => {
                            if let Some(r) = self.response() {
                                return Some(Ok(r));
                            }
                            if self.reused && self.reply_bytes == 0 {
                                // The server closed the kept connection as the request went
                                // out: once more on a fresh one.
                                self.retry_fresh(dns, now);
                                continue;
                            }
                            return Some(Err(match e {
                                Err(io) => HttpError::Io {
                                    host,
                                    phase: "waiting for the reply",
                                    source: io,
                                },
                                Ok(error) => HttpError::Reply { host, error },
                            }));
                        }
                    }
                }
            }
        }
    }

    /// The reply as far as it is known: its status once the head is complete.
    fn response(&self) -> Option<Response> {
        let h = self.parser.head()?;
        Some(Response {
            status: h.status,
            reason: h.reason.clone(),
            retry_after: h.retry_after,
            body: self.parser.body().to_vec(),
        })
    }

    /// Reads what the socket has into the parser, without blocking.
    fn read_reply(&mut self, conn: &mut Conn) -> ReplyStep {
        let mut buf = [0u8; 4096];
        // Bounded per turn: a server that sends as fast as we read cannot hold the loop (the
        // parser's cap ends the reply after 64 KiB anyway).
        for _ in 0..32 {
            let n = match conn.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReplyStep::More,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return ReplyStep::Failed(Err(e)),
            };
            self.reply_bytes += n;
            if n == 0 {
                return match self.parser.finish() {
                    Ok(_) => ReplyStep::Done { reusable: false },
                    Err(e) => ReplyStep::Failed(Ok(e)),
                };
            }
            let mut at = 0;
            while at < n {
                let fed = match self.parser.feed(&buf[at..n]) {
                    Ok(f) => f,
                    Err(e) => return ReplyStep::Failed(Ok(e)),
                };
                at += fed.used;
                match fed.progress {
                    Reply::NeedMore => {}
                    Reply::Done => {
                        // Bytes after the reply (none were asked for): not reused.
                        let keep = at == n && self.parser.head().is_some_and(|h| h.keep_alive);
                        return ReplyStep::Done { reusable: keep };
                    }
                    Reply::Head => {
                        let Some(h) = self.parser.head() else {
                            continue;
                        };
                        // A success whose body is not wanted and has no end but the close (or
                        // is larger than the cap): done at the head, the connection not reused.
                        let endless = match h.framing {
                            Framing::UntilClose => true,
                            Framing::Length(n) => n > http::MAX_REPLY as u64,
                            Framing::Empty | Framing::Chunked => false,
                        };
                        if (200..300).contains(&h.status) && !self.want_body && endless {
                            return ReplyStep::Done { reusable: false };
                        }
                    }
                }
            }
        }
        ReplyStep::More
    }

    fn retry_fresh(&mut self, dns: &mut Resolver, now: Instant) {
        self.reused = false;
        self.connect(dns, now);
    }

    /// When `advance` must run even without readiness.
    pub fn deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Idle => None,
            State::Connecting(c) => Some(c.deadline()),
            _ => Some(self.deadline),
        }
    }
}

impl Machine for Client {
    type Output = Result<Response, HttpError>;
    fn register(&self, set: &mut PollSet, token: Token) {
        Client::register(self, set, token)
    }
    fn advance(&mut self, ready: Ready, dns: &mut Resolver, now: Instant) -> Option<Self::Output> {
        Client::advance(self, ready, dns, now)
    }
}

/// One POST within `timeout`, waiting for it (the one-shot commands `check` and `register`).
pub fn post_once(
    url: &Url,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
    tls: Option<&Arc<ClientConfig>>,
    want_body: bool,
) -> Result<Response, HttpError> {
    let mut dns = Resolver::system();
    let mut c = Client::new(url.clone(), tls.cloned(), false);
    let now = Instant::now();
    c.start(headers, body, want_body, &mut dns, now, now + timeout);
    super::net::run_alone(&mut c, &mut dns)
}

enum ReplyStep {
    More,
    Done {
        reusable: bool,
    },
    /// A socket error (Err) or a reply the parser refused (Ok).
    Failed(Result<ReplyError, io::Error>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    fn read_request(s: &mut TcpStream) -> Option<String> {
        let mut req = Vec::new();
        let mut b = [0u8; 4096];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut b).ok()?;
            if n == 0 {
                return None;
            }
            req.extend_from_slice(&b[..n]);
        }
        let text = String::from_utf8_lossy(&req).into_owned();
        let len: usize = text
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let head_end = req.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        while req.len() < head_end + len {
            let n = s.read(&mut b).ok()?;
            req.extend_from_slice(&b[..n]);
        }
        Some(String::from_utf8_lossy(&req).into_owned())
    }

    fn post(c: &mut Client, dns: &mut Resolver, body: &str) -> Result<Response, HttpError> {
        let now = Instant::now();
        c.start(
            &[("X-Test", "1")],
            body.as_bytes(),
            true,
            dns,
            now,
            now + Duration::from_secs(3),
        );
        super::super::net::run_alone(c, dns)
    }

    /// Three POSTs over one connection while the server keeps it; a fresh one after the server
    /// closes it (silently, between requests), and after a `Connection: close` reply.
    #[test]
    fn keeps_the_connection_and_replaces_a_closed_one() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let mut conns = Vec::new();
            // Connection 1: three requests, then closed by us without a word.
            let (mut s, _) = l.accept().unwrap();
            for i in 0..3 {
                let r = read_request(&mut s).unwrap();
                conns.push((1, r));
                let body = format!("{{\"n\":{i}}}");
                write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .unwrap();
            }
            drop(s);
            // Connection 2: one request, chunked reply, then Connection: close.
            let (mut s, _) = l.accept().unwrap();
            conns.push((2, read_request(&mut s).unwrap()));
            s.write_all(
                b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nno\r\n0\r\n\r\n",
            )
            .unwrap();
            conns.push((2, read_request(&mut s).unwrap()));
            s.write_all(b"HTTP/1.1 201 Created\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
            // Connection 3.
            let (mut s, _) = l.accept().unwrap();
            conns.push((3, read_request(&mut s).unwrap()));
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
            conns
        });
        let url = Url::parse(&format!("http://127.0.0.1:{port}/api"), &["http"]).unwrap();
        let mut c = Client::new(url, None, true);
        let mut dns = Resolver::system();
        for i in 0..3 {
            let r = post(&mut c, &mut dns, "{}").unwrap();
            assert_eq!(
                (r.status, r.body),
                (200, format!("{{\"n\":{i}}}").into_bytes())
            );
        }
        assert_eq!(c.connects, 1);
        std::thread::sleep(Duration::from_millis(50));
        let r = post(&mut c, &mut dns, "{\"a\":1}").unwrap();
        assert_eq!((r.status, &r.body[..]), (500, &b"no"[..]));
        let r = post(&mut c, &mut dns, "{}").unwrap();
        assert_eq!(r.status, 201);
        let r = post(&mut c, &mut dns, "{}").unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(c.connects, 3);
        let conns = server.join().unwrap();
        assert_eq!(conns.len(), 6);
        for (_, req) in &conns {
            assert!(req.starts_with("POST /api HTTP/1.1\r\n"), "{req}");
            assert!(
                req.contains("Connection: keep-alive\r\nX-Test: 1\r\n\r\n"),
                "{req}"
            );
        }
        assert!(conns[3].1.ends_with("{\"a\":1}"));
    }

    /// Without keep-alive: `Connection: close`, one connection per request.
    #[test]
    fn without_keep_alive_one_connection_per_request() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let mut reqs = Vec::new();
            for _ in 0..2 {
                let (mut s, _) = l.accept().unwrap();
                reqs.push(read_request(&mut s).unwrap());
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                    .unwrap();
            }
            reqs
        });
        let url = Url::parse(&format!("http://127.0.0.1:{port}/"), &["http"]).unwrap();
        let mut c = Client::new(url, None, false);
        let mut dns = Resolver::system();
        assert_eq!(post(&mut c, &mut dns, "{}").unwrap().status, 200);
        assert_eq!(post(&mut c, &mut dns, "{}").unwrap().status, 200);
        assert_eq!(c.connects, 2);
        for r in server.join().unwrap() {
            assert!(r.contains("Connection: close\r\n"), "{r}");
        }
    }
}
