//! The agent: one thread, one poll(2) loop. Each cycle it samples /proc, builds a snapshot and
//! ships it (to stdout when no platform is configured). Cycles run on the monotonic clock from a
//! fixed origin, so they never drift; wall-clock time is only used for the timestamps.

use std::io::Write;
use std::os::fd::AsFd;
use std::time::{Duration, Instant, SystemTime};

use crate::config::{self, Config, LoadOptions};
use crate::error::Error;
use crate::metrics::server::MetricsServer;
use crate::monitor::Monitor;
use crate::procfs::{Collector, Sample};
use crate::ship::register::{AtStart, PendingKey};
use crate::ship::Shipper;
use crate::snapshot::{self, AgentInfo, CaptureInfo, Device, Network, Snapshot};
use crate::status::{Delivery, Output, State, StatusFile};
use crate::sys::poll::{poll, Interest, PollSet, Ready, Token, Want};
use crate::sys::signals::{Signal, SignalFd};
use crate::timefmt;

/// Identity of this process's run: `runId` is random per start, `seq` counts snapshots.
pub struct RunState {
    /// Random per start (16 hex digits).
    pub run_id: String,
    /// When this process started (UTC).
    pub started_at: String,
    /// The next snapshot's number.
    pub seq: u64,
}

impl RunState {
    /// A new run identity, started at `now`.
    pub fn new(now: SystemTime) -> RunState {
        let mut b = [0u8; 8];
        crate::sys::random::fill(&mut b);
        let run_id = b.iter().map(|x| format!("{x:02x}")).collect();
        RunState {
            run_id,
            started_at: timefmt::format(now),
            seq: 0,
        }
    }
}

/// Fixed-period deadlines on the monotonic clock: deadline k is `origin + k * period`, so a late
/// wake-up never shifts later cycles; cycles missed entirely (a suspended process) are skipped,
/// not replayed in a burst.
#[derive(Debug, Clone)]
pub struct Scheduler {
    origin: Instant,
    period: Duration,
    next: u64,
}

impl Scheduler {
    /// Deadlines every `period` from `origin`.
    pub fn new(origin: Instant, period: Duration) -> Scheduler {
        Scheduler {
            origin,
            period,
            next: 1,
        }
    }

    /// The current deadline.
    pub fn deadline(&self) -> Instant {
        self.origin + self.period * self.next as u32
    }

    /// True when the current deadline has passed; advances to the next one after `now`.
    pub fn take_due(&mut self, now: Instant) -> bool {
        if now < self.deadline() {
            return false;
        }
        let elapsed = now.duration_since(self.origin).as_nanos();
        self.next = (elapsed / self.period.as_nanos()) as u64 + 1;
        true
    }

    /// A new period (after a config reload) starts counting from `now`.
    pub fn reset(&mut self, now: Instant, period: Duration) {
        *self = Scheduler::new(now, period);
    }
}

/// Loads the configuration, sets the log level and logs its warnings.
pub fn load_config(opts: &LoadOptions) -> Result<Config, Error> {
    let mut cfg = config::load(opts)?;
    crate::log::set_level(cfg.log_level);
    crate::ship::register::load_key_file(&mut cfg).map_err(|e| Error::Usage(e.to_string()))?;
    for w in &cfg.warnings {
        warn!("{w}");
    }
    Ok(cfg)
}

/// Assembles one snapshot; `seq` advances by one.
pub fn build_snapshot(
    cfg: &Config,
    state: &mut RunState,
    sample: Sample,
    capture: CaptureInfo,
    devices: Vec<Device>,
    window_ms: (u64, u64),
) -> Snapshot {
    let seq = state.seq;
    state.seq += 1;
    let (start, end) = window_ms;
    Snapshot {
        message_type: snapshot::MESSAGE_TYPE,
        schema_version: snapshot::SCHEMA_VERSION,
        server_id: cfg.server_id.clone(),
        server_ip: cfg.server_ip.map(|ip| ip.to_string()),
        snapshot_time: timefmt::format_millis(end),
        agent: AgentInfo {
            version: crate::VERSION,
            run_id: state.run_id.clone(),
            seq,
            started_at: state.started_at.clone(),
            capture,
            backlog: 0,
            lost: 0,
        },
        metrics: sample.metrics,
        network: Network {
            collection_start_time: timefmt::format_millis(start),
            collection_end_time: timefmt::format_millis(end),
            collection_duration_seconds: (end.saturating_sub(start)) as f64 / 1000.0,
            interfaces: sample.interfaces,
            connected_devices: devices,
        },
    }
}

