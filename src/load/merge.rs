//! The set-based merge of a staged batch into the deduplicated events: its rejects, its
//! first-seen events, and the report keys they make stale (the SQL is in `load/sql/`; which
//! keys beyond the events' own is the models' stale-keys files in `views/`).

use anyhow::{anyhow, Context, Result};
use tokio_postgres::Transaction;

use super::step_timer::StepTimer;
use crate::db::database_message;
use crate::transform::ViewSet;

/// Rejects first: a reload (`--force`) of the same file does not store its rejects twice
/// (`$4`: whether an earlier load of the same path or content exists to compare with).
const MERGE_REJECTS: &str = include_str!("sql/merge_rejects.sql");
/// A session's scratch table for the events a batch added (or an unload removed).
/// The refresh fills the same table with the unrefreshed events for the models' deltas.
pub(crate) const CREATE_CHANGED_EVENTS: &str = include_str!("sql/changed_events.sql");
/// First occurrences win: within the batch the lowest line number, against earlier batches and
/// runs the primary key (the event already there was loaded first); the new events go into
/// `changed_events`. Returns the number of new events.
const MERGE_EVENTS: &str = concat!(
    include_str!("sql/merge_first_occurrences.sql"),
    include_str!("sql/merge_events.sql")
);
/// The same merge for a batch whose change the models' deltas take: it also queues the new
/// events' own keys and the events themselves (`elt.unrefreshed_events`) and raises the
/// customers' bounds, in the same statement.
const MERGE_EVENTS_FOR_DELTAS: &str = concat!(
    include_str!("sql/merge_first_occurrences.sql"),
    include_str!("sql/merge_events_for_deltas.sql"),
    include_str!("sql/raise_newest_fired_at.sql"),
    ")\nselect count(*) from inserted"
);
/// Queues the changed events' own report keys.
const QUEUE_OWN_KEYS: &str = include_str!("sql/queue_stale_keys.sql");
/// Raises each customer's bound of the newest `fired_at` loaded (`elt.customer_newest_fired_at`)
/// to cover the batch's events (`batch_events`); the stale-keys queries read the bound as it was
/// before the batch. A customer without a row gets the newest `fired_at` of all its events, not
/// only the batch's: a bound must be at least every event's.
const RAISE_NEWEST_FIRED_AT: &str = concat!(
    "with batch_events as (select customer_id, fired_at from changed_events)\n",
    include_str!("sql/raise_newest_fired_at.sql")
);

/// Where a staged batch came from, for the rejects' comparison with earlier loads.
pub(super) struct MergeSource<'a> {
    pub(super) load_id: i64,
    pub(super) display_path: &'a str,
    pub(super) content_hash: &'a Option<Vec<u8>>,
    /// Whether an earlier load of the same path or content exists (a forced reload).
    pub(super) has_earlier_loads: bool,
}

