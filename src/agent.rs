//! The agent: one thread, one poll(2) loop. Each cycle it samples /proc, builds a snapshot and
//! ships it (to stdout when no platform is configured). Cycles run on the monotonic clock from a
//! fixed origin, so they never drift; wall-clock time is only used for the timestamps.

use std::cell::RefCell;
use std::io::Write;
use std::os::fd::AsFd;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use crate::config::{self, Config, LoadOptions};
use crate::error::Error;
use crate::procfs::{Collector, Sample};
use crate::ship::Shipper;
use crate::snapshot::{self, AgentInfo, CaptureInfo, Device, Network, Snapshot};
use crate::status::{Delivery, Output, State, StatusFile};
use crate::sys::poll::{poll, Interest, Ready};
use crate::sys::signals::{Signal, SignalFd};
use crate::timefmt;

/// Identity of this process's run: `runId` is random per start, `seq` counts snapshots.
pub struct RunState {
    pub run_id: String,
    pub started_at: String,
    pub seq: u64,
}

impl RunState {
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
    pub fn new(origin: Instant, period: Duration) -> Scheduler {
        Scheduler {
            origin,
            period,
            next: 1,
        }
    }

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

/// `netmon-agent run`: the loop. Returns on SIGINT/SIGTERM.
pub fn run(opts: LoadOptions) -> Result<(), Error> {
    let mut cfg = load_config(&opts)?;
    crate::log::set_target(cfg.log_target);
    // Shared with the shipping waits (below), which drain the ring while a platform is slow;
    // never borrowed across a shipping call.
    let cap = Rc::new(RefCell::new(crate::monitor::Monitor::new(
        &cfg,
        Instant::now(),
    )));
    // METRICS_LISTEN: bound before RUN_AS_USER drops the right to bind a port below 1024.
    let mut metrics = match cfg.metrics_listen {
        Some(addr) => {
            let server = crate::metrics::server::MetricsServer::bind(addr, 64 * 1024)
                .map_err(|e| Error::Other(e.to_string()))?;
            info!("serving Prometheus metrics on http://{addr}/metrics");
            Some(server)
        }
        None => None,
    };
    // RUN_AS_USER: this must stay AFTER the capture socket is opened (the live capture opens it
    // above this line); later reopens go through crate::sys::privdrop::with_net_raw.
    if let Some(user) = &cfg.run_as_user {
        let dropped = crate::sys::privdrop::drop_to(user)?;
        info!("{dropped}");
    }
    let signals = SignalFd::new().map_err(|e| Error::Sys {
        what: "signalfd",
        source: e,
    })?;
    let _serve_capture = crate::ship::wait::register({
        let cap = Rc::clone(&cap);
        Box::new(move |fd, write, timeout| match cap.try_borrow_mut() {
            Ok(mut c) => c.wait_beside(fd, write, timeout),
            Err(_) => crate::ship::wait::alone(fd, write, timeout),
        })
    });
    let started = SystemTime::now();
    let mut state = RunState::new(started);
    // A key issued at start that could not be written yet: kept, and the write retried.
    let mut key_pending = None;
    let mut registered_key = None;
    if cfg.api_key.is_none() && cfg.generate_key_url.is_some() && cfg.has_platform() {
        let mut wait = |d: Duration| wait_unless_stopped(&signals, d);
        match crate::ship::register::at_start(&mut cfg, &mut wait) {
            crate::ship::register::Started::Stopped => return Ok(()),
            crate::ship::register::Started::Registered(p) => key_pending = p,
        }
        registered_key = cfg.api_key.clone();
    }
    let mut shipper = match cfg.has_platform() {
        true => Some(Shipper::new(&cfg, &state.run_id, Instant::now())?),
        false => None,
    };
    let mut collector = Collector::for_config(&cfg);
    let now = Instant::now();
    collector.prime(now);
    let mut sched = Scheduler::new(now, cfg.cycle);
    if shipper.is_some() {
        // A fleet spreads over the cycle: the first cycle ends at this agent's phase.
        let first = crate::ship::phase_delay(
            &cfg.server_id,
            cfg.cycle,
            timefmt::unix_millis(SystemTime::now()),
        );
        sched = Scheduler::new(
            now.checked_sub(cfg.cycle).map_or(now, |o| o + first),
            cfg.cycle,
        );
    }
    // The window a snapshot covers is measured on the monotonic clock; its start label is the
    // end label minus that, so a wall-clock step moves both labels, never the duration.
    let mut window_start = Instant::now();
    let mut wall_watch = crate::clock::StepWatch::new(Instant::now(), SystemTime::now());
    let mut status = cfg.status_file.clone().map(StatusFile::new);
    info!(
        "started: interface {}, cycle {} s, output {}",
        cfg.interface.as_deref().unwrap_or("(none)"),
        cfg.cycle.as_secs(),
        match (cfg.has_platform(), &status) {
            (true, _) => "platform".to_owned(),
            (false, Some(f)) => format!("status file {} only", f.path().display()),
            (false, None) => "stdout".to_owned(),
        }
    );

    let mut ready = [Ready::default(); crate::sys::poll::MAX_FDS];
    loop {
        let mut deadline = sched.deadline();
        if let Some(d) = cap.borrow().deadline() {
            deadline = deadline.min(d);
        }
        if let Some(d) = shipper.as_ref().and_then(|s| s.next_deadline()) {
            deadline = deadline.min(d);
        }
        if let Some(d) = metrics.as_ref().and_then(|m| m.deadline()) {
            deadline = deadline.min(d);
        }
        let timeout = deadline.saturating_duration_since(Instant::now());
        // One poll over the signalfd, the capture ring (when open) and the WebSocket (when
        // connected) and the metrics listener and its connections (METRICS_LISTEN); the slots
        // say where each one landed in `ready`.
        let (cap_slot, ship_slot, metrics_slots) = {
            let cap = cap.borrow();
            let sig = || Interest {
                fd: signals.as_fd(),
                read: true,
                write: false,
            };
            let mut interests: [Interest; crate::sys::poll::MAX_FDS] =
                std::array::from_fn(|_| sig());
            let mut n = 1;
            // The rings: slot 1 + k holds port cap_ports[k].
            let mut cap_ports = [usize::MAX; crate::devices::MAX_PORTS];
            for ((port, fd), slot) in cap.fds().zip(cap_ports.iter_mut()) {
                interests[n] = Interest {
                    fd,
                    read: true,
                    write: false,
                };
                *slot = port;
                n += 1;
            }
            let mut ship_slot = None;
            if let Some((fd, read, write)) = shipper.as_ref().and_then(|s| s.interest()) {
                interests[n] = Interest { fd, read, write };
                ship_slot = Some(n);
                n += 1;
            }
            let metrics_from = n;
            for (fd, read, write) in metrics.iter().flat_map(|m| m.interests()) {
                interests[n] = Interest { fd, read, write };
                n += 1;
            }
            poll(&interests[..n], timeout, &mut ready).map_err(|e| Error::Sys {
                what: "poll",
                source: e,
            })?;
            (cap_ports, ship_slot, metrics_from..n)
        };
        cap.borrow_mut().wake(Instant::now(), |port| {
            (0..crate::devices::MAX_PORTS).any(|k| cap_slot[k] == port && ready[1 + k].error)
        });
        if let (Some(i), Some(s)) = (ship_slot, shipper.as_mut()) {
            let r = ready[i];
            s.on_ready(r.readable, r.writable, r.error, Instant::now());
        }
        if let Some(m) = metrics.as_mut() {
            let now = Instant::now();
            let any = ready[metrics_slots]
                .iter()
                .any(|r| r.readable || r.writable || r.error);
            if any || m.deadline().is_some_and(|d| now >= d) {
                let mon = cap.borrow();
                let ship = crate::metrics::Shipping {
                    backlog: shipper.as_ref().map_or(0, |s| s.counters().0),
                    lost: shipper.as_ref().map_or(0, |s| s.counters().1),
                    last_delivery: shipper.as_ref().and_then(|s| s.last_delivery()),
                };
                m.step(now, &mut |out: &mut Vec<u8>| {
                    crate::metrics::page(out, &mon, ship, started, now)
                });
            }
        }
        if ready[0].readable {
            while let Some(sig) = signals.read().map_err(|e| Error::Sys {
                what: "signalfd read",
                source: e,
            })? {
                match sig {
                    Signal::Terminate => {
                        info!("stopping on signal");
                        if let Some(f) = &status {
                            f.remove();
                        }
                        return Ok(());
                    }
                    Signal::Reload => match load_config(&opts) {
                        Ok(mut new) => {
                            // The key issued at start stays this run's key (never a second
                            // registration), stored or not yet.
                            if new.api_key.is_none() {
                                new.api_key = registered_key.clone();
                            }
                            if new.cycle != cfg.cycle {
                                sched.reset(Instant::now(), new.cycle);
                            }
                            if new.device_table_size != cfg.device_table_size {
                                warn!("DEVICE_TABLE_SIZE changes take effect at the next start");
                            }
                            if new.metrics_listen != cfg.metrics_listen {
                                warn!("METRICS_LISTEN changes take effect at the next start");
                            }
                            if new.status_file != cfg.status_file {
                                if let Some(f) = status.take() {
                                    f.remove();
                                }
                                status = new.status_file.clone().map(StatusFile::new);
                            }
                            cfg = new;
                            if shipper.is_some() || cfg.has_platform() {
                                shipper = Shipper::reload(
                                    shipper.take(),
                                    &cfg,
                                    &state.run_id,
                                    Instant::now(),
                                );
                            }
                            collector = Collector::for_config(&cfg);
                            collector.prime(Instant::now());
                            window_start = Instant::now();
                            info!("config reloaded");
                        }
                        Err(e) => error!("config reload failed, keeping the old config: {e}"),
                    },
                }
            }
        }
        let now = Instant::now();
        if sched.take_due(now) {
            if key_pending.as_mut().is_some_and(|p| p.retry_due(now)) {
                key_pending = None;
            }
            let sample = collector.sample(now);
            let wall = SystemTime::now();
            if let Some(step) = wall_watch.check(now, wall) {
                info!(
                    "wall clock stepped by {}; counters, devices and rates are not affected (they run on the monotonic clock)",
                    crate::clock::describe_step(step)
                );
            }
            let (capture, devices) = cap.borrow_mut().end_cycle(now, wall);
            let end_ms = timefmt::unix_millis(wall);
            let window_ms = now.saturating_duration_since(window_start).as_millis() as u64;
            let mut snap = build_snapshot(
                &cfg,
                &mut state,
                sample,
                capture,
                devices,
                (end_ms.saturating_sub(window_ms), end_ms),
            );
            window_start = now;
            if let Some(s) = shipper.as_mut() {
                (snap.agent.backlog, snap.agent.lost) = s.counters();
                s.submit(&snap, now);
            }
            if let Some(f) = status.as_mut() {
                let state = status_state(&cfg, shipper.as_ref(), now, end_ms);
                f.publish(&state, &snap, &timefmt::format_millis(end_ms));
            } else if shipper.is_none() && !emit_stdout(&snap) {
                info!("stdout closed, stopping");
                return Ok(());
            }
        }
        if let Some(s) = shipper.as_mut() {
            s.run_due(Instant::now());
        }
    }
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

/// Sleeps for `d` on the signal fd (through `ship::wait`, so the capture goes on); false when
/// SIGTERM/SIGINT came (reloads wait for the loop).
fn wait_unless_stopped(signals: &SignalFd, d: Duration) -> bool {
    let end = Instant::now() + d;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() || crate::ship::wait::wait(signals.as_fd(), false, left).is_err() {
            return true;
        }
        while let Ok(Some(sig)) = signals.read() {
            if matches!(sig, Signal::Terminate) {
                return false;
            }
        }
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
