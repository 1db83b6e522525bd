//! Go's `time.Duration.String()`, the one home of it: `metav1.Duration` fields (a
//! PodMetrics `window`) are written in it, and the kubelet's messages print it (`Pulled ... in
//! 1.234s`, `back-off 10s restarting ...`). Go's Duration is a signed count of nanoseconds, so
//! that is what is formatted; a caller wanting a coarser precision (the kubelet truncates to
//! milliseconds) truncates first with [`truncated`].

use std::time::Duration;

/// `time.Duration(ns).String()`: `0s`, `1ns`, `1.1µs`, `2.2ms`, `3.3s`, `4m5s`,
/// `5h6m7.001s`, `-1m0.5s`; units below a second only when the whole duration is below one.
pub fn go_string(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let sign = if ns < 0 { "-" } else { "" };
    // unsigned_abs keeps i64::MIN, whose magnitude no i64 holds.
    let ns = ns.unsigned_abs();
    // `value / unit` with the remainder as trailing decimals, trailing zeros dropped.
    let frac = |value: u64, unit: u64| -> String {
        let (whole, rest) = (value / unit, value % unit);
        if rest == 0 {
            return whole.to_string();
        }
        let width = unit.ilog10() as usize;
        let digits = format!("{rest:0width$}");
        format!("{whole}.{}", digits.trim_end_matches('0'))
    };
    if ns < 1_000 {
        return format!("{sign}{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{sign}{}µs", frac(ns, 1_000));
    }
    if ns < 1_000_000_000 {
        return format!("{sign}{}ms", frac(ns, 1_000_000));
    }
    let secs = format!("{}s", frac(ns % 60_000_000_000, 1_000_000_000));
    let minutes = ns / 60_000_000_000;
    match (minutes / 60, minutes % 60) {
        (0, 0) => format!("{sign}{secs}"),
        (0, m) => format!("{sign}{m}m{secs}"),
        (h, m) => format!("{sign}{h}h{m}m{secs}"),
    }
}

/// `d.Truncate(precision)` as Go's nanosecond count (saturating at `i64::MAX`, Go's
/// largest Duration); a zero precision keeps every nanosecond, as Go's Truncate does.
pub fn truncated(d: Duration, precision: Duration) -> i64 {
    let ns = d.as_nanos();
    let unit = precision.as_nanos();
    let ns = if unit == 0 { ns } else { ns - ns % unit };
    i64::try_from(ns).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Go's `durationTests` (src/time/time_test.go), each also negated as TestDurationString
    /// does.
    #[test]
    fn formats_as_go_time_duration_string() {
        const NS: i64 = 1;
        const US: i64 = 1_000 * NS;
        const MS: i64 = 1_000 * US;
        const S: i64 = 1_000 * MS;
        const M: i64 = 60 * S;
        const H: i64 = 60 * M;
        let cases = [
            ("0s", 0),
            ("1ns", NS),
            ("1.1µs", 1100 * NS),
            ("2.2ms", 2200 * US),
            ("3.3s", 3300 * MS),
            ("4m5s", 4 * M + 5 * S),
            ("4m5.001s", 4 * M + 5001 * MS),
            ("5h6m7.001s", 5 * H + 6 * M + 7001 * MS),
            ("8m0.000000001s", 8 * M + NS),
            ("2562047h47m16.854775807s", i64::MAX),
            ("-2562047h47m16.854775808s", i64::MIN),
        ];
        for (want, ns) in cases {
            assert_eq!(go_string(ns), want, "{ns}");
            if ns != 0 && ns != i64::MIN {
                assert_eq!(go_string(-ns), format!("-{want}"), "{}", -ns);
            }
        }
    }

    /// The kubelet's `Pulled` message truncates to milliseconds; backoffs are whole seconds.
    #[test]
    fn truncation_to_a_precision() {
        let ms = Duration::from_millis(1);
        let cases = [
            (Duration::from_micros(1_234_567), ms, "1.234s"),
            (Duration::from_millis(523), ms, "523ms"),
            (Duration::from_millis(62_500), ms, "1m2.5s"),
            (Duration::from_micros(10), ms, "0s"),
            (Duration::from_secs(300), Duration::from_secs(1), "5m0s"),
            (Duration::from_nanos(1_500), Duration::ZERO, "1.5µs"),
            (Duration::MAX, ms, "2562047h47m16.854775807s"),
        ];
        for (d, precision, want) in cases {
            assert_eq!(go_string(truncated(d, precision)), want, "{d:?}");
        }
    }
}
