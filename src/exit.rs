//! Exit codes (one table, the README's "Exit codes") and the errors that carry their own code.

/// Success.
pub const SUCCESS: i32 = 0;
/// Error: database unreachable, SQL error, unreadable input, ... (nothing half-done is visible).
pub const ERROR: i32 = 1;
/// Usage error: bad flags or arguments.
pub const USAGE: i32 = 2;
/// Completed, but rejected lines exceeded `--max-rejected`.
pub const TOO_MANY_REJECTS: i32 = 3;
/// Completed, but a data test failed.
pub const DATA_TEST_FAILED: i32 = 4;
/// Another run holds the lock (`--no-wait`).
pub const LOCKED: i32 = 5;
/// Interrupted by SIGINT; the open batch rolled back.
pub const INTERRUPTED: i32 = 130;
/// Terminated by SIGTERM; the open batch rolled back.
pub const TERMINATED: i32 = 143;

/// Another run holds the run lock and `--no-wait` was given.
#[derive(Debug, thiserror::Error)]
#[error("another campaign-elt run holds the lock on this database (--no-wait given)")]
pub struct LockHeld;

/// The arguments make no sense together (beyond what clap checks).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The exit code for an error that ended a command.
pub fn code_for(error: &anyhow::Error) -> i32 {
    if error.downcast_ref::<LockHeld>().is_some() {
        LOCKED
    } else if error.downcast_ref::<UsageError>().is_some() {
        USAGE
    } else {
        ERROR
    }
}

/// The error chain as one line for stderr: `context: cause`, with PostgreSQL's own message
/// (and detail) instead of the client library's `db error: ERROR: …` wrapping.
pub fn describe(error: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        if cause
            .downcast_ref::<tokio_postgres::error::DbError>()
            .is_some()
        {
            continue; // already described by the tokio_postgres::Error that wraps it
        }
        let text = match cause.downcast_ref::<tokio_postgres::Error>() {
            Some(db_error) => crate::db::database_message(db_error),
            None => cause.to_string(),
        };
        // Skip a cause whose text the previous part already ends with.
        if parts.last().is_some_and(|last| last.ends_with(&text)) {
            continue;
        }
        parts.push(text);
    }
    parts.join(": ")
}
