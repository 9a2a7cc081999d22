//! Internet vs local traffic per device and the Prometheus listener, in the namespace lab: a
//! router namespace routing a "WAN" namespace that holds documentation addresses
//! (203.0.113.0/24, 2001:db8::/32). The references are the kernel's veth counters of each path
//! and the real Prometheus server (Debian `prometheus`) scraping the agent every second.
//! Root only (skips with the reason otherwise); all traffic stays inside the namespaces made here.

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::{agent as agent_cmd, *};
use crate::lab::{in_ns, ns, quiet, sinks, skip_unless_root, wait_for, Agent, Lab};

const WAN4: &str = "203.0.113.7";
const WAN6: &str = "2001:db8:ffff::7";

fn mac_of(nsn: &str, dev: &str) -> String {
    ns(nsn, &["cat", &format!("/sys/class/net/{dev}/address")])
        .trim()
        .to_owned()
}

fn counter(nsn: &str, dev: &str, what: &str) -> u64 {
    ns(
        nsn,
        &["cat", &format!("/sys/class/net/{dev}/statistics/{what}")],
    )
    .trim()
    .parse()
    .unwrap()
}

/// (tx_bytes, tx_packets, rx_bytes, rx_packets) of a device in a namespace.
fn counters(nsn: &str, dev: &str) -> [u64; 4] {
    [
        counter(nsn, dev, "tx_bytes"),
        counter(nsn, dev, "tx_packets"),
        counter(nsn, dev, "rx_bytes"),
        counter(nsn, dev, "rx_packets"),
    ]
}

fn delta(after: [u64; 4], before: [u64; 4]) -> [u64; 4] {
    std::array::from_fn(|i| after[i] - before[i])
}

/// The WAN host's addresses on the WAN namespace's loopback, routes to them in the router,
/// permanent neighbours on the WAN link (no ARP/NDP there during the test).
fn wan_host(lab: &Lab) {
    let (r, w) = (&lab.router, &lab.wan);
    ns(
        w,
        &["ip", "addr", "add", &format!("{WAN4}/32"), "dev", "lo"],
    );
    ns(
        w,
        &[
            "ip",
            "addr",
            "add",
            &format!("{WAN6}/128"),
            "dev",
            "lo",
            "nodad",
        ],
    );
    ns(
        r,
        &["ip", "route", "add", "203.0.113.0/24", "via", "10.98.0.2"],
    );
    ns(
        r,
        &[
            "ip",
            "-6",
            "route",
            "add",
            "2001:db8::/32",
            "via",
            "fd98::2",
        ],
    );
    let (rmac, wmac) = (mac_of(r, "wan0"), mac_of(w, "eth0"));
    for (nsn, dev, ip, mac) in [
        (r, "wan0", "10.98.0.2", &wmac),
        (r, "wan0", "fd98::2", &wmac),
        (w, "eth0", "10.98.0.1", &rmac),
        (w, "eth0", "fd98::1", &rmac),
    ] {
        ns(
            nsn,
            &[
                "ip",
                "neigh",
                "replace",
                ip,
                "lladdr",
                mac,
                "nud",
                "permanent",
                "dev",
                dev,
            ],
        );
    }
    ns(r, &["ip", "link", "set", "lo", "up"]);
}

