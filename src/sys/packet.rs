//! The capture socket: AF_PACKET bound to one interface, both directions, promiscuous through
//! `PACKET_ADD_MEMBERSHIP` (undone by the kernel when the socket closes), a classic BPF filter
//! that truncates frames to the headers we decode, and a TPACKET_V3 receive ring mapped into our
//! memory. The same socket sends the ARP probes.
//!
//! Layout of the ring (kernel's `Documentation/networking/packet_mmap.rst`): `block_nr` blocks of
//! `block_size` bytes; each block starts with a `tpacket_block_desc`; its frames are chained by
//! `tp_next_offset`. A block belongs to us while `block_status & TP_STATUS_USER` is set, and is
//! given back by storing `TP_STATUS_KERNEL`. Every offset the kernel wrote is checked against
//! the block before anything is read through it.

use std::io;
use std::marker::PhantomData;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use super::syscall;

/// Bytes kept of an ordinary frame: Ethernet + two VLAN tags + IPv6 + an ICMPv6 neighbour
/// message with its link-layer option, with room to spare.
pub const SNAP_HEADERS: u32 = 128;
/// Bytes kept of a DHCP frame (IPv4 UDP port 67/68), so option 12 (host name) is seen.
pub const SNAP_DHCP: u32 = 1536;

/// How the ring is cut up. Built by `RingGeometry::new`, which is the only place the rules live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingGeometry {
    /// Bytes per block: a power of two, a page multiple, at most 1 MiB.
    pub block_size: u32,
    /// Number of blocks.
    pub block_nr: u32,
    /// `tp_frame_size` (TPACKET_V3 ignores it except for its checks).
    pub frame_size: u32,
    /// `tp_frame_nr`, consistent with the above.
    pub frame_nr: u32,
}

/// Largest block we ask for: blocks are physically contiguous in the kernel, and a router with
/// fragmented memory cannot always find several MiB in one piece.
const MAX_BLOCK: u64 = 1 << 20;
/// Blocks wanted in a ring (fewer when the ring is too small for that many pages).
const MIN_BLOCKS: u64 = 32;
/// TPACKET_V3 packs frames of any size into a block; `frame_size` only has to divide the block.
const FRAME_SIZE: u32 = 2048;

impl RingGeometry {
    /// Geometry for a ring of about `ring_kb` KiB on a machine with `page`-byte pages: blocks are
    /// a power of two, a multiple of the page and of the frame size, at most 1 MiB, and at least
    /// 4 of them (a block the loop holds must not stop capture). The total is rounded down to
    /// whole blocks and never overflows `u32`.
    ///
    /// Blocks are as small as it takes to have `MIN_BLOCKS` of them: the kernel hands a block
    /// over after the block timeout however little it holds, so at a low frame rate the ring
    /// lasts `block_nr` x the timeout while the loop is busy elsewhere. 8 blocks of 1 MiB lasted
    /// 0.4 s (the soak lost most of a trickle behind a hanging REST server before the loop
    /// drained the ring during platform waits); 32 of 256 KiB last 1.6 s. Smaller blocks cost
    /// wake-ups at high rates: per million frames (unpaced trafgen, perf stat) 1 MiB blocks
    /// 34 ms CPU and 250 context switches, 256 KiB 44 ms and 800, 64 KiB 64 ms and 2,900.
    pub fn new(ring_kb: u64, page: u64) -> Result<RingGeometry, String> {
        if page == 0 || !page.is_power_of_two() {
            return Err(format!("page size {page} is not a power of two"));
        }
        let total = ring_kb
            .checked_mul(1024)
            .filter(|t| *t <= u32::MAX as u64)
            .ok_or_else(|| format!("ring of {ring_kb} KiB is too large"))?;
        let min_block = page.max(FRAME_SIZE as u64);
        if total < 4 * min_block {
            return Err(format!(
                "ring of {ring_kb} KiB is too small: at least {} KiB",
                4 * min_block / 1024
            ));
        }
        // Largest power of two <= total / MIN_BLOCKS, clamped into [min_block, MAX_BLOCK].
        let share = (total / MIN_BLOCKS).max(1);
        let pow = 1u64 << (63 - share.leading_zeros());
        let block = pow.clamp(min_block, MAX_BLOCK.max(min_block));
        let block_nr = total / block;
        let frames_per_block = block / FRAME_SIZE as u64;
        let frame_nr = frames_per_block
            .checked_mul(block_nr)
            .filter(|n| *n <= u32::MAX as u64)
            .ok_or("frame count overflows")?;
        Ok(RingGeometry {
            block_size: block as u32,
            block_nr: block_nr as u32,
            frame_size: FRAME_SIZE,
            frame_nr: frame_nr as u32,
        })
    }

