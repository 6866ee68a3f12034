//! One `elt.runs` row per command that writes data (`load`, `refresh`, `run`, `unload`,
//! `purge-rejects`): started when it has the lock, finished with its status, exit code and
//! `--json` summary.

use anyhow::{Context, Result};
use serde::Serialize;
use tokio_postgres::Client;

use crate::names::RunStatus;

/// Records the start of a command; returns its run id. We hold the run lock, so a run still
/// marked running was killed before it could say so: it is marked interrupted.
pub(super) async fn start(client: &Client, command: &str) -> Result<i64> {
    client
        .execute(
            "update elt.runs set status = 'interrupted', finished_at = coalesce(finished_at, clock_timestamp())
             where status = $1",
            &[&RunStatus::Running.as_str()],
        )
        .await?;
    Ok(client
        .query_one(
            "insert into elt.runs (command) values ($1) returning run_id",
            &[&command],
        )
        .await
        .context("cannot record the run")?
        .get(0))
}

/// Records how the command ended.
pub(super) async fn finish(
    client: &Client,
    run_id: i64,
    status: RunStatus,
    exit_code: i32,
    summary: &impl Serialize,
) -> Result<()> {
    client
        .execute(
            "update elt.runs set status = $2, exit_code = $3, summary = $4, finished_at = clock_timestamp()
             where run_id = $1",
            &[&run_id, &status.as_str(), &exit_code, &serde_json::to_value(summary)?],
        )
        .await
        .context("cannot record the end of the run")?;
    Ok(())
}
