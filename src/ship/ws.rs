//! The WebSocket: the newest snapshot in real time, no backlog. Connected (TCP, TLS, handshake)
//! within the cycle's shipping budget; afterwards the socket is non-blocking and sits in the
//! agent's poll set, so pings are answered and server messages read (at most 64 KiB each, then
//! discarded) while the loop does other work. A send that cannot be flushed within HTTP_TIMEOUT
//! drops the connection; reconnects back off with jitter.
//!
//! Liveness: a ping every `PING_EVERY`; when nothing at all comes back within `PONG_WAIT` the
//! path is dead and the connection is dropped (with the kernel's keepalive and user timeout,
//! `sys::tcp`, as the second line). Pong replies are bounded: a ping read while our writes are
//! blocked stops reading until its pong is out, so at most one pong ever waits.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::tls::ClientConfig;
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::{Error as WsError, Message, WebSocket};

use super::dns::Resolver;
use super::net::{self, Conn, Connector, Machine, Progress};
use super::{http, wskey};
use super::{redact, Backoff};
use crate::config::{Secret, Url};
use crate::sys::poll::{PollSet, Ready, Token, Want};

/// A ping goes out this often (every second cycle at the default 5 s)...
const PING_EVERY: Duration = Duration::from_secs(10);
/// ...and the connection is given up when nothing at all came back this long after it: with the
/// ping interval, a dead path is noticed within 25 s.
const PONG_WAIT: Duration = Duration::from_secs(15);
/// A connection that lasted this long resets the reconnect backoff.
const STABLE: Duration = Duration::from_secs(60);
/// The largest server message read (and thrown away).
const MAX_MESSAGE: usize = 64 * 1024;
/// The most bytes waiting to be sent: a larger snapshot could never be sent (config.rs refuses
/// a DEVICE_TABLE_SIZE whose snapshot could be larger).
pub const MAX_SEND: usize = 16 << 20;

/// The WebSocket: connection state, the newest snapshot waiting, reconnect backoff.
pub struct Ws {
    url: Url,
    key: Option<Secret>,
    timeout: Duration,
    tls: Option<Arc<ClientConfig>>,
    sock: Option<WebSocket<Conn>>,
    /// A connection being made (TCP, TLS, the upgrade), until its deadline.
    connecting: Option<Handshake>,
    up_since: Instant,
    /// When the next ping is due.
    next_ping: Instant,
    /// A ping went out and nothing came back since: the connection is dead at this time.
    pong_due: Option<Instant>,
    /// A ping arrived while our writes were blocked: its pong waits in tungstenite, and reading
    /// stops until the socket takes it, so a server that floods pings and never reads gets one
    /// pong queued, not one per ping.
    read_paused: bool,
    /// The last reason a connect failed, to tell a new one from a repeat.
    last_reason: String,
    /// A frame is queued but not flushed yet, since then (seq of the snapshot, if any).
    pending: Option<(Instant, Option<u64>)>,
    backoff: Backoff,
    retry_at: Option<Instant>,
    /// Since when the connection is down and how many attempts failed (for logs and events).
    down: Option<(Instant, u64)>,
    /// This cycle's snapshot, sent after a (re)connect within the same cycle.
    latest: Option<(u64, String)>,
    /// Counters since the last summary.
    pub stats: Stats,
    /// Transitions for the debug events: (event, detail).
    pub events: Vec<(&'static str, String)>,
}

/// WebSocket counters.
#[derive(Default, Clone, Copy)]
pub struct Stats {
    /// Messages sent.
    pub sent: u64,
    /// Snapshots not sent (the cycle ended first, or the previous message was still going out).
    pub skipped: u64,
    /// Connections made.
    pub connects: u64,
}

impl Ws {
    /// A WebSocket to `url`, connected by the loop.
    pub fn new(
        url: Url,
        key: Option<Secret>,
        timeout: Duration,
        tls: Option<Arc<ClientConfig>>,
        now: Instant,
    ) -> Ws {
        Ws {
            url,
            key,
            timeout,
            tls,
            sock: None,
            connecting: None,
            up_since: now,
            next_ping: now,
            pong_due: None,
            read_paused: false,
            last_reason: String::new(),
            pending: None,
            backoff: Backoff::new(),
            retry_at: None,
            down: None,
            latest: None,
            stats: Stats::default(),
            events: Vec::new(),
        }
    }

