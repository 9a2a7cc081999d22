//! Key registration: POST `{serverId, serverIp, hostname, agentVersion}` to GENERATE_KEY_URL,
//! take the key from the JSON reply (`apiKey`, `api_key` or `key`) and write `API_KEY=...` into
//! API_KEY_FILE (the key alone) or into the config file in place (every other line and comment
//! kept): through the directory's fd, never following a symlink, atomic (temporary file, fsync,
//! rename, directory fsync), an existing file's owner and mode kept, a new one 0600. A bad reply
//! changes nothing; an issued key that cannot be written is kept in memory and the write retried.

use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::client::{self, Client};
use super::dns::Resolver;
use super::http::{self, HttpError};
use super::{tls, Backoff};
use crate::config::{Config, Secret};
use crate::sys::fs::{Dir, Durability, ReadError};
use crate::sys::poll::{PollSet, Ready, Token};

/// Why registration failed.
#[derive(Debug)]
pub enum RegisterError {
    /// GENERATE_KEY_URL is not set.
    NoUrl,
    /// The TLS setup failed.
    Tls(tls::TlsError),
    /// The request failed.
    Http(HttpError),
    /// The server answered with an error status.
    Status {
        /// The status code.
        status: u16,
        /// Its reason phrase, masked.
        reason: String,
    },
    /// The reply holds no key.
    Reply(String),
    /// There is no file to store the key in.
    NoFile,
    /// The key could not be written.
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
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
            RegisterError::File { path, reason } => write!(f, "{}: {reason}", path.display()),
        }
    }
}

/// The TLS config for GENERATE_KEY_URL, when it is https.
fn tls_for(
    url: &crate::config::Url,
    cfg: &Config,
) -> Result<Option<std::sync::Arc<tls::ClientConfig>>, RegisterError> {
    if !url.is_tls() {
        return Ok(None);
    }
    let roots = tls::roots(cfg.ca_file.as_deref()).map_err(RegisterError::Tls)?;
    Ok(Some(tls::client_config(roots).map_err(RegisterError::Tls)?))
}

/// The registration request's body.
fn request_body(cfg: &Config) -> String {
    let hostname = fs::read_to_string(cfg.proc_root.join("sys/kernel/hostname"))
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    super::json::Object::new()
        .with("serverId", cfg.server_id.as_str())
        .with("serverIp", cfg.server_ip.map(|i| i.to_string()))
        .with("hostname", hostname)
        .with("agentVersion", crate::VERSION)
        .to_json()
}

/// The key from a reply, or why not.
fn key_from(resp: http::Response) -> Result<Secret, RegisterError> {
    if !(200..300).contains(&resp.status) {
        return Err(RegisterError::Status {
            status: resp.status,
            reason: resp.reason,
        });
    }
    parse_reply(&resp.body)
}

/// Asks GENERATE_KEY_URL for a key (the `register` command: waits for the answer).
pub fn request_key(cfg: &Config) -> Result<Secret, RegisterError> {
    let url = cfg.generate_key_url.as_ref().ok_or(RegisterError::NoUrl)?;
    let tls = tls_for(url, cfg)?;
    let body = request_body(cfg);
    let resp = client::post_once(
        url,
        &[],
        body.as_bytes(),
        cfg.http_timeout,
        tls.as_ref(),
        true,
    )
    .map_err(RegisterError::Http)?;
    key_from(resp)
}

/// The key from a JSON reply: `apiKey`, `api_key` or `key`, a string that can be stored.
pub fn parse_reply(body: &[u8]) -> Result<Secret, RegisterError> {
    use super::json::{pick, Member};
    let found = pick(body, [&["apiKey"], &["api_key"], &["key"]]).map_err(|e| {
        // serde_json's message names a line and column, never the text (which may be a key).
        RegisterError::Reply(format!("not JSON ({e})"))
    })?;
    let key = found
        .into_iter()
        .flatten()
        .next()
        .ok_or_else(|| RegisterError::Reply("no apiKey, api_key or key in the reply".into()))?;
    let Member::Str(key) = key else {
        return Err(RegisterError::Reply("the key is not a string".into()));
    };
    if key.is_empty() || key.len() > 1024 || !key.chars().all(key_char) {
        return Err(RegisterError::Reply(
            "the key is empty, too long or has characters a config line cannot hold".into(),
        ));
    }
    Ok(Secret::new(key))
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

/// Where an issued key is stored: API_KEY_FILE (the key alone on one line) when set, else the
/// config file (`API_KEY=...` replaced or appended).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    /// API_KEY_FILE.
    KeyFile(PathBuf),
    /// The config file.
    ConfigFile(PathBuf),
}

