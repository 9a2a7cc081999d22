//! The OpenWrt package: the .ipk as opkg unpacks it (gzip + tar), and a router owner's life with
//! it on OpenWrt's real userland (../shared/openwrt-lab: procd, ubus, logd, uci, opkg, apk-tools
//! booted in namespaces): install, idle until configured, one registration, respawn, restart,
//! reboot, interface changes, syslog priorities, privileges, upgrade, removal; as .ipk and .apk.

use crate::common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sh(cmd: &mut Command) -> String {
    let o = cmd.output().expect("spawn");
    assert!(
        o.status.success(),
        "{cmd:?} failed:\n{}{}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// Builds the .ipk from the test build of the agent (the packaging does not depend on the
/// binary's architecture).
/// The test build of the agent, stripped (the packaging does not depend on the binary's
/// architecture; 30 MB of debug info would only slow gzip down).
fn stripped_bin() -> PathBuf {
    static ONCE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let p = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("netmon-agent-stripped-{}", std::process::id()));
        sh(Command::new("strip").arg("-o").arg(&p).arg(bin()));
        p
    })
    .clone()
}

fn build_ipk(dir: &Path, arch: &str) -> PathBuf {
    let out = sh(Command::new(repo().join("openwrt/mkpkg.sh"))
        .args(["ipk", arch])
        .arg(stripped_bin())
        .arg(dir)
        .env("MKPKG_ANY_BINARY", "1")
        .env("SOURCE_DATE_EPOCH", "1700000000"));
    let ipk = dir.join(format!(
        "netmon-agent_{}-r1_{arch}.ipk",
        env!("CARGO_PKG_VERSION")
    ));
    assert!(out.contains(ipk.to_str().unwrap()), "{out}");
    ipk
}

/// `tar tvzf` lines -> path -> (mode string, owner/group, size).
fn listing(tgz: &Path) -> BTreeMap<String, (String, String, u64)> {
    let text = sh(Command::new("tar").arg("tvzf").arg(tgz));
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[5].to_owned(),
                (f[0].to_owned(), f[1].to_owned(), f[2].parse().unwrap()),
            )
        })
        .collect()
}

fn control_fields(text: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let mut last = String::new();
    for l in text.lines() {
        if let Some(cont) = l.strip_prefix(' ') {
            m.entry(last.clone())
                .and_modify(|v: &mut String| *v = format!("{v}\n{cont}"));
        } else if let Some((k, v)) = l.split_once(':') {
            last = k.to_owned();
            m.insert(k.to_owned(), v.trim().to_owned());
        }
    }
    m
}

#[test]
fn ipk_unpacks_as_opkg_reads_it() {
    let dir = scratch("openwrt-ipk");
    let ipk = build_ipk(&dir, "mipsel_24kc");
    // Outer: a gzip'd tar (not an ar archive) with the three members in opkg's order.
    let magic = std::fs::read(&ipk).unwrap();
    assert_eq!(&magic[..2], &[0x1f, 0x8b], "outer is gzip");
    let outer = sh(Command::new("tar").arg("tzf").arg(&ipk));
    assert_eq!(
        outer.lines().collect::<Vec<_>>(),
        ["./debian-binary", "./data.tar.gz", "./control.tar.gz"]
    );
    let x = dir.join("x");
    std::fs::create_dir_all(&x).unwrap();
    sh(Command::new("sh").arg("-c").arg(format!(
        "gzip -dc '{}' | tar -x -C '{}'",
        ipk.display(),
        x.display()
    )));
    assert_eq!(
        std::fs::read_to_string(x.join("debian-binary")).unwrap(),
        "2.0\n"
    );

    let data = listing(&x.join("data.tar.gz"));
    let files: Vec<&str> = data
        .iter()
        .filter(|(_, (m, _, _))| m.starts_with('-'))
        .map(|(p, _)| p.as_str())
        .collect();
    assert_eq!(
        files,
        [
            "./etc/capabilities/netmon-agent.json",
            "./etc/config/netmon-agent",
            "./etc/init.d/netmon-agent",
            "./lib/upgrade/keep.d/netmon-agent",
            "./usr/sbin/netmon-agent",
        ]
    );
    let mode = |p: &str| data[p].0.as_str();
    assert_eq!(mode("./usr/sbin/netmon-agent"), "-rwxr-xr-x");
    assert_eq!(mode("./etc/init.d/netmon-agent"), "-rwxr-xr-x");
    assert_eq!(mode("./etc/config/netmon-agent"), "-rw-------");
    assert_eq!(mode("./etc/capabilities/netmon-agent.json"), "-rw-r--r--");
    assert!(
        data.values().all(|(_, owner, _)| owner == "0/0"),
        "{data:?}"
    );
    let installed: u64 = data.values().map(|(_, _, s)| s).sum();
    assert_eq!(
        data["./usr/sbin/netmon-agent"].2,
        std::fs::metadata(stripped_bin()).unwrap().len()
    );

    let ctrl = listing(&x.join("control.tar.gz"));
    assert_eq!(
        ctrl.keys().filter(|k| *k != "./").collect::<Vec<_>>(),
        [
            "./conffiles",
            "./control",
            "./postinst",
            "./postinst-pkg",
            "./prerm"
        ]
    );
    assert_eq!(ctrl["./postinst"].0, "-rwxr-xr-x");
    assert_eq!(ctrl["./postinst-pkg"].0, "-rwxr-xr-x");
    assert_eq!(ctrl["./prerm"].0, "-rwxr-xr-x");
    let cx = dir.join("c");
    std::fs::create_dir_all(&cx).unwrap();
    sh(Command::new("tar")
        .arg("xzf")
        .arg(x.join("control.tar.gz"))
        .arg("-C")
        .arg(&cx));
    let fields = control_fields(&std::fs::read_to_string(cx.join("control")).unwrap());
    assert_eq!(fields["Package"], "netmon-agent");
    assert_eq!(
        fields["Version"],
        format!("{}-r1", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(fields["Architecture"], "mipsel_24kc");
    assert_eq!(fields["Depends"], "libc, ca-bundle");
    assert_eq!(fields["Require-User"], "netmon:netmon");
    assert_eq!(fields["Installed-Size"], installed.to_string());
    assert!(fields["Description"].contains("CAP_NET_RAW"));
    assert_eq!(
        std::fs::read_to_string(cx.join("conffiles")).unwrap(),
        "/etc/config/netmon-agent\n"
    );
    // The capabilities file is OCI-style JSON with CAP_NET_RAW alone in all five sets.
    let dx = dir.join("d");
    std::fs::create_dir_all(&dx).unwrap();
    sh(Command::new("tar")
        .arg("xzf")
        .arg(x.join("data.tar.gz"))
        .arg("-C")
        .arg(&dx));
    let caps: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dx.join("etc/capabilities/netmon-agent.json")).unwrap(),
    )
    .unwrap();
    for set in [
        "bounding",
        "effective",
        "inheritable",
        "permitted",
        "ambient",
    ] {
        assert_eq!(caps[set], serde_json::json!(["CAP_NET_RAW"]), "{set}");
    }
    // The issued key survives a firmware upgrade (sysupgrade keeps what keep.d lists).
    assert_eq!(
        std::fs::read_to_string(dx.join("lib/upgrade/keep.d/netmon-agent")).unwrap(),
        "/etc/netmon-agent/api_key\n"
    );
    // Reproducible: the same inputs give the same bytes.
    let again = build_ipk(&dir.join("again"), "mipsel_24kc");
    assert_eq!(std::fs::read(&ipk).unwrap(), std::fs::read(again).unwrap());
}

