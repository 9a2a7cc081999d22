//! The /proc and /sys figures of `netmon-agent snapshot` against independent tools on this
//! machine: `free -b`, `df -B1`, `ip -s -j link`, /proc/uptime, and a busy loop for the CPU.
//! The machine is shared and busy, so moving figures are bracketed between a reading of the
//! tool before and one after the agent's, and a comparison that lost the race is retried.

use std::net::UdpSocket;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common;

/// One snapshot measured over `window` seconds.
fn snapshot(window: &str) -> Value {
    let out = common::run(common::agent().args(["snapshot", "--window", window]));
    assert!(
        out.status.success(),
        "snapshot failed: {}",
        common::stderr(&out)
    );
    serde_json::from_slice(&out.stdout).expect("snapshot prints JSON")
}

/// Runs a reference tool; None (skip, with the reason printed) when it is not installed,
/// except in CI where a missing tool is a failure.
fn tool(cmd: &mut Command) -> Option<Output> {
    match cmd.output() {
        Ok(o) => {
            assert!(o.status.success(), "{cmd:?}: {}", common::stderr(&o));
            Some(o)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !common::in_ci() => {
            eprintln!("skipped: {cmd:?} is not installed");
            None
        }
        Err(e) => panic!("{cmd:?}: {e}"),
    }
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// `lo <= x <= hi` for some ordering of the two bounds, widened by `slack`.
fn between(x: u64, a: u64, b: u64, slack: u64) -> bool {
    a.min(b).saturating_sub(slack) <= x && x <= a.max(b).saturating_add(slack)
}

/// (total, available) from `free -b`.
fn free() -> Option<(u64, u64)> {
    let out = tool(Command::new("free").arg("-b"))?;
    let text = common::stdout(&out);
    let mem = text
        .lines()
        .find(|l| l.starts_with("Mem:"))
        .expect("free prints a Mem: line");
    let n: Vec<u64> = mem
        .split_whitespace()
        .skip(1)
        .map(|w| w.parse().unwrap())
        .collect();
    // total used free shared buff/cache available
    Some((n[0], n[5]))
}

#[test]
fn memory_matches_free() {
    let mut last = String::new();
    // Under load (a parallel build) MemAvailable moves by megabytes a second: keep the bracket
    // short (no window) and retry.
    for _ in 0..10 {
        let Some((total0, avail0)) = free() else {
            return;
        };
        let snap = snapshot("0");
        let (total1, avail1) = free().unwrap();
        let m = &snap["metrics"]["memory"];
        let (total, avail, used, freeb) = (
            u(&m["totalBytes"]),
            u(&m["availableBytes"]),
            u(&m["usedBytes"]),
            u(&m["freeBytes"]),
        );
        assert_eq!(total, total0, "MemTotal");
        assert_eq!(total, total1, "MemTotal");
        assert_eq!(used, total - avail);
        assert_eq!(freeb, avail);
        // Available moves with every allocation on the machine: bracket it, 8 MiB of slack.
        if between(avail, avail0, avail1, 8 << 20) {
            return;
        }
        last = format!("available {avail} not within free's {avail0}..{avail1}");
    }
    panic!("{last}");
}

/// One `df -B1` row.
struct DfRow {
    target: String,
    source: String,
    fstype: String,
    size: u64,
    used: u64,
    avail: u64,
}

/// `df -l`'s rows without FUSE ones: the agent leaves out network file systems as `df -l`
/// does, and FUSE file systems too (df counts those as local).
fn df() -> Option<Vec<DfRow>> {
    let out = tool(Command::new("df").args([
        "-l",
        "-B1",
        "--output=size,used,avail,fstype,source,target",
    ]))?;
    Some(df_rows(&common::stdout(&out)))
}

fn df_rows(text: &str) -> Vec<DfRow> {
    text.lines()
        .skip(1)
        .map(|l| {
            let mut rest = l.trim_start();
            let mut w = [""; 5];
            for v in &mut w {
                let (word, r) = rest.split_once(' ').expect("df row");
                *v = word;
                rest = r.trim_start();
            }
            let n = |s: &str| s.parse::<u64>().expect("df number");
            DfRow {
                target: rest.to_string(),
                source: w[4].to_string(),
                fstype: w[3].to_string(),
                size: n(w[0]),
                used: n(w[1]),
                avail: n(w[2]),
            }
        })
        .filter(|r| r.fstype != "fuse" && !r.fstype.starts_with("fuse."))
        .collect()
}

/// A FUSE mount whose daemon never answers (tests/servers/fuse_hang.py, in a private mount
/// namespace): every stat of it waits for ever, as on a hung NFS server. `snapshot` must come
/// on time all the same and list what `df -l` lists (told to leave that type alone: df itself
/// would hang on it, FUSE being "local" to df).
#[test]
fn a_hung_fuse_mount_does_not_hold_the_snapshot() {
    if !common::is_root() {
        assert!(!common::in_ci(), "CI runs as root");
        eprintln!("skipped: needs root (a FUSE mount in a mount namespace)");
        return;
    }
    if !std::path::Path::new("/dev/fuse").exists() {
        eprintln!("skipped: this kernel has no /dev/fuse");
        return;
    }
    let dir = common::scratch("procfs-fuse-hang");
    let script =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/servers/fuse_hang.py");
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "python3"])
        .arg(&script)
        .arg(dir.join("hang"))
        .args([
            "--",
            "df",
            "-l",
            "-B1",
            "--output=size,used,avail,fstype,source,target",
        ])
        .args(["-x", "fuse.netmonhang", ";;"])
        .arg(common::bin())
        .args([
            "snapshot",
            "--window",
            "1",
            "-i",
            "lo",
            "--config",
            "/dev/null",
            ";;",
        ])
        // And `run`: a snapshot every cycle while the mount hangs (SIGTERM after 4.5 s).
        .args(["timeout", "-s", "TERM", "4.5"])
        .arg(common::bin())
        .args(["run", "--cycle", "1", "-i", "lo", "--config", "/dev/null"])
        .env("NETMON_PROMISC", "0")
        .env("NETMON_SCAN_INTERVAL", "0")
        .output()
        .unwrap();
    let lines: Vec<Value> = common::stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines.len(),
        3,
        "{} {}",
        common::stdout(&out),
        common::stderr(&out)
    );
    let (df, agent, run) = (&lines[0], &lines[1], &lines[2]);
    assert_eq!(df["rc"], 0, "{df}");
    assert_eq!(agent["rc"], 0, "the snapshot did not come: {agent}");
    let secs = agent["seconds"].as_f64().unwrap();
    assert!(secs < 5.0, "snapshot took {secs} s");
    let snap: Value = serde_json::from_str(agent["stdout"].as_str().unwrap()).unwrap();
    let ours: Vec<&str> = snap["metrics"]["disk"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["mountPoint"].as_str().unwrap())
        .collect();
    let rows = df_rows(df["stdout"].as_str().unwrap());
    let theirs: Vec<&str> = rows.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(ours, theirs);
    assert!(!ours.iter().any(|m| m.ends_with("/hang")));
    let cycles = run["stdout"].as_str().unwrap().lines().count();
    assert!(cycles >= 3, "{cycles} snapshots from run in 4.5 s: {run}");
}

