//! Timestamps in every form the monitor, hooks and the Python original write,
//! normalized to UTC and written back as ISO-8601 with milliseconds and `Z`.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde_json::Value;

/// Earliest and latest years accepted; anything outside is treated as absurd.
const MIN_YEAR: i32 = 1970;
const MAX_YEAR: i32 = 2200;

/// Parses a JSON timestamp: a string in any accepted form, or epoch
/// milliseconds (numbers below 10^11 are taken as epoch seconds).
///
/// ```
/// use mpm_aggregate::core::time::{parse_timestamp, format_timestamp};
/// use serde_json::json;
/// let t = parse_timestamp(&json!("2025-08-12T14:15:30.123000+00:00Z")).unwrap();
/// assert_eq!(format_timestamp(&t), "2025-08-12T14:15:30.123Z");
/// let t = parse_timestamp(&json!(1755008130123u64)).unwrap();
/// assert_eq!(format_timestamp(&t), "2025-08-12T14:15:30.123Z");
/// ```
pub fn parse_timestamp(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::String(s) => parse_timestamp_str(s),
        Value::Number(n) => n.as_f64().and_then(from_epoch),
        _ => None,
    }
}

/// Parses the string forms: `…Z`, `…+00:00`, `…+00:00Z`, other offsets, naive
/// (taken as UTC), `T` or space between date and time, and numeric strings.
pub fn parse_timestamp_str(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if s.is_empty() || s.len() > 64 {
        return None;
    }
    if let Ok(n) = s.parse::<f64>() {
        return from_epoch(n);
    }
    let parsed = DateTime::parse_from_rfc3339(s)
        .ok()
        .or_else(|| {
            // The Python original appended `Z` to an already offset timestamp.
            let without_z = s.strip_suffix('Z').or_else(|| s.strip_suffix('z'))?;
            DateTime::parse_from_rfc3339(without_z).ok()
        })
        .map(|dt| dt.with_timezone(&Utc))
        .or_else(|| {
            ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"]
                .iter()
                .find_map(|f| DateTime::parse_from_str(s, f).ok())
                .map(|dt| dt.with_timezone(&Utc))
        })
        .or_else(|| {
            [
                "%Y-%m-%dT%H:%M:%S%.f",
                "%Y-%m-%d %H:%M:%S%.f",
                "%Y-%m-%dT%H:%M",
            ]
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
            .map(|naive| Utc.from_utc_datetime(&naive))
        })?;
    sane(parsed)
}

fn from_epoch(n: f64) -> Option<DateTime<Utc>> {
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let millis = if n < 1e11 { n * 1000.0 } else { n };
    if millis > 1e15 {
        return None;
    }
    sane(DateTime::from_timestamp_millis(millis as i64)?)
}

fn sane(dt: DateTime<Utc>) -> Option<DateTime<Utc>> {
    use chrono::Datelike;
    (MIN_YEAR..=MAX_YEAR).contains(&dt.year()).then_some(dt)
}

