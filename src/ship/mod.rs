//! Shipping snapshots to the platform: REST with a store-and-forward backlog, WebSocket in real
//! time, TLS, debug events, key registration.
//!
//! Every component is a state machine the agent's one poll(2) drives (`register` adds their
//! fds and deadlines to the poll set, `advance` lets each react to its readiness and timers);
//! nothing here waits. Name lookups go through `dns` (UDP, in the same poll set), connections
//! through `net::Connector`, POSTs through `client::Client`, which keeps its connection.
//!
//! Per cycle: `submit` sends the snapshot on the WebSocket (non-blocking) and opens the cycle's
//! REST window of one HTTP_TIMEOUT (`Phase::Posting`): the first POST gets the whole timeout,
//! catch-up POSTs from the backlog what is left of the window, at most 10 a cycle; a failure
//! ends the window (the backoff decides the next try). The WebSocket connects and reconnects on
//! its own timers, each attempt bounded by HTTP_TIMEOUT; debug events go out one at a time.
//! A cycle never waits for shipping: a slow platform costs only its own timeouts.

pub mod backlog;
pub mod client;
pub mod debug_events;
pub mod dns;
pub mod http;
pub mod json;
pub mod net;
mod redact;
pub mod register;
pub mod rest;
mod retry;
pub mod tls;
pub mod url;
pub mod ws;
mod wskey;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use json::Object;
use tls::ClientConfig;

use crate::config::Config;
use crate::error::Error;
use crate::snapshot::{CaptureMode, Snapshot};
use crate::sys::poll::{PollSet, Token};
use backlog::Backlog;
use debug_events::DebugEvents;
use dns::Resolver;
use rest::{Rest, Step};
use ws::Ws;

pub use redact::redact;

/// Catch-up POSTs per cycle at most, so a recovering fleet does not flood the platform.
const MAX_POSTS_PER_CYCLE: u32 = 10;
/// A summary line at info this often.
const SUMMARY_EVERY: Duration = Duration::from_secs(600);

/// Exponential backoff from 1 s to 5 min with jitter: each delay is drawn from [d/2, d].
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    /// The first delay.
    pub const MIN: Duration = Duration::from_secs(1);
    /// The largest delay.
    pub const MAX: Duration = Duration::from_secs(300);

    /// Starts at [`Backoff::MIN`].
    pub fn new() -> Backoff {
        Backoff { next: Self::MIN }
    }
    /// Back to [`Backoff::MIN`] (after a success).
    pub fn reset(&mut self) {
        self.next = Self::MIN;
    }
    /// The next delay (jittered), doubling the one after it.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (d * 2).min(Self::MAX);
        let half = d.as_millis() as u64 / 2;
        Duration::from_millis(half + crate::sys::random::u64() % (half + 1))
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

/// Lets one event through per period; counts what it held back.
pub struct Limiter {
    period: Duration,
    last: Option<Instant>,
    held: u64,
}

impl Limiter {
    /// One event per `period`.
    pub fn new(period: Duration) -> Limiter {
        Limiter {
            period,
            last: None,
            held: 0,
        }
    }
    /// Some(number held back since the last one) when the event may be logged now.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        if self.last.is_some_and(|l| now < l + self.period) {
            self.held += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.held))
    }
}

/// FNV-1a, 64 bit: a hash that stays the same across builds and platforms.
fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// How long until the first cycle ends, so that cycles end at wall-clock times whose offset in
/// the cycle is derived from SERVER_ID (a fleet spreads over the cycle instead of posting in
/// lockstep; an agent keeps its phase across restarts). At least half a cycle, so the first
/// snapshot measures a useful window.
pub fn phase_delay(server_id: &str, cycle: Duration, unix_ms: u64) -> Duration {
    let cycle_ms = cycle.as_millis().max(1) as u64;
    let phase = fnv1a(server_id) % cycle_ms;
    let mut d = (phase + cycle_ms - unix_ms % cycle_ms) % cycle_ms;
    if d < cycle_ms / 2 {
        d += cycle_ms;
    }
    Duration::from_millis(d)
}

