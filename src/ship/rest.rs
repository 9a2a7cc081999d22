//! REST delivery: one snapshot per POST, the backlog in front, retries with backoff; a state
//! machine over `client::Client` (which keeps its connection between POSTs).
//!
//! What a reply means is decided by `classify` (a pure function of the result) and carried out
//! by `apply`: 2xx delivered; 408, 429 (Retry-After honoured, within `retry`'s bounds), 3xx
//! (not followed), 5xx, connection and timeout errors: kept and retried; other 4xx: logged with
//! the status and its bounded reason phrase (401/403 as "API key rejected"), at most once a
//! minute, and dropped. Server text never goes further than that masked reason phrase.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::backlog::Backlog;
use super::client::Client;
use super::dns::Resolver;
use super::http::{self, HttpError, Response};
use super::tls::ClientConfig;
use super::{redact, retry, Backoff, Limiter};
use crate::config::{Secret, Url};
use crate::sys::poll::{PollSet, Ready, Token};

/// REST delivery: the backlog, the POST in flight, backoff and the outage state.
pub struct Rest {
    key: Option<Secret>,
    /// HTTP_TIMEOUT.
    pub timeout: Duration,
    /// Snapshots waiting.
    pub backlog: Backlog,
    /// This cycle's snapshot while nothing waits before it: tried once before it is spooled.
    fresh: Option<(u64, Vec<u8>)>,
    backoff: Backoff,
    retry_at: Option<Instant>,
    /// Since when delivery fails, and how often it failed since.
    failing: Option<(Instant, u64)>,
    /// The reason of the last failure, to tell a new one from a repeat.
    last_reason: String,
    /// CYCLE_TIME: how long a Retry-After is honoured is counted in cycles.
    cycle: Duration,
    rejected_log: Limiter,
    /// Counters since the last summary.
    pub stats: Stats,
    client: Client,
    /// The POST in flight: its seq, when it started, and whether it is a catch-up POST cut to
    /// what is left of the cycle's window.
    in_flight: Option<InFlight>,
}

struct InFlight {
    seq: u64,
    size: usize,
    started: Instant,
    cut_short: bool,
}

/// REST counters.
#[derive(Default, Clone, Copy)]
pub struct Stats {
    /// Snapshots delivered.
    pub sent: u64,
    /// Failed attempts.
    pub failed: u64,
    /// Snapshots refused for good.
    pub dropped: u64,
}

/// What a finished POST means (data, decided by `classify`, carried out by `apply`).
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx.
    Delivered {
        /// The status code.
        status: u16,
    },
    /// Keep the snapshot and try again later (`after`: the server's Retry-After, seconds).
    Retry {
        /// Why.
        reason: String,
        /// Retry-After, seconds.
        after: Option<u64>,
    },
    /// A catch-up POST ran out of the cycle's time: not the server's fault, no backoff.
    OutOfTime,
    /// The server refused this snapshot for good (`status_text`: status and masked reason).
    Refused {
        /// The status code.
        status: u16,
        /// Status and masked reason.
        status_text: String,
    },
}

/// What `apply` did, for the shipper's debug events.
pub enum Step {
    /// Delivered.
    Delivered,
    /// Kept for a retry (the reason, and whether it starts an outage or changes its reason).
    Failed {
        /// Why.
        reason: String,
        /// It starts an outage or changes its reason.
        first: bool,
    },
    /// A catch-up POST ran out of the cycle's time.
    OutOfTime,
    /// Refused for good and dropped.
    Dropped,
    /// Delivered after an outage.
    Recovered {
        /// Failed attempts during the outage.
        attempts: u64,
        /// How long it lasted.
        down: Duration,
    },
}

