//! The namespace lab: a router namespace with bridge `br-lan`, client namespaces on veth pairs
//! (IPv4 and IPv6), and a "wan" namespace behind the router. VLAN-tagged frames are sent raw
//! (802.1Q tag in the frame) from one client to another: kernels without the 8021q module
//! (like this CI's) cannot make VLAN sub-interfaces. The agent runs in the router namespace on br-lan; every reference number comes from
//! the kernel (veth counters in /sys) or from tcpdump/tshark/arp-scan inside the namespaces.
//! Root only (skips with the reason otherwise). All traffic stays inside the namespaces the test
//! made; each test uses its own namespace names and tears them down in Drop, whatever happens.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;

pub(crate) const LAN4: &str = "10.99.0";
pub(crate) const LAN6: &str = "fd99::";

pub(crate) fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    eprintln!("SKIP {test}: needs root to create network namespaces");
    true
}

/// Runs a command and returns its stdout; panics with stderr when it fails.
pub(crate) fn sh(args: &[&str]) -> String {
    let o = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        o.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub(crate) fn ns(ns: &str, args: &[&str]) -> String {
    let mut v = vec!["ip", "netns", "exec", ns];
    v.extend_from_slice(args);
    sh(&v)
}

/// Sends SIG`name` to our own child `pid`.
fn signal(pid: u32, name: &str) {
    let st = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(st.success(), "kill -{name} {pid}");
}

/// Runs a command whose failure does not matter, without its output.
pub(crate) fn quiet(cmd: &mut Command) {
    let _ = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status();
}

/// Polls `cond` every 100 ms until it returns Some or `timeout` passes.
pub(crate) fn wait_for<T>(timeout: Duration, what: &str, mut cond: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = cond() {
            return v;
        }
        if Instant::now() > end {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub struct Client {
    pub ns: String,
    pub mac: String,
    pub ip4: String,
    pub ip6: String,
    /// The router-side veth.
    pub port: String,
}

/// The lab; Drop deletes every namespace it made (and with them all their interfaces).
pub struct Lab {
    pub router: String,
    pub wan: String,
    pub clients: Vec<Client>,
    made: Vec<String>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for n in self.made.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

impl Lab {
    /// `tag`: a short unique name for the test; `n`: number of clients (>= 8 in the big tests).
    pub fn new(tag: &str, n: usize) -> Lab {
        let p = format!("nm{tag}{}", std::process::id() % 100_000);
        let mut lab = Lab {
            router: format!("{p}r"),
            wan: format!("{p}w"),
            clients: Vec::new(),
            made: Vec::new(),
        };
        // Leftovers of a killed earlier run with the same names.
        for name in [&lab.router, &lab.wan] {
            quiet(Command::new("ip").args(["netns", "del", name]));
        }
        lab.add_ns(&lab.router.clone());
        lab.add_ns(&lab.wan.clone());
        let r = lab.router.clone();
        let w = lab.wan.clone();
        ns(&r, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        ns(&r, &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
        ns(&r, &["ip", "link", "add", "br-lan", "type", "bridge"]);
        Self::quiet_v6(&r, "br-lan");
        ns(&r, &["ip", "link", "set", "br-lan", "up"]);
        ns(
            &r,
            &[
                "ip",
                "addr",
                "add",
                &format!("{LAN4}.1/24"),
                "dev",
                "br-lan",
            ],
        );
        ns(
            &r,
            &[
                "ip",
                "addr",
                "add",
                &format!("{LAN6}1/64"),
                "dev",
                "br-lan",
                "nodad",
            ],
        );
        // WAN
        ns(
            &r,
            &[
                "ip", "link", "add", "wan0", "type", "veth", "peer", "name", "eth0", "netns", &w,
            ],
        );
        ns(&r, &["ip", "link", "set", "wan0", "up"]);
        ns(&r, &["ip", "addr", "add", "10.98.0.1/24", "dev", "wan0"]);
        ns(
            &r,
            &["ip", "addr", "add", "fd98::1/64", "dev", "wan0", "nodad"],
        );
        ns(&w, &["ip", "link", "set", "lo", "up"]);
        ns(&w, &["ip", "link", "set", "eth0", "up"]);
        ns(&w, &["ip", "addr", "add", "10.98.0.2/24", "dev", "eth0"]);
        ns(
            &w,
            &["ip", "addr", "add", "fd98::2/64", "dev", "eth0", "nodad"],
        );
        ns(&w, &["ip", "route", "add", "default", "via", "10.98.0.1"]);
        ns(
            &w,
            &["ip", "-6", "route", "add", "default", "via", "fd98::1"],
        );
        for i in 0..n {
            lab.add_client(i);
        }
        lab
    }

    fn add_ns(&mut self, name: &str) {
        sh(&["ip", "netns", "add", name]);
        self.made.push(name.to_owned());
        ns(
            name,
            &["sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"],
        );
        ns(
            name,
            &[
                "sysctl",
                "-qw",
                "net.ipv6.conf.default.router_solicitations=0",
            ],
        );
    }

    /// No DAD, no router solicitations: the lab is quiet unless a test sends something.
    fn quiet_v6(nsn: &str, dev: &str) {
        for (k, v) in [("accept_dad", "0"), ("router_solicitations", "0")] {
            let _ = Command::new("ip")
                .args(["netns", "exec", nsn, "sysctl", "-qw"])
                .arg(format!("net.ipv6.conf.{dev}.{k}={v}"))
                .status();
        }
    }

    fn add_client(&mut self, i: usize) {
        let name = format!("{}c{i}", self.router.trim_end_matches('r'));
        quiet(Command::new("ip").args(["netns", "del", &name]));
        self.add_ns(&name);
        let r = self.router.clone();
        let port = format!("lan{i}");
        let mac = format!("02:00:00:99:00:{:02x}", 0x10 + i);
        let ip4 = format!("{LAN4}.{}", 10 + i);
        let ip6 = format!("{LAN6}{:x}", 0x10 + i);
        ns(
            &r,
            &[
                "ip", "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &name,
            ],
        );
        ns(&name, &["ip", "link", "set", "eth0", "address", &mac]);
        ns(&r, &["ip", "link", "set", &port, "master", "br-lan", "up"]);
        ns(&name, &["ip", "link", "set", "lo", "up"]);
        ns(&name, &["ip", "link", "set", "eth0", "up"]);
        ns(
            &name,
            &["ip", "addr", "add", &format!("{ip4}/24"), "dev", "eth0"],
        );
        ns(
            &name,
            &[
                "ip",
                "addr",
                "add",
                &format!("{ip6}/64"),
                "dev",
                "eth0",
                "nodad",
            ],
        );
        ns(
            &name,
            &["ip", "route", "add", "default", "via", &format!("{LAN4}.1")],
        );
        ns(
            &name,
            &[
                "ip",
                "-6",
                "route",
                "add",
                "default",
                "via",
                &format!("{LAN6}1"),
            ],
        );
        self.clients.push(Client {
            ns: name,
            mac,
            ip4,
            ip6,
            port,
        });
    }

    /// Permanent neighbour entries everywhere (router <-> clients, clients <-> clients, both
    /// families): no ARP/NDP probes start on their own minutes later, so the lab stays quiet
    /// between the test's own traffic.
    pub fn static_neighbours(&self) {
        let router_mac = ns(&self.router, &["cat", "/sys/class/net/br-lan/address"]);
        let router_mac = router_mac.trim().to_owned();
        let mut all: Vec<(String, String, String)> = self
            .clients
            .iter()
            .map(|c| (c.ip4.clone(), c.ip6.clone(), c.mac.clone()))
            .collect();
        all.push((format!("{LAN4}.1"), format!("{LAN6}1"), router_mac));
        let mut spaces: Vec<(String, String)> = self
            .clients
            .iter()
            .map(|c| (c.ns.clone(), "eth0".to_owned()))
            .collect();
        spaces.push((self.router.clone(), "br-lan".to_owned()));
        for (nsn, dev) in spaces {
            let mut batch = String::new();
            for (ip4, ip6, mac) in &all {
                batch += &format!("neigh replace {ip4} lladdr {mac} nud permanent dev {dev}\n");
                batch += &format!("neigh replace {ip6} lladdr {mac} nud permanent dev {dev}\n");
            }
            let file = std::env::temp_dir().join(format!("{nsn}.neigh"));
            std::fs::write(&file, batch).unwrap();
            ns(&nsn, &["ip", "-batch", file.to_str().unwrap()]);
            let _ = std::fs::remove_file(&file);
        }
    }

    /// A client's eth0 counter (`tx_bytes`, `tx_packets`, ...) read inside its namespace.
    pub fn counter(&self, c: &Client, what: &str) -> u64 {
        ns(
            &c.ns,
            &["cat", &format!("/sys/class/net/eth0/statistics/{what}")],
        )
        .trim()
        .parse()
        .unwrap()
    }
}

/// Runs `f` on a thread that has entered network namespace `name`.
pub(crate) fn in_ns<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let path = format!("/var/run/netns/{name}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap();
        // SAFETY: setns on this thread only, with a namespace fd we hold open.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
}

/// TCP and UDP sinks on port 7000 (IPv4 and IPv6) in a namespace, until `stop`.
pub(crate) fn sinks(name: &str, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    in_ns(name, move || {
        let tcp = TcpListener::bind("[::]:7000").unwrap();
        tcp.set_nonblocking(true).unwrap();
        let udp = UdpSocket::bind("[::]:7000").unwrap();
        udp.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let mut buf = vec![0u8; 65536];
        let mut conns: Vec<TcpStream> = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            while let Ok((s, _)) = tcp.accept() {
                s.set_nonblocking(true).unwrap();
                conns.push(s);
            }
            let _ = udp.recv_from(&mut buf);
            conns.retain_mut(|s| match s.read(&mut buf) {
                Ok(0) => false,
                Ok(_) => true,
                Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
            });
        }
    })
}

/// Known traffic from one client: UDP of mixed sizes and TCP streams, IPv4 and IPv6, to `dsts`.
fn send_traffic(name: &str, dsts: Vec<String>, seed: usize) -> std::thread::JoinHandle<()> {
    in_ns(name, move || {
        for (k, dst) in dsts.iter().enumerate() {
            let addr: SocketAddr = if dst.contains(':') {
                format!("[{dst}]:7000")
            } else {
                format!("{dst}:7000")
            }
            .parse()
            .unwrap();
            let udp = UdpSocket::bind(if addr.is_ipv4() {
                "0.0.0.0:0"
            } else {
                "[::]:0"
            })
            .unwrap();
            for j in 0..40 {
                let size = 1 + (seed * 131 + k * 17 + j * 97) % 1400;
                let _ = udp.send_to(&vec![0x5a; size], addr);
            }
            if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
                for j in 0..20 {
                    let size = 1 + (seed * 53 + j * 1009) % 9000;
                    let _ = s.write_all(&vec![0xa5; size]);
                }
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
    })
}

/// Raw 802.1Q-tagged frames (VLAN `vid`, mixed sizes, local experimental EtherType) from one
/// client to another, through an AF_PACKET socket in the sender's namespace.
fn send_tagged(from: &Client, to: &Client, vid: u16, n: usize) -> std::thread::JoinHandle<()> {
    send_raw(from, to, Some(vid), n)
}

/// Raw frames (tagged with `vid` when given) of mixed sizes from one client to another.
fn send_raw(from: &Client, to: &Client, vid: Option<u16>, n: usize) -> std::thread::JoinHandle<()> {
    send_raw_paced(from, to, vid, n, None)
}

/// `send_raw`, one frame every `gap` when given (steady traffic), else as fast as it goes.
fn send_raw_paced(
    from: &Client,
    to: &Client,
    vid: Option<u16>,
    n: usize,
    gap: Option<Duration>,
) -> std::thread::JoinHandle<()> {
    let parse = |m: &str| -> Vec<u8> {
        m.split(':')
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    };
    let (src, dst) = (parse(&from.mac), parse(&to.mac));
    in_ns(&from.ns, move || {
        // SAFETY: plain socket calls on a descriptor we own and close.
        unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            assert!(
                fd >= 0,
                "packet socket: {}",
                std::io::Error::last_os_error()
            );
            let mut addr: libc::sockaddr_ll = std::mem::zeroed();
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_ifindex = libc::if_nametoindex(c"eth0".as_ptr()) as i32;
            let t0 = Instant::now();
            for j in 0..n {
                if let Some(gap) = gap {
                    let due = t0 + gap * j as u32;
                    std::thread::sleep(due.saturating_duration_since(Instant::now()));
                }
                let len = 60 + (j * 211) % 1400;
                let mut f = vec![0u8; len];
                f[..6].copy_from_slice(&dst);
                f[6..12].copy_from_slice(&src);
                match vid {
                    Some(vid) => {
                        f[12..14].copy_from_slice(&[0x81, 0x00]);
                        f[14..16].copy_from_slice(&vid.to_be_bytes());
                        f[16..18].copy_from_slice(&[0x88, 0xb5]);
                    }
                    None => f[12..14].copy_from_slice(&[0x88, 0xb5]),
                }
                let rc = libc::sendto(
                    fd,
                    f.as_ptr().cast(),
                    f.len(),
                    0,
                    (&addr as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                );
                assert_eq!(rc as usize, f.len());
            }
            libc::close(fd);
        }
    })
}

/// A DHCPREQUEST with option 12 (host name) broadcast from a client, through a UDP socket on
/// port 68 in its namespace.
fn dhcp_request(c: &Client, name: &str) {
    let mac: Vec<u8> = c
        .mac
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    let mut p = vec![0u8; 240];
    p[0] = 1; // BOOTREQUEST
    p[1] = 1; // Ethernet
    p[2] = 6;
    p[4..8].copy_from_slice(&[0x12, 0x34, 0x56, 0x78]);
    p[28..34].copy_from_slice(&mac);
    p[236..240].copy_from_slice(&[99, 130, 83, 99]);
    p.extend_from_slice(&[53, 1, 3]); // DHCPREQUEST
    p.extend_from_slice(&[12, name.len() as u8]);
    p.extend_from_slice(name.as_bytes());
    p.extend_from_slice(&[55, 4, 1, 3, 6, 15, 255]);
    p.resize(300, 0);
    in_ns(&c.ns, move || {
        let s = UdpSocket::bind("0.0.0.0:68").unwrap();
        s.set_broadcast(true).unwrap();
        s.send_to(&p, "255.255.255.255:67").unwrap();
    })
    .join()
    .unwrap();
}

/// The agent running in a namespace, its stdout lines collected by a reader thread.
pub struct Agent {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    errs: Arc<Mutex<Vec<String>>>,
}

impl Agent {
    pub fn start(nsname: &str, pre: &[&str], args: &[&str]) -> Agent {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", nsname]);
        cmd.args(pre);
        cmd.arg(bin());
        cmd.args(args);
        for (k, _) in std::env::vars() {
            if k.starts_with("NETMON_") {
                cmd.env_remove(k);
            }
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn agent");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let errs = Arc::new(Mutex::new(Vec::new()));
        let (out, err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let l = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                l.lock().unwrap().push(line);
            }
        });
        let e = errs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                e.lock().unwrap().push(line);
            }
        });
        Agent { child, lines, errs }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn count(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    /// The n-th snapshot (0-based), parsed.
    pub fn snapshot(&self, n: usize) -> Option<serde_json::Value> {
        let l = self.lines.lock().unwrap();
        l.get(n)
            .map(|s| serde_json::from_str(s).expect("snapshot is JSON"))
    }

    pub fn last(&self) -> Option<serde_json::Value> {
        let n = self.count();
        n.checked_sub(1).and_then(|i| self.snapshot(i))
    }

    /// Waits for a snapshot produced after this call.
    pub fn next(&self, timeout: Duration) -> serde_json::Value {
        let n = self.count();
        wait_for(timeout, "a new snapshot", || self.snapshot(n))
    }

    pub fn stderr(&self) -> String {
        self.errs.lock().unwrap().join("\n")
    }

    /// Stops with SIGTERM and returns whether it exited cleanly.
    pub fn stop(mut self) -> (bool, String) {
        signal(self.child.id(), "TERM");
        let st = self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        (st.success(), self.stderr())
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type Counts = BTreeMap<String, [u64; 4]>; // mac -> rx bytes, rx packets, tx bytes, tx packets

fn device_counts(snap: &serde_json::Value) -> Counts {
    let mut m = Counts::new();
    for d in snap["network"]["connectedDevices"].as_array().unwrap() {
        let b = &d["bandwidth"];
        m.insert(
            d["mac"].as_str().unwrap().to_owned(),
            [
                b["rxBytesTotal"].as_u64().unwrap(),
                b["rxPacketsTotal"].as_u64().unwrap(),
                b["txBytesTotal"].as_u64().unwrap(),
                b["txPacketsTotal"].as_u64().unwrap(),
            ],
        );
    }
    m
}

fn device<'a>(snap: &'a serde_json::Value, mac: &str) -> Option<&'a serde_json::Value> {
    snap["network"]["connectedDevices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["mac"] == mac)
}

/// A tcpdump in a client's namespace of the unicast frames addressed to it.
struct Dump {
    child: Child,
    file: std::path::PathBuf,
}

impl Dump {
    fn start(c: &Client, dir: &std::path::Path) -> Dump {
        let file = dir.join(format!("{}.pcap", c.ns));
        let mut child = Command::new("ip")
            .args([
                "netns", "exec", &c.ns, "tcpdump", "-i", "eth0", "-s", "96", "-U", "-w",
            ])
            .arg(&file)
            .arg(format!("ether dst {}", c.mac))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump");
        // Ready once it says it is listening.
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        let _ = err.read_line(&mut line);
        assert!(line.contains("listening"), "tcpdump: {line}");
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
        });
        Dump { child, file }
    }

    /// Stops tcpdump and returns (frames, bytes) as tshark reads the file (frame.len, with
    /// the VLAN tag libpcap puts back: it was on the wire).
    fn finish(mut self) -> (u64, u64) {
        signal(self.child.id(), "INT");
        let _ = self.child.wait();
        let out = sh(&[
            "tshark",
            "-r",
            self.file.to_str().unwrap(),
            "-T",
            "fields",
            "-e",
            "frame.len",
        ]);
        let lens: Vec<u64> = out.lines().map(|l| l.trim().parse().unwrap()).collect();
        (lens.len() as u64, lens.iter().sum())
    }
}

impl Drop for Dump {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn common_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "run",
        "--config",
        "/dev/null",
        "-i",
        "br-lan",
        "--cycle",
        "1",
    ];
    v.extend_from_slice(extra);
    v
}

/// Per-device bytes and packets against the kernel's veth counters and tcpdump in each client,
/// with client-to-client (promiscuous) and VLAN-tagged traffic; `capture -w` over the same
/// interval replays to the same per-device counts.
#[test]
fn lab_per_device_bytes_exact() {
    if skip_unless_root("lab_per_device_bytes_exact") {
        return;
    }
    let lab = Lab::new("b", 9);
    lab.static_neighbours();
    let dir = scratch("lab_bytes");
    let agent = Agent::start(
        &lab.router,
        &[],
        &common_args(&["--set", "SCAN_INTERVAL=0"]),
    );
    let first = agent.next(Duration::from_secs(10));
    assert_eq!(
        first["agent"]["capture"]["mode"],
        "live",
        "{first}\n{}",
        agent.stderr()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let mut servers = vec![sinks(&lab.wan, stop.clone())];
    servers.push(sinks(&lab.clients[1].ns, stop.clone()));
    servers.push(sinks(&lab.clients[2].ns, stop.clone()));
    let dumps: Vec<Dump> = lab.clients.iter().map(|c| Dump::start(c, &dir)).collect();
    let pcap = dir.join("agent.pcap");
    let mut capture = Command::new("ip")
        .args(["netns", "exec", &lab.router])
        .arg(bin())
        .args(["capture", "--config", "/dev/null", "-i", "br-lan", "-w"])
        .arg(&pcap)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut cap_err = BufReader::new(capture.stderr.take().unwrap());
    let mut line = String::new();
    let _ = cap_err.read_line(&mut line);
    assert!(line.contains("capturing on br-lan"), "capture: {line}");

    // Baselines in a quiet lab: counters and a snapshot taken after them.
    std::thread::sleep(Duration::from_millis(300));
    let base_tx: Vec<(u64, u64)> = lab
        .clients
        .iter()
        .map(|c| (lab.counter(c, "tx_bytes"), lab.counter(c, "tx_packets")))
        .collect();
    let s0 = device_counts(&agent.next(Duration::from_secs(5)));

    // Traffic: every client to the WAN (v4 and v6) and to the router; 0 and 3 to clients 1 and
    // 2 through the bridge; 0 to 1 over VLAN 10.
    let mut senders = Vec::new();
    for (i, c) in lab.clients.iter().enumerate() {
        let mut dsts = vec![
            "10.98.0.2".to_owned(),
            "fd98::2".to_owned(),
            format!("{LAN4}.1"),
        ];
        if i == 0 || i == 3 {
            dsts.push(lab.clients[1].ip4.clone());
            dsts.push(lab.clients[2].ip6.clone());
        }
        senders.push(send_traffic(&c.ns, dsts, i));
    }
    senders.push(send_tagged(&lab.clients[0], &lab.clients[1], 10, 30));
    senders.push(send_tagged(&lab.clients[4], &lab.clients[2], 4000, 25));
    for s in senders {
        s.join().unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for s in servers {
        s.join().unwrap();
    }

    // The agent's totals must converge on the references once the lab is quiet again.
    let mut report = String::new();
    let ok = wait_for(Duration::from_secs(15), "counts to settle", || {
        let snap = agent.next(Duration::from_secs(5));
        let s1 = device_counts(&snap);
        report.clear();
        let mut all = true;
        for (i, c) in lab.clients.iter().enumerate() {
            let tx = (
                lab.counter(c, "tx_bytes") - base_tx[i].0,
                lab.counter(c, "tx_packets") - base_tx[i].1,
            );
            let a = s1.get(&c.mac).copied().unwrap_or_default();
            let b = s0.get(&c.mac).copied().unwrap_or_default();
            let got = (a[2] - b[2], a[3] - b[3]);
            if got != tx {
                all = false;
                report += &format!("{}: tx agent {got:?} veth {tx:?}\n", c.mac);
            }
        }
        all.then_some(snap)
    });
    let s1 = device_counts(&ok);
    assert_eq!(ok["agent"]["capture"]["packetsDropped"], 0, "{report}");
    // rx against tcpdump inside each client.
    signal(capture.id(), "INT");
    let st = capture.wait().unwrap();
    assert!(st.success(), "capture exit {st:?}");
    for (c, d) in lab.clients.iter().zip(dumps) {
        let (frames, bytes) = d.finish();
        let a = s1.get(&c.mac).copied().unwrap_or_default();
        let b = s0.get(&c.mac).copied().unwrap_or_default();
        assert_eq!(
            (a[0] - b[0], a[1] - b[1]),
            (bytes, frames),
            "{}: rx (bytes, frames) agent vs tcpdump in its namespace",
            c.mac
        );
        assert!(frames > 0);
    }
    // Client-to-client traffic was seen (promiscuous): client 1 received from 0 and 3.
    assert!(s1[&lab.clients[1].mac][0] > 40 * 700);

    // The capture file replays to the same per-device counts as the live run over its interval
    // (it ran from before s0 to after s1, and the lab was quiet outside the traffic).
    let out = sh(&[
        bin().to_str().unwrap(),
        "replay",
        pcap.to_str().unwrap(),
        "--json",
    ]);
    let rep = device_counts(&serde_json::from_str(&out).unwrap());
    for c in &lab.clients {
        let a = s1[&c.mac];
        let b = s0.get(&c.mac).copied().unwrap_or_default();
        let live = [a[0] - b[0], a[1] - b[1], a[2] - b[2], a[3] - b[3]];
        assert_eq!(
            rep.get(&c.mac).copied().unwrap_or_default(),
            live,
            "replay vs live for {}",
            c.mac
        );
    }
    let (clean, err) = agent.stop();
    assert!(clean, "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// `scan` finds every client with its MAC: the same set as arp-scan on the same range.
#[test]
fn lab_scan_matches_arp_scan() {
    if skip_unless_root("lab_scan_matches_arp_scan") {
        return;
    }
    let lab = Lab::new("s", 8);
    let ours = ns(
        &lab.router,
        &[
            bin().to_str().unwrap(),
            "scan",
            "--config",
            "/dev/null",
            "-i",
            "br-lan",
            "--json",
        ],
    );
    let doc: serde_json::Value = serde_json::from_str(&ours).unwrap();
    let mut found: Vec<(String, String)> = doc["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["ip"].as_str().unwrap().into(),
                h["mac"].as_str().unwrap().into(),
            )
        })
        .collect();
    found.sort();
    let theirs = ns(
        &lab.router,
        &[
            "arp-scan",
            "-q",
            "-x",
            "-I",
            "br-lan",
            &format!("{LAN4}.0/24"),
        ],
    );
    let mut reference: Vec<(String, String)> = theirs
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?.to_owned(), f.next()?.to_owned()))
        })
        .collect();
    reference.sort();
    reference.dedup();
    let mut expect: Vec<(String, String)> = lab
        .clients
        .iter()
        .map(|c| (c.ip4.clone(), c.mac.clone()))
        .collect();
    expect.sort();
    assert_eq!(reference, expect, "arp-scan sees the lab");
    assert_eq!(found, reference, "scan vs arp-scan");
}

