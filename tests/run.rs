//! `snapshot` and `run` from outside: schema-valid output, the cycle schedule, signals.

use crate::common::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

fn spawn_run(args: &[&str]) -> Child {
    agent()
        .arg("run")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn run")
}

fn kill(child: &Child, sig: i32) {
    let ok = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[test]
fn snapshot_is_schema_valid() {
    let o = run(agent().args(["snapshot", "--window", "0.3"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let v: serde_json::Value = serde_json::from_str(&text).expect("one JSON document");
    assert_eq!(v["messageType"], "realtimeSnapshot");
    assert_eq!(v["agent"]["seq"], 0);
    let d = v["network"]["collectionDurationSeconds"].as_f64().unwrap();
    assert!((0.25..1.5).contains(&d), "window {d}");
    validate_snapshots(&text);
}

#[test]
fn run_prints_a_line_per_cycle_on_schedule_and_stops_on_sigterm() {
    let mut child = spawn_run(&["--cycle", "1"]);
    let start = Instant::now();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut got = Vec::new();
    let mut times = Vec::new();
    for _ in 0..3 {
        let line = lines.next().expect("a line").expect("utf-8");
        times.push(start.elapsed());
        got.push(line);
    }
    let elapsed = start.elapsed();
    // 3 cycles of 1 s take 3 s +- 0.2 s (measured from spawn, so exec time is included).
    assert!(
        elapsed >= Duration::from_millis(2800) && elapsed <= Duration::from_millis(3200),
        "{elapsed:?} {times:?}"
    );
    let stop = Instant::now();
    kill(&child, libc_sigterm());
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        stop.elapsed() < Duration::from_secs(1),
        "took {:?} to stop",
        stop.elapsed()
    );
    let mut seqs = Vec::new();
    let mut run_ids = std::collections::BTreeSet::new();
    for l in &got {
        let v: serde_json::Value = serde_json::from_str(l).expect("compact JSON line");
        seqs.push(v["agent"]["seq"].as_u64().unwrap());
        run_ids.insert(v["agent"]["runId"].as_str().unwrap().to_string());
    }
    assert_eq!(seqs, vec![0, 1, 2]);
    assert_eq!(run_ids.len(), 1);
    validate_snapshots(&got.join("\n"));
}

#[test]
fn sigint_stops_run_with_exit_0() {
    let mut child = spawn_run(&["--cycle", "60"]);
    std::thread::sleep(Duration::from_millis(300));
    let stop = Instant::now();
    kill(&child, 2);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(stop.elapsed() < Duration::from_secs(1));
}

#[test]
fn sighup_rereads_the_config() {
    let dir = scratch("run_sighup");
    let conf = dir.join("netmon-agent.conf");
    std::fs::write(&conf, "CYCLE_TIME=1\nSERVER_ID=before\n").unwrap();
    let mut child = spawn_run(&["--config", conf.to_str().unwrap()]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["serverId"], "before");
    std::fs::write(&conf, "CYCLE_TIME=1\nSERVER_ID=after\n").unwrap();
    kill(&child, 1);
    let mut seen_after = false;
    for _ in 0..3 {
        let v: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        if v["serverId"] == "after" {
            seen_after = true;
            break;
        }
    }
    // A broken config on reload keeps the old one running.
    std::fs::write(&conf, "CYCLE_TIME=zero\n").unwrap();
    kill(&child, 1);
    let v: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    kill(&child, 15);
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(seen_after, "SIGHUP did not apply the new SERVER_ID");
    assert_eq!(v["serverId"], "after");
    assert!(err.contains("CYCLE_TIME: 'zero' is not a number"), "{err}");
    assert!(status.success());
}

fn libc_sigterm() -> i32 {
    15
}
