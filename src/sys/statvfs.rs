//! File-system usage from statvfs(3), the numbers `df` prints.

use std::ffi::{CStr, CString};
use std::io;
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The block counts of one mounted file system, in units of `block_size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FsUsage {
    /// f_frsize, or f_bsize where the kernel leaves f_frsize zero (as gnulib's fsusage does).
    pub block_size: u64,
    /// f_blocks: the size of the file system.
    pub blocks: u64,
    /// f_bfree: free blocks, including those reserved for root.
    pub bfree: u64,
    /// f_bavail: blocks free for an unprivileged user; 0 where the file system reports a
    /// "negative" value (top bit set), which `df` prints as negative.
    pub bavail: u64,
}

/// statvfs(path), retried on EINTR. Paths shorter than 512 bytes are passed to the kernel
/// from a stack buffer, so a call allocates nothing.
pub fn statvfs(path: &Path) -> io::Result<FsUsage> {
    let bytes = path.as_os_str().as_bytes();
    let mut stack = [0u8; 512];
    let owned;
    let cpath: &CStr = if bytes.len() < stack.len() {
        stack[..bytes.len()].copy_from_slice(bytes);
        CStr::from_bytes_with_nul(&stack[..=bytes.len()])
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?
    } else {
        owned = CString::new(bytes)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
        &owned
    };
    let mut st = MaybeUninit::<libc::statvfs>::uninit();
    loop {
        // SAFETY: `cpath` is a NUL-terminated string that outlives the call and `st` points to
        // writable memory of the size and alignment of `struct statvfs`.
        match super::syscall!(statvfs(cpath.as_ptr(), st.as_mut_ptr())) {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    // SAFETY: statvfs returned 0, so it filled in the whole struct.
    let st = unsafe { st.assume_init() };
    // The field types differ between targets (u32 on some 32-bit libcs): widen them all.
    #[allow(clippy::unnecessary_cast)]
    let (frsize, bsize, blocks, bfree, bavail) = (
        st.f_frsize as u64,
        st.f_bsize as u64,
        st.f_blocks as u64,
        st.f_bfree as u64,
        st.f_bavail as u64,
    );
    let top_bit = 1u64 << (8 * std::mem::size_of_val(&st.f_bavail) - 1);
    Ok(FsUsage {
        block_size: if frsize != 0 { frsize } else { bsize },
        blocks,
        bfree,
        bavail: if bavail & top_bit != 0 { 0 } else { bavail },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_has_a_size() {
        let u = statvfs(Path::new("/")).unwrap();
        assert!(u.block_size >= 512, "{u:?}");
        assert!(
            u.blocks > 0 && u.bfree <= u.blocks && u.bavail <= u.bfree,
            "{u:?}"
        );
    }

    #[test]
    fn missing_path_is_enoent() {
        let e = statvfs(Path::new("/nonexistent/netmon-agent")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn long_and_nul_paths_do_not_panic() {
        let long = format!("/{}", "a/".repeat(400));
        assert!(statvfs(Path::new(&long)).is_err());
        let nul = std::ffi::OsStr::from_bytes(b"/tmp\0x");
        assert_eq!(
            statvfs(Path::new(nul)).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }
}
