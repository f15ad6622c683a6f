//! C-compatible parsing of environment values, as iipsrv reads them.
//!
//! iipsrv uses `atoi`/`atof`/`atol`: leading white space is skipped, the longest numeric prefix
//! is parsed, anything else gives 0, and nothing is ever an error. We keep those semantics (an
//! institution's existing values must mean the same), but also report values that were not
//! entirely numeric so that the log can warn about them.

/// The result of a C-style numeric parse: the value, and whether the whole text was numeric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Parsed<T> {
    pub value: T,
    pub clean: bool,
}

/// C `atoi`/`atol`: optional white space, optional sign, digits; stops at the first non-digit.
/// Saturates instead of overflowing (C leaves overflow undefined).
pub fn atoi(s: &str) -> Parsed<i64> {
    let t = s.trim_start();
    let b = t.as_bytes();
    let mut i = 0;
    let mut neg = false;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        neg = b[i] == b'-';
        i += 1;
    }
    let start = i;
    let mut v: i64 = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        v = v.saturating_mul(10).saturating_add((b[i] - b'0') as i64);
        i += 1;
    }
    let digits = i > start;
    let value = if neg { -v } else { v };
    let clean = digits && t[i..].trim().is_empty();
    Parsed { value, clean }
}

/// C `atof`: the longest prefix that is a decimal floating-point number.
pub fn atof(s: &str) -> Parsed<f64> {
    let t = s.trim_start();
    let b = t.as_bytes();
    let mut end = 0;
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let mut digits = false;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
        digits = true;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
            digits = true;
        }
    }
    if digits {
        end = i;
        if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
            let mut j = i + 1;
            if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
                j += 1;
            }
            let exp_start = j;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            if j > exp_start {
                end = j;
            }
        }
    }
    let value = if end == 0 {
        0.0
    } else {
        t[..end].parse::<f64>().unwrap_or(0.0)
    };
    let clean = end > 0 && t[end..].trim().is_empty();
    Parsed { value, clean }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atoi_is_c_like() {
        assert_eq!(atoi("42").value, 42);
        assert!(atoi("42").clean);
        assert_eq!(atoi("  -7").value, -7);
        assert_eq!(atoi("12abc").value, 12);
        assert!(!atoi("12abc").clean);
        assert_eq!(atoi("true").value, 0);
        assert!(!atoi("true").clean);
        assert_eq!(atoi("").value, 0);
        assert_eq!(atoi("99999999999999999999999").value, i64::MAX);
    }

    #[test]
    fn atof_is_c_like() {
        assert_eq!(atof("10").value, 10.0);
        assert_eq!(atof("2.5MB").value, 2.5);
        assert!(!atof("2.5MB").clean);
        assert_eq!(atof(".5").value, 0.5);
        assert_eq!(atof("1e3").value, 1000.0);
        assert_eq!(atof("1e").value, 1.0);
        assert_eq!(atof("abc").value, 0.0);
        assert_eq!(atof("-0.25").value, -0.25);
    }
}