/// This cycle's REST shipping, opened by `submit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing more to POST until the next snapshot.
    Idle,
    /// POSTing within the cycle's window (one HTTP_TIMEOUT from `submit`): `posts` started so
    /// far. The first POST gets the whole timeout, catch-up POSTs what is left of the window.
    Posting { end: Instant, posts: u32 },
}

/// Poll-set tokens of the shipping components (the agent's own are 0 and 1).
pub const REST: Token = Token(2);
/// The WebSocket's token.
pub const WEBSOCKET: Token = Token(3);
/// The debug events' token.
pub const DEBUG: Token = Token(4);

/// Interval counters for the summary line.
#[derive(Default)]
struct Marks {
    rest: rest::Stats,
    ws: ws::Stats,
}

/// Everything that ships: REST with its backlog, the WebSocket, debug events, the resolver.
pub struct Shipper {
    timeout: Duration,
    ca_file: Option<PathBuf>,
    dns: Resolver,
    rest: Option<Rest>,
    ws: Option<Ws>,
    debug: Option<DebugEvents>,
    phase: Phase,
    capture: Option<CaptureMode>,
    started: bool,
    summary_at: Instant,
    marks: Marks,
    /// CONFIG for the start event (sent once).
    config_summary: Object,
    /// Snapshots delivered (REST + WebSocket) when last looked, and when that number last grew.
    delivered: u64,
    last_delivery: Option<std::time::SystemTime>,
    last: LastAttempt,
}

/// The last REST attempt and delivery, for the status file.
#[derive(Default)]
struct LastAttempt {
    attempt: Option<(Instant, &'static str)>,
    reason: String,
    delivered: Option<Instant>,
}

/// Builds the TLS config when any URL needs it.
fn tls_for(cfg: &Config) -> Result<Option<Arc<ClientConfig>>, Error> {
    let any = [
        &cfg.platform_api_url,
        &cfg.platform_ws_url,
        &cfg.debug_api_url,
    ]
    .iter()
    .any(|u| u.as_ref().is_some_and(|u| u.is_tls()));
    if !any {
        return Ok(None);
    }
    let roots = tls::roots(cfg.ca_file.as_deref()).map_err(|e| Error::Other(e.to_string()))?;
    tls::client_config(roots)
        .map(Some)
        .map_err(|e| Error::Other(e.to_string()))
}

impl Shipper {
    /// The shipping `cfg` asks for (an error when its TLS setup or spool cannot be used).
    pub fn new(cfg: &Config, run_id: &str, now: Instant) -> Result<Shipper, Error> {
        let tls = tls_for(cfg)?;
        Shipper::build(cfg, run_id, now, tls, None)
    }

