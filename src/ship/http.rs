//! HTTP/1.1 replies from the platform, read incrementally and within fixed bounds.
//!
//! `ReplyParser` is fed the bytes as they arrive (`feed`), never blocks and never looks at a byte
//! twice: the head is scanned for its end once and parsed once (httparse), a chunked body is
//! decoded by a state machine as it streams in. Every byte fed counts against one cap per reply
//! (`MAX_REPLY`), interim `1xx` replies included, so a server can neither grow our memory nor keep
//! one call reading forever. What is kept: the final head (at most `MAX_HEAD`) and, when asked
//! for, the start of the body (at most the `keep` given to `new`).
//!
//! Nothing a server sends is ever part of an error message; the reason phrase is available
//! only as a bounded, printable string for callers that mask it before logging (`redact`).

use std::fmt;
use std::io;

use super::net::ConnectError;
use crate::config::{Secret, Url};

/// Bytes read for one reply at most: interim 1xx replies, the head and the body framing.
pub const MAX_REPLY: usize = 64 * 1024;
/// The largest head (status line and header fields) of one reply.
pub const MAX_HEAD: usize = 8 * 1024;
/// Header fields in one head at most.
const MAX_FIELDS: usize = 64;
/// Characters of the reason phrase kept (printable ASCII only).
pub const MAX_REASON: usize = 32;
/// Body bytes `post` keeps when the caller wants the body (a key registration reply).
pub const MAX_BODY_KEPT: usize = 16 * 1024;

/// Where a reply stands after the bytes fed so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// All bytes were used; the reply goes on.
    NeedMore,
    /// The final head is complete (`head()`), a body follows; `used` stops right after the head.
    Head,
    /// The reply is complete; `used` stops right after it (for a 101, where the new protocol
    /// starts).
    Done,
}

/// What one `feed` did: how many bytes it used and where the reply stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fed {
    /// Bytes of the input taken.
    pub used: usize,
    /// Where the reply stands.
    pub progress: Progress,
}

/// Why a reply cannot be read. None of these carries bytes the server sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyError {
    /// More than `MAX_REPLY` bytes (interim replies included) without the reply ending.
    TooLarge,
    /// A head longer than `MAX_HEAD`.
    HeadTooLarge,
    /// The head is not an HTTP/1.x reply (httparse's reason).
    NotHttp(&'static str),
    /// The body's framing is broken (a bad chunk size line, Content-Length, ...).
    BadFraming(&'static str),
    /// The connection ended before the reply did.
    Closed {
        /// Part of a reply had arrived.
        got_bytes: bool,
    },
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::TooLarge => write!(f, "the reply is over {} KiB", MAX_REPLY / 1024),
            ReplyError::HeadTooLarge => {
                write!(f, "the reply's head is over {} KiB", MAX_HEAD / 1024)
            }
            ReplyError::NotHttp(why) => write!(f, "the reply is not HTTP ({why})"),
            ReplyError::BadFraming(why) => write!(f, "the reply's body is malformed ({why})"),
            ReplyError::Closed { got_bytes: false } => {
                write!(f, "the connection was closed without a reply")
            }
            ReplyError::Closed { got_bytes: true } => {
                write!(f, "the connection was closed in the middle of the reply")
            }
        }
    }
}

/// How the body of a reply ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (1xx, 204, 304).
    Empty,
    /// Content-Length bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// At the end of the connection (no length given, or a transfer coding other than chunked).
    UntilClose,
}

/// The final head of a reply, reduced to what the agent uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The status code.
    pub status: u16,
    /// HTTP/1.1 (true) or HTTP/1.0.
    pub http11: bool,
    /// The reason phrase: printable ASCII only, at most `MAX_REASON` characters. Server text:
    /// mask it (`redact`) before it goes anywhere.
    pub reason: String,
    /// `Retry-After` in seconds (the delta-seconds form; saturating), when sent.
    pub retry_after: Option<u64>,
    /// How the body ends.
    pub framing: Framing,
    /// Whether the server keeps the connection open after this reply.
    pub keep_alive: bool,
    /// Length of the final head in bytes.
    pub len: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// In the hex size; `digits` read so far.
    Size {
        size: u64,
        digits: u8,
    },
    /// After the size: whitespace or extensions until the line ends.
    Ext {
        size: u64,
    },
    /// CR seen at the end of the size line.
    SizeLf {
        size: u64,
    },
    Data {
        left: u64,
    },
    DataCr,
    DataLf,
    /// At the start of a trailer line (after the last chunk).
    TrailerStart,
    TrailerLine,
    TrailerEndLf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a head; `eol` tracks line ends to find the empty line that ends it.
    Head {
        eol: u8,
    },
    Length {
        left: u64,
    },
    Chunked(Chunk),
    UntilClose,
    Done,
    Failed(ReplyError),
}