/// ISO-8601 UTC with milliseconds and `Z`: `2026-11-24T04:24:11.480Z`.
pub fn format_timestamp(dt: &DateTime<Utc>) -> String {
    // chrono's RFC 3339 writer: the same text as "%Y-%m-%dT%H:%M:%S%.3fZ"
    // without parsing a format string on every call (a hot path).
    dt.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Parses a timestamp this crate wrote (or any accepted form) back.
pub fn parse_stored(s: &str) -> Option<DateTime<Utc>> {
    parse_timestamp_str(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fmt(v: Value) -> Option<String> {
        parse_timestamp(&v).map(|t| format_timestamp(&t))
    }

    #[test]
    fn every_accepted_form() {
        let want = Some("2026-11-24T04:24:11.480Z".to_string());
        assert_eq!(fmt(json!("2026-11-24T04:24:11.480034Z")), want);
        assert_eq!(fmt(json!("2026-11-24T04:24:11.480034+00:00")), want);
        assert_eq!(fmt(json!("2026-11-24T04:24:11.480034+00:00Z")), want);
        assert_eq!(fmt(json!("2026-11-24T04:24:11.480034")), want);
        assert_eq!(fmt(json!("2026-11-24 04:24:11.480")), want);
        assert_eq!(fmt(json!("2026-11-24T06:24:11.480+02:00")), want);
        assert_eq!(fmt(json!("2026-11-23T23:24:11.480-0500")), want);
        let ms = 1795494251480i64;
        assert_eq!(fmt(json!(ms)), want);
        assert_eq!(fmt(json!(ms.to_string())), want);
        assert_eq!(fmt(json!(1795494251.48)), want);
    }

    #[test]
    fn rejects_garbage_and_absurd_values() {
        for v in [
            json!("yesterday"),
            json!(""),
            json!("99999-01-01T00:00:00Z"),
            json!("1600-01-01T00:00:00Z"),
            json!(-5),
            json!(1e300),
            json!(null),
            json!({"t": 1}),
            json!("2026-13-45T99:99:99Z"),
        ] {
            assert_eq!(parse_timestamp(&v), None, "{v}");
        }
    }
}

/// The start of a `--since` window: a date (`2026-11-01`, midnight UTC), a
/// timestamp in any accepted form, or a duration back from `now` (`90s`,
/// `30m`, `12h`, `3d`, `2w`). The error says which forms are accepted.
pub fn parse_since(text: &str, now: DateTime<Utc>) -> std::result::Result<DateTime<Utc>, String> {
    let t = text.trim();
    let expected = "expected a date (2026-11-01), a time (2026-11-01T08:00:00Z) or a duration (90s, 30m, 12h, 3d, 2w)";
    if let Some(unit) = t.chars().last().filter(|c| c.is_ascii_alphabetic()) {
        let digits = &t[..t.len() - 1];
        if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) {
            let n: i64 = digits
                .parse()
                .map_err(|_| format!("'{text}': number too large"))?;
            let seconds = match unit {
                's' => Some(1),
                'm' => Some(60),
                'h' => Some(3600),
                'd' => Some(86_400),
                'w' => Some(7 * 86_400),
                _ => None,
            };
            let Some(seconds) = seconds else {
                return Err(format!("'{text}': unknown unit '{unit}'; {expected}"));
            };
            return n
                .checked_mul(seconds)
                .and_then(chrono::Duration::try_seconds)
                .and_then(|d| now.checked_sub_signed(d))
                .ok_or_else(|| format!("'{text}': too far back"));
        }
    }
    if let Ok(date) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(Utc.from_utc_datetime(&date.and_time(chrono::NaiveTime::MIN)));
    }
    parse_timestamp_str(t).ok_or_else(|| format!("'{text}': {expected}"))
}

#[cfg(test)]
mod since_tests {
    use super::*;

    #[test]
    fn dates_times_and_durations_are_accepted_and_anything_else_is_explained() {
        let now = parse_timestamp_str("2026-11-24T10:00:00Z").unwrap();
        let at = |s: &str| parse_since(s, now).map(|t| format_timestamp(&t));
        assert_eq!(at("2026-11-01").unwrap(), "2026-11-01T00:00:00.000Z");
        assert_eq!(
            at("2026-11-20T08:30:00Z").unwrap(),
            "2026-11-20T08:30:00.000Z"
        );
        assert_eq!(at("3d").unwrap(), "2026-11-21T10:00:00.000Z");
        assert_eq!(at("12h").unwrap(), "2026-11-23T22:00:00.000Z");
        assert_eq!(at("30m").unwrap(), "2026-11-24T09:30:00.000Z");
        assert_eq!(at("2w").unwrap(), "2026-11-10T10:00:00.000Z");
        assert!(at("3y").unwrap_err().contains("unknown unit 'y'"));
        assert!(at("yesterday").unwrap_err().contains("expected a date"));
        assert!(at("99999999999999999999d").is_err());
    }
}