/// `netmon-agent snapshot`: measure for `window`, print one pretty snapshot.
pub fn snapshot(opts: LoadOptions, window: Duration) -> Result<(), Error> {
    let cfg = load_config(&opts)?;
    let mut state = RunState::new(SystemTime::now());
    let mut collector = Collector::for_config(&cfg);
    let start = Instant::now();
    collector.prime(start);
    let mut cap = crate::monitor::Monitor::new(&cfg, start);
    // Capture for the window: the same poll as `run`, until the window ends.
    let end = start + window;
    while let Some(left) = end
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
    {
        let timeout = cap.deadline().map_or(left, |d| {
            d.saturating_duration_since(Instant::now()).min(left)
        });
        let mut ports = [usize::MAX; crate::devices::MAX_PORTS];
        let interests: Vec<Interest> = cap
            .fds()
            .zip(ports.iter_mut())
            .map(|((port, fd), slot)| {
                *slot = port;
                Interest {
                    fd,
                    read: true,
                    write: false,
                }
            })
            .collect();
        let mut ready = [Ready::default(); crate::devices::MAX_PORTS];
        if interests.is_empty() {
            std::thread::sleep(timeout);
        } else {
            poll(&interests, timeout, &mut ready).map_err(|e| Error::Sys {
                what: "poll",
                source: e,
            })?;
        }
        drop(interests);
        cap.wake(Instant::now(), |port| {
            ports.iter().zip(&ready).any(|(&p, r)| p == port && r.error)
        });
    }
    let sample = collector.sample(Instant::now());
    let (now, wall) = (Instant::now(), SystemTime::now());
    let (capture, devices) = cap.end_cycle(now, wall);
    let end_ms = timefmt::unix_millis(wall);
    let window_ms = now.saturating_duration_since(start).as_millis() as u64;
    let snap = build_snapshot(
        &cfg,
        &mut state,
        sample,
        capture,
        devices,
        (end_ms.saturating_sub(window_ms), end_ms),
    );
    let text = crate::snapshot::to_pretty_json(&snap)
        .map_err(|e| Error::Other(format!("serialising snapshot: {e}")))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}").map_err(|e| Error::Sys {
        what: "writing to stdout",
        source: e,
    })?;
    Ok(())
}

/// Poll-set tokens of the agent's own fds (the shipping components use 2..=4).
const SIGNALS: Token = Token(0);
const REGISTRATION: Token = Token(5);
const METRICS: Token = Token(6);
/// The capture ring of port k (one per INTERFACE) is `Token(CAPTURE + k)`.
const CAPTURE: u16 = 100;
/// The longest the loop sleeps when nothing at all is due.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// Where the snapshots go.
enum Destination {
    /// One JSON line per cycle (no platform configured).
    Stdout,
    /// No API_KEY yet: asking GENERATE_KEY_URL for one; cycles start once it came.
    Registering(Box<AtStart>),
    Platform(Box<Shipper>),
}

/// Whether the loop goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep polling.
    Continue,
    /// A stop signal came: end the loop.
    Stop,
}

