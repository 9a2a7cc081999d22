//! Files the agent does not trust: opened without blocking, checked with fstat(2) after the open
//! (so a rename between check and use cannot swap the file), read up to a bound; and a
//! directory held by its fd, whose entries are created, renamed and removed relative to that fd
//! (`openat` and friends) without following symbolic links.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::fmt;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use super::syscall;

/// The effective uid: the owner of what the process creates.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// What a path is when it is not a regular file, for messages.
pub fn kind_of(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

/// Why a file was not read.
#[derive(Debug)]
pub enum ReadError {
    /// open or read failed (ENOENT, EACCES, ...).
    Io(io::Error),
    /// The last path component is a symbolic link and links are not followed here.
    Symlink,
    /// Not a regular file (`what` says what it is: "a FIFO", "a character device", ...).
    NotRegular(&'static str),
    /// Larger than the bound (`size` is what fstat said, or `limit + 1` for a file that grew).
    TooLarge {
        /// The size found.
        size: u64,
        /// The bound.
        limit: u64,
    },
}

impl ReadError {
    /// True when the file does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::Io(e) if e.kind() == io::ErrorKind::NotFound)
    }

    /// As an io::Error (for callers whose error types carry one), the message kept.
    pub fn into_io(self) -> io::Error {
        match self {
            ReadError::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
        }
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::Symlink => write!(f, "is a symbolic link (not followed)"),
            ReadError::NotRegular(what) => write!(f, "is {what}, not a regular file"),
            ReadError::TooLarge { size, limit } => {
                write!(
                    f,
                    "is {size} bytes, more than the {limit} bytes read at most"
                )
            }
        }
    }
}

impl std::error::Error for ReadError {}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        if e.raw_os_error() == Some(libc::ELOOP) {
            ReadError::Symlink
        } else {
            ReadError::Io(e)
        }
    }
}

/// Flags of every open for reading: never block (a FIFO opens at once and is then refused by
/// the fstat check), never become the controlling terminal, never leak into a child.
const READ_FLAGS: i32 = libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;

/// Opens `path` for reading and returns it only when it is a regular file. With `follow`
/// false a symbolic link as the last component is refused (O_NOFOLLOW).
pub fn open_regular(path: &Path, follow: bool) -> Result<(File, Metadata), ReadError> {
    let flags = READ_FLAGS | if follow { 0 } else { libc::O_NOFOLLOW };
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)?;
    regular(file)
}

fn regular(file: File) -> Result<(File, Metadata), ReadError> {
    // fstat of the open file: what we read is what we checked.
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(ReadError::NotRegular(kind_of(&meta)));
    }
    Ok((file, meta))
}

/// Reads at most `limit` bytes of `file` into `out` (cleared first). Returns true when the
/// file held more than that (the rest is not read).
pub fn read_at_most(file: &mut File, limit: usize, out: &mut Vec<u8>) -> io::Result<bool> {
    out.clear();
    let want = limit as u64 + 1;
    file.take(want).read_to_end(out)?;
    if out.len() > limit {
        out.truncate(limit);
        return Ok(true);
    }
    Ok(false)
}

/// A whole regular file of at most `limit` bytes, or why not. The size is checked with fstat
/// before reading and again while reading (the file may grow in between).
pub fn read_regular(
    path: &Path,
    follow: bool,
    limit: usize,
    out: &mut Vec<u8>,
) -> Result<(), ReadError> {
    let (mut file, meta) = open_regular(path, follow)?;
    let too_large = |size| ReadError::TooLarge {
        size,
        limit: limit as u64,
    };
    if meta.len() > limit as u64 {
        return Err(too_large(meta.len()));
    }
    if read_at_most(&mut file, limit, out)? {
        return Err(too_large(limit as u64 + 1));
    }
    Ok(())
}

/// Whether `meta` (from stat) is the null device, 1:3, as `makedev` encodes it.
pub fn is_null_device(meta: &Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    meta.file_type().is_char_device() && meta.rdev() == 0x103
}

