//! Tests only: a global allocator that counts this thread's allocations, so a test can assert
//! that the per-frame path (decode + account) allocates nothing. Other test threads' allocations
//! do not disturb the count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The counting allocator (over the system one).
pub struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every method delegates to `System` with the caller's arguments; the only extra work
// is bumping a const-initialised thread-local Cell, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract for `l`.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from `System` (through us) with layout `l`.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: `p` came from `System` with layout `l`; the caller upholds realloc's contract.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations (and reallocations) made by the calling thread so far.
pub fn count() -> u64 {
    ALLOCS.with(|c| c.get())
}

#[cfg(test)]
mod tests {
    use super::count;
    use crate::decode::tests::{fixtures, frame, real_frames};
    use crate::frame::LinkType;

    #[test]
    fn per_frame_path_allocates_nothing() {
        let mut all: Vec<(LinkType, Vec<u8>)> =
            fixtures().into_iter().map(|(_, l, d)| (l, d)).collect();
        all.extend(real_frames().into_iter().map(|(l, _, d)| (l, d)));
        // Capacity below the number of MACs: inserts, a full table and evictions all happen.
        let mut table = crate::devices::DeviceTable::new(crate::devices::TableConfig {
            capacity: 16,
            expire_ns: 1_000,
            ..Default::default()
        });
        let before = count();
        let mut ts = 0;
        for round in 0..3 {
            for (link, data) in &all {
                ts += 10;
                let mut f = frame(*link, data);
                f.ts = ts;
                table.observe(&f);
                if round == 1 {
                    for n in [0, 11, 12, 14, 20, 40, 60] {
                        table.observe(&frame(*link, &data[..n.min(data.len())]));
                    }
                }
            }
        }
        let allocs = count() - before;
        // The counter itself works: one allocation is seen.
        let c = count();
        let v: Vec<u8> = Vec::with_capacity(std::hint::black_box(10));
        assert_eq!(count() - c, 1);
        drop(v);
        assert_eq!(allocs, 0, "allocations in decode + account");
        assert!(table.counters().packets_seen as usize >= all.len() * 3);
        assert!(table.counters().table_full > 0 || table.counters().expired > 0);
    }
}