#[test]
fn disks_match_df() {
    const BLOCK: u64 = 4096;
    let mut last = String::new();
    'attempt: for _ in 0..5 {
        let Some(before) = df() else { return };
        let snap = snapshot("0.1");
        let after = df().unwrap();
        let disks = snap["metrics"]["disk"].as_array().unwrap();
        let ours: Vec<&str> = disks
            .iter()
            .map(|d| d["mountPoint"].as_str().unwrap())
            .collect();
        let theirs: Vec<&str> = before.iter().map(|r| r.target.as_str()).collect();
        if theirs != after.iter().map(|r| r.target.as_str()).collect::<Vec<_>>() {
            continue; // something was mounted meanwhile
        }
        // Same file systems, in the same order, with the same source and type.
        assert_eq!(ours, theirs, "mount points differ from df");
        for ((d, b), a) in disks.iter().zip(&before).zip(&after) {
            let mp = &b.target;
            assert_eq!(d["device"].as_str(), Some(b.source.as_str()), "{mp}");
            assert_eq!(d["fsType"].as_str(), Some(b.fstype.as_str()), "{mp}");
            let (total, used, free) = (u(&d["totalBytes"]), u(&d["usedBytes"]), u(&d["freeBytes"]));
            assert!(
                between(total, b.size, a.size, BLOCK),
                "{mp}: size {total} vs df {}",
                b.size
            );
            // Used and available move when anything on the machine writes: bracket them.
            if !between(used, b.used, a.used, BLOCK) || !between(free, b.avail, a.avail, BLOCK) {
                last = format!(
                    "{mp}: used {used} free {free} vs df {}..{} / {}..{}",
                    b.used, a.used, b.avail, a.avail
                );
                continue 'attempt;
            }
            let pct = d["percentUsed"].as_f64().unwrap();
            if used + free > 0 {
                let want = used as f64 * 100.0 / (used + free) as f64;
                assert!((pct - want).abs() <= 0.01, "{mp}: {pct}% vs {want}%");
            }
        }
        return;
    }
    panic!("{last}");
}

/// (name, rx bytes, tx bytes, rx packets, tx packets) of every interface, from `ip -s -j link`.
fn ip_link() -> Option<Vec<(String, [u64; 4])>> {
    let out = tool(Command::new("ip").args(["-s", "-j", "link"]))?;
    let v: Value = serde_json::from_slice(&out.stdout).expect("ip -j prints JSON");
    let rows = v
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let s = &l["stats64"];
            (
                l["ifname"].as_str().unwrap().to_string(),
                [
                    u(&s["rx"]["bytes"]),
                    u(&s["tx"]["bytes"]),
                    u(&s["rx"]["packets"]),
                    u(&s["tx"]["packets"]),
                ],
            )
        })
        .collect();
    Some(rows)
}

