//! Decode + account throughput on one core (`make bench-decode` runs it via bench/decode.sh).

//! Builds an in-memory capture of at least N frames (default 1,048,576) of mixed real traffic:
//! every Ethernet frame of the captures in ../shared/pcaps (or the directory given), repeated,
//! cut to 256 captured bytes (the original lengths are kept), with timestamps 1 µs apart.
//! Times `DeviceTable::observe` (decode + account, table size 4096) over all of them, best of
//! 5 runs, and prints frames/s and ns/frame. With `--write FILE` it also writes that capture as
//! a pcap, so tshark and `netmon-agent replay` can be measured on the same frames.

use std::path::PathBuf;
use std::time::Instant;

use netmon_agent::devices::{DeviceTable, TableConfig};
use netmon_agent::frame::{Frame, LinkType};
use netmon_agent::pcap::file::FileSource;
use netmon_agent::pcap::writer::{PcapWriter, WriterOptions};
use netmon_agent::pcap::FrameSource;

const SNAP: usize = 256;

fn main() {
    let mut args = std::env::args().skip(1);
    let mut dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/pcaps"));
    let mut min_frames = 1usize << 20;
    let mut write = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--pcaps" => dir = PathBuf::from(args.next().expect("--pcaps DIR")),
            "--frames" => {
                min_frames = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("--frames N")
            }
            "--write" => write = Some(PathBuf::from(args.next().expect("--write FILE"))),
            _ => {
                eprintln!("usage: bench_decode [--pcaps DIR] [--frames N] [--write FILE]");
                std::process::exit(2);
            }
        }
    }

    // One copy of every Ethernet frame: (orig_len, bytes).
    let mut base: Vec<(u32, Vec<u8>)> = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("pcap" | "pcapng")
            )
        })
        .collect();
    files.sort();
    for p in &files {
        let Ok(mut src) = FileSource::open(p) else {
            continue;
        };
        while let Some(Ok(f)) = src.next_frame() {
            if f.link == LinkType::Ethernet {
                base.push((f.orig_len, f.data[..f.data.len().min(SNAP)].to_vec()));
            }
        }
    }
    assert!(
        !base.is_empty(),
        "no Ethernet frames under {}",
        dir.display()
    );

    // The in-memory capture: one buffer, frames as (offset, len, orig_len).
    let reps = min_frames.div_ceil(base.len());
    let mut buf = Vec::new();
    let mut index = Vec::with_capacity(reps * base.len());
    for _ in 0..reps {
        for (orig, d) in &base {
            index.push((buf.len(), d.len(), *orig));
            buf.extend_from_slice(d);
        }
    }
    let n = index.len();
    let bytes: u64 = index.iter().map(|&(_, _, o)| o as u64).sum();
    println!(
        "capture: {n} frames ({} distinct Ethernet frames from {} files, x{reps}), {} MB on the wire, {} MB captured",
        base.len(),
        files.len(),
        bytes / 1_000_000,
        buf.len() / 1_000_000
    );

    let t0 = 1_700_000_000_000_000_000u64;
    let mut best = f64::MAX;
    let mut devices = 0;
    for _ in 0..5 {
        let mut table = DeviceTable::new(TableConfig {
            capacity: 4096,
            ..TableConfig::default()
        });
        let start = Instant::now();
        for (i, &(off, len, orig)) in index.iter().enumerate() {
            let f = Frame::ethernet(t0 + i as u64 * 1000, orig, &buf[off..off + len]);
            table.observe(&f);
        }
        let secs = start.elapsed().as_secs_f64();
        best = best.min(secs);
        devices = table.len();
        assert_eq!(table.counters().packets_seen as usize, n);
    }
    println!(
        "decode+account: {:.1} M frames/s, {:.1} ns/frame (best of 5, one core, {devices} devices)",
        n as f64 / best / 1e6,
        best * 1e9 / n as f64
    );

    if let Some(path) = write {
        let mut w = PcapWriter::create(
            &path,
            WriterOptions {
                nanoseconds: true,
                ..WriterOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        for (i, &(off, len, orig)) in index.iter().enumerate() {
            w.write_raw(t0 + i as u64 * 1000, len as u32, orig, &buf[off..off + len])
                .unwrap_or_else(|e| panic!("{e}"));
        }
        w.finish().unwrap_or_else(|e| panic!("{e}"));
        println!("wrote {}", path.display());
    }
}
