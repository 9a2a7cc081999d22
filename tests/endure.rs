//! What the soak (bench/soak.py, `make soak-short`) found, kept as a quick test: while the REST
//! server hangs (a POST blocks the loop for up to HTTP_TIMEOUT), the capture ring must hold the
//! traffic, even a slow trickle (the kernel hands a block over after 50 ms however empty it is).
//! Root only (namespaces); the server is tests/servers/rest_server.py inside the lab's router.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::lab::Lab;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn delivered(log: &PathBuf) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["mode"] == "ok")
        .filter_map(|r| serde_json::from_str(r["body"].as_str()?).ok())
        .collect()
}

#[test]
fn lab_hanging_rest_server_costs_no_frames() {
    if !is_root() {
        eprintln!(
            "SKIP lab_hanging_rest_server_costs_no_frames: needs root to create network namespaces"
        );
        return;
    }
    let lab = Lab::new("h", 1);
    let lo = Command::new("ip")
        .args(["-n", &lab.router, "link", "set", "lo", "up"])
        .status()
        .unwrap();
    assert!(lo.success());
    let dir = scratch("endure_hang");
    let log = dir.join("rest.log");
    let mode = dir.join("mode");
    std::fs::write(&mode, "silent").unwrap();
    let servers = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/servers/rest_server.py");
    let mut server = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.router,
            "python3",
            servers,
            "--port",
            "18071",
        ])
        .arg("--log")
        .arg(&log)
        .arg("--mode-file")
        .arg(&mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    let _ = BufReader::new(server.stdout.take().unwrap()).read_line(&mut ready);
    let _server = Killed(server);
    assert!(ready.contains("READY"), "rest_server.py: {ready:?}");
    let conf = dir.join("agent.conf");
    std::fs::write(
        &conf,
        "INTERFACE=br-lan\nCYCLE_TIME=2\nSCAN_INTERVAL=0\nHTTP_TIMEOUT=5\n\
         PLATFORM_API_URL=http://127.0.0.1:18071/api\nAPI_KEY=endure-key\n",
    )
    .unwrap();
    let c = &lab.clients[0];
    let tx0 = lab.counter(c, "tx_packets");
    let agent = crate::lab::Agent::start(
        &lab.router,
        &[],
        &["run", "--config", conf.to_str().unwrap()],
    );
    std::thread::sleep(Duration::from_millis(1500));
    // 300 frames/s for 8 s from the client while every POST hangs for 5 s.
    let script = format!(
        "import socket,time\n\
         s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW); s.bind(('eth0',0))\n\
         f=b'\\xff'*6+bytes.fromhex('{}')+b'\\x88\\xb5'+bytes(60)\n\
         end=time.time()+8\n\
         while time.time()<end:\n    [s.send(f) for _ in range(3)]\n    time.sleep(0.01)\n",
        c.mac.replace(':', "")
    );
    let st = Command::new("ip")
        .args(["netns", "exec", &c.ns, "python3", "-c", &script])
        .status()
        .unwrap();
    assert!(st.success());
    std::thread::sleep(Duration::from_millis(300));
    let sent = lab.counter(c, "tx_packets") - tx0;
    std::fs::write(&mode, "ok").unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    let snap = loop {
        let got = delivered(&log);
        let done = got.iter().find(|s| {
            s["agent"]["backlog"] == 0
                && s["network"]["connectedDevices"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|d| d["mac"] == c.mac.as_str() && d["bandwidth"]["txPacketsTotal"] == sent)
        });
        if let Some(s) = done {
            break s.clone();
        }
        if Instant::now() > end {
            let last = got.last().map(|s| s["agent"]["capture"].to_string());
            panic!(
                "no delivered snapshot counts the {sent} frames; last capture info {last:?}\n{}",
                agent.stderr()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(snap["agent"]["capture"]["packetsDropped"], 0, "{snap}");
    assert!(sent > 1500, "{sent} frames sent");
    let (clean, err) = agent.stop();
    assert!(clean, "{err}");
}
