//! A small blocking HTTP/1.1 client for POSTs, over `net::Conn` (plain or TLS). One request per
//! connection (`Connection: close`); the whole exchange, connect included, ends by one deadline;
//! at most 64 KiB of the reply is read, whatever the server sends.

use std::fmt;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::tls::ClientConfig;

use super::net::{self, ConnectError};
use crate::config::Url;

/// The most of a reply (head and body) that is ever read.
pub const MAX_RESPONSE: usize = 64 * 1024;

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// `Retry-After` in seconds, when the server sent one in that form.
    pub retry_after: Option<Duration>,
    pub location: Option<String>,
    /// The body as far as it was read (de-chunked, at most 64 KiB).
    pub body: Vec<u8>,
}

#[derive(Debug)]
pub enum HttpError {
    Connect(ConnectError),
    Timeout {
        host: String,
        phase: &'static str,
    },
    Io {
        host: String,
        phase: &'static str,
        source: io::Error,
    },
    BadResponse {
        host: String,
        reason: String,
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
            HttpError::BadResponse { host, reason } => write!(f, "{host}: {reason}"),
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

/// POSTs `body` with `headers` (besides Host, User-Agent, Content-Type: application/json,
/// Content-Length, Connection) and returns the reply; everything within `timeout`. The body of
/// a 2xx reply is only read when `want_body` (a success needs no more than its status line).
pub fn post(
    url: &Url,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
    tls: Option<&Arc<ClientConfig>>,
    want_body: bool,
) -> Result<Response, HttpError> {
    let deadline = Instant::now() + timeout;
    let host = url.host.clone();
    let mut conn = net::connect(url, deadline, tls).map_err(HttpError::Connect)?;
    let path = url.path.split('#').next().unwrap_or("/");
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: netmon-agent/{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        host_header(url),
        crate::VERSION,
        body.len()
    );
    for (k, v) in headers {
        head.push_str(k);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let io_err = |phase: &'static str, e: io::Error| {
        if e.kind() == io::ErrorKind::TimedOut {
            HttpError::Timeout {
                host: host.clone(),
                phase,
            }
        } else {
            HttpError::Io {
                host: host.clone(),
                phase,
                source: e,
            }
        }
    };
    conn.write_all(head.as_bytes())
        .and_then(|()| conn.write_all(body))
        .and_then(|()| conn.flush())
        .map_err(|e| io_err("sending the request", e))?;
    read_response(&mut conn, want_body).map_err(|e| match e {
        ReadError::Io(e) => io_err("waiting for the reply", e),
        ReadError::Bad(reason) => HttpError::BadResponse {
            host: host.clone(),
            reason,
        },
    })
}

pub enum ReadError {
    Io(io::Error),
    Bad(String),
}

enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

/// A reply's head: the status (after any interim 1xx but 101), the header fields, and the
/// length of the head in the buffer it was read into.
pub struct Head {
    pub status: u16,
    headers: Vec<(String, String)>,
    pub len: usize,
}

impl Head {
    /// The first field called `name` (any case), trimmed.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads a reply's head into `buf` (which then holds the head and whatever came after it),
/// skipping interim 1xx replies other than 101; at most 64 KiB.
pub fn read_head(conn: &mut impl Read, buf: &mut Vec<u8>) -> Result<Head, ReadError> {
    let mut chunk = [0u8; 4096];
    loop {
        let mut hdrs = [httparse::EMPTY_HEADER; 48];
        let mut resp = httparse::Response::new(&mut hdrs);
        match resp.parse(buf) {
            Ok(httparse::Status::Complete(n)) => {
                let status = resp.code.unwrap_or(0);
                if (100..200).contains(&status) && status != 101 {
                    buf.drain(..n);
                    continue;
                }
                let headers = resp
                    .headers
                    .iter()
                    .map(|h| {
                        let v = String::from_utf8_lossy(h.value).trim().to_owned();
                        (h.name.to_owned(), v)
                    })
                    .collect();
                return Ok(Head {
                    status,
                    headers,
                    len: n,
                });
            }
            Ok(httparse::Status::Partial) => {}
            Err(e) => {
                return Err(ReadError::Bad(format!(
                    "the reply is not HTTP ({e}): {}",
                    printable(buf, 40)
                )))
            }
        }
        if buf.len() >= MAX_RESPONSE {
            return Err(ReadError::Bad("the reply's head is over 64 KiB".into()));
        }
        let n = conn.read(&mut chunk).map_err(ReadError::Io)?;
        if n == 0 {
            return Err(ReadError::Bad(if buf.is_empty() {
                "the connection was closed without a reply".into()
            } else {
                format!(
                    "the connection was closed in the middle of the reply: {}",
                    printable(buf, 40)
                )
            }));
        }
        buf.extend_from_slice(&chunk[..n.min(MAX_RESPONSE - buf.len())]);
    }
}

fn read_response(conn: &mut impl Read, want_body: bool) -> Result<Response, ReadError> {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let head = read_head(conn, &mut buf)?;
    let (status, head_len) = (head.status, head.len);
    let retry_after = head
        .get("retry-after")
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_secs);
    let chunked = head
        .get("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let framing = if chunked {
        Framing::Chunked
    } else if let Some(len) = head.get("content-length").and_then(|v| v.parse().ok()) {
        Framing::Length(len)
    } else {
        Framing::UntilClose
    };
    let location = head.get("location").map(str::to_owned);
    if (200..300).contains(&status) && !want_body {
        return Ok(Response {
            status,
            retry_after,
            location,
            body: Vec::new(),
        });
    }
    // The body: read until complete, 64 KiB in all, the deadline or an error, whichever comes
    // first. The status is known, so a body cut short is not an error.
    let complete = |b: &[u8]| match framing {
        Framing::Length(len) => b.len() >= len,
        Framing::Chunked => dechunk(b).1,
        Framing::UntilClose => false,
    };
    while buf.len() < MAX_RESPONSE && !complete(&buf[head_len..]) {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n.min(MAX_RESPONSE - buf.len())]),
        }
    }
    let raw = &buf[head_len..];
    let body = match framing {
        Framing::Length(len) => raw[..raw.len().min(len)].to_vec(),
        Framing::Chunked => dechunk(raw).0,
        Framing::UntilClose => raw.to_vec(),
    };
    Ok(Response {
        status,
        retry_after,
        location,
        body,
    })
}

