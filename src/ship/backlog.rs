//! Store-and-forward for REST: a FIFO of serialised snapshots bounded in bytes (BACKLOG_KB).
//! Each entry keeps the exact bytes it was built with, so a retry carries the same runId, seq and
//! snapshotTime. When full, the oldest entry is dropped and counted in `lost`.
//!
//! With a spool directory (BACKLOG_DIR) every entry that has to wait is also written to disk,
//! one file per snapshot (`<16 hex digits>.snap`, written to a temporary name, fsynced, renamed,
//! directory fsynced), and removed once delivered; at start the files are read back in order.
//! A snapshot delivered at its first try never touches the disk (router flash wears).

use std::collections::VecDeque;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct Entry {
    pub seq: u64,
    pub body: Vec<u8>,
    /// The spool file number when the entry is on disk.
    file: Option<u64>,
}

pub struct Backlog {
    queue: VecDeque<Entry>,
    bytes: usize,
    cap: usize,
    lost: u64,
    spool: Option<Spool>,
}

struct Spool {
    dir: PathBuf,
    next: u64,
}

impl Backlog {
    /// A backlog of `cap_bytes`; with `dir`, the spool there is created if needed and its files
    /// are loaded (oldest first; beyond the capacity the oldest are dropped and counted lost).
    /// Problems with the directory are returned as warnings and the backlog stays in RAM.
    pub fn new(cap_bytes: usize, dir: Option<&Path>) -> (Backlog, Vec<String>) {
        let mut b = Backlog {
            queue: VecDeque::new(),
            bytes: 0,
            cap: cap_bytes,
            lost: 0,
            spool: None,
        };
        let mut warnings = Vec::new();
        if let Some(dir) = dir {
            match Spool::open(dir, &mut warnings) {
                Ok((spool, entries)) => {
                    b.spool = Some(spool);
                    for e in entries {
                        b.insert(e);
                    }
                }
                Err(e) => warnings.push(format!(
                    "BACKLOG_DIR {}: {e}; keeping the backlog in RAM only",
                    dir.display()
                )),
            }
        }
        (b, warnings)
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
    pub fn lost(&self) -> u64 {
        self.lost
    }
    /// Bytes that can still be added before the oldest entry is dropped.
    pub fn room(&self) -> usize {
        self.cap.saturating_sub(self.bytes)
    }
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
                match s.write(&e.body) {
                    Ok(n) => e.file = Some(n),
                    Err(err) => warn!(
                        "BACKLOG_DIR {}: cannot spool snapshot {seq}: {err}; it waits in RAM only",
                        s.dir.display()
                    ),
                }
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
            let _ = fs::remove_file(s.path(n));
        }
    }
}

impl Spool {
    fn open(dir: &Path, warnings: &mut Vec<String>) -> std::io::Result<(Spool, Vec<Entry>)> {
        fs::create_dir_all(dir)?;
        let mut files = Vec::new();
        for de in fs::read_dir(dir)? {
            let de = de?;
            let name = de.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(".tmp-") {
                // A write cut short by a crash: it was never renamed, so never counted.
                let _ = fs::remove_file(de.path());
                continue;
            }
            match spool_number(&name) {
                Some(n) => files.push(n),
                None if name.ends_with(".bad") => {}
                None => warnings.push(format!(
                    "BACKLOG_DIR {}: ignoring foreign file {name}",
                    dir.display()
                )),
            }
        }
        files.sort_unstable();
        let spool = Spool {
            dir: dir.to_owned(),
            next: files.last().map_or(0, |n| n + 1),
        };
        let mut entries = Vec::new();
        for n in files {
            let path = spool.path(n);
            match fs::read(&path).map_err(|e| e.to_string()).and_then(|b| {
                let seq = validate(&b)?;
                Ok((seq, b))
            }) {
                Ok((seq, body)) => entries.push(Entry {
                    seq,
                    body,
                    file: Some(n),
                }),
                Err(reason) => {
                    let bad = dir.join(format!("{:016x}.snap.bad", n));
                    let _ = fs::rename(&path, &bad);
                    warnings.push(format!(
                        "BACKLOG_DIR {}: skipping corrupt {} ({reason}); renamed to {}",
                        dir.display(),
                        path.display(),
                        bad.display()
                    ));
                }
            }
        }
        Ok((spool, entries))
    }

    fn path(&self, n: u64) -> PathBuf {
        self.dir.join(format!("{n:016x}.snap"))
    }

    fn write(&mut self, body: &[u8]) -> std::io::Result<u64> {
        let n = self.next;
        self.next += 1;
        let tmp = self.dir.join(format!(".tmp-{n:016x}"));
        let res = (|| {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(body)?;
            f.sync_all()?;
            fs::rename(&tmp, self.path(n))?;
            fs::File::open(&self.dir)?.sync_all()
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res.map(|()| n)
    }
}

fn spool_number(name: &str) -> Option<u64> {
    let hex = name.strip_suffix(".snap")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// A spool file must be one of our snapshots: a JSON object with our messageType and a seq.
fn validate(body: &[u8]) -> Result<u64, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    if v.get("messageType").and_then(|m| m.as_str()) != Some(crate::snapshot::MESSAGE_TYPE) {
        return Err("not a snapshot".into());
    }
    v.pointer("/agent/seq")
        .and_then(|s| s.as_u64())
        .ok_or_else(|| "no agent.seq".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(seq: u64, pad: usize) -> Vec<u8> {
        format!(
            r#"{{"messageType":"realtimeSnapshot","agent":{{"seq":{seq}}},"pad":"{}"}}"#,
            "x".repeat(pad)
        )
        .into_bytes()
    }

    #[test]
    fn fifo_drops_oldest_when_full() {
        let one = snap(0, 100).len();
        let (mut b, w) = Backlog::new(one * 3, None);
        assert!(w.is_empty());
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
        let (mut z, _) = Backlog::new(0, None);
        z.push(1, snap(1, 1));
        assert_eq!((z.len(), z.lost()), (0, 1));
    }

    #[test]
    fn spool_survives_restart_and_skips_bad_files() {
        let dir = std::env::temp_dir().join(format!("netmon-spool-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        {
            let (mut b, w) = Backlog::new(1 << 20, Some(&dir));
            assert!(w.is_empty(), "{w:?}");
            for s in 0..4 {
                b.push(s, snap(s, 10));
            }
            b.pop_delivered();
        }
        fs::write(dir.join("zzz.txt"), "foreign").unwrap();
        fs::write(dir.join(format!("{:016x}.snap", 2u64)), "{broken").unwrap();
        fs::write(dir.join(".tmp-0000000000000009"), "half").unwrap();
        let (mut b, w) = Backlog::new(1 << 20, Some(&dir));
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w.iter().any(|m| m.contains("foreign file zzz.txt")));
        assert!(w.iter().any(|m| m.contains("skipping corrupt")));
        let seqs: Vec<u64> = std::iter::from_fn(|| {
            let s = b.front().map(|e| e.seq);
            b.pop_delivered();
            s
        })
        .collect();
        assert_eq!(seqs, vec![1, 3]);
        // Delivered entries are gone from disk; new ones continue the numbering.
        b.push(7, snap(7, 1));
        let names: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".snap"))
            .collect();
        assert_eq!(names, vec![format!("{:016x}.snap", 4u64)]);
        let _ = fs::remove_dir_all(&dir);
    }
}
