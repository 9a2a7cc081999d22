//! The agent: one thread, one poll(2) loop. Each cycle it samples /proc, builds a snapshot and
//! ships it (to stdout when no platform is configured). Cycles run on the monotonic clock from a
//! fixed origin, so they never drift; wall-clock time is only used for the timestamps.

use std::cell::RefCell;
use std::io::Write;
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use crate::config::{self, Config, LoadOptions};
use crate::error::Error;
use crate::procfs::{Collector, Sample};
use crate::ship::Shipper;
use crate::snapshot::{self, AgentInfo, CaptureInfo, Device, Network, Snapshot};
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
    let mut collector = Collector::new(cfg.proc_root.clone(), cfg.sys_root.clone());
    let start_ms = timefmt::unix_millis(SystemTime::now());
    let start = Instant::now();
    collector.prime(start);
    let mut cap = crate::live::Capture::new(&cfg, start);
    // Capture for the window: the same poll as `run`, until the window ends.
    let end = start + window;
    let mut ready = [Ready::default(); 1];
    while let Some(left) = end
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
    {
        let timeout = cap.deadline().map_or(left, |d| {
            d.saturating_duration_since(Instant::now()).min(left)
        });
        match cap.fd() {
            Some(fd) => {
                let i = [Interest {
                    fd,
                    read: true,
                    write: false,
                }];
                poll(&i, timeout, &mut ready).map_err(|e| Error::Sys {
                    what: "poll",
                    source: e,
                })?;
            }
            None => std::thread::sleep(timeout),
        }
        cap.wake(Instant::now(), ready[0].error);
    }
    let sample = collector.sample(Instant::now());
    let (capture, devices) = cap.end_cycle(Instant::now(), SystemTime::now());
    let end_ms = timefmt::unix_millis(SystemTime::now());
    let snap = build_snapshot(
        &cfg,
        &mut state,
        sample,
        capture,
        devices,
        (start_ms, end_ms),
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
    let cap = Rc::new(RefCell::new(crate::live::Capture::new(
        &cfg,
        Instant::now(),
    )));
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
    let mut state = RunState::new(SystemTime::now());
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
    let mut collector = Collector::new(cfg.proc_root.clone(), cfg.sys_root.clone());
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
    let mut window_start_ms = timefmt::unix_millis(SystemTime::now());
    info!(
        "started: interface {}, cycle {} s, output {}",
        cfg.interface.as_deref().unwrap_or("(none)"),
        cfg.cycle.as_secs(),
        if cfg.has_platform() {
            "platform"
        } else {
            "stdout"
        }
    );

    let mut ready = [Ready::default(); 3];
    loop {
        let mut deadline = sched.deadline();
        if let Some(d) = cap.borrow().deadline() {
            deadline = deadline.min(d);
        }
        if let Some(d) = shipper.as_ref().and_then(|s| s.next_deadline()) {
            deadline = deadline.min(d);
        }
        let timeout = deadline.saturating_duration_since(Instant::now());
        // One poll over the signalfd, the capture ring (when open) and the WebSocket (when
        // connected); the slots say where each one landed in `ready`.
        let (cap_slot, ship_slot) = {
            let cap = cap.borrow();
            let sig = || Interest {
                fd: signals.as_fd(),
                read: true,
                write: false,
            };
            let mut interests = [sig(), sig(), sig()];
            let mut n = 1;
            let mut cap_slot = None;
            if let Some(fd) = cap.fd() {
                interests[n] = Interest {
                    fd,
                    read: true,
                    write: false,
                };
                cap_slot = Some(n);
                n += 1;
            }
            let mut ship_slot = None;
            if let Some((fd, write)) = shipper.as_ref().and_then(|s| s.interest()) {
                interests[n] = Interest {
                    fd,
                    read: true,
                    write,
                };
                ship_slot = Some(n);
                n += 1;
            }
            poll(&interests[..n], timeout, &mut ready).map_err(|e| Error::Sys {
                what: "poll",
                source: e,
            })?;
            (cap_slot, ship_slot)
        };
        cap.borrow_mut()
            .wake(Instant::now(), cap_slot.is_some_and(|i| ready[i].error));
        if let (Some(i), Some(s)) = (ship_slot, shipper.as_mut()) {
            let r = ready[i];
            s.on_ready(r.readable, r.writable, r.error, Instant::now());
        }
        if ready[0].readable {
            while let Some(sig) = signals.read().map_err(|e| Error::Sys {
                what: "signalfd read",
                source: e,
            })? {
                match sig {
                    Signal::Terminate => {
                        info!("stopping on signal");
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
                            cfg = new;
                            if shipper.is_some() || cfg.has_platform() {
                                shipper = Shipper::reload(
                                    shipper.take(),
                                    &cfg,
                                    &state.run_id,
                                    Instant::now(),
                                );
                            }
                            collector = Collector::new(cfg.proc_root.clone(), cfg.sys_root.clone());
                            collector.prime(Instant::now());
                            window_start_ms = timefmt::unix_millis(SystemTime::now());
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
            let (capture, devices) = cap.borrow_mut().end_cycle(now, SystemTime::now());
            let end_ms = timefmt::unix_millis(SystemTime::now());
            let mut snap = build_snapshot(
                &cfg,
                &mut state,
                sample,
                capture,
                devices,
                (window_start_ms, end_ms),
            );
            window_start_ms = end_ms;
            if let Some(s) = shipper.as_mut() {
                (snap.agent.backlog, snap.agent.lost) = s.counters();
                s.submit(&snap, now);
            } else if !emit_stdout(&snap) {
                info!("stdout closed, stopping");
                return Ok(());
            }
        }
        if let Some(s) = shipper.as_mut() {
            s.run_due(Instant::now());
        }
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

/// `netmon-agent check`: validate and describe, never showing the key.
/// With `offline`, the endpoints are described but not contacted.
pub fn check(opts: LoadOptions, offline: bool) -> Result<ExitCode, Error> {
    let cfg = load_config(&opts)?;
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<14} {v}\n"));
    line(
        "config file",
        cfg.source
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "none (built-in defaults)".into()),
    );
    line("server id", cfg.server_id.clone());
    line(
        "server ip",
        cfg.server_ip
            .map(|i| i.to_string())
            .unwrap_or_else(|| "unknown".into()),
    );
    let iface = match cfg.interface.as_deref() {
        Some(name) => {
            let exists = cfg.sys_root.join("class/net").join(name).exists();
            format!(
                "{name}{}",
                if exists { "" } else { " (does not exist now)" }
            )
        }
        None => "none found".into(),
    };
    line("interface", iface);
    line(
        "network range",
        cfg.network_range
            .map(|r| r.to_string())
            .unwrap_or_else(|| "unknown".into()),
    );
    line("cycle", format!("{} s", cfg.cycle.as_secs()));
    line(
        "REST",
        cfg.platform_api_url
            .as_ref()
            .map(|u| u.to_string())
            .unwrap_or_else(|| "not set".into()),
    );
    line(
        "WebSocket",
        cfg.platform_ws_url
            .as_ref()
            .map(|u| u.to_string())
            .unwrap_or_else(|| "not set".into()),
    );
    if !cfg.has_platform() {
        line(
            "output",
            "no platform configured: `run` prints one JSON snapshot per line to stdout".into(),
        );
    }
    line(
        "api key",
        match &cfg.api_key {
            Some(k) => format!("set {k}"),
            None => "not set".into(),
        },
    );
    for (k, v) in crate::live::check_lines(&cfg) {
        line(k, v);
    }
    print!("{out}");
    if !cfg.has_platform() || offline {
        return Ok(ExitCode::SUCCESS);
    }
    // Each endpoint once, with a real snapshot (no measuring window).
    let mut collector = Collector::new(cfg.proc_root.clone(), cfg.sys_root.clone());
    collector.prime(Instant::now());
    let ms = timefmt::unix_millis(SystemTime::now());
    let mut state = RunState::new(SystemTime::now());
    let sample = collector.sample(Instant::now());
    let snap = build_snapshot(
        &cfg,
        &mut state,
        sample,
        CaptureInfo::off(
            cfg.interface.clone(),
            "sent by `check`: no capture while checking",
            cfg.device_table_size,
        ),
        Vec::new(),
        (ms, ms),
    );
    let (lines, ok) = crate::ship::check(&cfg, &snap);
    for l in lines {
        println!("{l}");
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
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
