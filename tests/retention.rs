//! Retention of rejected lines (issue 6): `purge-rejects --older-than` deletes the raw lines of
//! old loads, keeps the ledger's counts, takes the run lock; raw lines never reach the logs.

mod common;

use common::{
    count, event, release_the_run_lock, stderr, stdout_and_stderr, stdout_json, take_the_run_lock,
    write_lines, EventLine, TestDatabase,
};

/// A line rejected for its customer id, with the export's personal data fields.
fn rejected_line(id: &str) -> EventLine {
    event(id, -1, 2, "01/01/2022, 00:00:06", "FaqClick")
        .with_personal_data("203.0.113.9", &format!("private.person.{id}@example.org"))
}

fn good_line(id: &str) -> EventLine {
    event(id, 1, 2, "01/01/2022, 00:00:06", "FaqClick")
}

#[tokio::test]
async fn purge_rejects_deletes_the_raw_lines_of_old_loads_only() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.jsonl");
    write_lines(
        &old,
        &[good_line("o1"), rejected_line("o2"), rejected_line("o3")],
    );
    let recent = dir.path().join("recent.jsonl");
    write_lines(&recent, &[good_line("r1"), rejected_line("r2")]);
    let db = TestDatabase::new().await;
    let client = db.client().await;

    // Raw rejected lines stay out of the logs, even at debug level and in --json.
    let output = db.run_expecting(0, &["run", "-vv", "--json", old.to_str().unwrap()]);
    let printed = stdout_and_stderr(&output);
    assert!(!printed.contains("private.person"), "{printed}");
    assert!(!printed.contains("203.0.113.9"), "{printed}");

    client
        .batch_execute("update elt.loads set started_at = started_at - interval '40 days'")
        .await
        .unwrap();
    db.run_expecting(0, &["run", recent.to_str().unwrap()]);
    assert_eq!(count(&client, "select count(*) from elt.rejects").await, 3);

    let summary =
        stdout_json(&db.run_expecting(0, &["purge-rejects", "--json", "--older-than", "30d"]));
    assert_eq!(summary["command"], "purge-rejects");
    assert_eq!(summary["purged_rejects"].as_i64(), Some(2));
    assert_eq!(summary["loads"].as_i64(), Some(1));
    common::assert_rows_eq(
        &common::rows(&client, "select line_number, reason from elt.rejects").await,
        &["2|invalid_customer_id"],
    );
    // The ledger keeps its accounting; the purge is recorded.
    assert_eq!(
        count(&client, "select sum(rejected)::bigint from elt.loads").await,
        3
    );
    assert_eq!(
        count(
            &client,
            "select count(*) from elt.runs where command = 'purge-rejects' and status = 'succeeded'"
        )
        .await,
        1
    );
    // Nothing older than 30 days is left: a second purge deletes nothing.
    let summary =
        stdout_json(&db.run_expecting(0, &["purge-rejects", "--json", "--older-than", "30d"]));
    assert_eq!(summary["purged_rejects"].as_i64(), Some(0));
    // 0s: everything.
    let output = db.run_expecting(0, &["purge-rejects", "--older-than", "0s"]);
    assert!(
        stderr(&output).contains("purged 1 rejected line(s) of 1 load(s)"),
        "{}",
        stderr(&output)
    );
    assert_eq!(count(&client, "select count(*) from elt.rejects").await, 0);
    // The events are untouched.
    assert_eq!(count(&client, "select count(*) from elt.events").await, 2);
}

#[tokio::test]
async fn purge_rejects_takes_the_run_lock_and_checks_its_duration() {
    let db = TestDatabase::new().await;
    db.run_expecting(2, &["purge-rejects", "--older-than", "30"]);
    db.run_expecting(2, &["purge-rejects", "--older-than", "-1d"]);
    db.run_expecting(2, &["purge-rejects"]);
    let holder = db.client().await;
    take_the_run_lock(&holder).await;
    db.run_expecting(5, &["purge-rejects", "--no-wait", "--older-than", "1d"]);
    release_the_run_lock(&holder).await;
    db.run_expecting(0, &["purge-rejects", "--no-wait", "--older-than", "1d"]);
}