/// Discovery in `run`: names from a leases file, an IP change picked up by the scan, a client
/// that leaves turns inactive after DEVICE_TIMEOUT cycles.
#[test]
fn lab_discovery_names_ip_change_inactive() {
    if skip_unless_root("lab_discovery_names_ip_change_inactive") {
        return;
    }
    let lab = Lab::new("d", 8);
    let dir = scratch("lab_discovery");
    let leases = dir.join("dhcp.leases");
    let mut text = String::new();
    // Every client but the last has a lease with a name; the last names itself over DHCP.
    let n = lab.clients.len();
    for (i, c) in lab.clients.iter().enumerate().take(n - 1) {
        text += &format!("1999999999 {} {} host-{i} 01:{}\n", c.mac, c.ip4, c.mac);
    }
    std::fs::write(&leases, text).unwrap();
    let lease_set = format!("LEASE_FILE={}", leases.display());
    let agent = Agent::start(
        &lab.router,
        &[],
        &common_args(&[
            "--set",
            "SCAN_INTERVAL=2",
            "--set",
            "DEVICE_TIMEOUT=3",
            "--set",
            &lease_set,
        ]),
    );
    let first = agent.next(Duration::from_secs(10));
    assert_eq!(
        first["agent"]["capture"]["mode"],
        "live",
        "{}",
        agent.stderr()
    );
    let last = &lab.clients[n - 1];
    dhcp_request(last, "dhcp-named-host");
    // Every client found by the scan, with its IP and name: from the leases file, and for the
    // last one from DHCP option 12 (its frame is longer than the 128 bytes the filter keeps of
    // other frames: the DHCP branch keeps it whole).
    wait_for(Duration::from_secs(15), "all clients named", || {
        let s = agent.last()?;
        lab.clients
            .iter()
            .enumerate()
            .all(|(i, c)| {
                let name = if i == n - 1 {
                    "dhcp-named-host".to_owned()
                } else {
                    format!("host-{i}")
                };
                device(&s, &c.mac).is_some_and(|d| {
                    d["ip"] == c.ip4.as_str()
                        && d["deviceName"] == name.as_str()
                        && d["status"] == "active"
                })
            })
            .then_some(())
    });
    // Client 4 changes its IPv4 address.
    let c4 = &lab.clients[4];
    ns(
        &c4.ns,
        &["ip", "addr", "flush", "dev", "eth0", "scope", "global"],
    );
    ns(
        &c4.ns,
        &[
            "ip",
            "addr",
            "add",
            &format!("{LAN4}.200/24"),
            "dev",
            "eth0",
        ],
    );
    wait_for(Duration::from_secs(15), "IP change", || {
        let s = agent.last()?;
        (device(&s, &c4.mac)?["ip"] == format!("{LAN4}.200").as_str()).then_some(())
    });
    // Client 5 leaves (its cable pulled): inactive after 3 cycles without a sign (others answer
    // the scan every 2 s and stay active).
    let c5 = &lab.clients[5];
    ns(&lab.router, &["ip", "link", "del", &c5.port]);
    wait_for(Duration::from_secs(15), "client 5 inactive", || {
        let s = agent.last()?;
        (device(&s, &c5.mac)?["status"] == "inactive").then_some(())
    });
    // The others are still active.
    let s = agent.last().unwrap();
    assert_eq!(device(&s, &lab.clients[0].mac).unwrap()["status"], "active");
    let (clean, err) = agent.stop();
    assert!(clean && !err.contains("panicked"), "{err}");
}

