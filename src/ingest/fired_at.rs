//! Parses `fired_at` values: `MM/DD/YYYY, HH:MM:SS` (naive, in the source time zone) and RFC 3339.

/// Time zone for naive `MM/DD/YYYY, HH:MM:SS` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceTimeZone {
    #[default]
    Utc,
    Named(chrono_tz::Tz),
}

/// Why a `fired_at` string was refused (goes into the reject's detail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FiredAtError(pub String);

/// Microseconds since 1970-01-01 00:00:00 UTC, fractions truncated to microseconds.
pub fn parse_fired_at(value: &str, zone: SourceTimeZone) -> Result<i64, FiredAtError> {
    let _ = (value, zone);
    Err(FiredAtError("not implemented".into()))
}