/// An incremental, bounded reader of one HTTP/1.x reply (see the module doc). `reset` makes it
/// ready for the next reply on a kept-alive connection without allocating.
pub struct ReplyParser {
    keep: usize,
    taken: usize,
    state: State,
    head_buf: Vec<u8>,
    head: Option<Head>,
    body: Vec<u8>,
}

fn hex(b: u8) -> Option<u64> {
    (b as char).to_digit(16).map(u64::from)
}

impl ReplyParser {
    /// A parser that keeps up to `keep` bytes of the body (0: the body is framed and skipped).
    pub fn new(keep: usize) -> ReplyParser {
        ReplyParser {
            keep,
            taken: 0,
            state: State::Head { eol: 0 },
            head_buf: Vec::with_capacity(1024),
            head: None,
            body: Vec::new(),
        }
    }

    /// Ready for the next reply (the buffers keep their capacity), for kept-alive connections.
    pub fn reset(&mut self) {
        self.taken = 0;
        self.state = State::Head { eol: 0 };
        self.head_buf.clear();
        self.head = None;
        self.body.clear();
    }

    /// The final head, once `feed` returned `Head` or `Done`.
    pub fn head(&self) -> Option<&Head> {
        self.head.as_ref()
    }

    /// The body kept so far (de-chunked, at most `keep` bytes).
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The value of the first header field `name` (any case) of the final head, trimmed.
    /// Server text: compare it, never log it.
    pub fn field(&self, name: &str) -> Option<&[u8]> {
        self.head.as_ref()?;
        let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
        let mut resp = httparse::Response::new(&mut fields);
        resp.parse(&self.head_buf).ok()?;
        let value: &[u8] = resp
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))?
            .value;
        Some(value.trim_ascii())
    }

    /// Feeds the next bytes of the reply. Stops early at the end of the final head (`Head`)
    /// and at the end of the reply (`Done`); feed the rest again to go on. After an error the
    /// parser stays failed until `reset`.
    pub fn feed(&mut self, input: &[u8]) -> Result<Fed, ReplyError> {
        if let State::Failed(e) = self.state {
            return Err(e);
        }
        let r = self.feed_inner(input);
        if let Err(e) = r {
            self.state = State::Failed(e);
        }
        r
    }

    fn feed_inner(&mut self, input: &[u8]) -> Result<Fed, ReplyError> {
        let mut i = 0;
        loop {
            if self.state == State::Done {
                return Ok(Fed {
                    used: i,
                    progress: Progress::Done,
                });
            }
            if i == input.len() {
                return Ok(Fed {
                    used: i,
                    progress: Progress::NeedMore,
                });
            }
            if self.taken >= MAX_REPLY {
                return Err(ReplyError::TooLarge);
            }
            // Never look past the cap.
            let end = input.len().min(i + (MAX_REPLY - self.taken));
            let (used, head_done) = self.step(&input[i..end])?;
            i += used;
            self.taken += used;
            if head_done {
                let progress = if self.state == State::Done {
                    Progress::Done
                } else {
                    Progress::Head
                };
                return Ok(Fed { used: i, progress });
            }
        }
    }

    /// Consumes bytes of `input` (not empty) in the current state: (bytes used, whether a
    /// final head just completed).
    fn step(&mut self, input: &[u8]) -> Result<(usize, bool), ReplyError> {
        match self.state {
            State::Head { mut eol } => {
                for (n, &b) in input.iter().enumerate() {
                    if self.head_buf.len() == MAX_HEAD {
                        return Err(ReplyError::HeadTooLarge);
                    }
                    self.head_buf.push(b);
                    // eol: 0 in a line, 1 after LF, 2 after LF CR; LF in state 1 or 2 ends the head.
                    eol = match (b, eol) {
                        (b'\n', 1 | 2) => {
                            let final_head = self.end_of_head()?;
                            return Ok((n + 1, final_head));
                        }
                        (b'\n', _) => 1,
                        (b'\r', 1) => 2,
                        (b'\r', e) => e,
                        _ => 0,
                    };
                }
                self.state = State::Head { eol };
                Ok((input.len(), false))
            }
            State::Length { left } => {
                let take = (input.len() as u64).min(left) as usize;
                self.keep_body(&input[..take]);
                self.state = if left == take as u64 {
                    State::Done
                } else {
                    State::Length {
                        left: left - take as u64,
                    }
                };
                Ok((take, false))
            }
            State::UntilClose => {
                self.keep_body(input);
                Ok((input.len(), false))
            }
            State::Chunked(Chunk::Data { left }) => {
                let take = (input.len() as u64).min(left) as usize;
                self.keep_body(&input[..take]);
                let left = left - take as u64;
                self.state = State::Chunked(if left == 0 {
                    Chunk::DataCr
                } else {
                    Chunk::Data { left }
                });
                Ok((take, false))
            }
            State::Chunked(c) => {
                let next = self.chunk_byte(c, input[0])?;
                self.state = next;
                Ok((1, false))
            }
            State::Done | State::Failed(_) => Ok((0, false)),
        }
    }

    /// One byte of chunked framing outside chunk data.
    fn chunk_byte(&self, c: Chunk, b: u8) -> Result<State, ReplyError> {
        let bad = |why| Err(ReplyError::BadFraming(why));
        let next = match (c, b) {
            (Chunk::Size { size, digits }, _) if hex(b).is_some() => {
                let size = size
                    .checked_mul(16)
                    .and_then(|s| s.checked_add(hex(b).unwrap_or(0)))
                    .filter(|_| digits < 16)
                    .ok_or(ReplyError::BadFraming("chunk size too large"))?;
                Chunk::Size {
                    size,
                    digits: digits + 1,
                }
            }
            (Chunk::Size { digits: 0, .. }, _) => return bad("chunk size missing"),
            (Chunk::Size { size, .. } | Chunk::Ext { size }, b'\r') => Chunk::SizeLf { size },
            (Chunk::Size { size, .. } | Chunk::Ext { size }, b'\n')
            | (Chunk::SizeLf { size }, b'\n') => return self.chunk_start(size),
            (Chunk::Size { size, .. }, b';' | b' ' | b'\t') => Chunk::Ext { size },
            (Chunk::Size { .. }, _) => return bad("bad chunk size"),
            (Chunk::Ext { size }, _) => Chunk::Ext { size },
            (Chunk::SizeLf { .. }, _) => return bad("CR without LF after a chunk size"),
            (Chunk::DataCr, b'\r') => Chunk::DataLf,
            (Chunk::DataCr | Chunk::DataLf, b'\n') => Chunk::Size { size: 0, digits: 0 },
            (Chunk::DataCr | Chunk::DataLf, _) => return bad("no line end after chunk data"),
            (Chunk::TrailerStart, b'\r') => Chunk::TrailerEndLf,
            (Chunk::TrailerStart | Chunk::TrailerEndLf, b'\n') => return Ok(State::Done),
            (Chunk::TrailerEndLf, _) => return bad("CR without LF after the trailer"),
            (Chunk::TrailerLine, b'\n') => Chunk::TrailerStart,
            (Chunk::TrailerStart | Chunk::TrailerLine, _) => Chunk::TrailerLine,
            (Chunk::Data { .. }, _) => unreachable!("chunk data is taken in bulk"),
        };
        Ok(State::Chunked(next))
    }

    /// After a chunk size line: the chunk's data, or the trailer after the last chunk. A
    /// chunk that cannot fit in what is left of the cap is refused at once.
    fn chunk_start(&self, size: u64) -> Result<State, ReplyError> {
        if size == 0 {
            return Ok(State::Chunked(Chunk::TrailerStart));
        }
        if size > (MAX_REPLY - self.taken) as u64 {
            return Err(ReplyError::TooLarge);
        }
        Ok(State::Chunked(Chunk::Data { left: size }))
    }

    fn keep_body(&mut self, b: &[u8]) {
        let room = self.keep.saturating_sub(self.body.len());
        self.body.extend_from_slice(&b[..b.len().min(room)]);
    }

    /// The empty line ending a head was just read: parse it. An interim reply (1xx but 101) is
    /// dropped and the next head is read; otherwise the body's framing is set. True when this
    /// was the final head.
    fn end_of_head(&mut self) -> Result<bool, ReplyError> {
        let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
        let mut resp = httparse::Response::new(&mut fields);
        match resp.parse(&self.head_buf) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => return Err(ReplyError::NotHttp("incomplete head")),
            Err(e) => return Err(ReplyError::NotHttp(httparse_reason(e))),
        }
        let status = resp.code.unwrap_or(0);
        if (100..200).contains(&status) && status != 101 {
            self.head_buf.clear();
            self.state = State::Head { eol: 0 };
            return Ok(false);
        }
        let http11 = resp.version == Some(1);
        // From the raw status line (httparse gives none when it has bytes outside ASCII):
        // "HTTP/1.1 200 " is 13 bytes; printable ASCII only, bounded.
        let line_end = self.head_buf.iter().position(|&b| b == b'\n');
        let line = &self.head_buf[..line_end.unwrap_or(0)];
        let reason: String = line
            .get(13..)
            .unwrap_or(b"")
            .iter()
            .filter(|b| b.is_ascii_graphic() || **b == b' ')
            .take(MAX_REASON)
            .map(|&b| b as char)
            .collect();
        let mut length: Option<u64> = None;
        let mut chunked = None;
        let mut close = !http11;
        let mut retry_after = None;
        for f in resp.headers.iter() {
            let v = f.value.trim_ascii();
            let name = f.name;
            if name.eq_ignore_ascii_case("content-length") {
                let n = parse_decimal(v).ok_or(ReplyError::BadFraming("bad Content-Length"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(ReplyError::BadFraming("conflicting Content-Length"));
                }
                length = Some(n);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                // Chunked only when it is the last coding; anything else ends at close.
                let last = v.rsplit(|&b| b == b',').next().unwrap_or(b"").trim_ascii();
                chunked = Some(last.eq_ignore_ascii_case(b"chunked"));
            } else if name.eq_ignore_ascii_case("connection") {
                for t in v.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                    if t.eq_ignore_ascii_case(b"close") {
                        close = true;
                    } else if t.eq_ignore_ascii_case(b"keep-alive") && !http11 {
                        close = false;
                    }
                }
            } else if name.eq_ignore_ascii_case("retry-after") {
                retry_after = parse_seconds(v);
            }
        }
        let framing = if status == 101 || status == 204 || status == 304 {
            Framing::Empty
        } else if let Some(c) = chunked {
            if c {
                Framing::Chunked
            } else {
                Framing::UntilClose
            }
        } else if let Some(n) = length {
            if n == 0 {
                Framing::Empty
            } else {
                Framing::Length(n)
            }
        } else {
            Framing::UntilClose
        };
        self.state = match framing {
            Framing::Empty => State::Done,
            Framing::Length(n) => State::Length { left: n },
            Framing::Chunked => State::Chunked(Chunk::Size { size: 0, digits: 0 }),
            Framing::UntilClose => State::UntilClose,
        };
        if self.keep > 0 && self.body.capacity() == 0 {
            self.body.reserve_exact(self.keep.min(4096));
        }
        self.head = Some(Head {
            status,
            http11,
            reason,
            retry_after,
            framing,
            keep_alive: !close && framing != Framing::UntilClose,
            len: self.head_buf.len(),
        });
        Ok(true)
    }

    /// The connection ended (read returned 0): the reply is complete when its body runs until
    /// close (or it was complete already), else an error.
    pub fn finish(&mut self) -> Result<Progress, ReplyError> {
        match self.state {
            State::Done => Ok(Progress::Done),
            State::UntilClose => {
                self.state = State::Done;
                Ok(Progress::Done)
            }
            State::Failed(e) => Err(e),
            _ => {
                let e = ReplyError::Closed {
                    got_bytes: self.taken > 0,
                };
                self.state = State::Failed(e);
                Err(e)
            }
        }
    }
}