impl Dest {
    /// Where `cfg` says a key goes (None: no file to write).
    pub fn of(cfg: &Config) -> Option<Dest> {
        match (&cfg.api_key_file, &cfg.source) {
            (Some(p), _) => Some(Dest::KeyFile(p.clone())),
            (None, Some(p)) => Some(Dest::ConfigFile(p.clone())),
            (None, None) => None,
        }
    }
    /// The file.
    pub fn path(&self) -> &Path {
        match self {
            Dest::KeyFile(p) | Dest::ConfigFile(p) => p,
        }
    }
}

/// The largest config or key file read back (a config file is a few kB).
const MAX_FILE: u64 = 1 << 20;

/// Splits `path` into its directory and its last component (which must be a plain name).
fn split(path: &Path) -> Result<(&Path, &str), String> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("not a file name")?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    Ok((dir, name))
}

/// What is at `name` in `dir` now: None when nothing, else its text and metadata. A symlink,
/// a non-regular file or an oversized file is an error (never followed, never read).
fn read_existing(dir: &Dir, name: &str) -> Result<Option<(String, fs::Metadata)>, String> {
    let (mut f, meta) = match dir.open_regular(OsStr::new(name)) {
        Ok(found) => found,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(ReadError::Symlink) => return Err("is a symlink; not following it".into()),
        Err(ReadError::NotRegular(_)) => return Err("not a regular file".into()),
        Err(e) => return Err(e.to_string()),
    };
    if meta.len() > MAX_FILE {
        return Err(format!("larger than {MAX_FILE} bytes"));
    }
    let mut text = String::new();
    Read::by_ref(&mut f)
        .take(MAX_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    Ok(Some((text, meta)))
}

/// The text the destination holds with `key` stored in it.
fn new_text(dest: &Dest, old: Option<&str>, key: &str) -> String {
    match dest {
        Dest::KeyFile(_) => format!("{key}\n"),
        Dest::ConfigFile(_) => update_text(old.unwrap_or(""), key),
    }
}

/// Stores the key: through the directory's fd, never following a symlink at the name (a
/// symlink swapped in there is an error, and the file it points to is never touched); a new
/// file is 0600 and ours, an existing one keeps its owner and mode; atomic (temporary file,
/// fsync, rename, directory fsync). Returns the path written.
pub fn store_key(dest: &Dest, key: &Secret) -> Result<PathBuf, RegisterError> {
    let path = dest.path();
    let ferr = |reason: String| RegisterError::File {
        path: path.to_owned(),
        reason: format!("cannot store the key: {reason}"),
    };
    let (dir_path, name) = split(path).map_err(|r| ferr(r.to_owned()))?;
    let dir = Dir::open_following(dir_path).map_err(|e| ferr(format!("directory: {e}")))?;
    let existing = read_existing(&dir, name).map_err(ferr)?;
    let text = new_text(
        dest,
        existing.as_ref().map(|(t, _)| t.as_str()),
        key.expose(),
    );
    let tmp = format!(".{name}.netmon-tmp");
    // A new file is 0600 and ours; an existing one keeps its owner and mode.
    let keep_owner_and_mode = |f: &fs::File| -> std::io::Result<()> {
        let Some((_, meta)) = &existing else {
            return Ok(());
        };
        let mine = f.metadata()?;
        if (mine.uid(), mine.gid()) != (meta.uid(), meta.gid()) {
            std::os::unix::fs::fchown(f, Some(meta.uid()), Some(meta.gid())).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot keep its owner {}:{} ({e})", meta.uid(), meta.gid()),
                )
            })?;
        }
        f.set_permissions(fs::Permissions::from_mode(meta.mode() & 0o7777))
    };
    dir.replace(
        OsStr::new(name),
        OsStr::new(&tmp),
        text.as_bytes(),
        Durability::Synced,
        keep_owner_and_mode,
    )
    .map_err(|e| ferr(e.to_string()))?;
    Ok(path.to_owned())
}

