//! Store-and-forward for REST: a FIFO of serialised snapshots bounded in bytes (BACKLOG_KB).
//! Each entry keeps the exact bytes it was built with, so a retry carries the same runId, seq and
//! snapshotTime. When full, the oldest entry is dropped and counted in `lost`.
//!
//! With a spool directory (BACKLOG_DIR) every entry that has to wait is also written to disk,
//! one file per snapshot (`<16 hex digits>.snap`, written to a temporary name, fsynced, renamed,
//! directory fsynced), and removed once delivered; at start the files are read back in order.
//! A snapshot delivered at its first try never touches the disk (router flash wears).
//!
//! The directory is untrusted ground even when it is ours: it must be owned by the agent's
//! effective uid (it is created 0700 when missing, and tightened to 0700 when looser), it is
//! held open and locked (flock) for the agent's lifetime, so a second agent on it is refused,
//! and every entry is reached through the directory fd (`openat`, `renameat`, `unlinkat`)
//! without following symbolic links. Spool files are created 0600 with O_EXCL; a file is read
//! back only when it is a regular file of ours with one link and at most the backlog's size.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::sys::fs::{self as sysfs, Dir, Durability, ReadError};

/// One snapshot waiting for REST.
pub struct Entry {
    /// Its `agent.seq`.
    pub seq: u64,
    /// The JSON as first built.
    pub body: Vec<u8>,
    /// The spool file number when the entry is on disk.
    file: Option<u64>,
}

/// Snapshots waiting for REST, oldest first, within BACKLOG_KB (and in BACKLOG_DIR when set).
pub struct Backlog {
    queue: VecDeque<Entry>,
    bytes: usize,
    cap: usize,
    lost: u64,
    spool: Option<Spool>,
}

struct Spool {
    dir: Dir,
    path: PathBuf,
    next: u64,
    /// The errno of the last failed spool write while writes keep failing: a full or read-only
    /// file system is reported once when it starts (and when the reason changes), not per cycle.
    failing: Option<i32>,
}

/// Why BACKLOG_DIR is refused. The agent does not start on it: a spool it cannot trust or
/// share is a configuration problem.
#[derive(Debug)]
pub struct SpoolError {
    /// BACKLOG_DIR.
    pub path: PathBuf,
    /// What is wrong with it.
    pub problem: SpoolProblem,
}

/// What makes a spool directory unusable.
#[derive(Debug)]
pub enum SpoolProblem {
    /// mkdir failed.
    Create(io::Error),
    /// The path is a symbolic link (the directory itself is never reached through one).
    Symlink,
    /// The path exists and is not a directory.
    NotDirectory,
    /// open, fstat, fchmod, flock or listing failed.
    Io {
        /// The call that failed.
        what: &'static str,
        /// Its error.
        source: io::Error,
    },
    /// Owned by another user: its files could be planted or read by that user.
    NotOwned {
        /// The directory's owner.
        owner: u32,
        /// Our effective uid.
        euid: u32,
    },
    /// Another process (a second agent) holds the directory's lock.
    Locked,
}

impl fmt::Display for SpoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BACKLOG_DIR {}: ", self.path.display())?;
        match &self.problem {
            SpoolProblem::Create(e) => write!(f, "cannot create the directory: {e}"),
            SpoolProblem::Symlink => write!(f, "is a symbolic link (not followed)"),
            SpoolProblem::NotDirectory => write!(f, "is not a directory"),
            SpoolProblem::Io { what, source } => write!(f, "{what}: {source}"),
            SpoolProblem::NotOwned { owner, euid } => write!(
                f,
                "owned by uid {owner}, not by the agent's uid {euid}: refusing a spool \
                 directory another user controls"
            ),
            SpoolProblem::Locked => write!(
                f,
                "in use by another netmon-agent (its lock is held); give each agent its own \
                 directory"
            ),
        }
    }
}

impl std::error::Error for SpoolError {}

impl From<SpoolError> for crate::error::Error {
    fn from(e: SpoolError) -> Self {
        crate::error::Error::Usage(e.to_string())
    }
}

/// A file name as it may be shown in a log line: lossy UTF-8, control characters replaced,
/// at most 64 characters.
pub fn shown_name(name: &OsStr) -> String {
    let s = name.to_string_lossy();
    let mut out: String = s
        .chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().count() > 64 {
        out.push_str("...");
    }
    out
}