    /// Bytes mapped.
    pub fn len(&self) -> usize {
        self.block_size as usize * self.block_nr as usize
    }
}

/// The classic BPF program the socket runs before anything is copied: IPv4 UDP frames to or
/// from port 67/68 (DHCP) are kept up to `SNAP_DHCP` bytes, everything else up to `snap`. The
/// kernel reports the frame's full length in `tp_len` either way. An out-of-band VLAN tag is not
/// in the packet the filter sees, so offset 12 is the real EtherType; a frame with an in-band tag
/// simply gets the short snap.
pub fn snap_filter(snap: u32) -> [libc::sock_filter; 15] {
    const LD_H_ABS: u16 = 0x28;
    const LD_B_ABS: u16 = 0x30;
    const LD_H_IND: u16 = 0x48;
    const LDX_B_MSH: u16 = 0xb1;
    const JEQ_K: u16 = 0x15;
    const JSET_K: u16 = 0x45;
    const RET_K: u16 = 0x06;
    let i = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    // Jump offsets are relative to the next instruction; 13 = short snap, 14 = DHCP snap.
    [
        i(LD_H_ABS, 0, 0, 12),               // 0: A = ethertype
        i(JEQ_K, 0, 11, 0x0800),             // 1: IPv4? else 13
        i(LD_B_ABS, 0, 0, 23),               // 2: A = IP protocol
        i(JEQ_K, 0, 9, 17),                  // 3: UDP? else 13
        i(LD_H_ABS, 0, 0, 20),               // 4: A = flags + fragment offset
        i(JSET_K, 7, 0, 0x1fff),             // 5: a later fragment has no UDP header: 13
        i(LDX_B_MSH, 0, 0, 14),              // 6: X = IP header length
        i(LD_H_IND, 0, 0, 14),               // 7: A = UDP source port
        i(JEQ_K, 5, 0, 67),                  // 8: -> 14
        i(JEQ_K, 4, 0, 68),                  // 9: -> 14
        i(LD_H_IND, 0, 0, 16),               // 10: A = UDP destination port
        i(JEQ_K, 2, 0, 67),                  // 11: -> 14
        i(JEQ_K, 1, 0, 68),                  // 12: -> 14
        i(RET_K, 0, 0, snap),                // 13
        i(RET_K, 0, 0, SNAP_DHCP.max(snap)), // 14
    ]
}

/// Why the socket could not be opened, sorted so the agent can say what is missing.
#[derive(Debug)]
pub enum OpenError {
    /// EPERM/EACCES on socket(2): the process lacks CAP_NET_RAW.
    Permission(io::Error),
    /// The interface does not exist (now).
    NoInterface(String),
    /// The ring could not be set up (memory, geometry).
    Ring(String),
    /// Anything else, with the call that failed.
    Sys {
        /// The call that failed.
        what: &'static str,
        /// Its error.
        source: io::Error,
    },
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Permission(e) => write!(
                f,
                "no permission to open a packet socket (CAP_NET_RAW is missing): {e}"
            ),
            OpenError::NoInterface(name) => write!(f, "interface {name} does not exist"),
            OpenError::Ring(r) => write!(f, "capture ring: {r}"),
            OpenError::Sys { what, source } => write!(f, "{what}: {source}"),
        }
    }
}

impl std::error::Error for OpenError {}

fn sys(what: &'static str) -> impl FnOnce(io::Error) -> OpenError {
    move |source| OpenError::Sys { what, source }
}

/// Index of interface `name`, or None when there is no such interface.
pub fn ifindex(name: &str) -> Option<i32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (idx != 0).then_some(idx as i32)
}

