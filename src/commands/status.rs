//! `status`: the ledger, recent runs, stale keys, rejects by reason and freshness (read only).

use std::io::Write;

use anyhow::Result;

use super::session;
use crate::cli::{GlobalArgs, StatusArgs};
use crate::exit;
use crate::report::status;

pub(super) async fn status(
    global: &GlobalArgs,
    args: &StatusArgs,
    stdout: &mut dyn Write,
) -> Result<i32> {
    let client = session::open_for_reading(global).await?;
    client.batch_execute("set time zone 'UTC'").await?;
    let status = status::status(&client, args.limit).await?;
    if global.json {
        serde_json::to_writer_pretty(&mut *stdout, &status)?;
        writeln!(stdout)?;
    } else {
        status::render_status(&status, stdout)?;
    }
    Ok(exit::SUCCESS)
}
