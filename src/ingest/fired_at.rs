//! Parses `fired_at` values: `MM/DD/YYYY, HH:MM:SS` (naive, in the source time zone) and RFC 3339.

use std::fmt;

use chrono::{LocalResult, NaiveDate, NaiveDateTime, TimeZone};

/// Time zone for naive `MM/DD/YYYY, HH:MM:SS` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceTimeZone {
    #[default]
    Utc,
    Named(chrono_tz::Tz),
}

impl fmt::Display for SourceTimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceTimeZone::Utc => f.write_str("UTC"),
            SourceTimeZone::Named(tz) => f.write_str(tz.name()),
        }
    }
}

/// Why a `fired_at` string was refused (goes into the reject's detail).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FiredAtError(pub String);

const MICROS_PER_SECOND: i64 = 1_000_000;

/// Microseconds since 1970-01-01 00:00:00 UTC, fractions truncated to microseconds.
pub fn parse_fired_at(value: &str, zone: SourceTimeZone) -> Result<i64, FiredAtError> {
    let b = value.as_bytes();
    if let Some(fields) = naive_fields(b) {
        let local = naive(fields).ok_or_else(|| not_real(value))?;
        return match zone {
            SourceTimeZone::Utc => Ok(local.and_utc().timestamp_micros()),
            SourceTimeZone::Named(tz) => match tz.from_local_datetime(&local) {
                LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Ok(t.timestamp_micros()),
                LocalResult::None => Err(FiredAtError(format!(
                    "{} does not exist in {} (skipped by a clock change)",
                    Shown(value),
                    tz.name()
                ))),
            },
        };
    }
    if let Some(rfc) = rfc3339_fields(b) {
        let local = naive(rfc.fields).ok_or_else(|| not_real(value))?;
        return Ok(local.and_utc().timestamp_micros() + rfc.micros
            - rfc.offset_seconds * MICROS_PER_SECOND);
    }
    Err(FiredAtError(format!(
        "{} is neither MM/DD/YYYY, HH:MM:SS nor RFC 3339",
        Shown(value)
    )))
}

fn not_real(value: &str) -> FiredAtError {
    FiredAtError(format!("{} is not a real date/time", Shown(value)))
}

/// Date and time fields as written, not yet checked against the calendar.
#[derive(Clone, Copy)]
struct Fields {
    year: i32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

/// The calendar date and time, if the fields name a real one (no 24:00, no leap second).
fn naive(f: Fields) -> Option<NaiveDateTime> {
    NaiveDate::from_ymd_opt(f.year, f.month, f.day)?.and_hms_opt(f.hour, f.minute, f.second)
}

/// `MM/DD/YYYY, HH:MM:SS`, exactly 20 bytes.
fn naive_fields(b: &[u8]) -> Option<Fields> {
    let b: &[u8; 20] = b.try_into().ok()?;
    if b[2] != b'/'
        || b[5] != b'/'
        || b[10] != b','
        || b[11] != b' '
        || b[14] != b':'
        || b[17] != b':'
    {
        return None;
    }
    Some(Fields {
        month: digits(&b[0..2])?,
        day: digits(&b[3..5])?,
        year: digits(&b[6..10])? as i32,
        hour: digits(&b[12..14])?,
        minute: digits(&b[15..17])?,
        second: digits(&b[18..20])?,
    })
}

struct Rfc3339 {
    fields: Fields,
    /// The fraction of a second, truncated to microseconds.
    micros: i64,
    /// Local time minus UTC.
    offset_seconds: i64,
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, `T` and `Z` in either case.
fn rfc3339_fields(b: &[u8]) -> Option<Rfc3339> {
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let fields = Fields {
        year: digits(&b[0..4])? as i32,
        month: digits(&b[5..7])?,
        day: digits(&b[8..10])?,
        hour: digits(&b[11..13])?,
        minute: digits(&b[14..16])?,
        second: digits(&b[17..19])?,
    };
    let mut rest = &b[19..];
    let mut micros = 0i64;
    if let [b'.', tail @ ..] = rest {
        let n = tail.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        let mut scale = 100_000;
        for &c in &tail[..n.min(6)] {
            micros += i64::from(c - b'0') * scale;
            scale /= 10;
        }
        rest = &tail[n..];
    }
    let offset_seconds = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), hh @ .., b':', m1, m2] if hh.len() == 2 => {
            let hours = digits(hh)?;
            let minutes = digits(&[*m1, *m2])?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let seconds = i64::from(hours * 3600 + minutes * 60);
            if *sign == b'-' {
                -seconds
            } else {
                seconds
            }
        }
        _ => return None,
    };
    Some(Rfc3339 {
        fields,
        micros,
        offset_seconds,
    })
}

/// The value of a run of ASCII digits (at most 4 here), or `None` if any byte is not a digit.
fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

/// A value quoted for a message: at most 64 characters, control characters and quotes escaped.
pub(crate) struct Shown<'a>(pub &'a str);

