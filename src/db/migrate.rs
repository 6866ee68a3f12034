//! The schema migrations in `migrations/` (refinery), embedded in the binary, and the schema-version check.

use anyhow::{Context, Result};
use tokio_postgres::Client;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Applies the embedded migrations (`migrations/`), all pending ones in one transaction. The
/// caller holds the run lock, so two commands never migrate at once.
///
/// A schema that is already up to date is only read, so the least-privilege roles of
/// `setup-roles` (which may not create tables) can run every command; migrations that are
/// pending need the schema owner.
pub async fn migrate(client: &mut Client) -> Result<Vec<String>> {
    let runner = embedded::migrations::runner();
    if is_up_to_date(client, runner.get_migrations()).await? {
        return Ok(Vec::new());
    }
    let report = runner
        .set_grouped(true)
        .set_abort_divergent(true)
        .run_async(client)
        .await
        .context("cannot apply migrations (they need the schema owner: run `campaign-elt migrate` as that role)")?;
    Ok(report
        .applied_migrations()
        .iter()
        .map(|migration| format!("V{}__{}", migration.version(), migration.name()))
        .collect())
}

/// Whether every embedded migration is recorded with the same checksum (read-only).
async fn is_up_to_date(client: &Client, migrations: &[refinery::Migration]) -> Result<bool> {
    let history = client
        .query_one(
            "select to_regclass('refinery_schema_history') is not null",
            &[],
        )
        .await
        .context("cannot read the migration history")?;
    if !history.get::<_, bool>(0) {
        return Ok(false);
    }
    let applied: std::collections::HashMap<i32, String> = client
        .query("select version, checksum from refinery_schema_history", &[])
        .await
        .context("cannot read the migration history")?
        .iter()
        .map(|row| {
            (
                row.get(0),
                row.get::<_, Option<String>>(1).unwrap_or_default(),
            )
        })
        .collect();
    Ok(migrations.iter().all(|migration| {
        applied.get(&(migration.version() as i32)) == Some(&migration.checksum().to_string())
    }))
}

/// Fails, saying what to run, unless every embedded migration is applied: the check of the
/// commands that only read (`status`, `report`, `test`), which never change the schema.
pub async fn ensure_up_to_date(client: &Client) -> Result<()> {
    let runner = embedded::migrations::runner();
    if !is_up_to_date(client, runner.get_migrations()).await? {
        anyhow::bail!(
            "the database schema is not up to date with this campaign-elt: run `campaign-elt migrate` \
             (as the schema owner) first"
        );
    }
    Ok(())
}
