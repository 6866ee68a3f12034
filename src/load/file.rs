//! One input file: decide from the ledger what to do with it, open it where that says, run its
//! batches with the reader thread, and say what happened to its lines.

use std::path::Path;
use std::time::Instant;

use anyhow::{anyhow, Result};
use tokio_postgres::Client;

use super::batch::{self, FileBatches};
use super::copy::CopyLayout;
use super::ledger::{self, LoadPlan, StartAt};
use super::merge::MergeSource;
use super::options::FileLoad;
use super::reader::spawn_reader;
use crate::ingest::fingerprint::{fingerprint, Fingerprint};
use crate::ingest::open::open_at;
use crate::ingest::source;
use crate::names::{FileStatus, LoadStatus};
use crate::report::summary::{FileSummary, LineCounts, StepSeconds};

/// What the ledger says to do with a file.
struct FileDecision {
    plan: LoadPlan,
    /// `None` for standard input, which cannot be read twice.
    fingerprint: Option<Fingerprint>,
    /// A forced reload of a path or content loaded before: its rejects are compared with the
    /// earlier ones.
    has_earlier_loads: bool,
}

/// Looks the file up in the ledger (by path, then by content) and plans its load.
async fn decide(
    client: &Client,
    path: &Path,
    display_path: &str,
    force: bool,
) -> Result<FileDecision> {
    if source::is_stdin(path) {
        return Ok(FileDecision {
            plan: LoadPlan::Fresh,
            fingerprint: None,
            has_earlier_loads: false,
        });
    }
    let same_path = ledger::ledger_entries(client, "path = $1", &display_path).await?;
    let prefix = same_path
        .iter()
        .find(|entry| entry.status == LoadStatus::Loaded || ledger::is_interrupted(entry))
        .and_then(|entry| entry.size_bytes);
    let fingerprint = {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || fingerprint(&path, prefix.map(|size| size as u64)))
            .await??
    };
    let same_content =
        ledger::ledger_entries(client, "content_hash = $1", &fingerprint.hash).await?;
    // Only a forced reload reads lines that were loaded before (a fresh load's content is new,
    // a resume or a tail reads past what was committed): only then are rejects compared.
    let has_earlier_loads = force && (!same_path.is_empty() || !same_content.is_empty());
    Ok(FileDecision {
        plan: ledger::plan_load(&fingerprint, &same_path, &same_content, force),
        fingerprint: Some(fingerprint),
        has_earlier_loads,
    })
}

/// Loads one file (or standard input) as its ledger entry says; `position` is its place on the
/// command line, which orders first occurrences between the files of one run.
pub(super) async fn load_file(
    client: &mut Client,
    shared: &FileLoad<'_>,
    position: i32,
    path: &Path,
    seconds: &mut StepSeconds,
) -> Result<FileSummary> {
    let display_path = ledger::ledger_path(path);
    let decision = decide(client, path, &display_path, shared.options.force).await?;
    let Some(start) = decision.plan.start_at() else {
        return Ok(skipped(display_path, &decision.plan));
    };
    if let Some(note) = &start.note {
        tracing::info!("{display_path}: {note}");
    }
    let load_id = ledger::open_load(
        client,
        shared.run_id,
        position,
        &display_path,
        &decision.plan,
        decision.fingerprint.as_ref(),
        &start,
    )
    .await?;
    let content_hash = decision
        .fingerprint
        .as_ref()
        .map(|fingerprint| fingerprint.hash.clone());
    let file = FileBatches {
        run_id: shared.run_id,
        merge: MergeSource {
            load_id,
            display_path: &display_path,
            content_hash: &content_hash,
            has_earlier_loads: decision.has_earlier_loads,
        },
        layout: if shared.bulk.is_some() {
            CopyLayout::Direct { load_id }
        } else {
            CopyLayout::Staged
        },
        is_stdin: source::is_stdin(path),
        views: shared.views,
        refresh_after_each_batch: shared.refresh_streams && source::is_stdin(path),
        progress: shared.progress,
    };
    let size = decision
        .fingerprint
        .as_ref()
        .map(|fingerprint| fingerprint.size);
    let (counts, ends_with_newline) =
        read_and_load(client, shared, path, &start, size, &file, seconds).await?;
    Ok(FileSummary {
        path: display_path,
        status: FileStatus::Loaded,
        load_id: Some(load_id),
        lines_resumed: start.lines_resumed,
        counts,
        note: match (start.note, ends_with_newline) {
            (Some(note), true) => Some(note),
            (Some(note), false) => Some(format!("{note}; the last line has no final newline")),
            (None, false) => Some("the last line has no final newline".to_owned()),
            (None, true) => None,
        },
    })
}

/// The summary of a file that is not read: its content was loaded before (the plan says by
/// which load), or it grew after a cut last line.
fn skipped(display_path: String, plan: &LoadPlan) -> FileSummary {
    let (load_id, note) = match plan {
        LoadPlan::Skip { load_id, note } => (Some(*load_id), Some(note.clone())),
        _ => (None, None),
    };
    tracing::info!(
        "{display_path}: skipped: {}",
        note.as_deref().unwrap_or("nothing to load")
    );
    FileSummary {
        path: display_path,
        status: FileStatus::Skipped,
        load_id,
        lines_resumed: 0,
        counts: LineCounts::default(),
        note,
    }
}

/// Opens the input at `start`, runs the reader thread and the batches, and waits for both.
/// A failed load is marked `failed` in the ledger (the next run resumes it).
async fn read_and_load(
    client: &mut Client,
    shared: &FileLoad<'_>,
    path: &Path,
    start: &StartAt,
    size: Option<i64>,
    file: &FileBatches<'_>,
    seconds: &mut StepSeconds,
) -> Result<(LineCounts, bool)> {
    let started = Instant::now();
    let display_path = file.merge.display_path;
    let progress = shared.progress;
    crate::progress::reading(progress, display_path, size.unwrap_or(0) as u64);
    let input = {
        let path = path.to_owned();
        let max_line_bytes = shared.options.max_line_bytes;
        let (offset, next_line_number) = (start.offset, start.next_line_number);
        tokio::task::spawn_blocking(move || {
            open_at(&path, max_line_bytes, offset, next_line_number)
        })
        .await??
    };
    let (reader, mut receiver) = spawn_reader(
        input,
        shared.cleaner,
        shared.options,
        (file.layout, shared.bulk.clone()),
        progress,
    )?;
    let mut counts = LineCounts::default();
    let outcome = batch::load_batches(client, file, &mut receiver, (&mut counts, seconds)).await;
    drop(receiver);
    let reader_result = reader.join();
    let ends_with_newline = match outcome {
        Ok(ends_with_newline) => ends_with_newline,
        Err(error) => {
            ledger::mark_failed(client, file.merge.load_id).await;
            return Err(error);
        }
    };
    if reader_result.is_err() {
        return Err(anyhow!("the reader thread panicked"));
    }
    tracing::info!(
        "{display_path}: {} lines in {:.2} s (loaded {}, duplicates {}, rejected {}, blank {})",
        counts.lines,
        started.elapsed().as_secs_f64(),
        counts.loaded,
        counts.duplicates,
        counts.rejected,
        counts.blank
    );
    Ok((counts, ends_with_newline))
}
