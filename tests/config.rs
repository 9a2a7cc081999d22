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
        // A full table's snapshot must fit the REST backlog and a WebSocket message.
        (
            "DEVICE_TABLE_SIZE=4096\nPLATFORM_API_URL=http://127.0.0.1:9/x",
            "DEVICE_TABLE_SIZE: 4096 devices make a snapshot of up to 4.1 MiB",
        ),
        (
            "DEVICE_TABLE_SIZE=65536\nPLATFORM_WS_URL=ws://127.0.0.1:9/x",
            "DEVICE_TABLE_SIZE: 65536 devices make a snapshot of up to",
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

/// Runs the command, killing it after `secs` (a config read that never ends must not hang the
/// suite); returns its output and whether it finished in time.
fn run_within(cmd: &mut std::process::Command, secs: u64) -> (std::process::Output, bool) {
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn netmon-agent");
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let mut in_time = true;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > end {
            in_time = false;
            let _ = child.kill();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    (child.wait_with_output().unwrap(), in_time)
}

#[test]
fn config_files_are_read_bounded_and_never_block() {
    let dir = scratch("cfg_bounded");
    let fifo = dir.join("fifo.conf");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let big = dir.join("big.conf");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(400 << 20).unwrap();
    for (path, expect) in [
        (
            PathBuf::from("/dev/zero"),
            "is a character device, not a regular file",
        ),
        (fifo, "is a FIFO, not a regular file"),
        (
            big,
            "is 419430400 bytes, more than the 1048576 bytes read at most",
        ),
        (dir.clone(), "is a directory, not a regular file"),
    ] {
        let (o, in_time) = run_within(
            agent().args(["check", "--offline", "--config"]).arg(&path),
            10,
        );
        assert!(in_time, "{}: still reading after 10 s", path.display());
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        let want = format!("{}: cannot read config: {expect}", path.display());
        assert!(
            stderr(&o).contains(&want),
            "wanted '{want}' in '{}'",
            stderr(&o)
        );
    }
    // /dev/null is an empty config (the tests themselves run on it).
    let o = run(agent().args(["check", "--offline", "--config", "/dev/null"]));
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn config_odds_from_outside() {
    // A byte-order mark (Windows editors write one) and a comment right after '='.
    let p = write_conf(
        "cfg_odds_bom",
        "\u{feff}INTERFACE=lo\nSERVER_ID=bom-ok # the id\nBACKLOG_DIR= # none\n",
    );
    let o = check(&p);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("bom-ok"), "{}", stdout(&o));
    // `BACKLOG_DIR= # none` spools nowhere: no directory named "# none" appears.
    let dir = p.parent().unwrap().to_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        &p,
        format!(
            "INTERFACE=lo\nCYCLE_TIME=1\nPLATFORM_API_URL=http://127.0.0.1:{port}/x\nBACKLOG_DIR= # none\n"
        ),
    )
    .unwrap();
    let (o, _) = run_within(
        agent().current_dir(&dir).args(["run", "--config"]).arg(&p),
        3,
    );
    assert!(!dir.join("# none").exists(), "{}", stderr(&o));

    // A non-UTF-8 variable of someone else: ignored; one of ours: exit 2 naming it.
    use std::os::unix::ffi::OsStrExt;
    let bad = std::ffi::OsStr::from_bytes(b"caf\xe9");
    let o = run(agent()
        .args(["check", "--offline", "--config"])
        .arg(&p)
        .env("SOMEONE_ELSES", bad));
    assert!(o.status.success(), "{:?} {}", o.status, stderr(&o));
    let o = run(agent()
        .args(["check", "--offline", "--config"])
        .arg(&p)
        .env("NETMON_SERVER_ID", bad));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o)
            .contains("environment NETMON_SERVER_ID: SERVER_ID: the value is not valid UTF-8"),
        "{}",
        stderr(&o)
    );

    // A huge value is refused with its length, not echoed: from the environment (128 KiB is
    // the most the kernel passes in one variable) and from a file (10 MB cannot get past the
    // file's own 1 MiB bound; 1,000,000 bytes can).
    let huge = "9".repeat(120_000);
    let o = run(agent()
        .args(["check", "--offline", "--config"])
        .arg(&p)
        .env("NETMON_CYCLE_TIME", &huge));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).len() < 300,
        "{} bytes of stderr",
        stderr(&o).len()
    );
    assert!(
        stderr(&o).contains("CYCLE_TIME: the value is 120000 bytes long, more than 4096"),
        "{}",
        stderr(&o)
    );
    let p4 = write_conf(
        "cfg_odds_huge",
        &format!("INTERFACE=lo\nSERVER_ID={}\n", "x".repeat(1_000_000)),
    );
    let o = check(&p4);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).len() < 300,
        "{} bytes of stderr",
        stderr(&o).len()
    );
    assert!(
        stderr(&o).contains(":2: SERVER_ID: the value is 1000000 bytes long"),
        "{}",
        stderr(&o)
    );
    let o = run(agent()
        .args(["check", "--offline", "--config"])
        .arg(&p)
        .env("NETMON_CYCLE_TIME", "7".repeat(3000)));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).len() < 300,
        "{} bytes of stderr",
        stderr(&o).len()
    );
    assert!(
        stderr(&o).contains("... (3000 bytes)' is not a number"),
        "{}",
        stderr(&o)
    );

    // 100,000 unknown keys: ten named, then one count.
    let text: String = (0..100_000).map(|i| format!("K{i}=1\n")).collect();
    let p2 = write_conf("cfg_odds_unknown", &format!("INTERFACE=lo\n{text}"));
    let o = check(&p2);
    assert!(o.status.success(), "{}", stderr(&o));
    let warnings = stderr(&o)
        .lines()
        .filter(|l| l.contains("unknown key"))
        .count();
    assert_eq!(warnings, 11, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("99990 more unknown keys ignored (100000 in all)"),
        "{}",
        stderr(&o)
    );

    // Interface names the kernel would refuse.
    for name in ["..", ".", "a/b", "eth0:1", "a-name-longer-than-15"] {
        let p3 = write_conf("cfg_odds_if", &format!("INTERFACE={name}\n"));
        let o = check(&p3);
        assert_eq!(o.status.code(), Some(2), "{name}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!(":1: INTERFACE: '{name}' is not an interface name")),
            "{}",
            stderr(&o)
        );
    }
}