/// How many characters of an offending value a message shows.
pub(crate) const SHOWN_CHARS: usize = 64;

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        let mut chars = self.0.chars();
        for c in chars.by_ref().take(SHOWN_CHARS) {
            if c.is_control() || c == '"' || c == '\\' {
                write!(f, "{}", c.escape_debug())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        if chars.next().is_some() {
            f.write_str("…")?;
        }
        f.write_str("\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, FixedOffset, SecondsFormat};
    use proptest::prelude::*;

    fn utc(value: &str) -> Result<i64, FiredAtError> {
        parse_fired_at(value, SourceTimeZone::Utc)
    }

    fn micros(rfc3339: &str) -> i64 {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .timestamp_micros()
    }

    fn berlin(value: &str) -> Result<i64, FiredAtError> {
        parse_fired_at(value, SourceTimeZone::Named(chrono_tz::Europe::Berlin))
    }

    #[test]
    fn slash_grammar_is_utc_by_default() {
        assert_eq!(
            utc("12/31/2021, 23:54:21"),
            Ok(micros("2021-12-31T23:54:21Z"))
        );
        assert_eq!(utc("01/01/2022, 00:00:06"), Ok(1_640_995_206_000_000));
        assert_eq!(utc("01/01/1970, 00:00:00"), Ok(0));
        assert_eq!(utc("12/31/1969, 23:59:59"), Ok(-MICROS_PER_SECOND));
    }

    #[test]
    fn leap_day_only_in_leap_years() {
        assert_eq!(
            utc("02/29/2024, 12:00:00"),
            Ok(micros("2024-02-29T12:00:00Z"))
        );
        assert_eq!(
            utc("02/29/2000, 12:00:00"),
            Ok(micros("2000-02-29T12:00:00Z"))
        );
        assert!(utc("02/29/2023, 12:00:00").is_err());
        assert!(utc("02/29/1900, 12:00:00").is_err());
        assert!(utc("02/30/2024, 12:00:00").is_err());
        assert!(utc("04/31/2024, 12:00:00").is_err());
    }

    #[test]
    fn slash_grammar_rejects_impossible_fields() {
        for value in [
            "13/45/2022, 25:61:00",
            "00/10/2022, 10:00:00",
            "01/00/2022, 10:00:00",
            "01/01/2022, 24:00:00",
            "01/01/2022, 23:60:00",
            "01/01/2022, 23:59:60",
        ] {
            assert_eq!(
                utc(value),
                Err(FiredAtError(format!("\"{value}\" is not a real date/time")))
            );
        }
    }

    #[test]
    fn slash_grammar_is_exact() {
        for value in [
            "1/1/2022, 00:00:06",
            "01/01/22, 00:00:06",
            "01/01/2022 00:00:06",
            "01/01/2022,00:00:06",
            "01/01/2022,  00:00:06",
            " 01/01/2022, 00:00:06",
            "01/01/2022, 00:00:06 ",
            "01/01/2022, 00:00",
            "01/01/2022, 0:00:06",
            "01/01/2022, 00:00:06.5",
            "01-01-2022, 00:00:06",
            "+1/01/2022, 00:00:06",
            "01/01/2022, 00:00:0x",
            "٠١/01/2022, 00:00:06",
            "",
            "EMPTY_VALUE",
            "2022-01-01 00:00:06",
        ] {
            let err = utc(value).unwrap_err();
            assert!(err.0.contains("is neither"), "{value:?}: {err}");
        }
    }

    #[test]
    fn rfc3339_with_z_in_either_case_and_t_in_either_case() {
        let expected = micros("2022-01-01T00:00:06Z");
        assert_eq!(utc("2022-01-01T00:00:06Z"), Ok(expected));
        assert_eq!(utc("2022-01-01T00:00:06z"), Ok(expected));
        assert_eq!(utc("2022-01-01t00:00:06Z"), Ok(expected));
        assert_eq!(utc("2022-01-01t00:00:06z"), Ok(expected));
    }

    #[test]
    fn rfc3339_offsets_convert_to_utc() {
        let expected = micros("2022-01-01T00:00:06Z");
        assert_eq!(utc("2022-01-01T02:00:06+02:00"), Ok(expected));
        assert_eq!(utc("2021-12-31T19:30:06-04:30"), Ok(expected));
        assert_eq!(utc("2022-01-01T00:00:06+00:00"), Ok(expected));
        assert_eq!(utc("2022-01-01T00:00:06-00:00"), Ok(expected));
        assert_eq!(utc("2022-01-01T23:59:06+23:59"), Ok(expected));
    }

    #[test]
    fn rfc3339_fractions_are_truncated_to_microseconds() {
        let base = micros("2022-01-01T00:00:06Z");
        assert_eq!(utc("2022-01-01T00:00:06.5Z"), Ok(base + 500_000));
        assert_eq!(utc("2022-01-01T00:00:06.123456Z"), Ok(base + 123_456));
        assert_eq!(utc("2022-01-01T00:00:06.9999999Z"), Ok(base + 999_999));
        assert_eq!(utc("2022-01-01T00:00:06.0000009Z"), Ok(base));
        assert_eq!(
            utc("2022-01-01T00:00:06.12345678901234567890123456789+01:00"),
            Ok(base - 3600 * MICROS_PER_SECOND + 123_456)
        );
        assert_eq!(utc("1969-12-31T23:59:59.5Z"), Ok(-500_000));
    }

    #[test]
    fn rfc3339_rejects_leap_seconds_and_bad_offsets() {
        for value in [
            "2016-12-31T23:59:60Z",
            "2022-01-01T24:00:00Z",
            "2022-02-29T00:00:00Z",
            "2022-13-01T00:00:00Z",
        ] {
            assert!(utc(value).unwrap_err().0.contains("not a real"), "{value}");
        }
        for value in [
            "2022-01-01T00:00:06",
            "2022-01-01T00:00:06+24:00",
            "2022-01-01T00:00:06+01:60",
            "2022-01-01T00:00:06+0100",
            "2022-01-01T00:00:06+01",
            "2022-01-01T00:00:06.Z",
            "2022-01-01T00:00:06,5Z",
            "2022-01-01 00:00:06Z",
            "2022-01-01T00:00:06Z ",
            "2022-01-01T00:00:06ZZ",
            "2022-1-01T00:00:06Z",
            "22022-01-01T00:00:06Z",
            "2022-01-01T00:00Z",
        ] {
            assert!(utc(value).unwrap_err().0.contains("is neither"), "{value}");
        }
    }

    #[test]
    fn named_zone_interprets_the_slash_grammar_as_local_time() {
        assert_eq!(
            berlin("01/01/2022, 01:00:06"),
            Ok(micros("2022-01-01T00:00:06Z"))
        );
        assert_eq!(
            berlin("07/01/2022, 02:00:00"),
            Ok(micros("2022-07-01T00:00:00Z"))
        );
    }

    #[test]
    fn named_zone_does_not_change_rfc3339() {
        assert_eq!(
            berlin("2022-01-01T00:00:06Z"),
            Ok(micros("2022-01-01T00:00:06Z"))
        );
    }

    #[test]
    fn time_in_a_dst_gap_is_rejected() {
        // Berlin jumped from 02:00 to 03:00 on 2022-03-27.
        let err = berlin("03/27/2022, 02:30:00").unwrap_err();
        assert_eq!(
            err.0,
            "\"03/27/2022, 02:30:00\" does not exist in Europe/Berlin (skipped by a clock change)"
        );
        assert_eq!(
            berlin("03/27/2022, 03:00:00"),
            Ok(micros("2022-03-27T01:00:00Z"))
        );
    }

    #[test]
    fn ambiguous_time_takes_the_earlier_instant() {
        // Berlin went from 03:00 CEST back to 02:00 CET on 2022-10-30: 02:30 happened twice.
        assert_eq!(
            berlin("10/30/2022, 02:30:00"),
            Ok(micros("2022-10-30T02:30:00+02:00"))
        );
    }

    #[test]
    fn messages_quote_a_truncated_escaped_value() {
        let long = "x".repeat(100);
        let err = utc(&long).unwrap_err();
        assert_eq!(
            err.0,
            format!(
                "\"{}…\" is neither MM/DD/YYYY, HH:MM:SS nor RFC 3339",
                "x".repeat(64)
            )
        );
        let err = utc("a\"b\u{0}").unwrap_err();
        assert!(err.0.starts_with(r#""a\"b\0""#), "{err}");
    }

    proptest! {
        #[test]
        fn formatted_times_parse_back(
            secs in -62_135_596_800i64..253_402_300_800,
            nanos in 0u32..1_000_000_000,
            offset_minutes in -1439i32..=1439,
        ) {
            let t = DateTime::from_timestamp(secs, nanos).unwrap();
            let slash = t.format("%m/%d/%Y, %H:%M:%S").to_string();
            prop_assert_eq!(utc(&slash), Ok(secs * MICROS_PER_SECOND));
            let offset = FixedOffset::east_opt(offset_minutes * 60).unwrap();
            let local = t.with_timezone(&offset);
            if (1..=9999).contains(&chrono::Datelike::year(&local)) {
                let rfc = local.to_rfc3339_opts(SecondsFormat::Nanos, false);
                let expected = secs * MICROS_PER_SECOND + i64::from(nanos / 1000);
                prop_assert_eq!(utc(&rfc), Ok(expected), "{}", rfc);
            }
        }

        #[test]
        fn arbitrary_text_never_panics(value in "\\PC{0,40}|[0-9/:, .TZz+-]{0,40}") {
            let _ = utc(&value);
            let _ = berlin(&value);
        }
    }
}
