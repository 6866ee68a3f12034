//! The run lock: a session-level advisory lock that keeps two runs from interleaving their writes.

use anyhow::{Context, Result};
use tokio_postgres::Client;

/// Key of the session-level advisory lock that serializes writers (`hashtext('campaign-elt')`
/// would depend on the server; a constant does not).
pub const RUN_LOCK_KEY: i64 = 0x63_616d_7065_6c74; // "campelt"

/// Outcome of asking for the run lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockOutcome {
    Acquired,
    HeldByAnotherRun,
}

/// Takes the session-level advisory lock that keeps two runs from interleaving their writes.
/// With `wait`, blocks until the other run ends; without, returns `HeldByAnotherRun`.
/// Needs a session-pooled connection (not PgBouncer's transaction mode).
pub async fn acquire_run_lock(client: &Client, wait: bool) -> Result<LockOutcome> {
    if wait {
        client
            .execute("select pg_advisory_lock($1)", &[&RUN_LOCK_KEY])
            .await
            .context("cannot take the run lock")?;
        return Ok(LockOutcome::Acquired);
    }
    let row = client
        .query_one("select pg_try_advisory_lock($1)", &[&RUN_LOCK_KEY])
        .await
        .context("cannot take the run lock")?;
    Ok(if row.get::<_, bool>(0) {
        LockOutcome::Acquired
    } else {
        LockOutcome::HeldByAnotherRun
    })
}
