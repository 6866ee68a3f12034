//! Hostile and broken input (SPEC §3, issue 6): every bad line gets its one outcome, the counts
//! balance, and the good lines around it in the same file are loaded — nothing else is lost.

mod common;

use std::io::Write;
use std::path::Path;

use common::{campaign_elt, stdout_json, TestDatabase};

/// The expected outcome of one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Loaded,
    Blank,
    Rejected(&'static str),
}
use Outcome::*;

/// A line with the five event fields, `field` replaced by `value` (raw JSON) or, with
/// `value = None`, left out.
fn event_with(id: &str, field: &str, value: Option<&str>) -> Vec<u8> {
    let fields = [
        ("event_id", format!("{:?}", id)),
        ("customer_id", "344".to_owned()),
        ("fired_at", r#""01\/01\/2022, 00:00:06""#.to_owned()),
        ("user_id", "165".to_owned()),
        ("event_type", r#""ReferralPageLoad""#.to_owned()),
    ];
    let body: Vec<String> = fields
        .iter()
        .filter_map(|(name, default)| {
            if *name == field {
                value.map(|value| format!("\"{name}\":{value}"))
            } else {
                Some(format!("\"{name}\":{default}"))
            }
        })
        .collect();
    format!("{{{}}}", body.join(",")).into_bytes()
}

fn good(id: &str) -> Vec<u8> {
    event_with(id, "", None)
}

/// A good line with extra raw JSON inserted before the closing brace.
fn good_plus(id: &str, extra: &str) -> Vec<u8> {
    let mut line = good(id);
    line.pop();
    line.extend_from_slice(extra.as_bytes());
    line.push(b'}');
    line
}

fn bytes(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// The catalog: (name, the hostile line — without its `\n` — given the case's event id, outcome).
fn catalog() -> Vec<(&'static str, Vec<u8>, Outcome)> {
    let deep = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let id = "hostile";
    let mut cases: Vec<(&'static str, Vec<u8>, Outcome)> = vec![
        // encoding
        (
            "invalid utf-8 in a string",
            good_plus(id, ",\"x\":\"\u{1}\"")
                .iter()
                .map(|&b| if b == 1 { 0xff } else { b })
                .collect(),
            Rejected("invalid_utf8"),
        ),
        (
            "overlong utf-8",
            bytes(&[&good(id)[..10], b"\xc0\xaf", &good(id)[10..]]),
            Rejected("invalid_utf8"),
        ),
        (
            "utf-8 encoded surrogate",
            good_plus(id, ",\"x\":\"\u{1}\"")
                .iter()
                .flat_map(|&b| {
                    if b == 1 {
                        vec![0xed, 0xa0, 0x80]
                    } else {
                        vec![b]
                    }
                })
                .collect(),
            Rejected("invalid_utf8"),
        ),
        (
            "a BOM in the middle of a file",
            bytes(&[b"\xef\xbb\xbf", &good(id)]),
            Rejected("invalid_json"),
        ),
        ("CRLF", bytes(&[&good(id), b"\r"]), Loaded),
        (
            "two CRs: one is removed, one is JSON whitespace",
            bytes(&[&good(id), b"\r\r"]),
            Loaded,
        ),
        (
            "NUL byte outside the JSON",
            bytes(&[&good(id), b"\0"]),
            Rejected("invalid_json"),
        ),
        (
            "raw NUL inside a string",
            event_with(id, "user_id", Some("\"1\0\"")),
            Rejected("invalid_json"),
        ),
        (
            "escaped NUL in the event id",
            event_with(id, "event_id", Some(r#""a\u0000b""#)),
            Rejected("invalid_event_id"),
        ),
        ("only ASCII whitespace", b" \t\x0b\x0c \r".to_vec(), Blank),
        (
            "no-break space is not blank",
            "\u{a0}".as_bytes().to_vec(),
            Rejected("invalid_json"),
        ),
        // syntax
        (
            "deeply nested JSON in an unknown field",
            good_plus(id, &format!(",\"x\":{}", deep(100_000))),
            Loaded,
        ),
        (
            "deeply nested JSON as a known field",
            event_with(id, "customer_id", Some(&deep(100_000))),
            Rejected("invalid_customer_id"),
        ),
        (
            "deeply nested objects as the event id",
            event_with(
                id,
                "event_id",
                Some(&format!(
                    "{}1{}",
                    "{\"a\":".repeat(50_000),
                    "}".repeat(50_000)
                )),
            ),
            Rejected("invalid_event_id"),
        ),
        (
            "a known field twice",
            good_plus(id, ",\"user_id\":165"),
            Rejected("invalid_json"),
        ),
        (
            "an unknown field twice",
            good_plus(id, ",\"ip\":\"1.2.3.4\",\"ip\":\"5.6.7.8\""),
            Loaded,
        ),
        (
            "NaN",
            event_with(id, "customer_id", Some("NaN")),
            Rejected("invalid_json"),
        ),
        (
            "Infinity",
            event_with(id, "user_id", Some("Infinity")),
            Rejected("invalid_json"),
        ),
        (
            "lone surrogate in the event id",
            event_with(id, "event_id", Some(r#""a\ud800""#)),
            Rejected("invalid_json"),
        ),
        (
            "lone low surrogate in an unknown field",
            good_plus(id, r#","email":"\udc00""#),
            Rejected("invalid_json"),
        ),
        (
            "surrogate pair is fine",
            event_with(id, "event_id", Some(r#""hostile\ud83d\ude00""#)),
            Loaded,
        ),
        (
            "not an object",
            b"[1,2,3]".to_vec(),
            Rejected("invalid_json"),
        ),
        ("null", b"null".to_vec(), Rejected("invalid_json")),
        (
            "cut-off object",
            good(id)[..40].to_vec(),
            Rejected("invalid_json"),
        ),
        (
            "trailing garbage",
            bytes(&[&good(id), b" x"]),
            Rejected("invalid_json"),
        ),
        (
            "two objects on one line",
            bytes(&[&good(id), &good("other")]),
            Rejected("invalid_json"),
        ),
        ("empty object", b"{}".to_vec(), Rejected("missing_event_id")),
        // ids
        (
            "customer id as a string",
            event_with(id, "customer_id", Some("\"12\"")),
            Loaded,
        ),
        (
            "customer id 2^63-1",
            event_with(id, "customer_id", Some("9223372036854775807")),
            Loaded,
        ),
        (
            "customer id 2^63-1 as a string",
            event_with(id, "customer_id", Some("\"9223372036854775807\"")),
            Loaded,
        ),
        (
            "customer id 0",
            event_with(id, "customer_id", Some("0")),
            Loaded,
        ),
        (
            "customer id 2^63",
            event_with(id, "customer_id", Some("9223372036854775808")),
            Rejected("invalid_customer_id"),
        ),
        (
            "customer id 2^63 as a string",
            event_with(id, "customer_id", Some("\"9223372036854775808\"")),
            Rejected("invalid_customer_id"),
        ),
        (
            "customer id 2^64",
            event_with(id, "customer_id", Some("18446744073709551616")),
            Rejected("invalid_customer_id"),
        ),
        // Beyond the range of a double the JSON parser refuses the number itself.
        (
            "customer id of 400 digits",
            event_with(id, "customer_id", Some(&format!("1{}", "0".repeat(400)))),
            Rejected("invalid_json"),
        ),
        (
            "customer id of 20 digit characters",
            event_with(id, "customer_id", Some("\"00000000000000000012\"")),
            Rejected("invalid_customer_id"),
        ),
        (
            "customer id as a float",
            event_with(id, "customer_id", Some("12.0")),
            Rejected("invalid_customer_id"),
        ),
        (
            "customer id with an exponent",
            event_with(id, "customer_id", Some("1e3")),
            Rejected("invalid_customer_id"),
        ),
        (
            "negative customer id",
            event_with(id, "customer_id", Some("-3")),
            Rejected("invalid_customer_id"),
        ),
        (
            "negative zero",
            event_with(id, "customer_id", Some("-0")),
            Rejected("invalid_customer_id"),
        ),
        (
            "customer id with a leading zero",
            event_with(id, "customer_id", Some("012")),
            Rejected("invalid_json"),
        ),
        (
            "customer id string with a space",
            event_with(id, "customer_id", Some("\" 12\"")),
            Rejected("invalid_customer_id"),
        ),
        (
            "customer id string with a sign",
            event_with(id, "customer_id", Some("\"+12\"")),
            Rejected("invalid_customer_id"),
        ),
        (
            "customer id true",
            event_with(id, "customer_id", Some("true")),
            Rejected("invalid_customer_id"),
        ),
        (
            "customer id null",
            event_with(id, "customer_id", Some("null")),
            Rejected("missing_customer_id"),
        ),
        (
            "user id missing",
            event_with(id, "user_id", None),
            Rejected("missing_user_id"),
        ),
        (
            "negative user id",
            event_with(id, "user_id", Some("-1")),
            Rejected("invalid_user_id"),
        ),
        (
            "user id as an exponent",
            event_with(id, "user_id", Some("1E2")),
            Rejected("invalid_user_id"),
        ),
        (
            "event id of 255 bytes",
            event_with(&"a".repeat(255), "", None),
            Loaded,
        ),
        (
            "event id of 256 bytes",
            event_with(&"a".repeat(256), "", None),
            Rejected("invalid_event_id"),
        ),
        (
            "event id of 256 bytes in 128 characters",
            event_with(&"é".repeat(128), "", None),
            Rejected("invalid_event_id"),
        ),
        (
            "event id with a control character",
            event_with(id, "event_id", Some(r#""a\u0007b""#)),
            Rejected("invalid_event_id"),
        ),
        (
            "event id with DEL",
            event_with(id, "event_id", Some(r#""a\u007fb""#)),
            Rejected("invalid_event_id"),
        ),
        (
            "event id with an escaped newline",
            event_with(id, "event_id", Some(r#""a\nb""#)),
            Rejected("invalid_event_id"),
        ),
        (
            "event id with a raw tab",
            event_with(id, "event_id", Some("\"a\tb\"")),
            Rejected("invalid_json"),
        ),
        (
            "event id empty",
            event_with(id, "event_id", Some("\"\"")),
            Rejected("invalid_event_id"),
        ),
        (
            "event id only whitespace",
            event_with(id, "event_id", Some("\" \"")),
            Rejected("invalid_event_id"),
        ),
        (
            "event id a number",
            event_with(id, "event_id", Some("5")),
            Rejected("invalid_event_id"),
        ),
        (
            "event id null",
            event_with(id, "event_id", Some("null")),
            Rejected("missing_event_id"),
        ),
        // fired_at
        (
            "February 30th",
            event_with(id, "fired_at", Some("\"02/30/2022, 00:00:06\"")),
            Rejected("invalid_fired_at"),
        ),
        (
            "February 29th of a common year",
            event_with(id, "fired_at", Some("\"02/29/2022, 00:00:06\"")),
            Rejected("invalid_fired_at"),
        ),
        (
            "February 29th of a leap year",
            event_with(id, "fired_at", Some("\"02/29/2020, 00:00:06\"")),
            Loaded,
        ),
        (
            "hour 24",
            event_with(id, "fired_at", Some("\"01/01/2022, 24:00:00\"")),
            Rejected("invalid_fired_at"),
        ),
        (
            "second 60",
            event_with(id, "fired_at", Some("\"01/01/2022, 23:59:60\"")),
            Rejected("invalid_fired_at"),
        ),
        (
            "minute 60",
            event_with(id, "fired_at", Some("\"01/01/2022, 23:60:00\"")),
            Rejected("invalid_fired_at"),
        ),
        (
            "month 13",
            event_with(id, "fired_at", Some("\"13/01/2022, 00:00:00\"")),
            Rejected("invalid_fired_at"),
        ),
        (
            "not zero-padded",
            event_with(id, "fired_at", Some("\"1/1/2022, 00:00:06\"")),
            Rejected("invalid_fired_at"),
        ),
        (
            "no comma",
            event_with(id, "fired_at", Some("\"01/01/2022 00:00:06\"")),
            Rejected("invalid_fired_at"),
        ),
        (
            "ISO date with a space",
            event_with(id, "fired_at", Some("\"2022-01-01 00:00:06\"")),
            Rejected("invalid_fired_at"),
        ),
        (
            "RFC 3339 without an offset",
            event_with(id, "fired_at", Some("\"2022-01-01T00:00:06\"")),
            Rejected("invalid_fired_at"),
        ),
        (
            "RFC 3339 leap second",
            event_with(id, "fired_at", Some("\"2016-12-31T23:59:60Z\"")),
            Rejected("invalid_fired_at"),
        ),
        (
            "RFC 3339 February 30th",
            event_with(id, "fired_at", Some("\"2022-02-30T00:00:06Z\"")),
            Rejected("invalid_fired_at"),
        ),
        (
            "Unix seconds",
            event_with(id, "fired_at", Some("1640995206")),
            Rejected("invalid_fired_at"),
        ),
        (
            "empty fired_at",
            event_with(id, "fired_at", Some("\"\"")),
            Rejected("invalid_fired_at"),
        ),
        (
            "fired_at missing",
            event_with(id, "fired_at", None),
            Rejected("missing_fired_at"),
        ),
        (
            "RFC 3339 with a positive offset",
            event_with(
                "offset-plus",
                "fired_at",
                Some("\"2022-01-01T00:30:06+02:00\""),
            ),
            Loaded,
        ),
        (
            "RFC 3339 with a negative offset",
            event_with(
                "offset-minus",
                "fired_at",
                Some("\"2021-12-31T23:30:06-05:30\""),
            ),
            Loaded,
        ),
        (
            "RFC 3339 in lower case with 7 fraction digits",
            event_with(
                "fraction",
                "fired_at",
                Some("\"2022-01-01t00:00:06.1234567z\""),
            ),
            Loaded,
        ),
        // event_type
        (
            "EMPTY_VALUE",
            event_with(id, "event_type", Some("\"EMPTY_VALUE\"")),
            Rejected("unknown_event_type"),
        ),
        (
            "event type in lower case",
            event_with(id, "event_type", Some("\"referralpageload\"")),
            Rejected("unknown_event_type"),
        ),
        (
            "event type with a space",
            event_with(id, "event_type", Some("\" ReferralPageLoad\"")),
            Rejected("unknown_event_type"),
        ),
        (
            "event type null",
            event_with(id, "event_type", Some("null")),
            Rejected("missing_event_type"),
        ),
    ];
    // The check order decides between several problems: the first one is the reason.
    cases.push((
        "invalid utf-8 and invalid json",
        b"{\xff".to_vec(),
        Rejected("invalid_utf8"),
    ));
    cases.push((
        "bad event id and bad customer id",
        replace(
            &event_with(id, "event_id", Some("\"\"")),
            "\"customer_id\":344",
            "\"customer_id\":-1",
        ),
        Rejected("invalid_event_id"),
    ));
    cases
}

fn replace(line: &[u8], from: &str, to: &str) -> Vec<u8> {
    String::from_utf8(line.to_vec())
        .unwrap()
        .replace(from, to)
        .into_bytes()
}

/// Gives the line of case `index` an event id of its own (`hostile` → `hostile-<index>`), so
/// that the valid ones are not duplicates of each other. Bytes that are not UTF-8 stay as they are.
fn with_case_id(line: &[u8], index: usize) -> Vec<u8> {
    let needle = b"\"hostile";
    match line
        .windows(needle.len())
        .position(|window| window == needle)
    {
        Some(at) => bytes(&[
            &line[..at + needle.len()],
            format!("-{index}").as_bytes(),
            &line[at + needle.len()..],
        ]),
        None => line.to_vec(),
    }
}

/// Every case in a file of its own, between two good lines, all files in one `run --json`:
/// each file's counts, each line's outcome (by line number, in the database) and the good
/// neighbours are checked.
#[tokio::test]
async fn every_hostile_line_gets_its_outcome_and_its_neighbours_load() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<_> = catalog()
        .into_iter()
        .enumerate()
        .map(|(index, (name, line, outcome))| (name, with_case_id(&line, index), outcome))
        .collect();
    let mut paths = Vec::new();
    for (index, (_, line, _)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("case_{index:03}.jsonl"));
        let mut content = good(&format!("case{index}-before"));
        content.push(b'\n');
        content.extend_from_slice(line);
        content.push(b'\n');
        content.extend(good(&format!("case{index}-after")));
        content.push(b'\n');
        std::fs::write(&path, content).unwrap();
        paths.push(path.to_str().unwrap().to_owned());
    }
    let db = TestDatabase::new().await;
    let mut args = vec!["run", "--json"];
    args.extend(paths.iter().map(String::as_str));
    let summary = stdout_json(&db.run_expecting(0, &args));
    let client = db.client().await;

    let mut failures = Vec::new();
    for (index, (name, _, expected)) in cases.iter().enumerate() {
        let file = &summary["files"][index];
        let counts = &file["counts"];
        let count = |key: &str| counts[key].as_u64().unwrap();
        assert!(
            file["path"]
                .as_str()
                .unwrap()
                .ends_with(&format!("case_{index:03}.jsonl")),
            "files in command-line order"
        );
        assert_eq!(count("lines"), 3, "{name}");
        assert_eq!(
            count("lines"),
            count("loaded") + count("duplicates") + count("rejected") + count("blank"),
            "{name}: every line has one outcome"
        );
        let load_id = file["load_id"].as_i64().unwrap();
        let outcomes = common::rows(
            &client,
            &format!(
                "select line_number, 'loaded' as outcome from elt.events where load_id = {load_id}
                 union all
                 select line_number, reason from elt.rejects where load_id = {load_id}"
            ),
        )
        .await;
        let mut expected_rows = vec!["1|loaded".to_owned(), "3|loaded".to_owned()];
        match expected {
            Loaded => expected_rows.push("2|loaded".to_owned()),
            Rejected(reason) => expected_rows.push(format!("2|{reason}")),
            Blank => {}
        }
        expected_rows.sort();
        let expected_counts = match expected {
            Loaded => (3, 0, 0, 0),
            Blank => (2, 0, 0, 1),
            Rejected(_) => (2, 0, 1, 0),
        };
        let actual_counts = (
            count("loaded"),
            count("duplicates"),
            count("rejected"),
            count("blank"),
        );
        if outcomes != expected_rows || actual_counts != expected_counts {
            failures.push(format!(
                "{name}: expected {expected:?}, lines {outcomes:?}, counts (loaded, duplicates, rejected, blank) {actual_counts:?}"
            ));
        }
        if let Rejected(reason) = expected {
            assert_eq!(
                counts["rejected_by_reason"][reason].as_u64(),
                Some(1),
                "{name}"
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Totals balance over the run too.
    let totals = &summary["totals"];
    let total = |key: &str| totals[key].as_u64().unwrap();
    assert_eq!(total("lines"), 3 * cases.len() as u64);
    assert_eq!(
        total("lines"),
        total("loaded") + total("duplicates") + total("rejected") + total("blank")
    );
    // Rejected lines are stored byte for byte (invalid UTF-8 included).
    let raw: Vec<u8> = client
        .query_one(
            "select raw_line from elt.rejects where reason = 'invalid_utf8' order by load_id, line_number limit 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(raw, cases[0].1);
    // Accepted values are stored as given or converted to UTC, fractions cut to microseconds.
    client.batch_execute("set time zone 'UTC'").await.unwrap();
    common::assert_rows_eq(
        &common::rows(
            &client,
            "select elt.event_id(event_id_uuid, event_id_text), to_char(fired_at, 'YYYY-MM-DD HH24:MI:SS.US') from elt.events
             where elt.event_id(event_id_uuid, event_id_text) in ('offset-plus', 'offset-minus', 'fraction')",
        )
        .await,
        &[
            "offset-plus|2021-12-31 22:30:06.000000",
            "offset-minus|2022-01-01 05:00:06.000000",
            "fraction|2022-01-01 00:00:06.123456",
        ],
    );
}

fn write(path: &Path, content: &[u8]) {
    std::fs::write(path, content).unwrap();
}

fn counts(summary: &serde_json::Value, file: usize) -> (u64, u64, u64, u64, u64) {
    let counts = &summary["files"][file]["counts"];
    let count = |key: &str| counts[key].as_u64().unwrap();
    (
        count("lines"),
        count("loaded"),
        count("duplicates"),
        count("rejected"),
        count("blank"),
    )
}

/// File-level cases: a BOM at the start, CRLF everywhere, no final newline, an empty file, a
/// file of blank lines, a duplicate, and a rejected line that must not hide a later valid one.
#[tokio::test]
async fn file_level_quirks_keep_every_line() {
    let dir = tempfile::tempdir().unwrap();
    let bom = dir.path().join("bom_crlf_no_final_newline.jsonl");
    write(
        &bom,
        &bytes(&[
            b"\xef\xbb\xbf",
            &good("bom-1"),
            b"\r\n",
            &good("bom-2"),
            b"\r\n\r\n",
            &good("bom-1"), // duplicate of line 1
            b"\r\n",
            &event_with("bom-3", "customer_id", Some("-1")),
            b"\r\n",
            &good("bom-3"), // valid after a rejected line with the same id
            b"\r\n",
            &good("bom-4"),
        ]),
    );
    let empty = dir.path().join("empty.jsonl");
    write(&empty, b"");
    let blank = dir.path().join("blank.jsonl");
    write(&blank, b"\n\n \n\t\r\n\r\n");
    let bom_only = dir.path().join("bom_only.jsonl");
    write(&bom_only, b"\xef\xbb\xbf");
    let db = TestDatabase::new().await;
    let summary = stdout_json(&db.run_expecting(
        0,
        &[
            "run",
            "--json",
            bom.to_str().unwrap(),
            empty.to_str().unwrap(),
            blank.to_str().unwrap(),
            bom_only.to_str().unwrap(),
        ],
    ));
    // lines, loaded, duplicates, rejected, blank
    assert_eq!(counts(&summary, 0), (7, 4, 1, 1, 1));
    assert_eq!(
        summary["files"][0]["note"].as_str(),
        Some("the last line has no final newline")
    );
    assert_eq!(counts(&summary, 1), (0, 0, 0, 0, 0));
    assert_eq!(counts(&summary, 2), (5, 0, 0, 0, 5));
    assert_eq!(
        counts(&summary, 3),
        (1, 0, 0, 0, 1),
        "a lone BOM is one empty line"
    );
    let client = db.client().await;
    common::assert_rows_eq(
        &common::rows(
            &client,
            "select elt.event_id(event_id_uuid, event_id_text), line_number from elt.events",
        )
        .await,
        &["bom-1|1", "bom-2|2", "bom-3|6", "bom-4|7"],
    );
}

/// A line far over the limit is rejected as line_too_long, only its first `--max-line-bytes`
/// bytes are kept (the reader never holds it whole), and the next line loads.
#[tokio::test]
async fn a_five_megabyte_line_is_rejected_and_the_next_line_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.jsonl");
    let huge = good_plus("huge", &format!(",\"x\":\"{}\"", "a".repeat(5 << 20)));
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for part in [
        &good("before")[..],
        b"\n",
        &huge,
        b"\n",
        &good("after"),
        b"\n",
    ] {
        file.write_all(part).unwrap();
    }
    file.into_inner().unwrap().sync_all().unwrap();
    let db = TestDatabase::new().await;
    let summary = stdout_json(&db.run_expecting(0, &["run", "--json", path.to_str().unwrap()]));
    assert_eq!(counts(&summary, 0), (3, 2, 0, 1, 0));
    assert_eq!(
        summary["totals"]["rejected_by_reason"]["line_too_long"].as_u64(),
        Some(1)
    );
    let client = db.client().await;
    let row = client
        .query_one(
            "select line_number, length(raw_line), line_length from elt.rejects",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 2);
    assert_eq!(row.get::<_, i32>(1), 1 << 20, "only the limit is kept");
    assert_eq!(
        row.get::<_, i64>(2),
        huge.len() as i64,
        "the full length is recorded"
    );
    common::assert_rows_eq(
        &common::rows(
            &client,
            "select elt.event_id(event_id_uuid, event_id_text), line_number from elt.events",
        )
        .await,
        &["before|1", "after|3"],
    );
}

/// A gzip file cut off in the middle (a copy that died, a full disk): the batches committed
/// before the cut stay loaded, the batch that hit the cut is rolled back, the run exits 1 naming
/// the file, and the ledger marks the load `failed`. Nothing half-done is visible: the events are
/// exactly what the ledger says was loaded.
#[tokio::test]
async fn a_cut_off_gzip_file_keeps_its_committed_batches_and_fails_naming_the_file() {
    use flate2::write::GzEncoder;
    let dir = tempfile::tempdir().unwrap();
    let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::default());
    for index in 0..20_000 {
        encoder.write_all(&good(&format!("gz-{index}"))).unwrap();
        encoder.write_all(b"\n").unwrap();
    }
    let whole = encoder.finish().unwrap();
    let path = dir.path().join("cut.jsonl.gz");
    write(&path, &whole[..whole.len() / 2]);
    let path_text = path.to_str().unwrap();
    let db = TestDatabase::new().await;
    let output = db.run_expecting(1, &["run", "--batch-lines", "1000", path_text]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot load {path_text}")) && stderr.contains("deflate"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    let client = db.client().await;
    let row = client
        .query_one(
            "select (select count(*) from elt.events), loaded, committed_line_number, status from elt.loads",
            &[],
        )
        .await
        .unwrap();
    let (events, loaded, committed, status): (i64, i64, i64, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(status, "failed");
    assert_eq!(events, loaded);
    assert!(committed >= 1000, "batches before the cut are kept");
    assert_eq!(
        committed % 1000,
        0,
        "the batch that hit the cut was rolled back"
    );

    // The complete file (same path, new content) loads whole; dedup keeps the counts right.
    write(&path, &whole);
    db.run_expecting(0, &["run", "--batch-lines", "1000", path_text]);
    let events: i64 = client
        .query_one("select count(*) from elt.events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(events, 20_000);
}

/// A directory, a dangling symlink, a symlink loop, a path through a file, and (when not root)
/// a file without read permission: exit 1 with one clear line naming the path; the files
/// before it on the command line stay loaded.
#[tokio::test]
async fn a_directory_or_unreadable_path_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.jsonl");
    write(&first, &bytes(&[&good("first"), b"\n"]));
    let subdirectory = dir.path().join("a_directory.jsonl");
    std::fs::create_dir(&subdirectory).unwrap();
    let dangling = dir.path().join("dangling.jsonl");
    std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
    let looping = dir.path().join("loop.jsonl");
    std::os::unix::fs::symlink(&looping, &looping).unwrap();
    let through_file = first.join("child.jsonl");
    let unreadable = dir.path().join("unreadable.jsonl");
    write(&unreadable, &good("secret"));
    std::fs::set_permissions(
        &unreadable,
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();
    let is_root = std::fs::read(&unreadable).is_ok();

    let db = TestDatabase::new().await;
    let mut bad = vec![
        (subdirectory.clone(), "directory"),
        (dangling, "no such file"),
        (looping, "symbolic links"),
        (through_file, "not a directory"),
    ];
    if !is_root {
        bad.push((unreadable, "permission denied"));
    }
    for (path, message) in bad {
        let path_text = path.to_str().unwrap();
        let output = db.run_expecting(1, &["run", first.to_str().unwrap(), path_text]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(
            stderr.contains(path_text) && stderr.to_lowercase().contains(message),
            "{path_text}: {stderr}"
        );
    }
    let client = db.client().await;
    common::assert_rows_eq(
        &common::rows(
            &client,
            "select elt.event_id(event_id_uuid, event_id_text) from elt.events",
        )
        .await,
        &["first"],
    );
    // `check` (no database) says the same.
    let output = campaign_elt()
        .args(["check", subdirectory.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is a directory"));
}
