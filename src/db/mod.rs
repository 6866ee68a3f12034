//! The database edge: connection parameters, TLS, connecting, migrations, the run lock and
//! PostgreSQL's error messages.

use anyhow::{Context, Result};
use tokio_postgres::Client;

pub mod connection;
mod conninfo;
pub mod error;
pub mod lock;
pub mod migrate;
mod pgpass;
pub mod tls;

pub use connection::{cancel_running_statements, ConnectionParams};
pub use error::{database_message, quote_ident, quote_relation};
pub use lock::{acquire_run_lock, join_run, LockOutcome, RUN_LOCK_KEY, RUN_SESSIONS_KEY};
pub use migrate::migrate;

/// Connects and prepares the session: synchronous commit, so a run that exits 0 has made its
/// last commit durable; no JIT, whose compile time dominated the incremental refresh's many
/// small index lookups (docs/performance.md, "No JIT").
/// The session keeps the server's TimeZone: the SQL never depends on it, and the application
/// name the connection gave (the operator's `PGAPPNAME` or URL, else `campaign-elt`).
///
/// Where the server has it (PostgreSQL 14 and later) and the operator left it off, the session
/// asks the server to check every 10 s during a long statement that the client is still there
/// (`client_connection_check_interval`), so a killed run's statement is not left running for
/// minutes holding its locks.
pub async fn connect(params: &ConnectionParams) -> Result<Client> {
    let client = connection::connect(params).await?;
    client
        .batch_execute(
            "set synchronous_commit = on;
             set jit = off;
             select set_config('client_connection_check_interval', '10s', false)
             where current_setting('client_connection_check_interval', true) = '0';",
        )
        .await
        .with_context(|| format!("cannot prepare the session on {}", params.display))?;
    Ok(client)
}