/// Merges the staged batch: its rejects, its first-seen events (timed as `merge`), and (once
/// reports exist) the report keys they make stale and the customers' bounds (`stale_keys`).
/// Returns the number of new events.
pub(super) async fn merge_batch(
    transaction: &Transaction<'_>,
    source: &MergeSource<'_>,
    views: &ViewSet,
    timer: &mut StepTimer<'_>,
) -> Result<u64> {
    transaction
        .execute(
            MERGE_REJECTS,
            &[
                &source.load_id,
                &source.display_path,
                source.content_hash,
                &source.has_earlier_loads,
            ],
        )
        .await
        .context("cannot store the rejected lines")?;
    // Until a report relation exists, no key needs queueing: the first refresh builds
    // everything whole.
    let reports_built: bool = transaction
        .query_one("select exists (select 1 from elt.managed_relations)", &[])
        .await?
        .get(0);
    // The models with a delta query take this batch's change from the refresh's queue of new
    // events; the others recompute the keys queued here. When only delta models need keys, the
    // merge statement queues everything itself.
    let delta_covered = reports_built && deltas_apply(transaction, views).await?;
    let queued_by_merge = delta_covered && views.stale_key_queries(false).next().is_none();
    let merge = if queued_by_merge {
        MERGE_EVENTS_FOR_DELTAS
    } else {
        transaction.batch_execute(CREATE_CHANGED_EVENTS).await?;
        MERGE_EVENTS
    };
    let new_events: i64 = transaction
        .query_one(merge, &[&source.load_id])
        .await
        .context("cannot merge the events")?
        .get(0);
    timer.step("merge");
    if queued_by_merge {
        return Ok(new_events as u64);
    }
    if reports_built {
        if delta_covered {
            transaction
                .execute(
                    "insert into elt.unrefreshed_events (event_id_uuid, event_id_text, event_type,
                         customer_id, user_id, fired_at)
                     select event_id_uuid, event_id_text, event_type, customer_id, user_id, fired_at
                     from changed_events",
                    &[],
                )
                .await
                .context("cannot queue the batch's events for the next refresh")?;
        }
        queue_stale_keys(transaction, views, delta_covered).await?;
    }
    // Also before reports exist: a bound must cover every event loaded, or a later batch's
    // stale-keys query would skip page loads it must look up.
    transaction
        .execute(RAISE_NEWEST_FIRED_AT, &[])
        .await
        .context("cannot record the customers' newest fired_at")?;
    timer.step("stale_keys");
    Ok(new_events as u64)
}

/// Whether the next refresh with these views applies their deltas: some model declares one, and
/// each such model is built from the same files (a refresh rebuilds one that is not, from all
/// events, and the keys queued for it do not matter).
async fn deltas_apply(transaction: &Transaction<'_>, views: &ViewSet) -> Result<bool> {
    if !views.has_deltas() {
        return Ok(false);
    }
    let (relations, checksums): (Vec<&str>, Vec<&str>) = views
        .models
        .iter()
        .filter(|model| model.delta.is_some())
        .map(|model| (model.relation.as_str(), model.checksum.as_str()))
        .unzip();
    let built: i64 = transaction
        .query_one(
            "select count(*)
             from unnest($1::text[], $2::text[]) as delta_models (relation_name, checksum)
             inner join elt.managed_relations using (relation_name, checksum)",
            &[&relations, &checksums],
        )
        .await?
        .get(0);
    Ok(built == relations.len() as i64)
}

/// Queues the report keys that the events in `changed_events` make stale — their own, and
/// those each model's stale-keys query finds — in the caller's transaction; returns how many
/// keys were new in the queue (or newly queued for recomputation).
///
/// `delta_covered`: the next refresh applies these events to the models with a delta query
/// (their stale-keys queries are left out, and the keys are queued for the other models only);
/// otherwise every model recomputes the keys, as after an unload.
pub(super) async fn queue_stale_keys(
    transaction: &Transaction<'_>,
    views: &ViewSet,
    delta_covered: bool,
) -> Result<u64> {
    transaction.batch_execute("analyze changed_events").await?;
    let mut queued = transaction
        .execute(QUEUE_OWN_KEYS, &[&delta_covered])
        .await
        .context("cannot queue the stale report keys")?;
    for stale_keys in views.stale_key_queries(!delta_covered) {
        // distinct: `on conflict do update` may not touch a row twice in one statement, and a
        // stale-keys query may select a key more than once.
        let statement = format!(
            "insert into elt.stale_keys (customer_id, hour, delta_covered)\n\
             select distinct customer_id, hour, $1::boolean from (\n{}\n) as found_keys\n\
             on conflict (customer_id, hour) do update set delta_covered = false\n\
             where stale_keys.delta_covered and not excluded.delta_covered",
            stale_keys.sql
        );
        queued += transaction
            .execute(&statement, &[&delta_covered])
            .await
            .map_err(|error| {
                anyhow!(
                    "{}: cannot queue the stale report keys: {}",
                    stale_keys.path,
                    database_message(&error)
                )
            })?;
    }
    Ok(queued)
}
