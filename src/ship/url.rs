//! Platform URLs, parsed strictly: what is accepted can be put in a request line and a Host
//! header as it is, so no configured value can inject a header or split a request.
//!
//! Accepted: `scheme://host[:port][/path][?query][#fragment]` where
//! - the scheme is one of those the caller allows (any case);
//! - the host is a DNS name (letters, digits, `-`, `_`, `.`; labels of 1..63 characters), a
//!   dotted IPv4 address, or an IPv6 address in brackets (`[::1]`, no zone);
//! - the port, if given, is one decimal number 1..65535;
//! - path, query and fragment hold only RFC 3986 characters (unreserved, sub-delims, `:`, `@`,
//!   `/`, `?`, and `%` followed by two hex digits): no spaces, no control characters, nothing
//!   outside printable ASCII;
//! - no user information (`user:pw@`): the key goes in API_KEY.
//!
//! The fragment is never sent.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// A platform URL, parsed and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// The URL as configured.
    pub text: String,
    /// Lower case.
    pub scheme: String,
    /// Without brackets for IPv6.
    pub host: String,
    /// The port (the scheme's default when none is given).
    pub port: u16,
    /// Path and query, starting with `/`, without the fragment: the request target.
    pub path: String,
}

/// Whether `b` may appear in a path, query or fragment (besides `%`, checked with what follows).
fn path_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?".contains(&b)
}

/// How a byte that is not allowed is named in an error.
fn describe(b: u8) -> String {
    match b {
        b' ' => "a space".into(),
        b'\r' => "a CR".into(),
        b'\n' => "a LF".into(),
        b'\t' => "a tab".into(),
        0..=0x1f | 0x7f => format!("the control character 0x{b:02x}"),
        0x80.. => format!("the non-ASCII byte 0x{b:02x}"),
        _ => format!("'{}'", b as char),
    }
}

fn parse_port(p: &str) -> Result<u16, String> {
    let ok = !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit());
    match p.parse::<u32>() {
        Ok(n @ 1..=65535) if ok => Ok(n as u16),
        _ => Err(format!("'{p}' is not a port (1-65535)")),
    }
}

fn check_name(host: &str) -> Result<(), String> {
    if host.len() > 253 {
        return Err("the host name is longer than 253 characters".into());
    }
    let looks_numeric = host.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if looks_numeric {
        return host
            .parse::<Ipv4Addr>()
            .map(drop)
            .map_err(|_| format!("'{host}' is not an IPv4 address"));
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("'{host}' is not a host name (empty or long label)"));
        }
        if let Some(b) = label
            .bytes()
            .find(|&b| !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        {
            return Err(format!("the host contains {}", describe(b)));
        }
    }
    Ok(())
}

