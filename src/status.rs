//! The local status file (STATUS_FILE): the latest snapshot and the agent's own state, for a
//! page on the router itself (LuCI reads it through rpcd's `file` object under the app's ACL).
//!
//! Written once per cycle, right after the snapshot is built: no wake-up of its own. The text is
//! built in one buffer that is reused every cycle (its capacity follows the largest snapshot, which
//! the device table bounds), written to `<file>.tmp` in the same directory through the
//! directory's fd (created with O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600: a symlink planted there is
//! never followed) and renamed over the file, so a reader sees the previous cycle's file or this
//! one, never half of one.
//! No fsync: the file lives on tmpfs (/var/run) and is rewritten every cycle.
//!
//! The API key never reaches the file: the state says whether one is set, nothing more.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::snapshot::Snapshot;
use crate::sys::fs::{Dir, Durability};

/// Format version of the file's `status` object; bumped when a field changes meaning.
pub const STATUS_VERSION: u32 = 1;

/// Where the snapshots go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Output {
    /// Shipped to the platform (REST and/or WebSocket).
    Platform,
    /// Nowhere but this file (no platform configured).
    Local,
}

/// What the last REST delivery attempt did, as the shipper saw it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// When the last attempt ended (UTC), and what came of it: "delivered", "refused" (the
    /// platform rejected the snapshot for good) or the failure's reason.
    pub last_attempt: Option<String>,
    /// "delivered", "refused" or the failure's reason.
    pub last_result: Option<String>,
    /// When a snapshot last reached the platform.
    pub last_delivered: Option<String>,
    /// Since the start: snapshots delivered, failed attempts.
    pub delivered: u64,
    /// Failed attempts since the start.
    pub failed: u64,
    /// The WebSocket is connected (null: no WebSocket configured).
    pub websocket_up: Option<bool>,
}

/// The agent's state beside the snapshot.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    /// Where the snapshots go.
    pub output: Output,
    /// CYCLE_TIME.
    pub cycle_seconds: u64,
    /// A REST endpoint is configured.
    pub rest: bool,
    /// A WebSocket endpoint is configured.
    pub websocket: bool,
    /// An API key is in use (set, or obtained by registration); never the key itself.
    pub api_key_set: bool,
    /// GENERATE_KEY_URL is configured (the key comes from registering this router).
    pub key_registration: bool,
    /// The REST delivery's state.
    pub delivery: Delivery,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Header<'a> {
    version: u32,
    written_at: &'a str,
    pid: u32,
    #[serde(flatten)]
    state: &'a State,
}

#[derive(Serialize)]
struct File<'a> {
    status: Header<'a>,
    snapshot: &'a Snapshot,
}

/// The status file: its path and the buffer reused every cycle.
pub struct StatusFile {
    path: PathBuf,
    /// The directory it is in, its name there and the temporary name written first.
    dir: PathBuf,
    name: OsString,
    tmp: OsString,
    buf: Vec<u8>,
    /// The last write failed (logged once until a write works again).
    failing: bool,
}

