//! `migrate`: applies the schema migrations, holding the run lock.

use std::io::Write;

use anyhow::Result;

use super::{output, session};
use crate::cli::GlobalArgs;
use crate::db;
use crate::exit;

pub(super) async fn migrate(global: &GlobalArgs, stdout: &mut dyn Write) -> Result<i32> {
    let (mut client, _) = session::connect(global).await?;
    session::take_run_lock(&client, global).await?;
    let applied = db::migrate(&mut client).await?;
    let human = if applied.is_empty() {
        "schema is up to date".to_owned()
    } else {
        format!("applied {}", applied.join(", "))
    };
    let summary = serde_json::json!({ "applied_migrations": applied });
    output::emit(global, stdout, &summary, &human)?;
    Ok(exit::SUCCESS)
}