/// What `open` needs to know.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    /// The interface to bind to.
    pub interface: &'a str,
    /// Promiscuous through PACKET_ADD_MEMBERSHIP.
    pub promisc: bool,
    /// None: no receive ring (a socket that only sends and reads replies through `recv`).
    pub ring: Option<RingGeometry>,
    /// Bytes kept of an ordinary frame (the filter keeps more of DHCP).
    pub snap: u32,
    /// Milliseconds after which the kernel hands over a block that is not full.
    pub block_timeout_ms: u32,
}

/// An open capture socket. Field order is drop order: the mapping goes before the fd.
pub struct PacketSocket {
    ring: Option<Ring>,
    fd: OwnedFd,
    ifindex: i32,
}

/// The mapped TPACKET_V3 ring.
struct Ring {
    base: NonNull<u8>,
    geometry: RingGeometry,
    /// The block to look at next.
    current: u32,
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` describe exactly the mapping made in `open`, unmapped once here.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.geometry.len());
        }
    }
}

/// # Safety
/// `T` must be the type the kernel expects for (`level`, `name`).
unsafe fn setsockopt<T>(fd: BorrowedFd<'_>, level: i32, name: i32, value: &T) -> io::Result<()> {
    syscall!(setsockopt(
        fd.as_raw_fd(),
        level,
        name,
        (value as *const T).cast(),
        size_of::<T>() as libc::socklen_t
    ))
    .map(drop)
}

/// # Safety
/// `T` must be the plain-data type the kernel writes for (`level`, `name`).
unsafe fn getsockopt<T>(fd: BorrowedFd<'_>, level: i32, name: i32) -> io::Result<T> {
    let mut value = MaybeUninit::<T>::zeroed();
    let mut len = size_of::<T>() as libc::socklen_t;
    syscall!(getsockopt(
        fd.as_raw_fd(),
        level,
        name,
        value.as_mut_ptr().cast(),
        &mut len
    ))?;
    if len as usize != size_of::<T>() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "getsockopt returned {len} bytes, expected {}",
                size_of::<T>()
            ),
        ));
    }
    // SAFETY: zero-initialised plain data, fully written by the kernel (length checked).
    Ok(unsafe { value.assume_init() })
}

fn sockaddr_ll(ifindex: i32, protocol: u16) -> libc::sockaddr_ll {
    libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: protocol.to_be(),
        sll_ifindex: ifindex,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    }
}

/// Opens, filters, maps and binds. Frames of other interfaces never reach the ring: the socket
/// is created with protocol 0 (receives nothing) and only starts receiving at `bind`.
pub fn open(opts: &Options<'_>) -> Result<PacketSocket, OpenError> {
    let raw = syscall!(socket(
        libc::AF_PACKET,
        libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        0
    ))
    .map_err(|e| match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => OpenError::Permission(e),
        _ => OpenError::Sys {
            what: "socket(AF_PACKET)",
            source: e,
        },
    })?;
    // SAFETY: socket(2) returned a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let ifindex =
        ifindex(opts.interface).ok_or_else(|| OpenError::NoInterface(opts.interface.to_owned()))?;

    let filter = snap_filter(opts.snap);
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: SO_ATTACH_FILTER takes a sock_fprog; the kernel copies the program during the call.
    unsafe { setsockopt(fd.as_fd(), libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog) }
        .map_err(sys("attach BPF filter"))?;

    let mut ring = None;
    if let Some(g) = opts.ring {
        let version = libc::tpacket_versions::TPACKET_V3 as libc::c_int;
        // SAFETY: PACKET_VERSION takes an int.
        unsafe { setsockopt(fd.as_fd(), libc::SOL_PACKET, libc::PACKET_VERSION, &version) }
            .map_err(sys("PACKET_VERSION TPACKET_V3"))?;
        let req = libc::tpacket_req3 {
            tp_block_size: g.block_size,
            tp_block_nr: g.block_nr,
            tp_frame_size: g.frame_size,
            tp_frame_nr: g.frame_nr,
            tp_retire_blk_tov: opts.block_timeout_ms,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        // SAFETY: PACKET_RX_RING with TPACKET_V3 takes a tpacket_req3.
        unsafe { setsockopt(fd.as_fd(), libc::SOL_PACKET, libc::PACKET_RX_RING, &req) }.map_err(
            |e| {
                OpenError::Ring(format!(
                    "PACKET_RX_RING ({} blocks of {} bytes, frames of {}): {e}",
                    g.block_nr, g.block_size, g.frame_size
                ))
            },
        )?;
        // SAFETY: mapping the ring the kernel just allocated for this fd, shared, read/write.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                g.len(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_LOCKED,
                fd.as_raw_fd(),
                0,
            )
        };
        // MAP_LOCKED can fail under RLIMIT_MEMLOCK; the ring is kernel memory anyway.
        let base = if base == libc::MAP_FAILED {
            // SAFETY: as above, without MAP_LOCKED.
            unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    g.len(),
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    fd.as_raw_fd(),
                    0,
                )
            }
        } else {
            base
        };
        if base == libc::MAP_FAILED {
            return Err(OpenError::Ring(format!(
                "mmap of {} bytes: {}",
                g.len(),
                io::Error::last_os_error()
            )));
        }
        ring = Some(Ring {
            base: NonNull::new(base.cast()).ok_or(OpenError::Ring("mmap returned null".into()))?,
            geometry: g,
            current: 0,
        });
    }

    let addr = sockaddr_ll(ifindex, libc::ETH_P_ALL as u16);
    syscall!(bind(
        fd.as_raw_fd(),
        (&addr as *const libc::sockaddr_ll).cast(),
        size_of::<libc::sockaddr_ll>() as libc::socklen_t
    ))
    .map_err(|e| match e.raw_os_error() {
        Some(libc::ENODEV) => OpenError::NoInterface(opts.interface.to_owned()),
        _ => OpenError::Sys {
            what: "bind to interface",
            source: e,
        },
    })?;

    if opts.promisc {
        let mreq = libc::packet_mreq {
            mr_ifindex: ifindex,
            mr_type: libc::PACKET_MR_PROMISC as u16,
            mr_alen: 0,
            mr_address: [0; 8],
        };
        // SAFETY: PACKET_ADD_MEMBERSHIP takes a packet_mreq.
        unsafe {
            setsockopt(
                fd.as_fd(),
                libc::SOL_PACKET,
                libc::PACKET_ADD_MEMBERSHIP,
                &mreq,
            )
        }
        .map_err(sys("PACKET_ADD_MEMBERSHIP promiscuous"))?;
    }
    let sock = PacketSocket { ring, fd, ifindex };
    // Reading the statistics resets them: start counting drops from here.
    let _ = sock.statistics();
    Ok(sock)
}

/// One frame as the ring holds it. `data` is what the filter kept; `orig_len` the length on the
/// wire as the kernel counted it.
#[derive(Debug, Clone, Copy)]
pub struct RawFrame<'a> {
    /// The bytes the filter kept.
    pub data: &'a [u8],
    /// Length on the wire as the kernel counted it (`tp_len`).
    pub orig_len: u32,
    /// Timestamp, seconds.
    pub ts_sec: u32,
    /// Timestamp, nanoseconds.
    pub ts_nsec: u32,
    /// The VLAN TCI from the ring header, when the kernel took the tag out of the frame.
    pub vlan_tci: Option<u16>,
    /// The tag's TPID (0x8100, or 0x88a8 for 802.1ad) when `vlan_tci` is set.
    pub vlan_tpid: u16,
    /// `sll_pkttype`: PACKET_OUTGOING (4) for frames this host sent.
    pub pkttype: u8,
}

/// A block lent to the reader: it borrows the socket mutably (one block at a time), and
/// dropping it hands the block back to the kernel. Frames are lent one at a time by
/// [`Block::next_frame`], each borrowing the block, so no frame can be kept after the block is
/// handed back and the kernel starts rewriting it:
///
/// ```compile_fail
/// use netmon_agent::sys::packet::{PacketSocket, RawFrame};
/// fn keep(sock: &mut PacketSocket) -> Option<RawFrame<'_>> {
///     let mut block = sock.next_block()?;
///     block.next_frame() // error: returns a value referencing the local `block`
/// }
/// ```
pub struct Block<'a> {
    /// The block's status word, shared with the kernel and only ever accessed atomically; no
    /// reference to plain bytes covers it.
    status: NonNull<AtomicU32>,
    /// The block's frames: from `offset_to_first_pkt` to the end of the block. Frame offsets
    /// below are relative to it, so no frame reaches back into the block descriptor.
    frames: NonNull<u8>,
    frames_len: usize,
    remaining: u32,
    offset: usize,
    /// Offset up to which the block's cache lines were prefetched.
    prefetched: usize,
    /// A frame header pointed outside the block: the rest of the block is skipped.
    malformed: bool,
    /// The block lives in the socket's ring, borrowed for as long as the block is lent.
    _ring: PhantomData<&'a mut Ring>,
}

