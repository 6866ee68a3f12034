//! Tests of the cleaner: every reject reason, the check order, and property tests over bytes.

use super::*;
use crate::ingest::lines::LineReader;
use proptest::prelude::*;
use serde::de::SeqAccess;

/// A real line (first line of the challenge file), field by field: (name, raw JSON value).
const REAL: [(&str, &str); 7] = [
    ("event_id", r#""cc8dac61-f9d0-4bcb-a9aa-602456ee20d4""#),
    ("customer_id", "344"),
    ("fired_at", r#""12\/31\/2021, 23:54:21""#),
    ("user_id", "165"),
    ("event_type", r#""ReferralPageLoad""#),
    ("ip", r#""192.168.176.194""#),
    ("email", r#""russellsanchez@example.org""#),
];

/// 2021-12-31T23:54:21Z.
const REAL_FIRED_AT: i64 = 1_640_994_861_000_000;

/// A field replaced by `Some(raw JSON)` or removed (`None`).
type Change<'a> = (&'a str, Option<&'a str>);

/// The real line with some fields replaced (`Some(raw)`) or removed (`None`).
fn line_with(changes: &[Change]) -> String {
    let mut parts = Vec::new();
    for (name, raw) in REAL {
        match changes.iter().find(|(changed, _)| *changed == name) {
            None => parts.push(format!("\"{name}\":{raw}")),
            Some((_, Some(new))) => parts.push(format!("\"{name}\":{new}")),
            Some((_, None)) => {}
        }
    }
    format!("{{{}}}", parts.join(","))
}

fn raw(bytes: &[u8]) -> RawLine<'_> {
    RawLine {
        number: 1,
        bytes,
        length: bytes.len() as u64,
        too_long: false,
        has_newline: true,
    }
}

fn classify(line: &str) -> LineOutcome<'_> {
    Cleaner::default().classify(&raw(line.as_bytes()))
}

fn event(line: &str) -> CleanEvent<'_> {
    match classify(line) {
        LineOutcome::Event(event) => event,
        other => panic!("{line}: expected an event, got {other:?}"),
    }
}

/// The reject of a line, checking that the detail leaks neither personal data nor the line.
fn reject_of(bytes: &[u8]) -> (RejectReason, String) {
    match Cleaner::default().classify(&raw(bytes)) {
        LineOutcome::Rejected { reason, detail } => {
            assert!(
                !detail.contains("example.org"),
                "detail leaks the email: {detail}"
            );
            assert!(!detail.contains("192.168"), "detail leaks the ip: {detail}");
            assert!(detail.chars().count() < 200, "detail too long: {detail}");
            (reason, detail)
        }
        other => panic!(
            "{}: expected a reject, got {other:?}",
            String::from_utf8_lossy(bytes)
        ),
    }
}

fn reason(line: &str) -> RejectReason {
    reject_of(line.as_bytes()).0
}

fn detail(line: &str) -> String {
    reject_of(line.as_bytes()).1
}

// ---- accepted lines ----

#[test]
fn real_line_is_an_event_borrowing_its_id() {
    let line = line_with(&[]);
    let event = event(&line);
    assert_eq!(
        event,
        CleanEvent {
            event_id: Cow::Borrowed("cc8dac61-f9d0-4bcb-a9aa-602456ee20d4"),
            event_type: 0,
            customer_id: 344,
            user_id: 165,
            fired_at_micros: REAL_FIRED_AT,
            ip: None,
            email: None,
        }
    );
    assert!(matches!(event.event_id, Cow::Borrowed(_)));
}

#[test]
fn real_sample_lines() {
    let sample = concat!(
        r#"{"event_id":"0a804e0d-0c03-4f96-8da5-c19826ab5a62","customer_id":176,"fired_at":"01\/01\/2022, 00:00:06","user_id":6213,"event_type":"ReferralPageLoad","ip":"172.27.25.178","email":"amy89@example.org"}"#,
        "\n",
        r#"{"event_id":"373702f1-617b-4db3-a375-72302b14a264","customer_id":32,"fired_at":"01\/01\/2022, 00:00:13","user_id":3980,"event_type":"EMPTY_VALUE","ip":"172.26.117.132","email":"marysmith@example.net"}"#,
        "\n",
        r#"{"event_id":"0a804e0d-0c03-4f96-8da5-c19826ab5a62","fired_at":"01\/01\/2022, 00:00:06","user_id":6213,"event_type":"ReferralPageLoad","ip":"172.27.25.178","email":"amy89@example.org"}"#,
        "\n",
    );
    let cleaner = Cleaner::default();
    let mut reader = LineReader::new(sample.as_bytes(), 1 << 20);
    let mut outcomes = Vec::new();
    while let Some(line) = reader.next_line().unwrap() {
        outcomes.push(match cleaner.classify(&line) {
            LineOutcome::Event(e) => format!(
                "event {} {} {}",
                e.customer_id, e.user_id, e.fired_at_micros
            ),
            LineOutcome::Rejected { reason, detail } => format!("{}: {detail}", reason.code()),
            LineOutcome::Blank => "blank".into(),
        });
    }
    assert_eq!(
        outcomes,
        [
            "event 176 6213 1640995206000000",
            r#"unknown_event_type: event_type "EMPTY_VALUE" is not an accepted event type"#,
            "missing_customer_id: customer_id is missing",
        ]
    );
}

#[test]
fn every_accepted_type_has_its_index() {
    for (index, name) in DEFAULT_EVENT_TYPES.iter().enumerate() {
        let line = line_with(&[("event_type", Some(&format!("\"{name}\"")))]);
        assert_eq!(event(&line).event_type, index);
    }
}

#[test]
fn operators_can_extend_the_accepted_types() {
    let mut types: Vec<String> = DEFAULT_EVENT_TYPES.iter().map(|t| t.to_string()).collect();
    types.push("SignUp".into());
    let cleaner = Cleaner::new(types, SourceTimeZone::Utc);
    let line = line_with(&[("event_type", Some(r#""SignUp""#))]);
    match cleaner.classify(&raw(line.as_bytes())) {
        LineOutcome::Event(e) => {
            assert_eq!(cleaner.accepted_event_types()[e.event_type], "SignUp")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn ids_as_strings_are_accepted() {
    let line = line_with(&[
        ("customer_id", Some(r#""12""#)),
        ("user_id", Some(r#""012""#)),
    ]);
    let event = event(&line);
    assert_eq!((event.customer_id, event.user_id), (12, 12));
}

#[test]
fn ids_at_the_edges_of_the_range_are_accepted() {
    for (raw_id, value) in [
        ("0", 0),
        (r#""0""#, 0),
        ("9223372036854775807", i64::MAX),
        (r#""9223372036854775807""#, i64::MAX),
        (r#""0000000000000000001""#, 1),
        (r#""\u0031\u0032""#, 12),
    ] {
        let line = line_with(&[("customer_id", Some(raw_id)), ("user_id", Some(raw_id))]);
        let event = event(&line);
        assert_eq!(
            (event.customer_id, event.user_id),
            (value, value),
            "{raw_id}"
        );
    }
}

#[test]
fn rfc3339_fired_at_variants_are_accepted() {
    for (raw_time, micros) in [
        (r#""2021-12-31T23:54:21Z""#, REAL_FIRED_AT),
        (r#""2021-12-31T23:54:21z""#, REAL_FIRED_AT),
        (r#""2021-12-31t23:54:21Z""#, REAL_FIRED_AT),
        (r#""2022-01-01T01:54:21+02:00""#, REAL_FIRED_AT),
        (r#""2021-12-31T20:24:21-03:30""#, REAL_FIRED_AT),
        (r#""2021-12-31T23:54:21.5Z""#, REAL_FIRED_AT + 500_000),
        (r#""2021-12-31T23:54:21.9999999Z""#, REAL_FIRED_AT + 999_999),
        (r#""2021-12-31T23:54:21.000001Z""#, REAL_FIRED_AT + 1),
    ] {
        let line = line_with(&[("fired_at", Some(raw_time))]);
        assert_eq!(event(&line).fired_at_micros, micros, "{raw_time}");
    }
}

#[test]
fn slash_fired_at_with_and_without_escapes() {
    for raw_time in [r#""12\/31\/2021, 23:54:21""#, r#""12/31/2021, 23:54:21""#] {
        let line = line_with(&[("fired_at", Some(raw_time))]);
        assert_eq!(event(&line).fired_at_micros, REAL_FIRED_AT);
    }
}

#[test]
fn leap_day_is_accepted_in_leap_years_only() {
    let leap = line_with(&[("fired_at", Some(r#""02\/29\/2024, 12:00:00""#))]);
    assert_eq!(event(&leap).fired_at_micros, 1_709_208_000_000_000);
    let not_leap = line_with(&[("fired_at", Some(r#""02\/29\/2023, 12:00:00""#))]);
    assert_eq!(reason(&not_leap), RejectReason::InvalidFiredAt);
}

#[test]
fn source_time_zone_applies_to_naive_times() {
    let berlin = Cleaner::new(
        DEFAULT_EVENT_TYPES.iter().map(|t| t.to_string()).collect(),
        SourceTimeZone::Named(chrono_tz::Europe::Berlin),
    );
    let line = line_with(&[]);
    match berlin.classify(&raw(line.as_bytes())) {
        LineOutcome::Event(e) => assert_eq!(e.fired_at_micros, REAL_FIRED_AT - 3_600_000_000),
        other => panic!("{other:?}"),
    }
    let gap = line_with(&[("fired_at", Some(r#""03\/27\/2022, 02:30:00""#))]);
    assert!(matches!(
        berlin.classify(&raw(gap.as_bytes())),
        LineOutcome::Rejected {
            reason: RejectReason::InvalidFiredAt,
            ..
        }
    ));
}

#[test]
fn escaped_key_names_are_recognised() {
    let line = line_with(&[]).replace(r#""event_id""#, r#""event\u005fid""#);
    assert_eq!(
        event(&line).event_id,
        "cc8dac61-f9d0-4bcb-a9aa-602456ee20d4"
    );
    let twice = format!(r#"{{"event\u005fid":"x",{}"#, &line_with(&[])[1..]);
    assert_eq!(reason(&twice), RejectReason::InvalidJson);
}

#[test]
fn escaped_event_id_is_unescaped_and_owned() {
    let line = line_with(&[("event_id", Some(r#""a\/b\u00e9""#))]);
    let event = event(&line);
    assert_eq!(event.event_id, "a/bé");
    assert!(matches!(event.event_id, Cow::Owned(_)));
}

#[test]
fn key_order_does_not_matter() {
    let line = r#"{"email":"x@example.org","event_type":"FaqClick","user_id":"7","fired_at":"2022-01-01T00:00:00Z","customer_id":3,"event_id":"e"}"#;
    let event = event(line);
    assert_eq!(
        (event.event_type, event.customer_id, event.user_id),
        (2, 3, 7)
    );
}

#[test]
fn unknown_fields_are_ignored_but_must_be_valid_json() {
    let extra = format!(
        r#"{},"nested":{{"a":[1,2.5,-0,1e300,true,null,{{"b":"\ud83d\ude00"}}]}},"ip":"x","ip":null}}"#,
        &line_with(&[])[..line_with(&[]).len() - 1]
    );
    assert_eq!(event(&extra).customer_id, 344);
    let without_personal_data = line_with(&[("ip", None), ("email", None)]);
    assert_eq!(event(&without_personal_data).user_id, 165);
}

#[test]
fn values_are_not_trimmed() {
    let line = line_with(&[("event_id", Some(r#"" id with spaces ""#))]);
    assert_eq!(event(&line).event_id, " id with spaces ");
}

#[test]
fn json_whitespace_around_the_object_is_allowed() {
    let line = format!(" \t{} \r", line_with(&[]));
    assert_eq!(event(&line).customer_id, 344);
}

#[test]
fn event_id_of_255_bytes_is_accepted() {
    let id = format!("\"{}\"", "é".repeat(127) + "x");
    let line = line_with(&[("event_id", Some(&id))]);
    assert_eq!(event(&line).event_id.len(), 255);
}

// ---- blank lines ----

#[test]
fn blank_lines() {
    for line in ["", " ", "\t", "\r", "\x0C", "\x0B", " \t\r\x0C\x0B "] {
        assert_eq!(classify(line), LineOutcome::Blank, "{line:?}");
    }
}

#[test]
fn other_whitespace_is_not_blank() {
    assert_eq!(reason("\u{a0}"), RejectReason::InvalidJson);
    assert_eq!(reason("\u{2028}"), RejectReason::InvalidJson);
    assert_eq!(reject_of(b" \xff").0, RejectReason::InvalidUtf8);
    assert_eq!(reason("\0"), RejectReason::InvalidJson);
}

// ---- one test per row of the reject table ----

#[test]
fn line_too_long() {
    let line = RawLine {
        number: 3,
        bytes: b"{\"event",
        length: 5000,
        too_long: true,
        has_newline: true,
    };
    assert_eq!(
        Cleaner::default().classify(&line),
        LineOutcome::Rejected {
            reason: RejectReason::LineTooLong,
            detail: "line is 5000 bytes, over the 7-byte limit".into()
        }
    );
}

#[test]
fn invalid_utf8() {
    let mut bytes = line_with(&[]).into_bytes();
    bytes[14] = 0xff;
    assert_eq!(
        reject_of(&bytes),
        (
            RejectReason::InvalidUtf8,
            "invalid utf-8 at byte offset 14".into()
        )
    );
    assert_eq!(
        reject_of(b"\xed\xa0\x80").0,
        RejectReason::InvalidUtf8,
        "encoded surrogate"
    );
    assert_eq!(
        reject_of(b"\xc0\xaf").0,
        RejectReason::InvalidUtf8,
        "overlong"
    );
}

#[test]
fn invalid_json_syntax() {
    let valid = line_with(&[]);
    let body = &valid[..valid.len() - 1];
    for line in [
        "{".to_string(),
        "{]".to_string(),
        "x".to_string(),
        body.to_string(),
        format!("{valid} x"),
        format!("{valid}{valid}"),
        format!("{valid},"),
        format!(r#"{body},"score":NaN}}"#),
        format!(r#"{body},"score":Infinity}}"#),
        format!(r#"{body},"score":01}}"#),
        format!(r#"{body},"note":'single'}}"#),
        format!(r#"{body},}}"#),
        format!("{body},\"raw\":\"tab\tinside\"}}"),
        format!(r#"{body},"bad":"\x"}}"#),
        format!("\u{feff}{valid}"),
        format!("{valid}\x0C"),
    ] {
        assert_eq!(reason(&line), RejectReason::InvalidJson, "{line}");
    }
}

#[test]
fn invalid_json_lone_surrogates_anywhere() {
    let valid = line_with(&[]);
    let body = &valid[..valid.len() - 1];
    for line in [
        line_with(&[("event_id", Some(r#""\ud800""#))]),
        line_with(&[("event_type", Some(r#""\udc00""#))]),
        line_with(&[("customer_id", Some(r#""\ud800""#))]),
        line_with(&[("email", Some(r#""\ud83d@example.org""#))]),
        format!(r#"{body},"deep":[{{"x":["\udfff"]}}]}}"#),
        format!(r#"{body},"\ud800":1}}"#),
        format!(r#"{body},"pair":"\ude00\ud83d"}}"#),
    ] {
        assert_eq!(reason(&line), RejectReason::InvalidJson, "{line}");
    }
}

#[test]
fn invalid_json_not_an_object() {
    for (line, found) in [
        ("[1,2]", "an array"),
        ("12", "a number"),
        ("-1.5", "a number"),
        ("true", "a boolean"),
        ("null", "null"),
        (r#""russellsanchez@example.org""#, "a string"),
    ] {
        let detail = detail(line);
        assert!(
            detail.starts_with(&format!("expected a JSON object, found {found}")),
            "{detail}"
        );
    }
}

#[test]
fn invalid_json_known_field_twice() {
    for name in [
        "event_id",
        "customer_id",
        "user_id",
        "fired_at",
        "event_type",
    ] {
        let valid = line_with(&[]);
        let line = format!(r#"{},"{name}":null}}"#, &valid[..valid.len() - 1]);
        let (reason, detail) = reject_of(line.as_bytes());
        assert_eq!(reason, RejectReason::InvalidJson);
        assert!(
            detail.starts_with(&format!("duplicate field {name}")),
            "{detail}"
        );
    }
}

#[test]
fn invalid_json_detail_is_serdes_message() {
    assert_eq!(
        detail("{"),
        "EOF while parsing an object at line 1 column 1"
    );
}

#[test]
fn deep_nesting_does_not_overflow_the_stack() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let valid = line_with(&[]);
    let line = format!(r#"{},"deep":{deep}}}"#, &valid[..valid.len() - 1]);
    assert_eq!(
        event(&line).customer_id,
        344,
        "skipped unknown fields have no depth limit"
    );
    let line = line_with(&[("customer_id", Some(&deep))]);
    assert_eq!(
        reject_of(line.as_bytes()).0,
        RejectReason::InvalidCustomerId
    );
    let unbalanced = line_with(&[("user_id", Some(&"[".repeat(100_000)))]);
    assert_eq!(
        reject_of(unbalanced.as_bytes()).0,
        RejectReason::InvalidJson
    );
}

#[test]
fn missing_event_id() {
    assert_eq!(
        reject_of(line_with(&[("event_id", None)]).as_bytes()),
        (RejectReason::MissingEventId, "event_id is missing".into())
    );
    assert_eq!(
        reject_of(line_with(&[("event_id", Some("null"))]).as_bytes()),
        (RejectReason::MissingEventId, "event_id is null".into())
    );
}

#[test]
fn invalid_event_id() {
    let long = format!("\"{}\"", "a".repeat(256));
    let long_multibyte = format!("\"{}\"", "é".repeat(128));
    for (raw_id, expected) in [
        ("5", "event_id 5 is not a string"),
        ("true", "event_id true is not a string"),
        (r#"["a"]"#, r#"event_id ["a"] is not a string"#),
        (r#"{"a":1}"#, r#"event_id {"a":1} is not a string"#),
        (r#""""#, r#"event_id "" is empty"#),
        (r#""   ""#, r#"event_id "   " is only whitespace"#),
        (r#""\t\n""#, r#"event_id "\t\n" is only whitespace"#),
        ("\"\u{3000}\"", "event_id \"\u{3000}\" is only whitespace"),
        (
            &long,
            &format!("event_id \"{}… is longer than 255 bytes", "a".repeat(63)),
        ),
        (
            &long_multibyte,
            &format!("event_id \"{}… is longer than 255 bytes", "é".repeat(63)),
        ),
        (
            r#""a\u0000b""#,
            r#"event_id "a\u0000b" contains a control character"#,
        ),
        (
            r#""a\tb""#,
            r#"event_id "a\tb" contains a control character"#,
        ),
        (
            "\"a\u{7f}b\"",
            r#"event_id "a\u{7f}b" contains a control character"#,
        ),
        (
            "\"a\u{9f}b\"",
            r#"event_id "a\u{9f}b" contains a control character"#,
        ),
    ] {
        let line = line_with(&[("event_id", Some(raw_id))]);
        assert_eq!(
            reject_of(line.as_bytes()),
            (RejectReason::InvalidEventId, expected.to_string()),
            "{raw_id}"
        );
    }
}

/// Raw JSON values that are not acceptable ids.
const BAD_IDS: [&str; 20] = [
    "-3",
    "-0",
    "12.5",
    "12.0",
    "1e3",
    "1E3",
    "9223372036854775808",
    "18446744073709551616",
    "123456789012345678901234567890",
    r#"" 12""#,
    r#""12 ""#,
    r#""""#,
    r#""abc""#,
    r#""-1""#,
    r#""+1""#,
    r#""9223372036854775808""#,
    r#""00000000000000000001""#,
    "true",
    "[12]",
    r#"{"id":12}"#,
];

#[test]
fn missing_customer_id() {
    assert_eq!(
        reason(&line_with(&[("customer_id", None)])),
        RejectReason::MissingCustomerId
    );
    assert_eq!(
        detail(&line_with(&[("customer_id", Some("null"))])),
        "customer_id is null"
    );
}

#[test]
fn invalid_customer_id() {
    for raw_id in BAD_IDS.iter().copied().chain(["\"١٢\"", r#""1.5""#]) {
        let (reason, detail) = reject_of(line_with(&[("customer_id", Some(raw_id))]).as_bytes());
        assert_eq!(reason, RejectReason::InvalidCustomerId, "{raw_id}");
        assert_eq!(
            detail,
            format!("customer_id {raw_id} is not an unsigned 63-bit integer")
        );
    }
}

#[test]
fn missing_user_id() {
    assert_eq!(
        reason(&line_with(&[("user_id", None)])),
        RejectReason::MissingUserId
    );
    assert_eq!(
        detail(&line_with(&[("user_id", Some("null"))])),
        "user_id is null"
    );
}

#[test]
fn invalid_user_id() {
    for raw_id in BAD_IDS {
        let (reason, detail) = reject_of(line_with(&[("user_id", Some(raw_id))]).as_bytes());
        assert_eq!(reason, RejectReason::InvalidUserId, "{raw_id}");
        assert_eq!(
            detail,
            format!("user_id {raw_id} is not an unsigned 63-bit integer")
        );
    }
}

#[test]
fn missing_fired_at() {
    assert_eq!(
        reason(&line_with(&[("fired_at", None)])),
        RejectReason::MissingFiredAt
    );
    assert_eq!(
        detail(&line_with(&[("fired_at", Some("null"))])),
        "fired_at is null"
    );
}

#[test]
fn invalid_fired_at() {
    for (raw_time, expected) in [
        ("1640994861", "fired_at 1640994861 is not a string"),
        (
            r#""13\/45\/2022, 25:61:00""#,
            r#"fired_at "13/45/2022, 25:61:00" is not a real date/time"#,
        ),
        (
            r#""2022-01-01 00:00:06""#,
            r#"fired_at "2022-01-01 00:00:06" is neither MM/DD/YYYY, HH:MM:SS nor RFC 3339"#,
        ),
        (
            r#""12\/31\/2021, 23:54:21 ""#,
            r#"fired_at "12/31/2021, 23:54:21 " is neither MM/DD/YYYY, HH:MM:SS nor RFC 3339"#,
        ),
        (
            r#""01\/01\/2022, 24:00:00""#,
            r#"fired_at "01/01/2022, 24:00:00" is not a real date/time"#,
        ),
        (
            r#""2016-12-31T23:59:60Z""#,
            r#"fired_at "2016-12-31T23:59:60Z" is not a real date/time"#,
        ),
        (
            r#""""#,
            r#"fired_at "" is neither MM/DD/YYYY, HH:MM:SS nor RFC 3339"#,
        ),
    ] {
        let line = line_with(&[("fired_at", Some(raw_time))]);
        assert_eq!(
            reject_of(line.as_bytes()),
            (RejectReason::InvalidFiredAt, expected.to_string())
        );
    }
}

#[test]
fn missing_event_type() {
    assert_eq!(
        reason(&line_with(&[("event_type", None)])),
        RejectReason::MissingEventType
    );
    assert_eq!(
        detail(&line_with(&[("event_type", Some("null"))])),
        "event_type is null"
    );
}

#[test]
fn unknown_event_type() {
    for raw_type in [
        r#""EMPTY_VALUE""#,
        r#""referralpageload""#,
        r#""ReferralPageLoad ""#,
        r#"" ReferralPageLoad""#,
        r#""""#,
        "5",
        "false",
        r#"["ReferralPageLoad"]"#,
    ] {
        let line = line_with(&[("event_type", Some(raw_type))]);
        assert_eq!(
            reject_of(line.as_bytes()),
            (
                RejectReason::UnknownEventType,
                format!("event_type {raw_type} is not an accepted event type")
            )
        );
    }
}

// ---- the first failing check wins ----

#[test]
fn length_is_checked_before_blank_and_encoding() {
    let cleaner = Cleaner::default();
    for bytes in [&b"    "[..], b"\xff\xff"] {
        let line = RawLine {
            number: 1,
            bytes,
            length: 10,
            too_long: true,
            has_newline: false,
        };
        assert!(matches!(
            cleaner.classify(&line),
            LineOutcome::Rejected {
                reason: RejectReason::LineTooLong,
                ..
            }
        ));
    }
}

#[test]
fn encoding_is_checked_before_syntax() {
    assert_eq!(
        reject_of(b"{\"ip\":\"\xff\", oops").0,
        RejectReason::InvalidUtf8
    );
}

#[test]
fn syntax_is_checked_before_fields() {
    let valid = line_with(&[("event_id", None), ("customer_id", Some("-1"))]);
    let body = &valid[..valid.len() - 1];
    assert_eq!(
        reason(&format!(r#"{body},"later":"\ud800"}}"#)),
        RejectReason::InvalidJson
    );
    assert_eq!(
        reason(&format!(r#"{body},"user_id":1}}"#)),
        RejectReason::InvalidJson
    );
    assert_eq!(reason(body), RejectReason::InvalidJson);
}

#[test]
fn fields_are_checked_in_spec_order() {
    let cases: [(&[Change], RejectReason); 9] = [
        (
            &[
                ("event_id", None),
                ("customer_id", None),
                ("event_type", Some("1")),
            ],
            RejectReason::MissingEventId,
        ),
        (
            &[("event_id", Some("1")), ("customer_id", None)],
            RejectReason::InvalidEventId,
        ),
        (
            &[("customer_id", None), ("user_id", Some("-1"))],
            RejectReason::MissingCustomerId,
        ),
        (
            &[("customer_id", Some("-1")), ("user_id", None)],
            RejectReason::InvalidCustomerId,
        ),
        (
            &[("user_id", None), ("fired_at", Some("1"))],
            RejectReason::MissingUserId,
        ),
        (
            &[("user_id", Some("1.5")), ("fired_at", None)],
            RejectReason::InvalidUserId,
        ),
        (
            &[("fired_at", None), ("event_type", Some("1"))],
            RejectReason::MissingFiredAt,
        ),
        (
            &[("fired_at", Some(r#""x""#)), ("event_type", None)],
            RejectReason::InvalidFiredAt,
        ),
        (&[("event_type", None)], RejectReason::MissingEventType),
    ];
    for (changes, expected) in cases {
        assert_eq!(reason(&line_with(changes)), expected, "{changes:?}");
    }
}

#[test]
fn reject_reason_order_matches_the_check_order() {
    let mut sorted = RejectReason::ALL;
    sorted.sort();
    assert_eq!(sorted, RejectReason::ALL);
    let codes: std::collections::HashSet<_> = RejectReason::ALL.iter().map(|r| r.code()).collect();
    assert_eq!(codes.len(), RejectReason::ALL.len());
}

// ---- properties ----

/// Reference for the lone-surrogate rule: any JSON value with every string decoded.
struct Strict;

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        while seq.next_element::<Strict>()?.is_some() {}
        Ok(Strict)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        while map.next_key::<Strict>()?.is_some() {
            map.next_value::<Strict>()?;
        }
        Ok(Strict)
    }
}

#[test]
fn lone_surrogate_scan() {
    assert_eq!(lone_surrogate(br#"{"a":"\ud83d\ude00"}"#), None);
    assert_eq!(
        lone_surrogate(br#"{"a":"\\ud800"}"#),
        None,
        "escaped backslash"
    );
    assert_eq!(lone_surrogate(br#"{"a":"\\\ud800"}"#), Some(8));
    assert_eq!(lone_surrogate(br#"{"a":"\ud800"}"#), Some(6));
    assert_eq!(lone_surrogate(br#"{"a":"\uDC00"}"#), Some(6));
    assert_eq!(lone_surrogate(br#"{"a":"\ud800\u0041"}"#), Some(6));
    assert_eq!(lone_surrogate(br#"{"a":"\ud800\ud800\udc00"}"#), Some(6));
    assert_eq!(lone_surrogate(br#"\ud800\"#), Some(0));
    assert_eq!(lone_surrogate(br#"\ud8"#), None);
    assert_eq!(lone_surrogate(b"\\"), None);
}

fn count_outcomes(data: &[u8], max_line_bytes: usize) -> u64 {
    let cleaner = Cleaner::default();
    let mut reader = LineReader::new(data, max_line_bytes);
    let mut lines = 0;
    while let Some(line) = reader.next_line().unwrap() {
        lines += 1;
        assert_eq!(line.number, lines);
        match cleaner.classify(&line) {
            LineOutcome::Blank | LineOutcome::Event(_) | LineOutcome::Rejected { .. } => {}
        }
    }
    assert_eq!(reader.offset(), data.len() as u64);
    lines
}

fn expected_lines(data: &[u8]) -> u64 {
    let newlines = data.iter().filter(|&&b| b == b'\n').count() as u64;
    newlines + u64::from(!data.is_empty() && !data.ends_with(b"\n"))
}

proptest! {
    #[test]
    fn every_line_of_arbitrary_bytes_gets_one_outcome(
        data in proptest::collection::vec(any::<u8>(), 0..600),
        max_line_bytes in 0usize..80,
    ) {
        prop_assert_eq!(count_outcomes(&data, max_line_bytes), expected_lines(&data));
    }

    #[test]
    fn every_line_of_json_like_text_gets_one_outcome(
        data in r#"([{}\[\]",:0-9a-z_\\/ \t\r\n.eE+-]|"(event_id|customer_id|user_id|fired_at|event_type)"|\\u[dD][89abAB]00|\xEF\xBB\xBF){0,120}"#,
    ) {
        prop_assert_eq!(count_outcomes(data.as_bytes(), 1 << 20), expected_lines(data.as_bytes()));
    }

    /// Skipping with `IgnoredAny` plus the lexical scan accepts exactly what decoding every
    /// string accepts (numbers stay in f64 range: `deserialize_any` refuses `1e999`).
    #[test]
    fn surrogate_scan_matches_decoding_every_string(
        text in r#"([{}\[\]",:0-9. \\/-]|true|null|\\u[dD][89abAB]0[0f]|\\u[dD][c-fC-F]0[0f]|\\u00[4e]1|\\u[0-9a-fA-F]{0,3}|\\[\\/"nx]){0,40}"#,
    ) {
        let strict = serde_json::from_str::<Strict>(&text).is_ok();
        let skipped = serde_json::from_str::<IgnoredAny>(&text).is_ok()
            && lone_surrogate(text.as_bytes()).is_none();
        prop_assert_eq!(strict, skipped);
    }

    #[test]
    fn surrogate_scan_matches_decoding_in_strings(
        body in r#"([a-z ]|\\u[dD][89abAB]0[0f]|\\u[dD][c-fC-F]0[0f]|\\u00[4e]1|\\[\\/"n]){0,12}"#,
    ) {
        let text = format!(r#"{{"k":["{body}", "{body}"]}}"#);
        let strict = serde_json::from_str::<Strict>(&text).is_ok();
        let skipped = serde_json::from_str::<IgnoredAny>(&text).is_ok()
            && lone_surrogate(text.as_bytes()).is_none();
        prop_assert_eq!(strict, skipped, "{}", text);
    }

    #[test]
    fn mutated_real_lines_never_panic(position in 0usize..220, byte in any::<u8>()) {
        let mut bytes = line_with(&[]).into_bytes();
        let at = position % bytes.len();
        bytes[at] = byte;
        let _ = Cleaner::default().classify(&raw(&bytes));
    }

    #[test]
    fn generated_events_are_loaded(
        event_id in "[!-~]{1,40}",
        customer_id in 0i64..=i64::MAX,
        user_id in 0i64..=i64::MAX,
        ids_as_strings in any::<bool>(),
        type_index in 0usize..3,
        secs in 0i64..4_102_444_800,
    ) {
        let fired_at = chrono::DateTime::from_timestamp(secs, 0).unwrap().format("%m/%d/%Y, %H:%M:%S").to_string();
        let id = |v: i64| if ids_as_strings { format!("\"{v}\"") } else { v.to_string() };
        let line = serde_json::json!({
            "event_id": event_id,
            "fired_at": fired_at,
            "event_type": DEFAULT_EVENT_TYPES[type_index],
        })
        .to_string();
        let line = format!(r#"{{"customer_id":{},"user_id":{},{}"#, id(customer_id), id(user_id), &line[1..]);
        let event = event(&line);
        prop_assert_eq!(event.event_id.as_ref(), event_id.as_str());
        prop_assert_eq!((event.customer_id, event.user_id), (customer_id, user_id));
        prop_assert_eq!(event.event_type, type_index);
        prop_assert_eq!(event.fired_at_micros, secs * 1_000_000);
    }
}

#[test]
fn personal_data_is_captured_only_when_asked() {
    let line = r#"{"event_id":"a","customer_id":1,"fired_at":"01\/01\/2022, 00:00:06","user_id":2,"event_type":"ReferralPageLoad","ip":"10.0.0.1","email":"x\u0040example.org","ip":"10.9.9.9"}"#;
    let raw = RawLine {
        number: 1,
        bytes: line.as_bytes(),
        length: line.len() as u64,
        too_long: false,
        has_newline: true,
    };
    match Cleaner::default().classify(&raw) {
        LineOutcome::Event(event) => assert_eq!((event.ip, event.email), (None, None)),
        other => panic!("{other:?}"),
    }
    match Cleaner::default().capturing_personal_data().classify(&raw) {
        LineOutcome::Event(event) => {
            assert_eq!(
                event.ip.as_deref(),
                Some("10.0.0.1"),
                "the first occurrence"
            );
            assert_eq!(event.email.as_deref(), Some("x@example.org"));
        }
        other => panic!("{other:?}"),
    }
    // A personal field of another type is ignored, not a reject.
    let line = r#"{"event_id":"a","customer_id":1,"fired_at":"01\/01\/2022, 00:00:06","user_id":2,"event_type":"ReferralPageLoad","ip":[1,2],"email":null}"#;
    let raw = RawLine {
        number: 1,
        bytes: line.as_bytes(),
        length: line.len() as u64,
        too_long: false,
        has_newline: true,
    };
    match Cleaner::default().capturing_personal_data().classify(&raw) {
        LineOutcome::Event(event) => assert_eq!((event.ip, event.email), (None, None)),
        other => panic!("{other:?}"),
    }
}