/// The running agent: every component it drives, each a state machine that registers its fds
/// and deadlines with one poll set. `poll_once` is one turn of the loop: register, wait, then
/// let each component react; nothing else anywhere waits.
pub struct Agent {
    opts: LoadOptions,
    cfg: Config,
    signals: SignalFd,
    /// Capture ring, device table, ARP scanner, names, offload check.
    monitor: Monitor,
    collector: Collector,
    sched: Scheduler,
    state: RunState,
    output: Destination,
    /// METRICS_LISTEN: the Prometheus listener and its connections.
    metrics: Option<MetricsServer>,
    /// STATUS_FILE: the local status page's data.
    status: Option<StatusFile>,
    started: SystemTime,
    /// Where the current snapshot's window started, on the monotonic clock (its start label
    /// is the end label minus the window, so a wall-clock step never changes a duration).
    window_start: Instant,
    wall_watch: crate::clock::StepWatch,
    /// A key registered at start: it stays this run's key across reloads (never a second
    /// registration), and, while its write failed, the write is retried once a cycle.
    registered_key: Option<crate::config::Secret>,
    key_pending: Option<PendingKey>,
    set: PollSet,
}

impl Agent {
    /// Loads the config, opens the capture, drops privileges and sets up the output. `signals`
    /// already blocks SIGHUP/SIGINT/SIGTERM, so a signal during start-up waits for the loop.
    pub fn start(opts: LoadOptions, signals: SignalFd) -> Result<Agent, Error> {
        let cfg = load_config(&opts)?;
        crate::log::set_target(cfg.log_target);
        let monitor = Monitor::new(&cfg, Instant::now());
        // METRICS_LISTEN: bound before RUN_AS_USER drops the right to bind a port below 1024.
        let metrics = match cfg.metrics_listen {
            Some(addr) => {
                let server = MetricsServer::bind(addr, 64 * 1024)
                    .map_err(|e| Error::Other(e.to_string()))?;
                info!("serving Prometheus metrics on http://{addr}/metrics");
                Some(server)
            }
            None => None,
        };
        // RUN_AS_USER: this must stay AFTER the capture socket is opened (just above); later
        // reopens go through crate::sys::privdrop::with_net_raw.
        if let Some(user) = &cfg.run_as_user {
            let dropped = crate::sys::privdrop::drop_to(user)?;
            info!("{dropped}");
        }
        let started = SystemTime::now();
        let state = RunState::new(started);
        let now = Instant::now();
        let output =
            if cfg.api_key.is_none() && cfg.generate_key_url.is_some() && cfg.has_platform() {
                let r = AtStart::new(&cfg, now).map_err(|e| Error::Other(e.to_string()))?;
                Destination::Registering(Box::new(r))
            } else if cfg.has_platform() {
                Destination::Platform(Box::new(Shipper::new(&cfg, &state.run_id, now)?))
            } else {
                Destination::Stdout
            };
        let mut collector = Collector::for_config(&cfg);
        collector.prime(now);
        let status = cfg.status_file.clone().map(StatusFile::new);
        let mut agent = Agent {
            sched: Scheduler::new(now, cfg.cycle),
            opts,
            cfg,
            signals,
            monitor,
            collector,
            state,
            output,
            metrics,
            status,
            started,
            window_start: now,
            wall_watch: crate::clock::StepWatch::new(now, SystemTime::now()),
            registered_key: None,
            key_pending: None,
            set: PollSet::new(),
        };
        agent.start_cycles(now);
        info!(
            "started: interface {}, cycle {} s, output {}",
            agent.cfg.interface.as_deref().unwrap_or("(none)"),
            agent.cfg.cycle.as_secs(),
            match (&agent.output, &agent.status) {
                (Destination::Registering(_), _) => "platform (registering first)".to_owned(),
                (Destination::Platform(_), _) => "platform".to_owned(),
                (Destination::Stdout, Some(f)) =>
                    format!("status file {} only", f.path().display()),
                (Destination::Stdout, None) => "stdout".to_owned(),
            }
        );
        Ok(agent)
    }