/// The capture interface is deleted and re-created mid-run (as netifd does): the agent keeps
/// printing, reports capture off meanwhile, and counts traffic after the re-creation. One
/// process, one thread, no panic.
#[test]
fn lab_interface_recreated() {
    if skip_unless_root("lab_interface_recreated") {
        return;
    }
    let lab = Lab::new("i", 8);
    let agent = Agent::start(
        &lab.router,
        &[],
        &common_args(&["--set", "SCAN_INTERVAL=0"]),
    );
    let s = agent.next(Duration::from_secs(10));
    assert_eq!(s["agent"]["capture"]["mode"], "live", "{}", agent.stderr());
    let threads = std::fs::read_dir(format!("/proc/{}/task", agent.pid()))
        .unwrap()
        .count();
    assert_eq!(threads, 1, "one thread");
    let r = &lab.router;
    ns(r, &["ip", "link", "del", "br-lan"]);
    wait_for(Duration::from_secs(10), "capture off", || {
        let s = agent.next(Duration::from_secs(5));
        (s["agent"]["capture"]["mode"] == "off").then_some(s)
    });
    let s = agent.last().unwrap();
    assert!(
        s["agent"]["capture"]["offReason"]
            .as_str()
            .unwrap_or("")
            .contains("br-lan"),
        "{s}"
    );
    // Re-create the bridge with the same ports and addresses.
    ns(r, &["ip", "link", "add", "br-lan", "type", "bridge"]);
    Lab::quiet_v6(r, "br-lan");
    ns(r, &["ip", "link", "set", "br-lan", "up"]);
    ns(
        r,
        &[
            "ip",
            "addr",
            "add",
            &format!("{LAN4}.1/24"),
            "dev",
            "br-lan",
        ],
    );
    for c in &lab.clients {
        ns(r, &["ip", "link", "set", &c.port, "master", "br-lan", "up"]);
    }
    wait_for(Duration::from_secs(15), "capture live again", || {
        let s = agent.next(Duration::from_secs(5));
        (s["agent"]["capture"]["mode"] == "live").then_some(())
    });
    // Traffic after the re-creation is counted.
    let c = &lab.clients[3];
    let before = agent
        .last()
        .and_then(|s| device(&s, &c.mac).map(|d| d["bandwidth"]["txBytesTotal"].as_u64().unwrap()))
        .unwrap_or(0);
    let stop = Arc::new(AtomicBool::new(false));
    let sink = sinks(&lab.wan, stop.clone());
    send_traffic(&c.ns, vec!["10.98.0.2".into()], 3)
        .join()
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    sink.join().unwrap();
    wait_for(Duration::from_secs(10), "traffic counted", || {
        let s = agent.next(Duration::from_secs(5));
        let tx = device(&s, &c.mac)?["bandwidth"]["txBytesTotal"].as_u64()?;
        (tx > before + 40 * 600).then_some(())
    });
    let threads = std::fs::read_dir(format!("/proc/{}/task", agent.pid()))
        .unwrap()
        .count();
    assert_eq!(threads, 1, "one thread");
    let (clean, err) = agent.stop();
    assert!(clean && !err.contains("panicked"), "{err}");
}

