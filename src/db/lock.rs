//! The run lock: a session-level advisory lock that keeps two runs from interleaving their writes,
//! and the lock that makes a new run wait for the sessions an earlier run left working.

use anyhow::{Context, Result};
use tokio_postgres::Client;

/// Key of the session-level advisory lock that serializes writers (`hashtext('campaign-elt')`
/// would depend on the server; a constant does not).
pub const RUN_LOCK_KEY: i64 = 0x63_616d_7065_6c74; // "campelt"

/// Key of the advisory lock every further session of a run (the bulk load's second session)
/// holds shared for as long as it lives. A client that dies does not stop its backend's running
/// statement: the server notices only when it next talks to the client, so a killed bulk load's
/// index build runs on, and a new run that built the same index would fail on its name. A new
/// run takes this key exclusively after the run lock (see [`acquire_run_lock`]), so it waits
/// until such backends have ended. The run's own main session needs no such key: its backend
/// holds the run lock until it ends.
pub const RUN_SESSIONS_KEY: i64 = RUN_LOCK_KEY + 1;

/// Outcome of asking for the run lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockOutcome {
    Acquired,
    HeldByAnotherRun,
}

/// Takes the session-level advisory lock that keeps two runs from interleaving their writes,
/// then waits until no session of an earlier run is left ([`RUN_SESSIONS_KEY`], taken for the
/// statement only). With `wait`, blocks until the other run ends; without, returns
/// `HeldByAnotherRun` (also while an earlier run's session is still working). Needs a
/// session-pooled connection (not PgBouncer's transaction mode).
pub async fn acquire_run_lock(client: &Client, wait: bool) -> Result<LockOutcome> {
    if wait {
        client
            .batch_execute(&format!(
                "select pg_advisory_lock({RUN_LOCK_KEY}); \
                 select pg_advisory_xact_lock({RUN_SESSIONS_KEY})"
            ))
            .await
            .context("cannot take the run lock")?;
        return Ok(LockOutcome::Acquired);
    }
    let row = client
        .query_one("select pg_try_advisory_lock($1)", &[&RUN_LOCK_KEY])
        .await
        .context("cannot take the run lock")?;
    if !row.get::<_, bool>(0) {
        return Ok(LockOutcome::HeldByAnotherRun);
    }
    let row = client
        .query_one("select pg_try_advisory_xact_lock($1)", &[&RUN_SESSIONS_KEY])
        .await
        .context("cannot take the run lock")?;
    if row.get::<_, bool>(0) {
        return Ok(LockOutcome::Acquired);
    }
    client
        .execute("select pg_advisory_unlock($1)", &[&RUN_LOCK_KEY])
        .await
        .context("cannot release the run lock")?;
    Ok(LockOutcome::HeldByAnotherRun)
}

/// Marks `client` as a further session of the run that holds the run lock, until it ends (see
/// [`RUN_SESSIONS_KEY`]).
pub async fn join_run(client: &Client) -> Result<()> {
    client
        .execute("select pg_advisory_lock_shared($1)", &[&RUN_SESSIONS_KEY])
        .await
        .context("cannot mark the session as part of the run")?;
    Ok(())
}