    /// After a config reload: shipping for the new settings. What did not change is kept as it
    /// is (a connected WebSocket stays connected, a kept REST connection stays); the REST
    /// backlog always moves over (BACKLOG_KB and BACKLOG_DIR changes wait for a restart).
    /// Err (with `old` untouched, for the caller to keep) when the new settings cannot ship,
    /// e.g. an https URL whose CA_FILE cannot be read. Ok(None) when no platform is left.
    pub fn reload(
        old: Option<Shipper>,
        cfg: &Config,
        run_id: &str,
        now: Instant,
    ) -> Result<Option<Shipper>, (Option<Shipper>, Error)> {
        if !cfg.has_platform() {
            if let Some(n) = old.as_ref().map(|s| s.counters().0).filter(|&n| n > 0) {
                warn!("no platform URL any more: {n} snapshots waiting for delivery are dropped");
            }
            return Ok(None);
        }
        let tls = match tls_for(cfg) {
            Ok(t) => t,
            Err(e) => return Err((old, e)),
        };
        let Some(mut old) = old else {
            return match Shipper::build(cfg, run_id, now, tls, None) {
                Ok(s) => Ok(Some(s)),
                Err(e) => Err((None, e)),
            };
        };
        let same_tls = old.ca_file == cfg.ca_file;
        let key = cfg.api_key.as_ref();
        let keep_rest = old.rest.as_ref().is_some_and(|r| {
            same_tls
                && cfg
                    .platform_api_url
                    .as_ref()
                    .is_some_and(|u| r.same_settings(u, key, cfg.http_timeout))
        });
        // Only a backlog made anew (from BACKLOG_DIR, when no REST ran before) can fail to
        // build; then nothing was taken from the old shipping, which is handed back whole.
        let kept_rest = if keep_rest { old.rest.take() } else { None };
        let backlog = old.rest.as_mut().map(Rest::take_backlog);
        let mut s = match Shipper::build(cfg, run_id, now, tls, backlog) {
            Ok(s) => s,
            Err(e) => return Err((Some(old), e)),
        };
        if let Some(r) = kept_rest {
            s.rest = Some(r);
        }
        if let (Some(w), Some(u)) = (old.ws.take(), &cfg.platform_ws_url) {
            if same_tls && w.same_settings(u, key, cfg.http_timeout) {
                s.ws = Some(w);
            }
        }
        s.started = old.started;
        s.capture = old.capture;
        s.summary_at = old.summary_at;
        s.dns = old.dns;
        s.last = old.last;
        s.delivered = old.delivered;
        s.last_delivery = old.last_delivery;
        Ok(Some(s))
    }

    fn build(
        cfg: &Config,
        run_id: &str,
        now: Instant,
        tls: Option<Arc<ClientConfig>>,
        backlog: Option<Backlog>,
    ) -> Result<Shipper, Error> {
        let reloading = backlog.is_some();
        let rest = match cfg.platform_api_url.as_ref() {
            None => None,
            Some(u) => {
                let backlog = match backlog {
                    Some(b) => b,
                    None => {
                        let (backlog, warnings) = Backlog::new(
                            cfg.backlog_kb as usize * 1024,
                            cfg.backlog_dir.as_deref(),
                        )?;
                        for w in warnings {
                            warn!("{w}");
                        }
                        if !backlog.is_empty() {
                            info!(
                                "API: {} snapshots from the spool wait for delivery",
                                backlog.len()
                            );
                        }
                        backlog
                    }
                };
                Some(Rest::new(
                    u.clone(),
                    cfg.api_key.clone(),
                    cfg.http_timeout,
                    cfg.cycle,
                    backlog,
                    tls.clone(),
                    cfg.http_keep_alive,
                ))
            }
        };
        let ws = cfg.platform_ws_url.as_ref().map(|u| {
            Ws::new(
                u.clone(),
                cfg.api_key.clone(),
                cfg.http_timeout,
                tls.clone(),
                now,
            )
        });
        let debug = cfg.debug_api_url.as_ref().map(|u| {
            DebugEvents::new(
                u.clone(),
                cfg.api_key.clone(),
                cfg.server_id.clone(),
                run_id.to_owned(),
                tls.clone(),
                now,
            )
        });
        let opt = |u: &Option<crate::config::Url>| u.as_ref().map(|u| u.to_string());
        let config_summary = Object::new()
            .with("interface", cfg.interface.clone())
            .with("cycleSeconds", cfg.cycle.as_secs())
            .with("platformApiUrl", opt(&cfg.platform_api_url))
            .with("platformWsUrl", opt(&cfg.platform_ws_url))
            .with("httpTimeoutSeconds", cfg.http_timeout.as_secs())
            .with("backlogKb", u64::from(cfg.backlog_kb))
            .with(
                "backlogDir",
                cfg.backlog_dir.as_ref().map(|p| p.display().to_string()),
            )
            .with(
                "caFile",
                cfg.ca_file.as_ref().map(|p| p.display().to_string()),
            )
            .with("apiKeySet", cfg.api_key.is_some())
            .with("logLevel", cfg.log_level.name());
        if cfg.api_key.is_none() {
            warn!("API_KEY is not set: requests go without Authorization");
        }
        if !reloading && cfg.http_timeout >= cfg.cycle {
            warn!(
                "HTTP_TIMEOUT ({} s) is not shorter than CYCLE_TIME ({} s): a hanging server will cost whole cycles",
                cfg.http_timeout.as_secs(),
                cfg.cycle.as_secs()
            );
        }
        Ok(Shipper {
            timeout: cfg.http_timeout,
            ca_file: cfg.ca_file.clone(),
            dns: Resolver::system(),
            rest,
            ws,
            debug,
            phase: Phase::Idle,
            capture: None,
            started: false,
            summary_at: now + SUMMARY_EVERY,
            marks: Marks::default(),
            config_summary,
            delivered: 0,
            last_delivery: None,
            last: LastAttempt::default(),
        })
    }

