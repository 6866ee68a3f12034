//! `purge-rejects` and `purge-restatements --older-than DURATION`: retention, each a recorded run
//! holding the run lock.

use std::io::Write;
use std::time::Duration;

use anyhow::Result;
use tokio_postgres::Client;

use super::{output, run_record, session};
use crate::admin::purge;
use crate::cli::GlobalArgs;
use crate::exit;
use crate::names::RunStatus;

/// What a purge deletes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Retention {
    /// Raw rejected lines of old loads (`elt.rejects`).
    Rejects,
    /// Restatements of old refreshes (`elt.restatements`).
    Restatements,
}

impl Retention {
    fn command(self) -> &'static str {
        match self {
            Retention::Rejects => "purge-rejects",
            Retention::Restatements => "purge-restatements",
        }
    }

    /// Runs the purge: its summary for `--json` and its line for people.
    async fn purge(
        self,
        client: &mut Client,
        older_than: Duration,
    ) -> Result<(serde_json::Value, String)> {
        Ok(match self {
            Retention::Rejects => {
                let summary = purge::purge_rejects(client, older_than).await?;
                let human = format!(
                    "purged {} rejected line(s) of {} load(s) started before {}",
                    summary.purged_rejects, summary.loads, summary.cutoff
                );
                (serde_json::to_value(summary)?, human)
            }
            Retention::Restatements => {
                let summary = purge::purge_restatements(client, older_than).await?;
                let human = format!(
                    "purged {} restatement(s) of {} refresh(es) that finished before {}",
                    summary.purged_restatements, summary.refreshes, summary.cutoff
                );
                (serde_json::to_value(summary)?, human)
            }
        })
    }
}

pub(super) async fn purge(
    global: &GlobalArgs,
    retention: Retention,
    older_than: Duration,
    stdout: &mut dyn Write,
) -> Result<i32> {
    let mut session = session::open_for_writing(global).await?;
    let command = retention.command();
    let run_id = run_record::start(&session.client, command).await?;
    let (summary, human) = match retention.purge(&mut session.client, older_than).await {
        Ok(done) => done,
        Err(error) => {
            let code = exit::code_for(&error);
            let failure = serde_json::json!({ "error": format!("{error:#}") });
            let recorded =
                run_record::finish(&session.client, run_id, RunStatus::Failed, code, &failure);
            if let Err(record_error) = recorded.await {
                tracing::debug!("cannot record the failed {command}: {record_error:#}");
            }
            return Err(error);
        }
    };
    run_record::finish(
        &session.client,
        run_id,
        RunStatus::Succeeded,
        exit::SUCCESS,
        &summary,
    )
    .await?;
    output::emit(global, stdout, &summary, &human)?;
    Ok(exit::SUCCESS)
}