/// UDP datagrams of mixed sizes from namespace `from` (bound to `src`) to each of `dsts`,
/// interleaved, paced so no queue on the way drops any.
fn udp_mix(
    from: &str,
    src: Option<&str>,
    dsts: &[&str],
    n: usize,
    seed: usize,
) -> std::thread::JoinHandle<()> {
    let src = src.map(str::to_owned);
    let dsts: Vec<SocketAddr> = dsts
        .iter()
        .map(|d| {
            if d.contains(':') {
                format!("[{d}]:7000")
            } else {
                format!("{d}:7000")
            }
            .parse()
            .unwrap()
        })
        .collect();
    in_ns(from, move || {
        let sock = |v6: bool| {
            let bind = match (&src, v6) {
                (Some(s), _) if s.contains(':') == v6 => {
                    if v6 {
                        format!("[{s}]:0")
                    } else {
                        format!("{s}:0")
                    }
                }
                _ if v6 => "[::]:0".into(),
                _ => "0.0.0.0:0".into(),
            };
            UdpSocket::bind(bind).unwrap()
        };
        let (s4, s6) = (sock(false), sock(true));
        let payload = vec![0x5au8; 1472];
        for j in 0..n {
            for (k, d) in dsts.iter().enumerate() {
                let size = 1 + (seed * 131 + k * 17 + j * 97) % 1400;
                let s = if d.is_ipv4() { &s4 } else { &s6 };
                s.send_to(&payload[..size], d).unwrap();
            }
            if j % 16 == 15 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    })
}

/// The real Prometheus server in a namespace, scraping `target` every second.
struct Prometheus {
    child: Child,
    nsname: String,
}

impl Prometheus {
    fn start(nsname: &str, target: &str, dir: &std::path::Path) -> Prometheus {
        let cfg = dir.join("prometheus.yml");
        std::fs::write(
            &cfg,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: netmon\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", nsname, "prometheus"])
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg("--web.listen-address=127.0.0.1:9090")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .expect("prometheus (Debian package prometheus)");
        Prometheus {
            child,
            nsname: nsname.to_owned(),
        }
    }

    /// The value of an instant query that yields one sample (None: no sample or an error).
    fn query(&self, q: &str) -> Option<f64> {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.nsname,
                "curl",
                "-sf",
                "--max-time",
                "2",
            ])
            .args(["--data-urlencode", &format!("query={q}")])
            .arg("http://127.0.0.1:9090/api/v1/query")
            .output()
            .ok()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let r = v["data"]["result"].as_array()?;
        if r.len() != 1 {
            return None;
        }
        r[0]["value"][1].as_str()?.parse().ok()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn field(snap: &serde_json::Value, mac: &str, key: &str) -> u64 {
    let d = snap["network"]["connectedDevices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["mac"] == mac)
        .unwrap_or_else(|| panic!("{mac} not in the snapshot"));
    d["bandwidth"][key].as_u64().unwrap()
}

/// Client 0 talks to client 1 (local) and to the WAN host (internet) at the same time, over
/// IPv4 and IPv6; the WAN host and client 1 send to client 0 at the same time. The agent's
/// internet/local split of client 0 equals the veth counters of each path, in its snapshot and
/// in what the real Prometheus stored from scraping /metrics every second.
#[test]
fn lab_internet_split_and_prometheus_exact() {
    if skip_unless_root("lab_internet_split_and_prometheus_exact") {
        return;
    }
    if Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        if in_ci() {
            panic!("prometheus is missing (apt-get install prometheus)");
        }
        eprintln!("SKIP lab_internet_split_and_prometheus_exact: prometheus not installed");
        return;
    }
    let lab = Lab::new("i", 2);
    lab.static_neighbours();
    wan_host(&lab);
    let dir = scratch("lab_internet");
    let (c0, c1) = (&lab.clients[0], &lab.clients[1]);

    let agent = Agent::start(
        &lab.router,
        &[],
        &[
            "run",
            "--config",
            "/dev/null",
            "-i",
            "br-lan",
            "--cycle",
            "1",
            "--set",
            "SCAN_INTERVAL=0",
            "--set",
            "METRICS_LISTEN=127.0.0.1:9101",
        ],
    );
    agent.next(Duration::from_secs(10));
    let prom = Prometheus::start(&lab.router, "127.0.0.1:9101", &dir);
    wait_for(
        Duration::from_secs(30),
        "Prometheus scraping the agent",
        || (prom.query("up{job=\"netmon\"}") == Some(1.0)).then_some(()),
    );

    let stop = Arc::new(AtomicBool::new(false));
    let sink_threads: Vec<_> = [&c0.ns, &c1.ns, &lab.wan]
        .into_iter()
        .map(|n| sinks(n, stop.clone()))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let before_c0 = counters(&c0.ns, "eth0");
    let before_c1 = counters(&c1.ns, "eth0");
    let before_wan = counters(&lab.router, "wan0");
    let baseline = agent.next(Duration::from_secs(5));
    // tcpdump on br-lan over the same traffic, for `replay --gateway`.
    let pcap = dir.join("br-lan.pcap");
    let mut dump = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.router,
            "tcpdump",
            "-i",
            "br-lan",
            // A 32 MiB buffer: with the default 2 MiB tcpdump drops some of the burst.
            "-B",
            "32768",
            "-s",
            "128",
            "-U",
            "-w",
        ])
        .arg(&pcap)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tcpdump");
    {
        use std::io::BufRead;
        let mut line = String::new();
        let mut err = std::io::BufReader::new(dump.stderr.take().unwrap());
        let _ = err.read_line(&mut line);
        assert!(line.contains("listening"), "tcpdump: {line}");
        std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    }
    // "listening" comes a moment before tcpdump's socket sees every frame.
    std::thread::sleep(Duration::from_millis(700));

    let senders = [
        udp_mix(&c0.ns, None, &[&c1.ip4, WAN4, &c1.ip6, WAN6], 600, 1),
        udp_mix(&lab.wan, Some(WAN4), &[&c0.ip4], 500, 2),
        udp_mix(&lab.wan, Some(WAN6), &[&c0.ip6], 400, 3),
        udp_mix(&c1.ns, None, &[&c0.ip4, &c0.ip6], 300, 4),
    ];
    for s in senders {
        s.join().unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    let _ = Command::new("kill")
        .args(["-INT", &dump.id().to_string()])
        .status();
    let _ = dump.wait();
    let c0d = delta(counters(&c0.ns, "eth0"), before_c0);
    let c1d = delta(counters(&c1.ns, "eth0"), before_c1);
    let wand = delta(counters(&lab.router, "wan0"), before_wan);
    stop.store(true, Ordering::Relaxed);
    for t in sink_threads {
        t.join().unwrap();
    }
    // The paths: client 0 -> WAN leaves through wan0 (tx), WAN -> client 0 comes in on wan0 (rx);
    // forwarding keeps the Ethernet length (untagged on both sides).
    assert_eq!(
        wand[1],
        600 * 2,
        "wan0 forwarded what client 0 sent to the WAN host"
    );
    assert_eq!(wand[3], 500 + 400, "wan0 received what the WAN host sent");

    let snap = agent.next(Duration::from_secs(5));
    assert!(validate_snapshots(&serde_json::to_string(&snap).unwrap()));
    let got = |s: &serde_json::Value, k: &str| field(s, &c0.mac, k);
    let since = |k: &str| got(&snap, k) - got(&baseline, k);
    eprintln!(
        "client 0: internet tx {} B / rx {} B (wan0 tx {} / rx {}), eth0 tx {} / rx {}",
        since("internetTxBytesTotal"),
        since("internetRxBytesTotal"),
        wand[0],
        wand[2],
        c0d[0],
        c0d[2]
    );
    // Internet: exactly the WAN path, both directions.
    assert_eq!(
        since("internetTxBytesTotal"),
        wand[0],
        "internet tx bytes = wan0 tx"
    );
    assert_eq!(since("internetTxPacketsTotal"), wand[1]);
    assert_eq!(
        since("internetRxBytesTotal"),
        wand[2],
        "internet rx bytes = wan0 rx"
    );
    assert_eq!(since("internetRxPacketsTotal"), wand[3]);
    // All of client 0's traffic, and the local part: the client-to-client path.
    assert_eq!(since("txBytesTotal"), c0d[0], "tx = client 0's eth0 tx");
    assert_eq!(since("rxBytesTotal"), c0d[2], "rx = client 0's eth0 rx");
    assert_eq!(
        since("txBytesTotal") - since("internetTxBytesTotal"),
        c1d[2],
        "local tx = what client 1 received"
    );
    assert_eq!(
        since("rxBytesTotal") - since("internetRxBytesTotal"),
        c1d[0],
        "local rx = what client 1 sent"
    );
    assert_eq!(field(&snap, &c1.mac, "internetTxBytesTotal"), 0);
    assert_eq!(snap["agent"]["capture"]["unclassified"], 0);

    // The same numbers as Prometheus stored them from its 1 s scrapes (totals since start).
    let sel = format!("{{mac=\"{}\"}}", c0.mac);
    for (metric, key) in [
        (
            "netmon_device_internet_transmit_bytes_total",
            "internetTxBytesTotal",
        ),
        (
            "netmon_device_internet_receive_bytes_total",
            "internetRxBytesTotal",
        ),
        (
            "netmon_device_internet_transmit_packets_total",
            "internetTxPacketsTotal",
        ),
        (
            "netmon_device_internet_receive_packets_total",
            "internetRxPacketsTotal",
        ),
        ("netmon_device_transmit_bytes_total", "txBytesTotal"),
        ("netmon_device_receive_bytes_total", "rxBytesTotal"),
        ("netmon_device_transmit_packets_total", "txPacketsTotal"),
        ("netmon_device_receive_packets_total", "rxPacketsTotal"),
    ] {
        let want = got(&snap, key) as f64;
        let q = format!("{metric}{sel}");
        wait_for(
            Duration::from_secs(10),
            &format!("Prometheus {q} = {want}"),
            || (prom.query(&q) == Some(want)).then_some(()),
        );
    }
    assert_eq!(prom.query(&format!("netmon_device_active{sel}")), Some(1.0));
    assert_eq!(
        prom.query("netmon_capture_up{interface=\"br-lan\"}"),
        Some(1.0)
    );

    // The capture file replayed with the router's MAC named: the same split.
    let router_mac = mac_of(&lab.router, "br-lan");
    let out = run(agent_cmd().args([
        "replay",
        "--json",
        "--gateway",
        &router_mac,
        "--range",
        "10.99.0.0/24",
        "--local",
        "fd99::/64",
        pcap.to_str().unwrap(),
    ]));
    assert!(out.status.success(), "replay: {}", stderr(&out));
    let replayed: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(field(&replayed, &c0.mac, "internetTxBytesTotal"), wand[0]);
    assert_eq!(field(&replayed, &c0.mac, "internetTxPacketsTotal"), wand[1]);
    assert_eq!(field(&replayed, &c0.mac, "internetRxBytesTotal"), wand[2]);
    assert_eq!(field(&replayed, &c0.mac, "internetRxPacketsTotal"), wand[3]);
    assert_eq!(field(&replayed, &c0.mac, "txBytesTotal"), c0d[0]);
    let table = run(agent_cmd().args([
        "replay",
        "--gateway",
        &router_mac,
        "--range",
        "10.99.0.0/24",
        "--local",
        "fd99::/64",
        pcap.to_str().unwrap(),
    ]));
    let text = stdout(&table);
    assert!(text.lines().next().unwrap().contains("INTERNET"), "{text}");
    let row = text.lines().find(|l| l.starts_with(&c0.mac)).unwrap();
    assert!(
        row.split_whitespace()
            .any(|w| w == (wand[0] + wand[2]).to_string()),
        "{row}"
    );
    assert!(
        !text.contains(&router_mac),
        "the gateway is not a device: {text}"
    );

    // The live page passes Prometheus's own linter.
    let page = ns(
        &lab.router,
        &["curl", "-sf", "http://127.0.0.1:9101/metrics"],
    );
    let mut lint = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    lint.stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = lint.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let (ok, err) = agent.stop();
    assert!(ok, "agent exit: {err}");
}

/// `replay --gateway` without local ranges, or with a bad MAC or range, is a usage error naming it.
#[test]
fn replay_gateway_usage_errors() {
    let cases: [(&[&str], &str); 4] = [
        (
            &["--gateway", "02:00:00:00:00:01"],
            "--gateway needs the local ranges",
        ),
        (
            &["--gateway", "01:00:5e:00:00:01", "--range", "10.0.0.0/8"],
            "--gateway 01:00:5e:00:00:01",
        ),
        (
            &["--gateway", "zz", "--range", "10.0.0.0/8"],
            "--gateway zz",
        ),
        (
            &["--gateway", "02:00:00:00:00:01", "--local", "fd00::/129"],
            "--local fd00::/129",
        ),
    ];
    for (args, want) in cases {
        let out = run(agent_cmd()
            .arg("replay")
            .args(args)
            .arg("/nonexistent.pcap"));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(want), "{args:?}: {}", stderr(&out));
    }
}

