//! The bulk first load: into an empty events table, rows are copied straight into
//! `elt.events` without its indexes, and the indexes are built once at the end.
//!
//! Maintaining a primary key on random event ids row by row costs several times the COPY itself
//! once the index outgrows shared buffers; sorting once at the end does not. Without the key
//! during the load, duplicates land in the table too: [`finish`] removes every later
//! occurrence (the first in load order stays, as in the merge), moves them to the ledger's
//! duplicate counts, and only then builds the key. The loader's filter of sent keys
//! (`sent_keys`) marks the rows whose key may repeat, so the removal looks only among those;
//! a key build that still fails falls back to a removal across the whole table. Each step is
//! a transaction that leaves the table and the ledger agreeing (the removal among suspects
//! first, then the key with everything it needs), so an interrupted finish leaves a table the
//! next command (or run) finishes.
//!
//! Rejected lines go straight into `elt.rejects`, whose primary key, reason index and foreign
//! key to the ledger are dropped for the load too (the foreign key's check per row cost more
//! than the COPY itself) and put back — the foreign key validated in one join — at the end.
//!
//! A missing primary key is the durable marker of an unfinished bulk load: while it is missing,
//! only the run that holds the run lock writes to the table.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, GenericClient};

use crate::db::ConnectionParams;

/// Whether a load may take the bulk path: the events table is empty, no report relation exists
/// yet (nothing to queue as stale), no input is a stream (its batches are refreshed as they
/// come), no forced reload (its rejects are compared with earlier ones in staging), no
/// interrupted load waits to be resumed (it keeps its earlier, smaller load id, so load ids
/// would no longer follow the order [`finish`] keeps first occurrences in), and the session may
/// drop and build the tables' indexes (their owner).
pub async fn is_possible(client: &Client) -> Result<bool> {
    Ok(client
        .query_one(
            "select not exists (select 1 from elt.events)
                 and not exists (select 1 from elt.managed_relations)
                 and not exists (select 1 from elt.loads where status in ('loading', 'failed'))
                 and bool_and(pg_catalog.pg_has_role(current_user, relowner, 'MEMBER'))
             from pg_catalog.pg_class
             where oid in ('elt.events'::regclass, 'elt.rejects'::regclass)",
            &[],
        )
        .await?
        .get(0))
}

/// Drops the indexes of the events and rejects tables (in one transaction) before a bulk load.
pub async fn begin(client: &mut Client) -> Result<()> {
    let transaction = client.transaction().await?;
    for statement in [
        "alter table elt.events drop constraint if exists events_pkey",
        "drop index if exists elt.events_customer_id_fired_at_user_id",
        "drop index if exists elt.events_load_id",
        "alter table elt.rejects drop constraint if exists rejects_load_id_fkey",
        "alter table elt.rejects drop constraint if exists rejects_pkey",
        "drop index if exists elt.rejects_reason",
        "delete from elt.bulk_load_suspect_keys",
        // The table is empty, so no bound holds: the bulk load's customers get none (see
        // migrations/V6__customer_newest_fired_at.sql).
        "delete from elt.customer_newest_fired_at",
    ] {
        transaction
            .batch_execute(statement)
            .await
            .context("cannot drop the events table's indexes for a bulk load")?;
    }
    transaction.commit().await?;
    Ok(())
}

/// The primary key's index, built before it becomes the constraint.
const CREATE_PRIMARY_KEY_INDEX: &str =
    "create unique index events_pkey on elt.events (event_id_uuid, event_type, event_id_text)";

/// Removes all but the first occurrence (in load order) of each event id and type among the
/// rows `candidates` selects (their `ctid`, key, `load_id` and `line_number`), moves the removed
/// rows from the ledger's `loaded` to its `duplicates`, and returns how many it removed per load.
macro_rules! remove_later_occurrences {
    ($candidates:literal) => {
        concat!(
            "with candidates as (",
            $candidates,
            "),
occurrences as (
    select
        row_id,
        row_number() over (
            partition by event_id_uuid, event_type, event_id_text order by load_id, line_number
        ) as occurrence
    from candidates
),
removed as (
    delete from elt.events
    using occurrences
    where events.ctid = occurrences.row_id
        and occurrences.occurrence > 1
    returning events.load_id
),
removed_per_load as (
    select load_id, count(*) as duplicates
    from removed
    group by load_id
),
counted as (
    update elt.loads
    set loaded = loads.loaded - removed_per_load.duplicates,
        duplicates = loads.duplicates + removed_per_load.duplicates
    from removed_per_load
    where loads.load_id = removed_per_load.load_id
    returning loads.load_id, removed_per_load.duplicates
)
select load_id, duplicates from counted"
        )
    };
}

