//! Load: classified lines → binary COPY into staging → set-based dedup merge, batch by batch.
//!
//! One batch is one transaction: COPY of the batch's lines into `elt.staged_lines`, the merge of
//! its rejects and first-seen events, the (customer, hour) keys it makes stale, and the ledger's
//! progress. A reader thread parses and encodes while the database works on the previous chunk.
//! Into an empty events table the batches copy straight into `elt.events` and `elt.rejects`
//! instead, and the duplicates and indexes are dealt with once at the end (see [`bulk`]).
//!
//! The parts: [`ledger`] (what to do with a file) → [`file`] (one file) → [`reader`] (the
//! reader thread) and [`batch`] (one transaction) → [`copy`] / [`switcher`] (binary COPY) →
//! [`merge`] (SQL in `load/sql/`); [`bulk`] and [`unload`] beside them.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::ProgressBar;
use tokio_postgres::Client;

mod batch;
mod bulk;
mod copy;
mod file;
mod ledger;
mod merge;
mod options;
mod reader;
mod sent_keys;
mod step_timer;
mod switcher;
mod unload;

pub use bulk::finish as finish_bulk_load;
pub(crate) use merge::CREATE_CHANGED_EVENTS;
pub use options::{
    LoadOptions, DEFAULT_BATCH_LINES, DEFAULT_BATCH_SECONDS, DEFAULT_MAX_LINE_BYTES,
};
pub use unload::unload;

use options::FileLoad;
use sent_keys::SentKeys;

use crate::db::ConnectionParams;
use crate::ingest::clean::Cleaner;
use crate::ingest::source;
use crate::names::FileStatus;
use crate::report::summary::{add_step_seconds, FileSummary, StepSeconds};
use crate::report_settings::ReportSettings;
use crate::transform::ViewSet;

/// The run a load belongs to, where it shows progress, and how to reach its database again (a
/// bulk load builds its indexes on a second session).
pub struct LoadRun<'a> {
    pub run_id: i64,
    pub progress: &'a ProgressBar,
    pub connection: &'a ConnectionParams,
}

/// What a load did: each file's outcome, and the seconds of its parts (`copy`, `merge`,
/// `stale_keys` where keys are queued for recomputation, `ledger_and_commit` summed over
/// batches; `bulk_finish`).
pub struct LoadedFiles {
    pub files: Vec<FileSummary>,
    pub step_seconds: StepSeconds,
}

/// Loads the given files in order, returning what happened to each. `views` provides the
/// stale-keys queries each batch runs; with `refresh_streams`, a stream (standard input)
/// refreshes the views after every committed batch, so the reports follow a live log (a
/// failing refresh is logged and loading goes on).
pub async fn load_files(
    client: &mut Client,
    run: &LoadRun<'_>,
    paths: &[PathBuf],
    settings: &ReportSettings,
    options: &LoadOptions,
    views: &ViewSet,
    refresh_streams: bool,
) -> Result<LoadedFiles> {
    let LoadRun {
        run_id,
        progress,
        connection,
    } = *run;
    let mut cleaner = Cleaner::new(settings.accepted_event_types.clone(), settings.zone());
    if options.personal_data.is_some() {
        cleaner = cleaner.capturing_personal_data();
    }
    // Into an empty events table, rows are copied without the table's indexes, which are
    // built once at the end (see `bulk`). A run that dies before that leaves the key missing;
    // the next command finishes the bulk load before anything else.
    let bulk = !options.force
        && !paths.iter().any(|path| source::is_stdin(path))
        && bulk::is_possible(client).await?;
    if bulk {
        bulk::begin(client).await?;
    }
    let shared = FileLoad {
        run_id,
        cleaner: &cleaner,
        options,
        bulk: bulk.then(|| {
            let sent_keys = SentKeys::for_inputs(paths);
            tracing::debug!(
                "bulk load: a filter of {} KiB for the keys sent",
                sent_keys.bitmap_bytes() >> 10
            );
            Arc::new(Mutex::new(sent_keys))
        }),
        progress,
        views,
        refresh_streams,
    };
    let mut seconds = StepSeconds::new();
    let loaded = load_each_file(client, &shared, paths, &mut seconds).await;
    let finished = if bulk {
        let started = Instant::now();
        crate::progress::phase(progress, "building the events table's key and indexes");
        let finished = bulk::finish(client, connection).await;
        add_step_seconds(&mut seconds, "bulk_finish", started.elapsed().as_secs_f64());
        match (&loaded, finished) {
            (Ok(_), Err(error)) => return Err(error),
            // The load's own error says what went wrong; the next command finishes the load.
            (Err(_), Err(error)) => {
                tracing::debug!("cannot finish the bulk load now: {error:#}");
                None
            }
            (_, Ok(finished)) => {
                tracing::debug!(
                    "bulk load finished in {:.3} s: later occurrences removed per load: {finished:?}",
                    started.elapsed().as_secs_f64()
                );
                Some(finished)
            }
        }
    } else {
        None
    };
    let mut summaries = loaded?;
    // The bulk load counted its duplicates only when it finished.
    if let Some(finished) = finished {
        for summary in &mut summaries {
            let removed = summary
                .load_id
                .filter(|_| summary.status == FileStatus::Loaded)
                .and_then(|load_id| finished.get(&load_id));
            if let Some(&removed) = removed {
                summary.counts.loaded = summary.counts.loaded.saturating_sub(removed);
                summary.counts.duplicates += removed;
            }
        }
    }
    let loaded: u64 = summaries.iter().map(|summary| summary.counts.loaded).sum();
    refresh_statistics(client, loaded, progress).await?;
    Ok(LoadedFiles {
        files: summaries,
        step_seconds: seconds,
    })
}

async fn load_each_file(
    client: &mut Client,
    shared: &FileLoad<'_>,
    paths: &[PathBuf],
    seconds: &mut StepSeconds,
) -> Result<Vec<FileSummary>> {
    let mut summaries = Vec::with_capacity(paths.len());
    for (position, path) in paths.iter().enumerate() {
        let summary = file::load_file(client, shared, position as i32 + 1, path, seconds)
            .await
            .with_context(|| format!("cannot load {}", path.display()))?;
        summaries.push(summary);
    }
    Ok(summaries)
}

/// Analyzes the events table when a load changed it by more than a tenth, so that the
/// refresh right after it plans with the indexes (autovacuum would analyze it only later).
async fn refresh_statistics(client: &Client, loaded: u64, progress: &ProgressBar) -> Result<()> {
    if loaded == 0 {
        return Ok(());
    }
    let estimated: f32 = client
        .query_one(
            "select reltuples from pg_catalog.pg_class where oid = 'elt.events'::regclass",
            &[],
        )
        .await?
        .get(0);
    if estimated <= 0.0 || loaded as f64 > 0.1 * estimated as f64 {
        crate::progress::phase(progress, "analyzing elt.events");
        client
            .batch_execute("analyze elt.events")
            .await
            .context("cannot analyze elt.events")?;
    }
    Ok(())
}