// Offsets inside the block descriptor and the frame header, from libc's types.
const BLOCK_STATUS: usize = 8; // version, offset_to_priv, then hdr.bh1.block_status
const BLOCK_NUM_PKTS: usize = 12;
const BLOCK_FIRST_PKT: usize = 16;
const BLOCK_DESC: usize = size_of::<libc::tpacket_block_desc>();
const TP3_HDR: usize = size_of::<libc::tpacket3_hdr>();

fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn read_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

impl<'a> Block<'a> {
    /// Takes the block at `base` (`size` bytes) when its status says the kernel handed it over.
    ///
    /// # Safety
    /// `base` must be 4-byte aligned and point at `size` bytes of a TPACKET_V3 block (starting
    /// with a `tpacket_block_desc`) that stay mapped and are not accessed by anything else in
    /// this process for `'a`.
    unsafe fn take(base: NonNull<u8>, size: usize) -> Option<Block<'a>> {
        if size < BLOCK_DESC {
            return None;
        }
        let status = base.add(BLOCK_STATUS).cast::<AtomicU32>();
        // SAFETY (for the reads below): the caller guarantees the descriptor lies in the
        // mapping, 4-byte aligned; the status word is only accessed atomically (the kernel
        // writes it too), and after the Acquire load saw TP_STATUS_USER the kernel no longer
        // writes to the rest of the block until we store TP_STATUS_KERNEL.
        if status.as_ref().load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
            return None;
        }
        // tpacket_block_desc: version, offset_to_priv, then bh1: block_status, num_pkts,
        // offset_to_first_pkt, blk_len.
        let num = base.add(BLOCK_NUM_PKTS).cast::<u32>().read();
        let first = base.add(BLOCK_FIRST_PKT).cast::<u32>().read() as usize;
        let malformed = !(BLOCK_DESC..size).contains(&first);
        let first = if malformed { size } else { first };
        Some(Block {
            status,
            frames: base.add(first),
            frames_len: size - first,
            remaining: num,
            offset: 0,
            prefetched: 0,
            malformed,
            _ring: PhantomData,
        })
    }

    /// The next frame of the block, borrowed from it; None at the end of the block or at the
    /// first frame header that points outside it (then [`Block::malformed`] is true).
    pub fn next_frame(&mut self) -> Option<RawFrame<'_>> {
        if self.remaining == 0 || self.malformed {
            return None;
        }
        self.remaining -= 1;
        // SAFETY: `frames`/`frames_len` lie inside this block (see `take`), which the kernel
        // does not write while it is ours; the slice borrows `self`, so it ends before `drop`
        // hands the block back.
        let area = unsafe { std::slice::from_raw_parts(self.frames.as_ptr(), self.frames_len) };
        // Every cache line up to PREFETCH_AHEAD bytes past this frame, each asked for once.
        let ahead = (self.offset + PREFETCH_AHEAD).min(self.frames_len);
        while self.prefetched < ahead {
            prefetch(area, self.prefetched);
            self.prefetched += 64;
        }
        match parse_frame(area, self.offset) {
            Some((frame, next)) => {
                if next == 0 {
                    self.remaining = 0;
                } else {
                    self.offset = self.offset.saturating_add(next as usize);
                }
                Some(frame)
            }
            None => {
                self.malformed = true;
                None
            }
        }
    }

    /// True when a frame header pointed outside the block (the rest of it was skipped).
    pub fn malformed(&self) -> bool {
        self.malformed
    }
}

