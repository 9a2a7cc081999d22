//! Capture files: classic pcap (both byte orders, micro- and nanosecond magic) and pcapng
//! (several sections and interfaces, each with its own link type, timestamp resolution and
//! offset), read over one reusable buffer, so memory stays at the largest record and every
//! error knows its packet index and byte offset.
//!
//! Both formats are framed here by hand. pcap: the four magics of libpcap (both byte orders,
//! micro/nanoseconds) and the "modified" format of Alexey Kuznetsov's patched libpcap (magic
//! 0xa1b2cd34, 8 more bytes per record header: ifindex, protocol, packet type), which tshark
//! reads too. pcap-file 2.0 refuses that magic, and its pcapng parser rejects interface options
//! tshark accepts (an if_MACaddr of another length, e.g. pcapng-test-generator's test008) and
//! allocates per block.
//!
//! Rules where files disagree with themselves (each stated in the user documentation):
//! - pcap version: 2.0 to 2.4 are read, other versions are refused as libpcap (tcpdump) does;
//!   tshark refuses 1.x too. No other version was ever written, and a record layout we do not
//!   know would be counted wrong rather than refused.
//! - The link-type field's upper bits carry FCS information (pcap-linktype(7)): the type is
//!   the low 26 bits (0x03FFFFFF), as in libpcap; the frames count their recorded length, FCS
//!   included, as tshark counts them.
//! - An original length above [`MAX_WIRE_LEN`] (libpcap's largest snapshot length, 262,144:
//!   no link type carries a bigger frame) is a broken field: the frame counts its captured
//!   length. (tshark caps it at 2^31-1 and sums garbage.)
//!
//! Interfaces whose link type we do not decode are skipped and counted ([`FileSource::skipped`]);
//! a file where no interface has a supported link type is [`CaptureError::Unsupported`] (found
//! at open for pcap, at the end of the file for pcapng, whose interfaces may come late).
//! Records are taken as written: `orig_len` is what counts even when a broken record says it is
//! smaller than the captured length (but see [`MAX_WIRE_LEN`]).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::{CaptureError, FrameSource};
use crate::frame::{Direction, Frame, LinkType};

/// Records larger than this are taken as corruption (libpcap's own limit is 256 KiB).
pub const MAX_RECORD: usize = 16 << 20;
/// The largest original length believed: libpcap's MAXIMUM_SNAPLEN. Above it the captured
/// length counts instead.
pub const MAX_WIRE_LEN: u32 = 262_144;

/// The length that counts for a record: its original length unless that is absurd.
fn wire_len(orig_len: u32, caplen: usize) -> u32 {
    if orig_len > MAX_WIRE_LEN {
        caplen as u32
    } else {
        orig_len
    }
}
const INITIAL_BUFFER: usize = 256 << 10;

const BLOCK_SECTION_HEADER: u32 = 0x0A0D_0D0A;
const BLOCK_INTERFACE_DESCRIPTION: u32 = 0x0000_0001;
const BLOCK_PACKET: u32 = 0x0000_0002;
const BLOCK_SIMPLE_PACKET: u32 = 0x0000_0003;
const BLOCK_ENHANCED_PACKET: u32 = 0x0000_0006;

/// One pcapng interface as far as we need it.
#[derive(Debug, Clone, Copy)]
struct Iface {
    linktype: u32,
    link: Option<LinkType>,
    /// Timestamp units per second (if_tsresol; default 10^6).
    units: u64,
    /// Seconds to add (if_tsoffset).
    offset_s: u64,
}

enum Format {
    /// Before the file header is read.
    Unset,
    Pcap {
        big: bool,
        nanos: bool,
        /// Record header length: 16, or 24 in the modified format.
        record_header: usize,
        linktype: u32,
        link: LinkType,
    },
    PcapNg {
        /// Byte order of the current section.
        big: bool,
        ifaces: Vec<Iface>,
        /// Whether any interface (across sections) has a supported link type, for the
        /// unsupported-link error.
        any_supported: bool,
        /// Link types of every interface described so far (across sections).
        all_linktypes: Vec<u32>,
    },
}

/// What the parser found at the head of the buffer: positions only, so the borrow of the
/// buffer starts where the frame is returned.
enum Step {
    Frame {
        consumed: usize,
        data: (usize, usize),
        ts: u64,
        orig_len: u32,
        link: LinkType,
        direction: Direction,
    },
    Skip {
        consumed: usize,
    },
}