    /// (`agent.backlog`, `agent.lost`) for the next snapshot.
    pub fn counters(&self) -> (u64, u64) {
        self.rest
            .as_ref()
            .map_or((0, 0), |r| (r.depth() as u64, r.backlog.lost()))
    }

    /// REST connections opened so far (each a TLS handshake over https).
    pub fn rest_connects(&self) -> u64 {
        self.rest.as_ref().map_or(0, Rest::connects)
    }

    /// When a platform last accepted a snapshot (REST 2xx or a WebSocket message sent).
    pub fn last_delivery(&self) -> Option<std::time::SystemTime> {
        self.last_delivery
    }

    fn note_deliveries(&mut self) {
        let n = self.rest.as_ref().map_or(0, |r| r.stats.sent)
            + self.ws.as_ref().map_or(0, |w| w.stats.sent);
        if n > self.delivered {
            self.delivered = n;
            self.last_delivery = Some(std::time::SystemTime::now());
        }
    }

    /// The delivery part of the status file; `now`/`now_ms` turn the attempts' monotonic times
    /// into wall-clock labels.
    pub fn delivery(&self, now: Instant, now_ms: u64) -> crate::status::Delivery {
        let label = |t: Instant| {
            let ago = now.saturating_duration_since(t).as_millis() as u64;
            crate::timefmt::format_millis(now_ms.saturating_sub(ago))
        };
        let stats = self.rest.as_ref().map(|r| r.stats).unwrap_or_default();
        crate::status::Delivery {
            last_attempt: self.last.attempt.map(|(t, _)| label(t)),
            last_result: self.last.attempt.map(|(_, r)| match r {
                "" => self.last.reason.clone(),
                r => r.to_owned(),
            }),
            last_delivered: self.last.delivered.map(label),
            delivered: stats.sent,
            failed: stats.failed,
            websocket_up: self.ws.as_ref().map(|w| w.is_up()),
        }
    }

    fn event(&mut self, now: Instant, kind: &str, fields: Object) {
        if let Some(d) = self.debug.as_mut() {
            d.event(now, kind, fields);
        }
    }

    /// Takes this cycle's snapshot: out on the WebSocket (non-blocking), into the REST queue,
    /// and opens the cycle's REST window.
    pub fn submit(&mut self, snap: &Snapshot, now: Instant) {
        let text = match serde_json::to_string(snap) {
            Ok(t) => t,
            Err(e) => {
                error!("cannot serialise snapshot {}: {e}", snap.agent.seq);
                return;
            }
        };
        let seq = snap.agent.seq;
        let mode = snap.agent.capture.mode;
        if !self.started {
            self.started = true;
            let mut f = Object::new()
                .with("config", std::mem::take(&mut self.config_summary))
                .with("captureMode", mode_name(mode));
            if let Some(r) = &snap.agent.capture.off_reason {
                f.set("captureOffReason", r.as_str().into());
            }
            self.event(now, "start", f);
        } else if self.capture != Some(mode) {
            let reason = snap.agent.capture.off_reason.clone();
            let f = Object::new()
                .with("mode", mode_name(mode))
                .with("offReason", reason);
            self.event(now, "capture", f);
        }
        self.capture = Some(mode);
        if let Some(ws) = self.ws.as_mut() {
            ws.end_cycle();
            ws.send(seq, &text, now);
        }
        if let Some(rest) = self.rest.as_mut() {
            rest.enqueue(seq, text.into_bytes(), now);
        }
        self.note_deliveries();
        self.phase = Phase::Posting {
            end: now + self.timeout,
            posts: 0,
        };
        if now >= self.summary_at {
            self.summary_at = now + SUMMARY_EVERY;
            info!("{}", self.summary());
        }
        self.drive_rest(now);
        self.flush_ws_events(now);
    }

