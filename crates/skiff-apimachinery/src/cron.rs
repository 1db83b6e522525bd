//! CronJob schedules: parsed as upstream's `cron.ParseStandard` (robfig/cron v3) does, with
//! its error messages where they are user-visible, and evaluated in a time zone.
//!
//! One home for both the apiserver's validation and the CronJob controller, so a schedule
//! accepted at create is always one the controller can run. Field syntax is checked by the
//! `croner` crate; the descriptors (`@hourly`, `@every 5m`), the `TZ=`/`CRON_TZ=` prefix and
//! the field count are handled here because their messages are part of upstream's API.

use chrono::{DateTime, Duration, TimeZone, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

/// A parsed schedule: a cron pattern in a time zone, or a constant delay (`@every`).
#[derive(Clone, Debug)]
pub enum Schedule {
    /// Five cron fields evaluated in `tz` (UTC when the schedule names none).
    Pattern {
        /// The parsed fields.
        cron: Box<Cron>,
        /// The zone from `TZ=`/`CRON_TZ=`, if any.
        tz: Option<Tz>,
    },
    /// `@every <duration>`: robfig's constant-delay schedule, rounded to whole seconds.
    Every(Duration),
}

/// Parses `schedule` as `cron.ParseStandard` does; the error is robfig's message.
pub fn parse(schedule: &str) -> Result<Schedule, String> {
    let spec = schedule.trim();
    if spec.is_empty() {
        return Err("empty spec string".into());
    }
    let (tz, body) = match spec
        .strip_prefix("TZ=")
        .or_else(|| spec.strip_prefix("CRON_TZ="))
    {
        Some(rest) => {
            let (name, body) = rest.split_once(' ').unwrap_or((rest, ""));
            let tz =
                parse_time_zone(name).map_err(|e| format!("provided bad location {name}: {e}"))?;
            (Some(tz), body.trim())
        }
        None => (None, spec),
    };
    if let Some(every) = body.strip_prefix("@every ") {
        let d = parse_go_duration(every.trim())
            .ok_or_else(|| format!("failed to parse duration {body}: time: invalid duration"))?;
        // robfig rounds a delay below one second up to one second.
        return Ok(Schedule::Every(d.max(Duration::seconds(1))));
    }
    let pattern = if body.starts_with('@') {
        match body {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other => return Err(format!("unrecognized descriptor: {other}")),
        }
    } else {
        body
    };
    let fields: Vec<&str> = pattern.split_whitespace().collect();
    if fields.len() != 5 {
        // Go prints a []string as `[a b c]`.
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    let cron = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .sloppy_ranges(true)
        .build()
        .parse(pattern)
        .map_err(|e| format!("failed to parse schedule {pattern}: {e}"))?;
    Ok(Schedule::Pattern {
        cron: Box::new(cron),
        tz,
    })
}

/// A time zone by IANA name, refusing `Local` as upstream's validation does; the error is Go's
/// `time.LoadLocation` message.
pub fn parse_time_zone(name: &str) -> Result<Tz, String> {
    if name.eq_ignore_ascii_case("Local") {
        return Err(format!("unknown time zone {name}"));
    }
    name.parse::<Tz>()
        .map_err(|_| format!("unknown time zone {name}"))
}

impl Schedule {
    /// The first scheduled time strictly after `t`, evaluated in `zone` when the schedule
    /// names none itself (the CronJob's `spec.timeZone`; UTC when that is unset too).
    pub fn next_after(&self, t: DateTime<Utc>, zone: Option<Tz>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Every(d) => {
                let whole = t.timestamp().checked_add(d.num_seconds())?;
                Utc.timestamp_opt(whole, 0).single()
            }
            Schedule::Pattern { cron, tz } => {
                let zone = tz.or(zone).unwrap_or(Tz::UTC);
                let local = t.with_timezone(&zone);
                cron.find_next_occurrence(&local, false)
                    .ok()
                    .map(|n| n.with_timezone(&Utc))
            }
        }
    }
}

/// A Go duration string (`90s`, `1h30m`, `1.5h`); `None` when it is not one.
fn parse_go_duration(s: &str) -> Option<Duration> {
    if s.is_empty() {
        return None;
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += value * nanos_per;
    }
    if !total.is_finite() || total > i64::MAX as f64 {
        return None;
    }
    Some(Duration::nanoseconds(total as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    #[test]
    fn refuses_schedules_with_robfig_messages() {
        let cases = [
            ("", "empty spec string"),
            ("bogus", "expected exactly 5 fields, found 1: [bogus]"),
            ("* * * *", "expected exactly 5 fields, found 4: [* * * *]"),
            ("@fortnightly", "unrecognized descriptor: @fortnightly"),
            (
                "TZ=Mars/Olympus * * * * *",
                "provided bad location Mars/Olympus: unknown time zone Mars/Olympus",
            ),
        ];
        for (schedule, want) in cases {
            assert_eq!(parse(schedule).err().as_deref(), Some(want), "{schedule}");
        }
        assert!(parse("61 * * * *").is_err(), "minute out of range");
        assert!(parse("@every banana").is_err());
    }

    #[test]
    fn accepts_standard_schedules_and_descriptors() {
        for s in [
            "*/1 * * * *",
            "0 0 1 1 *",
            "5/10 * * * *",
            "0 9 * * MON-FRI",
            "@hourly",
            "@daily",
            "@midnight",
            "@weekly",
            "@monthly",
            "@yearly",
            "@annually",
            "@every 90s",
            "TZ=Europe/Paris 0 9 * * *",
            "CRON_TZ=UTC 0 9 * * *",
        ] {
            assert!(parse(s).is_ok(), "{s}: {:?}", parse(s).err());
        }
    }

    #[test]
    fn next_time_follows_the_pattern_and_zone() {
        let every_minute = parse("*/1 * * * *").ok();
        let next = every_minute.and_then(|s| s.next_after(at("2024-05-01T10:00:30Z"), None));
        assert_eq!(next, Some(at("2024-05-01T10:01:00Z")));
        let hourly = parse("@hourly").ok();
        let next = hourly.and_then(|s| s.next_after(at("2024-05-01T10:00:00Z"), None));
        assert_eq!(next, Some(at("2024-05-01T11:00:00Z")), "strictly after");
        // 09:00 in Paris is 07:00 UTC in summer.
        let paris = parse("0 9 * * *").ok();
        let zone = parse_time_zone("Europe/Paris").ok();
        let next = paris.and_then(|s| s.next_after(at("2024-05-01T08:00:00Z"), zone));
        assert_eq!(next, Some(at("2024-05-02T07:00:00Z")));
        let prefixed = parse("TZ=Europe/Paris 0 9 * * *").ok();
        let next = prefixed.and_then(|s| s.next_after(at("2024-05-01T06:00:00Z"), None));
        assert_eq!(next, Some(at("2024-05-01T07:00:00Z")));
        let every = parse("@every 90s").ok();
        let next = every.and_then(|s| s.next_after(at("2024-05-01T06:00:00Z"), None));
        assert_eq!(next, Some(at("2024-05-01T06:01:30Z")));
    }

    #[test]
    fn time_zone_names_are_iana_only() {
        assert!(parse_time_zone("America/New_York").is_ok());
        assert_eq!(
            parse_time_zone("Local").err().as_deref(),
            Some("unknown time zone Local")
        );
        assert!(parse_time_zone("Nowhere/City").is_err());
    }
}