/// Without CAP_NET_RAW the agent runs on, with capture "off" and the reason.
#[test]
fn lab_without_cap_net_raw() {
    if skip_unless_root("lab_without_cap_net_raw") {
        return;
    }
    let lab = Lab::new("p", 1);
    let agent = Agent::start(
        &lab.router,
        &[
            "setpriv",
            "--inh-caps=-all",
            "--bounding-set=-net_raw",
            "--",
        ],
        &common_args(&[]),
    );
    let s = agent.next(Duration::from_secs(10));
    let cap = &s["agent"]["capture"];
    assert_eq!(cap["mode"], "off", "{s}");
    let reason = cap["offReason"].as_str().unwrap();
    assert!(reason.contains("CAP_NET_RAW"), "{reason}");
    assert!(s["metrics"].is_object());
    let s2 = agent.next(Duration::from_secs(5));
    assert_eq!(s2["agent"]["seq"], s["agent"]["seq"].as_u64().unwrap() + 1);
    let (clean, err) = agent.stop();
    assert!(clean, "{err}");
}

/// The new subcommands' usage errors (no root needed): exit 2 with a message naming the problem.
#[test]
fn scan_and_capture_usage() {
    for sub in ["scan", "capture"] {
        let o = run(agent().args([sub, "--version"]));
        assert!(o.status.success(), "{sub}: {}", stderr(&o));
        assert_eq!(
            stdout(&o).trim(),
            format!("netmon-agent {}", env!("CARGO_PKG_VERSION"))
        );
    }
    let o = run(agent().args(["capture", "-i", "lo"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("-w FILE is required"), "{}", stderr(&o));
    let o = run(agent().args(["scan", "-i", "lo", "-r", "10.0.0.0/8"]));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("SCAN_FORCE"), "{}", stderr(&o));
}

/// A ring that overflows while the agent is stopped: every frame is either counted or in
/// packetsDropped (the kernel's PACKET_STATISTICS), never silently lost.
#[test]
fn lab_ring_overflow_is_counted() {
    if skip_unless_root("lab_ring_overflow_is_counted") {
        return;
    }
    let lab = Lab::new("o", 2);
    lab.static_neighbours();
    let agent = Agent::start(
        &lab.router,
        &[],
        &common_args(&["--set", "SCAN_INTERVAL=0", "--set", "RING_KB=64"]),
    );
    let s0 = agent.next(Duration::from_secs(10));
    assert_eq!(s0["agent"]["capture"]["mode"], "live", "{}", agent.stderr());
    let (c0, c1) = (&lab.clients[0], &lab.clients[1]);
    let tx0 = lab.counter(c0, "tx_packets");
    let seen0 =
        device(&s0, &c0.mac).map_or(0, |d| d["bandwidth"]["txPacketsTotal"].as_u64().unwrap());
    let dropped0 = s0["agent"]["capture"]["packetsDropped"].as_u64().unwrap();
    signal(agent.pid(), "STOP");
    send_raw(c0, c1, None, 5000).join().unwrap();
    signal(agent.pid(), "CONT");
    let sent = lab.counter(c0, "tx_packets") - tx0;
    assert_eq!(sent, 5000);
    let (seen, dropped) = wait_for(Duration::from_secs(10), "counts to settle", || {
        let s = agent.next(Duration::from_secs(5));
        let seen = device(&s, &c0.mac)?["bandwidth"]["txPacketsTotal"].as_u64()? - seen0;
        let dropped = s["agent"]["capture"]["packetsDropped"].as_u64()? - dropped0;
        (seen + dropped == sent).then_some((seen, dropped))
    });
    eprintln!("ring overflow: {seen} counted, {dropped} dropped of {sent}");
    assert!(dropped > 0 && seen > 0, "seen {seen} dropped {dropped}");
    let (clean, err) = agent.stop();
    assert!(clean, "{err}");
}

/// The python REST server of the ship tests (tests/servers/rest_server.py), run inside a
/// namespace on its 127.0.0.1; its mode is switched through a file. Killed on drop.
struct NsRest {
    child: Child,
    log: std::path::PathBuf,
    mode_file: std::path::PathBuf,
}

impl NsRest {
    fn start(nsname: &str, dir: &std::path::Path, port: u16, mode: &str) -> NsRest {
        NsRest::start_script("rest_server.py", nsname, dir, port, mode)
    }

    /// One of tests/servers/*.py (same arguments) in a namespace; its files are named after it.
    fn start_script(
        script: &str,
        nsname: &str,
        dir: &std::path::Path,
        port: u16,
        mode: &str,
    ) -> NsRest {
        let stem = script.trim_end_matches(".py");
        let log = dir.join(format!("{stem}.jsonl"));
        let mode_file = dir.join(format!("{stem}.mode"));
        std::fs::write(&mode_file, mode).unwrap();
        let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/servers")
            .join(script);
        let mut child = Command::new("ip")
            .args(["netns", "exec", nsname, "python3"])
            .arg(&script)
            .args(["--port", &port.to_string(), "--log"])
            .arg(&log)
            .arg("--mode-file")
            .arg(&mode_file)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
        assert_eq!(line.trim(), "READY", "{} did not start", script.display());
        NsRest {
            child,
            log,
            mode_file,
        }
    }

    fn set_mode(&self, mode: &str) {
        std::fs::write(&self.mode_file, mode).unwrap();
    }

    /// Every request read so far, in order.
    fn records(&self) -> Vec<serde_json::Value> {
        crate::ship::records(&self.log)
    }

    /// The snapshot with the highest seq posted so far.
    fn newest(&self) -> Option<serde_json::Value> {
        self.records()
            .iter()
            .filter_map(|r| serde_json::from_str::<serde_json::Value>(r["body"].as_str()?).ok())
            .max_by_key(|s| s["agent"]["seq"].as_u64())
    }
}

impl Drop for NsRest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A platform that accepts the POST and never answers holds the agent in a shipping call for
/// HTTP_TIMEOUT (5 s); meanwhile a client sends 40,000 frames at full speed, ten times what the
/// ring (RING_KB=1024) holds. None is dropped and each is counted: the wait drains the ring.
/// (Against the agent before `ship::wait`, this test fails: ~35,000 of them are dropped.)
#[test]
fn lab_hanging_platform_loses_no_frames() {
    if skip_unless_root("lab_hanging_platform_loses_no_frames") {
        return;
    }
    let python = Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !python {
        assert!(
            !in_ci(),
            "python3 is needed in CI (tests/servers/rest_server.py)"
        );
        eprintln!("SKIP lab_hanging_platform_loses_no_frames: python3 is not installed");
        return;
    }
    const FRAMES: usize = 40_000;
    let lab = Lab::new("h", 2);
    lab.static_neighbours();
    ns(&lab.router, &["ip", "link", "set", "lo", "up"]);
    let dir = scratch("lab_hanging_platform");
    let port = 18_000 + (std::process::id() % 1000) as u16;
    let server = NsRest::start(&lab.router, &dir, port, "ok");
    let url = format!("PLATFORM_API_URL=http://127.0.0.1:{port}/ingest");
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
            "2",
            "--set",
            "SCAN_INTERVAL=0",
            "--set",
            "RING_KB=1024",
            "--set",
            "HTTP_TIMEOUT=5",
            "--set",
            &url,
        ],
    );
    let (c0, c1) = (&lab.clients[0], &lab.clients[1]);
    // A baseline delivered while the lab is quiet.
    let s0 = wait_for(Duration::from_secs(15), "a first snapshot posted", || {
        server.newest()
    });
    assert_eq!(s0["agent"]["capture"]["mode"], "live", "{}", agent.stderr());
    let base = |s: &serde_json::Value, k: &str| {
        device(s, &c0.mac).map_or(0, |d| d["bandwidth"][k].as_u64().unwrap())
    };
    let (pk0, by0) = (base(&s0, "txPacketsTotal"), base(&s0, "txBytesTotal"));
    let dropped0 = s0["agent"]["capture"]["packetsDropped"].as_u64().unwrap();
    let (txp0, txb0) = (lab.counter(c0, "tx_packets"), lab.counter(c0, "tx_bytes"));

    // The platform hangs: the next POST is read and never answered.
    server.set_mode("silent");
    let hung_at = wait_for(
        Duration::from_secs(10),
        "a POST to the silent server",
        || {
            server
                .records()
                .iter()
                .find(|r| r["mode"] == "silent")
                .and_then(|r| r["t"].as_f64())
        },
    );
    send_raw(c0, c1, None, FRAMES).join().unwrap();
    let sent_by = unix_now();
    // All of it went while the agent waited for the reply (it gives up 5 s after the POST).
    assert!(
        sent_by < hung_at + 4.5,
        "the frames took {:.1} s to send, past the agent's wait",
        sent_by - hung_at
    );
    let sent = (
        lab.counter(c0, "tx_packets") - txp0,
        lab.counter(c0, "tx_bytes") - txb0,
    );
    assert_eq!(sent.0, FRAMES as u64);

    // The platform recovers; the snapshots (the backlog included) arrive.
    server.set_mode("ok");
    let s1 = wait_for(
        Duration::from_secs(30),
        "the frames in a posted snapshot",
        || {
            let s = server.newest()?;
            let seen = base(&s, "txPacketsTotal") - pk0;
            let dropped = s["agent"]["capture"]["packetsDropped"].as_u64()? - dropped0;
            (seen + dropped >= sent.0).then_some(s)
        },
    );
    let got = (
        base(&s1, "txPacketsTotal") - pk0,
        base(&s1, "txBytesTotal") - by0,
    );
    let dropped = s1["agent"]["capture"]["packetsDropped"].as_u64().unwrap() - dropped0;
    eprintln!(
        "hanging platform: {} frames sent in {:.2} s of the agent's 5 s wait; counted {}, dropped {dropped}",
        sent.0,
        sent_by - hung_at,
        got.0
    );
    assert_eq!(
        dropped, 0,
        "frames dropped while the agent waited for the platform"
    );
    assert_eq!(got, sent, "(packets, bytes) agent vs c0's veth tx counters");
    let (clean, err) = agent.stop();
    assert!(clean && !err.contains("panicked"), "{err}");
}

