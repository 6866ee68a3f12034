//! End-to-end: fixture files through `campaign-elt run` into the four reports (issue 2).

mod common;

use common::{
    assert_exit, assert_rows_eq, count, fixture, report_rows, stderr, stdout_json, TestDatabase,
    FIRST_NIGHT_REPORTS,
};

#[tokio::test]
async fn first_night_gives_every_line_one_outcome_and_the_expected_reports() {
    let db = TestDatabase::new().await;
    let output = db.run_expecting(
        0,
        &[
            "run",
            "--json",
            "--max-line-bytes",
            "2048",
            &fixture("first_night.jsonl"),
        ],
    );
    let summary = stdout_json(&output);
    assert_eq!(summary["schema_version"], 1);
    let totals = &summary["totals"];
    assert_eq!(totals["lines"], 34);
    assert_eq!(totals["loaded"], 17);
    assert_eq!(totals["duplicates"], 2);
    assert_eq!(totals["rejected"], 13);
    assert_eq!(totals["blank"], 2);
    for reason in [
        "line_too_long",
        "invalid_utf8",
        "invalid_json",
        "missing_event_id",
        "invalid_event_id",
        "missing_customer_id",
        "invalid_customer_id",
        "missing_user_id",
        "invalid_user_id",
        "missing_fired_at",
        "invalid_fired_at",
        "missing_event_type",
    ] {
        assert_eq!(totals["rejected_by_reason"][reason], 1, "{reason}");
    }
    assert_eq!(totals["rejected_by_reason"]["unknown_event_type"], 1);

    let client = db.client().await;
    assert_rows_eq(&report_rows(&client).await, FIRST_NIGHT_REPORTS);

    // Rejects keep the raw bytes, line numbers and reasons.
    let rejects = common::rows(
        &client,
        "select line_number, reason, length(raw_line) > 0 as has_raw from elt.rejects",
    )
    .await;
    assert_eq!(rejects.len(), 13);
    assert!(
        rejects.contains(&"22|invalid_utf8|true".to_owned()),
        "{rejects:?}"
    );
    assert!(
        rejects.contains(&"10|unknown_event_type|true".to_owned()),
        "{rejects:?}"
    );
    let raw: Vec<u8> = client
        .query_one(
            "select raw_line from elt.rejects where reason = 'invalid_utf8'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(raw.contains(&0xff), "the raw line is stored as bytes");

    // The first occurrence wins: the re-sent b2 with user 99 and another time is a duplicate.
    let b2 = common::rows(
        &client,
        "select user_id, to_char(fired_at at time zone 'UTC', 'HH24:MI'), line_number from elt.events
         where elt.event_id(event_id_uuid, event_id_text) = 'b2' and event_type = 'ReferralRecommendClick'",
    )
    .await;
    assert_eq!(b2, ["11|01:14|4"]);
    // Personal data is not stored in the events table.
    let columns = common::rows(
        &client,
        "select column_name from information_schema.columns where table_schema = 'elt' and table_name = 'events'",
    )
    .await;
    assert!(
        !columns.iter().any(|c| c == "ip" || c == "email"),
        "{columns:?}"
    );
}

#[tokio::test]
async fn a_second_night_deduplicates_across_runs_and_refreshes_neighbouring_hours() {
    let db = TestDatabase::new().await;
    db.run_first_night();
    let output = db.run_expecting(0, &["run", "--json", &fixture("second_night.jsonl")]);
    let summary = stdout_json(&output);
    assert_eq!(summary["totals"]["lines"], 4);
    assert_eq!(summary["totals"]["loaded"], 3);
    assert_eq!(summary["totals"]["duplicates"], 1);
    assert!(summary["files"][0]["note"]
        .as_str()
        .unwrap()
        .contains("no final newline"));

    let client = db.client().await;
    let incremental = report_rows(&client).await;
    let expected = common::second_night_reports();
    assert_rows_eq(&incremental, &expected);

    // The incremental result equals a full rebuild.
    db.run_expecting(0, &["refresh", "--full-refresh"]);
    assert_rows_eq(&report_rows(&client).await, &expected);
}

/// Issue 13: `--json` times the parts of the load and of the refresh the operator tunes, and
/// the ledger records when each refresh started and ended.
#[tokio::test]
async fn run_json_times_each_part_of_the_load_and_the_refresh() {
    let db = TestDatabase::new().await;
    let steps = |output: &std::process::Output| -> Vec<String> {
        let summary = stdout_json(output);
        let steps = summary["step_seconds"].as_object().unwrap().clone();
        for (step, seconds) in &steps {
            assert!(seconds.as_f64().unwrap() >= 0.0, "{step}: {seconds}");
        }
        steps.keys().cloned().collect()
    };
    let first = steps(&db.run_expecting(0, &["run", "--json", &fixture("first_night.jsonl")]));
    for part in [
        "load",
        "load.copy",
        "load.bulk_finish",
        "refresh",
        "refresh.record",
    ] {
        assert!(first.contains(&part.to_owned()), "{part} in {first:?}");
    }
    assert!(
        !first.contains(&"load.merge".to_owned()),
        "a bulk load merges nothing"
    );
    let second = steps(&db.run_expecting(0, &["run", "--json", &fixture("second_night.jsonl")]));
    for part in [
        "load.copy",
        "load.merge",
        "load.ledger_and_commit",
        "refresh.claim_stale_keys",
        "refresh.intermediate.int_customer_hourly delta",
        "refresh.intermediate.int_customer_hourly",
        "refresh.reports.page_loads",
        "data_tests",
    ] {
        assert!(second.contains(&part.to_owned()), "{part} in {second:?}");
    }
    // The built-in set's batches queue their keys in the merge statement itself.
    assert!(
        !second.contains(&"load.stale_keys".to_owned()),
        "{second:?}"
    );
    assert!(!second.contains(&"load.bulk_finish".to_owned()));
    // Views without a delta queue the keys for recomputation in a step of their own.
    let views = common::copy_of_views_without_delta();
    let third = steps(&db.run_expecting(
        0,
        &[
            "run",
            "--json",
            "--force",
            "--views-dir",
            views.path().to_str().unwrap(),
            &fixture("second_night.jsonl"),
        ],
    ));
    assert!(third.contains(&"load.stale_keys".to_owned()), "{third:?}");
    let client = db.client().await;
    assert_eq!(
        common::rows(
            &client,
            "select count(*) filter (where started_at <= finished_at
                                         and started_at >= (select min(started_at) from elt.runs)),
                    count(*)
             from elt.refreshes"
        )
        .await,
        ["3|3"],
        "each refresh starts before it finishes"
    );
}