    /// True while connected.
    pub fn is_up(&self) -> bool {
        self.sock.is_some()
    }

    /// Whether the settings are the same (a reload that keeps them keeps the connection).
    pub fn same_settings(&self, url: &Url, key: Option<&Secret>, timeout: Duration) -> bool {
        self.url.text == url.text
            && self.key.as_ref().map(Secret::expose) == key.map(Secret::expose)
            && self.timeout == timeout
    }

    /// Whether a connection attempt is due.
    pub fn wants_connect(&self, now: Instant) -> bool {
        self.sock.is_none() && self.connecting.is_none() && self.retry_at.map_or(true, |t| now >= t)
    }

    /// The fd to poll: the connection being made, or the connection (readable unless reading
    /// waits for a pong to go out, writable while a frame waits to be flushed).
    pub fn interest(&self) -> Option<(BorrowedFd<'_>, Want)> {
        if let Some(h) = &self.connecting {
            return h.interest();
        }
        let s = self.sock.as_ref()?;
        let write = self.pending.is_some() || s.get_ref().wants_write() || self.read_paused;
        Some((
            s.get_ref().as_fd(),
            Want {
                read: !self.read_paused,
                write,
            },
        ))
    }

    /// The next time `tick` has something to do: the connect's deadline, a reconnect, a stalled
    /// send or an idle ping.
    pub fn next_deadline(&self) -> Option<Instant> {
        if let Some(h) = &self.connecting {
            return Some(h.deadline());
        }
        if self.sock.is_none() {
            return Some(self.retry_at.unwrap_or_else(Instant::now));
        }
        let ping = match self.pong_due {
            Some(due) => due.min(self.next_ping),
            None => self.next_ping,
        };
        Some(match self.pending {
            Some((since, _)) => ping.min(since + self.timeout),
            None => ping,
        })
    }

    /// Registers its socket and deadline with the loop.
    pub fn register(&self, set: &mut PollSet, token: Token) {
        if let Some((fd, want)) = self.interest() {
            set.register(token, fd, want);
        }
        set.wake_at_opt(self.next_deadline());
    }

    /// One turn of the loop: readiness, then timers (a connect that is due starts here).
    pub fn advance(&mut self, ready: Ready, dns: &mut Resolver, now: Instant) {
        if let Some(mut h) = self.connecting.take() {
            match h.advance(ready, dns, now) {
                None => self.connecting = Some(h),
                Some(r) => self.connected(r, h.started, now),
            }
            return;
        }
        if ready.any() {
            self.on_ready(ready.readable, ready.writable, ready.error, now);
        }
        self.tick(now);
        if self.wants_connect(now) {
            match Handshake::start(self, dns, now, now + self.timeout) {
                Ok(mut h) => match h.advance(Ready::default(), dns, now) {
                    None => self.connecting = Some(h),
                    Some(r) => self.connected(r, now, now),
                },
                Err(e) => self.connected(Err(e), now, now),
            }
        }
    }

    /// Sends this cycle's snapshot, or keeps it for a connect later in the cycle.
    pub fn send(&mut self, seq: u64, text: &str, now: Instant) {
        if self.sock.is_none() {
            self.latest = Some((seq, text.to_owned()));
            return;
        }
        self.latest = None;
        self.write(Message::text(text), Some(seq), now);
    }

    /// The cycle's shipping ended: an unsent snapshot is not kept (real time means newest only).
    pub fn end_cycle(&mut self) {
        if self.latest.take().is_some() {
            self.stats.skipped += 1;
        }
    }

    fn write(&mut self, msg: Message, seq: Option<u64>, now: Instant) {
        let Some(ws) = self.sock.as_mut() else {
            return;
        };
        if self.pending.is_some() {
            // The previous frame is still on its way: this one is skipped, not queued.
            if seq.is_some() {
                self.stats.skipped += 1;
                debug!("WebSocket: previous message not flushed yet, skipping this snapshot");
            }
            return;
        }
        match ws.write(msg).and_then(|()| ws.flush()) {
            Ok(()) => self.sent(seq),
            Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                self.pending = Some((now, seq));
            }
            Err(e) => self.lost(&format!("send failed: {e}"), now),
        }
    }

