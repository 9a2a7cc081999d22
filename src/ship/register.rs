//! Key registration: POST `{serverId, serverIp, hostname, agentVersion}` to GENERATE_KEY_URL,
//! take the key from the JSON reply (`apiKey`, `api_key` or `key`) and write `API_KEY=...` into
//! the config file in place: every other line and comment kept, atomic replace (temporary file,
//! fsync, rename, directory fsync), mode 0600, owner kept. A bad reply changes nothing.

use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use super::http::{self, HttpError};
use super::{tls, Backoff};
use crate::config::{Config, Secret};

#[derive(Debug)]
pub enum RegisterError {
    NoUrl,
    Tls(tls::TlsError),
    Http(HttpError),
    Status { status: u16, reason: String },
    Reply(String),
    NoFile,
    File { path: PathBuf, reason: String },
}

impl fmt::Display for RegisterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegisterError::NoUrl => write!(f, "GENERATE_KEY_URL is not set"),
            RegisterError::Tls(e) => write!(f, "{e}"),
            RegisterError::Http(e) => write!(f, "key request failed: {e}"),
            RegisterError::Status { status, reason } => {
                write!(
                    f,
                    "key request refused ({})",
                    http::status_text(*status, reason, None)
                )
            }
            RegisterError::Reply(m) => write!(f, "key reply unusable: {m}"),
            RegisterError::NoFile => {
                write!(f, "no config file to store the key in (use --config FILE)")
            }
            RegisterError::File { path, reason } => {
                write!(f, "{}: cannot store the key: {reason}", path.display())
            }
        }
    }
}

/// Asks GENERATE_KEY_URL for a key.
pub fn request_key(cfg: &Config) -> Result<Secret, RegisterError> {
    let url = cfg.generate_key_url.as_ref().ok_or(RegisterError::NoUrl)?;
    let tls = if url.is_tls() {
        let roots = tls::roots(cfg.ca_file.as_deref()).map_err(RegisterError::Tls)?;
        Some(tls::client_config(roots).map_err(RegisterError::Tls)?)
    } else {
        None
    };
    let hostname = fs::read_to_string(cfg.proc_root.join("sys/kernel/hostname"))
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let body = json!({
        "serverId": cfg.server_id,
        "serverIp": cfg.server_ip.map(|i| i.to_string()),
        "hostname": hostname,
        "agentVersion": crate::VERSION,
    })
    .to_string();
    let resp = http::post(
        url,
        &[],
        body.as_bytes(),
        cfg.http_timeout,
        tls.as_ref(),
        true,
    )
    .map_err(RegisterError::Http)?;
    if !(200..300).contains(&resp.status) {
        return Err(RegisterError::Status {
            status: resp.status,
            reason: resp.reason,
        });
    }
    parse_reply(&resp.body)
}

/// The key from a JSON reply: `apiKey`, `api_key` or `key`, a string that can be stored.
pub fn parse_reply(body: &[u8]) -> Result<Secret, RegisterError> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        // serde_json's message names a line and column, never the text (which may be a key).
        RegisterError::Reply(format!("not JSON ({e})"))
    })?;
    let key = ["apiKey", "api_key", "key"]
        .iter()
        .find_map(|k| v.get(*k))
        .ok_or_else(|| RegisterError::Reply("no apiKey, api_key or key in the reply".into()))?;
    let key = key
        .as_str()
        .ok_or_else(|| RegisterError::Reply("the key is not a string".into()))?;
    let ok = |c: char| c.is_ascii_alphanumeric() || "._~+/=:-".contains(c);
    if key.is_empty() || key.len() > 1024 || !key.chars().all(ok) {
        return Err(RegisterError::Reply(
            "the key is empty, too long or has characters a config line cannot hold".into(),
        ));
    }
    Ok(Secret::new(key.to_owned()))
}

/// The config text with `API_KEY=<key>`: every uncommented API_KEY line replaced (indentation
/// and `export` kept), or one appended. Everything else is byte for byte the same.
pub fn update_text(text: &str, key: &str) -> String {
    let mut out = String::with_capacity(text.len() + key.len() + 16);
    let mut found = false;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let ending = &line[body.len()..];
        let indent_len = body.len() - body.trim_start().len();
        let rest = &body[indent_len..];
        let (export, rest) = match rest.strip_prefix("export ") {
            Some(r) => ("export ", r.trim_start()),
            None => ("", rest),
        };
        let is_key = rest
            .strip_prefix("API_KEY")
            .map(|r| r.trim_start().starts_with('='))
            .unwrap_or(false);
        if is_key {
            found = true;
            out.push_str(&body[..indent_len]);
            out.push_str(export);
            out.push_str("API_KEY=");
            out.push_str(key);
            out.push_str(ending);
        } else {
            out.push_str(line);
        }
    }
    if !found {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str("API_KEY=");
        out.push_str(key);
        out.push('\n');
    }
    out
}