    /// Cycles start now; with a platform, the first one ends at this agent's phase, so a fleet
    /// spreads over the cycle instead of posting in lockstep.
    fn start_cycles(&mut self, now: Instant) {
        let cycle = self.cfg.cycle;
        self.sched = Scheduler::new(now, cycle);
        if let Destination::Platform(_) = self.output {
            let first = crate::ship::phase_delay(
                &self.cfg.server_id,
                cycle,
                timefmt::unix_millis(SystemTime::now()),
            );
            self.sched = Scheduler::new(now.checked_sub(cycle).map_or(now, |o| o + first), cycle);
        }
        self.window_start = now;
    }

    /// One turn of the loop: every component registers its fds and deadlines, one poll(2)
    /// waits for the first of them, then each reacts to its readiness and timers.
    pub fn poll_once(&mut self) -> Result<Flow, Error> {
        let set = &mut self.set;
        set.clear();
        set.register(SIGNALS, self.signals.as_fd(), Want::READ);
        for (port, fd) in self.monitor.fds() {
            set.register(Token(CAPTURE + port as u16), fd, Want::READ);
        }
        set.wake_at_opt(self.monitor.deadline());
        if let Some(m) = &self.metrics {
            for (fd, read, write) in m.interests() {
                set.register(METRICS, fd, Want { read, write });
            }
            set.wake_at_opt(m.deadline());
        }
        match &self.output {
            Destination::Stdout => set.wake_at(self.sched.deadline()),
            Destination::Registering(r) => r.register(set, REGISTRATION),
            Destination::Platform(s) => {
                set.wake_at(self.sched.deadline());
                s.register(set);
            }
        }
        set.wait(Instant::now(), MAX_SLEEP)
            .map_err(|e| Error::Sys {
                what: "poll",
                source: e,
            })?;

        let now = Instant::now();
        // The ring first (drained on every turn, whoever woke the loop), then shipping.
        let set = &self.set;
        self.monitor
            .wake(now, |port| set.ready(Token(CAPTURE + port as u16)).error);
        match &mut self.output {
            Destination::Stdout => {}
            Destination::Platform(s) => s.advance(&self.set, now),
            Destination::Registering(r) => {
                if let Some(key) = r.advance(self.set.ready(REGISTRATION), now) {
                    self.key_pending = crate::ship::register::store_at_start(&mut self.cfg, key);
                    self.registered_key = self.cfg.api_key.clone();
                    self.output = Destination::Platform(Box::new(Shipper::new(
                        &self.cfg,
                        &self.state.run_id,
                        now,
                    )?));
                    self.start_cycles(now);
                }
            }
        }
        self.serve_metrics(now);
        if self.set.ready(SIGNALS).readable {
            while let Some(sig) = self.signals.read().map_err(|e| Error::Sys {
                what: "signalfd read",
                source: e,
            })? {
                if self.on_signal(sig) == Flow::Stop {
                    return Ok(Flow::Stop);
                }
            }
        }
        if matches!(self.output, Destination::Registering(_)) {
            return Ok(Flow::Continue);
        }
        let now = Instant::now();
        if self.sched.take_due(now) {
            return Ok(self.end_cycle(now));
        }
        Ok(Flow::Continue)
    }

    /// METRICS_LISTEN: answers the scrapes that are ready (a page rendered from the monitor).
    fn serve_metrics(&mut self, now: Instant) {
        let Some(m) = self.metrics.as_mut() else {
            return;
        };
        if !self.set.ready(METRICS).any() && m.deadline().map_or(true, |d| now < d) {
            return;
        }
        let shipper = match &self.output {
            Destination::Platform(s) => Some(s),
            _ => None,
        };
        let ship = crate::metrics::Shipping {
            backlog: shipper.map_or(0, |s| s.counters().0),
            lost: shipper.map_or(0, |s| s.counters().1),
            last_delivery: shipper.and_then(|s| s.last_delivery()),
        };
        let (mon, started) = (&self.monitor, self.started);
        m.step(now, &mut |out: &mut Vec<u8>| {
            crate::metrics::page(out, mon, ship, started, now)
        });
    }

