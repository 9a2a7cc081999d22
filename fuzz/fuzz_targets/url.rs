//! The URL parser over arbitrary text: whatever it accepts must be safe to put in a request
//! line and a Host header (no byte outside printable ASCII, no space).
#![no_main]

use libfuzzer_sys::fuzz_target;
use netmon_agent::ship::url::Url;

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    for schemes in [&["http", "https"][..], &["ws", "wss"][..]] {
        if let Ok(u) = Url::parse(text, schemes) {
            let target = u.request_target();
            assert!(target.starts_with('/'));
            assert!(target.bytes().all(|b| (0x21..=0x7e).contains(&b)));
            assert!(!target.contains('#'));
            assert!(!u.host.is_empty());
            assert!(u.host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(&b)));
            assert!(u.port >= 1);
            let _ = u.to_string();
        }
    }
});