/// libfaketime's preload library (Debian `faketime`); the test skips without it.
const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// Frames of `len` bytes from one client to another every `period`, paced on absolute
/// deadlines, until `stop`; returns how many were sent.
fn send_paced(
    from: &Client,
    to: &Client,
    len: usize,
    period: Duration,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    let parse = |m: &str| -> Vec<u8> {
        m.split(':')
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    };
    let (src, dst) = (parse(&from.mac), parse(&to.mac));
    in_ns(&from.ns, move || {
        let mut f = vec![0u8; len];
        f[..6].copy_from_slice(&dst);
        f[6..12].copy_from_slice(&src);
        f[12..14].copy_from_slice(&[0x88, 0xb5]);
        let mut sent = 0u64;
        // SAFETY: plain socket calls on a descriptor we own and close.
        unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            assert!(
                fd >= 0,
                "packet socket: {}",
                std::io::Error::last_os_error()
            );
            let mut addr: libc::sockaddr_ll = std::mem::zeroed();
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_ifindex = libc::if_nametoindex(c"eth0".as_ptr()) as i32;
            let t0 = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let rc = libc::sendto(
                    fd,
                    f.as_ptr().cast(),
                    f.len(),
                    0,
                    (&addr as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                );
                assert_eq!(rc as usize, f.len());
                sent += 1;
                let next = t0 + period * sent as u32;
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
            libc::close(fd);
        }
        sent
    })
}

