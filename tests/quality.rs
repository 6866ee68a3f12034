//! What analysts may see of the loads (README, "Load quality"): the ledger keeps each load's
//! rejected lines by reason, `reports.load_quality` and `reports.freshness` show counts only,
//! `reports.clicking_users` counts a range's distinct clicking users, and `status` reads them
//! without scanning `elt.events` or `elt.rejects`.

mod common;

use common::{count, fixture, migrate_to, rows, stdout_json, TestDatabase};

const DIRTY: &str = "first_night.jsonl";

/// Each load's rejects by reason as the ledger has them, and as `elt.rejects` holds them.
async fn ledger_and_stored_rejects(client: &tokio_postgres::Client) -> (Vec<String>, Vec<String>) {
    let ledger = rows(
        client,
        "select load_id || ' ' || by_reason.key || ' ' || by_reason.value
         from elt.loads, jsonb_each_text(rejected_by_reason) as by_reason
         order by 1",
    )
    .await;
    let stored = rows(
        client,
        "select load_id || ' ' || reason || ' ' || count(*)
         from elt.rejects group by load_id, reason order by 1",
    )
    .await;
    (ledger, stored)
}

#[tokio::test]
async fn the_ledger_counts_rejects_by_reason_in_bulk_and_merged_loads_and_keeps_them_after_a_purge()
{
    let db = TestDatabase::new().await;
    db.run_first_night(); // a bulk load: rows straight into elt.events
                          // The same lines and one more, from another file, through the merge: their events are
                          // duplicates, their rejects are stored again (only a re-load of the same file's lines
                          // keeps the rejects it stored before, which the ledger still counts).
    let copy = tempfile::tempdir().unwrap();
    let again = copy.path().join("again.jsonl");
    let mut lines = std::fs::read(fixture(DIRTY)).unwrap();
    lines.extend_from_slice(b"{not json\n");
    std::fs::write(&again, lines).unwrap();
    db.run_expecting(
        0,
        &["run", "--max-line-bytes", "2048", again.to_str().unwrap()],
    );
    let client = db.client().await;
    let (ledger, stored) = ledger_and_stored_rejects(&client).await;
    assert_eq!(ledger, stored);
    assert_eq!(
        count(&client, "select count(distinct load_id) from elt.rejects").await,
        2
    );
    let reasons = count(
        &client,
        "select count(*) from (select distinct reason from elt.rejects) as reasons",
    )
    .await;
    assert!(reasons >= 5, "the fixture has many reasons: {reasons}");
    let totals = count(
        &client,
        "select count(*) from elt.loads
         where rejected = (select sum(value::bigint) from jsonb_each_text(rejected_by_reason))",
    )
    .await;
    assert_eq!(
        totals, 2,
        "every load's reasons add up to its rejected lines"
    );

    let status = stdout_json(&db.run_expecting(0, &["status", "--json"]));
    let stored_by_reason = rows(
        &client,
        "select reason || ' ' || count(*) from elt.rejects group by reason order by reason",
    )
    .await;
    let status_by_reason: Vec<String> = status["rejects_by_reason"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| format!("{} {}", row["reason"].as_str().unwrap(), row["lines"]))
        .collect();
    assert_eq!(status_by_reason, stored_by_reason);

    db.run_expecting(0, &["purge-rejects", "--older-than", "0s"]);
    assert_eq!(count(&client, "select count(*) from elt.rejects").await, 0);
    let (ledger_after, _) = ledger_and_stored_rejects(&client).await;
    assert_eq!(ledger_after, ledger, "the counts outlive the lines");
}

#[tokio::test]
async fn the_migration_counts_the_rejects_of_earlier_loads() {
    let db = TestDatabase::empty().await;
    let mut client = db.client().await;
    migrate_to(&mut client, 9).await;
    client
        .batch_execute(
            "insert into elt.runs (command) values ('run');
             insert into elt.loads (run_id, file_position, path, rejected)
                 values (1, 1, 'old.jsonl', 3), (1, 2, 'clean.jsonl', 0);
             insert into elt.rejects values
                 (1, 1, 'invalid_json', '', '', 0),
                 (1, 2, 'invalid_json', '', '', 0),
                 (1, 5, 'missing_field', '', '', 0);",
        )
        .await
        .unwrap();
    migrate_to(&mut client, 10).await;
    let by_reason = rows(
        &client,
        "select path || ' ' || rejected_by_reason::text from elt.loads order by load_id",
    )
    .await;
    assert_eq!(
        by_reason,
        [
            "clean.jsonl {}",
            r#"old.jsonl {"invalid_json": 2, "missing_field": 1}"#,
        ]
    );
}