/// A whole regular file of at most `limit` bytes as text (invalid UTF-8 replaced); symbolic
/// links followed.
pub fn read_text(path: &Path, limit: usize) -> Result<String, ReadError> {
    let mut buf = Vec::new();
    read_regular(path, true, limit, &mut buf)?;
    Ok(match String::from_utf8(buf) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// `name` as a C string when it is a single path component: not empty, not "." or "..", no '/'
/// and no NUL. An entry operation never reaches outside its directory.
fn entry_name(name: &OsStr) -> io::Result<CString> {
    let b = name.as_bytes();
    if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a plain file name",
        ));
    }
    CString::new(b).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in file name"))
}

/// Runs `f` again while it fails with EINTR.
fn retry<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// Whether [`Dir::replace`] flushes what it writes to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync of the file before the rename and of the directory after it: the new content
    /// survives a power cut (flash-backed files).
    Synced,
    /// No fsync: a file on tmpfs, rewritten often.
    Unsynced,
}

/// A directory held open: every operation on its entries goes through the fd, so renaming or
/// replacing the directory's path afterwards changes nothing; an entry is a single name (never
/// a path), and no entry operation follows a symbolic link.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
}

impl Dir {
    /// Opens `path`, which must be a directory and not a symbolic link (the directories the
    /// agent owns, whose name nobody else should redirect).
    pub fn open(path: &Path) -> io::Result<Dir> {
        Dir::open_with(path, libc::O_NOFOLLOW)
    }

    /// Opens the directory at `path`, following a symbolic link to it (a directory the
    /// administrator names, such as the config file's: where it leads is their choice; the
    /// entries inside it are still never followed).
    pub fn open_following(path: &Path) -> io::Result<Dir> {
        Dir::open_with(path, 0)
    }