impl Url {
    /// Parses `s` (see the module doc); `schemes` are the allowed ones, lower case, the first
    /// named in errors. Errors say what is wrong without repeating the value.
    pub fn parse(s: &str, schemes: &[&str]) -> Result<Url, String> {
        if let Some((i, b)) = s
            .bytes()
            .enumerate()
            .find(|&(_, b)| !(0x21..=0x7e).contains(&b))
        {
            return Err(format!(
                "the URL contains {} (at byte {})",
                describe(b),
                i + 1
            ));
        }
        let Some((scheme, rest)) = s.split_once("://") else {
            return Err(format!("not a URL (expected {}://host/...)", schemes[0]));
        };
        let scheme = scheme.to_ascii_lowercase();
        if !schemes.contains(&scheme.as_str()) {
            return Err(format!(
                "scheme '{scheme}' is not one of {}",
                schemes.join(", ")
            ));
        }
        let (authority, target) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err("credentials in the URL are not supported: use API_KEY".into());
        }
        let default_port = match scheme.as_str() {
            "https" | "wss" => 443,
            _ => 80,
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let Some((h, after)) = v6.split_once(']') else {
                return Err("unclosed '[' in the host".into());
            };
            h.parse::<Ipv6Addr>()
                .map_err(|_| format!("'[{h}]' is not an IPv6 address"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => parse_port(p)?,
                None if after.is_empty() => default_port,
                None => return Err(format!("unexpected '{after}' after the host")),
            };
            (h.to_owned(), port)
        } else {
            if authority.matches(':').count() > 1 {
                return Err("an IPv6 address must be in brackets, as in http://[::1]:8080/".into());
            }
            let (h, port) = match authority.split_once(':') {
                Some((h, p)) => (h, parse_port(p)?),
                None => (authority, default_port),
            };
            if h.is_empty() {
                return Err("the URL has no host".into());
            }
            check_name(h)?;
            (h.to_owned(), port)
        };
        let bytes = target.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b == b'%' {
                let hex = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_hexdigit);
                if !(hex(i + 1) && hex(i + 2)) {
                    return Err(format!(
                        "'%' not followed by two hex digits in the path (at byte {})",
                        s.len() - target.len() + i + 1
                    ));
                }
                i += 3;
                continue;
            }
            // '#' starts the fragment; a second '#' is not allowed in it.
            let fragment_start = b == b'#' && !target[..i].contains('#');
            if !(path_char(b) || fragment_start) {
                return Err(format!(
                    "the path contains {} (at byte {})",
                    describe(b),
                    s.len() - target.len() + i + 1
                ));
            }
            i += 1;
        }
        let without_fragment = target.split('#').next().unwrap_or("");
        let path = if without_fragment.starts_with('/') {
            without_fragment.to_owned()
        } else {
            format!("/{without_fragment}")
        };
        Ok(Url {
            text: s.to_owned(),
            scheme,
            host,
            port,
            path,
        })
    }

    /// True for https and wss.
    pub fn is_tls(&self) -> bool {
        self.scheme == "https" || self.scheme == "wss"
    }

    /// What goes in the request line: the path and query, never the fragment.
    pub fn request_target(&self) -> &str {
        &self.path
    }
}