    /// SIGINT/SIGTERM stop; SIGHUP reloads the config.
    pub fn on_signal(&mut self, sig: Signal) -> Flow {
        match sig {
            Signal::Terminate => {
                info!("stopping on signal");
                if let Some(f) = &self.status {
                    f.remove();
                }
                Flow::Stop
            }
            Signal::Reload => {
                self.reload(Instant::now());
                Flow::Continue
            }
        }
    }

    /// Re-reads the config. All or nothing: a file that does not load, or whose shipping
    /// settings cannot work (an https URL whose CA_FILE is missing), keeps the old config and
    /// its shipping (backlog included) and says why. What did not change keeps running as it
    /// is: a WebSocket whose settings are the same stays connected.
    pub fn reload(&mut self, now: Instant) {
        let loaded = config::load(&self.opts)
            .map_err(Error::from)
            .and_then(|mut c| {
                crate::ship::register::load_key_file(&mut c)
                    .map_err(|e| Error::Usage(e.to_string()))?;
                Ok(c)
            });
        let mut new = match loaded {
            Ok(c) => c,
            Err(e) => return error!("config reload failed, keeping the old config: {e}"),
        };
        // The key issued at start stays this run's key (never a second registration), stored or
        // not yet.
        if new.api_key.is_none() {
            new.api_key = self.registered_key.clone();
        }
        let wants_key =
            new.api_key.is_none() && new.generate_key_url.is_some() && new.has_platform();
        let to_output = |s: Option<Shipper>| match s {
            Some(s) => Destination::Platform(Box::new(s)),
            None => Destination::Stdout,
        };
        let run_id = &self.state.run_id;
        let output = match std::mem::replace(&mut self.output, Destination::Stdout) {
            Destination::Registering(_) if wants_key => match AtStart::new(&new, now) {
                Ok(r) => Ok(Destination::Registering(Box::new(r))),
                Err(e) => Err((None, Error::Other(e.to_string()))),
            },
            Destination::Registering(_) | Destination::Stdout => {
                Shipper::reload(None, &new, run_id, now).map(to_output)
            }
            Destination::Platform(old) => {
                Shipper::reload(Some(*old), &new, run_id, now).map(to_output)
            }
        };
        let output = match output {
            Ok(o) => o,
            Err((old, e)) => {
                if let Some(old) = old {
                    self.output = Destination::Platform(Box::new(old));
                } else if self.cfg.has_platform() {
                    // Registering or stdout before: rebuilt from the old config as it was.
                    self.output = match Shipper::reload(None, &self.cfg, &self.state.run_id, now) {
                        Ok(Some(s)) => Destination::Platform(Box::new(s)),
                        _ => Destination::Stdout,
                    };
                }
                return error!(
                    "config reload failed, keeping the old config and its shipping: {e}"
                );
            }
        };
        crate::log::set_level(new.log_level);
        crate::log::set_target(new.log_target);
        for w in &new.warnings {
            warn!("{w}");
        }
        if new.device_table_size != self.cfg.device_table_size {
            warn!("DEVICE_TABLE_SIZE changes take effect at the next start");
        }
        if new.metrics_listen != self.cfg.metrics_listen {
            warn!("METRICS_LISTEN changes take effect at the next start");
        }
        if new.status_file != self.cfg.status_file {
            if let Some(f) = self.status.take() {
                f.remove();
            }
            self.status = new.status_file.clone().map(StatusFile::new);
        }
        let was_stdout = matches!(self.output, Destination::Stdout);
        let cycle_changed = new.cycle != self.cfg.cycle;
        self.output = output;
        self.cfg = new;
        if cycle_changed {
            self.sched.reset(now, self.cfg.cycle);
        }
        if was_stdout && matches!(self.output, Destination::Platform(_)) {
            self.start_cycles(now);
        }
        self.collector = Collector::for_config(&self.cfg);
        self.collector.prime(now);
        self.window_start = now;
        info!("config reloaded");
    }

