//! Helpers shared by the integration tests.

use std::path::PathBuf;
use std::process::{Command, Output};

/// The binary under test (built by cargo for this test run).
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_netmon-agent"))
}

/// A command for the agent with a clean environment: no NETMON_* leaks in from the caller and
/// no /etc/netmon-agent.conf is read unless a test asks for one.
pub fn agent() -> Command {
    let mut c = Command::new(bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("NETMON_") {
            c.env_remove(k);
        }
    }
    c.env("NETMON_CONFIG", "/dev/null");
    // Tests send nothing to networks that are not theirs: no ARP scan and no promiscuous mode on
    // the machine's real interfaces. Tests that scan set SCAN_INTERVAL with --set (a flag beats
    // the environment) inside their own namespaces.
    c.env("NETMON_SCAN_INTERVAL", "0");
    c.env("NETMON_PROMISC", "0");
    c
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("spawn netmon-agent")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A fresh scratch directory under the target dir, removed and re-created.
pub fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The shared directory beside the project (captures, schema, seed), if present.
pub fn shared() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared");
    p.is_dir().then_some(p)
}

/// True when running as root (tests that need it skip with a printed reason otherwise).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// True when CI=true: a test whose reference tool is missing must fail there, not skip.
pub fn in_ci() -> bool {
    std::env::var("CI").map(|v| v == "true").unwrap_or(false)
}

/// The project's schema and, when ../shared is there, the shared contract.
pub fn schemas() -> Vec<PathBuf> {
    let mut v = vec![PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schema/snapshot.schema.json")];
    if let Some(s) = shared() {
        v.push(s.join("spec/snapshot.schema.json"));
    }
    v
}

/// Validates snapshot JSON (one document or JSON lines) against both schemas with python3
/// jsonschema, an implementation independent of ours. Panics with the validator's message on an
/// invalid document. Returns false (after printing why) when the validator is unavailable
/// outside CI; in CI a missing validator is a failure.
pub fn validate_snapshots(json: &str) -> bool {
    use std::io::Write;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/validate_snapshot.py");
    let mut child = match Command::new("python3")
        .arg(&script)
        .args(schemas())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            assert!(
                !in_ci(),
                "python3 is needed in CI to validate snapshots: {e}"
            );
            eprintln!("SKIP schema validation: python3 not available ({e})");
            return false;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(json.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    match out.status.code() {
        Some(0) => true,
        Some(3) => {
            assert!(!in_ci(), "python3 jsonschema is needed in CI");
            eprintln!("SKIP schema validation: python3 jsonschema is not installed");
            false
        }
        _ => panic!(
            "snapshot does not validate: {}\n{}",
            stderr(&out),
            &json[..json.len().min(2000)]
        ),
    }
}
