//! pcap and pcapng file I/O: reading capture files as a [`FrameSource`] and writing classic
//! pcap files.
//!
//! - [`FrameSource`]: `next_frame()` lends the next frame until the source is exhausted.
//! - [`file::FileSource`]: pcap (both byte orders, µs/ns) and pcapng files.
//! - [`writer::PcapWriter`]: writes classic pcap files (tests, the `capture` command).
//! - [`CaptureError`]: what can go wrong reading a source, with the packet index and byte offset.
//!
//! Frames are [`crate::frame::Frame`]; decoding lives in `crate::decode`, accounting in
//! `crate::devices`; nothing here interprets the bytes beyond the capture format.

pub mod file;
pub mod writer;

use std::fmt;
use std::path::PathBuf;

use crate::frame::{linktype_name, Frame};

/// A source of frames: a capture file, the live ring.
pub trait FrameSource {
    /// The next frame; `None` at the end of the source. An error ends the source.
    fn next_frame(&mut self) -> Option<Result<Frame<'_>, CaptureError>>;
}

/// What can go wrong reading frames.
#[derive(Debug)]
pub enum CaptureError {
    /// The file cannot be opened or read.
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not a pcap/pcapng file, or its header is broken.
    NotACapture {
        /// The file.
        path: PathBuf,
        /// What is wrong with its header.
        reason: String,
    },
    /// A record is cut short (the file ends inside it) or its fields are impossible.
    /// `index` is the 1-based number of the packet record being read, `offset` the byte offset
    /// of the record (or block) in the file.
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based number of the packet record.
        index: u64,
        /// Byte offset of the record (or block) in the file.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// No interface of the file has a link type we decode.
    Unsupported {
        /// The file.
        path: PathBuf,
        /// The LINKTYPE_* numbers of its interfaces.
        linktypes: Vec<u32>,
    },
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaptureError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            CaptureError::NotACapture { path, reason } => {
                write!(f, "{}: not a pcap or pcapng file: {reason}", path.display())
            }
            CaptureError::Corrupt {
                path,
                index,
                offset,
                reason,
            } => write!(
                f,
                "{}: packet {index} at byte offset {offset}: {reason}",
                path.display()
            ),
            CaptureError::Unsupported { path, linktypes } => {
                write!(f, "{}: ", path.display())?;
                for (i, n) in linktypes.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "link type {n} ({})", linktype_name(*n))?;
                }
                let s = if linktypes.len() == 1 { "is" } else { "are" };
                write!(
                    f,
                    " {s} not supported (supported: Ethernet, Linux cooked v1/v2)"
                )
            }
        }
    }
}

impl std::error::Error for CaptureError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_formats_with_context() {
        let p = PathBuf::from("capture.pcap");
        let e = CaptureError::Unsupported {
            path: p.clone(),
            linktypes: vec![127],
        };
        assert_eq!(
            e.to_string(),
            "capture.pcap: link type 127 (802.11 radiotap) is not supported (supported: Ethernet, Linux cooked v1/v2)"
        );
        let e = CaptureError::Corrupt {
            path: p.clone(),
            index: 7,
            offset: 1234,
            reason: "file ends inside the record".into(),
        };
        assert_eq!(
            e.to_string(),
            "capture.pcap: packet 7 at byte offset 1234: file ends inside the record"
        );
        let e = CaptureError::NotACapture {
            path: p.clone(),
            reason: "bad magic".into(),
        };
        assert!(e.to_string().starts_with("capture.pcap: not a pcap"));
        let e = CaptureError::Io {
            path: p,
            source: std::io::Error::from_raw_os_error(libc::ENOENT),
        };
        assert!(e.to_string().starts_with("capture.pcap: "));
    }
}
