//! Decimal text to and from `f64` without core's general float machinery: `str::parse::<f64>`
//! (a 10 kB table and the Eisel-Lemire/big-decimal fallbacks) and `{:.N}` (Grisu with a Dragon4
//! bignum fallback) together cost about 30 kB on mipsel, for a load average, an uptime, two
//! command-line durations and a few log lines.
//!
//! [`parse`] is exact (the correctly rounded value, as `str::parse`) whenever the digits form an
//! integer below 2^53 and the power of ten is at most 22 (Clinger's fast path: one exact
//! conversion and one correctly rounded multiplication or division), which covers every value
//! /proc writes and any duration typed by hand; beyond that it is within a few ulp.
//! [`Fixed`] rounds half away from zero on the binary value times the scale.

use std::fmt;

/// Powers of ten that are exact in an f64.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Parses `[+-]digits[.digits][(e|E)[+-]digits]` (at least one digit before or after the
/// point), the decimal forms `str::parse::<f64>` accepts. None for anything else, including
/// `inf` and `nan`.
pub fn parse(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let mut i = 0;
    let negative = match b.first() {
        Some(b'-') => {
            i = 1;
            true
        }
        Some(b'+') => {
            i = 1;
            false
        }
        _ => false,
    };
    // Up to 19 significant digits go into `m`; further ones only move the exponent.
    let (mut m, mut digits, mut exp) = (0u64, 0u32, 0i64);
    let mut seen = false;
    let mut point = false;
    while let Some(&c) = b.get(i) {
        match c {
            b'0'..=b'9' => {
                seen = true;
                if m == 0 && c == b'0' {
                    // A leading zero: no digit, but after the point it scales.
                    exp -= i64::from(point);
                } else if digits < 19 {
                    m = m * 10 + u64::from(c - b'0');
                    digits += 1;
                    exp -= i64::from(point);
                } else {
                    exp += i64::from(!point);
                }
            }
            b'.' if !point => point = true,
            _ => break,
        }
        i += 1;
    }
    if !seen {
        return None;
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        let neg_exp = match b.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let start = i;
        let mut e: i64 = 0;
        while let Some(&c @ b'0'..=b'9') = b.get(i) {
            e = (e * 10 + i64::from(c - b'0')).min(1_000_000);
            i += 1;
        }
        if i == start {
            return None;
        }
        exp += if neg_exp { -e } else { e };
    }
    if i != b.len() {
        return None;
    }
    let v = if m == 0 {
        0.0
    } else if m < 1 << 53 && (-22..=22).contains(&exp) {
        let p = POW10[exp.unsigned_abs() as usize];
        match exp < 0 {
            true => m as f64 / p,
            false => m as f64 * p,
        }
    } else {
        // Outside the exact range: two roundings at most, then saturating to 0 or inf.
        let e = exp.clamp(-400, 400) as i32;
        match e < -300 {
            true => m as f64 * 10f64.powi(-300) * 10f64.powi(e + 300),
            false => m as f64 * 10f64.powi(e),
        }
    };
    Some(if negative { -v } else { v })
}

/// Displays an f64 with a fixed number of digits after the point, as `{:.N}` does (N = the
/// second field, at most 9); `{:+}` adds a plus sign to positive values.
pub struct Fixed(pub f64, pub u8);

impl fmt::Display for Fixed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (x, places) = (self.0, u32::from(self.1.min(9)));
        if x.is_nan() {
            return f.write_str("NaN");
        }
        if x.is_sign_negative() {
            f.write_str("-")?;
        } else if f.sign_plus() {
            f.write_str("+")?;
        }
        if x.is_infinite() {
            return f.write_str("inf");
        }
        let scale = 10u64.pow(places);
        let scaled = (x.abs() * scale as f64).round();
        // Up to 2^64 the integer is exact enough; beyond it, the whole part alone.
        let (whole, frac) = match scaled < 18_446_744_073_709_551_615.0 {
            true => {
                let n = scaled as u64;
                (u128::from(n / scale), n % scale)
            }
            false => (x.abs() as u128, 0),
        };
        write!(f, "{whole}")?;
        if places > 0 {
            write!(f, ".{frac:0width$}", width = places as usize)?;
        }
        Ok(())
    }
}