fn httparse_reason(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "bad header name",
        httparse::Error::HeaderValue => "bad header value",
        httparse::Error::NewLine => "bad line end",
        httparse::Error::Status => "bad status",
        httparse::Error::Token => "bad token",
        httparse::Error::TooManyHeaders => "too many header fields",
        httparse::Error::Version => "bad version",
    }
}

/// A non-negative decimal of at most 19 digits (no sign, no spaces).
fn parse_decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// Retry-After's delta-seconds: digits, any number of them, saturating. (The HTTP-date form
/// is not used: it needs a trustworthy wall clock.)
fn parse_seconds(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

/// A reply as the client returns it.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Bounded, printable server text: mask it (`redact`) before logging.
    pub reason: String,
    /// `Retry-After` in seconds, when the server sent one in that form.
    pub retry_after: Option<u64>,
    /// The start of the body (at most `MAX_BODY_KEPT`), only when asked for.
    pub body: Vec<u8>,
}

/// Why a blocking request failed.
#[derive(Debug)]
pub enum HttpError {
    /// The connection could not be made.
    Connect(ConnectError),
    /// The deadline passed.
    Timeout {
        /// The server.
        host: String,
        /// What was under way (connect, send, reply).
        phase: &'static str,
    },
    /// A socket error.
    Io {
        /// The server.
        host: String,
        /// What was under way.
        phase: &'static str,
        /// The error.
        source: io::Error,
    },
    /// The reply cannot be read.
    Reply {
        /// The server.
        host: String,
        /// Why.
        error: ReplyError,
    },
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Connect(e) => write!(f, "{e}"),
            HttpError::Timeout { host, phase } => write!(f, "{host}: timed out {phase}"),
            HttpError::Io {
                host,
                phase,
                source,
            } => write!(f, "{host}: error {phase}: {source}"),
            HttpError::Reply { host, error } => write!(f, "{host}: {error}"),
        }
    }
}

