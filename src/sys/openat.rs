//! Files named relative to an open directory (openat(2) and friends), so that a path cannot be
//! redirected between the check and the use: the directory is opened once, and a name inside
//! it is never followed when it is a symlink (O_NOFOLLOW).

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::syscall;

/// An open directory.
pub struct Dir {
    fd: OwnedFd,
}

/// A single path component: no '/', not empty, not "." or "..", no NUL.
fn name_cstr(name: &str) -> io::Result<CString> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a plain file name",
        ));
    }
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in name"))
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

impl Dir {
    /// Opens the directory at `path` (symlinks on the way to it are followed: the directory is
    /// the administrator's choice; what is inside it is not followed).
    pub fn open(path: &Path) -> io::Result<Dir> {
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
        let fd = retry(|| {
            syscall!(open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC
            ))
        })?;
        // SAFETY: open returned a new descriptor that nothing else owns.
        Ok(Dir {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    fn openat(&self, name: &str, flags: libc::c_int, mode: libc::mode_t) -> io::Result<File> {
        let c = name_cstr(name)?;
        let fd = retry(|| {
            syscall!(openat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                mode as libc::c_uint
            ))
        })?;
        // SAFETY: openat returned a new descriptor that nothing else owns.
        Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Opens `name` for reading without following a symlink (ELOOP) and without blocking on a
    /// FIFO; the caller checks the type with `metadata()`.
    pub fn open_read(&self, name: &str) -> io::Result<File> {
        self.openat(name, libc::O_RDONLY | libc::O_NONBLOCK, 0)
    }

    /// Creates `name` exclusively (never an existing file, never through a symlink).
    pub fn create_new(&self, name: &str, mode: u32) -> io::Result<File> {
        self.openat(
            name,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
            mode as libc::mode_t,
        )
    }

    /// Renames `from` to `to` inside this directory (atomically replacing `to`; a symlink at
    /// `to` is replaced, never followed).
    pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let (f, t) = (name_cstr(from)?, name_cstr(to)?);
        let dfd = self.fd.as_raw_fd();
        retry(|| syscall!(renameat(dfd, f.as_ptr(), dfd, t.as_ptr()))).map(|_| ())
    }

    /// Removes the file `name` (not a directory).
    pub fn unlink(&self, name: &str) -> io::Result<()> {
        let c = name_cstr(name)?;
        retry(|| syscall!(unlinkat(self.fd.as_raw_fd(), c.as_ptr(), 0))).map(|_| ())
    }

    /// Flushes the directory entry changes (after a rename) to disk.
    pub fn sync(&self) -> io::Result<()> {
        retry(|| syscall!(fsync(self.fd.as_raw_fd()))).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn names_are_single_components_and_symlinks_are_not_followed() {
        let d = std::env::temp_dir().join(format!("netmon-openat-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("target"), "secret").unwrap();
        std::os::unix::fs::symlink(d.join("target"), d.join("link")).unwrap();
        let dir = Dir::open(&d).unwrap();
        for bad in ["", ".", "..", "a/b", "a\0b"] {
            assert!(dir.open_read(bad).is_err(), "{bad:?}");
        }
        let e = dir.open_read("link").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP));
        assert!(dir.create_new("link", 0o600).is_err());
        let mut f = dir.create_new("new", 0o600).unwrap();
        f.write_all(b"x").unwrap();
        assert!(dir.create_new("new", 0o600).is_err(), "exclusive");
        // Renaming over the symlink replaces the link; its target is untouched.
        dir.rename("new", "link").unwrap();
        dir.sync().unwrap();
        assert_eq!(std::fs::read_to_string(d.join("target")).unwrap(), "secret");
        let mut s = String::new();
        dir.open_read("link")
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "x");
        dir.unlink("link").unwrap();
        assert!(!d.join("link").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