#[tokio::test]
async fn the_same_file_twice_is_skipped_and_force_does_not_double_count() {
    let db = TestDatabase::new().await;
    let file = fixture("first_night.jsonl");
    db.run_expecting(0, &["run", "--max-line-bytes", "2048", &file]);
    let second =
        stdout_json(&db.run_expecting(0, &["run", "--json", "--max-line-bytes", "2048", &file]));
    assert_eq!(second["files_skipped"], 1);
    assert_eq!(second["totals"]["lines"], 0);
    let forced = stdout_json(&db.run_expecting(
        0,
        &[
            "run",
            "--json",
            "--force",
            "--max-line-bytes",
            "2048",
            &file,
        ],
    ));
    assert_eq!(forced["files_loaded"], 1);
    assert_eq!(forced["totals"]["loaded"], 0);
    assert_eq!(forced["totals"]["duplicates"], 19);
    let client = db.client().await;
    assert_rows_eq(&report_rows(&client).await, FIRST_NIGHT_REPORTS);
}

#[tokio::test]
async fn report_hours_do_not_depend_on_the_session_time_zone() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    // Every session of this database starts in India Standard Time (+05:30).
    client
        .batch_execute(&format!(
            "alter database {} set timezone to 'Asia/Kolkata'",
            db.name
        ))
        .await
        .unwrap();
    db.run_first_night();
    let kolkata = db.client().await;
    let zone: String = kolkata
        .query_one("show timezone", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(zone, "Asia/Kolkata");
    assert_rows_eq(&report_rows(&kolkata).await, FIRST_NIGHT_REPORTS);
}