#[tokio::test]
async fn the_quality_views_hold_counts_only_and_agree_with_sql_on_the_events() {
    let db = TestDatabase::new().await;
    db.run_first_night();
    db.run_expecting(0, &["run", &fixture("second_night.jsonl")]);
    let client = db.client().await;
    let columns = rows(
        &client,
        "select table_name || '.' || column_name from information_schema.columns
         where table_schema = 'reports' and table_name in ('load_quality', 'freshness')
         order by 1",
    )
    .await;
    for column in &columns {
        assert!(
            !["raw_line", "detail", "ip", "email", "user_id", "event_id"]
                .iter()
                .any(|personal| column.ends_with(&format!(".{personal}"))),
            "{column} is not a count"
        );
    }
    assert!(columns.contains(&"load_quality.rejected_by_reason".to_owned()));
    let quality = rows(
        &client,
        "select path || ' ' || lines || ' ' || loaded || ' ' || rejected
         from reports.load_quality order by load_id",
    )
    .await;
    let ledger = rows(
        &client,
        "select path || ' ' || lines || ' ' || loaded || ' ' || rejected
         from elt.loads order by load_id",
    )
    .await;
    assert_eq!(quality, ledger);
    assert_eq!(quality.len(), 2);

    let freshness = rows(
        &client,
        "select (newest_fired_at = (select max(fired_at) from elt.events))::text
             || ' ' || stale_keys || ' ' || click_through_window_seconds
             || ' ' || (last_run_at = (select max(finished_at) from elt.runs))::text
         from reports.freshness",
    )
    .await;
    assert_eq!(freshness, ["true 0 300 true"]);

    let clicking_users = |from: &str, to: &str| {
        let client = &client;
        let sql = format!(
            "select string_agg(customer_id || ':' || users, ' ' order by customer_id)
             from reports.clicking_users('{from}', '{to}')"
        );
        async move { rows(client, &sql).await }
    };
    let expected = rows(
        &client,
        "select string_agg(customer_id || ':' || users, ' ' order by customer_id) from (
             select customer_id, count(distinct user_id) as users from elt.events
             where event_type = 'ReferralRecommendClick'
                 and fired_at >= '2022-01-01' and fired_at < '2022-01-03'
             group by customer_id) as per_customer",
    )
    .await;
    assert_eq!(clicking_users("2022-01-01", "2022-01-03").await, expected);
    assert!(
        expected[0].contains(':'),
        "the range has clicks: {expected:?}"
    );
    let sum_of_hours = count(
        &client,
        "select coalesce(sum(unique_user_clicks), 0)::bigint from reports.unique_user_clicks",
    )
    .await;
    let over_the_range = count(
        &client,
        "select sum(users)::bigint from reports.clicking_users('-infinity', 'infinity')",
    )
    .await;
    assert!(
        over_the_range <= sum_of_hours,
        "{over_the_range} > {sum_of_hours}"
    );
    assert_eq!(
        clicking_users("2030-01-01", "2030-01-02").await,
        ["∅"],
        "no clicks, no rows"
    );
}

#[tokio::test]
async fn status_reads_neither_the_events_nor_the_rejects_whole() {
    let db = TestDatabase::new().await;
    db.run_first_night();
    db.run_expecting(0, &["run", &fixture("second_night.jsonl")]);
    let client = db.client().await;
    let status = stdout_json(&db.run_expecting(0, &["status", "--json"]));
    let events = count(&client, "select count(*) from elt.events").await;
    assert_eq!(
        status["events"], events,
        "the ledger's sum is the events table's count"
    );
    let newest = rows(
        &client,
        "select to_json(max(fired_at)) #>> '{}' from elt.events",
    )
    .await;
    assert_eq!(status["newest_fired_at"], newest[0]);

    // Tables large enough that a scan would be the planner's choice only if status asked for
    // every row: 200,000 more events of 50 customers, 20,000 more rejects.
    client
        .batch_execute(
            "insert into elt.events (event_id_uuid, event_id_text, event_type, customer_id, user_id, fired_at, load_id, line_number)
             select '00000000-0000-0000-0000-000000000000', 'bulk' || i, 'FaqClick', 1000 + i % 50, i % 997,
                    timestamptz '2022-02-01' + i * interval '1 second', 1, 100000 + i
             from generate_series(1, 200000) as i;
             insert into elt.rejects (load_id, line_number, reason, detail, raw_line, line_length)
             select 1, 300000 + i, 'invalid_json', '', '', 0 from generate_series(1, 20000) as i;
             analyze elt.events; analyze elt.rejects;",
        )
        .await
        .unwrap();
    let reads = || async {
        client
            .batch_execute("select pg_stat_clear_snapshot()")
            .await
            .unwrap();
        // Rows read as PostgreSQL counts them: by sequential scans, and fetched through indexes.
        rows(
            &client,
            "select relname || ' ' || (seq_tup_read + coalesce(idx_tup_fetch, 0))
             from pg_stat_user_tables
             where relid in ('elt.events'::regclass, 'elt.rejects'::regclass) order by relname",
        )
        .await
    };
    let before = reads().await;
    let status = stdout_json(&db.run_expecting(0, &["status", "--json"]));
    let mut after = reads().await;
    for _ in 0..20 {
        if after != before {
            break;
        }
        // The counters arrive when the backend reports them; wait for the status's session.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        after = reads().await;
    }
    let read = |counters: &[String], table: &str| -> i64 {
        counters
            .iter()
            .find_map(|line| line.strip_prefix(&format!("{table} ")))
            .unwrap()
            .parse()
            .unwrap()
    };
    let events_read = read(&after, "events") - read(&before, "events");
    let rejects_read = read(&after, "rejects") - read(&before, "rejects");
    assert!(events_read < 1_000, "status read {events_read} events");
    assert!(rejects_read < 1_000, "status read {rejects_read} rejects");
    assert_eq!(
        status["newest_fired_at"],
        rows(
            &client,
            "select to_json(max(fired_at)) #>> '{}' from elt.events"
        )
        .await[0]
    );
}
