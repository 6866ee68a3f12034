//! Database faults (issue 6): the connection killed mid-load, a statement timeout, an error in
//! the transform SQL. Each ends with exit code 1 and a clear error naming what failed, leaves no
//! partial batch visible, and a re-run completes. (An unreachable database at start is in
//! tests/cli.rs.)

mod common;

use std::path::Path;
use std::time::Duration;

use common::{
    assert_exit, assert_rows_eq, campaign_elt, copy_of_views, count, fixture, generate,
    last_stderr_line, report_rows, reports_after, stderr, stdout_json, wait_until_committed,
    with_query_parameter, TestDatabase,
};

/// A generated log of `lines` lines with some dirt and exact duplicates.
fn generate_log(path: &Path, lines: &str) {
    generate(
        path,
        &[
            "--lines",
            lines,
            "--seed",
            "6",
            "--dirt-rate",
            "0.01",
            "--exact-duplicate-rate",
            "0.01",
        ],
    );
}

/// Events visible == what the ledger says its committed batches loaded.
async fn assert_no_partial_batch(client: &tokio_postgres::Client, batch_lines: i64) -> i64 {
    let row = client
        .query_one(
            "select (select count(*) from elt.events), coalesce(sum(loaded), 0)::bigint,
                    coalesce(max(committed_line_number), 0)
             from elt.loads",
            &[],
        )
        .await
        .unwrap();
    let (events, loaded, committed): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(events, loaded, "no partial batch is visible");
    assert_eq!(committed % batch_lines, 0, "batches commit whole");
    committed
}

#[tokio::test]
async fn a_connection_killed_mid_load_exits_1_and_a_rerun_completes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.jsonl");
    generate_log(&path, "100000");
    let path_text = path.to_str().unwrap();
    let db = TestDatabase::new().await;
    let child = campaign_elt()
        .args([
            "run",
            "--batch-lines",
            "10000",
            "--database-url",
            &db.url,
            path_text,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let client = db.client().await;
    let committed = wait_until_committed(&client, 10_000, Duration::from_secs(10)).await;
    assert!(committed >= 10_000, "the run should have committed a batch");
    let terminated: i64 = client
        .query_one(
            "select count(*) from (
                 select pg_terminate_backend(pid) from pg_stat_activity
                 where application_name = 'campaign-elt' and datname = current_database()
             ) as terminated",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(terminated, 1, "the loader's backend");
    let output = child.wait_with_output().unwrap();
    let status: String = client
        .query_one("select status from elt.loads", &[])
        .await
        .unwrap()
        .get(0);
    assert_ne!(
        status, "loaded",
        "the run finished before its connection was killed; make the file bigger"
    );
    assert_exit(&output, 1, "the run whose connection was killed");
    let error = last_stderr_line(&output);
    assert!(
        error.starts_with(&format!("campaign-elt: cannot load {path_text}: "))
            // The server's reason, or — when the kill lands while a COPY is streaming — the
            // closed connection the client sees first.
            && (error.contains("terminating connection due to administrator command")
                || error.ends_with("connection closed")),
        "{error}"
    );
    let committed = assert_no_partial_batch(&client, 10_000).await;

    let summary =
        stdout_json(&db.run_expecting(0, &["run", "--json", "--batch-lines", "10000", path_text]));
    assert_eq!(summary["lines_resumed"].as_i64().unwrap(), committed);
    assert_eq!(
        summary["totals"]["lines"].as_i64().unwrap(),
        100_000 - committed
    );
    assert_rows_eq(
        &report_rows(&client).await,
        &reports_after(&[&["run", path_text]]).await,
    );
}

#[tokio::test]
async fn a_statement_timeout_exits_1_without_a_partial_batch_and_a_rerun_completes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("day.jsonl");
    generate_log(&path, "50000");
    let path_text = path.to_str().unwrap();
    let db = TestDatabase::new().await;
    // libpq's `options`: the server applies `-c statement_timeout=1` (ms) to the session.
    let url = with_query_parameter(&db.url, "options=-c%20statement_timeout%3D1");
    let output = campaign_elt()
        .args([
            "run",
            "--batch-lines",
            "10000",
            "--database-url",
            &url,
            path_text,
        ])
        .output()
        .unwrap();
    assert_exit(&output, 1, "the run with a 1 ms statement timeout");
    let error = last_stderr_line(&output);
    // When a statement ends just as its timeout fires, PostgreSQL clears the timeout's
    // indicator with the statement and reports the pending cancel as a user request.
    assert!(
        error.starts_with("campaign-elt: ")
            && (error.contains("canceling statement due to statement timeout")
                || error.contains("canceling statement due to user request")),
        "{error}"
    );
    let client = db.client().await;
    assert_no_partial_batch(&client, 10_000).await;

    let summary =
        stdout_json(&db.run_expecting(0, &["run", "--json", "--batch-lines", "10000", path_text]));
    let totals = &summary["totals"];
    assert_eq!(
        summary["lines_resumed"].as_u64().unwrap() + totals["lines"].as_u64().unwrap(),
        50_000
    );
    assert_rows_eq(
        &report_rows(&client).await,
        &reports_after(&[&["run", path_text]]).await,
    );
}

#[tokio::test]
async fn an_error_in_the_transform_sql_keeps_the_loaded_events_and_a_fixed_rerun_completes() {
    let views = copy_of_views();
    let clicks = views.path().join("reports/clicks.sql");
    let original = std::fs::read_to_string(&clicks).unwrap();
    std::fs::write(
        &clicks,
        original.replace("from ", "from no_such_schema.no_such_relation, "),
    )
    .unwrap();
    let views_text = views.path().to_str().unwrap();
    let night = fixture("first_night.jsonl");
    let db = TestDatabase::new().await;
    // Reports exist (built from the built-in views) before the broken one is used, so the
    // failed run's new events have report keys to queue.
    db.run_expecting(0, &["run", &fixture("second_night.jsonl")]);
    let output = db.run_expecting(
        1,
        &[
            "run",
            "--json",
            "--views-dir",
            views_text,
            "--max-line-bytes",
            "2048",
            &night,
        ],
    );
    let summary = stdout_json(&output);
    let error = summary["refresh_error"].as_str().unwrap();
    assert!(
        error.contains("clicks.sql") && error.contains("no_such_schema"),
        "{error}"
    );
    let stderr = stderr(&output);
    assert!(stderr.contains("clicks.sql"), "{stderr}");
    let client = db.client().await;
    let loaded = assert_no_partial_batch(&client, 1).await;
    assert!(loaded > 0);
    let events = count(&client, "select count(*) from elt.events").await;
    assert_eq!(
        events,
        4 + summary["totals"]["loaded"].as_i64().unwrap(),
        "the loaded events stay (4 from the night before)"
    );
    let queued = count(&client, "select count(*) from elt.stale_keys").await;
    assert!(queued > 0, "their report keys stay queued");

    // Fixed: the same command skips the loaded file and refreshes the queued keys.
    std::fs::write(&clicks, &original).unwrap();
    let summary = stdout_json(&db.run_expecting(
        0,
        &[
            "run",
            "--json",
            "--views-dir",
            views_text,
            "--max-line-bytes",
            "2048",
            &night,
        ],
    ));
    assert_eq!(summary["files_skipped"].as_u64(), Some(1));
    let uninterrupted = reports_after(&[
        &["run", &fixture("second_night.jsonl")],
        &["run", "--max-line-bytes", "2048", &night],
    ])
    .await;
    assert_rows_eq(&report_rows(&client).await, &uninterrupted);
}
