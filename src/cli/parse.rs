//! Every value parser of the command line: seconds, times, `--max-rejected`, durations and the
//! role prefix.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use crate::admin::roles::MAX_PREFIX_BYTES;

pub(super) fn parse_seconds(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(seconds) if seconds > 0.0 && seconds.is_finite() => Ok(seconds),
        _ => Err(format!("{value:?} is not a positive number of seconds")),
    }
}

pub(super) fn parse_start(value: &str) -> Result<chrono::NaiveDateTime, String> {
    for format in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"] {
        if let Ok(time) = chrono::NaiveDateTime::parse_from_str(value, format) {
            return Ok(time);
        }
    }
    chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map(|date| date.and_hms_opt(0, 0, 0).expect("midnight exists"))
        .map_err(|_| format!("{value:?} is not a time (YYYY-MM-DDTHH:MM:SS or YYYY-MM-DD)"))
}

/// `--max-rejected`: an absolute count or a percentage of the lines read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxRejected {
    Count(u64),
    Percent(f64),
}

impl MaxRejected {
    /// Whether `rejected` out of `lines` exceeds the limit.
    pub fn is_exceeded(self, rejected: u64, lines: u64) -> bool {
        match self {
            MaxRejected::Count(limit) => rejected > limit,
            MaxRejected::Percent(percent) => {
                lines > 0 && (rejected as f64) * 100.0 > percent * lines as f64
            }
        }
    }
}

impl FromStr for MaxRejected {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let value = value.trim();
        if let Some(percent) = value.strip_suffix('%') {
            match percent.trim().parse::<f64>() {
                Ok(p) if (0.0..=100.0).contains(&p) => Ok(MaxRejected::Percent(p)),
                _ => Err(format!("{value:?} is not a percentage between 0% and 100%")),
            }
        } else {
            value.parse::<u64>().map(MaxRejected::Count).map_err(|_| {
                format!("{value:?} is not a count (e.g. 100) or a percentage (e.g. 0.5%)")
            })
        }
    }
}

/// `30d` → 30 days. One whole number and one unit; no fractions, no sign.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let unit_seconds: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        _ => {
            return Err(format!(
                "{value:?} is not a duration: a whole number and a unit s, m, h, d or w (e.g. 30d)"
            ))
        }
    };
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{value:?} is not a duration: it needs a number before the unit"))?;
    number
        .checked_mul(unit_seconds)
        // 10 000 years keeps the cutoff inside PostgreSQL's timestamp range.
        .filter(|&seconds| seconds <= 10_000 * 366 * 86_400)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{value:?} is too long a duration"))
}

/// A prefix that makes plain, unambiguous role names.
pub fn parse_prefix(value: &str) -> Result<String, String> {
    let mut bytes = value.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == b'_');
    let rest_ok = bytes.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_');
    if !first_ok || !rest_ok {
        return Err(format!(
            "{value:?} is not a role prefix: lowercase letters, digits and _, starting with a letter or _"
        ));
    }
    if value.len() > MAX_PREFIX_BYTES {
        return Err(format!(
            "{value:?} is too long a role prefix (at most {MAX_PREFIX_BYTES} bytes)"
        ));
    }
    Ok(value.to_owned())
}

/// Parses a `--from`/`--to` bound: RFC 3339, `YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DD` (UTC).
pub fn parse_time_bound(value: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(time) = DateTime::parse_from_rfc3339(value) {
        return Ok(time.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(time) = NaiveDateTime::parse_from_str(value, format) {
            return Ok(time.and_utc());
        }
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(|time| time.and_utc())
        .ok_or_else(|| {
            format!("{value:?} is not a time (use RFC 3339 or YYYY-MM-DD[ HH:MM:SS], UTC)")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(12 * 3_600)));
        assert_eq!(parse_duration("90m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("45s"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("2w"), Ok(Duration::from_secs(1_209_600)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        for bad in [
            "",
            "30",
            "d",
            "-1d",
            "1.5d",
            "30 days",
            "1y",
            "99999999999999999999w",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn prefixes_are_plain_identifiers() {
        assert_eq!(parse_prefix("campaign_elt").as_deref(), Ok("campaign_elt"));
        assert_eq!(parse_prefix("_x9").as_deref(), Ok("_x9"));
        for bad in [
            "",
            "9lives",
            "Upper",
            "a-b",
            "a\"; drop table elt.events; --",
            "a b",
        ] {
            assert!(parse_prefix(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(parse_prefix(&"a".repeat(MAX_PREFIX_BYTES)).is_ok());
        assert!(parse_prefix(&"a".repeat(MAX_PREFIX_BYTES + 1)).is_err());
    }

    #[test]
    fn parses_max_rejected() {
        assert_eq!("10".parse::<MaxRejected>().unwrap(), MaxRejected::Count(10));
        assert_eq!(
            "0.5%".parse::<MaxRejected>().unwrap(),
            MaxRejected::Percent(0.5)
        );
        assert!("abc".parse::<MaxRejected>().is_err());
        assert!("150%".parse::<MaxRejected>().is_err());
        assert!(MaxRejected::Count(2).is_exceeded(3, 10));
        assert!(!MaxRejected::Count(3).is_exceeded(3, 10));
        assert!(MaxRejected::Percent(10.0).is_exceeded(2, 10));
        assert!(!MaxRejected::Percent(20.0).is_exceeded(2, 10));
        assert!(!MaxRejected::Percent(0.0).is_exceeded(0, 0));
    }

    #[test]
    fn parses_time_bounds() {
        let expected = "2022-01-01T03:00:00Z".parse::<DateTime<Utc>>().unwrap();
        assert_eq!(parse_time_bound("2022-01-01T03:00:00Z").unwrap(), expected);
        assert_eq!(
            parse_time_bound("2022-01-01T04:00:00+01:00").unwrap(),
            expected
        );
        assert_eq!(parse_time_bound("2022-01-01 03:00:00").unwrap(), expected);
        assert_eq!(
            parse_time_bound("2022-01-02").unwrap(),
            expected + chrono::Duration::hours(21)
        );
        assert!(parse_time_bound("yesterday").is_err());
    }
}
