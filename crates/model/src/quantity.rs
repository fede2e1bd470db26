//! Kubernetes resource quantities (`500m`, `2`, `1.5Gi`, `129e6`), parsed once and compared exactly.
//!
//! The grammar is the Kubernetes one: an optional sign, a decimal number (`1`, `1.5`, `.5`, `1.`)
//! and an optional suffix — decimal SI (`n u m k M G T P E`), binary SI (`Ki Mi Gi Ti Pi Ei`) or a
//! decimal exponent (`e3`, `E-2`). A value is kept as `±mantissa × 10^exp10 × 2^exp2`, so `1Gi`,
//! `1073741824` and `0.5Gi` vs `512Mi` compare exactly, without floating point.
//!
//! Why not a crate: `kube_quantity` 0.9 (the kube ecosystem's quantity crate) reads the number as an
//! `f64` before turning it into a decimal, so `0.1`, 20-digit values and the Kubernetes limit of
//! 30 significant digits do not come out exactly; `k8s_quantity_parser` handles only CPU and memory
//! into `i64`. Kubernetes compares quantities exactly, and so must admission and the diff.

use std::cmp::Ordering;
use std::fmt;

/// Why a string is not a quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The number part is missing or malformed (`""`, `"."`, `"1.2.3"`, `"--1"`).
    #[error("expected a number")]
    NotANumber,
    /// More than 30 significant digits.
    #[error("too many digits")]
    TooManyDigits,
    /// An `e`/`E` suffix not followed by an integer.
    #[error("invalid exponent {0:?}")]
    InvalidExponent(String),
    /// An `e`/`E` exponent outside `-30..=30`.
    #[error("exponent out of range")]
    ExponentOutOfRange,
    /// A suffix that is none of the above.
    #[error("unknown suffix {0:?}")]
    UnknownSuffix(String),
}

/// A parsed Kubernetes quantity: `±mantissa × 10^exp10 × 2^exp2`, remembering its text.
///
/// Equality and ordering are by value (`"1" == "1000m"`), not by text.
#[derive(Clone, Debug)]
pub struct Quantity {
    text: String,
    negative: bool,
    mantissa: u128,
    exp10: i32,
    exp2: u32,
}

