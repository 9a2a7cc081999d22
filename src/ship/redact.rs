//! Masking the API key out of text that may have come from outside (an error that quotes a
//! server, a reason phrase). Cutting text short cannot defeat it: every run of `MIN_RUN` or
//! more characters that also occurs in the key (ignoring ASCII case, so a server that upper-cases
//! an echo gains nothing) is replaced, not only the whole key. The agent logs no URL, header or
//! body it received; this is the second line of defence for the little server text it does log.

use crate::config::Secret;

/// The shortest run of key characters that is masked (the whole key when it is shorter).
pub const MIN_RUN: usize = 4;
/// What a masked run is replaced by.
const MASK: &str = "<redacted>";

/// `text` with every run of at least `MIN_RUN` characters that also occurs in the key replaced
/// by `<redacted>`.
pub fn redact(text: &str, key: Option<&Secret>) -> String {
    let Some(key) = key.map(|k| k.expose()).filter(|k| !k.is_empty()) else {
        return text.to_owned();
    };
    let key: Vec<char> = key.chars().map(|c| c.to_ascii_lowercase()).collect();
    let t: Vec<char> = text.chars().collect();
    let min = MIN_RUN.min(key.len());
    let mut masked = vec![false; t.len()];
    for i in 0..t.len() {
        // The longest run starting at i that occurs somewhere in the key.
        let mut longest = 0;
        for j in 0..key.len() {
            let n = t[i..]
                .iter()
                .zip(&key[j..])
                .take_while(|(a, b)| a.to_ascii_lowercase() == **b)
                .count();
            longest = longest.max(n);
        }
        if longest >= min {
            masked[i..i + longest].iter_mut().for_each(|m| *m = true);
        }
    }
    let mut out = String::with_capacity(text.len());
    for (i, c) in t.iter().enumerate() {
        match (masked[i], i > 0 && masked[i - 1]) {
            (false, _) => out.push(*c),
            (true, false) => out.push_str(MASK),
            (true, true) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_the_key_whole_cut_and_in_any_case() {
        let k = Secret::new("sk-123abcXYZ".into());
        let k = Some(&k);
        assert_eq!(redact("Bearer sk-123abcXYZ!", k), "Bearer <redacted>!");
        // Cut at any length: every piece of 4 or more characters is masked.
        let key = "sk-123abcXYZ";
        for start in 0..key.len() {
            for end in start + MIN_RUN..=key.len() {
                let text = format!("h=Bearer%20{}", &key[start..end]);
                let r = redact(&text, k);
                assert!(!r.contains(&key[start..end]), "{text} -> {r}");
                assert!(r.ends_with("<redacted>"), "{text} -> {r}");
            }
        }
        assert_eq!(redact("SK-123ABCxyz", k), "<redacted>");
        // Three characters in a row are not enough to mask (they say nothing of the key).
        assert_eq!(redact("sk- 123 abc", k), "sk- 123 abc");
        assert_eq!(redact("nothing", None), "nothing");
        // A key shorter than the run length is masked whole.
        let short = Secret::new("ab".into());
        assert_eq!(redact("xaby", Some(&short)), "x<redacted>y");
    }
}
