//! Retention: `purge-rejects --older-than DURATION` deletes the raw lines kept in `elt.rejects`
//! (which may hold personal data) for loads that started before the cutoff;
//! `purge-restatements --older-than DURATION` deletes the restatements recorded by refreshes
//! that finished before it, so `elt.restatements` stays bounded.

use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Client;

/// What a purge removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PurgeSummary {
    pub schema_version: u32,
    pub command: &'static str,
    /// Rejects of loads that started before this instant (RFC 3339, UTC) were deleted.
    pub cutoff: String,
    pub purged_rejects: i64,
    /// How many loads had rejects deleted (their ledger rows and counts stay).
    pub loads: i64,
}

/// What a purge of restatements removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PurgeRestatementsSummary {
    pub schema_version: u32,
    pub command: &'static str,
    /// Restatements of refreshes that finished before this instant (RFC 3339, UTC) were deleted.
    pub cutoff: String,
    pub purged_restatements: i64,
    /// How many refreshes had restatements deleted.
    pub refreshes: i64,
}

/// now − `older_than`, by the server's clock.
async fn cutoff(
    transaction: &tokio_postgres::Transaction<'_>,
    older_than: Duration,
) -> Result<DateTime<Utc>> {
    Ok(transaction
        .query_one(
            "select now() - make_interval(secs => $1)",
            &[&(older_than.as_secs() as f64)],
        )
        .await
        .context("cannot compute the cutoff")?
        .get(0))
}

/// Deletes, in one transaction, the restatements of refreshes that finished before now −
/// `older_than`, and returns what it removed (the command records the run).
pub async fn purge_restatements(
    client: &mut Client,
    older_than: Duration,
) -> Result<PurgeRestatementsSummary> {
    let transaction = client.transaction().await?;
    let cutoff = cutoff(&transaction, older_than).await?;
    let row = transaction
        .query_one(
            "with purged as (
                 delete from elt.restatements as restatements
                 using elt.refreshes as refreshes
                 where refreshes.refresh_id = restatements.refresh_id
                     and refreshes.finished_at < $1
                 returning restatements.refresh_id
             )
             select count(*), count(distinct refresh_id) from purged",
            &[&cutoff],
        )
        .await
        .context("cannot delete the restatements")?;
    let summary = PurgeRestatementsSummary {
        schema_version: crate::report::summary::SUMMARY_SCHEMA_VERSION,
        command: "purge-restatements",
        cutoff: cutoff.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        purged_restatements: row.get(0),
        refreshes: row.get(1),
    };
    transaction.commit().await?;
    Ok(summary)
}

/// Deletes, in one transaction, the rejects of loads started before now − `older_than`, and
/// returns what it removed (the command records the run).
pub async fn purge_rejects(client: &mut Client, older_than: Duration) -> Result<PurgeSummary> {
    let transaction = client.transaction().await?;
    let cutoff = cutoff(&transaction, older_than).await?;
    let row = transaction
        .query_one(
            "with purged as (
                 delete from elt.rejects as rejects
                 using elt.loads as loads
                 where loads.load_id = rejects.load_id
                     and loads.started_at < $1
                 returning rejects.load_id
             )
             select count(*), count(distinct load_id) from purged",
            &[&cutoff],
        )
        .await
        .context("cannot delete the rejected lines")?;
    let summary = PurgeSummary {
        schema_version: crate::report::summary::SUMMARY_SCHEMA_VERSION,
        command: "purge-rejects",
        cutoff: cutoff.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        purged_rejects: row.get(0),
        loads: row.get(1),
    };
    transaction.commit().await?;
    Ok(summary)
}
