//! `purge-rejects --older-than DURATION`: deletes old raw rejected lines (a recorded run).

use std::io::Write;

use anyhow::Result;

use super::{output, run_record, session};
use crate::admin::purge::purge_rejects as purge;
use crate::cli::{GlobalArgs, PurgeRejectsArgs};
use crate::exit;
use crate::names::RunStatus;

pub(super) async fn purge_rejects(
    global: &GlobalArgs,
    args: &PurgeRejectsArgs,
    stdout: &mut dyn Write,
) -> Result<i32> {
    let mut session = session::open_for_writing(global).await?;
    let run_id = run_record::start(&session.client, "purge-rejects").await?;
    let summary = match purge(&mut session.client, args.older_than).await {
        Ok(summary) => summary,
        Err(error) => {
            let code = exit::code_for(&error);
            let failure = serde_json::json!({ "error": format!("{error:#}") });
            let recorded =
                run_record::finish(&session.client, run_id, RunStatus::Failed, code, &failure);
            if let Err(record_error) = recorded.await {
                tracing::debug!("cannot record the failed purge: {record_error:#}");
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
    let human = format!(
        "purged {} rejected line(s) of {} load(s) started before {}",
        summary.purged_rejects, summary.loads, summary.cutoff
    );
    output::emit(global, stdout, &summary, &human)?;
    Ok(exit::SUCCESS)
}
