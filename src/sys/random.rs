//! Random bytes from the kernel (getrandom(2)), for run ids and retry jitter.

/// Fills `buf` from getrandom(2); falls back to time and pid mixing if the call is unavailable
/// (very old kernels), which is enough for ids and jitter (nothing here is a secret).
pub fn fill(buf: &mut [u8]) {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: the pointer and length describe the unfilled tail of `buf`, valid for writes.
        let n = unsafe { libc::getrandom(buf[done..].as_mut_ptr().cast(), buf.len() - done, 0) };
        if n <= 0 {
            let mut x = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
                ^ ((std::process::id() as u64) << 32);
            for b in &mut buf[done..] {
                // xorshift64
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            return;
        }
        done += n as usize;
    }
}

/// A random u64 (from [`fill`]).
pub fn u64() -> u64 {
    let mut b = [0u8; 8];
    fill(&mut b);
    u64::from_ne_bytes(b)
}
