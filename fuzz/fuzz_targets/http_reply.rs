//! The incremental HTTP reply parser over arbitrary bytes, fed in pieces whose sizes come from
//! the input: errors are fine; panics, a body kept beyond `keep` or a reply read past the cap
//! are not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netmon_agent::ship::http::{Progress, ReplyParser, MAX_REPLY};

fuzz_target!(|input: &[u8]| {
    let Some((&split, bytes)) = input.split_first() else {
        return;
    };
    let step = usize::from(split).max(1);
    let keep = usize::from(split) * 4;
    let mut p = ReplyParser::new(keep);
    let mut used = 0;
    'outer: for piece in bytes.chunks(step) {
        let mut at = 0;
        while at < piece.len() {
            match p.feed(&piece[at..]) {
                Ok(f) => {
                    assert!(f.used <= piece.len() - at);
                    at += f.used;
                    used += f.used;
                    if f.progress == Progress::Done {
                        break 'outer;
                    }
                }
                Err(_) => break 'outer,
            }
        }
    }
    let _ = p.finish();
    assert!(used <= MAX_REPLY);
    assert!(p.body().len() <= keep);
    if let Some(h) = p.head() {
        assert!(h.reason.len() <= netmon_agent::ship::http::MAX_REASON);
        assert!(h.reason.bytes().all(|b| b == b' ' || b.is_ascii_graphic()));
    }
});