/// What `check` says about BACKLOG_DIR, without creating or changing anything: Ok(a
/// description) when `run` would use the directory, Err(the reason) when it would refuse it.
/// `uid` is the user the agent runs as (after RUN_AS_USER).
pub fn inspect(path: &Path, uid: u32) -> Result<String, String> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(format!("{} (created at start, mode 0700)", path.display()))
        }
        Err(e) => return Err(e.to_string()),
    };
    if meta.file_type().is_symlink() {
        return Err("is a symbolic link (not followed)".into());
    }
    if !meta.is_dir() {
        return Err("is not a directory".into());
    }
    if meta.uid() != uid {
        return Err(format!(
            "owned by uid {}, not by the agent's uid {uid}",
            meta.uid()
        ));
    }
    let dir = Dir::open(path).map_err(|e| e.to_string())?;
    let mut waiting = 0usize;
    dir.each_name(|name| {
        if spool_number(name.as_bytes()).is_some() {
            waiting += 1;
        }
    })
    .map_err(|e| e.to_string())?;
    let mode = meta.permissions().mode() & 0o7777;
    let mut text = format!("{} ({waiting} snapshot files waiting", path.display());
    if mode != 0o700 {
        text.push_str(&format!("; permissions {mode:04o}, set to 0700 at start"));
    }
    // A brief flock: held means an agent runs on it now (run itself would be refused).
    if !dir.try_lock().map_err(|e| e.to_string())? {
        text.push_str("; in use by a running netmon-agent");
    }
    text.push(')');
    Ok(text)
}

impl Backlog {
    /// A backlog of `cap_bytes` in RAM only.
    pub fn in_ram(cap_bytes: usize) -> Backlog {
        Backlog {
            queue: VecDeque::new(),
            bytes: 0,
            cap: cap_bytes,
            lost: 0,
            spool: None,
        }
    }

    /// A backlog of `cap_bytes`; with `dir`, the spool there is created if needed, locked, and
    /// its files are loaded (oldest first; what does not fit in the capacity is dropped, oldest
    /// first, and counted lost). A directory that cannot be trusted or is locked by another
    /// agent is an error; odd files in it are skipped and summed up in the returned warnings.
    pub fn new(cap_bytes: usize, dir: Option<&Path>) -> Result<(Backlog, Vec<String>), SpoolError> {
        let mut b = Backlog::in_ram(cap_bytes);
        let mut warnings = Vec::new();
        if let Some(path) = dir {
            let (spool, entries, lost) = Spool::open(path, cap_bytes, &mut warnings)?;
            b.spool = Some(spool);
            b.lost = lost;
            for e in entries {
                b.insert(e);
            }
        }
        Ok((b, warnings))
    }

    /// Snapshots waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }
    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
    /// Snapshots dropped because the backlog was full, since the start.
    pub fn lost(&self) -> u64 {
        self.lost
    }
    /// Bytes that can still be added before the oldest entry is dropped.
    pub fn room(&self) -> usize {
        self.cap.saturating_sub(self.bytes)
    }
    /// The oldest waiting snapshot.
    pub fn front(&self) -> Option<&Entry> {
        self.queue.front()
    }

    /// Adds a snapshot that has to wait, spooling it when a spool is set.
    pub fn push(&mut self, seq: u64, body: Vec<u8>) {
        let mut e = Entry {
            seq,
            body,
            file: None,
        };
        if e.body.len() <= self.cap {
            if let Some(s) = self.spool.as_mut() {
                e.file = s.write_reporting(seq, &e.body).0;
            }
        }
        self.insert(e);
    }

    fn insert(&mut self, e: Entry) {
        if e.body.len() > self.cap {
            self.lost += 1;
            self.forget(e);
            return;
        }
        while self.bytes + e.body.len() > self.cap {
            let Some(old) = self.queue.pop_front() else {
                break;
            };
            self.bytes -= old.body.len();
            self.lost += 1;
            self.forget(old);
        }
        self.bytes += e.body.len();
        self.queue.push_back(e);
    }

    /// The oldest entry was delivered: drop it (and its spool file).
    pub fn pop_delivered(&mut self) {
        if let Some(e) = self.queue.pop_front() {
            self.bytes -= e.body.len();
            self.forget(e);
        }
    }