/// Bytes ahead of the frame being read whose cache lines are asked for early: the kernel wrote
/// the block from another CPU, so none of its lines are in this CPU's cache, and frames are
/// read in the order they lie in the block. (1024 bytes is about 5 frames of 128-byte snap;
/// 2048 and 4096 measured the same.) x86_64 only; elsewhere the hint compiles to nothing.
const PREFETCH_AHEAD: usize = 1024;

/// Hints the CPU to load the cache line holding `area[at]` (nothing when `at` is outside).
#[inline(always)]
fn prefetch(area: &[u8], at: usize) {
    if let Some(b) = area.get(at) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch only hints the cache and never faults; `b` is a valid reference.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                (b as *const u8).cast(),
            )
        };
        #[cfg(not(target_arch = "x86_64"))]
        let _ = b;
    }
}

/// Reads the `tpacket3_hdr` at `off` in `block` and the frame it describes; None when any part
/// lies outside the block. Returns the frame and `tp_next_offset`.
fn parse_frame(block: &[u8], off: usize) -> Option<(RawFrame<'_>, u32)> {
    let hdr = block.get(off..off.checked_add(TP3_HDR)?)?;
    // tpacket3_hdr: next_offset, sec, nsec, snaplen, len, status (u32 each), mac, net (u16),
    // then hv1: rxhash, vlan_tci (u32), vlan_tpid (u16).
    let next = read_u32(hdr, 0)?;
    let sec = read_u32(hdr, 4)?;
    let nsec = read_u32(hdr, 8)?;
    let snaplen = read_u32(hdr, 12)? as usize;
    let len = read_u32(hdr, 16)?;
    let status = read_u32(hdr, 20)?;
    let mac = read_u16(hdr, 24)? as usize;
    let tci = read_u32(hdr, 32)?;
    let tpid = read_u16(hdr, 36)?;
    let start = off.checked_add(mac)?;
    let data = block.get(start..start.checked_add(snaplen)?)?;
    // sockaddr_ll sits right after the aligned header; its pkttype tells the direction.
    let sll = off + ((TP3_HDR + 15) & !15);
    let pkttype = *block.get(sll + 10)?;
    let vlan_tci = (status & libc::TP_STATUS_VLAN_VALID != 0).then_some(tci as u16);
    let vlan_tpid = if status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
        tpid
    } else {
        0x8100
    };
    Some((
        RawFrame {
            data,
            orig_len: len,
            ts_sec: sec,
            ts_nsec: nsec,
            vlan_tci,
            vlan_tpid,
            pkttype,
        },
        next,
    ))
}

