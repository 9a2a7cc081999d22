//! Capture files: classic pcap (both byte orders, micro- and nanosecond magic) and pcapng
//! (several sections and interfaces, each with its own link type, timestamp resolution and
//! offset), read with pcap-file's slice parsers over one reusable buffer, so memory stays at
//! the largest record and every error knows its packet index and byte offset.
//!
//! Interfaces whose link type we do not decode are skipped and counted ([`FileSource::skipped`]);
//! a file where no interface has a supported link type is [`CaptureError::Unsupported`] (found
//! at open for pcap, at the end of the file for pcapng, whose interfaces may come late).
//! Records are taken as written: `orig_len` is what counts even when a broken record says it is
//! smaller than the captured length.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use pcap_file::pcap::{PcapHeader, PcapParser};
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::PcapNgParser;
use pcap_file::{Endianness, PcapError, TsResolution};

use super::{CaptureError, Direction, Frame, FrameSource, LinkType};

/// Records larger than this are taken as corruption (libpcap's own limit is 256 KiB).
pub const MAX_RECORD: usize = 16 << 20;
const INITIAL_BUFFER: usize = 256 << 10;

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
        parser: PcapParser,
        endian: Endianness,
        nanos: bool,
        linktype: u32,
        link: LinkType,
    },
    PcapNg {
        parser: Box<PcapNgParser>,
        ifaces: Vec<Iface>,
        /// Interfaces already seen (across sections), for the unsupported-link error.
        any_supported: bool,
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
            // pcapng: the section header may be longer than what we have: read until it parses.
            loop {
                match PcapNgParser::new(&src.buf[..src.end]) {
                    Ok((rest, parser)) => {
                        let consumed = src.end - rest.len();
                        src.start = consumed;
                        src.format = Format::PcapNg {
                            parser: Box::new(parser),
                            ifaces: Vec::new(),
                            any_supported: false,
                        };
                        break;
                    }
                    Err(PcapError::IncompleteBuffer) if !src.eof => {
                        let want = src.end + 1;
                        src.fill_at_least(want)?;
                    }
                    Err(PcapError::IncompleteBuffer) => {
                        return Err(not_capture("the file ends inside the section header"))
                    }
                    Err(e) => return Err(not_capture(&describe(&e))),
                }
            }
        } else {
            let (_, header) = PcapHeader::from_slice(head).map_err(|e| match e {
                PcapError::IncompleteBuffer => not_capture("shorter than a pcap file header"),
                e => not_capture(&describe(&e)),
            })?;
            // The upper bits of the link type field carry FCS information (pcap-linktype(7)).
            let linktype = u32::from(header.datalink) & 0x0fff_ffff;
            let Some(link) = LinkType::from_linktype(linktype) else {
                return Err(CaptureError::Unsupported {
                    path: src.path.clone(),
                    linktypes: vec![linktype],
                });
            };
            let (_, parser) = PcapParser::new(head).map_err(|e| not_capture(&describe(&e)))?;
            src.format = Format::Pcap {
                parser,
                endian: header.endianness,
                nanos: header.ts_resolution == TsResolution::NanoSecond,
                linktype,
                link,
            };
            src.start = 24;
        }
        Ok(src)
    }

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
            Format::PcapNg { ifaces, .. } => {
                let mut v: Vec<u32> = ifaces.iter().map(|i| i.linktype).collect();
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
                parser,
                endian,
                nanos,
                link,
                ..
            } => {
                if avail.len() >= 16 {
                    let f = |i: usize| {
                        let b = [avail[i], avail[i + 1], avail[i + 2], avail[i + 3]];
                        match endian {
                            Endianness::Big => u32::from_be_bytes(b),
                            Endianness::Little => u32::from_le_bytes(b),
                        }
                    };
                    if f(8) as usize > MAX_RECORD {
                        return Err(corrupt(format!(
                            "captured length {} is impossible (over {MAX_RECORD} bytes)",
                            f(8)
                        )));
                    }
                }
                match parser.next_raw_packet(avail) {
                    Ok((rest, p)) => {
                        let frac = if *nanos {
                            p.ts_frac as u64
                        } else {
                            p.ts_frac as u64 * 1000
                        };
                        let ts = p.ts_sec as u64 * 1_000_000_000 + frac;
                        let data = pos(&p.data);
                        Ok(Some(Step::Frame {
                            consumed: avail.len() - rest.len(),
                            data,
                            ts,
                            orig_len: p.orig_len,
                            link: *link,
                            direction: Direction::Unknown,
                        }))
                    }
                    Err(PcapError::IncompleteBuffer) => Ok(None),
                    Err(e) => Err(corrupt(describe(&e))),
                }
            }
            Format::PcapNg {
                parser,
                ifaces,
                any_supported,
            } => {
                let big = parser.section().endianness == Endianness::Big;
                let sections_before = parser.interfaces().len();
                match parser.next_raw_block(avail) {
                    Ok((rest, block)) => {
                        let consumed = avail.len() - rest.len();
                        // A new section header clears the parser's interfaces; a new
                        // interface description adds one: mirror both.
                        let now_ifaces = parser.interfaces();
                        if now_ifaces.len() < sections_before || block.type_ == 0x0A0D_0D0A {
                            ifaces.clear();
                        }
                        if now_ifaces.len() > ifaces.len() {
                            for idb in &now_ifaces[ifaces.len()..] {
                                let linktype = u32::from(idb.linktype) & 0x0fff_ffff;
                                let link = LinkType::from_linktype(linktype);
                                *any_supported |= link.is_some();
                                let mut iface = Iface {
                                    linktype,
                                    link,
                                    units: 1_000_000,
                                    offset_s: 0,
                                };
                                for o in &idb.options {
                                    match o {
                                        InterfaceDescriptionOption::IfTsResol(r) => {
                                            iface.units = tsresol_units(*r);
                                        }
                                        InterfaceDescriptionOption::IfTsOffset(s) => {
                                            iface.offset_s = *s;
                                        }
                                        _ => {}
                                    }
                                }
                                ifaces.push(iface);
                            }
                        }
                        let body: &[u8] = &block.body;
                        let rd = |i: usize| -> Option<u32> {
                            let b: [u8; 4] = body.get(i..i + 4)?.try_into().ok()?;
                            Some(if big {
                                u32::from_be_bytes(b)
                            } else {
                                u32::from_le_bytes(b)
                            })
                        };
                        let rd16 = |i: usize| -> Option<u16> {
                            let b: [u8; 2] = body.get(i..i + 2)?.try_into().ok()?;
                            Some(if big {
                                u16::from_be_bytes(b)
                            } else {
                                u16::from_le_bytes(b)
                            })
                        };
                        // (interface, ts units, captured length, original length, data start)
                        let rec = match block.type_ {
                            BLOCK_ENHANCED_PACKET => (|| {
                                Some((
                                    rd(0)?,
                                    (rd(4)? as u64) << 32 | rd(8)? as u64,
                                    rd(12)?,
                                    rd(16)?,
                                    20usize,
                                ))
                            })(),
                            BLOCK_PACKET => (|| {
                                Some((
                                    rd16(0)? as u32,
                                    (rd(4)? as u64) << 32 | rd(8)? as u64,
                                    rd(12)?,
                                    rd(16)?,
                                    20usize,
                                ))
                            })(),
                            BLOCK_SIMPLE_PACKET => (|| {
                                let orig = rd(0)?;
                                let snap = body.len().saturating_sub(4) as u32;
                                Some((0, u64::MAX, orig.min(snap), orig, 4usize))
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
                            (ns as u64).saturating_add(iface.offset_s.saturating_mul(1_000_000_000))
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
                            orig_len,
                            link,
                            direction: Direction::Unknown,
                        }))
                    }
                    Err(PcapError::IncompleteBuffer) => Ok(None),
                    Err(e) => Err(corrupt(describe(&e))),
                }
            }
        }
    }

    /// The block length a pcapng block at `start` announces (to read it whole), if known.
    fn wanted(&self) -> usize {
        let avail = &self.buf[self.start..self.end];
        match &self.format {
            Format::Pcap { endian, .. } if avail.len() >= 16 => {
                let b = [avail[8], avail[9], avail[10], avail[11]];
                let n = match endian {
                    Endianness::Big => u32::from_be_bytes(b),
                    Endianness::Little => u32::from_le_bytes(b),
                };
                16 + n as usize
            }
            Format::PcapNg { parser, .. } if avail.len() >= 8 => {
                let b = [avail[4], avail[5], avail[6], avail[7]];
                let n = match parser.section().endianness {
                    Endianness::Big => u32::from_be_bytes(b),
                    Endianness::Little => u32::from_le_bytes(b),
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
                            if let Format::PcapNg { any_supported, .. } = &self.format {
                                if !any_supported && !self.skipped.is_empty() {
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

fn describe(e: &PcapError) -> String {
    match e {
        PcapError::IncompleteBuffer => "the file ends inside the record".into(),
        PcapError::IoError(e) => e.to_string(),
        PcapError::InvalidField(f) => format!("invalid field: {f}"),
        PcapError::InvalidInterfaceId(i) => format!("interface {i} was not described"),
        e => e.to_string(),
    }
}
