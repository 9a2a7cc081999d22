//! Every `unsafe` of the program lives under this module, each block with a `// SAFETY:` note.
//! The rest of the crate is `#![deny(unsafe_code)]`.
#![allow(unsafe_code)]

#[cfg(test)]
pub mod count_alloc;
pub mod fs;
pub mod ifaddrs;
pub mod packet;
pub mod poll;
pub mod privdrop;
pub mod random;
pub mod signals;
pub mod statvfs;
pub mod tcp;

/// Runs a libc call that returns -1 on error and turns that into `io::Error`.
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        #[allow(unused_unsafe)]
        // SAFETY: the caller of the macro upholds the libc function's contract for the arguments.
        let res = unsafe { libc::$fn($($arg),*) };
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}
pub(crate) use syscall;