/// The key held in API_KEY_FILE, when API_KEY itself is not set: read without following a
/// symlink, a regular file of at most 4 KiB, the key on its first line. A missing or empty file
/// is no key (registration will store one); anything else unusable is an error naming the file.
pub fn load_key_file(cfg: &mut Config) -> Result<(), RegisterError> {
    let Some(path) = cfg.api_key_file.clone() else {
        return Ok(());
    };
    if cfg.api_key.is_some() {
        return Ok(());
    }
    let ferr = |reason: String| RegisterError::File {
        path: path.clone(),
        reason: format!("API_KEY_FILE: {reason}"),
    };
    let (dir_path, name) = split(&path).map_err(|r| ferr(r.to_owned()))?;
    let dir = match Dir::open_following(dir_path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(ferr(format!("directory: {e}"))),
    };
    let Some((text, meta)) = read_existing(&dir, name).map_err(ferr)? else {
        return Ok(());
    };
    if meta.len() > 4096 {
        return Err(ferr("larger than 4096 bytes".into()));
    }
    let key = text.lines().next().unwrap_or("").trim();
    if key.is_empty() {
        return Ok(());
    }
    if !key.chars().all(key_char) {
        return Err(ferr(
            "the key has characters a key cannot hold (spaces or control characters)".into(),
        ));
    }
    cfg.api_key = Some(Secret::new(key.to_owned()));
    Ok(())
}

fn key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._~+/=:-".contains(c)
}

/// `netmon-agent register`: request a key and store it; returns the file written. When the key
/// was issued but cannot be stored, it is held in memory and the write retried (with `wait`
/// between attempts, which returns false to give up), saying so each time.
pub fn register(
    cfg: &Config,
    wait: &mut dyn FnMut(Duration) -> bool,
) -> Result<PathBuf, RegisterError> {
    let dest = Dest::of(cfg).ok_or(RegisterError::NoFile)?;
    // Checked before asking, so a key is not issued for nothing.
    if let Dest::ConfigFile(path) = &dest {
        let (dir_path, name) = split(path).map_err(|r| RegisterError::File {
            path: path.clone(),
            reason: r.to_owned(),
        })?;
        let found = Dir::open_following(dir_path)
            .map_err(|e| e.to_string())
            .and_then(|d| read_existing(&d, name));
        match found {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(RegisterError::File {
                    path: path.clone(),
                    reason: "does not exist".into(),
                })
            }
            Err(reason) => {
                return Err(RegisterError::File {
                    path: path.clone(),
                    reason,
                })
            }
        }
    }
    if cfg.api_key.is_some() {
        warn!("register: replacing the API_KEY already set");
    }
    let key = request_key(cfg)?;
    let mut pending = PendingKey::new(dest, key);
    loop {
        match pending.try_store() {
            Ok(p) => return Ok(p),
            Err(e) => {
                let d = pending.backoff.next_delay();
                warn!(
                    "registered, but {e}; the key is held in memory only, retrying the write in {} s (interrupting gives the key up)",
                    crate::decimal::Fixed(d.as_secs_f64().ceil(), 0)
                );
                if !wait(d) {
                    return Err(e);
                }
            }
        }
    }
}

/// An issued key not yet stored: kept, and the write retried, so a key is never thrown away.
pub struct PendingKey {
    dest: Dest,
    key: Secret,
    backoff: Backoff,
    next_try: Option<Instant>,
}