    /// The cycle's end: sample, build the snapshot, hand it to the output (and the status file).
    pub fn end_cycle(&mut self, now: Instant) -> Flow {
        if self.key_pending.as_mut().is_some_and(|p| p.retry_due(now)) {
            self.key_pending = None;
        }
        let sample = self.collector.sample(now);
        let wall = SystemTime::now();
        if let Some(step) = self.wall_watch.check(now, wall) {
            info!(
                "wall clock stepped by {}; counters, devices and rates are not affected (they run on the monotonic clock)",
                crate::clock::describe_step(step)
            );
        }
        let (capture, devices) = self.monitor.end_cycle(now, wall);
        let end_ms = timefmt::unix_millis(wall);
        let window_ms = now.saturating_duration_since(self.window_start).as_millis() as u64;
        let mut snap = build_snapshot(
            &self.cfg,
            &mut self.state,
            sample,
            capture,
            devices,
            (end_ms.saturating_sub(window_ms), end_ms),
        );
        self.window_start = now;
        let shipper = match &mut self.output {
            Destination::Platform(s) => {
                (snap.agent.backlog, snap.agent.lost) = s.counters();
                s.submit(&snap, now);
                Some(&**s)
            }
            Destination::Stdout | Destination::Registering(_) => None,
        };
        if let Some(f) = self.status.as_mut() {
            let state = status_state(&self.cfg, shipper, now, end_ms);
            f.publish(&state, &snap, &timefmt::format_millis(end_ms));
        } else if matches!(self.output, Destination::Stdout) && !emit_stdout(&snap) {
            info!("stdout closed, stopping");
            return Flow::Stop;
        }
        Flow::Continue
    }
}

/// `netmon-agent run`: the loop, until SIGINT/SIGTERM.
pub fn run(opts: LoadOptions) -> Result<(), Error> {
    // Before anything else: from here on SIGHUP/SIGINT/SIGTERM wait in the signalfd for the
    // loop, so a signal during start-up neither kills the agent nor is lost.
    let signals = SignalFd::new().map_err(|e| Error::Sys {
        what: "signalfd",
        source: e,
    })?;
    let mut agent = Agent::start(opts, signals)?;
    while agent.poll_once()? == Flow::Continue {}
    Ok(())
}

/// The agent's state for the status file (STATUS_FILE).
fn status_state(cfg: &Config, shipper: Option<&Shipper>, now: Instant, now_ms: u64) -> State {
    State {
        output: match cfg.has_platform() {
            true => Output::Platform,
            false => Output::Local,
        },
        cycle_seconds: cfg.cycle.as_secs(),
        rest: cfg.platform_api_url.is_some(),
        websocket: cfg.platform_ws_url.is_some(),
        api_key_set: cfg.api_key.is_some(),
        key_registration: cfg.generate_key_url.is_some(),
        delivery: shipper.map_or_else(Delivery::default, |s| s.delivery(now, now_ms)),
    }
}

/// Writes one compact JSON line; false when stdout is gone (a closed pipe).
fn emit_stdout(snap: &Snapshot) -> bool {
    let Ok(mut line) = serde_json::to_string(snap) else {
        return true;
    };
    line.push('\n');
    let mut out = std::io::stdout().lock();
    out.write_all(line.as_bytes())
        .and_then(|()| out.flush())
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_does_not_drift() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(t0, Duration::from_secs(1));
        assert!(!s.take_due(t0 + Duration::from_millis(999)));
        // Woken 30 ms late: the next deadline is still on the 1 s grid.
        assert!(s.take_due(t0 + Duration::from_millis(1030)));
        assert_eq!(s.deadline(), t0 + Duration::from_secs(2));
        assert!(s.take_due(t0 + Duration::from_millis(2001)));
        assert_eq!(s.deadline(), t0 + Duration::from_secs(3));
    }

    #[test]
    fn scheduler_skips_missed_cycles() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(t0, Duration::from_secs(5));
        assert!(s.take_due(t0 + Duration::from_secs(23)));
        assert_eq!(s.deadline(), t0 + Duration::from_secs(25));
        assert!(!s.take_due(t0 + Duration::from_secs(24)));
    }
}