/// Later occurrences among the events whose key the loader's filter marked as a suspect (see
/// migrations/V7__bulk_load_suspect_keys.sql): one scan of the table hashed against the few
/// suspect keys, and a sort of only their rows.
const REMOVE_LATER_OCCURRENCES_AMONG_SUSPECTS: &str = remove_later_occurrences!(
    "
    select events.ctid as row_id, events.event_id_uuid, events.event_type, events.event_id_text,
        events.load_id, events.line_number
    from elt.events
    join (select distinct event_id_uuid, event_type, event_id_text
          from elt.bulk_load_suspect_keys) as suspects
        using (event_id_uuid, event_type, event_id_text)
"
);

/// Later occurrences among all events: when the suspects do not cover every duplicate (a bulk
/// load begun by a version without the filter, or suspects deleted by hand).
const REMOVE_LATER_OCCURRENCES: &str = remove_later_occurrences!(
    "
    select ctid as row_id, event_id_uuid, event_type, event_id_text, load_id, line_number
    from elt.events
"
);

/// The other indexes and constraints a bulk load drops, by name (the same definitions as in the
/// migrations), in the order they are put back. The first is the one a second session builds
/// while the key builds (see [`finish`]).
const SECONDARY_INDEXES: [(&str, &str); 5] = [
    // Serves the incremental refresh (see migrations/V4__events_refresh_index_keyed_by_user.sql).
    (
        "elt.events_customer_id_fired_at_user_id",
        "create index events_customer_id_fired_at_user_id \
         on elt.events (customer_id, fired_at, user_id)",
    ),
    // Serves `unload --load-id`.
    (
        "elt.events_load_id",
        "create index events_load_id on elt.events using brin (load_id)",
    ),
    (
        "elt.rejects_pkey",
        "alter table elt.rejects add constraint rejects_pkey primary key (load_id, line_number)",
    ),
    (
        "elt.rejects_reason",
        "create index rejects_reason on elt.rejects (reason)",
    ),
    (
        "elt.rejects_load_id_fkey",
        "alter table elt.rejects add constraint rejects_load_id_fkey \
         foreign key (load_id) references elt.loads (load_id)",
    ),
];

/// Makes sure the events table has its primary key and the indexes incremental runs need,
/// finishing a bulk load (its own, or one that died) when the key is missing. Idempotent.
/// Returns the later occurrences it removed, per load id (none when the key was there).
///
/// A missing key is built on this session while a second one (same settings) builds the refresh
/// index: each build ends writing and syncing its index, a stretch where one core would idle,
/// and the other build's sort fills it. After the key's index, this session builds the small
/// ones (BRIN, the rejects' key, index and foreign key) and only then turns the index into the
/// key, which needs the table alone: by then the refresh index, of about the same cost as the
/// key, is usually done, and neither session waits on the other. (Their locks cannot deadlock:
/// the second session runs one statement, in its own transaction, on the events table only.)
pub async fn finish(
    client: &mut Client,
    connection: &ConnectionParams,
) -> Result<BTreeMap<i64, u64>> {
    let has_primary_key: bool = client
        .query_one(
            "select exists (select 1 from pg_catalog.pg_constraint
                            where conrelid = 'elt.events'::regclass and contype = 'p')",
            &[],
        )
        .await?
        .get(0);
    if has_primary_key {
        create_missing(client, &SECONDARY_INDEXES).await?;
        return Ok(BTreeMap::new());
    }
    // First, alone: deleting rows waits for any index build on the table, so the second
    // session starts its build only after this.
    let removed_among_suspects = remove_suspected_duplicates(client).await?;
    let second = crate::db::connect(connection)
        .await
        .context("cannot open a second session to build the events table's indexes")?;
    // If this run dies, the second session's index build runs on; the next run waits for it.
    crate::db::join_run(&second).await?;
    // The two sessions are the builds' parallelism: PostgreSQL's parallel workers (two per
    // build by default) on top of them oversubscribed a 2-core server (measured in
    // docs/performance.md).
    for session in [&*client, &second] {
        session
            .batch_execute("set max_parallel_maintenance_workers = 0")
            .await?;
    }
    let (in_second_session, after_primary_key) = SECONDARY_INDEXES.split_at(1);
    let (primary_key, secondary_indexes) = tokio::join!(
        build_primary_key(client, after_primary_key, removed_among_suspects),
        create_missing(&second, in_second_session)
    );
    let reset = client
        .batch_execute("reset max_parallel_maintenance_workers")
        .await;
    let removed_duplicates = primary_key
        .context("cannot build the events table's primary key (the table's owner can)")?;
    secondary_indexes?;
    reset?;
    client
        .batch_execute(RECORD_NEWEST_FIRED_AT)
        .await
        .context("cannot record the customers' newest fired_at")?;
    Ok(removed_duplicates)
}