    fn sent(&mut self, seq: Option<u64>) {
        if let Some(seq) = seq {
            self.stats.sent += 1;
            debug!("WebSocket: Real-time data sent successfully (seq {seq})");
        }
    }

    /// Handles poll readiness: flushes pending output, reads and discards server messages.
    pub fn on_ready(&mut self, readable: bool, writable: bool, error: bool, now: Instant) {
        if self.sock.is_none() {
            return;
        }
        if writable || error {
            self.flush(now);
        }
        if readable || error {
            self.read(now);
        }
    }

    fn flush(&mut self, now: Instant) {
        let Some(ws) = self.sock.as_mut() else {
            return;
        };
        match ws.flush() {
            Ok(()) => {
                self.read_paused = false;
                if let Some((_, seq)) = self.pending.take() {
                    self.sent(seq);
                }
            }
            Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                if self.pending.is_none() {
                    self.pending = Some((now, None));
                }
            }
            Err(e) => self.lost(&format!("send failed: {e}"), now),
        }
    }

    fn read(&mut self, now: Instant) {
        for _ in 0..32 {
            if self.read_paused {
                return;
            }
            let Some(ws) = self.sock.as_mut() else {
                return;
            };
            let msg = ws.read();
            if msg.is_ok() {
                // Anything from the server shows the path works.
                self.pong_due = None;
            }
            match msg {
                Ok(Message::Text(t)) => {
                    debug!(
                        "WebSocket: ignoring a {} byte message from the server",
                        t.len()
                    )
                }
                Ok(Message::Binary(b)) => {
                    debug!(
                        "WebSocket: ignoring a {} byte binary message from the server",
                        b.len()
                    )
                }
                Ok(Message::Close(c)) => {
                    let why = c
                        .map(|c| format!("code {}", u16::from(c.code)))
                        .unwrap_or_else(|| "no code".into());
                    return self.lost(&format!("the server closed the connection ({why})"), now);
                }
                Ok(Message::Ping(_)) => {
                    // tungstenite queued the pong; until it is out, read nothing more.
                    self.flush(now);
                    if self.pending.is_some() {
                        self.read_paused = true;
                        return;
                    }
                }
                Ok(_) => {} // pong, raw frame
                Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(WsError::ConnectionClosed) | Err(WsError::AlreadyClosed) => {
                    return self.lost("the server closed the connection", now)
                }
                Err(WsError::Capacity(e)) => {
                    return self.lost(&format!("server message too large ({e})"), now)
                }
                Err(e) => return self.lost(&format!("read failed: {e}"), now),
            }
        }
        // A pong or close reply may be waiting for the socket.
        self.flush(now);
    }

    /// Timers: a send stalled past the timeout or a ping without any answer drops the
    /// connection; a ping goes out every `PING_EVERY`.
    pub fn tick(&mut self, now: Instant) {
        if self.sock.is_none() {
            return;
        }
        if let Some((since, _)) = self.pending {
            if now >= since + self.timeout {
                let t = self.timeout.as_secs();
                return self.lost(
                    &format!("stalled: a message could not be sent within {t} s"),
                    now,
                );
            }
        }
        if self.pong_due.is_some_and(|due| now >= due) {
            let t = PONG_WAIT.as_secs();
            return self.lost(&format!("no answer to a ping within {t} s"), now);
        }
        if now >= self.next_ping {
            self.next_ping = now + PING_EVERY;
            if self.pending.is_none() {
                self.pong_due.get_or_insert(now + PONG_WAIT);
                self.write(Message::Ping(Vec::new().into()), None, now);
            }
        }
    }

    fn lost(&mut self, reason: &str, now: Instant) {
        if let Some(mut ws) = self.sock.take() {
            let _ = ws.close(None);
            let _ = ws.flush();
        }
        if self.pending.take().is_some_and(|(_, s)| s.is_some()) {
            self.stats.skipped += 1;
        }
        self.read_paused = false;
        self.pong_due = None;
        if now.duration_since(self.up_since) >= STABLE {
            self.backoff.reset();
        }
        let delay = self.backoff.next_delay();
        self.retry_at = Some(now + delay);
        self.down = Some((now, 0));
        warn!(
            "WebSocket: connection lost: {reason}; reconnecting in {} s",
            crate::decimal::Fixed(delay.as_secs_f64(), 1)
        );
        self.events.push(("deliveryFailed", reason.to_owned()));
    }

    /// A connect attempt ended: up (this cycle's snapshot goes out if it still waits), or
    /// failed (logged once per outage, retried with backoff).
    fn connected(&mut self, result: Result<WebSocket<Conn>, String>, now: Instant, now2: Instant) {
        match result {
            Ok(ws) => {
                self.sock = Some(ws);
                self.last_reason.clear();
                self.up_since = now2;
                self.next_ping = now2 + PING_EVERY;
                self.pong_due = None;
                self.read_paused = false;
                self.stats.connects += 1;
                match self.down.take() {
                    Some((since, attempts)) => {
                        let failed = match attempts {
                            0 => String::new(),
                            n => format!(", {n} failed attempts"),
                        };
                        info!(
                            "WebSocket: connected to {} again after {} s{failed}",
                            self.url,
                            now.duration_since(since).as_secs()
                        );
                        self.events.push((
                            "deliveryRecovered",
                            format!(
                                "after {} s, {attempts} failed attempts",
                                now.duration_since(since).as_secs()
                            ),
                        ));
                    }
                    None => info!("WebSocket: connected to {}", self.url),
                }
                if let Some((seq, text)) = self.latest.take() {
                    self.write(Message::text(text), Some(seq), now2);
                }
            }
            Err(reason) => {
                let reason = redact(&reason, self.key.as_ref());
                let delay = self.backoff.next_delay();
                self.retry_at = Some(now2 + delay);
                let changed = self.last_reason != reason;
                match &mut self.down {
                    Some((_, n)) if *n > 0 && changed => {
                        *n += 1;
                        warn!(
                            "WebSocket: still cannot connect ({n} attempts), now: {reason}; next try in {} s",
                            crate::decimal::Fixed(delay.as_secs_f64(), 1)
                        );
                        self.events.push(("deliveryFailed", reason.clone()));
                    }
                    Some((_, n)) if *n > 0 => {
                        *n += 1;
                        debug!(
                            "WebSocket: still cannot connect ({n} attempts): {reason}; next try in {} s",
                            crate::decimal::Fixed(delay.as_secs_f64(), 1)
                        );
                    }
                    _ => {
                        let since = self.down.map_or(now, |(s, _)| s);
                        self.down = Some((since, 1));
                        warn!(
                            "WebSocket: cannot connect to {}: {reason}; retrying in {} s",
                            self.url,
                            crate::decimal::Fixed(delay.as_secs_f64(), 1)
                        );
                        self.events.push(("deliveryFailed", reason.clone()));
                    }
                }
                self.last_reason.clone_from(&reason);
            }
        }
    }

    /// The whole connect (TCP, TLS, upgrade) waiting for it, before `deadline` (`check` and
    /// tests; the agent's loop uses `advance`).
    fn handshake(
        &self,
        deadline: Instant,
        tls: Option<&Arc<ClientConfig>>,
    ) -> Result<WebSocket<Conn>, String> {
        let mut dns = Resolver::system();
        let now = Instant::now();
        let mut h = Handshake::start_with(self, tls, &mut dns, now, deadline)?;
        net::run_alone(&mut h, &mut dns)
    }
    /// `check`: connect, send one message, close. Blocking, within `timeout`.
    pub fn check_once(
        &mut self,
        text: &str,
        tls: Option<&Arc<ClientConfig>>,
    ) -> Result<(), String> {
        let deadline = Instant::now() + self.timeout;
        let mut ws = self.handshake(deadline, tls)?;
        ws.get_mut().set_deadline(Some(deadline));
        ws.send(Message::text(text))
            .map_err(|e| format!("send failed: {e}"))?;
        let _ = ws.close(None);
        let _ = ws.flush();
        Ok(())
    }
}