#[test]
fn interface_counters_match_ip_link() {
    let Some(before) = ip_link() else { return };
    let snap = snapshot("0.2");
    let after = ip_link().unwrap();
    let ifaces = snap["network"]["interfaces"].as_array().unwrap();
    let names: Vec<&str> = ifaces.iter().map(|i| i["name"].as_str().unwrap()).collect();
    let listed = |rows: &[(String, [u64; 4])], n: &str| rows.iter().any(|r| r.0 == n);
    // Other tests may create and delete interfaces meanwhile: everything ip listed both times
    // is in the snapshot, and the snapshot has nothing ip never listed.
    for r in &before {
        if listed(&after, &r.0) {
            assert!(
                names.contains(&r.0.as_str()),
                "{} missing from the snapshot",
                r.0
            );
        }
    }
    for n in &names {
        assert!(
            listed(&before, n) || listed(&after, n),
            "{n} unknown to ip link"
        );
    }
    assert!(names.contains(&"lo"));
    for i in ifaces {
        let name = i["name"].as_str().unwrap();
        let (Some(b), Some(a)) = (
            before.iter().find(|r| r.0 == name),
            after.iter().find(|r| r.0 == name),
        ) else {
            continue; // appeared or vanished during the test
        };
        let ours = [
            u(&i["rxBytesTotal"]),
            u(&i["txBytesTotal"]),
            u(&i["rxPacketsTotal"]),
            u(&i["txPacketsTotal"]),
        ];
        let what = ["rx bytes", "tx bytes", "rx packets", "tx packets"];
        for (k, ours) in ours.into_iter().enumerate() {
            // Counters only grow: the agent's reading lies between ip's two.
            let (lo, hi) = (b.1[k], a.1[k]);
            assert!(
                lo <= ours && ours <= hi,
                "{name} {}: {lo} <= {ours} <= {hi} fails",
                what[k]
            );
        }
    }
}

#[test]
fn loopback_rate_sees_traffic_sent_during_the_window() {
    // 200 datagrams of 5000 bytes to a local port during a 1 s window: at least 1 MB on lo.
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = sink.local_addr().unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let child = common::agent()
        .args(["snapshot", "--window", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let payload = [0x5au8; 5000];
    let mut sent = 0u64;
    for _ in 0..200 {
        sent += tx.send_to(&payload, to).unwrap() as u64;
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let snap: Value = serde_json::from_slice(&out.stdout).unwrap();
    let lo = snap["network"]["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "lo")
        .unwrap();
    let secs = snap["network"]["collectionDurationSeconds"]
        .as_f64()
        .unwrap();
    // Rate x window is the bytes counted (headers included, plus others' traffic), give or take
    // the few milliseconds between the wall-clock window and the monotonic one.
    let counted = u(&lo["rxRateBps"]) as f64 * secs / 8.0;
    assert!(
        counted >= sent as f64 * 0.95,
        "lo counted {counted} bytes, {sent} were sent"
    );
    assert!(u(&lo["txRateBps"]) > 0);
    drop(sink);
}

#[test]
fn uptime_matches_proc_uptime() {
    let read = || -> f64 {
        let t = std::fs::read_to_string("/proc/uptime").unwrap();
        t.split_whitespace().next().unwrap().parse().unwrap()
    };
    let before = read();
    let snap = snapshot("0.1");
    let after = read();
    let up = u(&snap["metrics"]["uptimeSeconds"]);
    assert!(
        before.floor() as u64 <= up && up <= after.ceil() as u64,
        "uptime {up} not within {before}..{after}"
    );
}

#[test]
fn cpu_percent_rises_with_a_busy_core() {
    let Some(nproc) = tool(&mut Command::new("nproc")) else {
        return;
    };
    let cores: u64 = common::stdout(&nproc).trim().parse().unwrap();
    let mut busy = Command::new("sh")
        .args(["-c", "while :; do :; done"])
        .spawn()
        .expect("spawn a busy loop");
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(200));
    let snap = snapshot("1");
    busy.kill().unwrap();
    busy.wait().unwrap();
    let cpu = &snap["metrics"]["cpu"];
    let pct = cpu["percent"].as_f64().unwrap();
    assert_eq!(u(&cpu["cores"]), cores);
    // One of `cores` CPUs fully busy is 100 / cores percent (50 on this 2-core machine).
    let floor = (100.0 / cores as f64 * 0.8).min(40.0);
    assert!(
        pct > floor,
        "cpu {pct}% with one core busy for {:?}",
        started.elapsed()
    );
    assert!(pct <= 100.0);
}

#[test]
fn load_average_matches_proc_loadavg() {
    let read = || -> Vec<f64> {
        let t = std::fs::read_to_string("/proc/loadavg").unwrap();
        t.split_whitespace()
            .take(3)
            .map(|w| w.parse().unwrap())
            .collect()
    };
    let before = read();
    let snap = snapshot("0.1");
    let after = read();
    let ours: Vec<f64> = snap["metrics"]["cpu"]["loadAverage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(ours.len(), 3);
    // The kernel updates the averages every 5 s: each is one of the two readings.
    for k in 0..3 {
        assert!(
            ours[k] == before[k] || ours[k] == after[k],
            "load {k}: {} not {} or {}",
            ours[k],
            before[k],
            after[k]
        );
    }
}