#[tokio::test]
async fn the_four_reports_keep_their_contract_columns() {
    let db = TestDatabase::new().await;
    db.run_first_night();
    let client = db.client().await;
    let columns = common::rows(
        &client,
        "select table_name, ordinal_position, column_name, data_type from information_schema.columns
         where table_schema = 'reports'
             and table_name in ('page_loads', 'clicks', 'unique_user_clicks', 'click_through_rate')",
    )
    .await;
    assert_rows_eq(
        &columns,
        &[
            "page_loads|1|customer_id|bigint",
            "page_loads|2|hour|timestamp with time zone",
            "page_loads|3|page_loads|bigint",
            "clicks|1|customer_id|bigint",
            "clicks|2|hour|timestamp with time zone",
            "clicks|3|clicks|bigint",
            "unique_user_clicks|1|customer_id|bigint",
            "unique_user_clicks|2|hour|timestamp with time zone",
            "unique_user_clicks|3|unique_user_clicks|bigint",
            "click_through_rate|1|customer_id|bigint",
            "click_through_rate|2|hour|timestamp with time zone",
            "click_through_rate|3|page_loads|bigint",
            "click_through_rate|4|related_clicks|bigint",
            "click_through_rate|5|click_through_rate|numeric",
        ],
    );
}

#[tokio::test]
async fn load_then_refresh_builds_the_same_reports_as_run() {
    // Before any report exists, loads queue no keys: the first refresh builds everything whole.
    let db = TestDatabase::new().await;
    db.run_expecting(
        0,
        &[
            "load",
            "--max-line-bytes",
            "2048",
            &fixture("first_night.jsonl"),
        ],
    );
    let client = db.client().await;
    let queued = count(&client, "select count(*) from elt.stale_keys").await;
    assert_eq!(queued, 0);
    db.run_expecting(0, &["refresh"]);
    assert_rows_eq(&report_rows(&client).await, FIRST_NIGHT_REPORTS);
}

#[tokio::test]
async fn personal_data_is_stored_only_as_keyed_hashes_and_only_with_a_key() {
    let without_key = TestDatabase::new().await;
    without_key.run_expecting(0, &["run", &fixture("second_night.jsonl")]);
    let client = without_key.client().await;
    let hashed = count(
        &client,
        "select count(*) from elt.events where ip_hash is not null or email_hash is not null",
    )
    .await;
    assert_eq!(hashed, 0, "no key, no hashes");

    let with_key = TestDatabase::new().await;
    let output = common::campaign_elt()
        .args([
            "run",
            "--database-url",
            &with_key.url,
            &fixture("first_night.jsonl"),
            "--max-line-bytes",
            "2048",
        ])
        .env(
            "CAMPAIGN_ELT_PII_HASH_KEY",
            "a long enough secret for the test",
        )
        .output()
        .unwrap();
    assert_exit(&output, 0, "run with a personal data hash key");
    let client = with_key.client().await;
    // Every fixture event has ip 10.0.0.1 and email someone@example.org: one distinct hash each.
    let counts = common::rows(
        &client,
        "select count(*) filter (where ip_hash is null), count(distinct ip_hash), count(distinct email_hash),
                bool_and(octet_length(ip_hash) = 32)
         from staging.stg_events",
    )
    .await;
    assert_eq!(counts, ["0|1|1|true"]);
    let clear = common::rows(
        &client,
        "select count(*) from elt.events as events
         where position('10.0.0.1' in events::text) > 0 or position('example.org' in events::text) > 0",
    )
    .await;
    assert_eq!(
        clear,
        ["0"],
        "the clear values are stored nowhere in the events table"
    );

    // A key that is too short is a clear error.
    let output = common::campaign_elt()
        .args([
            "run",
            "--database-url",
            &with_key.url,
            &fixture("second_night.jsonl"),
        ])
        .env("CAMPAIGN_ELT_PII_HASH_KEY", "short")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("at least 16 bytes"));
}
