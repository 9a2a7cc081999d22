//! `netmon-agent capture`: what the agent sees on the interface, written to a pcap file.

use std::os::fd::AsFd;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::capture::{to_frame, BLOCK_TIMEOUT_MS};
use crate::cli::{CaptureArgs, Common};
use crate::config::Config;
use crate::error::Error;
use crate::pcap::writer::{PcapWriter, WriterOptions};
use crate::pcap::CaptureError;
use crate::sys::packet::{self, Options, RawFrame, RingGeometry};
use crate::sys::poll::{poll, Interest, Ready};
use crate::sys::signals::SignalFd;

/// `netmon-agent capture`: writes what the agent sees on the interface (frames as the filter
/// truncates them, original lengths kept) to a classic pcap file, until COUNT frames, SECONDS
/// or SIGINT/SIGTERM. A VLAN tag the kernel took out of a frame is put back (as libpcap does),
/// so the file holds the bytes the agent counts and `replay` of it gives the live numbers.
pub fn command(common: &Common, args: &CaptureArgs) -> Result<ExitCode, Error> {
    let Some(file) = args.write.as_deref() else {
        return Err(Error::Usage("capture: -w FILE is required".into()));
    };
    if args.seconds.is_some_and(|s| !(s.is_finite() && s > 0.0)) {
        return Err(Error::Usage("--seconds: expected a positive number".into()));
    }
    let cfg = crate::agent::load_config(&common.load_options()?)?;
    capture(&cfg, file, args.count, args.seconds).map(|()| ExitCode::SUCCESS)
}

fn capture(
    cfg: &Config,
    file: &Path,
    count: Option<u64>,
    seconds: Option<f64>,
) -> Result<(), Error> {
    let iface = cfg
        .interface
        .clone()
        .ok_or_else(|| Error::Usage("no interface to capture on: give one with -i IFACE".into()))?;
    let geometry = RingGeometry::new(cfg.ring_kb as u64, packet::page_size())
        .map_err(|e| Error::Usage(format!("RING_KB: {e}")))?;
    let signals = SignalFd::new().map_err(|e| Error::Sys {
        what: "signalfd",
        source: e,
    })?;
    let mut sock = packet::open(&Options {
        interface: &iface,
        promisc: cfg.promisc,
        ring: Some(geometry),
        snap: packet::SNAP_HEADERS,
        block_timeout_ms: BLOCK_TIMEOUT_MS,
    })
    .map_err(|e| Error::Other(format!("capture on {iface}: {e}")))?;
    let mut writer = PcapWriter::create(
        file,
        WriterOptions {
            nanoseconds: true,
            snaplen: packet::SNAP_DHCP,
            ..WriterOptions::default()
        },
    )
    .map_err(|e| Error::Other(e.to_string()))?;
    info!("capturing on {iface} to {}", file.display());
    let end = seconds.map(|s| Instant::now() + Duration::from_secs_f64(s));
    let mut written = 0u64;
    let mut dropped = 0u64;
    let mut ready = [Ready::default(); 2];
    let mut failed = None;
    'outer: loop {
        while let Some(mut block) = sock.next_block() {
            while let Some(f) = block.next_frame() {
                if let Err(e) = write_frame(&mut writer, &f) {
                    failed = Some(e);
                    break 'outer;
                }
                written += 1;
                if count.is_some_and(|c| written >= c) {
                    break 'outer;
                }
            }
        }
        let timeout = match end {
            Some(t) if Instant::now() >= t => break,
            Some(t) => t - Instant::now(),
            None => Duration::from_secs(3600),
        };
        let interests = [
            Interest {
                fd: signals.as_fd(),
                read: true,
                write: false,
            },
            Interest {
                fd: sock.as_fd(),
                read: true,
                write: false,
            },
        ];
        poll(&interests, timeout, &mut ready).map_err(|e| Error::Sys {
            what: "poll",
            source: e,
        })?;
        if ready[0].readable && matches!(signals.read(), Ok(Some(_))) {
            // Frames already in the ring are still written.
            while let Some(mut block) = sock.next_block() {
                while let Some(f) = block.next_frame() {
                    if write_frame(&mut writer, &f).is_ok() {
                        written += 1;
                    }
                }
            }
            break;
        }
        if ready[1].error {
            if let Ok(Some(e)) = sock.take_error() {
                failed = None;
                warn!("capture socket: {e}");
                break;
            }
        }
    }
    if let Ok(s) = sock.statistics() {
        dropped += s.drops as u64;
    }
    writer.finish().map_err(|e| Error::Other(e.to_string()))?;
    if let Some(e) = failed {
        return Err(Error::Other(e.to_string()));
    }
    info!(
        "{written} frames written to {}, {dropped} dropped by the kernel",
        file.display()
    );
    Ok(())
}

/// Writes one ring frame, its out-of-band VLAN tag put back after the MAC addresses.
fn write_frame(w: &mut PcapWriter, f: &RawFrame<'_>) -> Result<(), CaptureError> {
    let fr = to_frame(f);
    match f.vlan_tci {
        Some(tci) if f.data.len() >= 12 => {
            let mut buf = [0u8; packet::SNAP_DHCP as usize + 4];
            let n = f.data.len().min(packet::SNAP_DHCP as usize);
            buf[..12].copy_from_slice(&f.data[..12]);
            buf[12..14].copy_from_slice(&f.vlan_tpid.to_be_bytes());
            buf[14..16].copy_from_slice(&tci.to_be_bytes());
            buf[16..n + 4].copy_from_slice(&f.data[12..n]);
            w.write(fr.ts, fr.orig_len, &buf[..n + 4])
        }
        _ => w.write(fr.ts, fr.orig_len, fr.data),
    }
}