impl Drop for Block<'_> {
    fn drop(&mut self) {
        // SAFETY: the status word is in the mapping, which outlives the block (the block
        // borrows the socket that owns it), and is only ever accessed atomically.
        unsafe { self.status.as_ref() }.store(libc::TP_STATUS_KERNEL, Ordering::Release);
    }
}

/// Kernel capture counters since the last call (reading resets them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames the kernel passed to the ring.
    pub packets: u32,
    /// Frames the kernel dropped (ring full).
    pub drops: u32,
}

impl PacketSocket {
    /// The interface index the socket is bound to.
    pub fn ifindex(&self) -> i32 {
        self.ifindex
    }

    /// The next block the kernel handed over, if any. Blocks come in ring order.
    pub fn next_block(&mut self) -> Option<Block<'_>> {
        let ring = self.ring.as_mut()?;
        let bs = ring.geometry.block_size as usize;
        let idx = ring.current as usize;
        // SAFETY: block `idx` < block_nr lies inside the mapping, page aligned (block_size is a
        // page multiple); the returned block borrows the ring mutably, so nothing else here
        // touches it while it is lent.
        let block = unsafe { Block::take(ring.base.add(idx * bs), bs) }?;
        ring.current = (ring.current + 1) % ring.geometry.block_nr;
        Some(block)
    }

    /// Packets and drops counted by the kernel since the previous call.
    pub fn statistics(&self) -> io::Result<Stats> {
        // SAFETY: with TPACKET_V3 the kernel writes a tpacket_stats_v3; without a ring the
        // first two fields have the same layout (tpacket_stats), so read accordingly.
        if self.ring.is_some() {
            let s: libc::tpacket_stats_v3 =
                unsafe { getsockopt(self.fd.as_fd(), libc::SOL_PACKET, libc::PACKET_STATISTICS) }?;
            Ok(Stats {
                packets: s.tp_packets,
                drops: s.tp_drops,
            })
        } else {
            // SAFETY: without a ring (TPACKET_V1) the kernel writes a tpacket_stats.
            let s: libc::tpacket_stats =
                unsafe { getsockopt(self.fd.as_fd(), libc::SOL_PACKET, libc::PACKET_STATISTICS) }?;
            Ok(Stats {
                packets: s.tp_packets,
                drops: s.tp_drops,
            })
        }
    }

    /// The pending socket error (ENETDOWN when the interface went down or away), cleared.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        // SAFETY: SO_ERROR yields an int.
        let e: libc::c_int =
            unsafe { getsockopt(self.fd.as_fd(), libc::SOL_SOCKET, libc::SO_ERROR) }?;
        Ok((e != 0).then(|| io::Error::from_raw_os_error(e)))
    }

    /// Sends one complete Ethernet frame out of the bound interface.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        let addr = sockaddr_ll(self.ifindex, 0);
        let n = syscall!(sendto(
            self.fd.as_raw_fd(),
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&addr as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t
        ))?;
        if n as usize != frame.len() {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "short send"));
        }
        Ok(())
    }
}

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The page size, for the ring geometry.
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as u64
    } else {
        4096
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_rules() {
        let g = RingGeometry::new(8192, 4096).unwrap();
        assert_eq!(g.block_size, 256 << 10);
        assert_eq!(g.block_nr, 32);
        assert_eq!(g.len(), 8192 * 1024);
        assert_eq!(g.frame_nr as usize * g.frame_size as usize, g.len());
        let g = RingGeometry::new(100, 4096).unwrap();
        assert_eq!(g.block_size, 4096);
        assert_eq!(g.block_nr, 25); // 100 KiB in pages
        let g = RingGeometry::new(1024, 4096).unwrap();
        assert_eq!((g.block_size, g.block_nr), (32 << 10, 32));
        let g = RingGeometry::new(1_048_576, 4096).unwrap();
        assert_eq!((g.block_size, g.block_nr), (1 << 20, 1024)); // 1 GiB: at most 1 MiB a block
        let g = RingGeometry::new(64, 65536).unwrap_err();
        assert!(g.contains("too small"), "{g}");
        assert!(RingGeometry::new(64, 3000).is_err());
        assert!(RingGeometry::new(u64::MAX / 2, 4096).is_err());
        assert!(RingGeometry::new(4 * 1024 * 1024, 4096).is_err()); // 4 GiB > u32
        for kb in [64u64, 65, 127, 1000, 8192, 65536, 1_048_576] {
            let g = RingGeometry::new(kb, 4096).unwrap();
            assert!(g.block_size.is_power_of_two());
            assert_eq!(g.block_size % 4096, 0);
            assert_eq!(g.block_size % g.frame_size, 0);
            assert!(g.block_nr >= 4, "{kb}: {g:?}");
            assert!(g.len() as u64 <= kb * 1024);
        }
    }

    #[test]
    fn filter_jumps_stay_inside() {
        let f = snap_filter(128);
        for (pc, ins) in f.iter().enumerate() {
            if ins.code & 0x07 == 0x05 {
                assert!(pc + 1 + (ins.jt as usize) < f.len());
                assert!(pc + 1 + (ins.jf as usize) < f.len());
            }
        }
        assert_eq!(f[13].k, 128);
        assert_eq!(f[14].k, SNAP_DHCP);
        assert_eq!(f.last().unwrap().code, 0x06);
    }

    /// A block built by hand: two frames chained, then one pointing outside the block.
    #[test]
    fn frames_are_bounds_checked() {
        let mut block = vec![0u8; 512];
        let put32 =
            |b: &mut Vec<u8>, at: usize, v: u32| b[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        let put16 =
            |b: &mut Vec<u8>, at: usize, v: u16| b[at..at + 2].copy_from_slice(&v.to_ne_bytes());
        // frame 0 at 48: next +128, snaplen 14, len 60, VLAN valid tci 5, mac at +80
        put32(&mut block, 48, 128);
        put32(&mut block, 48 + 12, 14);
        put32(&mut block, 48 + 16, 60);
        put32(
            &mut block,
            48 + 20,
            libc::TP_STATUS_VLAN_VALID | libc::TP_STATUS_USER,
        );
        put16(&mut block, 48 + 24, 80);
        put32(&mut block, 48 + 32, 5);
        block[48 + 48 + 10] = 4; // outgoing
        block[48 + 80] = 0xaa;
        let (f, next) = parse_frame(&block, 48).unwrap();
        assert_eq!(
            (
                f.data.len(),
                f.data[0],
                f.orig_len,
                f.vlan_tci,
                f.pkttype,
                next
            ),
            (14, 0xaa, 60, Some(5), 4, 128)
        );
        // frame 1 at 176: data runs past the block end
        put32(&mut block, 176 + 12, 400);
        put16(&mut block, 176 + 24, 80);
        assert!(parse_frame(&block, 176).is_none());
        // header itself past the end, and offset overflow
        assert!(parse_frame(&block, 500).is_none());
        assert!(parse_frame(&block, usize::MAX - 4).is_none());
        // every truncation of the block at frame 0 fails or stays in bounds
        for n in 0..block.len() {
            let _ = parse_frame(&block[..n], 48);
        }
    }

    /// A whole block in memory, lent as the ring lends it: frames in order, the frame area
    /// starting at `offset_to_first_pkt`, the status handed back on drop.
    #[test]
    fn block_lends_frames_and_hands_back() {
        const SIZE: usize = 1024;
        let mut words = vec![0u32; SIZE / 4]; // u32s: the status word is 4-byte aligned
        let base = NonNull::new(words.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY (the writes and `take`s below): every offset is inside `words`, which stays
        // alive, and nothing else touches it while a block is lent.
        let put32 = |at: usize, v: u32| unsafe { base.add(at).cast::<u32>().write(v) };
        let put16 = |at: usize, v: u16| unsafe { base.add(at).cast::<u16>().write_unaligned(v) };
        let put8 = |at: usize, v: u8| unsafe { base.add(at).write(v) };
        // descriptor: status USER, 3 frames, first at 64
        put32(BLOCK_STATUS, libc::TP_STATUS_USER);
        put32(BLOCK_NUM_PKTS, 3);
        put32(BLOCK_FIRST_PKT, 64);
        // frame 0 at 64: next +128, 14 bytes at +80, len 60, outgoing
        for (at, next, first_byte) in [(64usize, 128u32, 0xaa_u8), (192, 0, 0xbb)] {
            put32(at, next);
            put32(at + 12, 14);
            put32(at + 16, 60);
            put16(at + 24, 80);
            put8(at + 48 + 10, 4);
            put8(at + 80, first_byte);
        }
        let mut block = unsafe { Block::take(base, SIZE) }.expect("status USER");
        let mut seen = Vec::new();
        while let Some(f) = block.next_frame() {
            seen.push((f.data[0], f.data.len(), f.orig_len, f.pkttype));
        }
        // next_offset 0 ends the block even though num_pkts said 3.
        assert_eq!(seen, vec![(0xaa, 14, 60, 4), (0xbb, 14, 60, 4)]);
        assert!(!block.malformed());
        drop(block);
        assert_eq!(words[BLOCK_STATUS / 4], libc::TP_STATUS_KERNEL);
        // The kernel's block is not taken.
        assert!(unsafe { Block::take(base, SIZE) }.is_none());
        // A first-frame offset inside the descriptor or past the block: malformed, no frames.
        for first in [0u32, 8, SIZE as u32, u32::MAX] {
            words[BLOCK_STATUS / 4] = libc::TP_STATUS_USER;
            words[BLOCK_FIRST_PKT / 4] = first;
            let mut block = unsafe { Block::take(base, SIZE) }.unwrap();
            assert!(block.next_frame().is_none() && block.malformed(), "{first}");
        }
        // A frame pointing outside the block stops it there.
        words[BLOCK_STATUS / 4] = libc::TP_STATUS_USER;
        words[BLOCK_FIRST_PKT / 4] = 64;
        words[(64 + 12) / 4] = 4000; // snaplen past the end
        let mut block = unsafe { Block::take(base, SIZE) }.unwrap();
        assert!(block.next_frame().is_none() && block.malformed());
    }
}
