//! packaging/install.sh and uninstall.sh into a DESTDIR: files, modes, the unit checked by
//! `systemd-analyze verify`, idempotence, a kept config, and nothing left after a purge.

use crate::common::*;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("packaging")
        .join(name)
}

fn sh_ok(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{cmd:?}:\n{}{}", stdout(&o), stderr(&o));
    stdout(&o)
}

/// Every path under `root` (relative, with a leading '/') and its mode.
fn tree(root: &Path) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, u32>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = format!("/{}", p.strip_prefix(root).unwrap().display());
            out.insert(rel, m.permissions().mode() & 0o7777);
            if m.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    walk(root, root, &mut out);
    out
}

fn files(t: &BTreeMap<String, u32>, root: &Path) -> Vec<String> {
    t.keys()
        .filter(|k| !root.join(k.trim_start_matches('/')).is_dir())
        .cloned()
        .collect()
}

fn install(dest: &Path, prefix: &str) -> String {
    sh_ok(
        Command::new("sh")
            .arg(script("install.sh"))
            .env("DESTDIR", dest)
            .env("PREFIX", prefix)
            .env("BIN", bin()),
    )
}

fn uninstall(dest: &Path, prefix: &str, purge: bool) -> String {
    let mut c = Command::new("sh");
    c.arg(script("uninstall.sh"))
        .env("DESTDIR", dest)
        .env("PREFIX", prefix);
    if purge {
        c.arg("--purge");
    }
    sh_ok(&mut c)
}

#[test]
fn install_into_destdir_then_uninstall_leaves_nothing() {
    let base = scratch("install-destdir");
    let dest = base.join("root");
    let out = install(&dest, "/usr/local");
    assert!(out.contains("staged"), "{out}");
    let t = tree(&dest);
    assert_eq!(
        files(&t, &dest),
        [
            "/etc/netmon-agent.conf",
            "/etc/systemd/system/netmon-agent.service",
            "/etc/sysusers.d/netmon-agent.conf",
            "/usr/local/bin/netmon-agent",
            "/usr/local/share/netmon-agent/installed",
        ]
    );
    assert_eq!(t["/usr/local/bin/netmon-agent"], 0o755);
    assert_eq!(t["/etc/netmon-agent.conf"], 0o600);
    assert_eq!(t["/etc/systemd/system/netmon-agent.service"], 0o644);
    assert_eq!(
        std::fs::read(dest.join("usr/local/bin/netmon-agent")).unwrap(),
        std::fs::read(bin()).unwrap()
    );
    // The installed config template is one the agent accepts.
    let o = run(agent()
        .args(["check", "--offline", "--config"])
        .arg(dest.join("etc/netmon-agent.conf")));
    assert!(o.status.success(), "{}", stderr(&o));

    let unit =
        std::fs::read_to_string(dest.join("etc/systemd/system/netmon-agent.service")).unwrap();
    for line in [
        "ExecStart=/usr/local/bin/netmon-agent run --config /etc/netmon-agent.conf",
        "User=netmon",
        "AmbientCapabilities=CAP_NET_RAW",
        "CapabilityBoundingSet=CAP_NET_RAW",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "Restart=on-failure",
        "WantedBy=multi-user.target",
    ] {
        assert!(unit.lines().any(|l| l == line), "missing {line}:\n{unit}");
    }
    verify_unit(&base, &dest, &unit);

    // Idempotent: a second run changes nothing, and a user's config edits are kept.
    std::fs::write(dest.join("etc/netmon-agent.conf"), "CYCLE_TIME=7\n").unwrap();
    std::fs::set_permissions(
        dest.join("etc/netmon-agent.conf"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = install(&dest, "/usr/local");
    assert!(out.contains("keeping /etc/netmon-agent.conf"), "{out}");
    assert_eq!(tree(&dest), t, "second install changed the tree");
    assert_eq!(
        std::fs::read_to_string(dest.join("etc/netmon-agent.conf")).unwrap(),
        "CYCLE_TIME=7\n"
    );

    // Uninstall keeps the config unless asked; then nothing is left.
    let out = uninstall(&dest, "/usr/local", false);
    assert!(out.contains("kept /etc/netmon-agent.conf"), "{out}");
    assert_eq!(
        tree(&dest).into_keys().collect::<Vec<_>>(),
        ["/etc", "/etc/netmon-agent.conf"]
    );
    uninstall(&dest, "/usr/local", true);
    assert!(tree(&dest).is_empty(), "{:?}", tree(&dest));
    // And again: nothing to do, no error.
    let out = uninstall(&dest, "/usr/local", true);
    assert!(out.contains("nothing installed"), "{out}");
}

#[test]
fn prefix_usr_installs_the_unit_with_the_distribution() {
    let base = scratch("install-prefix-usr");
    let dest = base.join("root");
    install(&dest, "/usr");
    let t = tree(&dest);
    assert!(t.contains_key("/usr/bin/netmon-agent"));
    assert!(t.contains_key("/usr/lib/systemd/system/netmon-agent.service"));
    assert!(t.contains_key("/usr/lib/sysusers.d/netmon-agent.conf"));
    let unit =
        std::fs::read_to_string(dest.join("usr/lib/systemd/system/netmon-agent.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/netmon-agent run"));
    uninstall(&dest, "/usr", true);
    assert!(tree(&dest).is_empty(), "{:?}", tree(&dest));
}

/// `systemd-analyze verify` on the unit, its ExecStart pointed into DESTDIR (verify checks that
/// the binary exists). Any warning fails the test, not only a non-zero exit.
fn verify_unit(base: &Path, dest: &Path, unit: &str) {
    let ok = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            !in_ci(),
            "systemd-analyze missing (apt-get install systemd)"
        );
        println!("skipped verify: systemd-analyze is not installed");
        return;
    }
    let dir = base.join("verify");
    std::fs::create_dir_all(&dir).unwrap();
    let staged = dest.join("usr/local/bin/netmon-agent");
    std::fs::write(
        dir.join("netmon-agent.service"),
        unit.replace("/usr/local/bin/netmon-agent", staged.to_str().unwrap()),
    )
    .unwrap();
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.join("netmon-agent.service"))
        .output()
        .unwrap();
    assert!(
        o.status.success() && stderr(&o).trim().is_empty(),
        "systemd-analyze verify:\n{}{}",
        stdout(&o),
        stderr(&o)
    );
}