/// A router's wall clock stepped by NTP (+4 years, then back 30 days) while the agent runs
/// under libfaketime (FAKETIME_TIMESTAMP_FILE rewritten while it runs; the monotonic clock
/// is not faked): the client's totals equal its veth counters across both steps, its rate in
/// the cycle of each step and every cycle after is within 10 % of the rate it sends at (a
/// table on the wall clock reads ~0 there), each step is logged once
/// with its size, and the labels follow the stepped clock.
#[test]
fn lab_wall_clock_steps_change_nothing_but_labels() {
    if skip_unless_root("lab_wall_clock_steps_change_nothing_but_labels") {
        return;
    }
    if !std::path::Path::new(FAKETIME_LIB).exists() {
        eprintln!("SKIP lab_wall_clock_steps_change_nothing_but_labels: {FAKETIME_LIB} missing (apt-get install faketime)");
        return;
    }
    let lab = Lab::new("t", 2);
    lab.static_neighbours();
    let dir = scratch("lab_clock");
    let stamp = dir.join("faketime");
    std::fs::write(&stamp, "+0\n").unwrap();
    let preload = format!("LD_PRELOAD={FAKETIME_LIB}");
    let file = format!("FAKETIME_TIMESTAMP_FILE={}", stamp.display());
    let agent = Agent::start(
        &lab.router,
        &[
            "env",
            &preload,
            &file,
            "FAKETIME_NO_CACHE=1",
            "FAKETIME_DONT_FAKE_MONOTONIC=1",
        ],
        &common_args(&["--set", "SCAN_INTERVAL=0", "--log-level", "debug"]),
    );
    let first = agent.next(Duration::from_secs(10));
    assert_eq!(
        first["agent"]["capture"]["mode"],
        "live",
        "{}",
        agent.stderr()
    );
    let (a, b) = (&lab.clients[0], &lab.clients[1]);
    let base_veth = (lab.counter(a, "tx_packets"), lab.counter(a, "tx_bytes"));
    let s0 = agent.next(Duration::from_secs(5));
    let base_agent = device(&s0, &a.mac).map_or((0, 0), |d| {
        (
            d["bandwidth"]["txPacketsTotal"].as_u64().unwrap(),
            d["bandwidth"]["txBytesTotal"].as_u64().unwrap(),
        )
    });
    // 100 frames of 1000 B per second: 800 kbit/s.
    let (len, period) = (1000usize, Duration::from_millis(10));
    let rate = len as f64 * 8.0 / period.as_secs_f64();
    let stop = Arc::new(AtomicBool::new(false));
    let sender = send_paced(a, b, len, period, stop.clone());
    let settle = agent.next(Duration::from_secs(5));
    let _ = settle;
    let four_years = 126_230_400u64; // 4 x 365.25 days
    let thirty_days = 2_592_000u64;
    let mut after_step = Vec::new();
    for offset in [four_years, four_years - thirty_days] {
        for _ in 0..2 {
            agent.next(Duration::from_secs(5));
        }
        std::fs::write(&stamp, format!("+{offset}\n")).unwrap();
        // The cycle that holds the step, then four full cycles after it.
        for _ in 0..5 {
            after_step.push(agent.next(Duration::from_secs(5)));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let sent = sender.join().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let end = agent.next(Duration::from_secs(5));
    let veth = (
        lab.counter(a, "tx_packets") - base_veth.0,
        lab.counter(a, "tx_bytes") - base_veth.1,
    );
    let d = device(&end, &a.mac).expect("the client is tracked");
    let got = (
        d["bandwidth"]["txPacketsTotal"].as_u64().unwrap() - base_agent.0,
        d["bandwidth"]["txBytesTotal"].as_u64().unwrap() - base_agent.1,
    );
    assert_eq!(got, veth, "agent tx vs veth counter ({sent} frames sent)");
    assert!(veth.0 >= sent, "{veth:?} {sent}");
    for s in &after_step {
        let dev = device(s, &a.mac).expect("tracked after the step");
        let r = dev["bandwidth"]["txRateBps"]
            .as_f64()
            .expect("a rate, not null");
        assert!(
            (r - rate).abs() <= rate * 0.10,
            "rate {r} vs {rate} in {}",
            s["snapshotTime"]
        );
        assert_eq!(dev["status"], "active");
        let secs = s["network"]["collectionDurationSeconds"].as_f64().unwrap();
        assert!((0.8..1.5).contains(&secs), "window {secs} s");
    }
    // The labels follow the faked clock: four years ahead, then 30 days less.
    let year = |s: &serde_json::Value| {
        s["snapshotTime"].as_str().unwrap()[..4]
            .parse::<u32>()
            .unwrap()
    };
    assert!(
        year(&after_step[0]) >= year(&first) + 3,
        "{}",
        after_step[0]["snapshotTime"]
    );
    let (ok, err) = agent.stop();
    assert!(ok, "{err}");
    let steps: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("wall clock stepped"))
        .collect();
    assert_eq!(steps.len(), 2, "{err}");
    assert!(
        steps[0].contains("+126230400") && steps[0].contains("4.0 years"),
        "{}",
        steps[0]
    );
    assert!(
        steps[1].contains("-2592000") && steps[1].contains("30.0 days"),
        "{}",
        steps[1]
    );
}

/// /etc/netns/<ns>/{resolv.conf,hosts}: `ip netns exec` bind-mounts them over /etc's, which
/// gives the agent in that namespace its own resolver and hosts file. Removed on drop.
struct NsEtc {
    dir: std::path::PathBuf,
}

impl NsEtc {
    fn new(nsname: &str, resolv_conf: &str, hosts: &str) -> NsEtc {
        let dir = std::path::PathBuf::from(format!("/etc/netns/{nsname}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("resolv.conf"), resolv_conf).unwrap();
        std::fs::write(dir.join("hosts"), hosts).unwrap();
        NsEtc { dir }
    }
}

impl Drop for NsEtc {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A nameserver on 127.0.0.1:53 inside a namespace. It reads every query and, until `answer`
/// is set, never replies (a black-holed resolver); then it answers A questions with 127.0.0.1
/// (TTL 60) and AAAA questions with no record. It counts the queries per name.
struct NsDns {
    answer: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NsDns {
    fn start(nsname: &str) -> NsDns {
        let answer = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (a, st, sn) = (answer.clone(), stop.clone(), seen.clone());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = in_ns(nsname, move || {
            let sock = UdpSocket::bind("127.0.0.1:53").unwrap();
            sock.set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            ready_tx.send(()).unwrap();
            let mut b = [0u8; 512];
            while !st.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut b) else {
                    continue;
                };
                let q = &b[..n];
                // The question: labels from offset 12, then type and class.
                let mut at = 12;
                let mut name = Vec::new();
                while at < n && q[at] != 0 {
                    let len = q[at] as usize;
                    name.push(
                        String::from_utf8_lossy(&q[at + 1..(at + 1 + len).min(n)]).into_owned(),
                    );
                    at += 1 + len;
                }
                sn.lock().unwrap().push(name.join("."));
                if !a.load(Ordering::Relaxed) || at + 5 > n {
                    continue;
                }
                let qtype = u16::from_be_bytes([q[at + 1], q[at + 2]]);
                let mut r = q[..at + 5].to_vec();
                r[2] = 0x81; // QR, RD
                r[3] = 0x80; // RA, NOERROR
                if qtype == 1 {
                    r[6..8].copy_from_slice(&1u16.to_be_bytes());
                    r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1]);
                } else {
                    r[6..8].copy_from_slice(&0u16.to_be_bytes());
                }
                r[8..12].fill(0);
                let _ = sock.send_to(&r, from);
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the nameserver did not start");
        NsDns {
            answer,
            stop,
            seen,
            thread: Some(thread),
        }
    }

    fn queries(&self, name: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|n| *n == name)
            .count()
    }
}

impl Drop for NsDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn python_with_websockets() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import websockets"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(!in_ci(), "python3 with websockets is needed in CI");
    }
    ok
}

/// Name resolution cannot stall the loop. REST and WebSocket URLs name `platform.test`, whose
/// nameserver reads every query and never answers; HTTP_TIMEOUT 2 s, cycle 3 s, and 300
/// frames/s of LAN traffic for 15 s. Meanwhile nothing reaches the platform (the name does not
/// resolve), yet the cycles keep their cadence and no frame is dropped. Then the nameserver
/// answers: the snapshots of the outage arrive, each on the 3 s grid, with every frame counted
/// (against c0's veth counters), and the WebSocket connects. (With a blocking resolver each
/// lookup holds the one thread for the resolver's whole timeout, 5 to 10 s.)
#[test]
fn lab_dns_that_never_answers_does_not_stall_the_loop() {
    if skip_unless_root("lab_dns_that_never_answers_does_not_stall_the_loop") {
        return;
    }
    if !python_with_websockets() {
        eprintln!(
            "SKIP lab_dns_that_never_answers_does_not_stall_the_loop: python3 websockets missing"
        );
        return;
    }
    const RATE: u32 = 300;
    const FRAMES: usize = 4500;
    let lab = Lab::new("n", 2);
    lab.static_neighbours();
    ns(&lab.router, &["ip", "link", "set", "lo", "up"]);
    let _etc = NsEtc::new(
        &lab.router,
        "nameserver 127.0.0.1\n",
        "127.0.0.1 localhost\n",
    );
    let dns = NsDns::start(&lab.router);
    let dir = scratch("lab_dns_blackhole");
    let port = 18_000 + (std::process::id() % 1000) as u16;
    let api = NsRest::start(&lab.router, &dir, port, "ok");
    let ws = NsRest::start_script("ws_server.py", &lab.router, &dir, port + 1, "ok");
    let (c0, c1) = (&lab.clients[0], &lab.clients[1]);
    // The client's kernel sends a few frames of its own after link-up (IPv6 multicast listener
    // reports): let them pass before the agent starts, so the counts compared below are the
    // test's frames and whatever else the veth counted in the same window.
    let mut last = lab.counter(c0, "tx_packets");
    let mut still = 0;
    while still < 3 {
        std::thread::sleep(Duration::from_millis(500));
        let now = lab.counter(c0, "tx_packets");
        still = if now == last { still + 1 } else { 0 };
        last = now;
    }
    let (txp0, txb0) = (lab.counter(c0, "tx_packets"), lab.counter(c0, "tx_bytes"));
    let rest_url = format!("PLATFORM_API_URL=http://platform.test:{port}/ingest");
    let ws_url = format!("PLATFORM_WS_URL=ws://platform.test:{}/ws", port + 1);
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
            "3",
            "--set",
            "SCAN_INTERVAL=0",
            "--set",
            "HTTP_TIMEOUT=2",
            "--set",
            "LOG_LEVEL=debug",
            "--set",
            &rest_url,
            "--set",
            &ws_url,
        ],
    );
    std::thread::sleep(Duration::from_secs(1));
    let started = unix_now();
    send_raw_paced(c0, c1, None, FRAMES, Some(Duration::from_secs(1) / RATE))
        .join()
        .unwrap();
    let sent_for = unix_now() - started;
    let sent = (
        lab.counter(c0, "tx_packets") - txp0,
        lab.counter(c0, "tx_bytes") - txb0,
    );
    assert!(sent.0 >= FRAMES as u64, "{} frames left c0", sent.0);
    // The black hole was asked, again and again, and nothing reached the platform.
    assert!(
        dns.queries("platform.test") >= 4,
        "{} queries",
        dns.queries("platform.test")
    );
    assert!(api.records().is_empty() && ws.records().is_empty());
    // One more cycle so the last frames are in a snapshot, then the resolver answers.
    std::thread::sleep(Duration::from_secs(4));
    dns.answer.store(true, Ordering::Relaxed);
    let last = wait_for(
        Duration::from_secs(40),
        "the outage's snapshots posted",
        || {
            let s = api.newest()?;
            let seen = device(&s, &c0.mac)?["bandwidth"]["txPacketsTotal"].as_u64()?;
            (s["agent"]["backlog"] == 0 && seen >= sent.0).then_some(s)
        },
    );
    let snaps: Vec<serde_json::Value> = api
        .records()
        .iter()
        .filter_map(|r| serde_json::from_str(r["body"].as_str()?).ok())
        .collect();
    // Every snapshot once, in order, each on the 3 s grid: the cycles kept their cadence while
    // every lookup went unanswered.
    let seqs: Vec<u64> = snaps
        .iter()
        .map(|s| s["agent"]["seq"].as_u64().unwrap())
        .collect();
    let expect: Vec<u64> = (0..seqs.len() as u64).collect();
    assert_eq!(seqs, expect);
    assert!(seqs.len() >= 6, "{seqs:?}");
    let t = |s: &serde_json::Value| {
        let text = s["snapshotTime"].as_str().unwrap();
        let h: f64 = text[11..13].parse().unwrap();
        let m: f64 = text[14..16].parse().unwrap();
        let sec: f64 = text[17..23].parse().unwrap();
        (h * 60.0 + m) * 60.0 + sec
    };
    let t0 = t(&snaps[0]);
    for (k, s) in snaps.iter().enumerate() {
        let off = t(s) - t0 - 3.0 * k as f64;
        assert!(off.abs() < 0.5, "seq {k} is {off:.3} s off the 3 s grid");
    }
    let dropped: u64 = snaps
        .iter()
        .map(|s| s["agent"]["capture"]["packetsDropped"].as_u64().unwrap())
        .max()
        .unwrap();
    let d = device(&last, &c0.mac).unwrap();
    let got = (
        d["bandwidth"]["txPacketsTotal"].as_u64().unwrap(),
        d["bandwidth"]["txBytesTotal"].as_u64().unwrap(),
    );
    eprintln!(
        "black-holed DNS: {} frames in {sent_for:.1} s, {} snapshots on schedule, {} queries unanswered, dropped {dropped}",
        sent.0,
        snaps.len(),
        dns.queries("platform.test")
    );
    assert_eq!(dropped, 0, "frames dropped while the name did not resolve");
    assert_eq!(got, sent, "(packets, bytes) agent vs c0's veth tx counters");
    // And the WebSocket got through too, once the name resolved.
    wait_for(Duration::from_secs(20), "a WebSocket message", || {
        ws.records()
            .iter()
            .find(|r| r["event"] == "message")
            .cloned()
    });
    let (clean, err) = agent.stop();
    assert!(clean && !err.contains("panicked"), "{err}");
    assert!(err.contains("cannot resolve platform.test"), "{err}");
}

