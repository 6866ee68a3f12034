//! Hostile and broken input (issue 6; README, section "Every line is accounted for"): every line
//! gets exactly one outcome — loaded, duplicate, rejected (the first check it fails is the
//! reason) or blank — so lines = loaded + duplicates + rejected + blank per file and per run, and
//! the good lines around a bad one in the same file are loaded: nothing else is lost.

mod common;

use std::io::Write;
use std::path::Path;

use common::{
    campaign_elt, count, event, events_and_the_load, stderr, stdout_json, EventLine, TestDatabase,
};

/// The expected outcome of one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Loaded,
    Blank,
    Rejected(&'static str),
}
use Outcome::*;

/// The good line of event `id`: a page load with the five event fields. The catalog's lines
/// are this one with a field changed, left out, added or garbled.
fn good(id: &str) -> EventLine {
    event(id, 344, 165, "01/01/2022, 00:00:06", "ReferralPageLoad")
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
            good(id)
                .and("x", "\"\u{1}\"")
                .bytes()
                .iter()
                .map(|&b| if b == 1 { 0xff } else { b })
                .collect(),
            Rejected("invalid_utf8"),
        ),
        (
            "overlong utf-8",
            bytes(&[
                &good(id).bytes()[..10],
                b"\xc0\xaf",
                &good(id).bytes()[10..],
            ]),
            Rejected("invalid_utf8"),
        ),
        (
            "utf-8 encoded surrogate",
            good(id)
                .and("x", "\"\u{1}\"")
                .bytes()
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
            bytes(&[b"\xef\xbb\xbf", &good(id).bytes()]),
            Rejected("invalid_json"),
        ),
        ("CRLF", bytes(&[&good(id).bytes(), b"\r"]), Loaded),
        (
            "two CRs: one is removed, one is JSON whitespace",
            bytes(&[&good(id).bytes(), b"\r\r"]),
            Loaded,
        ),
        (
            "NUL byte outside the JSON",
            bytes(&[&good(id).bytes(), b"\0"]),
            Rejected("invalid_json"),
        ),
        (
            "raw NUL inside a string",
            good(id).with("user_id", "\"1\0\"").bytes(),
            Rejected("invalid_json"),
        ),
        (
            "escaped NUL in the event id",
            good(id).with("event_id", r#""a\u0000b""#).bytes(),
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
            good(id).and("x", &deep(100_000)).bytes(),
            Loaded,
        ),
        (
            "deeply nested JSON as a known field",
            good(id).with("customer_id", &deep(100_000)).bytes(),
            Rejected("invalid_customer_id"),
        ),
        (
            "deeply nested objects as the event id",
            good(id)
                .with(
                    "event_id",
                    &format!("{}1{}", "{\"a\":".repeat(50_000), "}".repeat(50_000)),
                )
                .bytes(),
            Rejected("invalid_event_id"),
        ),
        (
            "a known field twice",
            good(id).and("user_id", "165").bytes(),
            Rejected("invalid_json"),
        ),
        (
            "an unknown field twice",
            good(id)
                .and("ip", "\"1.2.3.4\"")
                .and("ip", "\"5.6.7.8\"")
                .bytes(),
            Loaded,
        ),
        (
            "NaN",
            good(id).with("customer_id", "NaN").bytes(),
            Rejected("invalid_json"),
        ),
        (
            "Infinity",
            good(id).with("user_id", "Infinity").bytes(),
            Rejected("invalid_json"),
        ),
        (
            "lone surrogate in the event id",
            good(id).with("event_id", r#""a\ud800""#).bytes(),
            Rejected("invalid_json"),
        ),
        (
            "lone low surrogate in an unknown field",
            good(id).and("email", r#""\udc00""#).bytes(),
            Rejected("invalid_json"),
        ),
        (
            "surrogate pair is fine",
            good(id)
                .with("event_id", r#""hostile\ud83d\ude00""#)
                .bytes(),
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
            good(id).bytes()[..40].to_vec(),
            Rejected("invalid_json"),
        ),
        (
            "trailing garbage",
            bytes(&[&good(id).bytes(), b" x"]),
            Rejected("invalid_json"),
        ),
        (
            "two objects on one line",
            bytes(&[&good(id).bytes(), &good("other").bytes()]),
            Rejected("invalid_json"),
        ),
        ("empty object", b"{}".to_vec(), Rejected("missing_event_id")),
        // ids
        (
            "customer id as a string",
            good(id).with("customer_id", "\"12\"").bytes(),
            Loaded,
        ),
        (
            "customer id 2^63-1",
            good(id).with("customer_id", "9223372036854775807").bytes(),
            Loaded,
        ),
        (
            "customer id 2^63-1 as a string",
            good(id)
                .with("customer_id", "\"9223372036854775807\"")
                .bytes(),
            Loaded,
        ),
        (
            "customer id 0",
            good(id).with("customer_id", "0").bytes(),
            Loaded,
        ),
        (
            "customer id 2^63",
            good(id).with("customer_id", "9223372036854775808").bytes(),
            Rejected("invalid_customer_id"),
        ),
        (
            "customer id 2^63 as a string",
            good(id)
                .with("customer_id", "\"9223372036854775808\"")
                .bytes(),
            Rejected("invalid_customer_id"),
        ),
        (
            "customer id 2^64",
            good(id).with("customer_id", "18446744073709551616").bytes(),
            Rejected("invalid_customer_id"),
        ),
        // Beyond the range of a double the JSON parser refuses the number itself.
        (
            "customer id of 400 digits",
            good(id)
                .with("customer_id", &format!("1{}", "0".repeat(400)))
                .bytes(),
            Rejected("invalid_json"),
        ),
        (
            "customer id of 20 digit characters",
            good(id)
                .with("customer_id", "\"00000000000000000012\"")
                .bytes(),
            Rejected("invalid_customer_id"),
        ),
        (
            "customer id as a float",
            good(id).with("customer_id", "12.0").bytes(),
            Rejected("invalid_customer_id"),
        ),
        (
            "customer id with an exponent",
            good(id).with("customer_id", "1e3").bytes(),
            Rejected("invalid_customer_id"),
        ),
        (
            "negative customer id",
            good(id).with("customer_id", "-3").bytes(),
            Rejected("invalid_customer_id"),
        ),
        (
            "negative zero",
            good(id).with("customer_id", "-0").bytes(),
            Rejected("invalid_customer_id"),
        ),
        (
            "customer id with a leading zero",
            good(id).with("customer_id", "012").bytes(),
            Rejected("invalid_json"),
        ),
        (
            "customer id string with a space",
            good(id).with("customer_id", "\" 12\"").bytes(),
            Rejected("invalid_customer_id"),
        ),
        (
            "customer id string with a sign",
            good(id).with("customer_id", "\"+12\"").bytes(),
            Rejected("invalid_customer_id"),
        ),
        (
            "customer id true",
            good(id).with("customer_id", "true").bytes(),
            Rejected("invalid_customer_id"),
        ),
        (
            "customer id null",
            good(id).with("customer_id", "null").bytes(),
            Rejected("missing_customer_id"),
        ),
        (
            "user id missing",
            good(id).without("user_id").bytes(),
            Rejected("missing_user_id"),
        ),
        (
            "negative user id",
            good(id).with("user_id", "-1").bytes(),
            Rejected("invalid_user_id"),
        ),
        (
            "user id as an exponent",
            good(id).with("user_id", "1E2").bytes(),
            Rejected("invalid_user_id"),
        ),
        (
            "event id of 255 bytes",
            good(&"a".repeat(255)).bytes(),
            Loaded,
        ),
        (
            "event id of 256 bytes",
            good(&"a".repeat(256)).bytes(),
            Rejected("invalid_event_id"),
        ),
        (
            "event id of 256 bytes in 128 characters",
            good(&"é".repeat(128)).bytes(),
            Rejected("invalid_event_id"),
        ),
        (
            "event id with a control character",
            good(id).with("event_id", r#""a\u0007b""#).bytes(),
            Rejected("invalid_event_id"),
        ),
        (
            "event id with DEL",
            good(id).with("event_id", r#""a\u007fb""#).bytes(),
            Rejected("invalid_event_id"),
        ),
        (
            "event id with an escaped newline",
            good(id).with("event_id", r#""a\nb""#).bytes(),
            Rejected("invalid_event_id"),
        ),
        (
            "event id with a raw tab",
            good(id).with("event_id", "\"a\tb\"").bytes(),
            Rejected("invalid_json"),
        ),
        (
            "event id empty",
            good(id).with("event_id", "\"\"").bytes(),
            Rejected("invalid_event_id"),
        ),
        (
            "event id only whitespace",
            good(id).with("event_id", "\" \"").bytes(),
            Rejected("invalid_event_id"),
        ),
        (
            "event id a number",
            good(id).with("event_id", "5").bytes(),
            Rejected("invalid_event_id"),
        ),
        (
            "event id null",
            good(id).with("event_id", "null").bytes(),
            Rejected("missing_event_id"),
        ),
        // fired_at
        (
            "February 30th",
            good(id)
                .with("fired_at", "\"02/30/2022, 00:00:06\"")
                .bytes(),
            Rejected("invalid_fired_at"),
        ),
        (
            "February 29th of a common year",
            good(id)
                .with("fired_at", "\"02/29/2022, 00:00:06\"")
                .bytes(),
            Rejected("invalid_fired_at"),
        ),
        (
            "February 29th of a leap year",
            good(id)
                .with("fired_at", "\"02/29/2020, 00:00:06\"")
                .bytes(),
            Loaded,
        ),
        (
            "hour 24",
            good(id)
                .with("fired_at", "\"01/01/2022, 24:00:00\"")
                .bytes(),
            Rejected("invalid_fired_at"),
        ),
        (
            "second 60",
            good(id)
                .with("fired_at", "\"01/01/2022, 23:59:60\"")
                .bytes(),
            Rejected("invalid_fired_at"),
        ),
        (
            "minute 60",
            good(id)
                .with("fired_at", "\"01/01/2022, 23:60:00\"")
                .bytes(),
            Rejected("invalid_fired_at"),
        ),
        (
            "month 13",
            good(id)
                .with("fired_at", "\"13/01/2022, 00:00:00\"")
                .bytes(),
            Rejected("invalid_fired_at"),
        ),
        (
            "not zero-padded",
            good(id).with("fired_at", "\"1/1/2022, 00:00:06\"").bytes(),
            Rejected("invalid_fired_at"),
        ),
        (
            "no comma",
            good(id).with("fired_at", "\"01/01/2022 00:00:06\"").bytes(),
            Rejected("invalid_fired_at"),
        ),
        (
            "ISO date with a space",
            good(id).with("fired_at", "\"2022-01-01 00:00:06\"").bytes(),
            Rejected("invalid_fired_at"),
        ),
        (
            "RFC 3339 without an offset",
            good(id).with("fired_at", "\"2022-01-01T00:00:06\"").bytes(),
            Rejected("invalid_fired_at"),
        ),
        (
            "RFC 3339 leap second",
            good(id)
                .with("fired_at", "\"2016-12-31T23:59:60Z\"")
                .bytes(),
            Rejected("invalid_fired_at"),
        ),
        (
            "RFC 3339 February 30th",
            good(id)
                .with("fired_at", "\"2022-02-30T00:00:06Z\"")
                .bytes(),
            Rejected("invalid_fired_at"),
        ),
        (
            "Unix seconds",
            good(id).with("fired_at", "1640995206").bytes(),
            Rejected("invalid_fired_at"),
        ),
        (
            "empty fired_at",
            good(id).with("fired_at", "\"\"").bytes(),
            Rejected("invalid_fired_at"),
        ),
        (
            "fired_at missing",
            good(id).without("fired_at").bytes(),
            Rejected("missing_fired_at"),
        ),
        (
            "RFC 3339 with a positive offset",
            good("offset-plus")
                .with("fired_at", "\"2022-01-01T00:30:06+02:00\"")
                .bytes(),
            Loaded,
        ),
        (
            "RFC 3339 with a negative offset",
            good("offset-minus")
                .with("fired_at", "\"2021-12-31T23:30:06-05:30\"")
                .bytes(),
            Loaded,
        ),
        (
            "RFC 3339 in lower case with 7 fraction digits",
            good("fraction")
                .with("fired_at", "\"2022-01-01t00:00:06.1234567z\"")
                .bytes(),
            Loaded,
        ),
        // event_type
        (
            "EMPTY_VALUE",
            good(id).with("event_type", "\"EMPTY_VALUE\"").bytes(),
            Rejected("unknown_event_type"),
        ),
        (
            "event type in lower case",
            good(id).with("event_type", "\"referralpageload\"").bytes(),
            Rejected("unknown_event_type"),
        ),
        (
            "event type with a space",
            good(id).with("event_type", "\" ReferralPageLoad\"").bytes(),
            Rejected("unknown_event_type"),
        ),
        (
            "event type null",
            good(id).with("event_type", "null").bytes(),
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
        good(id)
            .with("event_id", "\"\"")
            .with("customer_id", "-1")
            .bytes(),
        Rejected("invalid_event_id"),
    ));
    cases
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
        let mut content = good(&format!("case{index}-before")).bytes();
        content.push(b'\n');
        content.extend_from_slice(line);
        content.push(b'\n');
        content.extend(good(&format!("case{index}-after")).bytes());
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
            &good("bom-1").bytes(),
            b"\r\n",
            &good("bom-2").bytes(),
            b"\r\n\r\n",
            &good("bom-1").bytes(), // duplicate of line 1
            b"\r\n",
            &good("bom-3").with("customer_id", "-1").bytes(),
            b"\r\n",
            &good("bom-3").bytes(), // valid after a rejected line with the same id
            b"\r\n",
            &good("bom-4").bytes(),
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
    let huge = good("huge")
        .and("x", &format!("\"{}\"", "a".repeat(5 << 20)))
        .bytes();
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for part in [
        &good("before").bytes()[..],
        b"\n",
        &huge,
        b"\n",
        &good("after").bytes(),
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
        encoder
            .write_all(&good(&format!("gz-{index}")).bytes())
            .unwrap();
        encoder.write_all(b"\n").unwrap();
    }
    let whole = encoder.finish().unwrap();
    let path = dir.path().join("cut.jsonl.gz");
    write(&path, &whole[..whole.len() / 2]);
    let path_text = path.to_str().unwrap();
    let db = TestDatabase::new().await;
    let output = db.run_expecting(1, &["run", "--batch-lines", "1000", path_text]);
    let stderr = stderr(&output);
    assert!(
        stderr.contains(&format!("cannot load {path_text}")) && stderr.contains("deflate"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    let client = db.client().await;
    let (events, loaded, committed, status) = events_and_the_load(&client).await;
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
    let events = count(&client, "select count(*) from elt.events").await;
    assert_eq!(events, 20_000);
}

/// A directory, a dangling symlink, a symlink loop, a path through a file, and (when not root)
/// a file without read permission: exit 1 with one clear line naming the path; the files
/// before it on the command line stay loaded.
#[tokio::test]
async fn a_directory_or_unreadable_path_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.jsonl");
    write(&first, &bytes(&[&good("first").bytes(), b"\n"]));
    let subdirectory = dir.path().join("a_directory.jsonl");
    std::fs::create_dir(&subdirectory).unwrap();
    let dangling = dir.path().join("dangling.jsonl");
    std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
    let looping = dir.path().join("loop.jsonl");
    std::os::unix::fs::symlink(&looping, &looping).unwrap();
    let through_file = first.join("child.jsonl");
    let unreadable = dir.path().join("unreadable.jsonl");
    write(&unreadable, &good("secret").bytes());
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
        let stderr = stderr(&output);
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
    assert!(stderr(&output).contains("is a directory"));
}