    fn open_with(path: &Path, extra: i32) -> io::Result<Dir> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC | extra)
            .open(path)?;
        Ok(Dir { fd: file.into() })
    }

    /// fstat of the directory itself.
    pub fn metadata(&self) -> io::Result<Metadata> {
        self.as_file(|f| f.metadata())
    }

    /// fchmod of the directory itself.
    pub fn set_mode(&self, mode: u32) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        self.as_file(|f| f.set_permissions(std::fs::Permissions::from_mode(mode)))
    }

    /// fsync of the directory (makes renames and removals in it durable).
    pub fn sync(&self) -> io::Result<()> {
        // SAFETY: fsync takes only an fd, open for the lifetime of `self`.
        retry(|| syscall!(fsync(self.fd.as_raw_fd()))).map(drop)
    }

    /// Runs `op` on the fd seen as a `File` without giving up ownership.
    fn as_file<T>(&self, op: impl FnOnce(&File) -> io::Result<T>) -> io::Result<T> {
        let dup = self.fd.try_clone()?;
        op(&File::from(dup))
    }

    /// An exclusive flock(2) on the directory, held until this `Dir` (and every fd duplicated
    /// from it) is closed. Ok(false) when another open of the directory holds it.
    pub fn try_lock(&self) -> io::Result<bool> {
        // SAFETY: flock takes only an fd, open for the lifetime of `self`, and flags.
        match retry(|| syscall!(flock(self.fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB))) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn openat(&self, name: &OsStr, flags: i32, mode: libc::mode_t) -> io::Result<File> {
        let c = entry_name(name)?;
        let flags = flags | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: the directory fd is open for the lifetime of `self`, `c` is a NUL-terminated
        // string that outlives the call; openat takes the mode as a variadic unsigned int.
        let fd = retry(|| {
            syscall!(openat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                flags,
                mode as libc::c_uint
            ))
        })?;
        // SAFETY: openat returned a new descriptor that nothing else owns.
        Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Opens the entry `name` for reading without following a link and without blocking, and
    /// returns it only when it is a regular file.
    pub fn open_regular(&self, name: &OsStr) -> Result<(File, Metadata), ReadError> {
        let file = self.openat(name, libc::O_RDONLY | READ_FLAGS, 0)?;
        regular(file)
    }

    /// Creates the entry `name` for writing with permissions `mode` (before the umask). Fails
    /// when anything, a symbolic link included, already has that name (O_CREAT|O_EXCL never
    /// follows a link).
    pub fn create_new(&self, name: &OsStr, mode: u32) -> io::Result<File> {
        self.openat(
            name,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
            mode as libc::mode_t,
        )
    }

    /// renameat within the directory (a link at `to` is replaced, not followed).
    pub fn rename(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        let (a, b) = (entry_name(from)?, entry_name(to)?);
        let fd = self.fd.as_raw_fd();
        // SAFETY: both names are NUL-terminated strings that outlive the call; the fd is open.
        retry(|| syscall!(renameat(fd, a.as_ptr(), fd, b.as_ptr()))).map(drop)
    }

    /// unlinkat of a non-directory entry (a link is removed, not followed).
    pub fn remove(&self, name: &OsStr) -> io::Result<()> {
        let c = entry_name(name)?;
        // SAFETY: `c` is a NUL-terminated string that outlives the call; the fd is open.
        retry(|| syscall!(unlinkat(self.fd.as_raw_fd(), c.as_ptr(), 0))).map(drop)
    }

    /// Replaces the entry `name` with a file holding `data`, atomically: a reader sees the old
    /// file or the new one, never part of one. The data goes first to the entry `tmp`, created
    /// 0600 with O_EXCL (an entry already there, left by a crash or planted, is removed and the
    /// create tried once more: unlinkat removes the name, never what a link points to);
    /// `prepare` runs on the new file before the data is written (to give it an owner or a
    /// mode); then `tmp` is renamed over `name` (a link there is replaced, never followed).
    /// On failure `tmp` is removed and `name` is left as it was.
    pub fn replace(
        &self,
        name: &OsStr,
        tmp: &OsStr,
        data: &[u8],
        durability: Durability,
        prepare: impl FnOnce(&File) -> io::Result<()>,
    ) -> io::Result<()> {
        let res = (|| {
            let mut f = match self.create_new(tmp, 0o600) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    self.remove(tmp)?;
                    self.create_new(tmp, 0o600)?
                }
                r => r?,
            };
            prepare(&f)?;
            f.write_all(data)?;
            if durability == Durability::Synced {
                f.sync_all()?;
            }
            drop(f);
            self.rename(tmp, name)?;
            if durability == Durability::Synced {
                self.sync()?;
            }
            Ok(())
        })();
        if res.is_err() {
            let _ = self.remove(tmp);
        }
        res
    }

    /// The names of the directory's entries (without "." and ".."), read from the fd.
    pub fn names(&self) -> io::Result<Vec<OsString>> {
        let mut names = Vec::new();
        self.each_name(|n| names.push(n.to_owned()))?;
        Ok(names)
    }

    /// Calls `f` with the name of each entry (without "." and ".."), read from the fd; nothing
    /// is collected, so a directory of a million files costs no memory here.
    pub fn each_name(&self, mut f: impl FnMut(&OsStr)) -> io::Result<()> {
        // fdopendir takes ownership of the fd it is given (closedir closes it): give it a
        // duplicate, positioned at the start.
        let dup = self.fd.try_clone()?;
        let raw = std::os::fd::IntoRawFd::into_raw_fd(dup);
        // SAFETY: `raw` is an open directory fd that we own and hand over to the DIR stream.
        let dirp = unsafe { libc::fdopendir(raw) };
        if dirp.is_null() {
            let e = io::Error::last_os_error();
            // SAFETY: fdopendir failed, so `raw` is still ours to close.
            drop(unsafe { OwnedFd::from_raw_fd(raw) });
            return Err(e);
        }
        let stream = DirStream(dirp);
        // SAFETY: `stream.0` is a valid DIR stream; the duplicate shares the file offset with
        // `self.fd`, so rewind it (another listing may have moved it).
        unsafe { libc::rewinddir(stream.0) };
        loop {
            // readdir returns NULL both at the end and on error; errno tells them apart.
            // SAFETY: errno is thread-local; writing 0 to it is always allowed.
            unsafe { *libc::__errno_location() = 0 };
            // SAFETY: `stream.0` is a valid DIR stream used by this thread only.
            let ent = unsafe { libc::readdir(stream.0) };
            if ent.is_null() {
                let e = io::Error::last_os_error();
                if e.raw_os_error().unwrap_or(0) != 0 {
                    return Err(e);
                }
                return Ok(());
            }
            // SAFETY: readdir returned a valid dirent whose d_name is NUL-terminated; it stays
            // valid until the next readdir on this stream, and `f` only borrows it before that.
            let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) }.to_bytes();
            if name != b"." && name != b".." {
                f(OsStr::from_bytes(name));
            }
        }
    }
}