    /// The 10-minute summary (counts since the previous one), with the seed's phrases.
    fn summary(&mut self) -> String {
        let mut parts = Vec::new();
        if let Some(r) = &self.rest {
            let (s, m) = (r.stats, self.marks.rest);
            parts.push(format!(
                "API: Data sent successfully {} times, {} failed attempts, {} refused, backlog {}, lost {}",
                s.sent - m.sent,
                s.failed - m.failed,
                s.dropped - m.dropped,
                r.depth(),
                r.backlog.lost()
            ));
            self.marks.rest = s;
        }
        if let Some(w) = &self.ws {
            let (s, m) = (w.stats, self.marks.ws);
            parts.push(format!(
                "WebSocket: Real-time data sent successfully {} times, {} skipped, {} connects, {}",
                s.sent - m.sent,
                s.skipped - m.skipped,
                s.connects - m.connects,
                if w.is_up() {
                    "connected"
                } else {
                    "disconnected"
                }
            ));
            self.marks.ws = s;
        }
        format!("last 10 min: {}", parts.join("; "))
    }

    /// Registers every shipping fd (REST, WebSocket, debug events, and the DNS queries they
    /// wait on) and the next time any of them has something to do.
    pub fn register(&self, set: &mut PollSet) {
        if let Some(r) = &self.rest {
            r.register(set, REST);
        }
        if let Some(w) = &self.ws {
            w.register(set, WEBSOCKET);
        }
        if let Some(d) = &self.debug {
            d.register(set, DEBUG);
        }
    }

    /// One turn of the loop: each component reacts to its readiness and timers, then the
    /// cycle's REST phase decides what comes next.
    pub fn advance(&mut self, set: &PollSet, now: Instant) {
        if let Some(ws) = self.ws.as_mut() {
            ws.advance(set.ready(WEBSOCKET), &mut self.dns, now);
        }
        if let Some(step) = self
            .rest
            .as_mut()
            .and_then(|r| r.advance(set.ready(REST), &mut self.dns, now))
        {
            self.on_rest_step(step, now);
        }
        self.drive_rest(now);
        if let Some(d) = self.debug.as_mut() {
            d.advance(set.ready(DEBUG), &mut self.dns, now);
        }
        self.note_deliveries();
        self.flush_ws_events(now);
    }

    fn on_rest_step(&mut self, step: Step, now: Instant) {
        let Some(rest) = self.rest.as_ref() else {
            return;
        };
        let (depth, lost) = (rest.depth(), rest.backlog.lost());
        match &step {
            Step::Delivered | Step::Recovered { .. } => {
                self.last.attempt = Some((now, "delivered"));
                self.last.delivered = Some(now);
            }
            Step::Dropped => self.last.attempt = Some((now, "refused")),
            Step::Failed { reason, .. } => {
                self.last.attempt = Some((now, ""));
                self.last.reason.clone_from(reason);
            }
            Step::OutOfTime => {}
        }
        match step {
            Step::Delivered | Step::Dropped => {}
            Step::OutOfTime => self.close_window(),
            Step::Failed { reason, first } => {
                self.close_window();
                if first {
                    self.event(
                        now,
                        "deliveryFailed",
                        Object::new()
                            .with("transport", "rest")
                            .with("detail", reason)
                            .with("backlog", depth as u64)
                            .with("lost", lost),
                    );
                }
            }
            Step::Recovered { attempts, down } => self.event(
                now,
                "deliveryRecovered",
                Object::new()
                    .with("transport", "rest")
                    .with("failedAttempts", attempts)
                    .with("downSeconds", down.as_secs())
                    .with("backlog", depth as u64)
                    .with("lost", lost),
            ),
        }
    }