    fn forget(&mut self, e: Entry) {
        if let (Some(s), Some(n)) = (self.spool.as_ref(), e.file) {
            let _ = s.dir.remove(&spool_name(n));
        }
    }
}

/// `<16 hex digits>.snap`.
fn spool_name(n: u64) -> OsString {
    OsString::from(format!("{n:016x}.snap"))
}

fn tmp_name(n: u64) -> OsString {
    OsString::from(format!(".tmp-{n:016x}"))
}

/// What the start-up listing found that it did not load, summed up in one warning per kind.
#[derive(Default)]
struct Odd {
    count: usize,
    first: Option<String>,
}

impl Odd {
    fn add(&mut self, what: impl FnOnce() -> String) {
        self.count += 1;
        if self.first.is_none() {
            self.first = Some(what());
        }
    }
}

impl Spool {
    fn open(
        path: &Path,
        cap: usize,
        warnings: &mut Vec<String>,
    ) -> Result<(Spool, Vec<Entry>, u64), SpoolError> {
        let fail = |problem| SpoolError {
            path: path.to_owned(),
            problem,
        };
        let io = |what| {
            move |source| SpoolError {
                path: path.to_owned(),
                problem: SpoolProblem::Io { what, source },
            }
        };
        // Parents as `mkdir -p` makes them; the spool itself 0700 (mkdir never follows a link
        // in its last component: a planted link makes it fail with EEXIST, and the open below
        // refuses the link).
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| fail(SpoolProblem::Create(e)))?;
        }
        match std::fs::DirBuilder::new().mode(0o700).create(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(fail(SpoolProblem::Create(e))),
        }
        let dir = Dir::open(path).map_err(|e| match e.raw_os_error() {
            // O_DIRECTORY|O_NOFOLLOW on a link gives ENOTDIR (ELOOP without O_DIRECTORY);
            // lstat only words the message.
            Some(libc::ELOOP) => fail(SpoolProblem::Symlink),
            Some(libc::ENOTDIR)
                if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) =>
            {
                fail(SpoolProblem::Symlink)
            }
            Some(libc::ENOTDIR) => fail(SpoolProblem::NotDirectory),
            _ => io("open")(e),
        })?;
        let meta = dir.metadata().map_err(io("fstat"))?;
        let euid = sysfs::euid();
        if meta.uid() != euid {
            return Err(fail(SpoolProblem::NotOwned {
                owner: meta.uid(),
                euid,
            }));
        }
        if !dir.try_lock().map_err(io("flock"))? {
            return Err(fail(SpoolProblem::Locked));
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode != 0o700 {
            dir.set_mode(0o700).map_err(io("chmod 0700"))?;
            warnings.push(format!(
                "BACKLOG_DIR {}: permissions were {mode:04o}, set to 0700",
                path.display()
            ));
        }

        let mut numbers = Vec::new();
        let mut foreign = Odd::default();
        let mut stale = Vec::new();
        dir.each_name(|name| {
            let bytes = name.as_bytes();
            if bytes.starts_with(b".tmp-") {
                stale.push(name.to_owned());
            } else if let Some(n) = spool_number(bytes) {
                numbers.push(n);
            } else if !bytes.ends_with(b".snap.bad") {
                foreign.add(|| shown_name(name));
            }
        })
        .map_err(io("listing"))?;
        // Writes cut short by a crash: never renamed, so never counted.
        for name in stale {
            let _ = dir.remove(&name);
        }
        if let Some(first) = foreign.first {
            warnings.push(format!(
                "BACKLOG_DIR {}: ignoring {} foreign file{} (first: {first})",
                path.display(),
                foreign.count,
                if foreign.count == 1 { "" } else { "s" }
            ));
        }
        numbers.sort_unstable();
        let spool = Spool {
            next: numbers.last().map_or(0, |n| n.saturating_add(1)),
            dir,
            path: path.to_owned(),
            failing: None,
        };

        // Newest first: keep the files that fit in the backlog; older ones are lost, as they
        // would be had the agent kept running. Only sizes are looked at here (fstat).
        let mut unusable = Odd::default();
        let mut keep = Vec::new();
        let mut total = 0usize;
        let mut lost = 0u64;
        for &n in numbers.iter().rev() {
            let name = spool_name(n);
            let why = match spool.dir.open_regular(&name) {
                Ok((file, m)) if m.uid() == euid && m.nlink() == 1 && m.len() <= cap as u64 => {
                    let size = m.len() as usize;
                    if total + size > cap {
                        lost += 1;
                        let _ = spool.dir.remove(&name);
                    } else {
                        total += size;
                        keep.push((n, file, size));
                    }
                    continue;
                }
                Ok((_, m)) if m.uid() != euid => format!("owned by uid {}", m.uid()),
                Ok((_, m)) if m.nlink() != 1 => format!("{} hard links", m.nlink()),
                Ok((_, m)) => ReadError::TooLarge {
                    size: m.len(),
                    limit: cap as u64,
                }
                .to_string(),
                Err(e) => e.to_string(),
            };
            unusable.add(|| format!("{}: {why}", shown_name(&name)));
        }
        if let Some(first) = unusable.first {
            warnings.push(format!(
                "BACKLOG_DIR {}: skipping {} spool file{} that {} not a regular file of this \
                 user of at most {cap} bytes (first: {first})",
                path.display(),
                unusable.count,
                if unusable.count == 1 { "" } else { "s" },
                if unusable.count == 1 { "is" } else { "are" },
            ));
        }
        let mut entries = Vec::with_capacity(keep.len());
        let mut corrupt = Odd::default();
        for (n, mut file, size) in keep.into_iter().rev() {
            let mut body = Vec::with_capacity(size);
            let read = sysfs::read_at_most(&mut file, cap, &mut body)
                .map_err(|e| e.to_string())
                .and_then(|more| match more {
                    true => Err("grew past the backlog size while read".into()),
                    false => validate(&body),
                });
            match read {
                Ok(seq) => {
                    if file.metadata().map_or(0, |m| m.mode() & 0o077) != 0 {
                        let _ = file.set_permissions(std::fs::Permissions::from_mode(0o600));
                    }
                    entries.push(Entry {
                        seq,
                        body,
                        file: Some(n),
                    })
                }
                Err(reason) => {
                    let name = spool_name(n);
                    let mut bad = name.clone();
                    bad.push(".bad");
                    let _ = spool.dir.rename(&name, &bad);
                    corrupt.add(|| format!("{} ({reason})", shown_name(&name)));
                }
            }
        }
        if let Some(first) = corrupt.first {
            warnings.push(format!(
                "BACKLOG_DIR {}: skipping {} corrupt spool file{}, renamed to *.snap.bad \
                 (first: {first})",
                path.display(),
                corrupt.count,
                if corrupt.count == 1 { "" } else { "s" },
            ));
        }
        Ok((spool, entries, lost))
    }

    /// Writes one snapshot; logs a failure only when it starts or its reason changes, and the
    /// recovery once. Returns the file number when the snapshot is on disk, and what was
    /// reported.
    fn write_reporting(&mut self, seq: u64, body: &[u8]) -> (Option<u64>, Option<Report>) {
        let res = self.write(body);
        let report = self.note(
            res.as_ref()
                .map(|_| ())
                .map_err(|e| e.raw_os_error().unwrap_or(0)),
        );
        match report {
            Some(Report::Failing) => warn!(
                "BACKLOG_DIR {}: cannot spool snapshot {seq}: {}; waiting snapshots stay in \
                 RAM only until spooling works again",
                self.path.display(),
                res.as_ref().err().map_or(String::new(), |e| e.to_string())
            ),
            Some(Report::Recovered) => {
                info!("BACKLOG_DIR {}: spooling works again", self.path.display())
            }
            None => {}
        }
        (res.ok(), report)
    }

    /// The spool's health after a write: what to report, if anything (a change of state).
    fn note(&mut self, res: Result<(), i32>) -> Option<Report> {
        match res {
            Ok(()) => self.failing.take().map(|_| Report::Recovered),
            Err(errno) if self.failing == Some(errno) => None,
            Err(errno) => {
                self.failing = Some(errno);
                Some(Report::Failing)
            }
        }
    }

    fn write(&mut self, body: &[u8]) -> io::Result<u64> {
        let n = self.next;
        self.next = self.next.saturating_add(1);
        // A temporary left over is removed at start, and only we can write here: a leftover
        // found now is removed and the write tried once more (inside `replace`).
        self.dir
            .replace(
                &spool_name(n),
                &tmp_name(n),
                body,
                Durability::Synced,
                |_| Ok(()),
            )
            .map(|()| n)
    }
}

