//! `unload --load-id N`: removes what one load added (events, rejects, its ledger row) and
//! queues the report keys the removed events had made.

use anyhow::{anyhow, Context, Result};
use tokio_postgres::Client;

use super::merge;
use crate::report::summary::UnloadSummary;
use crate::transform::ViewSet;

/// Deletes one load's events into `changed_events`, so that the stale-key query can queue the
/// report keys they affected.
const UNLOAD_EVENTS: &str = include_str!("sql/unload_events.sql");

/// Removes what load `load_id` added, in one transaction.
pub async fn unload(client: &mut Client, load_id: i64, views: &ViewSet) -> Result<UnloadSummary> {
    let transaction = client.transaction().await?;
    let ledger = transaction
        .query_opt(
            "select path from elt.loads where load_id = $1 for update",
            &[&load_id],
        )
        .await?
        .ok_or_else(|| anyhow!("there is no load {load_id} (see `campaign-elt status`)"))?;
    let path: String = ledger.get(0);
    transaction
        .batch_execute(merge::CREATE_CHANGED_EVENTS)
        .await?;
    let removed_events = transaction
        .execute(UNLOAD_EVENTS, &[&load_id])
        .await
        .context("cannot remove the load's events")?;
    // Events of the load that no refresh has seen yet leave the refresh's queue with it.
    transaction
        .execute(
            "delete from elt.unrefreshed_events as queued
             using changed_events as removed
             where queued.event_id_uuid = removed.event_id_uuid
                 and queued.event_type = removed.event_type
                 and queued.event_id_text = removed.event_id_text",
            &[],
        )
        .await
        .context("cannot remove the load's events from the refresh's queue")?;
    let queued_keys = merge::queue_stale_keys(&transaction, views, false).await?;
    let removed_rejects = transaction
        .execute("delete from elt.rejects where load_id = $1", &[&load_id])
        .await?;
    let later: Vec<i64> = transaction
        .query(
            "select load_id from elt.loads where load_id > $1 and duplicates > 0 order by load_id",
            &[&load_id],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    transaction
        .execute("delete from elt.loads where load_id = $1", &[&load_id])
        .await?;
    transaction.commit().await?;
    Ok(UnloadSummary {
        load_id,
        path,
        removed_events: removed_events as i64,
        removed_rejects: removed_rejects as i64,
        queued_keys: queued_keys as i64,
        later_loads_with_duplicates: later,
    })
}