    /// Starts the cycle's next POST when one is due and the window allows it.
    fn drive_rest(&mut self, now: Instant) {
        let Phase::Posting { end, posts } = self.phase else {
            return;
        };
        let Some(rest) = self.rest.as_mut() else {
            return self.close_window();
        };
        if rest.busy() {
            return;
        }
        let left = end.saturating_duration_since(now);
        if posts >= MAX_POSTS_PER_CYCLE || !rest.ready(now) || left < Duration::from_millis(50) {
            return self.close_window();
        }
        let deadline = if posts == 0 { now + self.timeout } else { end };
        rest.start(&mut self.dns, now, deadline);
        self.phase = Phase::Posting {
            end,
            posts: posts + 1,
        };
    }

    fn close_window(&mut self) {
        if self.phase == Phase::Idle {
            return;
        }
        self.phase = Phase::Idle;
        if let Some(ws) = self.ws.as_mut() {
            ws.end_cycle();
        }
    }

    fn flush_ws_events(&mut self, now: Instant) {
        let Some(ws) = self.ws.as_mut() else { return };
        let events = std::mem::take(&mut ws.events);
        for (kind, detail) in events {
            self.event(
                now,
                kind,
                Object::new()
                    .with("transport", "websocket")
                    .with("detail", detail),
            );
        }
    }
}

/// A capture mode as the snapshot writes it.
fn mode_name(mode: CaptureMode) -> &'static str {
    match mode {
        CaptureMode::Live => "live",
        CaptureMode::Replay => "replay",
        CaptureMode::Off => "off",
    }
}

