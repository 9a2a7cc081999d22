//! The command line from outside: help, version, exit codes.

use crate::common::*;

#[test]
fn version_on_every_subcommand() {
    for sub in [&[][..], &["run"], &["snapshot"], &["check"]] {
        let o = run(agent().args(sub).arg("--version"));
        assert!(o.status.success(), "{sub:?}: {}", stderr(&o));
        assert_eq!(
            stdout(&o).trim(),
            format!("netmon-agent {}", env!("CARGO_PKG_VERSION"))
        );
    }
}

#[test]
fn help_on_every_subcommand() {
    for sub in [&[][..], &["run"], &["snapshot"], &["check"]] {
        let o = run(agent().args(sub).arg("--help"));
        assert!(o.status.success(), "{sub:?}");
        assert!(stdout(&o).contains("Usage:"), "{sub:?}: {}", stdout(&o));
    }
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let o = run(agent().args(["run", "--no-such-flag"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--no-such-flag"));
}

#[test]
fn non_utf8_argument_is_a_usage_error() {
    use std::os::unix::ffi::OsStrExt;
    let bad = std::ffi::OsStr::from_bytes(b"/tmp/conf\xff.uci");
    let o = run(agent().arg("check").arg("--config").arg(bad));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("argument 3 is not valid UTF-8: /tmp/conf\u{fffd}.uci"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
}

#[test]
fn no_subcommand_is_a_usage_error() {
    let o = run(&mut agent());
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn docs_document_every_config_key() {
    let docs = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/configuration.md"
    ))
    .unwrap();
    let src =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/config.rs")).unwrap();
    // The KEYS table in config.rs: every all-caps string literal between `KEYS` and `];`.
    let start = src.find("pub const KEYS").expect("KEYS table");
    let block = &src[start..start + src[start..].find("];").unwrap()];
    let keys: Vec<&str> = block
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .collect();
    assert!(keys.len() > 20, "{keys:?}");
    for k in keys {
        assert!(
            docs.contains(&format!("| `{k}` |")),
            "docs/configuration.md's key table lacks {k}"
        );
    }
}
