//! Retention of rejected lines (issue 6): `purge-rejects --older-than` deletes the raw lines of
//! old loads, keeps the ledger's counts, takes the run lock; raw lines never reach the logs.

mod common;

use common::{stdout_json, TestDatabase};

fn rejected_line(id: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","customer_id":-1,"fired_at":"01\/01\/2022, 00:00:06","user_id":2,"event_type":"FaqClick","ip":"203.0.113.9","email":"private.person.{id}@example.org"}}"#
    )
}

fn good_line(id: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","customer_id":1,"fired_at":"01\/01\/2022, 00:00:06","user_id":2,"event_type":"FaqClick"}}"#
    )
}

async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn purge_rejects_deletes_the_raw_lines_of_old_loads_only() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.jsonl");
    std::fs::write(
        &old,
        format!(
            "{}\n{}\n{}\n",
            good_line("o1"),
            rejected_line("o2"),
            rejected_line("o3")
        ),
    )
    .unwrap();
    let recent = dir.path().join("recent.jsonl");
    std::fs::write(
        &recent,
        format!("{}\n{}\n", good_line("r1"), rejected_line("r2")),
    )
    .unwrap();
    let db = TestDatabase::new().await;
    let client = db.client().await;

    // Raw rejected lines stay out of the logs, even at debug level and in --json.
    let output = db.run_expecting(0, &["run", "-vv", "--json", old.to_str().unwrap()]);
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
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
        String::from_utf8_lossy(&output.stderr).contains("purged 1 rejected line(s) of 1 load(s)"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
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
    holder
        .execute(
            "select pg_advisory_lock($1)",
            &[&campaign_elt::db::RUN_LOCK_KEY],
        )
        .await
        .unwrap();
    db.run_expecting(5, &["purge-rejects", "--no-wait", "--older-than", "1d"]);
    holder
        .execute(
            "select pg_advisory_unlock($1)",
            &[&campaign_elt::db::RUN_LOCK_KEY],
        )
        .await
        .unwrap();
    db.run_expecting(0, &["purge-rejects", "--no-wait", "--older-than", "1d"]);
}
