//! Event ids are stored as uuids when they are canonical UUID text and as text otherwise
//! (migrations/V5__event_ids_as_uuid.sql): every id must come back byte for byte, ids that
//! differ in any byte must stay different events, and databases of the text-id schema upgrade.

mod common;

use common::{assert_exit, click, page_load, stderr, write_lines, TestDatabase};

const UUID: &str = "cc8dac61-f9d0-4bcb-a9aa-602456ee20d4";

/// 2022-01-01 at 00:00:SS UTC, in RFC 3339.
fn at_second(second: u32) -> String {
    format!("2022-01-01T00:00:{second:02}Z")
}

/// 2022-01-01 at 00:MM:00 UTC, in RFC 3339.
fn at_minute(minute: u32) -> String {
    format!("2022-01-01T00:{minute:02}:00Z")
}

/// The ids PostgreSQL's uuid input would take as the same uuid, plus ids that are no uuid.
fn ids() -> Vec<String> {
    vec![
        UUID.to_owned(),
        UUID.to_uppercase(),
        format!("{{{UUID}}}"),
        UUID.replace('-', ""),
        format!("urn:uuid:{UUID}"),
        "00000000-0000-0000-0000-000000000000".to_owned(),
        "plain-id".to_owned(),
    ]
}

#[tokio::test]
async fn ids_are_kept_byte_for_byte_and_compared_as_sent() {
    let db = TestDatabase::new().await;
    let directory = tempfile::tempdir().unwrap();
    let ids = ids();

    // First night, into an empty database (the bulk path): one page load per id, user i, and
    // a second occurrence of two of them.
    let mut first: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(user, id)| page_load(id, 1, user as i64, &at_second(user as u32)))
        .collect();
    first.push(page_load(UUID, 1, 50, &at_second(30)));
    first.push(page_load(&UUID.to_uppercase(), 1, 51, &at_second(31)));
    let first_path = directory.path().join("first.jsonl");
    write_lines(&first_path, &first);
    // Second night (the merge path): more occurrences, and clicks that share an id.
    let second = [
        page_load(UUID, 1, 60, &at_second(40)),
        page_load(&format!("{{{UUID}}}"), 1, 61, &at_second(41)),
        // same id, customer and user as the upper-case page load (user 1): related
        click(&UUID.to_uppercase(), 1, 1, &at_minute(10)),
        // same id as the lower-case page load, but that one's user is 0, not 1: a click
        // related only if ids compared case-insensitively
        click(UUID, 1, 1, &at_minute(11)),
    ];
    let second_path = directory.path().join("second.jsonl");
    write_lines(&second_path, &second);

    let window = ["--click-through-window-seconds", "0"];
    for path in [&first_path, &second_path] {
        db.run_expecting(0, &["run", path.to_str().unwrap(), window[0], window[1]]);
    }

    let client = db.client().await;
    let mut expected: Vec<String> = ids
        .iter()
        .map(|id| format!("{id}|ReferralPageLoad"))
        .collect();
    expected.push(format!("{}|ReferralRecommendClick", UUID.to_uppercase()));
    expected.push(format!("{UUID}|ReferralRecommendClick"));
    common::assert_rows_eq(
        &common::rows(
            &client,
            "select event_id, event_type from staging.stg_events",
        )
        .await,
        &expected,
    );
    // Only canonical text is stored as a uuid; the loader splits ids as the SQL functions do.
    common::assert_rows_eq(
        &common::rows(
            &client,
            "select elt.event_id(event_id_uuid, event_id_text), event_id_text = ''
             from elt.events where event_type = 'ReferralPageLoad'",
        )
        .await,
        &ids.iter()
            .map(|id| {
                let is_uuid = id == UUID || id.starts_with("00000000-");
                format!("{id}|{is_uuid}")
            })
            .collect::<Vec<_>>(),
    );
    let split_differently: i64 = client
        .query_one(
            "select count(*) from elt.events
             where (event_id_uuid, event_id_text) is distinct from (
                 elt.event_id_uuid(elt.event_id(event_id_uuid, event_id_text)),
                 elt.event_id_text(elt.event_id(event_id_uuid, event_id_text)))",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(split_differently, 0);

    // Duplicates are found on the exact id: 2 in the first night, 2 in the second.
    let counts = common::rows(&client, "select load_id, loaded, duplicates from elt.loads").await;
    assert_eq!(counts, ["1|7|2", "2|2|2"]);
    // Only the upper-case click is related to a page load with its id.
    common::assert_rows_eq(
        &common::rows(
            &client,
            "select clicks.clicks, related_clicks from reports.click_through_rate
             inner join reports.clicks using (customer_id, hour)",
        )
        .await,
        &["2|1"],
    );
}

