//! The pcap/pcapng reader over arbitrary file contents: every frame it returns is fed through
//! decode + account; errors are fine, panics and hangs are not.
#![no_main]

use netmon_agent::devices::{DeviceTable, TableConfig};
use netmon_agent::pcap::file::FileSource;
use netmon_agent::pcap::FrameSource;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let path = std::env::temp_dir().join(format!("netmon-fuzz-{}.pcap", std::process::id()));
    if std::fs::write(&path, input).is_err() {
        return;
    }
    let mut table = DeviceTable::new(TableConfig::default());
    if let Ok(mut src) = FileSource::open(&path) {
        let mut n = 0;
        while let Some(r) = src.next_frame() {
            match r {
                Ok(f) => table.observe(&f),
                Err(_) => break,
            }
            n += 1;
            if n > 100_000 {
                break;
            }
        }
        let _ = src.skipped();
    }
});