// ---------- the router owner's life on OpenWrt's real userland (../shared/openwrt-lab) ----------

/// The key the platform issues (never in a log line).
const LAB_KEY: &str = "lab-issued-KEY-0123456789abcdef";
const PKG_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Network namespaces: the router (br-lan 192.168.1.1/24, br-guest 192.168.2.1/24) and one
/// client on each bridge; the platform runs on the LAN client (192.168.1.10). Removed on drop.
struct Net {
    router: String,
    lan_client: String,
    guest_client: String,
}

fn ip(args: &str) {
    sh(Command::new("sh").arg("-c").arg(format!("ip {args}")));
}

impl Net {
    fn new() -> Net {
        let id = std::process::id();
        let n = Net {
            router: format!("nmowr{id}"),
            lan_client: format!("nmowl{id}"),
            guest_client: format!("nmowg{id}"),
        };
        let r = &n.router;
        for ns in [&n.router, &n.lan_client, &n.guest_client] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
            ip(&format!("netns add {ns}"));
            ip(&format!("-n {ns} link set lo up"));
        }
        for (br, client, addr, peer) in [
            ("br-lan", &n.lan_client, "192.168.1", "lan1"),
            ("br-guest", &n.guest_client, "192.168.2", "guest1"),
        ] {
            ip(&format!("-n {r} link add {br} type bridge"));
            ip(&format!(
                "-n {r} link add {peer} type veth peer name eth0 netns {client}"
            ));
            ip(&format!("-n {r} link set {peer} master {br} up"));
            ip(&format!("-n {r} addr add {addr}.1/24 dev {br}"));
            ip(&format!("-n {r} link set {br} up"));
            ip(&format!("-n {client} addr add {addr}.10/24 dev eth0"));
            ip(&format!("-n {client} link set eth0 up"));
            ip(&format!("-n {client} route add default via {addr}.1"));
        }
        n
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in [&self.router, &self.lan_client, &self.guest_client] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// One lab: its own OWRT_LAB_WORK (stage/ and the busybox download shared with the build
/// cache in target/owrt-lab), booted in the router namespace with `pkgs` at /lab.
struct Lab {
    work: PathBuf,
    script: PathBuf,
    netns: String,
    mount: PathBuf,
    booted: bool,
}

impl Lab {
    fn env(&self, cmd: &mut Command) {
        cmd.env("OWRT_LAB_WORK", &self.work)
            .env("LAB_NETNS", &self.netns)
            .env("LAB_MOUNT", &self.mount);
    }
    fn boot(&mut self, keep: bool) {
        // A boot seen stuck before "init complete" (rare, on a loaded machine) gets one more try.
        for attempt in 0..2 {
            match self.try_boot(keep) {
                Ok(()) => return,
                Err(e) if attempt == 0 => {
                    println!("lab boot stalled, booting again: {e}");
                    self.stop();
                }
                Err(e) => panic!("the lab did not boot: {e}"),
            }
        }
    }
    fn try_boot(&mut self, keep: bool) -> Result<(), String> {
        let mut c = Command::new(self.script.join("lab.sh"));
        c.arg("boot");
        self.env(&mut c);
        if keep {
            c.env("LAB_KEEP", "1");
        }
        let o = c.output().expect("lab.sh boot");
        // From here on the lab may be running (lab.sh gives up waiting after 15 s, which a
        // loaded CI machine can exceed): stopped on drop whatever happens.
        self.booted = true;
        if o.status.success() {
            return Ok(());
        }
        // lab.sh stopped waiting for "init complete"; procd may still be getting there.
        let end = Instant::now() + Duration::from_secs(45);
        while Instant::now() < end {
            if self.try_run("logread | grep -q 'init complete'").0 {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        let console = std::fs::read_to_string(self.work.join("run/kmsg.log")).unwrap_or_default();
        Err(format!("{}{}{console}", stdout(&o), stderr(&o)))
    }
    fn stop(&mut self) {
        let mut c = Command::new(self.script.join("lab.sh"));
        c.arg("stop");
        self.env(&mut c);
        let _ = c.output();
        self.booted = false;
    }
    /// Runs `cmd` with ash inside the lab; (success, stdout + stderr).
    fn try_run(&self, cmd: &str) -> (bool, String) {
        let mut c = Command::new(self.script.join("lab.sh"));
        c.arg("run").arg(cmd);
        self.env(&mut c);
        let o = c.output().expect("lab.sh run");
        (o.status.success(), format!("{}{}", stdout(&o), stderr(&o)))
    }
    fn run(&self, cmd: &str) -> String {
        let (ok, out) = self.try_run(cmd);
        assert!(ok, "in the lab: {cmd}\n{out}");
        out
    }
    /// The agent's pid as procd reports it (None: no running instance).
    fn agent_pid(&self) -> Option<u32> {
        let out = self.run(
            "ubus call service list '{\"name\":\"netmon-agent\"}' | jsonfilter -e '@[\"netmon-agent\"].instances.*.pid' || true",
        );
        out.trim().parse().ok()
    }
    fn wait_pid(&self, what: &str, secs: u64, f: impl Fn(Option<u32>) -> bool) -> Option<u32> {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            let p = self.agent_pid();
            if f(p) {
                return p;
            }
            assert!(
                Instant::now() < end,
                "{what}: procd reports pid {p:?}\n{}",
                self.run("logread | tail -30")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    /// netmon-agent's logread lines.
    fn log(&self) -> Vec<String> {
        self.run("logread -e netmon-agent || true")
            .lines()
            .map(str::to_owned)
            .collect()
    }
    fn wait_log(&self, what: &str, secs: u64, needle: &str) {
        let end = Instant::now() + Duration::from_secs(secs);
        while !self.log().iter().any(|l| l.contains(needle)) {
            assert!(
                Instant::now() < end,
                "{what}: no log line with '{needle}'\n{}",
                self.run("logread | tail -40")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.booted {
            self.stop();
        }
    }
}

/// The lab's scripts and a built userland, or a printed reason to skip (CI fails instead).
fn lab_ready() -> Option<(PathBuf, PathBuf)> {
    let skip = |why: &str| {
        assert!(!in_ci(), "the OpenWrt lab test cannot run in CI: {why}");
        println!("skipped: {why}");
        None
    };
    if !is_root() {
        return skip("needs root (namespaces, mounts)");
    }
    let Some(shared) = shared() else {
        return skip("../shared (openwrt-lab) is not there");
    };
    let script = shared.join("openwrt-lab");
    if !script.join("lab.sh").exists() {
        return skip("../shared/openwrt-lab is not there");
    }
    // Built once per target dir (build.sh keeps a stamp): ~30 s the first time.
    let cache = repo().join("target/owrt-lab");
    // tests/luci.rs builds the same cache: one build.sh at a time (flock).
    std::fs::create_dir_all(&cache).unwrap();
    let o = Command::new("flock")
        .arg(repo().join("target/owrt-lab.lock"))
        .arg(script.join("build.sh"))
        .env("OWRT_LAB_WORK", &cache)
        .output()
        .unwrap();
    if !o.status.success() {
        return skip(&format!(
            "openwrt-lab/build.sh failed (its build deps: cmake pkg-config libjson-c-dev lua5.1 liblua5.1-dev libssl-dev meson ninja-build zlib1g-dev libzstd-dev):\n{}{}",
            stdout(&o),
            stderr(&o)
        ));
    }
    Some((script, cache))
}

/// A fresh lab work dir sharing the cached stage/ (and busybox download), with a rootfs.
fn lab_work(script: &Path, cache: &Path, name: &str) -> PathBuf {
    let work = scratch(name);
    std::os::unix::fs::symlink(cache.join("stage"), work.join("stage")).unwrap();
    std::fs::create_dir_all(cache.join("debs")).unwrap();
    std::os::unix::fs::symlink(cache.join("debs"), work.join("debs")).unwrap();
    sh(Command::new(script.join("mkrootfs.sh")).env("OWRT_LAB_WORK", &work));
    // OpenWrt images ship libgcc (libgcc_s.so.1); the lab's glibc userland has only what its
    // own binaries need, and the test build of the agent links libgcc_s.
    let libgcc = Path::new("/lib/x86_64-linux-gnu/libgcc_s.so.1");
    let dest = work.join("rootfs/lib/x86_64-linux-gnu/libgcc_s.so.1");
    if libgcc.exists() && !dest.exists() {
        std::fs::copy(libgcc, dest).unwrap();
    }
    work
}

/// The packages under test: .ipk and .apk, releases 1 and 2, from the test build (stripped).
fn lab_packages(dir: &Path, cache: &Path) -> PathBuf {
    let pkgs = dir.join("pkgs");
    std::fs::create_dir_all(&pkgs).unwrap();
    let stripped = stripped_bin();
    let apk = format!(
        "env LD_LIBRARY_PATH={s}/usr/lib {s}/usr/bin/apk",
        s = cache.join("stage").display()
    );
    for release in ["1", "2"] {
        for kind in ["ipk", "apk"] {
            sh(Command::new(repo().join("openwrt/mkpkg.sh"))
                .args([kind, "x86_64"])
                .arg(&stripped)
                .arg(&pkgs)
                .env("MKPKG_ANY_BINARY", "1")
                .env("PKG_RELEASE_OVERRIDE", release)
                .env("APK", &apk));
        }
    }
    pkgs
}

/// The platform: tests/servers/rest_server.py on the LAN client, answering every request
/// (key requests and snapshots) with the issued key's JSON.
struct Platform {
    child: std::process::Child,
    log: PathBuf,
    mode: PathBuf,
}

impl Platform {
    fn start(dir: &Path, netns: &str) -> Platform {
        let log = dir.join("platform.jsonl");
        let mode = dir.join("platform.mode");
        std::fs::write(&mode, format!("reply:{{\"apiKey\": \"{LAB_KEY}\"}}")).unwrap();
        let mut child = Command::new("ip")
            .args(["netns", "exec", netns, "python3"])
            .arg(repo().join("tests/servers/rest_server.py"))
            .args(["--host", "192.168.1.10", "--port", "8080", "--log"])
            .arg(&log)
            .arg("--mode-file")
            .arg(&mode)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line.trim(), "READY");
        Platform { child, log, mode }
    }
    fn records(&self) -> Vec<serde_json::Value> {
        crate::ship::records(&self.log)
    }
    fn registrations(&self) -> usize {
        self.records()
            .iter()
            .filter(|r| r["path"] == "/key")
            .count()
    }
    fn snapshots(&self) -> Vec<serde_json::Value> {
        self.records()
            .into_iter()
            .filter(|r| r["path"] == "/api")
            .collect()
    }
    fn set_mode(&self, m: &str) {
        std::fs::write(&self.mode, m).unwrap();
    }
    /// Waits for `n` more snapshots than `since`, all with the issued key; returns the count.
    fn wait_snapshots(&self, since: usize, n: usize, lab: &Lab, what: &str) -> usize {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.snapshots();
            if s.len() >= since + n {
                for r in &s[since..] {
                    assert_eq!(
                        r["headers"]["authorization"],
                        format!("Bearer {LAB_KEY}"),
                        "{what}"
                    );
                }
                return s.len();
            }
            assert!(
                Instant::now() < end,
                "{what}: {} snapshots, wanted {}\n{}",
                s.len(),
                since + n,
                lab.run("logread | tail -30")
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the owner writes: the LAN on br-lan, a guest network on br-guest.
const NETWORK_CONFIG: &str = "\
config interface 'loopback'
\toption device 'lo'
\toption proto 'static'
\toption ipaddr '127.0.0.1'
\toption netmask '255.0.0.0'

config device
\toption name 'br-lan'
\toption type 'bridge'
\tlist ports 'lan1'

config interface 'lan'
\toption device 'br-lan'
\toption proto 'static'
\toption ipaddr '192.168.1.1'
\toption netmask '255.255.255.0'

config device
\toption name 'br-guest'
\toption type 'bridge'
\tlist ports 'guest1'

config interface 'guest'
\toption device 'br-guest'
\toption proto 'static'
\toption ipaddr '192.168.2.1'
\toption netmask '255.255.255.0'
";

/// The owner's configuration: the platform's endpoints, an empty key with a key URL.
const CONFIGURE: &str = "uci set netmon-agent.main.api_url='http://192.168.1.10:8080/api' && \
     uci set netmon-agent.main.generate_key_url='http://192.168.1.10:8080/key' && \
     uci set netmon-agent.main.api_key='' && \
     uci set netmon-agent.main.cycle_time='1' && \
     uci set netmon-agent.main.respawn_timeout='1' && \
     uci commit netmon-agent && reload_config";

fn status_field(lab: &Lab, pid: u32, field: &str) -> String {
    lab.run(&format!("grep '^{field}:' /proc/{pid}/status"))
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_owned()
}

fn agent_conf(lab: &Lab) -> String {
    lab.run("cat /var/run/netmon-agent/agent.conf")
}

/// The running agent's checks: not root, no effective capabilities, one registration, the
/// same key in its file (0600, the service user's).
fn assert_agent_state(lab: &Lab, platform: &Platform, pid: u32, what: &str) {
    // It starts as root (no ujail here) and drops once its capture socket is open.
    let end = Instant::now() + Duration::from_secs(10);
    while status_field(lab, pid, "Uid") == "0" && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
    }
    let uid = status_field(lab, pid, "Uid");
    assert_ne!(uid, "0", "{what}: the agent runs as root");
    let netmon_uid = lab.run("id -u netmon");
    assert_eq!(uid, netmon_uid.trim(), "{what}");
    assert_eq!(
        status_field(lab, pid, "CapEff"),
        "0000000000000000",
        "{what}"
    );
    assert_eq!(platform.registrations(), 1, "{what}: registrations");
    assert_eq!(
        lab.run("cat /etc/netmon-agent/api_key"),
        format!("{LAB_KEY}\n"),
        "{what}"
    );
    let ls = lab.run("ls -ln /etc/netmon-agent/api_key");
    let f: Vec<&str> = ls.split_whitespace().collect();
    assert_eq!(f[0], "-rw-------", "{what}: {ls}");
    assert_eq!(f[2], netmon_uid.trim(), "{what}: {ls}");
    assert!(
        !agent_conf(lab).contains(LAB_KEY),
        "{what}: the key is in the generated config"
    );
}

/// Every netmon-agent line in logread: one tag, the right priority, never the key.
fn assert_log_lines(lab: &Lab) {
    let lines = lab.log();
    for l in &lines {
        assert!(!l.contains(LAB_KEY), "key in logread: {l}");
        if l.contains(" netmon-agent[") {
            let tag_at = l.find(" netmon-agent[").unwrap();
            let rest = &l[tag_at + 1..];
            assert!(!rest[12..].contains("netmon-agent:"), "doubled prefix: {l}");
            for (word, prio) in [("INFO:", "daemon.info"), ("WARN:", "daemon.warn")] {
                assert!(
                    !rest.contains(word) || l.contains(prio),
                    "a {word} line at another priority: {l}"
                );
            }
        }
    }
}

#[test]
fn lab_router_owner_life_ipk_then_apk() {
    let Some((script, cache)) = lab_ready() else {
        return;
    };
    let t0 = Instant::now();
    let dir = scratch("openwrt-lab");
    let pkgs = lab_packages(&dir, &cache);
    let net = Net::new();
    let platform = Platform::start(&dir, &net.lan_client);
    let mut lab = Lab {
        work: lab_work(&script, &cache, "openwrt-lab-work"),
        script: script.clone(),
        netns: net.router.clone(),
        mount: pkgs.clone(),
        booted: false,
    };
    lab.boot(false);
    lab.run(&format!(
        "cat > /etc/config/network <<'EOF'\n{NETWORK_CONFIG}EOF\nreload_config"
    ));

    // 1. opkg install: enabled, but idle until a platform is configured, and logread says why.
    let r1 = format!("netmon-agent_{PKG_VERSION}-r1_x86_64.ipk");
    lab.run(&format!("opkg install /lab/{r1}"));
    assert!(lab
        .run("grep '^netmon:' /etc/passwd")
        .starts_with("netmon:"));
    assert!(lab.run("ls /etc/rc.d").contains("S95netmon-agent"));
    lab.wait_log("idle after install", 10, "idle: no platform endpoint");
    assert_eq!(lab.agent_pid(), None, "runs with no platform configured");
    assert!(lab.run("pidof netmon-agent || true").trim().is_empty());
    let idle = lab.log().into_iter().find(|l| l.contains("idle:")).unwrap();
    assert!(idle.contains("daemon.notice netmon-agent:"), "{idle}");

    // 2. The owner sets the URLs (and an empty key with a key URL) + uci commit +
    // reload_config: it starts, registers once, and snapshots arrive with the issued key.
    lab.run(CONFIGURE);
    let pid1 = lab
        .wait_pid("start after reload_config", 15, |p| p.is_some())
        .unwrap();
    platform.wait_snapshots(0, 3, &lab, "first snapshots");
    assert_agent_state(&lab, &platform, pid1, "after the first start");
    let snap: serde_json::Value =
        serde_json::from_str(platform.snapshots()[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(snap["agent"]["capture"]["interface"], "br-lan", "{snap}");
    lab.wait_log("syslog info", 5, "capture open on br-lan");
    let started = lab
        .log()
        .into_iter()
        .find(|l| l.contains("capture open on br-lan"))
        .unwrap();
    assert!(
        started.contains(&format!(
            "daemon.info netmon-agent[{pid1}]: capture open on br-lan"
        )),
        "{started}"
    );

    // 3. A reload-only change (cycle_time) is applied by SIGHUP: same pid, new value.
    lab.run("uci set netmon-agent.main.cycle_time='2' && uci commit netmon-agent && reload_config");
    lab.wait_log("SIGHUP reload", 10, "config reloaded");
    assert!(agent_conf(&lab).contains("CYCLE_TIME=\"2\""));
    assert_eq!(
        lab.agent_pid(),
        Some(pid1),
        "a SIGHUP-only change restarted it"
    );
    lab.run("uci set netmon-agent.main.cycle_time='1' && uci commit netmon-agent && reload_config");

    // 4. Warnings and errors at their priorities: a failing platform, then a refused key.
    platform.set_mode("status:500");
    lab.wait_log("a warning", 15, "API: ");
    platform.set_mode("status:401");
    lab.wait_log("an error", 15, "API key rejected");
    platform.set_mode(&format!("reply:{{\"apiKey\": \"{LAB_KEY}\"}}"));
    let lines = lab.log();
    let warn = lines
        .iter()
        .find(|l| {
            l.contains("netmon-agent[")
                && (l.contains("delivery failing") || l.contains("refused with HTTP 500"))
        })
        .expect("a warning line");
    assert!(warn.contains("daemon.warn netmon-agent["), "{warn}");
    let err = lines
        .iter()
        .find(|l| l.contains("API key rejected"))
        .unwrap();
    assert!(err.contains("daemon.err netmon-agent["), "{err}");
    assert_log_lines(&lab);

    // 4b. A value only the agent can judge (not a http URL): a SIGHUP reload refuses it and
    // keeps the running config; a start fails with one err line, one prefix (the agent logs to
    // syslog before reading its config); the fix + reload_config starts it again.
    lab.run("uci set netmon-agent.main.api_url='ftp://192.168.1.10/api' && uci commit netmon-agent && reload_config");
    lab.wait_log(
        "a refused reload",
        15,
        "config reload failed, keeping the old config",
    );
    assert_eq!(lab.agent_pid(), Some(pid1));
    lab.run("/etc/init.d/netmon-agent restart");
    lab.wait_log(
        "a config error at start",
        15,
        "agent.conf:3: PLATFORM_API_URL",
    );
    let bad = lab
        .log()
        .into_iter()
        .find(|l| l.contains("agent.conf:3: PLATFORM_API_URL") && !l.contains("reload"))
        .unwrap();
    assert!(bad.contains("daemon.err netmon-agent["), "{bad}");
    assert!(!bad.contains("netmon-agent: ERROR"), "{bad}");
    lab.run("uci set netmon-agent.main.api_url='http://192.168.1.10:8080/api' && uci commit netmon-agent && reload_config");
    let pid1 = lab
        .wait_pid("after the fix", 20, |p| p.is_some_and(|p| p != pid1))
        .unwrap();
    let mut seen = platform.snapshots().len();
    seen = platform.wait_snapshots(seen, 2, &lab, "after the URL was fixed");

    // 5. kill -9: procd respawns it; still one registration, the same key.
    lab.run(&format!("kill -9 {pid1}"));
    let pid2 = lab
        .wait_pid("respawn after kill -9", 15, |p| {
            p.is_some_and(|p| p != pid1)
        })
        .unwrap();
    seen = platform.wait_snapshots(seen, 2, &lab, "after respawn");
    assert_agent_state(&lab, &platform, pid2, "after kill -9");

    // 6. /etc/init.d/netmon-agent restart.
    lab.run("/etc/init.d/netmon-agent restart");
    let pid3 = lab
        .wait_pid("restart", 15, |p| p.is_some_and(|p| p != pid2))
        .unwrap();
    seen = platform.wait_snapshots(seen, 2, &lab, "after restart");
    assert_agent_state(&lab, &platform, pid3, "after restart");

    // 7. The interface by the option: a restart onto br-guest; then '' follows network.lan.
    lab.run("uci set netmon-agent.main.interface='br-guest' && uci commit netmon-agent && reload_config");
    let pid4 = lab
        .wait_pid("interface option", 15, |p| p.is_some_and(|p| p != pid3))
        .unwrap();
    assert!(agent_conf(&lab).contains("INTERFACE=\"br-guest\""));
    lab.wait_log("capture on br-guest", 10, "capture open on br-guest");
    lab.run("uci set netmon-agent.main.interface='' && uci commit netmon-agent && reload_config");
    let pid5 = lab
        .wait_pid("interface back to network.lan", 15, |p| {
            p.is_some_and(|p| p != pid4)
        })
        .unwrap();
    assert!(agent_conf(&lab).contains("INTERFACE=\"br-lan\""));
    // 8. ... and by network.lan's device.
    lab.run("uci set network.lan.device='br-guest' && uci commit network && reload_config");
    let pid6 = lab
        .wait_pid("network.lan device change", 15, |p| {
            p.is_some_and(|p| p != pid5)
        })
        .unwrap();
    assert!(
        agent_conf(&lab).contains("INTERFACE=\"br-guest\""),
        "{}",
        agent_conf(&lab)
    );
    lab.run("uci set network.lan.device='br-lan' && uci commit network && reload_config");
    let pid7 = lab
        .wait_pid("network.lan device back", 15, |p| {
            p.is_some_and(|p| p != pid6)
        })
        .unwrap();
    seen = platform.wait_snapshots(seen, 2, &lab, "after the interface changes");
    assert_agent_state(&lab, &platform, pid7, "after the interface changes");
    // The snapshots of the agent started last capture on br-lan again.
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let last: serde_json::Value = serde_json::from_str(
            platform.snapshots().last().unwrap()["body"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        if last["agent"]["capture"]["interface"] == "br-lan" {
            break;
        }
        assert!(
            Instant::now() < end,
            "still capturing on {}",
            last["agent"]["capture"]["interface"]
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    seen = platform.snapshots().len().max(seen);

    // 8b. Two LANs by a UCI list: a restart with INTERFACE="br-lan br-guest", one ring each,
    // both live in the snapshots; then back to the LAN's device.
    lab.run(
        "uci -q delete netmon-agent.main.interface; \
         uci add_list netmon-agent.main.interface='br-lan' && \
         uci add_list netmon-agent.main.interface='br-guest' && \
         uci commit netmon-agent && reload_config",
    );
    let pid8 = lab
        .wait_pid("interface list", 15, |p| p.is_some_and(|p| p != pid7))
        .unwrap();
    assert!(
        agent_conf(&lab).contains("INTERFACE=\"br-lan br-guest\""),
        "{}",
        agent_conf(&lab)
    );
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let last: serde_json::Value = serde_json::from_str(
            platform.snapshots().last().unwrap()["body"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        let ifs = &last["agent"]["capture"]["interfaces"];
        let live = |i: usize, name: &str| ifs[i]["interface"] == name && ifs[i]["mode"] == "live";
        if live(0, "br-lan") && live(1, "br-guest") {
            break;
        }
        assert!(Instant::now() < end, "interfaces: {ifs}");
        std::thread::sleep(Duration::from_millis(250));
    }
    lab.run(
        "uci delete netmon-agent.main.interface && \
         uci set netmon-agent.main.interface='' && uci commit netmon-agent && reload_config",
    );
    let pid7 = lab
        .wait_pid("interface list removed", 15, |p| {
            p.is_some_and(|p| p != pid8)
        })
        .unwrap();
    assert!(agent_conf(&lab).contains("INTERFACE=\"br-lan\""));
    seen = platform.wait_snapshots(seen, 2, &lab, "after the interface list");

    // 8c. br-lan deleted and created again (what netifd does on a bridge reconfiguration),
    // then the LAN's ifup event: the new device (new ifindex) means a restart.
    let r = &net.router;
    ip(&format!("-n {r} link del br-lan"));
    ip(&format!("-n {r} link add br-lan type bridge"));
    ip(&format!("-n {r} link set lan1 master br-lan"));
    ip(&format!("-n {r} addr add 192.168.1.1/24 dev br-lan"));
    ip(&format!("-n {r} link set br-lan up"));
    lab.run("ubus call service event '{\"type\":\"interface.update\",\"data\":{\"interface\":\"lan\",\"action\":\"ifup\"}}'");
    let pid7 = lab
        .wait_pid("restart for a re-created br-lan", 15, |p| {
            p.is_some_and(|p| p != pid7)
        })
        .unwrap();
    // trigger_interface '' removes the interface trigger (the config trigger stays).
    let triggers = |lab: &Lab| {
        lab.run("ubus call service list '{\"name\":\"netmon-agent\",\"verbose\":true}'")
    };
    assert!(triggers(&lab).contains("interface.*"));
    lab.run("uci set netmon-agent.main.trigger_interface='' && uci commit netmon-agent && reload_config");
    let end = Instant::now() + Duration::from_secs(10);
    while triggers(&lab).contains("interface.*") {
        assert!(
            Instant::now() < end,
            "the interface trigger stayed:\n{}",
            triggers(&lab)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(triggers(&lab).contains("config.change"));
    assert_eq!(
        lab.agent_pid(),
        Some(pid7),
        "the trigger change restarted it"
    );
    lab.run("uci set netmon-agent.main.trigger_interface='lan' && uci commit netmon-agent && reload_config");
    seen = platform.wait_snapshots(seen, 2, &lab, "after br-lan was re-created");

    // 9. `check` shows the state; a bad value is named and not applied.
    let check = lab.run("/etc/init.d/netmon-agent check");
    assert!(
        check.contains("api key") && check.contains("redacted"),
        "{check}"
    );
    assert!(!check.contains(LAB_KEY));
    lab.run(
        "uci set netmon-agent.main.cycle_time='often' && uci commit netmon-agent && reload_config",
    );
    lab.wait_log("validation", 10, "cycle_time=often is not range(1,86400)");
    assert_eq!(
        lab.agent_pid(),
        Some(pid7),
        "a bad value stopped or restarted it"
    );
    lab.run("uci set netmon-agent.main.cycle_time='1' && uci commit netmon-agent");
    // A user that does not exist: never a fallback to root. A reload keeps the running agent;
    // a fresh start refuses and says why.
    lab.run(
        "uci set netmon-agent.main.user='nosuchuser' && uci commit netmon-agent && reload_config",
    );
    lab.wait_log(
        "missing user on reload",
        10,
        "not applied: user 'nosuchuser' does not exist",
    );
    assert_eq!(lab.agent_pid(), Some(pid7));
    lab.run("/etc/init.d/netmon-agent restart");
    lab.wait_log(
        "missing user on start",
        10,
        "not started: user 'nosuchuser' does not exist",
    );
    lab.wait_pid("no start for a missing user", 10, |p| p.is_none());
    assert!(lab.run("pidof netmon-agent || true").trim().is_empty());
    lab.run("uci set netmon-agent.main.user='netmon' && uci commit netmon-agent && reload_config");
    let pid7 = lab
        .wait_pid("back with its user", 15, |p| p.is_some())
        .unwrap();
    assert_agent_state(&lab, &platform, pid7, "after the user came back");

    // 10. A reboot (the overlay kept, like flash): it comes back with the same key.
    lab.stop();
    lab.boot(true);
    let pid8 = lab.wait_pid("after reboot", 20, |p| p.is_some()).unwrap();
    seen = platform.wait_snapshots(seen, 2, &lab, "after reboot");
    assert_agent_state(&lab, &platform, pid8, "after reboot");

    // 11. Upgrade r1 -> r2: the edited config and the key stay.
    lab.run(&format!(
        "opkg install /lab/netmon-agent_{PKG_VERSION}-r2_x86_64.ipk"
    ));
    assert!(lab
        .run("opkg list-installed netmon-agent")
        .contains(&format!("{PKG_VERSION}-r2")));
    assert_eq!(
        lab.run("uci get netmon-agent.main.api_url").trim(),
        "http://192.168.1.10:8080/api"
    );
    let pid9 = lab
        .wait_pid("after upgrade", 20, |p| p.is_some_and(|p| p != pid8))
        .unwrap();
    seen = platform.wait_snapshots(seen, 2, &lab, "after upgrade");
    assert_agent_state(&lab, &platform, pid9, "after upgrade");

    // 12. opkg remove: stopped, and no key left in /var/run.
    lab.run("opkg remove netmon-agent");
    lab.wait_pid("opkg remove stops it", 10, |p| p.is_none());
    assert!(lab
        .run("sleep 1; pidof netmon-agent || true")
        .trim()
        .is_empty());
    let left = lab.run(&format!(
        "grep -rl '{LAB_KEY}' /var/run /tmp 2>/dev/null || true"
    ));
    assert!(left.trim().is_empty(), "the key is left in {left}");
    assert_log_lines(&lab);
    let _ = seen;
    lab.stop();
    println!("ipk part: {:.0} s", t0.elapsed().as_secs_f64());

    // The same as .apk (OpenWrt 25.12) on a fresh router: apk add, configure, upgrade, apk del.
    let platform2 = {
        drop(platform);
        std::fs::remove_file(dir.join("platform.jsonl")).ok();
        Platform::start(&dir, &net.lan_client)
    };
    // A fresh boot without LAB_KEEP: a new overlay on the same pristine rootfs (a new router).
    lab.boot(false);
    lab.run(&format!(
        "cat > /etc/config/network <<'EOF'\n{NETWORK_CONFIG}EOF\nreload_config"
    ));
    lab.run(&format!(
        "apk add --allow-untrusted /lab/netmon-agent-{PKG_VERSION}-r1.apk"
    ));
    assert!(lab
        .run("grep '^netmon:' /etc/passwd")
        .starts_with("netmon:"));
    lab.wait_log("idle after apk add", 10, "idle: no platform endpoint");
    assert_eq!(lab.agent_pid(), None);
    lab.run(CONFIGURE);
    let apid = lab.wait_pid("apk: start", 15, |p| p.is_some()).unwrap();
    let mut seen2 = platform2.wait_snapshots(0, 2, &lab, "apk: snapshots");
    assert_agent_state(&lab, &platform2, apid, "apk: first start");
    lab.run("uci set netmon-agent.main.scan_interval='30' && uci commit netmon-agent");
    lab.run(&format!(
        "apk add --allow-untrusted /lab/netmon-agent-{PKG_VERSION}-r2.apk"
    ));
    assert!(lab
        .run("apk info -v netmon-agent 2>/dev/null; apk list -I 2>/dev/null || true")
        .contains(&format!("{PKG_VERSION}-r2")));
    assert_eq!(
        lab.run("uci get netmon-agent.main.scan_interval").trim(),
        "30"
    );
    let apid2 = lab
        .wait_pid("apk: after upgrade", 20, |p| p.is_some_and(|p| p != apid))
        .unwrap();
    seen2 = platform2.wait_snapshots(seen2, 2, &lab, "apk: after upgrade");
    assert_agent_state(&lab, &platform2, apid2, "apk: after upgrade");
    lab.run("apk del netmon-agent");
    lab.wait_pid("apk del stops it", 10, |p| p.is_none());
    assert!(lab
        .run("sleep 1; pidof netmon-agent || true")
        .trim()
        .is_empty());
    let left = lab.run(&format!(
        "grep -rl '{LAB_KEY}' /var/run /tmp 2>/dev/null || true"
    ));
    assert!(left.trim().is_empty(), "the key is left in {left}");
    assert_log_lines(&lab);
    let _ = seen2;
    lab.stop();
    println!(
        "OpenWrt lab test (ipk + apk): {:.0} s",
        t0.elapsed().as_secs_f64()
    );
}

/// Every OpenWrt package arch of the families we build (OpenWrt 23.05/24.10 package feeds).
const OPENWRT_ARCHES: &[&str] = &[
    "x86_64",
    "aarch64_cortex-a53",
    "aarch64_cortex-a72",
    "aarch64_cortex-a76",
    "aarch64_generic",
    "arm_cortex-a5_vfpv4",
    "arm_cortex-a7",
    "arm_cortex-a7_neon-vfpv4",
    "arm_cortex-a7_vfpv4",
    "arm_cortex-a8_vfpv3",
    "arm_cortex-a9",
    "arm_cortex-a9_neon",
    "arm_cortex-a9_vfpv3-d16",
    "arm_cortex-a15_neon-vfpv4",
    "mips_24kc",
    "mips_4kec",
    "mipsel_24kc",
    "mipsel_24kc_24kf",
    "mipsel_74kc",
];

/// OpenWrt's rule (lang/rust/rust-values.mk): ARMv7 has a hard-float ABI only with an FPU,
/// which the arch names by a vfp/neon suffix; MIPS is soft-float musl; aarch64 and x86_64 plain.
fn rust_target_by_openwrt_rule(arch: &str) -> String {
    let family = arch.split('_').next().unwrap();
    match family {
        "x86" | "x86_64" => "x86_64-unknown-linux-musl".into(),
        "aarch64" => "aarch64-unknown-linux-musl".into(),
        "arm" => {
            let fpu = arch.contains("vfp") || arch.contains("neon");
            format!(
                "armv7-unknown-linux-musleabi{}",
                if fpu { "hf" } else { "" }
            )
        }
        "mips" | "mipsel" => format!("{family}-unknown-linux-musl"),
        other => panic!("no rule for {other}"),
    }
}

fn target_of(arch: &str) -> std::process::Output {
    Command::new(repo().join("scripts/cross.sh"))
        .args(["target-of", arch])
        .output()
        .unwrap()
}

#[test]
fn arch_map_covers_every_openwrt_arch_by_openwrts_rule() {
    for arch in OPENWRT_ARCHES {
        let o = target_of(arch);
        assert!(o.status.success(), "{arch}: {}", stderr(&o));
        assert_eq!(
            stdout(&o).trim(),
            rust_target_by_openwrt_rule(arch),
            "{arch}"
        );
    }
    // bcm53xx (no FPU): soft float, never the hard-float build that dies with SIGILL there.
    assert_eq!(
        stdout(&target_of("arm_cortex-a9")).trim(),
        "armv7-unknown-linux-musleabi"
    );
    // The script's table is exactly this list: a new entry comes with its check here.
    let listed = sh(Command::new(repo().join("scripts/cross.sh")).arg("arches"));
    let listed: Vec<&str> = listed
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(listed, OPENWRT_ARCHES);
    // Archs of families we do not build are refused by name, not guessed.
    for arch in [
        "mips_mips32",
        "mipsel_mips32",
        "arm_arm926ej-s",
        "arm_xscale",
        "i386_pentium4",
        "mips64_octeonplus",
        "arm_cortex-a9_typo",
    ] {
        let o = target_of(arch);
        assert!(!o.status.success(), "{arch} was mapped");
        assert!(
            stderr(&o).contains(&format!("unknown target or arch '{arch}'")),
            "{}",
            stderr(&o)
        );
    }
}

// ---------- the feed Makefile against a mock SDK (the real include files' variable names) ----------

/// rules.mk, include/package.mk and the packages feed's lang/rust/rust-package.mk, reduced to
/// the variables and macros a package Makefile uses (same names as OpenWrt's): BuildPackage
/// checks what the SDK needs and offers `mock-info` (the metadata) and `mock-install` (runs
/// Package/<pkg>/install into DEST, as the SDK does into its ipkg dir).
const MOCK_RULES_MK: &str = "\
INCLUDE_DIR:=$(TOPDIR)/include
SCRIPT_DIR:=$(TOPDIR)/scripts
BUILD_DIR:=$(TOPDIR)/build_dir/target-mock
STAGING_DIR:=$(TOPDIR)/staging_dir/target-mock
INSTALL_DIR:=install -d -m0755
INSTALL_BIN:=install -m0755
INSTALL_DATA:=install -m0644
INSTALL_CONF:=install -m0600
CP:=cp -fpR
";

const MOCK_PACKAGE_MK: &str = "\
PKG_BUILD_DIR ?= $(BUILD_DIR)/$(PKG_NAME)-$(PKG_VERSION)
PKG_INSTALL_DIR ?= $(PKG_BUILD_DIR)/ipkg-install
REQUIRED := PKG_NAME PKG_VERSION PKG_RELEASE PKG_SOURCE_PROTO PKG_SOURCE_URL PKG_SOURCE_VERSION \\
  PKG_MIRROR_HASH PKG_MAINTAINER PKG_LICENSE PKG_LICENSE_FILES
define BuildPackage
$$(foreach v,$$(REQUIRED),$$(if $$($$(v)),,$$(error $$(v) is not set)))
$$(eval $$(Package/$(1)))
$$(foreach v,SECTION CATEGORY TITLE DEPENDS,$$(if $$($$(v)),,$$(error Package/$(1): $$(v) is not set)))
mock-info:
\t@echo 'PKG_NAME=$(PKG_NAME)'
\t@echo 'PKG_VERSION=$(PKG_VERSION)'
\t@echo 'PKG_LICENSE=$(PKG_LICENSE)'
\t@echo 'PKG_LICENSE_FILES=$(PKG_LICENSE_FILES)'
\t@echo 'PKG_MAINTAINER=$(PKG_MAINTAINER)'
\t@echo 'PKG_BUILD_DEPENDS=$(PKG_BUILD_DEPENDS)'
\t@echo 'DEPENDS=$$(DEPENDS)'
\t@echo 'USERID=$$(USERID)'
\t@echo 'SECTION=$$(SECTION)'
\t@echo 'CONFFILES=$$(strip $$(Package/$(1)/conffiles))'
mock-install:
\t$$(call Package/$(1)/install,$$(DEST))
endef
";

const MOCK_RUST_PACKAGE_MK: &str = "\
RUST_ARCH_DEPENDS:=@(aarch64||arm||i386||i686||mips||mipsel||mips64||mips64el||powerpc64||riscv64||x86_64)
define RustBinPackage
  ifndef Package/$(1)/install
    define Package/$(1)/install
\t$$$$(INSTALL_DIR) $$$$(1)/usr/bin/
\t$$$$(INSTALL_BIN) $$$$(PKG_INSTALL_DIR)/bin/* $$$$(1)/usr/bin/
    endef
  endif
endef
";

fn mock_sdk(top: &Path) {
    std::fs::create_dir_all(top.join("include")).unwrap();
    std::fs::create_dir_all(top.join("feeds/packages/lang/rust")).unwrap();
    std::fs::write(top.join("rules.mk"), MOCK_RULES_MK).unwrap();
    std::fs::write(top.join("include/package.mk"), MOCK_PACKAGE_MK).unwrap();
    std::fs::write(
        top.join("feeds/packages/lang/rust/rust-package.mk"),
        MOCK_RUST_PACKAGE_MK,
    )
    .unwrap();
}

fn feed_make(pkg_dir: &Path, top: &Path, args: &[&str]) -> String {
    sh(Command::new("make")
        .arg("--no-print-directory")
        .arg("-C")
        .arg(pkg_dir)
        .arg(format!("TOPDIR={}", top.display()))
        .args(args))
}

/// path -> mode string of every file under `root` (`find -printf`).
fn tree(root: &Path) -> BTreeMap<String, String> {
    sh(Command::new("find")
        .arg(root)
        .args(["-type", "f", "-printf", "%P %M\\n"]))
    .lines()
    .map(|l| {
        let (p, m) = l.split_once(' ').unwrap();
        (p.to_owned(), m.to_owned())
    })
    .collect()
}

#[test]
fn feed_makefile_parses_in_both_feed_layouts_and_installs_what_the_ipk_holds() {
    let dir = scratch("openwrt-feed");
    let top = dir.join("sdk");
    mock_sdk(&top);
    // Layout 1: inside the packages feed (packages/net/netmon-agent).
    let in_feed = top.join("feeds/packages/net/netmon-agent");
    std::fs::create_dir_all(in_feed.parent().unwrap()).unwrap();
    sh(Command::new("cp")
        .arg("-r")
        .arg(repo().join("openwrt/netmon-agent"))
        .arg(&in_feed));
    // Layout 2: a feed of its own, `src-link netmon <repo>/openwrt` (feeds/netmon -> openwrt/).
    std::os::unix::fs::symlink(repo().join("openwrt"), top.join("feeds/netmon")).unwrap();
    let linked = top.join("feeds/netmon/netmon-agent");

    let ipk = build_ipk(&dir.join("ipk"), "x86_64");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    sh(Command::new("sh").arg("-c").arg(format!(
        "tar xzOf '{}' ./data.tar.gz | tar xzf - -C '{}'",
        ipk.display(),
        data.display()
    )));
    // keep.d is the SDK's own doing (from the conffiles list), not the install recipe's.
    let mut from_ipk = tree(&data);
    assert_eq!(
        from_ipk
            .remove("lib/upgrade/keep.d/netmon-agent")
            .as_deref(),
        Some("-rw-r--r--")
    );
    let fake_build = dir.join("ipkg-install");
    std::fs::create_dir_all(fake_build.join("bin")).unwrap();
    std::fs::copy(stripped_bin(), fake_build.join("bin/netmon-agent")).unwrap();
    for (name, pkg_dir) in [("packages feed", &in_feed), ("src-link feed", &linked)] {
        let info = feed_make(pkg_dir, &top, &["mock-info"]);
        let field = |k: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .unwrap_or_else(|| panic!("{name}: no {k} in\n{info}"))
                .to_owned()
        };
        assert_eq!(field("PKG_NAME"), "netmon-agent", "{name}");
        assert_eq!(
            field("PKG_VERSION"),
            PKG_VERSION,
            "{name}: Cargo.toml's version"
        );
        assert_eq!(field("PKG_LICENSE"), "MIT", "{name}");
        for f in field("PKG_LICENSE_FILES").split_whitespace() {
            assert!(repo().join(f).is_file(), "{name}: license file {f} missing");
        }
        assert!(field("PKG_MAINTAINER").contains('<'), "{name}");
        assert_eq!(field("PKG_BUILD_DEPENDS"), "rust/host");
        let deps = field("DEPENDS");
        assert!(
            deps.contains("+ca-bundle") && deps.starts_with("@("),
            "{deps}"
        );
        assert_eq!(field("USERID"), "netmon:netmon");
        assert_eq!(field("SECTION"), "net");
        assert_eq!(
            field("CONFFILES"),
            "/etc/config/netmon-agent /etc/netmon-agent/api_key"
        );

        // Package/netmon-agent/install lays out what the .ipk built without the SDK holds.
        let dest = dir.join(format!("install-{}", name.replace(' ', "-")));
        feed_make(
            pkg_dir,
            &top,
            &[
                "mock-install",
                &format!("DEST={}", dest.display()),
                &format!("PKG_INSTALL_DIR={}", fake_build.display()),
            ],
        );
        let ipk_dir = dir.join("ipk");
        let ipk = build_ipk(&ipk_dir, "x86_64");
        let data = dir.join("data");
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(&data).unwrap();
        sh(Command::new("sh").arg("-c").arg(format!(
            "tar xzOf '{}' ./data.tar.gz | tar xzf - -C '{}'",
            ipk.display(),
            data.display()
        )));
        // keep.d is the SDK's own doing (from the conffiles list), not the install recipe's.
        let mut from_ipk = tree(&data);
        assert_eq!(
            from_ipk
                .remove("lib/upgrade/keep.d/netmon-agent")
                .as_deref(),
            Some("-rw-r--r--")
        );
        assert_eq!(tree(&dest), from_ipk, "{name}");
    }

    // The layout of an openwrt/packages Rust package (net/dufs, utils/arp-whisper): the same
    // statements in the same order.
    let mk = std::fs::read_to_string(repo().join("openwrt/netmon-agent/Makefile")).unwrap();
    let mut at = 0;
    for marker in [
        "include $(TOPDIR)/rules.mk",
        "PKG_NAME:=",
        "PKG_VERSION:=",
        "PKG_RELEASE:=",
        "PKG_SOURCE_PROTO:=git",
        "PKG_SOURCE_URL:=",
        "PKG_SOURCE_VERSION:=",
        "PKG_MIRROR_HASH:=",
        "PKG_MAINTAINER:=",
        "PKG_LICENSE:=",
        "PKG_LICENSE_FILES:=",
        "PKG_BUILD_DEPENDS:=rust/host",
        "PKG_BUILD_PARALLEL:=1",
        "include $(INCLUDE_DIR)/package.mk",
        "/lang/rust/rust-package.mk",
        "define Package/netmon-agent\n",
        "define Package/netmon-agent/description",
        "define Package/netmon-agent/conffiles",
        "define Package/netmon-agent/install",
        "$(eval $(call RustBinPackage,netmon-agent))",
        "$(eval $(call BuildPackage,netmon-agent))",
    ] {
        let found = mk[at..]
            .find(marker)
            .unwrap_or_else(|| panic!("'{marker}' missing or out of order"));
        at += found + marker.len();
    }
}
