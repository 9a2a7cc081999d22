//! DEBUG_API_URL: diagnostic events (start, capture on/off, delivery failures and recoveries)
//! POSTed as small JSON objects. Rate-limited (a burst of 10, then one a minute), sent within the
//! loop (one at a time, each within `TIMEOUT`), dropped on failure: never retried, never in the
//! backlog.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::json::{Field, Object};
use super::tls::ClientConfig;

use super::client::Client;
use super::dns::Resolver;
use crate::config::{Secret, Url};
use crate::sys::poll::{PollSet, Ready, Token};

const BURST: u32 = 10;
const REFILL: Duration = Duration::from_secs(60);
const QUEUE: usize = 8;
/// The longest one event may take.
const TIMEOUT: Duration = Duration::from_secs(2);

/// DEBUG_API_URL's queue of events and the client that posts them.
pub struct DebugEvents {
    client: Client,
    /// The event in flight (its name, for the log).
    sending: Option<Object>,
    key: Option<Secret>,
    server_id: String,
    run_id: String,
    queue: VecDeque<Object>,
    tokens: u32,
    refilled: Instant,
    suppressed: u64,
}

impl DebugEvents {
    /// Events for `url`, sent with `key` as the bearer.
    pub fn new(
        url: Url,
        key: Option<Secret>,
        server_id: String,
        run_id: String,
        tls: Option<Arc<ClientConfig>>,
        now: Instant,
    ) -> Self {
        DebugEvents {
            client: Client::new(url, tls, false),
            sending: None,
            key,
            server_id,
            run_id,
            queue: VecDeque::new(),
            tokens: BURST,
            refilled: now,
            suppressed: 0,
        }
    }

    /// Queues an event unless the rate limit says no (then it is counted in `suppressed`).
    /// `fields` win over the common members of the same name.
    pub fn event(&mut self, now: Instant, kind: &str, fields: Object) {
        while self.tokens < BURST && now >= self.refilled + REFILL {
            self.tokens += 1;
            self.refilled += REFILL;
        }
        if self.tokens == BURST {
            self.refilled = now;
        }
        if self.tokens == 0 || self.queue.len() >= QUEUE {
            self.suppressed += 1;
            return;
        }
        self.tokens -= 1;
        let mut obj = Object::new()
            .with("event", kind)
            .with("serverId", self.server_id.as_str())
            .with("runId", self.run_id.as_str())
            .with("agentVersion", crate::VERSION)
            .with("time", crate::timefmt::format(SystemTime::now()));
        obj.merge(fields);
        if self.suppressed > 0 {
            obj.set("suppressedEvents", Field::U64(self.suppressed));
            self.suppressed = 0;
        }
        self.queue.push_back(obj);
    }

    /// True while an event is queued or in flight.
    pub fn pending(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Registers its socket and deadline with the loop.
    pub fn register(&self, set: &mut PollSet, token: Token) {
        self.client.register(set, token);
    }

    /// Moves the event in flight on; starts the next queued one when none is.
    pub fn advance(&mut self, ready: Ready, dns: &mut Resolver, now: Instant) {
        if let Some(result) = self.client.advance(ready, dns, now) {
            let ev = self.sending.take().unwrap_or_default();
            // The name as JSON text (quoted), null when missing.
            let name = ev.get("event").map_or("null".to_owned(), |f| {
                serde_json::to_string(f).unwrap_or_default()
            });
            match result {
                Ok(r) if (200..300).contains(&r.status) => {
                    debug!("debug API: event {name} sent")
                }
                Ok(r) => debug!("debug API: event {name} refused with HTTP {}", r.status),
                Err(e) => debug!(
                    "debug API: event {name} not sent: {}",
                    super::redact(&e.to_string(), self.key.as_ref())
                ),
            }
        }
        if self.client.busy() {
            return;
        }
        let Some(ev) = self.queue.pop_front() else {
            return;
        };
        let body = ev.to_json();
        let auth = self.key.as_ref().map(|k| format!("Bearer {}", k.expose()));
        let mut headers = Vec::new();
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        self.client
            .start(&headers, body.as_bytes(), false, dns, now, now + TIMEOUT);
        self.sending = Some(ev);
        // A lookup or connect that fails at once is over now.
        self.advance(Ready::default(), dns, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limited_and_counted() {
        let url = Url::parse("http://127.0.0.1:9/d", &["http"]).unwrap();
        let t0 = Instant::now();
        let mut d = DebugEvents::new(url, None, "s".into(), "r".into(), None, t0);
        for _ in 0..20 {
            d.event(t0, "x", Object::new());
        }
        assert_eq!(d.queue.len(), QUEUE);
        d.queue.clear();
        // Two minutes later two tokens came back; the next event reports what was suppressed.
        d.event(
            t0 + Duration::from_secs(121),
            "y",
            Object::new().with("n", 1u64),
        );
        assert_eq!(d.queue[0].get("suppressedEvents"), Some(&Field::U64(12)));
        assert_eq!(d.queue[0].get("n"), Some(&Field::U64(1)));
        // 4 tokens had come back: 3 more pass, the 5th is suppressed.
        for _ in 0..4 {
            d.event(t0 + Duration::from_secs(121), "y", Object::new());
        }
        assert_eq!((d.queue.len(), d.suppressed), (4, 1));
    }
}
