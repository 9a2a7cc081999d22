//! Configuration from outside: the seed's file loads unchanged, bad values exit 2 with
//! `FILE:LINE: KEY: reason`, precedence is file < environment < flag, the key is never shown.

use crate::common::*;
use std::path::PathBuf;

const SECRET: &str = "sk_live_5f1d2c3b4a59687706152433";

fn seed_config() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config/seed-monitor.conf")
}

fn write_conf(name: &str, text: &str) -> PathBuf {
    let dir = scratch(name);
    let p = dir.join("netmon-agent.conf");
    std::fs::write(&p, text).unwrap();
    p
}

/// `check` without contacting the endpoints (the seed's URLs point at a host that is not ours).
fn check(conf: &std::path::Path) -> std::process::Output {
    run(agent()
        .args(["check", "--offline", "--config"])
        .arg(conf)
        // The file's own PROMISC is under test here (check opens no promiscuous capture).
        .env_remove("NETMON_PROMISC"))
}

#[test]
fn seed_config_loads_unchanged() {
    let o = check(&seed_config());
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("office-gw"), "{out}");
    assert!(out.contains("wlan0"), "{out}");
    assert!(out.contains("192.168.1.0/24"), "{out}");
    assert!(
        out.contains("http://your-platform.com/api/monitor"),
        "{out}"
    );
    assert!(out.contains("ws://your-platform.com:3000"), "{out}");
    // No unknown-key warnings for a seed file.
    assert!(!stderr(&o).contains("unknown key"), "{}", stderr(&o));
}

#[test]
fn api_key_never_shown() {
    let o = check(&seed_config());
    assert!(!stdout(&o).contains(SECRET) && !stderr(&o).contains(SECRET));
    assert!(stdout(&o).contains("redacted"));
    // Help never shows it, even with the key in the environment.
    let o = run(agent()
        .args(["check", "--help"])
        .env("NETMON_API_KEY", SECRET));
    assert!(!stdout(&o).contains(SECRET) && !stderr(&o).contains(SECRET));
    // An error in the same file does not echo the key.
    let bad = std::fs::read_to_string(seed_config())
        .unwrap()
        .replace("CYCLE_TIME=5", "CYCLE_TIME=0");
    let p = write_conf("cfg_key_err", &bad);
    let o = check(&p);
    assert_eq!(o.status.code(), Some(2));
    assert!(!stdout(&o).contains(SECRET) && !stderr(&o).contains(SECRET));
    // A bad API_KEY value itself is reported without its text.
    let p = write_conf("cfg_key_bad", &format!("API_KEY=\"{SECRET} x\"\n"));
    let o = check(&p);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains(":1: API_KEY:"), "{}", stderr(&o));
    assert!(!stderr(&o).contains(SECRET));
    // Refused on the command line, where `ps` would show it.
    let o = run(agent().args(["check", "--set", &format!("API_KEY={SECRET}")]));
    assert_eq!(o.status.code(), Some(2));
    assert!(!stderr(&o).contains(SECRET));
}

#[test]
fn bad_values_exit_2_with_file_line_key() {
    let cases = [
        ("CYCLE_TIME=0", "CYCLE_TIME: must be at least 1 second"),
        ("CYCLE_TIME=abc", "CYCLE_TIME: 'abc' is not a number"),
        ("NETWORK_RANGE=192.168.1.0/33", "NETWORK_RANGE: "),
        (
            "NETWORK_RANGE=192.168.1/24",
            "NETWORK_RANGE: '192.168.1' is not an IPv4 address",
        ),
        (
            "PLATFORM_API_URL=ftp://x/",
            "PLATFORM_API_URL: scheme 'ftp'",
        ),
        ("PLATFORM_WS_URL=not a url", "PLATFORM_WS_URL: "),
        (
            "DEVICE_TABLE_SIZE=0",
            "DEVICE_TABLE_SIZE: 0 is out of range",
        ),
        (
            "SERVER_IP=1.2.3",
            "SERVER_IP: '1.2.3' is not an IPv4 address",
        ),
        ("PROMISC=maybe", "PROMISC: 'maybe' is not a boolean"),
    ];
    for (i, (line, expect)) in cases.iter().enumerate() {
        let p = write_conf(
            &format!("cfg_bad_{i}"),
            &format!("# comment\n\nINTERFACE=lo\n{line}\n"),
        );
        let o = check(&p);
        assert_eq!(o.status.code(), Some(2), "{line}: {}", stderr(&o));
        let want = format!("{}:4: {expect}", p.display());
        assert!(
            stderr(&o).contains(&want),
            "{line}: wanted '{want}' in '{}'",
            stderr(&o)
        );
    }
    // A line that is not KEY=VALUE.
    let p = write_conf("cfg_bad_syntax", "INTERFACE=lo\nthis is not a setting\n");
    let o = check(&p);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(&format!("{}:2: expected KEY=VALUE", p.display())),
        "{}",
        stderr(&o)
    );
    // A missing --config file.
    let o = run(agent().args(["check", "--config", "/nonexistent/netmon.conf"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("/nonexistent/netmon.conf"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn unknown_key_is_a_warning_with_its_line() {
    let p = write_conf("cfg_unknown", "INTERFACE=lo\nFAVOURITE_COLOUR=blue\n");
    let o = check(&p);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("{}:2: unknown key FAVOURITE_COLOUR", p.display())),
        "{}",
        stderr(&o)
    );
}

#[test]
fn precedence_file_then_env_then_flag() {
    let p = write_conf(
        "cfg_prec",
        "INTERFACE=lo\nCYCLE_TIME=7\nSERVER_ID=from-file\n",
    );
    let cycle = |o: &std::process::Output| {
        stdout(o)
            .lines()
            .find(|l| l.starts_with("cycle"))
            .unwrap_or_default()
            .to_string()
    };
    let o = check(&p);
    assert!(cycle(&o).ends_with("7 s"), "{}", stdout(&o));
    assert!(stdout(&o).contains("from-file"));
    let o = run(agent()
        .args(["check", "--config"])
        .arg(&p)
        .env("NETMON_CYCLE_TIME", "8")
        .env("NETMON_SERVER_ID", "from-env"));
    assert!(cycle(&o).ends_with("8 s"), "{}", stdout(&o));
    assert!(stdout(&o).contains("from-env"));
    let o = run(agent()
        .args([
            "check",
            "--cycle",
            "9",
            "--set",
            "SERVER_ID=from-flag",
            "--config",
        ])
        .arg(&p)
        .env("NETMON_CYCLE_TIME", "8")
        .env("NETMON_SERVER_ID", "from-env"));
    assert!(cycle(&o).ends_with("9 s"), "{}", stdout(&o));
    assert!(stdout(&o).contains("from-flag"));
    // An env error names the variable.
    let o = run(agent()
        .args(["check", "--config"])
        .arg(&p)
        .env("NETMON_CYCLE_TIME", "x"));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("environment NETMON_CYCLE_TIME: CYCLE_TIME: 'x' is not a number"),
        "{}",
        stderr(&o)
    );
}