/// Each customer's newest `fired_at` after a bulk load, so that the next night's stale-keys
/// queries look up only its late page loads (migrations/V6__customer_newest_fired_at.sql): one
/// step through the refresh index per customer (a loose index scan), not a scan of the events.
/// Run after the key is built; if it is interrupted, the customers simply have no bound.
const RECORD_NEWEST_FIRED_AT: &str = "
insert into elt.customer_newest_fired_at (customer_id, newest_fired_at)
select
    customers.customer_id,
    (select max(events.fired_at) from elt.events where events.customer_id = customers.customer_id)
from elt.event_customers() as customers (customer_id)
on conflict (customer_id) do update
set newest_fired_at = greatest(customer_newest_fired_at.newest_fired_at, excluded.newest_fired_at)";

/// Creates those of `indexes` (secondary indexes and constraints) that are missing. Only what
/// is missing is created: creating needs the table's owner, and the least-privilege roles run
/// this too.
async fn create_missing(client: &impl GenericClient, indexes: &[(&str, &str)]) -> Result<()> {
    for &(name, statement) in indexes {
        let missing: bool = client
            .query_one(
                "select to_regclass($1) is null
                     and not exists (select 1 from pg_catalog.pg_constraint
                                     where connamespace = 'elt'::regnamespace
                                         and format('elt.%s', conname) = $1)",
                &[&name],
            )
            .await?
            .get(0);
        if missing {
            client
                .batch_execute(statement)
                .await
                .with_context(|| format!("cannot create {name} (the table's owner can)"))?;
        }
    }
    Ok(())
}

/// Removes the later occurrences among the suspects and empties the suspects, in a transaction
/// of its own: the table and the ledger agree after it, and a finish interrupted later starts
/// again with no suspects left. Returns what it removed per load.
async fn remove_suspected_duplicates(client: &mut Client) -> Result<BTreeMap<i64, u64>> {
    let transaction = client.transaction().await?;
    let removed = removed_per_load(
        &transaction,
        REMOVE_LATER_OCCURRENCES_AMONG_SUSPECTS,
        BTreeMap::new(),
    )
    .await?;
    transaction
        .batch_execute("delete from elt.bulk_load_suspect_keys")
        .await?;
    transaction.commit().await?;
    Ok(removed)
}

/// Builds the primary key and the missing ones of `then_create` between the key's index and
/// the key, adding to `removed_duplicates` what it removes. The unique index succeeds unless
/// duplicates outside the suspects remain — then they are removed across the whole table (a
/// sort of every row) and the index is built again.
async fn build_primary_key(
    client: &mut Client,
    then_create: &[(&str, &str)],
    mut removed_duplicates: BTreeMap<i64, u64>,
) -> Result<BTreeMap<i64, u64>> {
    let mut transaction = client.transaction().await?;
    let attempt = transaction.savepoint("clean").await?;
    match attempt.batch_execute(CREATE_PRIMARY_KEY_INDEX).await {
        Ok(()) => attempt.commit().await?,
        Err(error) if error.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            attempt.rollback().await?;
            tracing::debug!(
                "bulk load: duplicates outside the suspect keys; removing them across the table"
            );
            removed_duplicates =
                removed_per_load(&transaction, REMOVE_LATER_OCCURRENCES, removed_duplicates)
                    .await?;
            transaction.batch_execute(CREATE_PRIMARY_KEY_INDEX).await?;
        }
        Err(error) => return Err(error.into()),
    }
    create_missing(&transaction, then_create).await?;
    transaction
        .batch_execute(
            "alter table elt.events add constraint events_pkey primary key using index events_pkey",
        )
        .await?;
    transaction.commit().await?;
    Ok(removed_duplicates)
}

/// Runs one of the removals and adds what it removed per load to `removed`.
async fn removed_per_load(
    transaction: &tokio_postgres::Transaction<'_>,
    removal: &str,
    mut removed: BTreeMap<i64, u64>,
) -> Result<BTreeMap<i64, u64>> {
    let rows = transaction
        .query(removal, &[])
        .await
        .context("cannot remove the duplicates of the bulk load")?;
    for row in rows {
        *removed.entry(row.get::<_, i64>(0)).or_default() += row.get::<_, i64>(1) as u64;
    }
    Ok(removed)
}