/// What a POST's result means. `cut_short`: the POST had less than HTTP_TIMEOUT (a catch-up
/// POST at the end of the cycle's window), so its timeout is not held against the server.
pub fn classify(
    result: Result<Response, HttpError>,
    cut_short: bool,
    host: &str,
    key: Option<&Secret>,
) -> Outcome {
    let resp = match result {
        Ok(r) => r,
        Err(e) if cut_short && timed_out(&e) => return Outcome::OutOfTime,
        Err(e) => {
            return Outcome::Retry {
                reason: redact(&e.to_string(), key),
                after: None,
            }
        }
    };
    let status = resp.status;
    // Server text in logs: the reason phrase only (bounded, printable), masked.
    let status_text = http::status_text(status, &resp.reason, key);
    match status {
        200..=299 => Outcome::Delivered { status },
        408 | 429 | 500..=599 => Outcome::Retry {
            reason: format!("{status_text} from {host}"),
            after: resp.retry_after,
        },
        // The Location is never logged: it could echo the request's Authorization.
        300..=399 => Outcome::Retry {
            reason: format!(
                "HTTP {status} redirect from {host} not followed: fix PLATFORM_API_URL"
            ),
            after: None,
        },
        _ => Outcome::Refused {
            status,
            status_text,
        },
    }
}

/// Whether a POST failed by running out of time (in any phase: lookup, connect, TLS, reply).
fn timed_out(e: &HttpError) -> bool {
    use super::dns::DnsError;
    use super::net::ConnectError;
    match e {
        HttpError::Timeout { .. } => true,
        HttpError::Connect(ConnectError::Connect { source, .. }) => {
            source.kind() == std::io::ErrorKind::TimedOut
        }
        HttpError::Connect(ConnectError::Resolve { source, .. }) => {
            matches!(source, DnsError::Timeout { .. })
        }
        HttpError::Connect(ConnectError::Tls { reason, .. }) => reason.starts_with("timed out"),
        _ => false,
    }
}

impl Rest {
    /// REST delivery to `url`.
    pub fn new(
        url: Url,
        key: Option<Secret>,
        timeout: Duration,
        cycle: Duration,
        backlog: Backlog,
        tls: Option<Arc<ClientConfig>>,
        keep_alive: bool,
    ) -> Rest {
        Rest {
            key,
            timeout,
            backlog,
            fresh: None,
            backoff: Backoff::new(),
            retry_at: None,
            failing: None,
            last_reason: String::new(),
            cycle,
            rejected_log: Limiter::new(Duration::from_secs(60)),
            stats: Stats::default(),
            client: Client::new(url, tls, keep_alive),
            in_flight: None,
        }
    }

    /// Takes this cycle's snapshot: tried directly when nothing waits, else queued behind.
    pub fn enqueue(&mut self, seq: u64, body: Vec<u8>, now: Instant) {
        if let Some((s, b)) = self.fresh.take() {
            self.backlog.push(s, b);
        }
        if self.backlog.is_empty() && self.failing.is_none() && self.due(now) {
            self.fresh = Some((seq, body));
        } else {
            self.backlog.push(seq, body);
        }
    }

    fn due(&self, now: Instant) -> bool {
        self.retry_at.map_or(true, |t| now >= t)
    }

    /// Hands the waiting snapshots over (to a new REST after a reload that changed it). A POST
    /// in flight is abandoned: its snapshot stays in the backlog.
    pub fn take_backlog(&mut self) -> Backlog {
        self.client.close();
        self.in_flight = None;
        if let Some((s, b)) = self.fresh.take() {
            self.backlog.push(s, b);
        }
        std::mem::replace(&mut self.backlog, Backlog::in_ram(0))
    }

    /// Whether a reload keeps this REST as it is (its connection included).
    pub fn same_settings(&self, url: &Url, key: Option<&Secret>, timeout: Duration) -> bool {
        self.client.url().text == url.text
            && self.key.as_ref().map(Secret::expose) == key.map(Secret::expose)
            && self.timeout == timeout
    }

