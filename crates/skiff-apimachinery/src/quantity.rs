//! Resource quantities (`100m`, `1Gi`, `1e3`) parsed and printed as upstream's
//! `resource.Quantity`, so validation, the scheduler and table cells agree on one value.

use std::cmp::Ordering;
use std::fmt;

/// Why a quantity string was rejected; the messages are upstream's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The string is not `<number><suffix>` at all.
    #[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")]
    Format,
    /// The suffix is not one of the SI, binary or exponent suffixes.
    #[error("unable to parse quantity's suffix")]
    Suffix,
    /// The number does not fit the range skiff supports (about ±1.7e29).
    #[error("unable to parse numeric part of quantity")]
    Numeric,
}

/// How a quantity was written, which decides how it prints back (upstream `Format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `1Ki`, `5Gi`: powers of 1024.
    BinarySI,
    /// `100m`, `5k`, plain numbers: powers of 1000.
    DecimalSI,
    /// `1e3`, `5E-3`.
    DecimalExponent,
}

/// A parsed quantity: an exact value in units of 10^-9, rounded up like upstream, which
/// rounds anything finer than nano up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    nanos: i128,
    format: Format,
}

const NANO: i128 = 1_000_000_000;

/// Parses a quantity string as upstream's `resource.ParseQuantity`.
pub fn parse_quantity(s: &str) -> Result<Quantity, QuantityError> {
    Quantity::parse(s)
}

impl Quantity {
    /// Parses a quantity string as upstream's `resource.ParseQuantity`.
    pub fn parse(s: &str) -> Result<Quantity, QuantityError> {
        if s.is_empty() {
            return Err(QuantityError::Format);
        }
        let bytes = s.as_bytes();
        let mut i = 0;
        let negative = match bytes.first() {
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
        let int_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let int_part = &s[int_start..i];
        let mut frac_part = "";
        if i < bytes.len() && bytes[i] == b'.' {
            i += 1;
            let frac_start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            frac_part = &s[frac_start..i];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(QuantityError::Format);
        }
        let suffix = &s[i..];
        let (base, exponent, format) = interpret_suffix(suffix)?;

        // value = (int.frac) * base^exponent, computed exactly in nanos where possible.
        let digits = format!("{int_part}{frac_part}");
        let mut mantissa: i128 = 0;
        for d in digits.bytes() {
            mantissa = mantissa
                .checked_mul(10)
                .and_then(|m| m.checked_add(i128::from(d - b'0')))
                .ok_or(QuantityError::Numeric)?;
        }
        // mantissa * 10^(-frac_len) * base^exponent * 10^9, rounded up.
        let frac_len = i32::try_from(frac_part.len()).map_err(|_| QuantityError::Numeric)?;
        let (num, den) = match base {
            2 => {
                let mult = 1i128
                    .checked_shl(u32::try_from(exponent).map_err(|_| QuantityError::Numeric)?)
                    .ok_or(QuantityError::Numeric)?;
                scale10(
                    mantissa.checked_mul(mult).ok_or(QuantityError::Numeric)?,
                    9 - frac_len,
                )?
            }
            _ => scale10(
                mantissa,
                exponent
                    .checked_add(9)
                    .and_then(|e| e.checked_sub(frac_len))
                    .ok_or(QuantityError::Numeric)?,
            )?,
        };
        let mut nanos = num / den;
        if num % den != 0 {
            nanos += 1;
        }
        if negative {
            // Upstream rounds the magnitude up, so -0.0000000001 becomes -1n.
            nanos = -nanos;
        }
        Ok(Quantity { nanos, format })
    }

    /// The value in thousandths, rounded up (upstream `MilliValue`): CPU in millicores.
    pub fn milli_value(&self) -> i128 {
        div_ceil(self.nanos, 1_000_000)
    }

    /// The value rounded up to an integer (upstream `Value`): memory and storage in bytes.
    pub fn value(&self) -> i128 {
        div_ceil(self.nanos, NANO)
    }

    /// The exact value in units of 10^-9.
    pub fn nano_value(&self) -> i128 {
        self.nanos
    }

    /// How the quantity was written.
    pub fn format(&self) -> Format {
        self.format
    }

    /// True for a negative quantity.
    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    /// A whole number in decimal SI form (`4`), as upstream's `NewQuantity(n, DecimalSI)`:
    /// what object counts are.
    pub fn from_int(value: i64) -> Quantity {
        Quantity {
            nanos: i128::from(value) * NANO,
            format: Format::DecimalSI,
        }
    }

    /// `value` whole units printed in `format` (upstream's `NewQuantity`): `new(1 << 20,
    /// Format::BinarySI)` prints `1Mi`.
    pub fn new(value: u64, format: Format) -> Quantity {
        Quantity {
            nanos: i128::from(value) * NANO,
            format,
        }
    }

    /// `value` billionths in decimal SI (upstream's `NewScaledQuantity(value, -9)`): CPU in
    /// nanocores prints `250m` or `123456n`.
    pub fn from_nanos(value: u64) -> Quantity {
        Quantity {
            nanos: i128::from(value),
            format: Format::DecimalSI,
        }
    }

    /// Zero, in the given format.
    pub fn zero(format: Format) -> Quantity {
        Quantity { nanos: 0, format }
    }

    /// True for zero.
    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// The sum, keeping this quantity's format (upstream's `Add`, which keeps the
    /// receiver's unless it is zero); None when it leaves the supported range.
    pub fn checked_add(&self, other: &Quantity) -> Option<Quantity> {
        // Upstream's `Add` onto a zero takes the other's format: 0 + 1Gi prints `1Gi`.
        let format = if self.nanos == 0 {
            other.format
        } else {
            self.format
        };
        Some(Quantity {
            nanos: self.nanos.checked_add(other.nanos)?,
            format,
        })
    }

    /// The difference, keeping this quantity's format; None when it leaves the range.
    pub fn checked_sub(&self, other: &Quantity) -> Option<Quantity> {
        Some(Quantity {
            nanos: self.nanos.checked_sub(other.nanos)?,
            format: self.format,
        })
    }
}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.nanos.cmp(&other.nanos))
    }
}

