//! The shared session steps: a writing command connects, takes the run lock, migrates and
//! finishes an unfinished bulk load; a reading command connects and checks the schema version.

use std::time::Instant;

use anyhow::Result;
use tokio_postgres::Client;

use crate::cli::GlobalArgs;
use crate::db::{self, connection, ConnectionParams, LockOutcome};
use crate::exit::LockHeld;

/// A connection of a command that writes, holding the run lock.
pub(super) struct WriteSession {
    pub(super) client: Client,
    /// For the second session a bulk load builds its indexes with.
    pub(super) connection: ConnectionParams,
    /// Seconds spent migrating and finishing an unfinished bulk load.
    pub(super) migrate_seconds: f64,
}

/// Connects as psql would (`--database-url`, `DATABASE_URL`, libpq variables).
pub(super) async fn connect(global: &GlobalArgs) -> Result<(Client, ConnectionParams)> {
    let params = connection::resolve_from_process_env(global.database.database_url.as_deref())?;
    tracing::debug!("connecting to {}", params.display);
    Ok((db::connect(&params).await?, params))
}

/// Connect → run lock (waiting, or exit 5 with `--no-wait`) → migrate → finish a bulk load
/// that died before its end (it left the events table without its indexes).
pub(super) async fn open_for_writing(global: &GlobalArgs) -> Result<WriteSession> {
    let (mut client, connection) = connect(global).await?;
    take_run_lock(&client, global).await?;
    let started = Instant::now();
    db::migrate(&mut client).await?;
    crate::load::finish_bulk_load(&mut client, &connection).await?;
    Ok(WriteSession {
        client,
        connection,
        migrate_seconds: started.elapsed().as_secs_f64(),
    })
}

/// Takes the run lock: waits for another run, or with `--no-wait` fails with [`LockHeld`]
/// (exit 5).
pub(super) async fn take_run_lock(client: &Client, global: &GlobalArgs) -> Result<()> {
    match db::acquire_run_lock(client, !global.run_lock.no_wait).await? {
        LockOutcome::Acquired => Ok(()),
        LockOutcome::HeldByAnotherRun => Err(LockHeld.into()),
    }
}

/// Connect and check that the schema is up to date; takes no lock and changes nothing.
pub(super) async fn open_for_reading(global: &GlobalArgs) -> Result<Client> {
    let (client, _) = connect(global).await?;
    db::migrate::ensure_up_to_date(&client).await?;
    Ok(client)
}