/// A pcap or pcapng file as a [`FrameSource`].
pub struct FileSource {
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// File offset of `buf[0]`.
    base: u64,
    eof: bool,
    format: Format,
    /// Packet records read so far (frames returned + skipped).
    records: u64,
    /// (link type, frames) of skipped unsupported interfaces.
    skipped: Vec<(u32, u64)>,
    /// The last timestamp, for pcapng simple packet blocks (which have none).
    last_ts: u64,
    failed: bool,
}

impl FileSource {
    /// Opens a capture file and reads its header.
    pub fn open(path: impl AsRef<Path>) -> Result<FileSource, CaptureError> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|source| CaptureError::Io {
            path: path.clone(),
            source,
        })?;
        let mut src = FileSource {
            path,
            file,
            buf: vec![0; INITIAL_BUFFER],
            start: 0,
            end: 0,
            base: 0,
            eof: false,
            format: Format::Unset,
            records: 0,
            skipped: Vec::new(),
            last_ts: 0,
            failed: false,
        };
        src.fill_at_least(28)?;
        let path = src.path.clone();
        let not_capture = |reason: &str| CaptureError::NotACapture {
            path: path.clone(),
            reason: reason.into(),
        };
        let head = &src.buf[..src.end];
        if head.len() >= 4 && head[..4] == [0x0a, 0x0d, 0x0d, 0x0a] {
            // pcapng: the section header block is read by `step` like every block.
            if head.len() < 12 {
                return Err(not_capture("shorter than a pcapng section header"));
            }
            let big = match [head[8], head[9], head[10], head[11]] {
                [0x1a, 0x2b, 0x3c, 0x4d] => true,
                [0x4d, 0x3c, 0x2b, 0x1a] => false,
                _ => return Err(not_capture("pcapng byte-order magic is wrong")),
            };
            src.format = Format::PcapNg {
                big,
                ifaces: Vec::new(),
                any_supported: false,
                all_linktypes: Vec::new(),
            };
        } else {
            if head.len() < 24 {
                return Err(not_capture("shorter than a pcap file header"));
            }
            let magic = [head[0], head[1], head[2], head[3]];
            let (big, nanos, modified) = match u32::from_le_bytes(magic) {
                0xa1b2_c3d4 => (false, false, false),
                0xa1b2_3c4d => (false, true, false),
                0xa1b2_cd34 => (false, false, true),
                _ => match u32::from_be_bytes(magic) {
                    0xa1b2_c3d4 => (true, false, false),
                    0xa1b2_3c4d => (true, true, false),
                    0xa1b2_cd34 => (true, false, true),
                    m => {
                        return Err(not_capture(&format!(
                            "wrong magic number {m:#010x} (neither pcap nor pcapng)"
                        )))
                    }
                },
            };
            let u16_at = |i: usize| {
                let b = [head[i], head[i + 1]];
                if big {
                    u16::from_be_bytes(b)
                } else {
                    u16::from_le_bytes(b)
                }
            };
            let (major, minor) = (u16_at(4), u16_at(6));
            if major != 2 || minor > 4 {
                return Err(not_capture(&format!(
                    "pcap version {major}.{minor} is not supported (2.0 to 2.4 are, as in libpcap)"
                )));
            }
            // The upper bits of the link type field carry FCS information (pcap-linktype(7)).
            let linktype = read_u32(&head[20..24], big) & 0x03ff_ffff;
            let Some(link) = LinkType::from_linktype(linktype) else {
                return Err(CaptureError::Unsupported {
                    path: src.path.clone(),
                    linktypes: vec![linktype],
                });
            };
            src.format = Format::Pcap {
                big,
                nanos,
                record_header: if modified { 24 } else { 16 },
                linktype,
                link,
            };
            src.start = 24;
        }
        Ok(src)
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Frames of unsupported interfaces skipped so far: (LINKTYPE number, count).
    pub fn skipped(&self) -> &[(u32, u64)] {
        &self.skipped
    }

    /// Packet records read so far (returned or skipped).
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The byte offset of the next record.
    pub fn offset(&self) -> u64 {
        self.base + self.start as u64
    }

    /// Link types of the pcap header or of the pcapng interfaces seen so far.
    pub fn linktypes(&self) -> Vec<u32> {
        match &self.format {
            Format::Unset => Vec::new(),
            Format::Pcap { linktype, .. } => vec![*linktype],
            Format::PcapNg { all_linktypes, .. } => {
                let mut v = all_linktypes.clone();
                v.sort_unstable();
                v.dedup();
                v
            }
        }
    }

    /// Reads until at least `want` bytes are buffered from `start` (or the file ends).
    fn fill_at_least(&mut self, want: usize) -> Result<(), CaptureError> {
        while self.end - self.start < want && !self.eof {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.base += self.start as u64;
                self.end -= self.start;
                self.start = 0;
            }
            if self.end == self.buf.len() {
                let n = (self.buf.len() * 2).max(want);
                self.buf.resize(n, 0);
            }
            match self.file.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(CaptureError::Io {
                        path: self.path.clone(),
                        source,
                    })
                }
            }
        }
        Ok(())
    }

    fn corrupt(&self, reason: impl Into<String>) -> CaptureError {
        CaptureError::Corrupt {
            path: self.path.clone(),
            index: self.records + 1,
            offset: self.offset(),
            reason: reason.into(),
        }
    }

    /// Parses one record or block at `start`. Ok(None): more bytes are needed.
    fn step(&mut self) -> Result<Option<Step>, CaptureError> {
        let (path, index, offset) = (&self.path, self.records + 1, self.offset());
        let corrupt = |reason: String| CaptureError::Corrupt {
            path: path.clone(),
            index,
            offset,
            reason,
        };
        let avail = &self.buf[self.start..self.end];
        let base_ptr = self.buf.as_ptr() as usize;
        let pos = |s: &[u8]| {
            (
                s.as_ptr() as usize - base_ptr,
                s.as_ptr() as usize - base_ptr + s.len(),
            )
        };
        match &mut self.format {
            Format::Unset => Err(corrupt("no file header".into())),
            Format::Pcap {
                big,
                nanos,
                record_header,
                link,
                ..
            } => {
                let hl = *record_header;
                if avail.len() < hl {
                    return Ok(None);
                }
                let f = |i: usize| read_u32(&avail[i..i + 4], *big);
                let caplen = f(8) as usize;
                if caplen > MAX_RECORD {
                    return Err(corrupt(format!(
                        "captured length {caplen} is impossible (over {MAX_RECORD} bytes)"
                    )));
                }
                if avail.len() < hl + caplen {
                    return Ok(None);
                }
                let frac = f(4) as u64;
                let frac = if *nanos {
                    frac.min(999_999_999)
                } else {
                    frac.min(999_999) * 1000
                };
                let ts = (f(0) as u64)
                    .saturating_mul(1_000_000_000)
                    .saturating_add(frac);
                Ok(Some(Step::Frame {
                    consumed: hl + caplen,
                    data: pos(&avail[hl..hl + caplen]),
                    ts,
                    orig_len: wire_len(f(12), caplen),
                    link: *link,
                    direction: Direction::Unknown,
                }))
            }
            Format::PcapNg {
                big,
                ifaces,
                any_supported,
                all_linktypes,
            } => {
                if avail.len() < 12 {
                    return Ok(None);
                }
                let btype_raw = [avail[0], avail[1], avail[2], avail[3]];
                if btype_raw == [0x0a, 0x0d, 0x0d, 0x0a] {
                    *big = match [avail[8], avail[9], avail[10], avail[11]] {
                        [0x1a, 0x2b, 0x3c, 0x4d] => true,
                        [0x4d, 0x3c, 0x2b, 0x1a] => false,
                        _ => {
                            return Err(corrupt("section header byte-order magic is wrong".into()))
                        }
                    };
                }
                let big = *big;
                let u32_at = |b: &[u8], i: usize| -> Option<u32> {
                    let v: [u8; 4] = b.get(i..i + 4)?.try_into().ok()?;
                    Some(if big {
                        u32::from_be_bytes(v)
                    } else {
                        u32::from_le_bytes(v)
                    })
                };
                let u16_at = |b: &[u8], i: usize| -> Option<u16> {
                    let v: [u8; 2] = b.get(i..i + 2)?.try_into().ok()?;
                    Some(if big {
                        u16::from_be_bytes(v)
                    } else {
                        u16::from_le_bytes(v)
                    })
                };
                let btype = u32_at(avail, 0).unwrap_or(0);
                let total = u32_at(avail, 4).unwrap_or(0) as usize;
                if total < 12 || total % 4 != 0 || total > MAX_RECORD + 64 {
                    return Err(corrupt(format!("block length {total} is impossible")));
                }
                if avail.len() < total {
                    return Ok(None);
                }
                if u32_at(avail, total - 4) != Some(total as u32) {
                    return Err(corrupt("block length and trailing length disagree".into()));
                }
                let consumed = total;
                let body = &avail[8..total - 4];
                let rec = match btype {
                    BLOCK_SECTION_HEADER => {
                        ifaces.clear();
                        return Ok(Some(Step::Skip { consumed }));
                    }
                    BLOCK_INTERFACE_DESCRIPTION => {
                        let Some(lt) = u16_at(body, 0) else {
                            return Err(corrupt("interface description too short".into()));
                        };
                        let linktype = lt as u32;
                        let link = LinkType::from_linktype(linktype);
                        *any_supported |= link.is_some();
                        if !all_linktypes.contains(&linktype) {
                            all_linktypes.push(linktype);
                        }
                        let mut iface = Iface {
                            linktype,
                            link,
                            units: 1_000_000,
                            offset_s: 0,
                        };
                        // Options: code (2), length (2), value padded to 4 bytes.
                        let mut i = 8;
                        while let (Some(code), Some(len)) = (u16_at(body, i), u16_at(body, i + 2)) {
                            let v = body.get(i + 4..i + 4 + len as usize);
                            match (code, v) {
                                (0, _) | (_, None) => break,
                                (9, Some([r])) => iface.units = tsresol_units(*r),
                                (14, Some(v)) if v.len() == 8 => {
                                    let b: [u8; 8] = v.try_into().unwrap_or([0; 8]);
                                    iface.offset_s = if big {
                                        u64::from_be_bytes(b)
                                    } else {
                                        u64::from_le_bytes(b)
                                    };
                                }
                                _ => {}
                            }
                            i += 4 + (len as usize).div_ceil(4) * 4;
                        }
                        ifaces.push(iface);
                        return Ok(Some(Step::Skip { consumed }));
                    }
                    BLOCK_ENHANCED_PACKET => (|| {
                        Some((
                            u32_at(body, 0)?,
                            (u32_at(body, 4)? as u64) << 32 | u32_at(body, 8)? as u64,
                            u32_at(body, 12)?,
                            u32_at(body, 16)?,
                            20usize,
                        ))
                    })(),
                    BLOCK_PACKET => (|| {
                        Some((
                            u16_at(body, 0)? as u32,
                            (u32_at(body, 4)? as u64) << 32 | u32_at(body, 8)? as u64,
                            u32_at(body, 12)?,
                            u32_at(body, 16)?,
                            20usize,
                        ))
                    })(),
                    BLOCK_SIMPLE_PACKET => (|| {
                        let orig = u32_at(body, 0)?;
                        let room = body.len().saturating_sub(4) as u32;
                        Some((0, u64::MAX, orig.min(room), orig, 4usize))
                    })(),
                    _ => return Ok(Some(Step::Skip { consumed })),
                };
                let Some((if_id, ts_units, caplen, orig_len, at)) = rec else {
                    return Err(corrupt("packet block shorter than its header".into()));
                };
                let Some(iface) = ifaces.get(if_id as usize).copied() else {
                    return Err(corrupt(format!(
                        "packet block names interface {if_id}, which was not described"
                    )));
                };
                let Some(data) = body.get(at..at + caplen as usize) else {
                    return Err(corrupt(format!(
                        "captured length {caplen} exceeds the block"
                    )));
                };
                let ts = if ts_units == u64::MAX {
                    self.last_ts
                } else {
                    let ns = ts_units as u128 * 1_000_000_000 / iface.units as u128;
                    (ns.min(u64::MAX as u128) as u64)
                        .saturating_add(iface.offset_s.saturating_mul(1_000_000_000))
                };
                let Some(link) = iface.link else {
                    match self.skipped.iter_mut().find(|(l, _)| *l == iface.linktype) {
                        Some((_, n)) => *n += 1,
                        None => self.skipped.push((iface.linktype, 1)),
                    }
                    self.records += 1;
                    return Ok(Some(Step::Skip { consumed }));
                };
                Ok(Some(Step::Frame {
                    consumed,
                    data: pos(data),
                    ts,
                    orig_len: wire_len(orig_len, data.len()),
                    link,
                    direction: Direction::Unknown,
                }))
            }
        }
    }

    /// The block length a pcapng block at `start` announces (to read it whole), if known.
    fn wanted(&self) -> usize {
        let avail = &self.buf[self.start..self.end];
        match &self.format {
            Format::Pcap {
                big, record_header, ..
            } if avail.len() >= 16 => *record_header + read_u32(&avail[8..12], *big) as usize,
            Format::PcapNg { big, .. } if avail.len() >= 8 => {
                let b = [avail[4], avail[5], avail[6], avail[7]];
                let n = if *big {
                    u32::from_be_bytes(b)
                } else {
                    u32::from_le_bytes(b)
                };
                n as usize
            }
            _ => avail.len() + 16,
        }
    }
}