/// The Host header value: brackets around IPv6 literals, the port unless it is the default.
pub fn host_header(url: &Url) -> String {
    let h = if url.host.contains(':') {
        format!("[{}]", url.host)
    } else {
        url.host.clone()
    };
    let default = if url.is_tls() { 443 } else { 80 };
    if url.port == default {
        h
    } else {
        format!("{h}:{}", url.port)
    }
}

/// "HTTP 503 Service Unavailable" for logs: the status and the reason phrase (already bounded
/// and printable), with any run of the key's characters masked.
pub fn status_text(status: u16, reason: &str, key: Option<&Secret>) -> String {
    let reason = super::redact(reason, key);
    if reason.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status} {reason}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `bytes` in pieces of `step` bytes, going on past `Head`, then EOF.
    fn parse_in(bytes: &[u8], step: usize, keep: usize) -> Result<(Head, Vec<u8>), ReplyError> {
        let mut p = ReplyParser::new(keep);
        let mut done = false;
        for piece in bytes.chunks(step.max(1)) {
            let mut at = 0;
            while at < piece.len() && !done {
                let fed = p.feed(&piece[at..])?;
                at += fed.used;
                done = fed.progress == Progress::Done;
            }
        }
        if !done {
            p.finish()?;
        }
        Ok((p.head().unwrap().clone(), p.body().to_vec()))
    }

    fn parse(bytes: &[u8]) -> Result<(Head, Vec<u8>), ReplyError> {
        parse_in(bytes, bytes.len(), 1 << 20)
    }

    #[test]
    fn content_length_chunked_until_close_and_interim() {
        let (h, b) = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello").unwrap();
        assert_eq!((h.status, &b[..], h.keep_alive), (200, &b"hello"[..], true));
        assert_eq!((h.framing, h.reason.as_str()), (Framing::Length(5), "OK"));
        let (h, b) = parse(
            b"HTTP/1.1 201 Created\r\nTransfer-Encoding: gzip, chunked\r\n\r\n4\r\nwiki\r\n5;x=y\r\npedia\r\nA \r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n",
        )
        .unwrap();
        assert_eq!((h.status, &b[..]), (201, &b"wikipedia0123456789"[..]));
        let (h, b) = parse(b"HTTP/1.0 500 Oops\r\n\r\nbody until close").unwrap();
        assert_eq!(
            (h.status, &b[..], h.keep_alive),
            (500, &b"body until close"[..], false)
        );
        let (h, _) = parse(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\nX: y\r\n\r\nHTTP/1.1 429 Slow\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((h.status, h.retry_after), (429, Some(7)));
        let (h, _) = parse(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n").unwrap();
        assert_eq!((h.framing, h.keep_alive), (Framing::Empty, false));
        // Bare LF line ends are read too.
        let (h, b) = parse(b"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n2\nok\n0\n\n").unwrap();
        assert_eq!((h.status, &b[..]), (200, &b"ok"[..]));
    }

    #[test]
    fn every_split_gives_the_same_reply() {
        let reply = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Busy\r\nRetry-After: 99999999999\r\nTransfer-Encoding: chunked\r\n\r\n3;a=b\r\nabc\r\n1\r\nd\r\n0\r\nT: x\r\n\r\n";
        let whole = parse(reply).unwrap();
        assert_eq!(whole.1, b"abcd");
        assert_eq!(whole.0.retry_after, Some(99_999_999_999));
        for step in 1..reply.len() {
            assert_eq!(
                parse_in(reply, step, 1 << 20).unwrap(),
                whole,
                "step {step}"
            );
        }
    }

    #[test]
    fn head_and_done_stop_where_they_end() {
        let mut p = ReplyParser::new(0);
        let r = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi";
        let fed = p.feed(r).unwrap();
        assert_eq!(fed.progress, Progress::Done);
        assert_eq!(&r[fed.used..], b"\x81\x02hi");
        assert_eq!(p.field("UPGRADE"), Some(&b"websocket"[..]));
        assert_eq!(p.field("x"), None);
        let mut p = ReplyParser::new(0);
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcEXTRA";
        let fed = p.feed(r).unwrap();
        assert_eq!(
            (fed.progress, &r[fed.used..]),
            (Progress::Head, &b"abcEXTRA"[..])
        );
        let fed2 = p.feed(&r[fed.used..]).unwrap();
        assert_eq!((fed2.progress, fed2.used), (Progress::Done, 3));
        // Kept: nothing (keep 0); a reset parser reads the next reply.
        assert!(p.body().is_empty());
        p.reset();
        assert_eq!(
            p.feed(b"HTTP/1.1 204 X\r\n\r\n").unwrap().progress,
            Progress::Done
        );
    }

    #[test]
    fn endless_interim_replies_end_at_the_cap() {
        let mut p = ReplyParser::new(0);
        let cont = b"HTTP/1.1 100 Continue\r\n\r\n";
        let mut fed_total = 0;
        let err = loop {
            match p.feed(cont) {
                Ok(f) => {
                    assert_eq!(f.progress, Progress::NeedMore);
                    fed_total += f.used;
                }
                Err(e) => break e,
            }
        };
        assert_eq!(err, ReplyError::TooLarge);
        assert!(fed_total <= MAX_REPLY && fed_total > MAX_REPLY - cont.len());
        // Failed stays failed.
        assert_eq!(
            p.feed(b"HTTP/1.1 200 OK\r\n\r\n"),
            Err(ReplyError::TooLarge)
        );
        assert_eq!(p.finish(), Err(ReplyError::TooLarge));
    }

    #[test]
    fn chunk_sizes_cannot_overflow_or_outgrow_the_cap() {
        let head = b"HTTP/1.1 500 X\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        // The size + 2 that wrapped: refused as soon as its line ends.
        let mut r = head.clone();
        r.extend_from_slice(b"fffffffffffffffe\r\n");
        assert_eq!(parse(&r).unwrap_err(), ReplyError::TooLarge);
        let mut r = head.clone();
        r.extend_from_slice(b"10000000000000000\r\n");
        assert_eq!(
            parse(&r).unwrap_err(),
            ReplyError::BadFraming("chunk size too large")
        );
        let mut r = head.clone();
        r.extend_from_slice(&b"0".repeat(100));
        assert_eq!(
            parse(&r).unwrap_err(),
            ReplyError::BadFraming("chunk size too large")
        );
        for bad in [
            &b"\r\n"[..],
            b"x\r\n",
            b"-1\r\n",
            b"1\rx",
            b"1\r\nab\r\n",
            b"0\r\n\rx",
        ] {
            let mut r = head.clone();
            r.extend_from_slice(bad);
            assert!(
                matches!(parse(&r), Err(ReplyError::BadFraming(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // Small chunks without end: the cap ends them, and only `keep` bytes are held.
        let mut r = head.clone();
        while r.len() < 3 * MAX_REPLY {
            r.extend_from_slice(b"1\r\nx\r\n");
        }
        let mut p = ReplyParser::new(100);
        let fed = p.feed(&r).unwrap();
        assert_eq!(fed.progress, Progress::Head);
        assert_eq!(p.feed(&r[fed.used..]), Err(ReplyError::TooLarge));
        assert_eq!(p.body().len(), 100);
    }

    #[test]
    fn heads_and_bodies_are_bounded() {
        let mut big = b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n".to_vec();
        big.resize(200_000, b'x');
        assert_eq!(parse(&big).unwrap_err(), ReplyError::TooLarge);
        // Only `keep` bytes of the body are held.
        let mut p = ReplyParser::new(10);
        let fed = p.feed(&big[..1000]).unwrap();
        assert_eq!(fed.progress, Progress::Head);
        assert_eq!(
            p.feed(&big[fed.used..1000]).unwrap().progress,
            Progress::NeedMore
        );
        assert_eq!(
            (p.head().unwrap().status, p.body()),
            (200, &b"xxxxxxxxxx"[..])
        );
        let mut head = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        head.resize(MAX_HEAD + 10, b'a');
        assert_eq!(parse(&head).unwrap_err(), ReplyError::HeadTooLarge);
        let many: String = (0..MAX_FIELDS + 1)
            .map(|i| format!("X-{i}: v\r\n"))
            .collect();
        let r = format!("HTTP/1.1 200 OK\r\n{many}\r\n");
        assert_eq!(
            parse(r.as_bytes()).unwrap_err(),
            ReplyError::NotHttp("too many header fields")
        );
    }

    #[test]
    fn fields_are_read_strictly() {
        let (h, _) =
            parse(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok").unwrap();
        assert_eq!(h.framing, Framing::Length(2));
        for cl in ["2, 3", "-1", "+2", "0x10", "", "99999999999999999999"] {
            let r = format!("HTTP/1.1 200 OK\r\nContent-Length: {cl}\r\n\r\n");
            assert!(
                matches!(parse(r.as_bytes()), Err(ReplyError::BadFraming(_))),
                "{cl}"
            );
        }
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok";
        assert_eq!(
            parse(r).unwrap_err(),
            ReplyError::BadFraming("conflicting Content-Length")
        );
        // Retry-After: delta-seconds only, saturating.
        for (v, want) in [
            ("120", Some(120)),
            ("99999999999", Some(99_999_999_999)),
            ("999999999999999999999999", Some(u64::MAX)),
            ("Wed, 21 Oct 2015 07:28:00 GMT", None),
            ("-5", None),
        ] {
            let r = format!("HTTP/1.1 503 X\r\nRetry-After: {v}\r\nContent-Length: 0\r\n\r\n");
            assert_eq!(parse(r.as_bytes()).unwrap().0.retry_after, want, "{v}");
        }
        // HTTP/1.0 closes unless it says keep-alive; 1.1 keeps unless it says close.
        let ka = |r: &str| parse(r.as_bytes()).unwrap().0.keep_alive;
        assert!(!ka("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"));
        assert!(ka(
            "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n"
        ));
        assert!(!ka(
            "HTTP/1.1 200 OK\r\nConnection: x, close\r\nContent-Length: 0\r\n\r\n"
        ));
        // The reason phrase: printable ASCII only, bounded.
        let r = format!(
            "HTTP/1.1 500 {}\u{e9}\r\nContent-Length: 0\r\n\r\n",
            "r".repeat(10) + "\t" + &"r".repeat(90)
        );
        assert_eq!(
            parse(r.as_bytes()).unwrap().0.reason,
            "r".repeat(MAX_REASON)
        );
    }

    #[test]
    fn garbage_and_truncation_are_errors_without_server_text() {
        let e = parse(b"SSH-2.0-OpenSSH SECRETKEY\r\n\r\n").unwrap_err();
        assert!(matches!(e, ReplyError::NotHttp(_)), "{e}");
        assert!(!e.to_string().contains("SECRET"));
        let mut p = ReplyParser::new(0);
        assert_eq!(
            p.finish().unwrap_err(),
            ReplyError::Closed { got_bytes: false }
        );
        let full = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
        for n in 0..full.len() {
            assert!(parse(&full[..n]).is_err(), "{n}");
        }
        assert!(parse(full).is_ok());
    }

    #[test]
    fn every_byte_in_every_position_never_panics() {
        let base = b"HTTP/1.1 100 C\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n2;e\r\nok\r\n0\r\nT: 1\r\n\r\n";
        for pos in 0..base.len() {
            for b in [
                0u8, b'\r', b'\n', b'0', b'f', b'g', b';', b' ', b':', 0x80, 0xff,
            ] {
                let mut v = base.to_vec();
                v[pos] = b;
                for step in [1, 7, v.len()] {
                    let _ = parse_in(&v, step, 16);
                }
            }
        }
    }
}