/// For logs and `check`: scheme, host, port and path; a query (which could carry a token) is
/// shown as `?...`.
impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (path, query) = match self.path.split_once('?') {
            Some((p, _)) => (p, "?..."),
            None => (self.path.as_str(), ""),
        };
        let default = if self.is_tls() { 443 } else { 80 };
        write!(f, "{}://", self.scheme)?;
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        if self.port != default {
            write!(f, ":{}", self.port)?;
        }
        write!(f, "{path}{query}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HTTP: &[&str] = &["http", "https"];
    const WS: &[&str] = &["ws", "wss"];

    fn ok(s: &str) -> (String, u16, String) {
        let u = Url::parse(s, HTTP).unwrap_or_else(|e| panic!("{s:?}: {e}"));
        (u.host, u.port, u.path)
    }

    fn err(s: &str) -> String {
        Url::parse(s, HTTP).expect_err(s)
    }

    #[test]
    fn accepts_names_ipv4_bracketed_ipv6_and_ports() {
        let t = |h: &str, p: u16, path: &str| (h.to_owned(), p, path.to_owned());
        assert_eq!(ok("https://[::1]:8443/api"), t("::1", 8443, "/api"));
        assert_eq!(ok("http://[fe80::1]/"), t("fe80::1", 80, "/"));
        assert_eq!(
            ok("HTTPS://Platform.example"),
            t("Platform.example", 443, "/")
        );
        assert_eq!(
            ok("http://10.0.0.1:65535?x=1"),
            t("10.0.0.1", 65535, "/?x=1")
        );
        assert_eq!(
            ok("http://h_1.example./a/b;c?d=%2F&e=~#frag"),
            t("h_1.example.", 80, "/a/b;c?d=%2F&e=~")
        );
        let u = Url::parse("ws://example.org", WS).unwrap();
        assert_eq!((u.port, u.path.as_str(), u.is_tls()), (80, "/", false));
        assert!(Url::parse("wss://example.org", WS).unwrap().is_tls());
    }

    #[test]
    fn refuses_injection_spaces_and_control_bytes() {
        for s in [
            "http://host/api\r\nX-Evil: 1",
            "http://host/api\rX",
            "http://host/api\nX",
            "http://host/a b",
            "http://host/a\tb",
            "http://host/a\x00b",
            "http://host/a\x7fb",
            "http://ho st/",
            "http://host\r\n/",
            "http://host/é",
            " http://host/",
        ] {
            let e = err(s);
            assert!(e.contains("contains"), "{s:?}: {e}");
        }
        assert_eq!(
            err("http://host/a b"),
            "the URL contains a space (at byte 14)"
        );
        assert_eq!(
            err("http://host/api\r\nX-Evil: 1"),
            "the URL contains a CR (at byte 16)"
        );
        for s in [
            "http://h/a<b",
            "http://h/a\"b",
            "http://h/{x}",
            "http://h/a|b",
            "http://h/a\\b",
        ] {
            assert!(err(s).contains("the path contains"), "{s}");
        }
        assert!(err("http://h/%zz").contains("two hex digits"));
        assert!(err("http://h/%4").contains("two hex digits"));
        assert!(err("http://h/#a#b").contains("the path contains '#'"));
    }

    #[test]
    fn refuses_bad_hosts_and_ports() {
        assert!(err("http://::1/x").contains("must be in brackets"));
        assert!(err("http://[::1/x").contains("unclosed"));
        assert!(err("http://[zz::1]/").contains("not an IPv6 address"));
        assert!(err("http://[::1]x/").contains("unexpected"));
        assert!(err("http://[fe80::1%25eth0]/").contains("not an IPv6 address"));
        for p in [
            "0", "65536", "99999", "-1", "+80", "", "80:81", "8o", "000080",
        ] {
            let e = err(&format!("http://h:{p}/"));
            assert!(
                e.contains("not a port") || e.contains("brackets"),
                "{p}: {e}"
            );
        }
        assert!(err("http://:80/").contains("no host"));
        assert!(err("http:///x").contains("no host"));
        assert!(err("http://a..b/").contains("not a host name"));
        assert!(err("http://999.1.1.1/").contains("not an IPv4 address"));
        assert!(err("http://1.2.3/").contains("not an IPv4 address"));
        assert!(err("http://a!b/").contains("the host contains '!'"));
        assert!(err(&format!("http://{}/", "a".repeat(64))).contains("not a host name"));
        assert!(err("http://user:pw@h/").contains("credentials"));
        assert!(err("example.org/api").contains("not a URL"));
        assert!(err("ftp://h/").contains("not one of http, https"));
        assert!(Url::parse("http://h/", WS).is_err());
    }

    #[test]
    fn display_hides_the_query() {
        let u = Url::parse("https://[::1]:8443/api?token=sk-123#f", HTTP).unwrap();
        assert_eq!(u.to_string(), "https://[::1]:8443/api?...");
        assert_eq!(u.request_target(), "/api?token=sk-123");
        let u = Url::parse("http://h:80/a", HTTP).unwrap();
        assert_eq!(u.to_string(), "http://h/a");
    }

    #[test]
    fn every_byte_in_every_position_never_panics() {
        let base = b"http://[::1]:8080/a/b?c=d#e".to_vec();
        for pos in 0..base.len() {
            for b in 0..=255u8 {
                let mut v = base.clone();
                v[pos] = b;
                if let Ok(s) = std::str::from_utf8(&v) {
                    if let Ok(u) = Url::parse(s, HTTP) {
                        // What is accepted is safe in a request line and a Host header.
                        assert!(u.path.bytes().all(|b| (0x21..=0x7e).contains(&b)));
                        assert!(u
                            .host
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(&b)));
                    }
                }
            }
        }
    }
}
