//! The OpenWrt package: the .ipk as opkg unpacks it (gzip + tar), its maintainer scripts in a
//! scratch root, and the procd init script under busybox ash with shims for the procd and UCI
//! helpers. The generated agent config is read back by the real agent (`check`).

use crate::common::*;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn has(tool: &str, arg: &str) -> bool {
    Command::new(tool)
        .arg(arg)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// busybox for `ash`; missing: skip, except in CI.
fn busybox() -> bool {
    if has("busybox", "true") {
        return true;
    }
    assert!(
        !in_ci(),
        "busybox is not installed (apt-get install busybox)"
    );
    println!("skipped: busybox is not installed");
    false
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
fn build_ipk(dir: &Path, arch: &str) -> PathBuf {
    let out = sh(Command::new(repo().join("openwrt/mkpkg.sh"))
        .args(["ipk", arch])
        .arg(bin())
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
            "./usr/bin/netmon-agent",
        ]
    );
    let mode = |p: &str| data[p].0.as_str();
    assert_eq!(mode("./usr/bin/netmon-agent"), "-rwxr-xr-x");
    assert_eq!(mode("./etc/init.d/netmon-agent"), "-rwxr-xr-x");
    assert_eq!(mode("./etc/config/netmon-agent"), "-rw-------");
    assert_eq!(mode("./etc/capabilities/netmon-agent.json"), "-rw-r--r--");
    assert!(
        data.values().all(|(_, owner, _)| owner == "0/0"),
        "{data:?}"
    );
    let installed: u64 = data.values().map(|(_, _, s)| s).sum();
    assert_eq!(
        data["./usr/bin/netmon-agent"].2,
        std::fs::metadata(bin()).unwrap().len()
    );

    let ctrl = listing(&x.join("control.tar.gz"));
    assert_eq!(
        ctrl.keys().filter(|k| *k != "./").collect::<Vec<_>>(),
        ["./conffiles", "./control", "./postinst", "./prerm"]
    );
    assert_eq!(ctrl["./postinst"].0, "-rwxr-xr-x");
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
    assert_eq!(fields["Depends"], "libc");
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
    // Reproducible: the same inputs give the same bytes.
    let again = build_ipk(&dir.join("again"), "mipsel_24kc");
    assert_eq!(std::fs::read(&ipk).unwrap(), std::fs::read(again).unwrap());
}

#[test]
fn ipk_maintainer_scripts_in_a_scratch_root() {
    if !busybox() {
        return;
    }
    let dir = scratch("openwrt-postinst");
    let ipk = build_ipk(&dir, "aarch64_cortex-a53");
    let root = dir.join("root");
    let info = root.join("usr/lib/opkg/info");
    std::fs::create_dir_all(&info).unwrap();
    std::fs::create_dir_all(root.join("lib")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    // What opkg does: unpack data into the root, control files into info/ as <pkg>.<name>,
    // and write the file list.
    let x = dir.join("x");
    std::fs::create_dir_all(&x).unwrap();
    sh(Command::new("sh").arg("-c").arg(format!(
        "gzip -dc '{}' | tar -x -C '{}' && tar xzf '{x}/data.tar.gz' -C '{}' && mkdir '{x}/c' && tar xzf '{x}/control.tar.gz' -C '{x}/c'",
        ipk.display(),
        x.display(),
        root.display(),
        x = x.display()
    )));
    for f in ["control", "conffiles", "postinst", "prerm"] {
        std::fs::copy(x.join("c").join(f), info.join(format!("netmon-agent.{f}"))).unwrap();
    }
    let list = sh(Command::new("tar").arg("tzf").arg(x.join("data.tar.gz")));
    let list: String = list
        .lines()
        .filter(|l| !l.ends_with('/'))
        .map(|l| format!("{}\n", l.trim_start_matches('.')))
        .collect();
    std::fs::write(info.join("netmon-agent.list"), list).unwrap();
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/ash\n").unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
    let shell = repo().join("tests/shell");
    std::fs::copy(
        shell.join("openwrt-functions.sh"),
        root.join("lib/functions.sh"),
    )
    .unwrap();
    std::fs::copy(shell.join("rc.common"), root.join("etc/rc.common")).unwrap();
    let log = dir.join("log");
    let maint = |script: &str| {
        sh(Command::new("busybox")
            .arg("ash")
            .arg(info.join(format!("netmon-agent.{script}")))
            .env("IPKG_INSTROOT", &root)
            .env("SHIM_LOG", &log))
    };

    maint("postinst");
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    let group = std::fs::read_to_string(root.join("etc/group")).unwrap();
    let user: Vec<&str> = passwd
        .lines()
        .find(|l| l.starts_with("netmon:"))
        .expect("user netmon created")
        .split(':')
        .collect();
    let grp: Vec<&str> = group
        .lines()
        .find(|l| l.starts_with("netmon:"))
        .expect("group netmon created")
        .split(':')
        .collect();
    assert_eq!(user[3], grp[2], "the user's primary group is netmon");
    assert_ne!(user[2], "0");
    let rcd = root.join("etc/rc.d");
    assert_eq!(
        std::fs::read_link(rcd.join("S95netmon-agent")).unwrap(),
        Path::new("../init.d/netmon-agent")
    );
    assert!(rcd.join("K10netmon-agent").exists());
    // Offline (IPKG_INSTROOT set): enabled, never started.
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(calls, "rc.common|netmon-agent|enable\n");
    // Running it again (reinstall) creates nothing twice.
    maint("postinst");
    let passwd2 = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert_eq!(passwd, passwd2);

    maint("prerm");
    assert!(!rcd.join("S95netmon-agent").exists());
    assert!(!rcd.join("K10netmon-agent").exists());
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .ends_with("rc.common|netmon-agent|disable\n"));
}

/// Runs the init script's start_service and service_triggers under busybox ash with `uci` as
/// the UCI file and returns (procd calls, the generated config text, its mode).
struct InitRun {
    calls: Vec<Vec<String>>,
    conf: Option<(String, u32)>,
    conf_path: PathBuf,
    stderr: String,
}

fn run_init(name: &str, uci: &str, ujail: bool, passwd: &str) -> InitRun {
    let dir = scratch(&format!("openwrt-init-{name}"));
    let uci_dir = dir.join("uci");
    std::fs::create_dir_all(&uci_dir).unwrap();
    std::fs::write(uci_dir.join("netmon-agent"), uci).unwrap();
    std::fs::write(dir.join("passwd"), passwd).unwrap();
    std::fs::write(
        dir.join("network.sh"),
        "network_get_device() { eval \"$1=br-lan\"; }\n",
    )
    .unwrap();
    let ujail_path = dir.join("ujail");
    if ujail {
        std::fs::write(&ujail_path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&ujail_path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let caps = repo().join("openwrt/netmon-agent/files/netmon-agent.json");
    let conf = dir.join("run/netmon-agent.conf");
    let log = dir.join("log");
    let script = format!(
        ". '{shims}'\n. '{init}'\nCONF='{conf}'\nSTATUS_DIR='{sdir}'\nSTATUS_FILE='{sdir}/status.json'\nUJAIL='{ujail}'\nCAPS='{caps}'\nNETWORK_SH='{net}'\nstart_service\nservice_triggers\n",
        shims = repo().join("tests/shell/procd-shims.sh").display(),
        init = repo()
            .join("openwrt/netmon-agent/files/netmon-agent.init")
            .display(),
        conf = conf.display(),
        sdir = dir.join("run/status").display(),
        ujail = ujail_path.display(),
        caps = caps.display(),
        net = dir.join("network.sh").display(),
    );
    let o = Command::new("busybox")
        .args(["ash", "-c", &script])
        .env("SHIM_LOG", &log)
        .env("UCI_DIR", &uci_dir)
        .env("SHIM_PASSWD", dir.join("passwd"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let calls = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split('|').map(str::to_owned).collect())
        .collect();
    let conf_read = std::fs::read_to_string(&conf).ok().map(|t| {
        (
            t,
            std::fs::metadata(&conf).unwrap().permissions().mode() & 0o7777,
        )
    });
    InitRun {
        calls,
        conf: conf_read,
        conf_path: conf,
        stderr: stderr(&o),
    }
}

impl InitRun {
    /// The arguments of `procd_set_param NAME ...`, if it was called.
    fn param(&self, name: &str) -> Option<Vec<String>> {
        self.calls
            .iter()
            .find(|c| c[0] == "procd_set_param" && c[1] == name)
            .map(|c| c[2..].to_vec())
    }
    fn called(&self, f: &str) -> Option<Vec<String>> {
        self.calls
            .iter()
            .find(|c| c[0] == f)
            .map(|c| c[1..].to_vec())
    }
}

fn shipped_uci() -> String {
    std::fs::read_to_string(repo().join("openwrt/netmon-agent/files/netmon-agent.config")).unwrap()
}

fn with_option(uci: &str, opt: &str, value: &str) -> String {
    uci.lines()
        .map(|l| {
            if l.trim_start().starts_with(&format!("option {opt} ")) {
                format!("\toption {opt} '{value}'")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

const PASSWD: &str =
    "root:x:0:0:root:/root:/bin/ash\nnetmon:x:65536:65536:netmon:/var:/bin/false\n";

#[test]
fn init_script_with_ujail_runs_jailed_as_netmon_with_net_raw() {
    if !busybox() {
        return;
    }
    let r = run_init("ujail", &shipped_uci(), true, PASSWD);
    assert_eq!(
        r.param("command").unwrap(),
        [
            "/usr/bin/netmon-agent",
            "run",
            "--config",
            r.conf_path.to_str().unwrap()
        ]
    );
    assert_eq!(r.param("respawn").unwrap(), ["3600", "5", "5"]);
    assert_eq!(r.called("procd_add_jail").unwrap(), ["netmon-agent"]);
    assert_eq!(
        r.param("capabilities").unwrap(),
        [repo()
            .join("openwrt/netmon-agent/files/netmon-agent.json")
            .to_str()
            .unwrap()]
    );
    assert_eq!(r.param("user").unwrap(), ["netmon"]);
    assert_eq!(r.param("group").unwrap(), ["netmon"]);
    assert_eq!(r.param("no_new_privs").unwrap(), ["1"]);
    assert_eq!(r.param("stderr").unwrap(), ["1"]);
    // No platform configured: the per-cycle JSON on stdout stays out of logd.
    assert_eq!(r.param("stdout"), None);
    assert_eq!(r.param("file").unwrap(), ["/etc/config/netmon-agent"]);
    assert_eq!(
        r.called("procd_add_reload_trigger").unwrap(),
        ["netmon-agent"]
    );
    assert_eq!(
        r.called("procd_add_reload_interface_trigger").unwrap(),
        ["lan"]
    );
    let order: Vec<&str> = r.calls.iter().map(|c| c[0].as_str()).collect();
    assert_eq!(order.first(), Some(&"chown"));
    assert!(order.contains(&"procd_open_instance") && order.contains(&"procd_close_instance"));
    let (conf, mode) = r.conf.clone().expect("config written");
    assert_eq!(mode, 0o600);
    assert_eq!(
        r.called("chown").unwrap(),
        ["netmon", &format!("{}.tmp", r.conf_path.display())]
    );
    // Empty options are left to the agent; the interface comes from netifd (network.lan).
    assert_eq!(
        conf,
        format!("INTERFACE=\"br-lan\"\nCYCLE_TIME=\"5\"\nSCAN_INTERVAL=\"60\"\nLOG_LEVEL=\"info\"\nRUN_AS_USER=\"netmon\"\nSTATUS_FILE=\"{}/status.json\"\n",
            r.conf_path.with_file_name("status").display())
    );
}

#[test]
fn init_script_without_ujail_starts_root_and_the_key_stays_off_argv() {
    if !busybox() {
        return;
    }
    let key = "k3y-With#hash\"quote";
    let mut uci = with_option(&shipped_uci(), "api_key", key);
    uci = with_option(&uci, "api_url", "http://127.0.0.1:9/api/v1/snapshots#x");
    uci = with_option(&uci, "interface", "eth1");
    uci = with_option(&uci, "network_range", "10.9.0.0/24");
    uci = with_option(&uci, "respawn_retry", "0");
    let r = run_init("nojail", &uci, false, PASSWD);
    assert_eq!(r.called("procd_add_jail"), None);
    assert_eq!(r.param("user"), None, "starts as root, drops by itself");
    assert_eq!(r.param("capabilities"), None);
    assert_eq!(r.param("stdout").unwrap(), ["1"]);
    assert_eq!(r.param("respawn").unwrap(), ["3600", "5", "0"]);
    for c in &r.calls {
        assert!(
            !c.iter().any(|a| a.contains("k3y")),
            "key in a procd call: {c:?}"
        );
    }
    let (conf, mode) = r.conf.clone().unwrap();
    assert_eq!(mode, 0o600);
    assert!(conf.contains("RUN_AS_USER=\"netmon\"\n"), "{conf}");
    // The real agent reads the generated file back: every value arrives intact.
    let o = run(agent()
        .args(["check", "--offline", "--config"])
        .arg(&r.conf_path));
    let out = stdout(&o);
    assert!(o.status.success(), "{}{out}", stderr(&o));
    assert!(out.contains("eth1"), "{out}");
    assert!(out.contains("10.9.0.0/24"), "{out}");
    assert!(
        out.contains("http://127.0.0.1:9/api/v1/snapshots#x"),
        "{out}"
    );
    assert!(
        out.contains(&format!("set <redacted, {} chars>", key.len())),
        "{out}"
    );
    assert!(!out.contains("k3y"));
}

#[test]
fn init_script_disabled_or_without_the_user() {
    if !busybox() {
        return;
    }
    let r = run_init(
        "disabled",
        &with_option(&shipped_uci(), "enabled", "0"),
        true,
        PASSWD,
    );
    assert_eq!(r.called("procd_open_instance"), None);
    assert!(r.conf.is_none());

    // The user is missing (the package's postinst did not run): run as root, say so.
    let r = run_init(
        "nouser",
        &shipped_uci(),
        true,
        "root:x:0:0:root:/root:/bin/ash\n",
    );
    assert!(
        r.stderr.contains("user 'netmon' does not exist"),
        "{}",
        r.stderr
    );
    assert_eq!(r.called("procd_add_jail"), None);
    assert_eq!(r.param("user"), None);
    assert!(!r.conf.unwrap().0.contains("RUN_AS_USER"));

    // A newline inside a value cannot smuggle in another key.
    let r = run_init(
        "newline",
        &with_option(&shipped_uci(), "api_key", "abc\nRUN_AS_USER=root"),
        false,
        PASSWD,
    );
    let conf = r.conf.unwrap().0;
    assert!(
        !conf.contains("API_KEY") && !conf.contains("=root"),
        "{conf}"
    );
    assert!(
        r.stderr.contains("API_KEY contains a newline"),
        "{}",
        r.stderr
    );
}