impl PendingKey {
    /// A key to store in `dest`.
    pub fn new(dest: Dest, key: Secret) -> PendingKey {
        PendingKey {
            dest,
            key,
            backoff: Backoff::new(),
            next_try: None,
        }
    }

    /// Tries to write the key; the path on success.
    pub fn try_store(&mut self) -> Result<PathBuf, RegisterError> {
        store_key(&self.dest, &self.key)
    }

    /// For the run loop: retries the write when due; true once stored.
    pub fn retry_due(&mut self, now: Instant) -> bool {
        if self.next_try.is_some_and(|t| now < t) {
            return false;
        }
        match self.try_store() {
            Ok(p) => {
                info!("API key stored in {}", p.display());
                true
            }
            Err(e) => {
                let d = self.backoff.next_delay();
                debug!("the issued key is still in memory only: {e}");
                self.next_try = Some(now + d);
                false
            }
        }
    }
}

/// `run` without API_KEY but with GENERATE_KEY_URL: registration as a state machine of the
/// agent's loop (retried with backoff until it works; the capture goes on meanwhile).
pub struct AtStart {
    client: Client,
    dns: Resolver,
    body: String,
    timeout: Duration,
    backoff: Backoff,
    attempts: u64,
    retry_at: Option<Instant>,
}

impl AtStart {
    /// Registration at start, for GENERATE_KEY_URL.
    pub fn new(cfg: &Config, now: Instant) -> Result<AtStart, RegisterError> {
        let url = cfg.generate_key_url.as_ref().ok_or(RegisterError::NoUrl)?;
        let tls = tls_for(url, cfg)?;
        Ok(AtStart {
            client: Client::new(url.clone(), tls, false),
            dns: Resolver::system(),
            body: request_body(cfg),
            timeout: cfg.http_timeout,
            backoff: Backoff::new(),
            attempts: 0,
            retry_at: Some(now),
        })
    }

    /// Registers its socket and deadline with the loop.
    pub fn register(&self, set: &mut PollSet, token: Token) {
        self.client.register(set, token);
        set.wake_at_opt(self.retry_at);
    }

    /// Moves on; Some(key) once a key came.
    pub fn advance(&mut self, ready: Ready, now: Instant) -> Option<Secret> {
        if self.retry_at.is_some_and(|t| now >= t) {
            self.retry_at = None;
            self.client.start(
                &[],
                self.body.as_bytes(),
                true,
                &mut self.dns,
                now,
                now + self.timeout,
            );
        }
        let result = self.client.advance(ready, &mut self.dns, now)?;
        match result.map_err(RegisterError::Http).and_then(key_from) {
            Ok(key) => Some(key),
            Err(e) => {
                self.attempts += 1;
                let d = self.backoff.next_delay();
                if self.attempts == 1 {
                    warn!(
                        "no API_KEY; registration failed: {e}; retrying in {} s",
                        crate::decimal::Fixed(d.as_secs_f64(), 1)
                    );
                } else {
                    debug!("registration attempt {} failed: {e}", self.attempts);
                }
                self.retry_at = Some(now + d);
                None
            }
        }
    }
}

/// Stores a key registered at start (API_KEY_FILE or the config file) and puts it into `cfg`.
/// When the write fails the key is used from memory and the returned `PendingKey` retries the
/// write (`retry_due`, once a cycle), so an issued key is never thrown away.
pub fn store_at_start(cfg: &mut Config, key: Secret) -> Option<PendingKey> {
    cfg.api_key = Some(key.clone());
    let Some(dest) = Dest::of(cfg) else {
        warn!(
            "registered, but there is no config file or API_KEY_FILE to store the key in; using it for this run only"
        );
        return None;
    };
    let mut pending = PendingKey::new(dest, key);
    match pending.try_store() {
        Ok(p) => {
            info!("registered: API key stored in {}", p.display());
            None
        }
        Err(e) => {
            let d = pending.backoff.next_delay();
            pending.next_try = Some(Instant::now() + d);
            warn!("registered, but {e}; using the key from memory and retrying the write");
            Some(pending)
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
