//! C-like number scanning: the numbers iipsrv reads out of environment values, IIP arguments
//! and IIIF paths, with the same prefixes, the same leniency and the same results.
//!
//! iipsrv reads numbers in two ways, and a value must mean here what it meant there:
//!
//! | function | as iipsrv reads | white space | sign | fraction | exponent | no digits |
//! |---|---|---|---|---|---|---|
//! | [`atoi`] | C `atoi`/`atol` | skipped | yes | — | — | 0 |
//! | [`atof`] | C `atof` | skipped | yes | yes | yes | 0 |
//! | [`stream_f64`] | C++ `istream >> double` as IIIF sizes and rotations are read | skipped | yes | yes | no | `None` |
//! | [`leading_u64`] | the leading digits of a field (`100abc` → 100) | no | no | — | — | `None` |
//!
//! All four take the longest prefix their grammar allows and ignore the rest; none ever fails.
//! One scanner (`scan`) finds that prefix for a `Grammar`, so the variants differ only in
//! the grammar they pass and in what they make of "no digits". Integers saturate instead of
//! overflowing (C leaves overflow undefined). [`atoi`] and [`atof`] also say whether the whole
//! text was the number ([`Parsed::clean`]), so that the configuration can warn about values
//! such as `true` or `12abc` that iipsrv would silently read as 0 or 12.

/// The result of a C-style parse: the value, and whether the whole text (apart from white
/// space around it) was numeric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Parsed<T> {
    pub value: T,
    pub clean: bool,
}

/// What a numeric prefix may contain, in order: white space, a sign, digits, a fraction
/// (`.` and digits), an exponent (`e`, an optional sign, digits; only after digits).
#[derive(Debug, Clone, Copy)]
struct Grammar {
    leading_space: bool,
    sign: bool,
    fraction: bool,
    exponent: bool,
}

const C_INTEGER: Grammar = Grammar {
    leading_space: true,
    sign: true,
    fraction: false,
    exponent: false,
};
const C_FLOAT: Grammar = Grammar {
    exponent: true,
    fraction: true,
    ..C_INTEGER
};
const STREAM_FLOAT: Grammar = Grammar {
    exponent: false,
    ..C_FLOAT
};
const DIGITS: Grammar = Grammar {
    leading_space: false,
    sign: false,
    fraction: false,
    exponent: false,
};

/// The numeric prefix of a text.
#[derive(Debug, Clone, Copy)]
struct Prefix<'a> {
    /// The number as written (sign, digits, fraction, exponent); empty without digits.
    number: &'a str,
    /// Whether the sign was `-`.
    negative: bool,
    /// What follows the number (the whole text after any white space when there are no digits).
    rest: &'a str,
}

impl Prefix<'_> {
    fn has_digits(&self) -> bool {
        !self.number.is_empty()
    }

    /// Whether nothing but white space follows the number.
    fn clean(&self) -> bool {
        self.has_digits() && self.rest.trim().is_empty()
    }

    /// The digits before any fraction, as a saturating magnitude.
    fn magnitude(&self) -> u64 {
        self.number
            .trim_start_matches(['+', '-'])
            .bytes()
            .take_while(u8::is_ascii_digit)
            .fold(0u64, |v, d| {
                v.saturating_mul(10).saturating_add((d - b'0') as u64)
            })
    }

    /// The number as a float (0 without digits).
    fn float(&self) -> f64 {
        if self.has_digits() {
            self.number.parse::<f64>().unwrap_or(0.0)
        } else {
            0.0
        }
    }
}

/// The one scanner: the longest prefix of `s` that `grammar` reads as a number.
fn scan(s: &str, grammar: Grammar) -> Prefix<'_> {
    let t = if grammar.leading_space {
        s.trim_start()
    } else {
        s
    };
    let b = t.as_bytes();
    let digits_from = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let mut i = 0;
    let mut negative = false;
    if grammar.sign && i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        negative = b[i] == b'-';
        i += 1;
    }
    let int_end = digits_from(i);
    let mut digits = int_end > i;
    i = int_end;
    if grammar.fraction && i < b.len() && b[i] == b'.' {
        let frac_end = digits_from(i + 1);
        digits |= frac_end > i + 1;
        i = frac_end;
    }
    if !digits {
        return Prefix {
            number: "",
            negative,
            rest: t,
        };
    }
    if grammar.exponent && i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        let exp_end = digits_from(j);
        if exp_end > j {
            i = exp_end;
        }
    }
    Prefix {
        number: &t[..i],
        negative,
        rest: &t[i..],
    }
}

/// C `atoi`/`atol`: optional white space, optional sign, digits; stops at the first non-digit;
/// 0 without digits. Saturates at ±`i64::MAX`.
pub fn atoi(s: &str) -> Parsed<i64> {
    let p = scan(s, C_INTEGER);
    let magnitude = p.magnitude().min(i64::MAX as u64) as i64;
    Parsed {
        value: if p.negative { -magnitude } else { magnitude },
        clean: p.clean(),
    }
}

/// C `atof`: the longest prefix that is a decimal floating-point number (with an optional
/// exponent); 0 without digits.
pub fn atof(s: &str) -> Parsed<f64> {
    let p = scan(s, C_FLOAT);
    Parsed {
        value: p.float(),
        clean: p.clean(),
    }
}

/// C++ stream extraction of a `double` as iipsrv reads IIIF numbers: the longest prefix that
/// is a decimal number without exponent (leading white space allowed, trailing text ignored);
/// `None` when there is no digit.
pub fn stream_f64(s: &str) -> Option<f64> {
    let p = scan(s, STREAM_FLOAT);
    p.has_digits().then(|| p.float())
}

/// The leading ASCII digits of `s` as an unsigned integer (`100abc` → 100), saturating at
/// `u64::MAX`; `None` when `s` does not start with a digit (no white space, no sign).
pub fn leading_u64(s: &str) -> Option<u64> {
    let p = scan(s, DIGITS);
    p.has_digits().then(|| p.magnitude())
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
        assert_eq!(atoi("-99999999999999999999999").value, -i64::MAX);
        assert_eq!(atoi("+5 ").value, 5);
        assert!(atoi(" +5 ").clean);
        assert_eq!(atoi("2.9").value, 2, "no fraction");
        assert_eq!(atoi("1e3").value, 1, "no exponent");
        assert!(!atoi("-").clean);
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
        assert_eq!(atof("5.").value, 5.0);
        assert!(atof(" 1.5e-1 ").clean);
        assert_eq!(atof(" 1.5e-1 ").value, 0.15);
        assert_eq!(atof(".e3").value, 0.0, "no exponent without digits");
    }

    #[test]
    fn stream_extraction_has_no_exponent_and_needs_digits() {
        assert_eq!(stream_f64("1e3"), Some(1.0));
        assert_eq!(stream_f64(" 2.5abc"), Some(2.5));
        assert_eq!(stream_f64("-.5"), Some(-0.5));
        assert_eq!(stream_f64("abc"), None);
        assert_eq!(stream_f64("-"), None);
        assert_eq!(stream_f64("."), None);
        assert_eq!(stream_f64(""), None);
    }

    #[test]
    fn leading_digits_take_no_sign_or_space() {
        assert_eq!(leading_u64("100abc"), Some(100));
        assert_eq!(leading_u64("007"), Some(7));
        assert_eq!(leading_u64(" 1"), None);
        assert_eq!(leading_u64("+1"), None);
        assert_eq!(leading_u64("x1"), None);
        assert_eq!(leading_u64("99999999999999999999999"), Some(u64::MAX));
    }
}