/// Decodes a chunked body as far as it is present; the flag says whether the last chunk came.
pub fn dechunk(mut raw: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
            return (out, false);
        };
        let line = String::from_utf8_lossy(&raw[..eol]);
        let size_text = line.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            return (out, false);
        };
        raw = &raw[eol + 2..];
        if size == 0 {
            return (out, true);
        }
        let take = size.min(raw.len());
        out.extend_from_slice(&raw[..take]);
        if raw.len() < size + 2 {
            return (out, false);
        }
        raw = &raw[size + 2..];
    }
}

/// The start of some bytes as printable text for a log line: all but printable ASCII escaped,
/// at most `max` characters.
pub fn printable(b: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(b);
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push_str("...");
            break;
        }
        if !(c.is_ascii_graphic() || c == ' ') {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<Response, String> {
        read_response(&mut &bytes[..], true).map_err(|e| match e {
            ReadError::Io(e) => e.to_string(),
            ReadError::Bad(m) => m,
        })
    }

    #[test]
    fn content_length_chunked_and_close() {
        let r = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA").unwrap();
        assert_eq!((r.status, &r.body[..]), (200, &b"hello"[..]));
        let r = parse(
            b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwiki\r\n5;x=y\r\npedia\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((r.status, &r.body[..]), (201, &b"wikipedia"[..]));
        let r = parse(b"HTTP/1.0 500 Oops\r\n\r\nbody until close").unwrap();
        assert_eq!((r.status, &r.body[..]), (500, &b"body until close"[..]));
        let r = parse(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 429 Slow\r\nRetry-After: 7\r\n\r\n")
            .unwrap();
        assert_eq!(
            (r.status, r.retry_after),
            (429, Some(Duration::from_secs(7)))
        );
    }

    #[test]
    fn success_body_only_when_wanted() {
        let r = read_response(&mut &b"HTTP/1.1 200 OK\r\n\r\nendless..."[..], false);
        assert!(r.is_ok_and(|r| r.status == 200 && r.body.is_empty()));
        let r = read_response(&mut &b"HTTP/1.1 503 No\r\n\r\nwhy"[..], false);
        assert!(r.is_ok_and(|r| r.body == b"why"));
    }

    #[test]
    fn garbage_and_truncated_replies_are_errors() {
        assert!(parse(b"\x00\x01garbage\r\n\r\n")
            .unwrap_err()
            .contains("not HTTP"));
        assert!(parse(b"").unwrap_err().contains("without a reply"));
        let full = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        // Truncated anywhere in the head: an error, never a panic; in the body: the status holds.
        for n in 0..full.len() {
            let r = parse(&full[..n]);
            if n < full.len() - 2 {
                assert!(r.is_err(), "{n}");
            } else {
                assert_eq!(r.unwrap().status, 200);
            }
        }
    }

    #[test]
    fn reads_at_most_64_kib() {
        let mut big = b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n".to_vec();
        big.resize(200_000, b'x');
        let r = parse(&big).unwrap();
        assert!(r.body.len() < MAX_RESPONSE);
        let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
        head.resize(100_000, b'a');
        assert!(parse(&head).unwrap_err().contains("over 64 KiB"));
    }

    #[test]
    fn dechunk_partial() {
        assert_eq!(dechunk(b"3\r\nabc\r\n2\r\nd"), (b"abcd".to_vec(), false));
        assert_eq!(dechunk(b"zz\r\n"), (Vec::new(), false));
    }

    #[test]
    fn printable_escapes() {
        assert_eq!(printable(b"a\nb\x00", 10), "a\\nb\\u{0}");
        assert_eq!(printable("é".as_bytes(), 10), "\\u{e9}");
        assert_eq!(printable(b"abcdef", 3), "abc...");
    }
}