/// Writes the key into the config file at `path` (a regular file; symlinks are followed).
pub fn write_key(path: &Path, key: &Secret) -> Result<PathBuf, RegisterError> {
    let ferr = |p: &Path, reason: String| RegisterError::File {
        path: p.to_owned(),
        reason,
    };
    let real = fs::canonicalize(path).map_err(|e| ferr(path, e.to_string()))?;
    let meta = fs::metadata(&real).map_err(|e| ferr(&real, e.to_string()))?;
    if !meta.is_file() {
        return Err(ferr(&real, "not a regular file".into()));
    }
    let text = fs::read_to_string(&real).map_err(|e| ferr(&real, e.to_string()))?;
    let new = update_text(&text, key.expose());
    let dir = real.parent().unwrap_or(Path::new("/"));
    let name = real
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.netmon-tmp"));
    let res = (|| -> std::io::Result<()> {
        let _ = fs::remove_file(&tmp);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
        let _ = std::os::unix::fs::fchown(&f, Some(meta.uid()), Some(meta.gid()));
        f.write_all(new.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, &real)?;
        fs::File::open(dir)?.sync_all()
    })();
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(ferr(&real, e.to_string()));
    }
    Ok(real)
}

/// `netmon-agent register`: request a key and store it; returns the file written.
pub fn register(cfg: &Config) -> Result<PathBuf, RegisterError> {
    let path = cfg.source.clone().ok_or(RegisterError::NoFile)?;
    // Checked before asking, so a key is not issued for nothing.
    let meta = fs::metadata(&path).map_err(|e| RegisterError::File {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    if !meta.is_file() {
        return Err(RegisterError::File {
            path,
            reason: "not a regular file".into(),
        });
    }
    if cfg.api_key.is_some() {
        warn!("register: replacing the API_KEY already set");
    }
    let key = request_key(cfg)?;
    write_key(&path, &key)
}

/// `run` with no API_KEY but a GENERATE_KEY_URL: registers, retrying with backoff; `wait`
/// sleeps and returns false when the agent is told to stop. The key goes into `cfg` (and the
/// config file when it can be written).
pub fn at_start(cfg: &mut Config, wait: &mut dyn FnMut(Duration) -> bool) -> bool {
    let mut backoff = Backoff::new();
    let mut attempts = 0u64;
    loop {
        match request_key(cfg) {
            Ok(key) => {
                match cfg.source.as_deref().map(|p| write_key(p, &key)) {
                    Some(Ok(p)) => info!("registered: API key stored in {}", p.display()),
                    Some(Err(e)) => warn!("registered, but {e}; using the key for this run only"),
                    None => warn!(
                        "registered, but there is no config file to store the key in; using it for this run only"
                    ),
                }
                cfg.api_key = Some(key);
                return true;
            }
            Err(e) => {
                attempts += 1;
                let d = backoff.next_delay();
                if attempts == 1 {
                    warn!(
                        "no API_KEY; registration failed: {e}; retrying in {:.1} s",
                        d.as_secs_f64()
                    );
                } else {
                    debug!("registration attempt {attempts} failed: {e}");
                }
                if !wait(d) {
                    return false;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_or_appends_keeping_everything_else() {
        let t =
            "# Monitor config\nSERVER_ID=r1\n  API_KEY=\"\"  # set by register\n# API_KEY=old\n";
        assert_eq!(
            update_text(t, "k-1"),
            "# Monitor config\nSERVER_ID=r1\n  API_KEY=k-1\n# API_KEY=old\n"
        );
        assert_eq!(
            update_text("export API_KEY = x\r\n", "k"),
            "export API_KEY=k\r\n"
        );
        assert_eq!(update_text("A=1", "k"), "A=1\nAPI_KEY=k\n");
        assert_eq!(update_text("", "k"), "API_KEY=k\n");
        assert_eq!(update_text("API_KEYS=1\n", "k"), "API_KEYS=1\nAPI_KEY=k\n");
    }

    #[test]
    fn reply_forms() {
        for body in [
            &br#"{"apiKey":"abc-1"}"#[..],
            br#"{"api_key":"abc-1"}"#,
            br#"{"key":"abc-1","x":1}"#,
        ] {
            assert_eq!(parse_reply(body).unwrap().expose(), "abc-1");
        }
        for bad in [
            &b"not json"[..],
            br#"{"token":"x"}"#,
            br#"{"apiKey":5}"#,
            br#"{"apiKey":""}"#,
            br#"{"apiKey":"a b"}"#,
            br#"{"apiKey":"a\nAPI_KEY=b"}"#,
        ] {
            assert!(
                parse_reply(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