/// Returns `(base, exponent, format)` for a suffix, as upstream's suffixer.
fn interpret_suffix(suffix: &str) -> Result<(u32, i32, Format), QuantityError> {
    let decimal = |e| Ok((10, e, Format::DecimalSI));
    let binary = |e| Ok((2, e, Format::BinarySI));
    match suffix {
        "" => decimal(0),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        s if s.starts_with(['e', 'E'])
            && s.len() > 1
            && s[1..]
                .trim_start_matches(['+', '-'])
                .bytes()
                .all(|b| b.is_ascii_digit()) =>
        {
            let exp: i32 = s[1..].parse().map_err(|_| QuantityError::Suffix)?;
            Ok((10, exp, Format::DecimalExponent))
        }
        // Upstream scans suffix characters from this set and rejects any other as a format
        // error; a scanned suffix it does not know is a suffix error.
        s if s.bytes().all(|b| b"eEinumkKMGTP".contains(&b)) => Err(QuantityError::Suffix),
        _ => Err(QuantityError::Format),
    }
}

/// `value * 10^exp` as a fraction `(numerator, denominator)`.
fn scale10(value: i128, exp: i32) -> Result<(i128, i128), QuantityError> {
    let pow = 10i128
        .checked_pow(exp.unsigned_abs())
        .ok_or(QuantityError::Numeric)?;
    if exp >= 0 {
        Ok((value.checked_mul(pow).ok_or(QuantityError::Numeric)?, 1))
    } else {
        Ok((value, pow))
    }
}

fn div_ceil(a: i128, b: i128) -> i128 {
    let q = a / b;
    if a % b != 0 && a > 0 {
        q + 1
    } else {
        q
    }
}