impl StatusFile {
    /// A status file at `path`, written once per cycle.
    pub fn new(path: PathBuf) -> StatusFile {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        // No name (a path ending in ".."): every write fails with "not a plain file name".
        let name = path.file_name().unwrap_or_default().to_owned();
        let mut tmp = name.clone();
        tmp.push(".tmp");
        StatusFile {
            path,
            dir,
            name,
            tmp,
            buf: Vec::new(),
            failing: false,
        }
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the file with this cycle's state and snapshot. A failure is logged once (and
    /// its end once); the agent goes on either way.
    pub fn publish(&mut self, state: &State, snap: &Snapshot, written_at: &str) {
        match self.write(state, snap, written_at) {
            Ok(()) => {
                if self.failing {
                    self.failing = false;
                    info!("status file {} is written again", self.path.display());
                }
            }
            Err(e) => {
                if !self.failing {
                    self.failing = true;
                    warn!(
                        "status file {}: {e} (the local page shows no data until this works)",
                        self.path.display()
                    );
                }
            }
        }
    }

    fn write(&mut self, state: &State, snap: &Snapshot, written_at: &str) -> io::Result<()> {
        self.buf.clear();
        let file = File {
            status: Header {
                version: STATUS_VERSION,
                written_at,
                pid: std::process::id(),
                state,
            },
            snapshot: snap,
        };
        serde_json::to_writer(&mut self.buf, &file).map_err(io::Error::other)?;
        self.buf.push(b'\n');
        // The directory is opened each cycle: one created or replaced after the start is used.
        Dir::open_following(&self.dir)?.replace(
            &self.name,
            &self.tmp,
            &self.buf,
            Durability::Unsynced,
            |_| Ok(()),
        )
    }

    /// Removes the file (at a clean stop: no data is better than stale data).
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_file(self.dir.join(&self.tmp));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::*;
    use std::os::unix::fs::PermissionsExt;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("netmon-status-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn device(mac: &str, rx: u64) -> Device {
        Device {
            interface: None,
            ip: Some("192.168.1.20".into()),
            ipv6: vec![],
            mac: mac.into(),
            device_name: Some("laptop".into()),
            vlan: None,
            status: DeviceStatus::Active,
            first_seen: "2026-01-01T00:00:00.000Z".into(),
            time_checked: "2026-01-01T00:00:05.000Z".into(),
            bandwidth: Bandwidth {
                rx_bytes_total: rx,
                tx_bytes_total: 2 * rx,
                rx_packets_total: 3,
                tx_packets_total: 4,
                rx_rate_bps: 800,
                tx_rate_bps: 1600,
                utilization_percent: None,
                internet_rx_bytes_total: 0,
                internet_tx_bytes_total: 0,
                internet_rx_packets_total: 0,
                internet_tx_packets_total: 0,
                internet_rx_rate_bps: 0,
                internet_tx_rate_bps: 0,
            },
        }
    }

    fn snap(devices: Vec<Device>) -> Snapshot {
        Snapshot {
            message_type: MESSAGE_TYPE,
            schema_version: SCHEMA_VERSION,
            server_id: "r1".into(),
            server_ip: None,
            snapshot_time: "2026-01-01T00:00:05.000Z".into(),
            agent: AgentInfo {
                version: crate::VERSION,
                run_id: "00".into(),
                seq: 7,
                started_at: "2026-01-01T00:00:00.000Z".into(),
                capture: CaptureInfo::off(Some("br-lan".into()), "test", 256),
                backlog: 2,
                lost: 1,
            },
            metrics: Metrics {
                cpu: Cpu {
                    percent: 1.0,
                    cores: 1,
                    load_average: [0.0; 3],
                },
                memory: Memory {
                    total_bytes: 1,
                    used_bytes: 1,
                    free_bytes: 0,
                    available_bytes: 0,
                    percent_used: 100.0,
                },
                disk: vec![],
                uptime_seconds: 1,
            },
            network: Network {
                collection_start_time: "2026-01-01T00:00:00.000Z".into(),
                collection_end_time: "2026-01-01T00:00:05.000Z".into(),
                collection_duration_seconds: 5.0,
                interfaces: vec![],
                connected_devices: devices,
            },
        }
    }

    fn state() -> State {
        State {
            output: Output::Platform,
            cycle_seconds: 5,
            rest: true,
            websocket: false,
            api_key_set: true,
            key_registration: false,
            delivery: Delivery {
                last_attempt: Some("2026-01-01T00:00:01.000Z".into()),
                last_result: Some("HTTP 500".into()),
                delivered: 3,
                failed: 1,
                ..Delivery::default()
            },
        }
    }

    #[test]
    fn file_holds_state_and_snapshot() {
        let d = dir("content");
        let path = d.join("status.json");
        let mut f = StatusFile::new(path.clone());
        let s = snap(vec![device("02:00:00:00:00:01", 1000)]);
        f.publish(&state(), &s, "2026-01-01T00:00:05.100Z");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with("}\n"));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let st = &v["status"];
        assert_eq!(st["version"], 1);
        assert_eq!(st["writtenAt"], "2026-01-01T00:00:05.100Z");
        assert_eq!(st["pid"], std::process::id());
        assert_eq!(st["output"], "platform");
        assert_eq!(st["apiKeySet"], true);
        assert_eq!(st["delivery"]["lastResult"], "HTTP 500");
        assert_eq!(st["delivery"]["delivered"], 3);
        assert_eq!(st["delivery"]["websocketUp"], serde_json::Value::Null);
        // The snapshot part is byte for byte what the platform gets.
        let shipped: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(v["snapshot"], shipped);
        assert_eq!(
            v["snapshot"]["network"]["connectedDevices"][0]["bandwidth"]["txBytesTotal"],
            2000
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!d.join("status.json.tmp").exists());
        f.remove();
        assert!(!path.exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_planted_symlink_is_never_followed() {
        let d = dir("symlink");
        let victim = d.join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let path = d.join("status.json");
        // Both names point at the victim: the tmp name and the file itself.
        std::os::unix::fs::symlink(&victim, d.join("status.json.tmp")).unwrap();
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        let mut f = StatusFile::new(path.clone());
        f.publish(&state(), &snap(vec![]), "t");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert!(!std::fs::symlink_metadata(&path).unwrap().is_symlink());
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .contains("\"status\""));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_reader_never_sees_half_a_file() {
        // A reader racing the writer opens either the old or the new inode: each read parses.
        let d = dir("atomic");
        let path = d.join("status.json");
        let mut f = StatusFile::new(path.clone());
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        f.publish(&state(), &snap(vec![]), "t");
        let reader = {
            let (path, stop) = (path.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut reads = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let text = std::fs::read_to_string(&path).unwrap();
                    let v: serde_json::Value = serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("torn read ({e}): {} bytes", text.len()));
                    assert!(v["snapshot"]["network"]["connectedDevices"].is_array());
                    reads += 1;
                }
                reads
            })
        };
        for i in 0..200 {
            // Alternate a small and a large file so a torn read could not parse.
            let n = if i % 2 == 0 { 0 } else { 300 };
            let devs = (0..n)
                .map(|k| device(&format!("02:00:00:00:{:02x}:{:02x}", k / 256, k % 256), k))
                .collect();
            f.publish(&state(), &snap(devs), "t");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_buffer_is_reused() {
        let d = dir("buffer");
        let mut f = StatusFile::new(d.join("s.json"));
        let devs: Vec<Device> = (0..100)
            .map(|k| device(&format!("02:00:00:00:00:{k:02x}"), k))
            .collect();
        f.publish(&state(), &snap(devs.clone()), "t");
        let cap = f.buf.capacity();
        let ptr = f.buf.as_ptr();
        for _ in 0..10 {
            f.publish(&state(), &snap(devs.clone()), "t");
        }
        assert_eq!((f.buf.capacity(), f.buf.as_ptr()), (cap, ptr));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_missing_directory_is_an_error_not_a_panic() {
        let d = dir("missing");
        let mut f = StatusFile::new(d.join("no/such/dir/s.json"));
        f.publish(&state(), &snap(vec![]), "t");
        assert!(f.failing);
        std::fs::create_dir_all(d.join("no/such/dir")).unwrap();
        f.publish(&state(), &snap(vec![]), "t");
        assert!(!f.failing);
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// The cost per cycle, for docs/luci.md: `cargo test --release --bin netmon-agent
    /// status::tests::publish_cost -- --ignored --nocapture` (tmpfs /tmp).
    #[test]
    #[ignore]
    fn publish_cost() {
        let d = dir("cost");
        let mut f = StatusFile::new(d.join("s.json"));
        for n in [0usize, 16, 256] {
            let devs: Vec<Device> = (0..n)
                .map(|k| {
                    device(
                        &format!("02:00:00:00:{:02x}:{:02x}", k / 256, k % 256),
                        k as u64,
                    )
                })
                .collect();
            let s = snap(devs);
            f.publish(&state(), &s, "t");
            let t0 = std::time::Instant::now();
            for _ in 0..200 {
                f.publish(&state(), &s, "t");
            }
            let per = t0.elapsed() / 200;
            // for comparison: the serialisation the shipper does anyway every cycle
            let t1 = std::time::Instant::now();
            for _ in 0..200 {
                std::hint::black_box(serde_json::to_string(&s).unwrap());
            }
            let ser = t1.elapsed() / 200;
            let bytes = std::fs::metadata(d.join("s.json")).unwrap().len();
            println!(
                "{n} devices: {bytes} bytes, {per:?} per publish (the shipper's to_string: {ser:?}), buffer {} bytes",
                f.buf.capacity()
            );
        }
        std::fs::remove_dir_all(&d).unwrap();
    }
}