/// Two capture interfaces in one agent: br-lan (two clients) and a second bridge br-guest with a
/// client whose MAC is the same as a br-lan client's. Each is its own device with its own
/// interface; counts equal the veth counters; traffic routed from the guest to the LAN is
/// local. Then br-guest is deleted: br-lan keeps capturing, exactly.
#[test]
fn lab_two_interfaces_one_table() {
    if skip_unless_root("lab_two_interfaces_one_table") {
        return;
    }
    let lab = Lab::new("m", 2);
    lab.static_neighbours();
    let r = lab.router.clone();
    let (c0, c1) = (&lab.clients[0], &lab.clients[1]);
    // The guest bridge and its client, with c0's MAC.
    let guest = format!("{}g", r.trim_end_matches('r'));
    quiet(Command::new("ip").args(["netns", "del", &guest]));
    sh_ok(&["ip", "netns", "add", &guest]);
    let _guest_ns = NsGuard(guest.clone());
    ns(&r, &["ip", "link", "add", "br-guest", "type", "bridge"]);
    ns(&r, &["ip", "link", "set", "br-guest", "up"]);
    ns(
        &r,
        &["ip", "addr", "add", "10.97.0.1/24", "dev", "br-guest"],
    );
    ns(
        &r,
        &[
            "ip", "link", "add", "gst0", "type", "veth", "peer", "name", "eth0", "netns", &guest,
        ],
    );
    ns(
        &r,
        &["ip", "link", "set", "gst0", "master", "br-guest", "up"],
    );
    ns(
        &guest,
        &["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"],
    );
    ns(
        &r,
        &["sysctl", "-qw", "net.ipv6.conf.br-guest.disable_ipv6=1"],
    );
    ns(&r, &["sysctl", "-qw", "net.ipv6.conf.gst0.disable_ipv6=1"]);
    ns(&guest, &["ip", "link", "set", "eth0", "address", &c0.mac]);
    ns(&guest, &["ip", "link", "set", "lo", "up"]);
    ns(&guest, &["ip", "link", "set", "eth0", "up"]);
    ns(
        &guest,
        &["ip", "addr", "add", "10.97.0.10/24", "dev", "eth0"],
    );
    ns(
        &guest,
        &["ip", "route", "add", "default", "via", "10.97.0.1"],
    );
    let gmac = mac_of(&r, "br-guest");
    ns(
        &guest,
        &[
            "ip",
            "neigh",
            "replace",
            "10.97.0.1",
            "lladdr",
            &gmac,
            "nud",
            "permanent",
            "dev",
            "eth0",
        ],
    );
    ns(
        &r,
        &[
            "ip",
            "neigh",
            "replace",
            "10.97.0.10",
            "lladdr",
            &c0.mac,
            "nud",
            "permanent",
            "dev",
            "br-guest",
        ],
    );
    ns(&r, &["ip", "link", "set", "lo", "up"]);
    let agent = Agent::start(
        &r,
        &[],
        &[
            "run",
            "--config",
            "/dev/null",
            "-i",
            "br-lan br-guest",
            "--cycle",
            "1",
            "--set",
            "SCAN_INTERVAL=0",
            "--set",
            "NETWORK_RANGE=10.99.0.0/24 br-guest=10.97.0.0/24",
            "--set",
            "METRICS_LISTEN=127.0.0.1:9101",
        ],
    );
    agent.next(Duration::from_secs(10));
    let stop = Arc::new(AtomicBool::new(false));
    let sink = sinks(&c1.ns, stop.clone());
    std::thread::sleep(Duration::from_millis(300));
    let b_c0 = counters(&c0.ns, "eth0");
    let b_c1 = counters(&c1.ns, "eth0");
    let b_g = counters(&guest, "eth0");
    let base = agent.next(Duration::from_secs(5));
    let dev = |s: &serde_json::Value, iface: &str, mac: &str, key: &str| -> u64 {
        s["network"]["connectedDevices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["mac"] == mac && d["interface"] == iface)
            .map_or(0, |d| d["bandwidth"][key].as_u64().unwrap())
    };
    let a = udp_mix(&c0.ns, None, &[&c1.ip4], 400, 5);
    let g = udp_mix(&guest, None, &[&c1.ip4], 300, 6);
    a.join().unwrap();
    g.join().unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let d_c0 = delta(counters(&c0.ns, "eth0"), b_c0);
    let d_c1 = delta(counters(&c1.ns, "eth0"), b_c1);
    let d_g = delta(counters(&guest, "eth0"), b_g);
    let snap = agent.next(Duration::from_secs(5));
    assert!(validate_snapshots(&serde_json::to_string(&snap).unwrap()));
    let since = |iface: &str, mac: &str, key: &str| {
        dev(&snap, iface, mac, key) - dev(&base, iface, mac, key)
    };
    eprintln!(
        "br-lan {} tx {} B, br-guest {} tx {} B, {} rx {} B",
        c0.mac,
        since("br-lan", &c0.mac, "txBytesTotal"),
        c0.mac,
        since("br-guest", &c0.mac, "txBytesTotal"),
        c1.mac,
        since("br-lan", &c1.mac, "rxBytesTotal")
    );
    assert_eq!(since("br-lan", &c0.mac, "txBytesTotal"), d_c0[0]);
    assert_eq!(since("br-lan", &c0.mac, "txPacketsTotal"), d_c0[1]);
    assert_eq!(since("br-guest", &c0.mac, "txBytesTotal"), d_g[0]);
    assert_eq!(since("br-guest", &c0.mac, "txPacketsTotal"), d_g[1]);
    // c1 received c0's frames and the guest's, routed (same length, router's MAC as source).
    assert_eq!(since("br-lan", &c1.mac, "rxBytesTotal"), d_c1[2]);
    assert_eq!(since("br-guest", &c0.mac, "internetTxBytesTotal"), 0);
    let ifs = snap["agent"]["capture"]["interfaces"].as_array().unwrap();
    assert_eq!(ifs.len(), 2);
    assert_eq!(ifs[1]["interface"], "br-guest");
    assert_eq!(snap["agent"]["capture"]["interface"], "br-lan");
    // /metrics: one series per (interface, MAC), each with its own count.
    let page = || ns(&r, &["curl", "-sf", "http://127.0.0.1:9101/metrics"]);
    let series = |page: &str, iface: &str, mac: &str| -> Option<u64> {
        let head =
            format!("netmon_device_transmit_bytes_total{{interface=\"{iface}\",mac=\"{mac}\",");
        page.lines()
            .find(|l| l.starts_with(&head))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    };
    let p = page();
    assert_eq!(
        series(&p, "br-lan", &c0.mac),
        Some(dev(&snap, "br-lan", &c0.mac, "txBytesTotal")),
        "{p}"
    );
    assert_eq!(
        series(&p, "br-guest", &c0.mac),
        Some(dev(&snap, "br-guest", &c0.mac, "txBytesTotal")),
        "{p}"
    );
    assert!(
        p.contains("netmon_capture_up{interface=\"br-guest\"} 1\n"),
        "{p}"
    );

    // br-guest goes away: its capture is off, br-lan goes on exactly.
    ns(&r, &["ip", "link", "del", "br-guest"]);
    let s = wait_for(Duration::from_secs(10), "br-guest off", || {
        let s = agent.next(Duration::from_secs(5));
        (s["agent"]["capture"]["interfaces"][1]["mode"] == "off").then_some(s)
    });
    assert_eq!(s["agent"]["capture"]["mode"], "live");
    let p = page();
    assert!(
        p.contains("netmon_capture_up{interface=\"br-guest\"} 0\n"),
        "{p}"
    );
    assert!(
        p.contains("netmon_capture_up{interface=\"br-lan\"} 1\n"),
        "{p}"
    );
    let b_c0 = counters(&c0.ns, "eth0");
    let before = agent.next(Duration::from_secs(5));
    udp_mix(&c0.ns, None, &[&c1.ip4], 200, 7).join().unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let d_c0 = delta(counters(&c0.ns, "eth0"), b_c0);
    let after = agent.next(Duration::from_secs(5));
    assert_eq!(
        dev(&after, "br-lan", &c0.mac, "txBytesTotal")
            - dev(&before, "br-lan", &c0.mac, "txBytesTotal"),
        d_c0[0]
    );
    stop.store(true, Ordering::Relaxed);
    sink.join().unwrap();
    let (ok, err) = agent.stop();
    assert!(ok, "agent exit: {err}");
}

fn sh_ok(args: &[&str]) {
    let st = Command::new(args[0]).args(&args[1..]).status().unwrap();
    assert!(st.success(), "{args:?}");
}

/// Deletes a namespace this test made, whatever happens.
struct NsGuard(String);

impl Drop for NsGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}