struct DirStream(*mut libc::DIR);

impl Drop for DirStream {
    fn drop(&mut self) {
        // SAFETY: the stream came from fdopendir and is closed exactly once, here.
        unsafe { libc::closedir(self.0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::{symlink, MetadataExt};

    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("netmon-sysfs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn mkfifo(p: &Path) {
        let c = CString::new(p.as_os_str().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn bounded_reads_refuse_what_is_not_a_small_regular_file() {
        let d = scratch("read");
        let mut buf = Vec::new();
        std::fs::write(d.join("small"), "abc").unwrap();
        read_regular(&d.join("small"), false, 3, &mut buf).unwrap();
        assert_eq!(buf, b"abc");
        let e = read_regular(&d.join("small"), false, 2, &mut buf).unwrap_err();
        assert!(
            matches!(e, ReadError::TooLarge { size: 3, limit: 2 }),
            "{e}"
        );
        // A FIFO with no writer: refused at once, never blocks.
        mkfifo(&d.join("fifo"));
        let e = read_regular(&d.join("fifo"), true, 100, &mut buf).unwrap_err();
        assert!(matches!(e, ReadError::NotRegular("a FIFO")), "{e}");
        // /dev/zero, directly and through a link.
        let e = read_regular(Path::new("/dev/zero"), true, 100, &mut buf).unwrap_err();
        assert!(
            matches!(e, ReadError::NotRegular("a character device")),
            "{e}"
        );
        symlink("/dev/zero", d.join("zero")).unwrap();
        let e = read_regular(&d.join("zero"), false, 100, &mut buf).unwrap_err();
        assert!(matches!(e, ReadError::Symlink), "{e}");
        symlink(d.join("small"), d.join("link")).unwrap();
        assert!(matches!(
            read_regular(&d.join("link"), false, 100, &mut buf),
            Err(ReadError::Symlink)
        ));
        read_regular(&d.join("link"), true, 100, &mut buf).unwrap();
        // A sparse file of 400 MB: fstat says so, nothing is read.
        let f = File::create(d.join("sparse")).unwrap();
        f.set_len(400 << 20).unwrap();
        let e = read_regular(&d.join("sparse"), false, 1 << 20, &mut buf).unwrap_err();
        assert!(matches!(e, ReadError::TooLarge { size, .. } if size == 400 << 20));
        // read_at_most stops at the bound.
        let (mut f, _) = open_regular(&d.join("sparse"), false).unwrap();
        assert!(read_at_most(&mut f, 4096, &mut buf).unwrap());
        assert_eq!(buf.len(), 4096);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn dir_ops_go_through_the_fd_and_never_follow_links() {
        let d = scratch("dir");
        let outside = d.join("outside");
        std::fs::write(&outside, "victim").unwrap();
        let inner = d.join("spool");
        std::fs::create_dir(&inner).unwrap();
        let dir = Dir::open(&inner).unwrap();
        // A link planted under the name we create: O_EXCL refuses it, the target is untouched.
        symlink(&outside, inner.join("planted")).unwrap();
        let e = dir.create_new(OsStr::new("planted"), 0o600).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EEXIST));
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "victim");
        assert!(matches!(
            dir.open_regular(OsStr::new("planted")),
            Err(ReadError::Symlink)
        ));
        let mut f = dir.create_new(OsStr::new("new"), 0o600).unwrap();
        f.write_all(b"x").unwrap();
        assert_eq!(f.metadata().unwrap().mode() & 0o777, 0o600);
        dir.rename(OsStr::new("new"), OsStr::new("planted"))
            .unwrap();
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "victim");
        let (_, m) = dir.open_regular(OsStr::new("planted")).unwrap();
        assert_eq!(m.len(), 1);
        let mut names = dir.names().unwrap();
        names.sort();
        assert_eq!(names, vec![OsString::from("planted")]);
        // Listing twice works (the shared offset is rewound).
        assert_eq!(dir.names().unwrap().len(), 1);
        dir.remove(OsStr::new("planted")).unwrap();
        assert!(dir.names().unwrap().is_empty());
        // The directory moved away: the fd still names it.
        std::fs::rename(&inner, d.join("moved")).unwrap();
        dir.create_new(OsStr::new("after"), 0o600).unwrap();
        assert!(d.join("moved/after").exists());
        // A link to a directory is not opened as one.
        symlink(d.join("moved"), d.join("dirlink")).unwrap();
        assert!(Dir::open(&d.join("dirlink")).is_err());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn entry_names_are_single_components() {
        let d = scratch("names");
        std::fs::create_dir(d.join("sub")).unwrap();
        std::fs::write(d.join("sub/inner"), "x").unwrap();
        let dir = Dir::open(&d).unwrap();
        for bad in ["", ".", "..", "sub/inner", "../x", "a\0b"] {
            let bad = OsStr::new(bad);
            assert!(dir.open_regular(bad).is_err(), "{bad:?}");
            assert!(dir.create_new(bad, 0o600).is_err(), "{bad:?}");
            assert!(dir.remove(bad).is_err(), "{bad:?}");
            assert!(dir.rename(bad, OsStr::new("y")).is_err(), "{bad:?}");
        }
        assert!(d.join("sub/inner").exists());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn open_following_follows_only_the_directory() {
        let d = scratch("follow");
        std::fs::create_dir(d.join("real")).unwrap();
        std::fs::write(d.join("real/target"), "secret").unwrap();
        symlink(d.join("real"), d.join("dirlink")).unwrap();
        symlink(d.join("real/target"), d.join("real/link")).unwrap();
        assert!(Dir::open(&d.join("dirlink")).is_err());
        let dir = Dir::open_following(&d.join("dirlink")).unwrap();
        assert!(matches!(
            dir.open_regular(OsStr::new("link")),
            Err(ReadError::Symlink)
        ));
        assert!(Dir::open_following(&d.join("real/target")).is_err());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn replace_is_atomic_never_follows_links_and_cleans_up() {
        let d = scratch("replace");
        let victim = d.join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let inner = d.join("dir");
        std::fs::create_dir(&inner).unwrap();
        // Links planted at both names: neither is followed, both names end up ours.
        symlink(&victim, inner.join("file")).unwrap();
        symlink(&victim, inner.join("file.tmp")).unwrap();
        let dir = Dir::open(&inner).unwrap();
        let (name, tmp) = (OsStr::new("file"), OsStr::new("file.tmp"));
        for durability in [Durability::Synced, Durability::Unsynced] {
            dir.replace(name, tmp, b"new", durability, |_| Ok(()))
                .unwrap();
            assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
            let m = std::fs::symlink_metadata(inner.join("file")).unwrap();
            assert!(m.is_file());
            assert_eq!(m.mode() & 0o777, 0o600);
            assert_eq!(std::fs::read(inner.join("file")).unwrap(), b"new");
            assert!(!inner.join("file.tmp").exists());
        }
        // `prepare` sees the new file before the data; its failure leaves the old file and no
        // temporary behind.
        dir.replace(name, tmp, b"mode", Durability::Synced, |f| {
            assert_eq!(f.metadata()?.len(), 0);
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(std::fs::Permissions::from_mode(0o640))
        })
        .unwrap();
        assert_eq!(
            std::fs::metadata(inner.join("file")).unwrap().mode() & 0o777,
            0o640
        );
        let e = dir
            .replace(name, tmp, b"lost", Durability::Synced, |_| {
                Err(io::Error::other("refused"))
            })
            .unwrap_err();
        assert_eq!(e.to_string(), "refused");
        assert_eq!(std::fs::read(inner.join("file")).unwrap(), b"mode");
        assert_eq!(dir.names().unwrap(), vec![OsString::from("file")]);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn flock_is_exclusive_between_opens() {
        let d = scratch("lock");
        let a = Dir::open(&d).unwrap();
        let b = Dir::open(&d).unwrap();
        assert!(a.try_lock().unwrap());
        assert!(!b.try_lock().unwrap());
        drop(a);
        assert!(b.try_lock().unwrap());
        let _ = std::fs::remove_dir_all(&d);
    }
}