/// A database of the text-id schema (migrations up to V4) with a loaded event, the staging view
/// built from the old file, and a grant on the events table.
async fn database_of_text_ids(with_primary_key: bool) -> (TestDatabase, tokio_postgres::Client) {
    let db = TestDatabase::empty().await;
    let mut client = db.client().await;
    common::migrate_to(&mut client, 4).await;
    client
        .batch_execute(&format!(
            "insert into elt.runs (command) values ('run');
             insert into elt.loads (run_id, file_position, path, status) values (1, 1, 'old.jsonl', 'loaded');
             insert into elt.events (event_id, event_type, customer_id, user_id, fired_at, load_id, line_number)
             values ('{UUID}', 'ReferralPageLoad', 1, 2, '2022-01-01T00:00:00Z', 1, 1),
                    ('{upper}', 'ReferralPageLoad', 1, 3, '2022-01-01T00:00:01Z', 1, 2),
                    ('plain-id', 'ReferralRecommendClick', 1, 3, '2022-01-01T00:00:02Z', 1, 3);
             create schema staging;
             create view staging.stg_events as select event_id, event_type from elt.events;
             insert into elt.managed_relations (relation_name, materialized, checksum, source_path)
             values ('staging.stg_events', 'view', 'the V4 file', 'staging/stg_events.sql');",
            upper = UUID.to_uppercase()
        ))
        .await
        .unwrap();
    if !with_primary_key {
        client
            .batch_execute("alter table elt.events drop constraint events_pkey")
            .await
            .unwrap();
    }
    (db, client)
}

#[tokio::test]
async fn a_text_id_database_upgrades_keeping_ids_grants_and_the_views() {
    let (db, client) = database_of_text_ids(true).await;
    let role = format!("campaign_elt_test_reader_{}", std::process::id());
    client
        .batch_execute(&format!(
            "drop role if exists {role}; create role {role}; grant select on elt.events to {role}"
        ))
        .await
        .unwrap();
    let output = db.run(&["migrate"]);
    let can_read: bool = client
        .query_one(
            "select has_table_privilege($1, 'elt.events', 'select')",
            &[&role],
        )
        .await
        .unwrap()
        .get(0);
    client
        .batch_execute(&format!(
            "revoke all on elt.events from {role}; drop role {role}"
        ))
        .await
        .unwrap();
    assert_exit(&output, 0, "migrate from the text-id schema");
    assert!(can_read, "the grant moved to the rebuilt table");

    common::assert_rows_eq(
        &common::rows(
            &client,
            "select elt.event_id(event_id_uuid, event_id_text), event_id_text = '', line_number
             from elt.events",
        )
        .await,
        &[
            &format!("{UUID}|true|1"),
            &format!("{}|false|2", UUID.to_uppercase()),
            "plain-id|false|3",
        ],
    );
    let key: String = client
        .query_one(
            "select pg_get_constraintdef(oid) from pg_constraint
             where conrelid = 'elt.events'::regclass and contype = 'p'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        key,
        "PRIMARY KEY (event_id_uuid, event_type, event_id_text)"
    );
    // The old staging view was dropped and forgotten; the next refresh builds the new one.
    assert!(common::rows(&client, "select relation_name from elt.managed_relations where relation_name = 'staging.stg_events'")
        .await
        .is_empty());
    db.run_expecting(0, &["refresh"]);
    common::assert_rows_eq(
        &common::rows(&client, "select event_id from staging.stg_events").await,
        &[UUID, &UUID.to_uppercase(), "plain-id"],
    );
}

#[tokio::test]
async fn an_unfinished_bulk_load_stays_unfinished_through_the_upgrade() {
    let (db, client) = database_of_text_ids(false).await;
    db.run_expecting(0, &["migrate"]);
    let key_count = || async {
        client
            .query_one(
                "select count(*) from pg_constraint
                 where conrelid = 'elt.events'::regclass and contype = 'p'",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    assert_eq!(
        key_count().await,
        0,
        "the marker of an unfinished bulk load stays"
    );
    db.run_expecting(0, &["refresh"]);
    assert_eq!(key_count().await, 1, "the next command finishes the load");
}

#[tokio::test]
async fn a_view_of_its_own_on_the_old_column_stops_the_upgrade_with_its_name() {
    let (db, client) = database_of_text_ids(true).await;
    client
        .batch_execute("create view public.my_event_ids as select event_id from elt.events")
        .await
        .unwrap();
    let output = db.run_expecting(1, &["migrate"]);
    let stderr = stderr(&output);
    assert!(stderr.contains("my_event_ids"), "{stderr}");
    client
        .batch_execute("drop view public.my_event_ids")
        .await
        .unwrap();
    db.run_expecting(0, &["migrate"]);
}