/// A change in the spool's health worth one log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Report {
    Failing,
    Recovered,
}

fn spool_number(name: &[u8]) -> Option<u64> {
    let hex = name.strip_suffix(b".snap")?;
    if hex.len() != 16 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
}

/// A spool file must be one of our snapshots: a JSON object with our messageType and a seq.
fn validate(body: &[u8]) -> Result<u64, String> {
    use super::json::{pick, Member};
    let [kind, seq] =
        pick(body, [&["messageType"], &["agent", "seq"]]).map_err(|e| format!("not JSON: {e}"))?;
    match kind {
        Some(Member::Str(k)) if k == crate::snapshot::MESSAGE_TYPE => {}
        _ => return Err("not a snapshot".into()),
    }
    match seq {
        Some(Member::U64(n)) => Ok(n),
        _ => Err("no agent.seq".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    fn snap(seq: u64, pad: usize) -> Vec<u8> {
        format!(
            r#"{{"messageType":"realtimeSnapshot","agent":{{"seq":{seq}}},"pad":"{}"}}"#,
            "x".repeat(pad)
        )
        .into_bytes()
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("netmon-spool-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn drain(b: &mut Backlog) -> Vec<u64> {
        std::iter::from_fn(|| {
            let s = b.front().map(|e| e.seq);
            b.pop_delivered();
            s
        })
        .collect()
    }

    fn mode(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn fifo_drops_oldest_when_full() {
        let one = snap(0, 100).len();
        let mut b = Backlog::in_ram(one * 3);
        for s in 0..5 {
            b.push(s, snap(s, 100));
        }
        assert_eq!((b.len(), b.lost()), (3, 2));
        assert_eq!(b.front().unwrap().seq, 2);
        b.pop_delivered();
        assert_eq!(b.front().unwrap().seq, 3);
        // Larger than the whole backlog: lost at once, nothing else evicted.
        b.push(9, snap(9, one * 4));
        assert_eq!((b.len(), b.lost()), (2, 3));
        let mut z = Backlog::in_ram(0);
        z.push(1, snap(1, 1));
        assert_eq!((z.len(), z.lost()), (0, 1));
    }

    #[test]
    fn spool_survives_restart_and_skips_bad_files() {
        let dir = scratch("restart");
        {
            let (mut b, w) = Backlog::new(1 << 20, Some(&dir)).unwrap();
            assert!(w.is_empty(), "{w:?}");
            for s in 0..4 {
                b.push(s, snap(s, 10));
            }
            b.pop_delivered();
        }
        // Created 0700, files 0600.
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(spool_name(1))), 0o600);
        fs::write(dir.join("zzz.txt"), "foreign").unwrap();
        fs::write(dir.join(spool_name(2)), "{broken").unwrap();
        fs::write(dir.join(".tmp-0000000000000009"), "half").unwrap();
        let (mut b, w) = Backlog::new(1 << 20, Some(&dir)).unwrap();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("ignoring 1 foreign file (first: zzz.txt)"),
            "{w:?}"
        );
        assert!(w[1].contains("skipping 1 corrupt spool file"), "{w:?}");
        assert_eq!(drain(&mut b), vec![1, 3]);
        // Delivered entries are gone from disk; new ones continue the numbering.
        b.push(7, snap(7, 1));
        let names: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".snap"))
            .collect();
        assert_eq!(names, vec![format!("{:016x}.snap", 4u64)]);
        drop(b);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn start_up_keeps_only_what_fits_newest_first() {
        let dir = scratch("fit");
        let one = snap(0, 50).len();
        {
            let (mut b, _) = Backlog::new(one * 10, Some(&dir)).unwrap();
            for s in 0..6 {
                b.push(s, snap(s, 50));
            }
        }
        // Restarted with room for 4: the two oldest are lost (and removed), never read.
        let (mut b, w) = Backlog::new(one * 4, Some(&dir)).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(b.lost(), 2);
        assert!(!dir.join(spool_name(0)).exists());
        assert_eq!(drain(&mut b), vec![2, 3, 4, 5]);
        drop(b);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn hostile_spool_files_are_never_read_and_never_block() {
        let dir = scratch("hostile");
        let outside = scratch("hostile-outside");
        fs::create_dir_all(&outside).unwrap();
        {
            let (mut b, _) = Backlog::new(1 << 20, Some(&dir)).unwrap();
            b.push(0, snap(0, 10));
        }
        // A valid snapshot outside, linked in under a spool name: never loaded (it would be
        // POSTed with the API key).
        let victim = outside.join("secret.json");
        fs::write(&victim, snap(99, 10)).unwrap();
        symlink(&victim, dir.join(spool_name(1))).unwrap();
        // A link to /dev/zero, a FIFO with no writer, a 300 MB sparse file, a hard link.
        symlink("/dev/zero", dir.join(spool_name(2))).unwrap();
        let fifo = std::process::Command::new("mkfifo")
            .arg(dir.join(spool_name(3)))
            .status()
            .unwrap();
        assert!(fifo.success());
        fs::File::create(dir.join(spool_name(4)))
            .unwrap()
            .set_len(300 << 20)
            .unwrap();
        fs::write(outside.join("linked"), snap(98, 10)).unwrap();
        fs::hard_link(outside.join("linked"), dir.join(spool_name(5))).unwrap();
        // 1,000 foreign files: one warning with the count.
        for i in 0..1000 {
            fs::write(dir.join(format!("foreign-{i:04}")), "x").unwrap();
        }
        let started = std::time::Instant::now();
        let (mut b, w) = Backlog::new(1 << 20, Some(&dir)).unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("ignoring 1000 foreign files (first: foreign-"),
            "{w:?}"
        );
        assert!(w[1].contains("skipping 5 spool files"), "{w:?}");
        assert!(
            w[1].contains("(first: 0000000000000005.snap: 2 hard links)"),
            "{w:?}"
        );
        assert_eq!(drain(&mut b), vec![0]);
        // New files never land on the odd names.
        b.push(1, snap(1, 1));
        assert!(dir.join(spool_name(6)).exists());
        assert_eq!(fs::read(&victim).unwrap(), snap(99, 10));
        drop(b);
        let _ = fs::remove_dir_all(&dir);
        let _ = fs::remove_dir_all(&outside);
    }

    #[test]
    fn inspect_says_what_run_would_do_and_changes_nothing() {
        let base = scratch("inspect");
        fs::create_dir_all(&base).unwrap();
        fs::set_permissions(&base, fs::Permissions::from_mode(0o755)).unwrap();
        let me = sysfs::euid();
        let missing = base.join("missing");
        assert!(inspect(&missing, me).unwrap().contains("created at start"));
        assert!(!missing.exists());
        fs::write(base.join(spool_name(1)), snap(1, 1)).unwrap();
        let s = inspect(&base, me).unwrap();
        assert!(s.contains("1 snapshot files waiting"), "{s}");
        assert!(s.contains("permissions 0755, set to 0700 at start"), "{s}");
        assert_eq!(mode(&base), 0o755);
        let e = inspect(&base, me.wrapping_add(1)).unwrap_err();
        assert!(e.contains("not by the agent's uid"), "{e}");
        let (b, _) = Backlog::new(1024, Some(&base)).unwrap();
        assert!(inspect(&base, me)
            .unwrap()
            .contains("in use by a running netmon-agent"));
        drop(b);
        let link =
            std::env::temp_dir().join(format!("netmon-spool-inspect-l-{}", std::process::id()));
        let _ = fs::remove_file(&link);
        symlink(&base, &link).unwrap();
        assert!(inspect(&link, me).unwrap_err().contains("symbolic link"));
        let _ = fs::remove_file(&link);
        let _ = fs::remove_dir_all(&base);
    }

    #[test]
    fn the_highest_possible_number_does_not_overflow() {
        let dir = scratch("max");
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        fs::write(dir.join(spool_name(u64::MAX)), snap(1, 1)).unwrap();
        let (mut b, w) = Backlog::new(1 << 20, Some(&dir)).unwrap();
        assert!(w.is_empty(), "{w:?}");
        b.push(2, snap(2, 1));
        b.push(3, snap(3, 1));
        assert_eq!(b.len(), 3);
        drop(b);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_planted_temp_link_is_not_followed() {
        let dir = scratch("tmp-link");
        let outside = scratch("tmp-link-victim");
        fs::create_dir_all(&outside).unwrap();
        let victim = outside.join("victim");
        fs::write(&victim, "root's file").unwrap();
        let (mut b, _) = Backlog::new(1 << 20, Some(&dir)).unwrap();
        // The next temp name, planted after start (as a process of ours could).
        symlink(&victim, dir.join(tmp_name(0))).unwrap();
        b.push(0, snap(0, 10));
        assert_eq!(fs::read_to_string(&victim).unwrap(), "root's file");
        assert_eq!(fs::read(dir.join(spool_name(0))).unwrap(), snap(0, 10));
        assert!(!dir.join(tmp_name(0)).exists());
        drop(b);
        let _ = fs::remove_dir_all(&dir);
        let _ = fs::remove_dir_all(&outside);
    }

    #[test]
    fn directory_must_be_ours_and_not_shared() {
        let base = scratch("refuse");
        fs::create_dir_all(&base).unwrap();
        let problem = |p: &Path| Backlog::new(1024, Some(p)).err().map(|e| e.problem);
        // A link to a directory, a plain file.
        fs::create_dir(base.join("real")).unwrap();
        symlink(base.join("real"), base.join("link")).unwrap();
        assert!(matches!(
            problem(&base.join("link")),
            Some(SpoolProblem::Symlink)
        ));
        fs::write(base.join("file"), "").unwrap();
        assert!(matches!(
            problem(&base.join("file")),
            Some(SpoolProblem::NotDirectory)
        ));
        // Ours but too open: tightened (and said so).
        fs::set_permissions(base.join("real"), fs::Permissions::from_mode(0o777)).unwrap();
        let (b, w) = Backlog::new(1024, Some(&base.join("real"))).unwrap();
        assert!(w[0].contains("permissions were 0777, set to 0700"), "{w:?}");
        assert_eq!(mode(&base.join("real")), 0o700);
        // A second backlog on the same directory: refused while the first holds it.
        let e = Backlog::new(1024, Some(&base.join("real"))).err().unwrap();
        assert!(matches!(e.problem, SpoolProblem::Locked));
        assert!(
            e.to_string().contains("in use by another netmon-agent"),
            "{e}"
        );
        drop(b);
        assert!(Backlog::new(1024, Some(&base.join("real"))).is_ok());
        // Another user's directory (needs root to make one).
        if sysfs::euid() == 0 {
            let theirs = base.join("theirs");
            fs::create_dir(&theirs).unwrap();
            let nobody = crate::sys::privdrop::lookup_user("nobody").unwrap();
            std::os::unix::fs::chown(&theirs, Some(nobody.uid), Some(nobody.gid)).unwrap();
            let e = Backlog::new(1024, Some(&theirs)).err().unwrap();
            assert!(
                matches!(e.problem, SpoolProblem::NotOwned { owner, euid: 0 } if owner == nobody.uid),
                "{e}"
            );
            assert!(e.to_string().contains("not by the agent's uid 0"), "{e}");
        } else {
            println!("skipped the other-user case: needs root to chown");
        }
        let _ = fs::remove_dir_all(&base);
    }

    #[test]
    fn a_failing_spool_reports_once_per_change() {
        let dir = scratch("failing");
        let (mut b, _) = Backlog::new(1 << 20, Some(&dir)).unwrap();
        let spool = b.spool.as_mut().unwrap();
        assert_eq!(spool.write_reporting(0, &snap(0, 1)), (Some(0), None));
        // The directory goes away under the agent: every write fails with ENOENT.
        fs::remove_dir_all(&dir).unwrap();
        let reports: Vec<Option<Report>> = (1..20)
            .map(|s| spool.write_reporting(s, &snap(s, 1)).1)
            .collect();
        assert_eq!(reports[0], Some(Report::Failing));
        assert!(reports[1..].iter().all(Option::is_none), "{reports:?}");
        // Another reason is a change worth saying; so is the recovery.
        assert_eq!(spool.note(Err(libc::ENOSPC)), Some(Report::Failing));
        assert_eq!(spool.note(Err(libc::ENOSPC)), None);
        assert_eq!(spool.note(Ok(())), Some(Report::Recovered));
        assert_eq!(spool.note(Ok(())), None);
        // The backlog still holds everything in RAM.
        for s in 1..4 {
            b.push(s, snap(s, 1));
        }
        assert_eq!(b.len(), 3);
    }
}