/// `run` for about `secs` seconds (then SIGTERM): its stdout lines, whether it stopped within
/// 5 s of the signal, and its peak RSS (VmHWM, KiB) read just before the signal.
fn run_for(cmd: &mut std::process::Command, secs: u64) -> (Vec<String>, bool, u64) {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(secs));
    let hwm = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    // SAFETY (test code): kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut stopped = false;
    while std::time::Instant::now() < end {
        if child.try_wait().unwrap().is_some() {
            stopped = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    if !stopped {
        let _ = child.kill();
        let _ = child.wait();
    }
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    (out.lines().map(str::to_owned).collect(), stopped, hwm)
}

#[test]
fn a_fifo_or_a_huge_lease_file_neither_blocks_nor_bloats_the_loop() {
    let dir = scratch("cfg_lease_hostile");
    let fifo = dir.join("dhcp.leases");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let run = |lease: &std::path::Path| {
        run_for(
            agent()
                .args(["run", "-i", "lo", "--cycle", "1", "--set"])
                .arg(format!("LEASE_FILE={}", lease.display())),
            4,
        )
    };
    // A FIFO nobody writes to: snapshots every cycle, and SIGTERM is heard.
    let (lines, stopped, _) = run(&fifo);
    assert!(lines.len() >= 2, "{} snapshots in 4 s", lines.len());
    assert!(stopped, "no exit within 5 s of SIGTERM");
    // A 400 MB sparse file: at most 1 MiB of it is read.
    let sparse = dir.join("sparse.leases");
    std::fs::File::create(&sparse)
        .unwrap()
        .set_len(400 << 20)
        .unwrap();
    let (lines, stopped, hwm) = run(&sparse);
    assert!(lines.len() >= 2 && stopped);
    assert!(hwm > 0 && hwm < 64 * 1024, "peak RSS {hwm} KiB");
}

#[test]
fn check_says_whether_the_spool_would_be_used() {
    let dir = scratch("cfg_check_spool");
    let spool = dir.join("spool");
    let conf = |spool: &std::path::Path| {
        write_conf(
            "cfg_check_spool_conf",
            &format!(
                "INTERFACE=lo\nPLATFORM_API_URL=http://127.0.0.1:9/x\nBACKLOG_DIR={}\n",
                spool.display()
            ),
        )
    };
    let spool_line = |o: &std::process::Output| {
        stdout(o)
            .lines()
            .find(|l| l.starts_with("spool"))
            .unwrap_or_default()
            .to_owned()
    };
    let o = check(&conf(&spool));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        spool_line(&o).contains("created at start, mode 0700"),
        "{}",
        stdout(&o)
    );
    assert!(!spool.exists(), "check created the spool");
    if is_root() {
        std::fs::create_dir(&spool).unwrap();
        assert!(std::process::Command::new("chown")
            .arg("nobody")
            .arg(&spool)
            .status()
            .unwrap()
            .success());
        let o = check(&conf(&spool));
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(
            spool_line(&o).contains("refused: owned by uid"),
            "{}",
            stdout(&o)
        );
        assert!(stderr(&o).contains("BACKLOG_DIR"), "{}", stderr(&o));
    } else {
        eprintln!("skipped the other-user spool: needs root to chown");
    }
}