/// `check`: tries each configured endpoint once with `snap` and returns one line each, and
/// whether all worked.
pub fn check(cfg: &Config, snap: &Snapshot) -> (Vec<String>, bool) {
    let mut lines = Vec::new();
    let mut ok = true;
    let tls = match tls_for(cfg) {
        Ok(t) => t,
        Err(e) => {
            lines.push(format!("TLS            {e}"));
            return (lines, false);
        }
    };
    let text = serde_json::to_string(snap).unwrap_or_default();
    if let Some(url) = &cfg.platform_api_url {
        let auth = cfg
            .api_key
            .as_ref()
            .map(|k| format!("Bearer {}", k.expose()));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        let t0 = Instant::now();
        let res = client::post_once(
            url,
            &headers,
            text.as_bytes(),
            cfg.http_timeout,
            tls.as_ref(),
            false,
        );
        let ms = t0.elapsed().as_millis();
        let line = match res {
            Ok(r) if (200..300).contains(&r.status) => {
                format!("delivered a snapshot (HTTP {}, {ms} ms)", r.status)
            }
            Ok(r) => {
                ok = false;
                let what = if r.status == 401 || r.status == 403 {
                    "API key rejected"
                } else {
                    "refused"
                };
                format!(
                    "FAILED: {what} ({})",
                    http::status_text(r.status, &r.reason, cfg.api_key.as_ref())
                )
            }
            Err(e) => {
                ok = false;
                format!("FAILED: {}", redact(&e.to_string(), cfg.api_key.as_ref()))
            }
        };
        lines.push(format!("{:<14} {line}", "REST check"));
    }
    if let Some(url) = &cfg.platform_ws_url {
        let mut ws = Ws::new(
            url.clone(),
            cfg.api_key.clone(),
            cfg.http_timeout,
            tls.clone(),
            Instant::now(),
        );
        let t0 = Instant::now();
        let line = match ws.check_once(&text, tls.as_ref()) {
            Ok(()) => format!(
                "connected and sent a snapshot ({} ms)",
                t0.elapsed().as_millis()
            ),
            Err(e) => {
                ok = false;
                format!("FAILED: {}", redact(&e, cfg.api_key.as_ref()))
            }
        };
        lines.push(format!("{:<14} {line}", "WebSocket check"));
    }
    (lines, ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_names_are_the_snapshot_spelling() {
        for m in [CaptureMode::Live, CaptureMode::Replay, CaptureMode::Off] {
            assert_eq!(
                serde_json::to_value(m).unwrap(),
                serde_json::Value::from(mode_name(m))
            );
        }
    }

    #[test]
    fn backoff_doubles_to_five_minutes_with_jitter() {
        let mut b = Backoff::new();
        let mut bases = Vec::new();
        for _ in 0..12 {
            let base = b.next;
            let d = b.next_delay();
            assert!(d >= base / 2 && d <= base, "{d:?} for {base:?}");
            bases.push(base.as_secs());
        }
        assert_eq!(&bases[..10], &[1, 2, 4, 8, 16, 32, 64, 128, 256, 300]);
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs(1));
    }

    #[test]
    fn phase_is_stable_spread_and_at_least_half_a_cycle() {
        let cycle = Duration::from_secs(5);
        let t = 1_700_000_000_123u64;
        let d = phase_delay("router-1", cycle, t);
        assert_eq!(d, phase_delay("router-1", cycle, t));
        assert!(d >= cycle / 2 && d < cycle * 3 / 2, "{d:?}");
        // The cycle then ends at the same offset into the cycle whenever the agent starts.
        for start in [t, t + 1, t + 2_345, t + 4_999, t + 86_400_000] {
            let fin = start + phase_delay("router-1", cycle, start).as_millis() as u64;
            assert_eq!(fin % 5000, (t + d.as_millis() as u64) % 5000);
        }
        // 100 agents spread over the cycle: every fifth of it is used.
        let mut buckets = [0; 5];
        for i in 0..100 {
            let fin = t + phase_delay(&format!("agent-{i}"), cycle, t).as_millis() as u64;
            buckets[((fin % 5000) / 1000) as usize] += 1;
        }
        assert!(buckets.iter().all(|&n| n >= 8), "{buckets:?}");
    }

    struct Fixed;
    impl crate::config::Detect for Fixed {
        fn hostname(&self) -> Option<String> {
            Some("h".into())
        }
        fn default_interface(&self) -> Option<String> {
            None
        }
        fn interface_ipv4(&self, _: &str) -> Option<(std::net::Ipv4Addr, u8)> {
            None
        }
    }

    #[test]
    fn summary_keeps_the_seed_phrases_and_counts_per_interval() {
        let text = "PLATFORM_API_URL=http://127.0.0.1:9/a\nPLATFORM_WS_URL=ws://127.0.0.1:9/w\n";
        let (set, w) = crate::config::parse_file(text, std::path::Path::new("t")).unwrap();
        let cfg = Config::from_layers(None, &set, w, &Fixed).unwrap();
        let mut s = Shipper::new(&cfg, "run12345", Instant::now()).unwrap();
        s.rest.as_mut().unwrap().stats.sent = 7;
        let line = s.summary();
        assert!(
            line.contains("API: Data sent successfully 7 times"),
            "{line}"
        );
        assert!(
            line.contains("WebSocket: Real-time data sent successfully 0 times"),
            "{line}"
        );
        s.rest.as_mut().unwrap().stats.sent = 9;
        assert!(s.summary().contains("API: Data sent successfully 2 times"));
    }

    #[test]
    fn limiter_counts_what_it_held_back() {
        let t0 = Instant::now();
        let mut l = Limiter::new(Duration::from_secs(60));
        assert_eq!(l.allow(t0), Some(0));
        assert_eq!(l.allow(t0 + Duration::from_secs(10)), None);
        assert_eq!(l.allow(t0 + Duration::from_secs(20)), None);
        assert_eq!(l.allow(t0 + Duration::from_secs(61)), Some(2));
    }
}