enum Stage {
    Connect(Box<Connector>),
    Send {
        conn: Box<Conn>,
        off: usize,
    },
    Receive {
        conn: Box<Conn>,
        reply: Box<http::ReplyParser>,
    },
    Over,
}

/// One connect of the WebSocket as a state machine: the connection (`net::Connector`), the
/// upgrade request out, the reply's head in and checked; all before one deadline.
pub struct Handshake {
    host: String,
    key: String,
    request: Vec<u8>,
    stage: Stage,
    deadline: Instant,
    started: Instant,
}

impl Handshake {
    fn start(
        ws: &Ws,
        dns: &mut Resolver,
        now: Instant,
        deadline: Instant,
    ) -> Result<Handshake, String> {
        Handshake::start_with(ws, ws.tls.as_ref(), dns, now, deadline)
    }

    fn start_with(
        ws: &Ws,
        tls: Option<&Arc<ClientConfig>>,
        dns: &mut Resolver,
        now: Instant,
        deadline: Instant,
    ) -> Result<Handshake, String> {
        // The opening handshake (RFC 6455 section 4.1).
        let key = wskey::new_key();
        let path = ws.url.request_target();
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\nUser-Agent: netmon-agent/{}\r\n",
            http::host_header(&ws.url),
            crate::VERSION
        );
        if let Some(k) = &ws.key {
            // A field value: visible ASCII, spaces, tabs and obs-text, never CR or LF.
            let v = k.expose();
            if !v.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f)) {
                return Err("API_KEY cannot be sent in a header".to_string());
            }
            req.push_str("Authorization: Bearer ");
            req.push_str(v);
            req.push_str("\r\n");
        }
        req.push_str("\r\n");
        Ok(Handshake {
            host: ws.url.host.clone(),
            key,
            request: req.into_bytes(),
            stage: Stage::Connect(Box::new(Connector::start(&ws.url, tls, dns, now, deadline))),
            deadline,
            started: now,
        })
    }

    fn interest(&self) -> Option<(BorrowedFd<'_>, Want)> {
        match &self.stage {
            Stage::Connect(c) => c.interest(),
            Stage::Send { conn, .. } => Some((conn.as_fd(), Want::WRITE)),
            Stage::Receive { conn, .. } => Some((
                conn.as_fd(),
                Want {
                    read: true,
                    write: conn.wants_write(),
                },
            )),
            Stage::Over => None,
        }
    }

    fn deadline(&self) -> Instant {
        match &self.stage {
            Stage::Connect(c) => c.deadline(),
            _ => self.deadline,
        }
    }

    /// Checks the reply's head and makes the WebSocket (`early`: frames that came with the
    /// head, kept for it).
    fn finish(
        &self,
        conn: Conn,
        reply: &http::ReplyParser,
        early: Vec<u8>,
    ) -> Result<WebSocket<Conn>, String> {
        let host = &self.host;
        let Some(head) = reply.head() else {
            return Err(format!("{host}: handshake failed: no reply"));
        };
        let status = head.status;
        if status != 101 {
            return Err(if status == 401 || status == 403 {
                format!("API key rejected (HTTP {status} on the WebSocket handshake)")
            } else {
                format!("{host}: the handshake was answered with HTTP {status}")
            });
        }
        let has_token = |name: &str, token: &str| {
            reply.field(name).is_some_and(|v| {
                v.split(|&b| b == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
            })
        };
        let bad = if !has_token("upgrade", "websocket") {
            Some("no 'Upgrade: websocket' in the reply")
        } else if !has_token("connection", "upgrade") {
            Some("no 'Connection: Upgrade' in the reply")
        } else if reply.field("sec-websocket-accept") != Some(wskey::accept(&self.key).as_bytes()) {
            Some("wrong Sec-WebSocket-Accept in the reply")
        } else if reply.field("sec-websocket-protocol").is_some() {
            Some("the server chose a subprotocol that was not asked for")
        } else {
            None
        };
        if let Some(m) = bad {
            return Err(format!("{host}: handshake failed: {m}"));
        }
        // Frames the server sent right after its reply were read with it.
        let buf = early;
        let cfg = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0)
            .max_write_buffer_size(MAX_SEND)
            .max_message_size(Some(MAX_MESSAGE))
            .max_frame_size(Some(MAX_MESSAGE));
        Ok(WebSocket::from_partially_read(
            conn,
            buf,
            Role::Client,
            Some(cfg),
        ))
    }
}

