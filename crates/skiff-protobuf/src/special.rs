//! Text forms of the Go types with custom JSON: metav1.Time, MicroTime and Duration.

use chrono::DateTime;

/// metav1.Time (`2006-01-02T15:04:05Z`, fraction dropped as Go's RFC3339 layout does) or
/// MicroTime (six fractional digits); `None` when out of chrono's range.
pub(crate) fn format_time(seconds: i64, nanos: i32, micro: bool) -> Option<String> {
    let nanos = u32::try_from(nanos).ok()?;
    let time = DateTime::from_timestamp(seconds, nanos)?;
    let layout = if micro {
        "%Y-%m-%dT%H:%M:%S%.6fZ"
    } else {
        "%Y-%m-%dT%H:%M:%SZ"
    };
    Some(time.format(layout).to_string())
}

/// Go's `time.Duration.String()`: `1h2m3.5s`, `1.5ms`, `0s`; units below a second only for
/// durations shorter than one second, trailing fractional zeros dropped.
pub(crate) fn format_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_owned();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let abs = nanos.unsigned_abs();
    if abs < 1_000_000_000 {
        let (scale, unit) = match abs {
            0..1_000 => (1, "ns"),
            1_000..1_000_000 => (1_000, "µs"),
            _ => (1_000_000, "ms"),
        };
        return format!("{sign}{}{unit}", decimal(abs, scale));
    }
    let seconds = abs / 1_000_000_000;
    let (hours, minutes) = (seconds / 3600, seconds / 60 % 60);
    let rest = decimal(abs % 60_000_000_000, 1_000_000_000);
    match (hours, seconds / 60) {
        (0, 0) => format!("{sign}{rest}s"),
        (0, _) => format!("{sign}{minutes}m{rest}s"),
        _ => format!("{sign}{hours}h{minutes}m{rest}s"),
    }
}

/// `value / scale` in decimal without trailing fractional zeros.
fn decimal(value: u64, scale: u64) -> String {
    let (whole, fraction) = (value / scale, value % scale);
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = scale.ilog10() as usize;
    let fraction = format!("{fraction:0digits$}");
    format!("{whole}.{}", fraction.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_like_go() {
        let cases = [
            (0, "0s"),
            (1, "1ns"),
            (1_100, "1.1µs"),
            (2_200_000, "2.2ms"),
            (1_000_000_000, "1s"),
            (3_500_000_000, "3.5s"),
            (60_000_000_000, "1m0s"),
            (3_600_000_000_000, "1h0m0s"),
            (3_723_000_000_001, "1h2m3.000000001s"),
            (-90_000_000_000, "-1m30s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ];
        for (nanos, want) in cases {
            assert_eq!(format_duration(nanos), want, "{nanos}ns");
        }
    }

    #[test]
    fn times_print_like_metav1() {
        assert_eq!(
            format_time(0, 0, false).as_deref(),
            Some("1970-01-01T00:00:00Z")
        );
        assert_eq!(
            format_time(1_700_000_000, 123_456_789, false).as_deref(),
            Some("2023-11-14T22:13:20Z")
        );
        assert_eq!(
            format_time(1_700_000_000, 123_456_789, true).as_deref(),
            Some("2023-11-14T22:13:20.123456Z")
        );
        assert_eq!(format_time(0, -1, false), None);
    }
}