impl Quantity {
    /// Parse `[+-]<number>[<suffix>]`. The input is taken as is: surrounding spaces are an error.
    pub fn parse(s: &str) -> Result<Quantity, QuantityError> {
        let (negative, unsigned) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        let split = unsigned
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(unsigned.len());
        let (num, suffix) = unsigned.split_at(split);
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(QuantityError::NotANumber);
        }
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        let digits = format!("{int}{frac}");
        let digits = digits.trim_start_matches('0');
        if digits.len() > 30 {
            return Err(QuantityError::TooManyDigits);
        }
        let mantissa: u128 = if digits.is_empty() {
            0
        } else {
            digits.parse().map_err(|_| QuantityError::NotANumber)?
        };
        let frac_len = i32::try_from(frac.len()).map_err(|_| QuantityError::TooManyDigits)?;
        let mut exp10 = -frac_len;
        let mut exp2 = 0;
        match suffix {
            "" => {}
            "n" => exp10 -= 9,
            "u" => exp10 -= 6,
            "m" => exp10 -= 3,
            "k" => exp10 += 3,
            "M" => exp10 += 6,
            "G" => exp10 += 9,
            "T" => exp10 += 12,
            "P" => exp10 += 15,
            "E" => exp10 += 18,
            "Ki" => exp2 = 10,
            "Mi" => exp2 = 20,
            "Gi" => exp2 = 30,
            "Ti" => exp2 = 40,
            "Pi" => exp2 = 50,
            "Ei" => exp2 = 60,
            e if e.starts_with(['e', 'E']) => {
                let n: i32 = e[1..]
                    .parse()
                    .map_err(|_| QuantityError::InvalidExponent(e.to_string()))?;
                if !(-30..=30).contains(&n) {
                    return Err(QuantityError::ExponentOutOfRange);
                }
                exp10 += n;
            }
            other => return Err(QuantityError::UnknownSuffix(other.to_string())),
        }
        Ok(Quantity {
            text: s.to_string(),
            negative: negative && mantissa != 0,
            mantissa,
            exp10,
            exp2,
        })
    }

    /// The text this quantity was parsed from.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The suffix as written (`"Mi"`, `"m"`, `"e3"`, or `""`).
    pub fn suffix(&self) -> &str {
        let t = self.text.trim_start_matches(['+', '-']);
        let i = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        &t[i..]
    }

    /// Whether the value is below zero (`"-0"` is not).
    pub fn is_negative(&self) -> bool {
        self.negative
    }

    /// The value times `10^digits`, its magnitude rounded up (away from zero) to an integer, as
    /// Kubernetes does: `scaled_ceil(3)` is the milli-value, `scaled_ceil(0)` the value.
    /// `None` when it does not fit in an `i128`.
    pub fn scaled_ceil(&self, digits: i32) -> Option<i128> {
        let num = self.mantissa.checked_mul(1u128.checked_shl(self.exp2)?)?;
        let e = self.exp10.checked_add(digits)?;
        let magnitude = if e >= 0 {
            num.checked_mul(10u128.checked_pow(e.unsigned_abs())?)?
        } else {
            match 10u128.checked_pow(e.unsigned_abs()) {
                Some(den) => num.div_ceil(den),
                // The divisor exceeds any u128 numerator: a non-zero value rounds up to 1.
                None => u128::from(num != 0),
            }
        };
        let v = i128::try_from(magnitude).ok()?;
        Some(if self.negative { -v } else { v })
    }

    /// The value in thousandths (`"500m"` → 500, `"2"` → 2000), rounded up.
    pub fn milli_value(&self) -> Option<i128> {
        self.scaled_ceil(3)
    }

    /// The value in whole units (bytes for memory), rounded up (`"1Ki"` → 1024, `"0.5"` → 1).
    pub fn value(&self) -> Option<i128> {
        self.scaled_ceil(0)
    }

    /// Compare magnitudes exactly when both values, brought to a common scale, fit in a u128.
    fn cmp_magnitude(&self, other: &Self) -> Ordering {
        if self.mantissa == 0 || other.mantissa == 0 {
            return self.mantissa.min(1).cmp(&other.mantissa.min(1));
        }
        let e10 = self.exp10.min(other.exp10);
        let e2 = self.exp2.min(other.exp2);
        let scale = |q: &Self| -> Option<u128> {
            q.mantissa
                .checked_mul(1u128.checked_shl(q.exp2 - e2)?)?
                .checked_mul(10u128.checked_pow((q.exp10 - e10).unsigned_abs())?)
        };
        match (scale(self), scale(other)) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => {
                // Past u128 (common-scale values over ~10^38, e.g. `1e30` vs `1e-30`): compare
                // logarithms. Exact unless the two agree to about 15 significant digits.
                let log = |q: &Self| {
                    (q.mantissa as f64).log10()
                        + f64::from(q.exp10)
                        + f64::from(q.exp2) * std::f64::consts::LOG10_2
                };
                log(self).total_cmp(&log(other))
            }
        }
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s)
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.negative, other.negative) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => self.cmp_magnitude(other),
            (true, true) => other.cmp_magnitude(self),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap()
    }

    #[test]
    fn decimal_suffixes() {
        assert_eq!(q("1n").scaled_ceil(9), Some(1));
        assert_eq!(q("1u").scaled_ceil(9), Some(1_000));
        assert_eq!(q("500m").milli_value(), Some(500));
        assert_eq!(q("2").milli_value(), Some(2_000));
        assert_eq!(q("1k").value(), Some(1_000));
        assert_eq!(q("1M").value(), Some(1_000_000));
        assert_eq!(q("1G").value(), Some(1_000_000_000));
        assert_eq!(q("1T").value(), Some(1_000_000_000_000));
        assert_eq!(q("1P").value(), Some(1_000_000_000_000_000));
        assert_eq!(q("1E").value(), Some(1_000_000_000_000_000_000));
    }

    #[test]
    fn binary_suffixes() {
        assert_eq!(q("1Ki").value(), Some(1 << 10));
        assert_eq!(q("1Mi").value(), Some(1 << 20));
        assert_eq!(q("32Gi").value(), Some(32 << 30));
        assert_eq!(q("1Ti").value(), Some(1 << 40));
        assert_eq!(q("1Pi").value(), Some(1 << 50));
        assert_eq!(q("1Ei").value(), Some(1 << 60));
        assert_eq!(q("1Gi").milli_value(), Some(1_073_741_824_000));
        assert_eq!(q("1.5Ki").value(), Some(1536));
    }

    #[test]
    fn exponents_and_decimals() {
        assert_eq!(q("129e6").value(), Some(129_000_000));
        assert_eq!(q("1.5E3").value(), Some(1_500));
        assert_eq!(q("1e-3").milli_value(), Some(1));
        assert_eq!(q("0.5").milli_value(), Some(500));
        assert_eq!(q(".5").milli_value(), Some(500));
        assert_eq!(q("1.").milli_value(), Some(1_000));
        assert_eq!(q("+2").value(), Some(2));
        assert_eq!(q("-2").value(), Some(-2));
        assert!(q("-2").is_negative());
        assert!(!q("-0").is_negative());
        assert_eq!(q("128974848").value(), Some(128_974_848));
    }

    #[test]
    fn rounds_magnitude_up() {
        assert_eq!(q("0.5").value(), Some(1));
        assert_eq!(q("1.0001").milli_value(), Some(1_001));
        assert_eq!(q("1n").milli_value(), Some(1));
        assert_eq!(q("-1.5").value(), Some(-2));
        assert_eq!(q("1e-30").scaled_ceil(9), Some(1));
        assert_eq!(q("0e-30").scaled_ceil(9), Some(0));
        assert_eq!(q("1Ei").scaled_ceil(30), None, "overflow is None");
    }

    #[test]
    fn compares_exactly() {
        assert!(q("1") == q("1000m"));
        assert!(q("1Gi") > q("1G"));
        assert!(q("1.5") == q("1500m"));
        assert!(q("0.5Gi") == q("512Mi"));
        assert!(q("1Gi") == q("1073741824"));
        assert!(q("1e3") == q("1k"));
        assert!(q("100m") < q("0.2"));
        assert!(q(".5") == q("500m"));
        assert!(q("1Ei") > q("1E"));
        assert!(q("1000000000n") == q("1"));
        assert!(q("-1") < q("0"));
        assert!(q("-2") < q("-1"));
        assert!(q("-0") == q("0m"));
        assert!(q("0") < q("1n"));
        // Differ only in the 30th significant digit.
        assert!(q("100000000000000000000000000001") > q("100000000000000000000000000000"));
        // Scales too far apart for exact arithmetic still order correctly.
        assert!(q("1e30") > q("1e-30"));
        assert!(q("1Ei") > q("1e-30"));
        assert_eq!(q("2").max(q("1500m")).as_str(), "2");
    }

    #[test]
    fn keeps_text_and_suffix() {
        assert_eq!(q("512Mi").to_string(), "512Mi");
        assert_eq!(q("512Mi").suffix(), "Mi");
        assert_eq!(q("-1.5e3").suffix(), "e3");
        assert_eq!(q("7").suffix(), "");
        assert_eq!(
            "250m".parse::<Quantity>().map(|x| x.milli_value()),
            Ok(Some(250))
        );
    }

    #[test]
    fn rejects_bad_input() {
        use QuantityError::*;
        let cases: &[(&str, QuantityError)] = &[
            ("", NotANumber),
            ("abc", NotANumber),
            (".", NotANumber),
            ("1.2.3", NotANumber),
            ("--1", NotANumber),
            ("m", NotANumber),
            (" 1", NotANumber),
            ("1Q", UnknownSuffix("Q".into())),
            ("2GB", UnknownSuffix("GB".into())),
            ("1 ", UnknownSuffix(" ".into())),
            ("1ki", UnknownSuffix("ki".into())),
            ("1ee", InvalidExponent("ee".into())),
            ("1e", InvalidExponent("e".into())),
            ("1e31", ExponentOutOfRange),
            ("1234567890123456789012345678901", TooManyDigits),
        ];
        for (bad, want) in cases {
            assert_eq!(Quantity::parse(bad).err().as_ref(), Some(want), "{bad:?}");
        }
        assert_eq!(
            QuantityError::UnknownSuffix("Q".into()).to_string(),
            "unknown suffix \"Q\""
        );
    }
}