    /// True while a POST is in flight.
    pub fn busy(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Whether a POST is due now.
    pub fn ready(&self, now: Instant) -> bool {
        !self.busy() && (self.fresh.is_some() || !self.backlog.is_empty()) && self.due(now)
    }

    /// Snapshots waiting (the one in flight included).
    pub fn depth(&self) -> usize {
        self.backlog.len() + usize::from(self.fresh.is_some())
    }

    /// TCP connections (TLS handshakes) opened so far.
    pub fn connects(&self) -> u64 {
        self.client.connects
    }

    /// Starts POSTing the oldest waiting snapshot, to end by `deadline` (at most HTTP_TIMEOUT
    /// from now).
    pub fn start(&mut self, dns: &mut Resolver, now: Instant, deadline: Instant) {
        let (seq, body) = match (&self.fresh, self.backlog.front()) {
            (Some((s, b)), _) => (*s, b.as_slice()),
            (None, Some(e)) => (e.seq, e.body.as_slice()),
            (None, None) => return,
        };
        let auth = self.key.as_ref().map(|k| format!("Bearer {}", k.expose()));
        let mut headers = Vec::new();
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        let deadline = deadline.min(now + self.timeout);
        self.client.start(&headers, body, false, dns, now, deadline);
        self.in_flight = Some(InFlight {
            seq,
            size: body.len(),
            started: now,
            cut_short: deadline < now + self.timeout,
        });
    }

    /// Registers its socket and deadline with the loop.
    pub fn register(&self, set: &mut PollSet, token: Token) {
        self.client.register(set, token);
    }

    /// Moves the POST in flight on; Some when it ended (and its outcome was applied).
    pub fn advance(&mut self, ready: Ready, dns: &mut Resolver, now: Instant) -> Option<Step> {
        let f = self.in_flight.as_ref()?;
        let result = self.client.advance(ready, dns, now)?;
        let (seq, size) = (f.seq, f.size);
        let (ms, cut_short) = (now.duration_since(f.started).as_millis(), f.cut_short);
        self.in_flight = None;
        let host = self.client.url().host.clone();
        let outcome = classify(result, cut_short, &host, self.key.as_ref());
        Some(self.apply(outcome, seq, size, ms, now))
    }

    /// Carries out what a POST's outcome means for the queue, the backoff, the stats and the log.
    pub fn apply(
        &mut self,
        outcome: Outcome,
        seq: u64,
        size: usize,
        ms: u128,
        now: Instant,
    ) -> Step {
        match outcome {
            Outcome::Delivered { status } => {
                if self.fresh.take().is_none() {
                    self.backlog.pop_delivered();
                }
                self.stats.sent += 1;
                self.backoff.reset();
                self.retry_at = None;
                debug!("API: Data sent successfully (seq {seq}, HTTP {status}, {ms} ms)");
                self.last_reason.clear();
                if let Some((since, attempts)) = self.failing.take() {
                    info!(
                        "API: delivery recovered after {attempts} failed attempts over {} s; {} snapshots waiting",
                        now.duration_since(since).as_secs(),
                        self.depth()
                    );
                    return Step::Recovered {
                        attempts,
                        down: now.duration_since(since),
                    };
                }
                Step::Delivered
            }
            Outcome::OutOfTime => {
                if let Some((s, b)) = self.fresh.take() {
                    self.backlog.push(s, b);
                }
                Step::OutOfTime
            }
            Outcome::Retry { reason, after } => {
                if let Some((s, b)) = self.fresh.take() {
                    self.backlog.push(s, b);
                }
                self.stats.failed += 1;
                let fits = (self.backlog.room() / size.max(1)) as u64;
                let backoff = self.backoff.next_delay();
                let delay = retry::delay(backoff, after, self.cycle, fits);
                let asked = match after {
                    Some(a) => format!(
                        " (Retry-After {a} s, honoured for {} s)",
                        retry::honoured(a, self.cycle, fits).as_secs()
                    ),
                    None => String::new(),
                };
                self.retry_at = Some(now + delay);
                let depth = self.depth();
                // A new outage, or the same one for a new reason: warn. A repeat: debug only.
                let changed = self.last_reason != reason;
                let report = self.failing.is_none() || changed;
                match &mut self.failing {
                    None => {
                        self.failing = Some((now, 1));
                        warn!(
                            "API: delivery failing: {reason}; keeping snapshots for retry (backlog {depth}), next try in {} s{asked}",
                            crate::decimal::Fixed(delay.as_secs_f64(), 1)
                        );
                    }
                    Some((_, n)) => {
                        *n += 1;
                        if changed {
                            warn!(
                                "API: delivery still failing ({n} attempts), now: {reason}; backlog {depth}, next try in {} s{asked}",
                                crate::decimal::Fixed(delay.as_secs_f64(), 1)
                            );
                        } else {
                            debug!(
                                "API: still failing ({n} attempts): {reason}; backlog {depth}, next try in {} s{asked}",
                                crate::decimal::Fixed(delay.as_secs_f64(), 1)
                            );
                        }
                    }
                }
                self.last_reason.clone_from(&reason);
                Step::Failed {
                    reason,
                    first: report,
                }
            }
            Outcome::Refused {
                status,
                status_text,
            } => {
                if self.fresh.take().is_none() {
                    self.backlog.pop_delivered();
                }
                self.stats.dropped += 1;
                self.backoff.reset();
                self.retry_at = None;
                self.failing = None;
                self.last_reason.clear();
                if let Some(suppressed) = self.rejected_log.allow(now) {
                    let more = if suppressed > 0 {
                        format!(" ({suppressed} more since the last report)")
                    } else {
                        String::new()
                    };
                    if status == 401 || status == 403 {
                        error!(
                            "API: API key rejected ({status_text}); snapshot seq {seq} dropped{more}"
                        );
                    } else {
                        warn!("API: snapshot seq {seq} refused ({status_text}); dropped{more}");
                    }
                }
                Step::Dropped
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, reason: &str) -> Result<Response, HttpError> {
        Ok(Response {
            status,
            reason: reason.into(),
            retry_after: (status == 429).then_some(99_999_999_999),
            body: Vec::new(),
        })
    }

    #[test]
    fn classify_is_a_table() {
        let k = Secret::new("sk-SECRET-123".into());
        let c = |r, cut| classify(r, cut, "h", Some(&k));
        assert_eq!(c(resp(204, ""), false), Outcome::Delivered { status: 204 });
        assert!(matches!(
            c(resp(500, "x"), false),
            Outcome::Retry { after: None, .. }
        ));
        assert!(matches!(
            c(resp(429, ""), false),
            Outcome::Retry { after: Some(_), .. }
        ));
        match c(resp(302, "Found"), false) {
            Outcome::Retry { reason, .. } => assert!(reason.contains("not followed"), "{reason}"),
            o => panic!("{o:?}"),
        }
        match c(resp(401, "bad key sk-SECRET-123"), false) {
            Outcome::Refused {
                status: 401,
                status_text,
            } => assert!(!status_text.contains("SECRET"), "{status_text}"),
            o => panic!("{o:?}"),
        }
        let timeout = || {
            Err(HttpError::Timeout {
                host: "h".into(),
                phase: "waiting for the reply",
            })
        };
        assert_eq!(c(timeout(), true), Outcome::OutOfTime);
        assert!(matches!(c(timeout(), false), Outcome::Retry { .. }));
    }

    #[test]
    fn apply_keeps_retries_and_drops_refusals() {
        let url = Url::parse("http://127.0.0.1:9/a", &["http"]).unwrap();
        let (b, _) = Backlog::new(1 << 20, None).unwrap();
        let cycle = Duration::from_secs(5);
        let mut r = Rest::new(url, None, Duration::from_secs(2), cycle, b, None, true);
        let t0 = Instant::now();
        r.enqueue(0, b"{}".to_vec(), t0);
        assert!(r.ready(t0));
        let retry = Outcome::Retry {
            reason: "x".into(),
            after: Some(99_999_999_999),
        };
        let step = r.apply(retry, 0, 2, 1, t0);
        assert!(matches!(step, Step::Failed { first: true, .. }));
        assert_eq!(r.depth(), 1);
        // Retry-After honoured for 3 cycles at most.
        assert!(!r.ready(t0 + cycle * 3 - Duration::from_millis(1)));
        assert!(r.ready(t0 + cycle * 3));
        r.enqueue(1, b"{}".to_vec(), t0);
        assert_eq!(r.depth(), 2);
        let step = r.apply(Outcome::Delivered { status: 200 }, 0, 2, 1, t0);
        assert!(matches!(step, Step::Recovered { attempts: 1, .. }));
        assert_eq!(r.depth(), 1);
        let refused = Outcome::Refused {
            status: 400,
            status_text: "HTTP 400".into(),
        };
        assert!(matches!(r.apply(refused, 1, 2, 1, t0), Step::Dropped));
        assert_eq!(
            (r.depth(), r.stats.sent, r.stats.failed, r.stats.dropped),
            (0, 1, 1, 1)
        );
    }
}
