//! Writing classic pcap files with pcap-file: for tests that make their own captures and for
//! the live `capture` command.
//!
//! `PcapWriter::create(path, options)` then `write(ts_ns, orig_len, data)` per frame.
//! Options choose the byte order, micro/nanosecond timestamps, the link type and the snap
//! length; `orig_len` is written as given (so tests can write broken records on purpose with
//! [`PcapWriter::write_raw`]).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use pcap_file::pcap::PcapHeader;
use pcap_file::{DataLink, Endianness, TsResolution};

use super::CaptureError;

/// How a pcap file is written.
#[derive(Debug, Clone, Copy)]
pub struct WriterOptions {
    /// Big-endian header and records (the default is little-endian).
    pub big_endian: bool,
    /// Nanosecond timestamps (the default is microseconds).
    pub nanoseconds: bool,
    /// LINKTYPE_* number (1 = Ethernet).
    pub linktype: u32,
    /// The snap length in the file header; longer frames are cut to it.
    pub snaplen: u32,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            big_endian: false,
            nanoseconds: false,
            linktype: 1,
            snaplen: 262_144,
        }
    }
}

/// A classic pcap file being written; `finish` flushes it.
pub struct PcapWriter {
    path: PathBuf,
    out: BufWriter<File>,
    header: PcapHeader,
    written: u64,
}

impl PcapWriter {
    /// Creates (or truncates) `path` and writes the file header.
    pub fn create(path: impl AsRef<Path>, opts: WriterOptions) -> Result<PcapWriter, CaptureError> {
        let path = path.as_ref().to_path_buf();
        let io = |source| CaptureError::Io {
            path: path.clone(),
            source,
        };
        let file = File::create(&path).map_err(io)?;
        let header = PcapHeader {
            version_major: 2,
            version_minor: 4,
            ts_correction: 0,
            ts_accuracy: 0,
            snaplen: opts.snaplen,
            datalink: DataLink::from(opts.linktype),
            ts_resolution: if opts.nanoseconds {
                TsResolution::NanoSecond
            } else {
                TsResolution::MicroSecond
            },
            endianness: if opts.big_endian {
                Endianness::Big
            } else {
                Endianness::Little
            },
        };
        let mut out = BufWriter::new(file);
        header
            .write_to(&mut out)
            .map_err(|e| io(std::io::Error::other(e.to_string())))?;
        Ok(PcapWriter {
            path,
            out,
            header,
            written: 0,
        })
    }

    /// Writes one frame captured at `ts_ns` whose length on the wire was `orig_len`; `data` is
    /// cut to the snap length.
    pub fn write(&mut self, ts_ns: u64, orig_len: u32, data: &[u8]) -> Result<(), CaptureError> {
        let n = data.len().min(self.header.snaplen as usize);
        self.write_raw(ts_ns, n as u32, orig_len, &data[..n])
    }

    /// Writes a record exactly as given (incl_len may disagree with `data`: for broken files).
    pub fn write_raw(
        &mut self,
        ts_ns: u64,
        incl_len: u32,
        orig_len: u32,
        data: &[u8],
    ) -> Result<(), CaptureError> {
        let secs = ts_ns / 1_000_000_000;
        let mut frac = (ts_ns % 1_000_000_000) as u32;
        if self.header.ts_resolution == TsResolution::MicroSecond {
            frac /= 1000;
        }
        let mut rec = [0u8; 16];
        for (i, v) in [secs as u32, frac, incl_len, orig_len]
            .into_iter()
            .enumerate()
        {
            let b = match self.header.endianness {
                Endianness::Big => v.to_be_bytes(),
                Endianness::Little => v.to_le_bytes(),
            };
            rec[i * 4..i * 4 + 4].copy_from_slice(&b);
        }
        self.out
            .write_all(&rec)
            .and_then(|()| self.out.write_all(data))
            .map_err(|e| self.io(e))?;
        self.written += 1;
        Ok(())
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.written
    }

    /// Flushes and closes the file.
    pub fn finish(mut self) -> Result<(), CaptureError> {
        self.out.flush().map_err(|e| self.io(e))
    }

    fn io(&self, source: std::io::Error) -> CaptureError {
        CaptureError::Io {
            path: self.path.clone(),
            source,
        }
    }
}
