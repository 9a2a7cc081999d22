//! REST delivery: one snapshot per POST, the backlog in front, retries with backoff.
//!
//! 2xx: delivered. 408, 429 (Retry-After honoured), 3xx (not followed), 5xx, connection and
//! timeout errors: the snapshot is kept and retried. Other 4xx: logged with the status and the
//! start of the body (401/403 as "API key rejected"), at most once a minute, and dropped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::tls::ClientConfig;

use super::backlog::Backlog;
use super::http::{self, HttpError};
use super::{redact, retry, Backoff, Limiter};
use crate::config::{Secret, Url};

pub struct Rest {
    url: Url,
    key: Option<Secret>,
    pub timeout: Duration,
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
    pub stats: Stats,
}

#[derive(Default, Clone, Copy)]
pub struct Stats {
    pub sent: u64,
    pub failed: u64,
    pub dropped: u64,
}

/// What one attempt did, for the shipper's cycle budget and the debug events.
pub enum Step {
    Delivered,
    /// Kept for a retry (the reason, and whether it starts an outage or changes its reason).
    Failed {
        reason: String,
        first: bool,
    },
    /// Cut short by the cycle's budget, not the server's fault: tried again next cycle.
    OutOfTime,
    Dropped,
    Recovered {
        attempts: u64,
        down: Duration,
    },
}

impl Rest {
    pub fn new(
        url: Url,
        key: Option<Secret>,
        timeout: Duration,
        cycle: Duration,
        backlog: Backlog,
    ) -> Rest {
        Rest {
            url,
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

    /// Hands the waiting snapshots over (to the shipper built after a config reload).
    pub fn take_backlog(&mut self) -> Backlog {
        if let Some((s, b)) = self.fresh.take() {
            self.backlog.push(s, b);
        }
        std::mem::replace(&mut self.backlog, Backlog::in_ram(0))
    }

    pub fn is_failing(&self) -> bool {
        self.failing.is_some()
    }

    /// Whether a POST is due now.
    pub fn ready(&self, now: Instant) -> bool {
        (self.fresh.is_some() || !self.backlog.is_empty()) && self.due(now)
    }

    /// Snapshots waiting (the one in flight included).
    pub fn depth(&self) -> usize {
        self.backlog.len() + usize::from(self.fresh.is_some())
    }

    /// POSTs the oldest waiting snapshot within `timeout` (at most HTTP_TIMEOUT). A catch-up
    /// POST that runs out of the cycle's time is not held against the server.
    pub fn attempt(
        &mut self,
        now: Instant,
        timeout: Duration,
        catch_up: bool,
        tls: Option<&Arc<ClientConfig>>,
    ) -> Step {
        let (seq, body) = match (&self.fresh, self.backlog.front()) {
            (Some((s, b)), _) => (*s, b.as_slice()),
            (None, Some(e)) => (e.seq, e.body.as_slice()),
            (None, None) => return Step::Delivered,
        };
        let auth = self.key.as_ref().map(|k| format!("Bearer {}", k.expose()));
        let mut headers = Vec::new();
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        let size = body.len();
        let started = Instant::now();
        let res = http::post(&self.url, &headers, body, timeout, tls, false);
        let ms = started.elapsed().as_millis();
        let retry = |reason: String, after: Option<u64>, this: &mut Rest| {
            if let Some((s, b)) = this.fresh.take() {
                this.backlog.push(s, b);
            }
            this.stats.failed += 1;
            let fits = (this.backlog.room() / size.max(1)) as u64;
            let backoff = this.backoff.next_delay();
            let delay = retry::delay(backoff, after, this.cycle, fits);
            let asked = match after {
                Some(a) => format!(
                    " (Retry-After {a} s, honoured for {} s)",
                    retry::honoured(a, this.cycle, fits).as_secs()
                ),
                None => String::new(),
            };
            this.retry_at = Some(now + delay);
            let depth = this.depth();
            // A new outage, or the same one for a new reason: warn. A repeat: debug only.
            let changed = this.last_reason != reason;
            let report = this.failing.is_none() || changed;
            match &mut this.failing {
                None => {
                    this.failing = Some((now, 1));
                    warn!(
                        "API: delivery failing: {reason}; keeping snapshots for retry (backlog {depth}), next try in {:.1} s{asked}",
                        delay.as_secs_f64()
                    );
                }
                Some((_, n)) => {
                    *n += 1;
                    if changed {
                        warn!(
                            "API: delivery still failing ({n} attempts), now: {reason}; backlog {depth}, next try in {:.1} s{asked}",
                            delay.as_secs_f64()
                        );
                    } else {
                        debug!(
                            "API: still failing ({n} attempts): {reason}; backlog {depth}, next try in {:.1} s{asked}",
                            delay.as_secs_f64()
                        );
                    }
                }
            }
            this.last_reason.clone_from(&reason);
            Step::Failed {
                reason,
                first: report,
            }
        };
        let resp = match res {
            Ok(r) => r,
            Err(HttpError::Timeout { .. }) if catch_up && timeout < self.timeout => {
                if let Some((s, b)) = self.fresh.take() {
                    self.backlog.push(s, b);
                }
                return Step::OutOfTime;
            }
            Err(e) => return retry(redact(&e.to_string(), self.key.as_ref()), None, self),
        };
        let status = resp.status;
        // Server text in logs: the reason phrase only (bounded, printable), masked.
        let status_text = http::status_text(status, &resp.reason, self.key.as_ref());
        match status {
            200..=299 => {
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
            408 | 429 | 500..=599 => {
                let reason = format!("{status_text} from {}", self.url.host);
                retry(reason, resp.retry_after, self)
            }
            300..=399 => {
                // The Location is never logged: it could echo the request's Authorization.
                let reason = format!(
                    "HTTP {status} redirect from {} not followed: fix PLATFORM_API_URL",
                    self.url.host
                );
                retry(reason, None, self)
            }
            _ => {
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