impl FrameSource for FileSource {
    fn next_frame(&mut self) -> Option<Result<Frame<'_>, CaptureError>> {
        if self.failed {
            return None;
        }
        loop {
            match self.step() {
                Ok(Some(Step::Frame {
                    consumed,
                    data,
                    ts,
                    orig_len,
                    link,
                    direction,
                })) => {
                    self.start += consumed;
                    self.records += 1;
                    self.last_ts = ts;
                    return Some(Ok(Frame {
                        ts,
                        orig_len,
                        data: &self.buf[data.0..data.1],
                        link,
                        direction,
                        vlan: None,
                    }));
                }
                Ok(Some(Step::Skip { consumed })) => self.start += consumed,
                Ok(None) => {
                    let have = self.end - self.start;
                    if self.eof {
                        if have == 0 {
                            if let Format::PcapNg {
                                any_supported,
                                all_linktypes,
                                ..
                            } = &self.format
                            {
                                if !any_supported && !all_linktypes.is_empty() {
                                    self.failed = true;
                                    return Some(Err(CaptureError::Unsupported {
                                        path: self.path.clone(),
                                        linktypes: self.linktypes(),
                                    }));
                                }
                            }
                            return None;
                        }
                        self.failed = true;
                        return Some(Err(self.corrupt(format!(
                            "the file ends inside the record ({have} of {} bytes)",
                            self.wanted().max(have + 1)
                        ))));
                    }
                    let want = self.wanted().clamp(have + 1, MAX_RECORD + 64);
                    if let Err(e) = self.fill_at_least(want) {
                        self.failed = true;
                        return Some(Err(e));
                    }
                }
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Units per second of a pcapng if_tsresol value.
fn tsresol_units(r: u8) -> u64 {
    let exp = (r & 0x7f) as u32;
    let units = if r & 0x80 == 0 {
        10u64.checked_pow(exp)
    } else {
        2u64.checked_pow(exp)
    };
    units.filter(|&u| u > 0).unwrap_or(1_000_000)
}

fn read_u32(b: &[u8], big: bool) -> u32 {
    let b = [b[0], b[1], b[2], b[3]];
    if big {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcap::writer::{PcapWriter, WriterOptions};

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("netmon-file-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    type Got = (u64, u32, Vec<u8>, LinkType);

    /// A modified-format pcap (big-endian) with the FCS bits set in its link-type field, two
    /// records: one normal, one whose original length is absurd.
    #[test]
    fn modified_format_fcs_bits_and_absurd_lengths() {
        let dir = scratch("modified");
        let frame = [0x02u8, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x88, 0xb5];
        let mut f = vec![0xa1, 0xb2, 0xcd, 0x34, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0];
        f.extend_from_slice(&[0, 0, 0xff, 0xff, 0x24, 0, 0, 1]); // snaplen, FCS bits | Ethernet
        for (sec, orig) in [(7u32, 60u32), (8, 0xf3fe_ee30)] {
            f.extend_from_slice(&sec.to_be_bytes());
            f.extend_from_slice(&500_000u32.to_be_bytes());
            f.extend_from_slice(&(frame.len() as u32).to_be_bytes());
            f.extend_from_slice(&orig.to_be_bytes());
            f.extend_from_slice(&[0, 0, 0, 3, 0x08, 0x00, 0, 0]); // ifindex, protocol, type, pad
            f.extend_from_slice(&frame);
        }
        let path = dir.join("m.pcap");
        std::fs::write(&path, &f).unwrap();
        let (got, err) = read_all(&path);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(
            got,
            vec![
                (7_500_000_000, 60, frame.to_vec(), LinkType::Ethernet),
                (8_500_000_000, 14, frame.to_vec(), LinkType::Ethernet),
            ]
        );
        // Version 1.0 and 2.5: refused, naming the version.
        for (v, name) in [([0u8, 1, 0, 0], "1.0"), ([0, 2, 0, 5], "2.5")] {
            f[4..8].copy_from_slice(&v);
            std::fs::write(&path, &f).unwrap();
            let e = FileSource::open(&path).err().expect("refused");
            assert!(
                e.to_string()
                    .contains(&format!("pcap version {name} is not supported")),
                "{e}"
            );
        }
        // A wrong magic says so.
        f[..4].copy_from_slice(b"GIF8");
        std::fs::write(&path, &f).unwrap();
        let e = FileSource::open(&path).err().expect("refused");
        assert!(e.to_string().contains("wrong magic number"), "{e}");
    }

    fn read_all(path: &Path) -> (Vec<Got>, Option<CaptureError>) {
        let mut src = FileSource::open(path).unwrap();
        let mut v = Vec::new();
        while let Some(r) = src.next_frame() {
            match r {
                Ok(f) => v.push((f.ts, f.orig_len, f.data.to_vec(), f.link)),
                Err(e) => return (v, Some(e)),
            }
        }
        (v, None)
    }

    #[test]
    fn writer_round_trip_both_orders_and_resolutions() {
        let d = scratch("rt");
        for (big, nanos) in [(false, false), (true, false), (false, true), (true, true)] {
            let p = d.join(format!("{big}-{nanos}.pcap"));
            let mut w = PcapWriter::create(
                &p,
                WriterOptions {
                    big_endian: big,
                    nanoseconds: nanos,
                    snaplen: 20,
                    ..WriterOptions::default()
                },
            )
            .unwrap();
            w.write(1_700_000_000_123_456_789, 60, &[7u8; 60]).unwrap();
            w.write(1_700_000_001_000_000_000, 14, &[9u8; 14]).unwrap();
            assert_eq!(w.frames(), 2);
            w.finish().unwrap();
            let (v, e) = read_all(&p);
            assert!(e.is_none());
            let ts0 = if nanos {
                1_700_000_000_123_456_789
            } else {
                1_700_000_000_123_456_000
            };
            assert_eq!(
                v[0],
                (ts0, 60, vec![7u8; 20], LinkType::Ethernet),
                "{big} {nanos}"
            );
            assert_eq!(
                v[1],
                (
                    1_700_000_001_000_000_000,
                    14,
                    vec![9u8; 14],
                    LinkType::Ethernet
                )
            );
        }
    }

    /// pcapng written by hand (big-endian): two Ethernet interfaces with different timestamp
    /// resolutions (10^-9 and 2^-10) and a raw-IP one, whose frame is skipped and counted.
    #[test]
    fn pcapng_interfaces_resolutions_and_skips() {
        fn block(t: u32, body: &[u8]) -> Vec<u8> {
            let mut body = body.to_vec();
            while body.len() % 4 != 0 {
                body.push(0);
            }
            let n = (body.len() + 12) as u32;
            let mut b = t.to_be_bytes().to_vec();
            b.extend_from_slice(&n.to_be_bytes());
            b.extend_from_slice(&body);
            b.extend_from_slice(&n.to_be_bytes());
            b
        }
        fn idb(linktype: u16, tsresol: Option<u8>) -> Vec<u8> {
            let mut b = linktype.to_be_bytes().to_vec();
            b.extend_from_slice(&[0, 0, 0, 0, 0xff, 0xff]);
            if let Some(r) = tsresol {
                b.extend_from_slice(&[0, 9, 0, 1, r, 0, 0, 0]);
            }
            // an if_MACaddr of the wrong length, which tshark tolerates
            b.extend_from_slice(&[0, 6, 0, 4, 1, 2, 3, 4, 0, 0, 0, 0]);
            b
        }
        fn epb(iface: u32, ts: u64, data: &[u8], orig: u32) -> Vec<u8> {
            let mut b = iface.to_be_bytes().to_vec();
            b.extend_from_slice(&((ts >> 32) as u32).to_be_bytes());
            b.extend_from_slice(&(ts as u32).to_be_bytes());
            b.extend_from_slice(&(data.len() as u32).to_be_bytes());
            b.extend_from_slice(&orig.to_be_bytes());
            b.extend_from_slice(data);
            b
        }
        let shb = [
            0x1a, 0x2b, 0x3c, 0x4d, 0, 1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ];
        let mut f = block(BLOCK_SECTION_HEADER, &shb);
        f.extend(block(1, &idb(1, Some(9))));
        f.extend(block(1, &idb(101, None)));
        f.extend(block(1, &idb(1, Some(0x8a))));
        f.extend(block(6, &epb(0, 1_500_000_000_000_000_001, &[1; 14], 100)));
        f.extend(block(6, &epb(1, 5, &[2; 20], 20)));
        f.extend(block(6, &epb(2, 3 * 1024 + 512, &[3; 14], 60)));
        f.extend(block(
            3,
            &[0, 0, 0, 64, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4],
        ));
        let d = scratch("ng");
        let p = d.join("t.pcapng");
        std::fs::write(&p, &f).unwrap();
        let (v, e) = read_all(&p);
        assert!(e.is_none(), "{e:?}");
        assert_eq!(v.len(), 3);
        assert_eq!((v[0].0, v[0].1), (1_500_000_000_000_000_001, 100));
        assert_eq!((v[1].0, v[1].1), (3_500_000_000, 60));
        // A simple packet block: interface 0, the previous timestamp, data cut to the block.
        assert_eq!((v[2].0, v[2].1, v[2].2.len()), (3_500_000_000, 64, 16));
        let mut src = FileSource::open(&p).unwrap();
        while let Some(r) = src.next_frame() {
            r.unwrap();
        }
        assert_eq!(src.skipped(), &[(101, 1)]);
        assert_eq!(src.records(), 4);
        assert_eq!(src.linktypes(), vec![1, 101]);

        // Only the raw-IP interface: an error naming it, with or without packets.
        let mut g = block(BLOCK_SECTION_HEADER, &shb);
        g.extend(block(1, &idb(101, None)));
        std::fs::write(&p, &g).unwrap();
        let mut src = FileSource::open(&p).unwrap();
        match src.next_frame() {
            Some(Err(e @ CaptureError::Unsupported { .. })) => {
                assert!(e.to_string().contains("link type 101 (raw IP)"), "{e}")
            }
            _ => panic!("expected Unsupported"),
        }

        // Every prefix of the file: frames up to the cut, then an error naming the packet and
        // its offset (or a clean end at a block boundary); never a panic.
        let mut boundaries = vec![];
        let mut at = 0;
        while at < f.len() {
            boundaries.push(at);
            at += u32::from_be_bytes(f[at + 4..at + 8].try_into().unwrap()) as usize;
        }
        for n in 12..f.len() {
            std::fs::write(&p, &f[..n]).unwrap();
            let Ok(mut src) = FileSource::open(&p) else {
                continue;
            };
            let mut last = None;
            while let Some(r) = src.next_frame() {
                last = Some(r.map(|_| ()));
            }
            match last {
                Some(Err(CaptureError::Corrupt { offset, .. })) => {
                    assert!(!boundaries.contains(&n), "cut at a boundary {n}");
                    assert!(
                        boundaries.contains(&(offset as usize)),
                        "cut at {n}: {offset}"
                    );
                }
                Some(Err(e)) => panic!("cut at {n}: {e}"),
                _ => assert!(boundaries.contains(&n), "cut at {n} not reported"),
            }
        }
    }

    #[test]
    fn only_unsupported_interfaces_is_an_error() {
        let d = scratch("unsup");
        let p = d.join("raw.pcap");
        let w = PcapWriter::create(
            &p,
            WriterOptions {
                linktype: 127,
                ..WriterOptions::default()
            },
        )
        .unwrap();
        w.finish().unwrap();
        match FileSource::open(&p) {
            Err(e @ CaptureError::Unsupported { .. }) => {
                assert!(e.to_string().contains("link type 127 (802.11 radiotap)"))
            }
            _ => panic!("expected Unsupported"),
        }
    }

    #[test]
    fn tsresol() {
        assert_eq!(tsresol_units(6), 1_000_000);
        assert_eq!(tsresol_units(9), 1_000_000_000);
        assert_eq!(tsresol_units(0x8a), 1024);
        assert_eq!(tsresol_units(99), 1_000_000);
    }
}
