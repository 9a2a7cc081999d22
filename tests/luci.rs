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

// ---------- the feed Makefile against a mock SDK ----------

/// rules.mk, include/package.mk and the LuCI feed's luci.mk, reduced to what a LuCI app's
/// Makefile uses (the real files' variable and macro names): BuildPackage checks the metadata
/// and offers `mock-info` and `mock-install` (Package/<pkg>/install into DEST, as the SDK does
/// into its ipkg dir); luci.mk's install rule is the real one's (htdocs -> /www, root -> /).
const MOCK_RULES_MK: &str = "\
INCLUDE_DIR:=$(TOPDIR)/include
BUILD_DIR:=$(TOPDIR)/build_dir/target-mock
INSTALL_DIR:=install -d -m0755
CP:=cp -fpR
";

const MOCK_PACKAGE_MK: &str = "\
PKG_BUILD_DIR ?= $(BUILD_DIR)/$(PKG_NAME)
define BuildPackage
$$(foreach v,PKG_NAME PKG_VERSION PKG_RELEASE PKG_LICENSE PKG_MAINTAINER,$$(if $$($$(v)),,$$(error $$(v) is not set)))
$$(eval $$(Package/$(1)))
$$(foreach v,SECTION CATEGORY TITLE DEPENDS,$$(if $$($$(v)),,$$(error Package/$(1): $$(v) is not set)))
mock-info:
\t@echo 'PKG_NAME=$(PKG_NAME)'
\t@echo 'PKGARCH=$$(PKGARCH)'
\t@echo 'DEPENDS=$$(DEPENDS)'
\t@echo 'SECTION=$$(SECTION)'
\t@echo 'POSTRM=$$(if $$(Package/$(1)/postrm),yes,no)'
\t@echo 'POSTINST=$$(if $$(Package/$(1)/postinst),yes,no)'
mock-install:
\t$$(call Package/$(1)/install,$$(DEST))
endef
";

const MOCK_LUCI_MK: &str = "\
LUCI_NAME?=$(notdir ${CURDIR})
LUCI_PKGARCH?=$(if $(realpath src/Makefile),,all)
PKG_NAME?=$(LUCI_NAME)
PKG_RELEASE?=1
include $(INCLUDE_DIR)/package.mk
define Package/$(PKG_NAME)
  SECTION:=luci
  CATEGORY:=LuCI
  SUBMENU:=3. Applications
  TITLE:=$(if $(LUCI_TITLE),$(LUCI_TITLE),LuCI $(LUCI_NAME))
  DEPENDS:=$(LUCI_DEPENDS)
  $(if $(LUCI_PKGARCH),PKGARCH:=$(LUCI_PKGARCH))
endef
HTDOCS = /www
define Package/$(PKG_NAME)/install
\tif [ -d $(PKG_BUILD_DIR)/htdocs ]; then \\
\t  $(INSTALL_DIR) $(1)$(HTDOCS); \\
\t  cp -pR $(PKG_BUILD_DIR)/htdocs/* $(1)$(HTDOCS)/; \\
\telse true; fi
\tif [ -d $(PKG_BUILD_DIR)/root ]; then \\
\t  $(INSTALL_DIR) $(1)/; \\
\t  cp -pR $(PKG_BUILD_DIR)/root/* $(1)/; \\
\telse true; fi
endef
$(eval $(call BuildPackage,$(PKG_NAME)))
";

/// The app's feed Makefile parses against the mock SDK in a `src-link` feed, is an arch-all LuCI
/// package depending on luci-base and netmon-agent, and installs exactly the files (and modes)
/// of the .ipk that openwrt/mkpkg.sh builds.
#[test]
fn luci_app_feed_makefile_installs_what_the_ipk_holds() {
    let dir = scratch("luci-feed");
    let top = dir.join("sdk");
    std::fs::create_dir_all(top.join("include")).unwrap();
    std::fs::create_dir_all(top.join("feeds/luci")).unwrap();
    std::fs::write(top.join("rules.mk"), MOCK_RULES_MK).unwrap();
    std::fs::write(top.join("include/package.mk"), MOCK_PACKAGE_MK).unwrap();
    std::fs::write(top.join("feeds/luci/luci.mk"), MOCK_LUCI_MK).unwrap();
    std::os::unix::fs::symlink(repo().join("openwrt"), top.join("feeds/netmon")).unwrap();
    let app = top.join("feeds/netmon/luci-app-netmon-agent");
    let make = |args: &[&str]| {
        let o = Command::new("make")
            .arg("--no-print-directory")
            .arg("-C")
            .arg(&app)
            .arg(format!("TOPDIR={}", top.display()))
            .arg(format!("PKG_BUILD_DIR={}", app.display()))
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "make {args:?}: {}", stderr(&o));
        stdout(&o)
    };
    let info = make(&["mock-info"]);
    for want in [
        "PKG_NAME=luci-app-netmon-agent",
        "PKGARCH=all",
        "SECTION=luci",
        "POSTINST=yes",
        "POSTRM=yes",
    ] {
        assert!(info.lines().any(|l| l == want), "{want} in\n{info}");
    }
    let deps = info.lines().find(|l| l.starts_with("DEPENDS=")).unwrap();
    assert!(
        deps.contains("+luci-base") && deps.contains("+netmon-agent"),
        "{deps}"
    );
    let dest = dir.join("installed");
    make(&["mock-install", &format!("DEST={}", dest.display())]);

    let out = Command::new(repo().join("openwrt/mkpkg.sh"))
        .args(["ipk", "all", "-"])
        .arg(dir.join("ipk"))
        .env("PKG", "luci-app-netmon-agent")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let ipk = std::fs::read_dir(dir.join("ipk"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("_all.ipk"))
        .expect("no luci-app-netmon-agent_*_all.ipk");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar xzOf '{}' ./data.tar.gz | tar xzf - -C '{}'",
            ipk.display(),
            data.display()
        ))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let tree = |root: &std::path::Path| {
        let o = Command::new("find")
            .arg(root)
            .args(["-type", "f", "-printf", "%P %M\\n"])
            .output()
            .unwrap();
        let mut v: Vec<String> = stdout(&o).lines().map(str::to_owned).collect();
        v.sort();
        v
    };
    let from_ipk = tree(&data);
    assert_eq!(from_ipk.len(), 4, "{from_ipk:?}");
    assert_eq!(tree(&dest), from_ipk);
}