impl fmt::Display for Quantity {
    /// Upstream's canonical form: `1Gi` stays `1Gi`, `1000m` prints `1`, `1500` prints
    /// `1500`, `0.5` prints `500m`, small or fractional binary values fall back to SI.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nanos == 0 {
            return f.write_str("0");
        }
        let sign = if self.nanos < 0 { "-" } else { "" };
        let abs = self.nanos.unsigned_abs();
        let whole = abs.checked_rem(NANO as u128) == Some(0);
        if self.format == Format::BinarySI && whole && abs >= 1024 * NANO as u128 {
            let mut units = abs / NANO as u128;
            let mut exp = 0;
            while units.checked_rem(1024) == Some(0) && exp < 6 {
                units /= 1024;
                exp += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][exp];
            return write!(f, "{sign}{units}{suffix}");
        }
        // Strip factors of ten, then lower the exponent to a multiple of three.
        let mut mantissa = abs;
        let mut exp: i32 = -9;
        while mantissa.checked_rem(10) == Some(0) {
            mantissa /= 10;
            exp += 1;
        }
        match exp.rem_euclid(3) {
            1 => {
                mantissa *= 10;
                exp -= 1;
            }
            2 => {
                mantissa *= 100;
                exp -= 2;
            }
            _ => {}
        }
        let suffix = if self.format == Format::DecimalExponent {
            if exp == 0 {
                String::new()
            } else {
                format!("e{exp}")
            }
        } else {
            match exp {
                -9 => "n".into(),
                -6 => "u".into(),
                -3 => "m".into(),
                0 => String::new(),
                3 => "k".into(),
                6 => "M".into(),
                9 => "G".into(),
                12 => "T".into(),
                15 => "P".into(),
                18 => "E".into(),
                e => format!("e{e}"),
            }
        };
        write!(f, "{sign}{mantissa}{suffix}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse_to_upstream_values() {
        let cases: &[(&str, i128, i128, &str)] = &[
            // input, milli, value (rounded up), canonical
            ("100m", 100, 1, "100m"),
            ("1", 1000, 1, "1"),
            ("1000m", 1000, 1, "1"),
            ("0.5", 500, 1, "500m"),
            ("1.5", 1500, 2, "1500m"),
            ("2", 2000, 2, "2"),
            ("1k", 1_000_000, 1000, "1k"),
            ("1500", 1_500_000, 1500, "1500"),
            ("1Ki", 1_024_000, 1024, "1Ki"),
            ("1Gi", 1_073_741_824_000, 1_073_741_824, "1Gi"),
            ("10Gi", 10_737_418_240_000, 10_737_418_240, "10Gi"),
            ("1536Mi", 1_610_612_736_000, 1_610_612_736, "1536Mi"),
            ("512Ki", 524_288_000, 524_288, "512Ki"),
            ("1e3", 1_000_000, 1000, "1e3"),
            ("1E3", 1_000_000, 1000, "1e3"),
            ("128974848", 128_974_848_000, 128_974_848, "128974848"),
            ("129M", 129_000_000_000, 129_000_000, "129M"),
            ("0", 0, 0, "0"),
            ("-1", -1000, -1, "-1"),
            ("+5", 5000, 5, "5"),
            (".5", 500, 1, "500m"),
            ("1n", 1, 1, "1n"),
            ("0.1m", 1, 1, "100u"),
        ];
        for (input, milli, value, canonical) in cases {
            let q = parse_quantity(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(q.milli_value(), *milli, "{input} milli");
            assert_eq!(q.value(), *value, "{input} value");
            assert_eq!(q.to_string(), *canonical, "{input} canonical");
        }
    }

    #[test]
    fn malformed_quantities_are_rejected_with_upstream_messages() {
        let cases = [
            ("", QuantityError::Format),
            ("abc", QuantityError::Format),
            ("1Gb", QuantityError::Format),
            ("1KiB", QuantityError::Format),
            ("1Kk", QuantityError::Suffix),
            (".", QuantityError::Format),
        ];
        for (input, want) in cases {
            assert_eq!(parse_quantity(input), Err(want.clone()), "{input:?}");
        }
        assert_eq!(
            QuantityError::Format.to_string(),
            "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        );
    }

    /// Exponents near i32's limits once overflowed while scaling to nanos (a panic on input).
    #[test]
    fn extreme_exponents_are_refused_not_overflowed() {
        for input in [
            "1e2147483647",
            "1.5e2147483647",
            "1e-2147483648",
            "1.5e-2147483648",
        ] {
            assert_eq!(
                parse_quantity(input),
                Err(QuantityError::Numeric),
                "{input:?}"
            );
        }
    }

    #[test]
    fn quantities_compare_by_value() {
        let q = |s| parse_quantity(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert!(q("500m") < q("1"));
        assert!(q("1Gi") > q("1G"));
        assert_eq!(q("1000m").nano_value(), q("1").nano_value());
    }

    #[test]
    fn sums_keep_the_first_format_and_refuse_overflow() {
        let q = |s| Quantity::parse(s).unwrap();
        assert_eq!(q("500m").checked_add(&q("1")).unwrap().to_string(), "1500m");
        assert_eq!(q("1Gi").checked_add(&q("1Gi")).unwrap().to_string(), "2Gi");
        assert_eq!(
            Quantity::from_int(3)
                .checked_sub(&q("1"))
                .unwrap()
                .to_string(),
            "2"
        );
        assert!(Quantity::from_int(0).is_zero());
        let zero = Quantity::zero(Format::DecimalSI);
        assert_eq!(zero.checked_add(&q("1Gi")).unwrap().to_string(), "1Gi");
        let big = Quantity {
            nanos: i128::MAX,
            format: Format::DecimalSI,
        };
        assert!(big.checked_add(&q("1")).is_none());
    }
}
