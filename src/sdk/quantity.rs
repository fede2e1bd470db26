//! Parsing of Kubernetes resource quantities into milli-units (CPU) and bytes (memory).

/// Value of a quantity in milli-units (`"500m"` → 500, `"2"` → 2000, `"1Gi"` → 1073741824000).
pub fn parse_milli(q: &str) -> Option<i128> {
    let q = q.trim();
    if q.is_empty() {
        return None;
    }
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    // Exponent form: 12e6, 1.5E3.
    let (num, exp10): (&str, i32) = if let Some(rest) = suffix.strip_prefix(['e', 'E']) {
        (num, rest.parse().ok()?)
    } else {
        (num, 0)
    };
    let (mult_num, mult_den): (i128, i128) = match if exp10 != 0 { "" } else { suffix } {
        "" => (1000, 1),
        "m" => (1, 1),
        "u" => (1, 1000),
        "n" => (1, 1_000_000),
        "k" => (1_000_000, 1),
        "M" => (1_000_000_000, 1),
        "G" => (1_000_000_000_000, 1),
        "T" => (1_000_000_000_000_000, 1),
        "P" => (1_000_000_000_000_000_000, 1),
        "Ki" => (1024 * 1000, 1),
        "Mi" => (1024 * 1024 * 1000, 1),
        "Gi" => (1024 * 1024 * 1024 * 1000, 1),
        "Ti" => (1024i128.pow(4) * 1000, 1),
        "Pi" => (1024i128.pow(5) * 1000, 1),
        _ => return None,
    };
    let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
    let neg = int_part.starts_with('-');
    let int_part = int_part.trim_start_matches(['+', '-']);
    let digits = format!("{int_part}{frac_part}");
    let mut value: i128 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    let mut scale: i32 = exp10 - frac_part.len() as i32;
    let mut num_mult = mult_num;
    while scale > 0 {
        num_mult = num_mult.checked_mul(10)?;
        scale -= 1;
    }
    let mut den = mult_den;
    while scale < 0 {
        den = den.checked_mul(10)?;
        scale += 1;
    }
    value = value.checked_mul(num_mult)?;
    // Round up, as Kubernetes does for milli-values.
    let v = (value + den - 1) / den;
    Some(if neg { -v } else { v })
}

/// Value in whole units (bytes for memory), rounded up.
pub fn parse_units(q: &str) -> Option<i128> {
    parse_milli(q).map(|m| (m + 999).div_euclid(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(parse_milli("500m"), Some(500));
        assert_eq!(parse_milli("2"), Some(2000));
        assert_eq!(parse_milli("0.5"), Some(500));
        assert_eq!(parse_units("32Gi"), Some(32 * 1024 * 1024 * 1024));
        assert_eq!(parse_units("1G"), Some(1_000_000_000));
        assert_eq!(parse_units("129e6"), Some(129_000_000));
        assert_eq!(parse_units("128974848"), Some(128_974_848));
        assert_eq!(parse_milli("x"), None);
    }
}
