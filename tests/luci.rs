//! The local status file (STATUS_FILE) and luci-app-netmon-agent: the file as the agent writes
//! it, and the app on the real OpenWrt userland and LuCI, driven by headless Chromium
//! (tests/luci/lab_test.py and luci_browser.py).

use crate::common::*;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read_status(path: &std::path::Path) -> Option<serde_json::Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn sigterm(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
}

/// Without a platform the status file is the agent's only output (nothing on stdout), it holds
/// a schema-valid snapshot and the agent's state, it is rewritten every cycle, and it is gone
/// after a clean stop.
#[test]
fn status_file_without_platform() {
    let dir = scratch("luci-status-local");
    let path = dir.join("status.json");
    let child = agent()
        .args(["run", "--config", "/dev/null", "--cycle", "1", "-i", "lo"])
        .args(["--set", "SCAN_INTERVAL=0", "--set", "PROMISC=0", "--set"])
        .arg(format!("STATUS_FILE={}", path.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut seqs = Vec::new();
    let end = Instant::now() + Duration::from_secs(10);
    while seqs.len() < 2 && Instant::now() < end {
        if let Some(v) = read_status(&path) {
            let seq = v["snapshot"]["agent"]["seq"].as_u64().unwrap();
            if seqs.last() != Some(&seq) {
                seqs.push(seq);
                assert_eq!(v["status"]["output"], "local");
                assert_eq!(v["status"]["pid"], pid);
                assert_eq!(v["status"]["cycleSeconds"], 1);
                assert_eq!(v["status"]["apiKeySet"], false);
                assert!(validate_snapshots(&v["snapshot"].to_string()) || !in_ci());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(seqs.len() >= 2, "the file was not rewritten: {seqs:?}");
    let mode = std::fs::metadata(&path).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
    sigterm(pid);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "", "stdout must stay empty with STATUS_FILE");
    assert!(!path.exists(), "the file outlived a clean stop");
}

/// With a platform, the snapshot in the file is the one the platform got (same runId and seq,
/// same content), the state says it was delivered, and the key is not in the file.
#[test]
fn status_file_matches_what_was_shipped() {
    let dir = scratch("luci-status-platform");
    let path = dir.join("status.json");
    let log = dir.join("rest.jsonl");
    let port = (20000 + std::process::id() % 20000).to_string();
    let Ok(mut server) = Command::new("python3")
        .arg(repo().join("tests/servers/rest_server.py"))
        .args(["--port", &port, "--log"])
        .arg(&log)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    else {
        assert!(!in_ci(), "python3 is needed in CI");
        println!("skipped: python3 is not available");
        return;
    };
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "READY");
    let conf = dir.join("agent.conf");
    std::fs::write(
        &conf,
        format!(
            "PLATFORM_API_URL=http://127.0.0.1:{port}/api\nAPI_KEY=status-test-key-0815\nCYCLE_TIME=1\n\
             INTERFACE=lo\nSCAN_INTERVAL=0\nPROMISC=0\nSTATUS_FILE={}\n",
            path.display()
        ),
    )
    .unwrap();
    let child = agent()
        .args(["run", "--config"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for a file whose state reports a delivery, then find its snapshot at the server.
    let end = Instant::now() + Duration::from_secs(15);
    let mut matched = None;
    while matched.is_none() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(200));
        let Some(v) = read_status(&path) else {
            continue;
        };
        if v["status"]["delivery"]["lastResult"] != "delivered" {
            continue;
        }
        let key = (
            v["snapshot"]["agent"]["runId"].clone(),
            v["snapshot"]["agent"]["seq"].clone(),
        );
        // The file is written before the cycle's POST: give the server a moment.
        std::thread::sleep(Duration::from_millis(500));
        let shipped = std::fs::read_to_string(&log).unwrap_or_default();
        for l in shipped.lines() {
            let rec: serde_json::Value = serde_json::from_str(l).unwrap();
            let body: serde_json::Value =
                serde_json::from_str(rec["body"].as_str().unwrap()).unwrap();
            if (body["agent"]["runId"].clone(), body["agent"]["seq"].clone()) == key {
                matched = Some((v.clone(), body));
            }
        }
    }
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    sigterm(child.id());
    let out = child.wait_with_output().unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let (file, shipped) = matched.unwrap_or_else(|| {
        panic!(
            "no delivered snapshot in the file matched the server's\n{}",
            stderr(&out)
        )
    });
    assert_eq!(file["snapshot"], shipped);
    let st = &file["status"];
    assert_eq!(st["output"], "platform");
    assert_eq!(st["rest"], true);
    assert_eq!(st["apiKeySet"], true);
    assert!(st["delivery"]["delivered"].as_u64().unwrap() >= 1);
    assert!(st["delivery"]["lastDelivered"].is_string());
    assert!(
        !text.contains("status-test-key-0815"),
        "the key is in the file"
    );
}

/// The app on the real LuCI of ../shared/openwrt-lab: opkg and apk installs, the status view
/// against the snapshots a REST server in the namespace received, the settings view's Save &
/// Apply against UCI and the running agent, a user without the app's ACL, removals. Needs root,
/// the lab's build dependencies, chromium, chromedriver and python3-selenium.
#[test]
fn luci_app_in_the_lab() {
    if !is_root() {
        println!("skipped: needs root (namespaces, the OpenWrt lab)");
        return;
    }
    let Some(shared) = shared() else {
        assert!(!in_ci(), "../shared/openwrt-lab is needed in CI");
        println!("skipped: ../shared/openwrt-lab is not there");
        return;
    };
    let missing: Vec<&str> = [
        "/usr/bin/chromium",
        "/usr/bin/chromedriver",
        "/usr/bin/cmake",
    ]
    .into_iter()
    .filter(|p| !std::path::Path::new(p).exists())
    .collect();
    let selenium = Command::new("/usr/bin/python3")
        .args(["-c", "import selenium"])
        .status()
        .is_ok_and(|s| s.success());
    if !missing.is_empty() || !selenium || !shared.join("openwrt-lab/lab.sh").exists() {
        assert!(
            !in_ci(),
            "missing in CI: {missing:?}, selenium {selenium}: see .ci/run"
        );
        println!("skipped: missing {missing:?} (selenium: {selenium})");
        return;
    }
    // target/luci-lab: the built lab is reused by later runs; screenshots in target/luci-lab/shots.
    let work = repo().join("target/luci-lab");
    let t0 = Instant::now();
    let out = Command::new("/usr/bin/python3")
        .arg(repo().join("tests/luci/lab_test.py"))
        .arg("--repo")
        .arg(repo())
        .arg("--bin")
        .arg(bin())
        .arg("--work")
        .arg(&work)
        .output()
        .unwrap();
    println!("{}{}", stdout(&out), stderr(&out));
    println!("luci lab test: {:.0} s", t0.elapsed().as_secs_f64());
    assert!(out.status.success(), "the LuCI lab test failed (see above)");
}