impl Machine for Handshake {
    type Output = Result<WebSocket<Conn>, String>;

    fn register(&self, set: &mut PollSet, token: Token) {
        if let Some((fd, want)) = self.interest() {
            set.register(token, fd, want);
        }
        set.wake_at(self.deadline());
    }

    fn advance(&mut self, ready: Ready, dns: &mut Resolver, now: Instant) -> Option<Self::Output> {
        let host = self.host.clone();
        let io_err = |e: io::Error| format!("{host}: handshake failed: {e}");
        let timed_out = || format!("{host}: timed out in the WebSocket handshake");
        loop {
            match std::mem::replace(&mut self.stage, Stage::Over) {
                Stage::Over => return Some(Err(timed_out())),
                Stage::Connect(mut c) => match c.advance(ready, dns, now) {
                    Progress::Pending => {
                        self.stage = Stage::Connect(c);
                        return None;
                    }
                    Progress::Done(conn) => {
                        self.stage = Stage::Send {
                            conn: Box::new(conn),
                            off: 0,
                        }
                    }
                    Progress::Failed(e) => return Some(Err(e.to_string())),
                },
                Stage::Send { mut conn, mut off } => {
                    let r = loop {
                        if off == self.request.len() {
                            break conn.flush();
                        }
                        match conn.write(&self.request[off..]) {
                            Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                            Ok(n) => off += n,
                            Err(e) => break Err(e),
                        }
                    };
                    match r {
                        Ok(()) => {
                            self.stage = Stage::Receive {
                                conn,
                                reply: Box::new(http::ReplyParser::new(0)),
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock && now < self.deadline => {
                            self.stage = Stage::Send { conn, off };
                            return None;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            return Some(Err(timed_out()))
                        }
                        Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                            return Some(Err(timed_out()))
                        }
                        Err(e) => return Some(Err(io_err(e))),
                    }
                }
                Stage::Receive {
                    mut conn,
                    mut reply,
                } => {
                    let mut buf = [0u8; 4096];
                    // Bounded per turn; the parser's cap ends a reply that never does.
                    for _ in 0..32 {
                        let n = match conn.read(&mut buf) {
                            Ok(n) => n,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                                break;
                            }
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                                return Some(Err(timed_out()))
                            }
                            Err(e) => return Some(Err(io_err(e))),
                        };
                        let bad = |m: http::ReplyError| format!("{host}: handshake failed: {m}");
                        if n == 0 {
                            return Some(Err(match reply.finish() {
                                Ok(_) => format!("{host}: handshake failed: no reply"),
                                Err(e) => bad(e),
                            }));
                        }
                        match reply.feed(&buf[..n]) {
                            Err(e) => return Some(Err(bad(e))),
                            Ok(f) if f.progress == http::Progress::NeedMore => {}
                            Ok(f) => {
                                let early = buf[f.used..n].to_vec();
                                return Some(self.finish(*conn, &reply, early));
                            }
                        }
                    }
                    if now >= self.deadline {
                        return Some(Err(timed_out()));
                    }
                    self.stage = Stage::Receive { conn, reply };
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    /// A one-connection server on 127.0.0.1 that reads the request head, answers with
    /// `reply(key)` (key: the client's Sec-WebSocket-Key) and returns the request.
    fn serve(reply: fn(&str) -> Vec<u8>) -> (u16, std::thread::JoinHandle<String>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut req = Vec::new();
            let mut b = [0u8; 1024];
            while !req.ends_with(b"\r\n\r\n") {
                let n = s.read(&mut b).unwrap();
                assert!(n > 0);
                req.extend_from_slice(&b[..n]);
            }
            let req = String::from_utf8(req).unwrap();
            let key = req
                .lines()
                .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                .unwrap_or("")
                .to_owned();
            s.write_all(&reply(&key)).unwrap();
            std::thread::sleep(Duration::from_millis(200));
            req
        });
        (port, t)
    }

    fn client(port: u16, key: Option<&str>) -> Ws {
        let url = Url::parse(&format!("ws://127.0.0.1:{port}/ws?x=1"), &["ws", "wss"]).unwrap();
        Ws::new(
            url,
            key.map(|k| Secret::new(k.into())),
            Duration::from_secs(5),
            None,
            Instant::now(),
        )
    }

    fn ok_reply(key: &str) -> Vec<u8> {
        let mut r = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            wskey::accept(key)
        )
        .into_bytes();
        // A text frame "hi" right behind the head, in the same write.
        r.extend_from_slice(&[0x81, 2, b'h', b'i']);
        r
    }