/// `x` with at most 6 decimals, trailing zeros (and a bare point) dropped: `{}` of an f64 for
/// the values a user types (`1`, `0.5`, `3600.25`, `inf`).
pub fn short(x: f64) -> String {
    let mut s = Fixed(x, 6).to_string();
    if s.contains('.') {
        let keep = s.trim_end_matches('0').trim_end_matches('.').len();
        s.truncate(keep);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_equals_std_on_the_exact_range() {
        let cases = [
            "0",
            "0.61",
            "12345.67",
            "350735.47",
            "1",
            "1.0",
            "0.5",
            ".5",
            "5.",
            "+2.25",
            "-3.75",
            "1e3",
            "1E-3",
            "2.5e+2",
            "0.000",
            "00012.500",
            "9007199254740991",
            "0.1",
            "0.3",
            "123456789012345",
            "1e22",
            "1e-22",
            "4.940656458412e-10",
            "-0",
            "3600",
        ];
        for c in cases {
            let want: f64 = c.parse().unwrap();
            let got = parse(c).unwrap_or_else(|| panic!("{c}: refused"));
            assert_eq!(got.to_bits(), want.to_bits(), "{c}");
        }
    }

    #[test]
    fn parse_is_close_beyond_the_exact_range() {
        for c in [
            "123456789012345678901234567890",
            "0.000000000000000000000000000123",
            "1e300",
            "2.2250738585072014e-308",
            "1.7976931348623e308",
            "4.9406564584124654e-10",
            "12345678901234567890.123",
        ] {
            let want: f64 = c.parse().unwrap();
            let got = parse(c).unwrap();
            assert!(((got - want) / want).abs() < 1e-14, "{c}: {got} vs {want}");
        }
        assert_eq!(parse("1e400"), Some(f64::INFINITY));
        assert_eq!(parse("1e-400"), Some(0.0));
    }

    #[test]
    fn parse_refuses_what_std_refuses() {
        for c in [
            "", ".", "+", "-", "e3", "1e", "1e+", "1..2", "1.2.3", " 1", "1 ", "0x10", "1_000",
            "--1", "1e3.5", "١",
        ] {
            assert_eq!(parse(c), None, "{c}");
            assert!(c.parse::<f64>().is_err(), "{c}");
        }
        // std also reads these words; decimals are all we need.
        for c in ["inf", "NaN", "infinity"] {
            assert_eq!(parse(c), None, "{c}");
        }
    }

    #[test]
    fn short_equals_std_display_for_typed_values() {
        for x in [
            0.0,
            1.0,
            0.5,
            3600.25,
            5000.0,
            -1.0,
            12.125,
            f64::INFINITY,
            0.000001,
        ] {
            assert_eq!(short(x), x.to_string(), "{x}");
        }
    }

    #[test]
    fn fixed_equals_std_away_from_ties() {
        for x in [
            0.0,
            1.0,
            0.04,
            0.06,
            2.0,
            2.5,
            12.3456,
            1234.5678,
            0.001,
            99.99,
            99.96,
            126230400.0,
            -1.5,
            -0.04,
            4.0e15,
            1e-9,
            3.14159,
        ] {
            for places in 0..=3u8 {
                let want = match places {
                    0 => format!("{x:.0}"),
                    1 => format!("{x:.1}"),
                    2 => format!("{x:.2}"),
                    _ => format!("{x:.3}"),
                };
                if places == 0 && x == 2.5 || x == -0.04 && places < 2 {
                    continue; // ties (std rounds half to even) and -0 (below)
                }
                assert_eq!(Fixed(x, places).to_string(), want, "{x} {places}");
            }
        }
        assert_eq!(format!("{:+}", Fixed(1.25, 3)), format!("{:+.3}", 1.25));
        assert_eq!(format!("{:+}", Fixed(-1.25, 3)), format!("{:+.3}", -1.25));
        assert_eq!(Fixed(-0.04, 1).to_string(), format!("{:.1}", -0.04f64));
        assert_eq!(Fixed(f64::INFINITY, 1).to_string(), "inf");
        assert_eq!(Fixed(f64::NAN, 1).to_string(), "NaN");
        assert_eq!(Fixed(1e30, 1).to_string(), format!("{:.0}.0", 1e30));
    }
}
