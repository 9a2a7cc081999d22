//! Writing classic pcap files: for tests that make their own captures and for the live
//! `capture` command. The 24-byte file header and the 16-byte record headers are written by
//! hand (pcap-file's header writer goes through its 200-entry link-type enum: 3 kB on mipsel).
//!
//! `PcapWriter::create(path, options)` then `write(ts_ns, orig_len, data)` per frame.
//! Options choose the byte order, micro/nanosecond timestamps, the link type and the snap
//! length; `orig_len` is written as given (so tests can write broken records on purpose with
//! [`PcapWriter::write_raw`]).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

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
    opts: WriterOptions,
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
        // magic, version 2.4, thiszone 0, sigfigs 0, snaplen, linktype (pcap-savefile(5)).
        let magic: u32 = if opts.nanoseconds {
            0xa1b2_3c4d
        } else {
            0xa1b2_c3d4
        };
        let mut header = [0u8; 24];
        header[0..4].copy_from_slice(&u32_bytes(magic, opts.big_endian));
        header[4..6].copy_from_slice(&u16_bytes(2, opts.big_endian));
        header[6..8].copy_from_slice(&u16_bytes(4, opts.big_endian));
        header[16..20].copy_from_slice(&u32_bytes(opts.snaplen, opts.big_endian));
        header[20..24].copy_from_slice(&u32_bytes(opts.linktype, opts.big_endian));
        let mut out = BufWriter::new(file);
        out.write_all(&header).map_err(io)?;
        Ok(PcapWriter {
            path,
            out,
            opts,
            written: 0,
        })
    }

    /// Writes one frame captured at `ts_ns` whose length on the wire was `orig_len`; `data` is
    /// cut to the snap length.
    pub fn write(&mut self, ts_ns: u64, orig_len: u32, data: &[u8]) -> Result<(), CaptureError> {
        let n = data.len().min(self.opts.snaplen as usize);
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
        if !self.opts.nanoseconds {
            frac /= 1000;
        }
        let mut rec = [0u8; 16];
        for (i, v) in [secs as u32, frac, incl_len, orig_len]
            .into_iter()
            .enumerate()
        {
            rec[i * 4..i * 4 + 4].copy_from_slice(&u32_bytes(v, self.opts.big_endian));
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

fn u32_bytes(v: u32, big_endian: bool) -> [u8; 4] {
    match big_endian {
        true => v.to_be_bytes(),
        false => v.to_le_bytes(),
    }
}

fn u16_bytes(v: u16, big_endian: bool) -> [u8; 2] {
    match big_endian {
        true => v.to_be_bytes(),
        false => v.to_le_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::pcap::{PcapHeader, PcapPacket};
    use pcap_file::{DataLink, Endianness, TsResolution};
    use std::time::Duration;

    /// The bytes equal pcap-file's writer (an independent implementation of the format) for
    /// both byte orders and timestamp resolutions, an unusual link type and a cut frame.
    #[test]
    fn bytes_equal_pcap_files_writer() {
        let dir = std::env::temp_dir().join(format!("netmon-writer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let frame: Vec<u8> = (0..100u8).collect();
        for (big_endian, nanoseconds) in
            [(false, false), (true, false), (false, true), (true, true)]
        {
            let opts = WriterOptions {
                big_endian,
                nanoseconds,
                linktype: 113,
                snaplen: 64,
            };
            let path = dir.join(format!("w-{big_endian}-{nanoseconds}.pcap"));
            let mut w = PcapWriter::create(&path, opts).unwrap();
            w.write(1_700_000_000_123_456_789, 100, &frame).unwrap();
            w.write(5_000, 60, &frame[..60]).unwrap();
            w.finish().unwrap();
            let ours = std::fs::read(&path).unwrap();

            let header = PcapHeader {
                version_major: 2,
                version_minor: 4,
                ts_correction: 0,
                ts_accuracy: 0,
                snaplen: 64,
                datalink: DataLink::from(113),
                ts_resolution: match nanoseconds {
                    true => TsResolution::NanoSecond,
                    false => TsResolution::MicroSecond,
                },
                endianness: match big_endian {
                    true => Endianness::Big,
                    false => Endianness::Little,
                },
            };
            let mut theirs = pcap_file::pcap::PcapWriter::with_header(Vec::new(), header).unwrap();
            let us = |ns: u64| match nanoseconds {
                true => Duration::from_nanos(ns),
                false => Duration::from_micros(ns / 1000),
            };
            theirs
                .write_packet(&PcapPacket::new(
                    us(1_700_000_000_123_456_789),
                    100,
                    &frame[..64],
                ))
                .unwrap();
            theirs
                .write_packet(&PcapPacket::new(us(5_000), 60, &frame[..60]))
                .unwrap();
            assert_eq!(
                ours,
                theirs.into_writer(),
                "big {big_endian} ns {nanoseconds}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