    #[test]
    fn handshake_sends_the_headers_and_keeps_early_frames() {
        let (port, t) = serve(ok_reply);
        let c = client(port, Some("k3y"));
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut ws = c.handshake(deadline, None).unwrap();
        ws.get_mut().set_deadline(Some(deadline));
        assert_eq!(ws.read().unwrap(), Message::text("hi"));
        let req = t.join().unwrap();
        assert!(req.starts_with("GET /ws?x=1 HTTP/1.1\r\n"), "{req}");
        for h in [
            format!("Host: 127.0.0.1:{port}\r\n"),
            "Upgrade: websocket\r\n".into(),
            "Connection: Upgrade\r\n".into(),
            "Sec-WebSocket-Version: 13\r\n".into(),
            "Authorization: Bearer k3y\r\n".into(),
            format!("User-Agent: netmon-agent/{}\r\n", crate::VERSION),
        ] {
            assert!(req.contains(&h), "{h} missing in {req}");
        }
    }

    #[test]
    fn handshake_failures_are_named() {
        let deadline = || Instant::now() + Duration::from_secs(5);
        let err = |reply: fn(&str) -> Vec<u8>| {
            let (port, t) = serve(reply);
            let e = client(port, None)
                .handshake(deadline(), None)
                .err()
                .unwrap();
            t.join().unwrap();
            e
        };
        let e = err(|_| b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n".to_vec());
        assert_eq!(e, "API key rejected (HTTP 401 on the WebSocket handshake)");
        let e = err(|_| b"HTTP/1.1 404 Not Found\r\n\r\n".to_vec());
        assert_eq!(e, "127.0.0.1: the handshake was answered with HTTP 404");
        let e = err(|_| {
            b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n".to_vec()
        });
        assert!(e.contains("wrong Sec-WebSocket-Accept"), "{e}");
        let e = err(|k| {
            format!(
                "HTTP/1.1 101 OK\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                wskey::accept(k)
            )
            .into_bytes()
        });
        assert!(e.contains("no 'Upgrade: websocket'"), "{e}");
        let e = err(|_| b"SSH-2.0-OpenSSH\r\n\r\n".to_vec());
        assert!(e.contains("handshake failed: the reply is not HTTP"), "{e}");
        // A key that would break the header is refused before connecting.
        let c = client(1, Some("a\r\nX-Evil: 1"));
        let e = c.handshake(deadline(), None).err().unwrap();
        assert_eq!(e, "API_KEY cannot be sent in a header");
    }

    #[test]
    fn a_ping_without_answer_drops_the_connection() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut req = Vec::new();
            let mut b = [0u8; 1024];
            while !req.ends_with(b"\r\n\r\n") {
                let n = s.read(&mut b).unwrap();
                req.extend_from_slice(&b[..n]);
            }
            let req = String::from_utf8(req).unwrap();
            let key = req
                .lines()
                .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                .unwrap()
                .to_owned();
            s.write_all(&ok_reply(&key)[..]).unwrap();
            // The client's first frame: a masked ping (FIN + opcode 9, mask bit, no payload).
            let mut frame = [0u8; 6];
            s.read_exact(&mut frame).unwrap();
            // Hold the connection, silent, until the test is done.
            let _ = rx.recv();
            frame
        });
        let mut c = client(port, None);
        let t0 = Instant::now();
        let up = c.handshake(t0 + Duration::from_secs(5), None);
        c.connected(up, t0, Instant::now());
        assert!(c.is_up());
        let s = Duration::from_secs;
        assert!(c.next_deadline().unwrap() <= Instant::now() + PING_EVERY);
        c.tick(t0 + s(11));
        assert!(c.is_up());
        assert_eq!(c.next_deadline(), Some(t0 + s(11) + PING_EVERY));
        // Nothing back within PONG_WAIT of the first ping: dropped.
        c.tick(t0 + s(21));
        assert!(c.is_up());
        c.tick(t0 + s(26));
        assert!(!c.is_up());
        assert_eq!(
            c.events.last().unwrap(),
            &(
                "deliveryFailed",
                "no answer to a ping within 15 s".to_string()
            )
        );
        tx.send(()).unwrap();
        assert_eq!(&server.join().unwrap()[..2], &[0x89, 0x80]);
    }
}