/// A platform name listed in /etc/hosts needs no nameserver: with the resolver black-holed,
/// snapshots reach REST and the WebSocket from the first cycle, and the nameserver is never
/// asked for that name.
#[test]
fn lab_dns_platform_name_from_etc_hosts() {
    if skip_unless_root("lab_dns_platform_name_from_etc_hosts") {
        return;
    }
    if !python_with_websockets() {
        eprintln!("SKIP lab_dns_platform_name_from_etc_hosts: python3 websockets missing");
        return;
    }
    let lab = Lab::new("o", 1);
    ns(&lab.router, &["ip", "link", "set", "lo", "up"]);
    let _etc = NsEtc::new(
        &lab.router,
        "nameserver 127.0.0.1\n",
        "127.0.0.1 localhost\n127.0.0.1 platform-hosts.test # the platform\n",
    );
    let dns = NsDns::start(&lab.router);
    let dir = scratch("lab_dns_hosts");
    let port = 19_000 + (std::process::id() % 1000) as u16;
    let api = NsRest::start(&lab.router, &dir, port, "ok");
    let ws = NsRest::start_script("ws_server.py", &lab.router, &dir, port + 1, "ok");
    let rest_url = format!("PLATFORM_API_URL=http://platform-hosts.test:{port}/ingest");
    let ws_url = format!("PLATFORM_WS_URL=ws://platform-hosts.test:{}/ws", port + 1);
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
            "HTTP_TIMEOUT=2",
            "--set",
            &rest_url,
            "--set",
            &ws_url,
        ],
    );
    wait_for(Duration::from_secs(15), "3 snapshots posted", || {
        (api.records().len() >= 3).then_some(())
    });
    wait_for(Duration::from_secs(15), "a WebSocket message", || {
        ws.records()
            .iter()
            .find(|r| r["event"] == "message")
            .cloned()
    });
    let (clean, err) = agent.stop();
    assert!(clean, "{err}");
    assert_eq!(dns.queries("platform-hosts.test"), 0);
}
