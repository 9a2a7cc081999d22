//! RUN_AS_USER from outside: started as root, the agent becomes `nobody` with no effective
//! capability and keeps producing snapshots. Reference: the kernel's /proc/PID/status.

use crate::common::*;
use std::io::{BufRead, BufReader};
use std::process::Stdio;

fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("{key} missing in\n{status}"))[key.len()..]
        .trim()
        .to_owned()
}

/// uid of `name` according to `id -u` (an independent reading of the user database).
fn id_u(name: &str) -> Option<String> {
    let o = std::process::Command::new("id")
        .args(["-u", name])
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_owned())
}

#[test]
fn run_as_nobody_drops_root_and_keeps_working() {
    if !is_root() {
        println!("skipped: needs root (the agent must start as root to drop to nobody)");
        return;
    }
    let Some(uid) = id_u("nobody") else {
        println!("skipped: no user 'nobody' here");
        return;
    };
    let mut child = agent()
        .args(["run", "--cycle", "1"])
        .env("NETMON_RUN_AS_USER", "nobody")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("a first snapshot").unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let second = lines
        .next()
        .expect("a second snapshot after the drop")
        .unwrap();
    // SIGTERM through kill(1): the agent stops cleanly.
    let _ = std::process::Command::new("kill")
        .arg(pid.to_string())
        .status();
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);

    let want_ids = format!("{uid}\t{uid}\t{uid}\t{uid}");
    assert_eq!(status_field(&status, "Uid:"), want_ids, "{status}");
    let gid = status_field(&status, "Gid:");
    assert!(!gid.split('\t').any(|g| g == "0"), "Gid: {gid}");
    assert_eq!(status_field(&status, "Groups:").split(' ').count(), 1);
    assert_eq!(status_field(&status, "CapEff:"), "0000000000000000");
    assert_eq!(status_field(&status, "CapInh:"), "0000000000000000");
    assert_eq!(status_field(&status, "CapAmb:"), "0000000000000000");
    // CAP_NET_RAW (bit 13) stays permitted only, for reopening the capture socket.
    assert_eq!(status_field(&status, "CapPrm:"), "0000000000002000");
    assert_eq!(status_field(&status, "CapBnd:"), "0000000000002000");
    assert_eq!(status_field(&status, "NoNewPrivs:"), "1");
    for l in [&first, &second] {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["messageType"], "realtimeSnapshot");
    }
    assert!(err.contains("switched to user nobody"), "{err}");
}

#[test]
fn run_as_unknown_user_is_a_config_error() {
    let o = run(agent()
        .args(["run", "--cycle", "1"])
        .env("NETMON_RUN_AS_USER", "no-such-user-x"));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("RUN_AS_USER=no-such-user-x: no such user"));
}
