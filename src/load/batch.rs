//! One batch, one transaction: the COPY of its rows, the merge (or, in a bulk load, nothing
//! more), the ledger's progress, and the commit — then, for a stream, a refresh.

use anyhow::Result;
use indicatif::ProgressBar;
use tokio::sync::mpsc;
use tokio_postgres::Client;

use super::copy::CopyLayout;
use super::ledger;
use super::merge::{self, MergeSource};
use super::reader::{BatchProgress, ReaderMessage};
use super::step_timer::StepTimer;
use super::switcher::copy_batch;
use crate::progress;
use crate::report::summary::{LineCounts, StepSeconds};
use crate::transform::{self, RefreshOptions, ViewSet};

/// What every batch of one file shares.
pub(super) struct FileBatches<'a> {
    pub(super) run_id: i64,
    pub(super) merge: MergeSource<'a>,
    pub(super) layout: CopyLayout,
    pub(super) is_stdin: bool,
    /// The views whose stale-keys queries each batch runs.
    pub(super) views: &'a ViewSet,
    /// A stream refreshes the views after every committed batch.
    pub(super) refresh_after_each_batch: bool,
    /// Shows the bytes read, and what runs after the last one.
    pub(super) progress: &'a ProgressBar,
}

/// Runs the file's batches as the reader cuts them, each in its own transaction, until the end
/// of the input, adding each batch's counts to `counts` and its statements' seconds to
/// `seconds`. Returns whether the input's last line ended with `\n`.
pub(super) async fn load_batches(
    client: &mut Client,
    file: &FileBatches<'_>,
    receiver: &mut mpsc::Receiver<ReaderMessage>,
    (counts, seconds): (&mut LineCounts, &mut StepSeconds),
) -> Result<bool> {
    loop {
        let batch = commit_batch(client, file, receiver, seconds).await?;
        counts.add(&batch.1);
        if batch.0.at_end_of_input {
            return Ok(batch.0.ends_with_newline);
        }
        if file.refresh_after_each_batch {
            refresh_after_batch(client, file.views, file, batch.0.last_line_number).await;
            progress::resume_reading(file.progress, file.merge.display_path);
        }
    }
}

/// One batch's transaction: COPY, merge, ledger progress, commit.
async fn commit_batch(
    client: &mut Client,
    file: &FileBatches<'_>,
    receiver: &mut mpsc::Receiver<ReaderMessage>,
    seconds: &mut StepSeconds,
) -> Result<(BatchProgress, LineCounts)> {
    let load_id = file.merge.load_id;
    // The batch's first rows before its transaction: a quiet stream then waits without an open
    // transaction (no transaction id held, no lock on elt.staged_lines from its truncate).
    let first = receiver.recv().await;
    let transaction = client.transaction().await?;
    let mut timer = StepTimer::new(seconds);
    if file.layout == CopyLayout::Staged {
        transaction
            .batch_execute("truncate elt.staged_lines")
            .await?;
    }
    let batch = copy_batch(&transaction, first, receiver).await?;
    timer.last_line_number = batch.last_line_number;
    timer.step("copy");
    if batch.at_end_of_input {
        let path = file.merge.display_path;
        match file.layout {
            CopyLayout::Staged => {
                progress::phase(file.progress, format!("{path}: merging the last batch"))
            }
            CopyLayout::Direct { .. } => {
                progress::phase(file.progress, format!("{path}: committing the last batch"))
            }
        }
    }
    if !batch_commit_waits_for_flush(file.is_stdin, batch.at_end_of_input) {
        transaction
            .batch_execute("set local synchronous_commit = off")
            .await?;
    }
    let new_events = match file.layout {
        // Duplicates are counted when the bulk load finishes.
        CopyLayout::Direct { .. } => batch.tally.valid,
        CopyLayout::Staged => {
            merge::merge_batch(&transaction, &file.merge, file.views, &mut timer).await?
        }
    };
    let counts = LineCounts::of_batch(&batch.tally, new_events);
    ledger::record_batch(&transaction, load_id, &batch, &counts).await?;
    transaction.commit().await?;
    timer.step("ledger_and_commit");
    tracing::debug!(
        "{}: committed lines up to {} ({} new events)",
        file.merge.display_path,
        batch.last_line_number,
        new_events
    );
    Ok((batch, counts))
}

/// A stream's reports follow the log: refresh after each batch, then the data tests (on the
/// keys refreshed since they last passed, where they may); a failing refresh or test is logged
/// and loading goes on. The command's own refresh and tests at the end report them too.
async fn refresh_after_batch(
    client: &mut Client,
    views: &ViewSet,
    file: &FileBatches<'_>,
    last_line_number: u64,
) {
    let options = RefreshOptions::default();
    let refreshed = transform::refresh(client, views, Some(file.run_id), options, file.progress);
    match refreshed.await {
        Ok(refresh) => tracing::info!(
            "{}: refreshed {} key(s) after line {last_line_number}",
            file.merge.display_path,
            refresh.recomputed_keys,
        ),
        Err(error) => {
            tracing::warn!("refresh after a batch failed (loading goes on): {error:#}");
            return;
        }
    }
    progress::phase(file.progress, "running the data tests");
    match transform::run_data_tests_after_refresh(client, views).await {
        Ok(tests) if tests.failures.is_empty() => {}
        Ok(tests) => {
            for failure in &tests.failures {
                tracing::warn!(
                    "{}: after line {last_line_number}, data test {} found {} offending row(s)",
                    file.merge.display_path,
                    failure.name,
                    failure.offending_rows
                );
            }
        }
        Err(error) => {
            tracing::warn!("data tests after a batch failed (loading goes on): {error:#}")
        }
    }
}

/// Whether a batch's commit waits until its WAL is on disk. A file's batches before its last
/// one need not: if the server crashes, it loses at most the last few such commits — rows and
/// ledger together, never a batch in the middle (WAL is replayed in order) — and the next run
/// reads those lines again from the ledger's committed offset. The last batch's commit is
/// synchronous and flushes every earlier one with it. Standard input cannot be read again, so
/// every batch of a stream waits.
fn batch_commit_waits_for_flush(is_stdin: bool, at_end_of_input: bool) -> bool {
    is_stdin || at_end_of_input
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_files_last_batch_and_every_stream_batch_wait_for_the_flush() {
        assert!(!batch_commit_waits_for_flush(false, false));
        assert!(batch_commit_waits_for_flush(false, true));
        assert!(batch_commit_waits_for_flush(true, false));
        assert!(batch_commit_waits_for_flush(true, true));
    }
}
