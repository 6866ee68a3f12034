//! The steps of the commands that write data (`load`, `refresh`, `run`, `unload`), in the order
//! they run: session, settings, unload, load, refresh, data tests — one run record around them.

use std::io::Write;
use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::ProgressBar;
use tokio_postgres::Client;

use super::output;
use super::run_record;
use super::session::{self, WriteSession};
use crate::cli::{GlobalArgs, LoadArgs, SettingsArgs};
use crate::exit;
use crate::ingest::personal_data::PersonalDataHasher;
use crate::load::{self, LoadOptions};
use crate::names::RunStatus;
use crate::report::summary::RunSummary;
use crate::report_settings::{self, PinnedSettings, RequestedSettings};
use crate::transform::{self, RefreshOptions, ViewSet};

/// What one writing command does.
pub(super) struct Steps<'a> {
    pub(super) command: &'static str,
    pub(super) settings: &'a SettingsArgs,
    pub(super) unload: Option<i64>,
    pub(super) load: Option<&'a LoadArgs>,
    /// Refresh the reports (and run the data tests) after loading.
    pub(super) refresh: bool,
    pub(super) full_refresh: bool,
}

/// Runs the steps in a recorded run; returns the exit code of a run that completed (0, 1 after
/// a failed refresh, 3 or 4).
pub(super) async fn run_recorded(
    global: &GlobalArgs,
    steps: &Steps<'_>,
    stdout: &mut dyn Write,
) -> Result<i32> {
    let started = Instant::now();
    if steps.refresh {
        transform::test_keys_below_share()?;
    }
    // Loading and unloading need the views too: their stale-keys queries.
    let views = ViewSet::load(global.views.views_dir.as_deref())?;
    let mut session = session::open_for_writing(global).await?;
    let requested = requested_settings(steps.settings);
    let pinned = report_settings::pin(&session.client, &requested, steps.full_refresh).await?;
    let run_id = run_record::start(&session.client, steps.command).await?;
    let mut summary = RunSummary::new(steps.command);
    summary.run_id = Some(run_id);
    summary
        .step_seconds
        .insert("migrate".into(), session.migrate_seconds);
    // One bar from the first byte read to the last data test (hidden off a terminal).
    let progress = output::progress_bar(global);
    let outcome = run_steps(
        &mut session,
        run_id,
        steps,
        &views,
        &pinned,
        &mut summary,
        &progress,
    )
    .await;
    progress.finish_and_clear();
    summary.elapsed_seconds = started.elapsed().as_secs_f64();
    let client = &session.client;
    match outcome {
        Ok(code) => {
            summary.exit_code = code;
            // Completed (exit 0, 3 or 4) unless the refresh failed after the load.
            let status = match summary.refresh_error {
                None => RunStatus::Succeeded,
                Some(_) => RunStatus::Failed,
            };
            run_record::finish(client, run_id, status, code, &summary).await?;
            output::emit(global, stdout, &summary, &summary.render())?;
            Ok(code)
        }
        Err(error) => {
            summary.exit_code = exit::code_for(&error);
            let recorded = run_record::finish(
                client,
                run_id,
                RunStatus::Failed,
                summary.exit_code,
                &summary,
            );
            if let Err(record_error) = recorded.await {
                tracing::debug!("cannot record the failed run: {record_error:#}");
            }
            Err(error)
        }
    }
}

async fn run_steps(
    session: &mut WriteSession,
    run_id: i64,
    steps: &Steps<'_>,
    views: &ViewSet,
    pinned: &PinnedSettings,
    summary: &mut RunSummary,
    progress: &ProgressBar,
) -> Result<i32> {
    if let Some(load_id) = steps.unload {
        crate::progress::phase(progress, format!("unloading load {load_id}"));
        unload_step(&mut session.client, load_id, views, summary).await?;
    }
    if let Some(args) = steps.load {
        let load = LoadStep {
            run_id,
            args,
            views,
            refresh_streams: steps.refresh,
        };
        load_step(session, &load, pinned, summary, progress).await?;
    }
    if steps.refresh {
        let refresh = RefreshStep {
            run_id,
            views,
            full_refresh: steps.full_refresh || pinned.changed,
            after_load: steps.load.is_some(),
        };
        refresh_step(&mut session.client, &refresh, summary, progress).await?;
    }
    Ok(exit_code(summary, steps.load))
}

/// The exit code of a completed run: 1 when the refresh failed after loading, then 3 for too
/// many rejects, then 4 for a failed data test.
fn exit_code(summary: &RunSummary, load: Option<&LoadArgs>) -> i32 {
    if summary.refresh_error.is_some() {
        return exit::ERROR;
    }
    if let Some(limit) = load.and_then(|args| args.max_rejected) {
        if limit.is_exceeded(summary.totals.rejected, summary.totals.lines) {
            return exit::TOO_MANY_REJECTS;
        }
    }
    if !summary.data_test_failures.is_empty() {
        return exit::DATA_TEST_FAILED;
    }
    exit::SUCCESS
}

async fn unload_step(
    client: &mut Client,
    load_id: i64,
    views: &ViewSet,
    summary: &mut RunSummary,
) -> Result<()> {
    let step = Instant::now();
    let unloaded = load::unload(client, load_id, views).await?;
    eprintln!(
        "unloaded load {} ({}): {} event(s) and {} reject(s) removed, {} report key(s) to refresh",
        unloaded.load_id,
        unloaded.path,
        unloaded.removed_events,
        unloaded.removed_rejects,
        unloaded.queued_keys
    );
    if !unloaded.later_loads_with_duplicates.is_empty() {
        tracing::warn!(
            "later loads {:?} counted duplicates; events they shared with load {load_id} are gone too \
             until those files are loaded again with --force",
            unloaded.later_loads_with_duplicates
        );
    }
    summary.unloaded = Some(unloaded);
    summary
        .step_seconds
        .insert("unload".into(), step.elapsed().as_secs_f64());
    Ok(())
}

/// What the load step loads, and with which views.
struct LoadStep<'a> {
    run_id: i64,
    args: &'a LoadArgs,
    views: &'a ViewSet,
    /// Refresh after every batch of a stream (commands that refresh at the end).
    refresh_streams: bool,
}

async fn load_step(
    session: &mut WriteSession,
    load: &LoadStep<'_>,
    pinned: &PinnedSettings,
    summary: &mut RunSummary,
    progress: &ProgressBar,
) -> Result<()> {
    let LoadStep {
        run_id,
        args,
        views,
        refresh_streams,
    } = *load;
    let options = LoadOptions {
        batch_lines: args.batch_lines,
        max_line_bytes: args.max_line_bytes,
        force: args.force,
        batch_seconds: args.batch_seconds,
        personal_data: personal_data_hasher(args)?,
    };
    let step = Instant::now();
    let run = load::LoadRun {
        run_id,
        progress,
        connection: &session.connection,
    };
    let client = &mut session.client;
    let files = load::load_files(
        client,
        &run,
        &args.files,
        &pinned.settings,
        &options,
        views,
        refresh_streams,
    )
    .await;
    let loaded = files?;
    for file in loaded.files {
        summary.add_file(file);
    }
    for (part, seconds) in loaded.step_seconds {
        summary.step_seconds.insert(format!("load.{part}"), seconds);
    }
    summary
        .step_seconds
        .insert("load".into(), step.elapsed().as_secs_f64());
    Ok(())
}

/// What the refresh step refreshes, and whether a load came before it.
struct RefreshStep<'a> {
    run_id: i64,
    views: &'a ViewSet,
    full_refresh: bool,
    /// A failed refresh after a load keeps the loaded batches (exit 1, keys stay queued).
    after_load: bool,
}

async fn refresh_step(
    client: &mut Client,
    refresh: &RefreshStep<'_>,
    summary: &mut RunSummary,
    progress: &ProgressBar,
) -> Result<()> {
    let RefreshStep {
        run_id,
        views,
        full_refresh,
        after_load,
    } = *refresh;
    let step = Instant::now();
    let options = RefreshOptions { full_refresh };
    match transform::refresh(client, views, Some(run_id), options, progress).await {
        Ok(refresh) => {
            for (part, seconds) in &refresh.step_seconds {
                summary
                    .step_seconds
                    .insert(format!("refresh.{part}"), *seconds);
            }
            summary.refresh = Some(refresh);
        }
        Err(error) if after_load => {
            // The loaded batches stay committed; the stale keys stay queued for the next refresh.
            summary.refresh_error = Some(format!("{error:#}"));
            tracing::error!(
                "refresh failed, loaded events are kept and their keys stay queued: {error:#}"
            );
        }
        Err(error) => return Err(error),
    }
    summary
        .step_seconds
        .insert("refresh".into(), step.elapsed().as_secs_f64());
    if summary.refresh_error.is_none() {
        let step = Instant::now();
        crate::progress::phase(progress, "running the data tests");
        summary.add_data_tests(transform::run_data_tests_after_refresh(client, views).await?);
        summary
            .step_seconds
            .insert("data_tests".into(), step.elapsed().as_secs_f64());
    }
    Ok(())
}

/// The keyed hasher for `ip`/`email`, from `--pii-hash-key-file` or `CAMPAIGN_ELT_PII_HASH_KEY`.
fn personal_data_hasher(args: &LoadArgs) -> Result<Option<PersonalDataHasher>> {
    if let Some(path) = &args.pii_hash_key_file {
        return PersonalDataHasher::from_file(path).map(Some);
    }
    match std::env::var("CAMPAIGN_ELT_PII_HASH_KEY") {
        Ok(key) if !key.is_empty() => PersonalDataHasher::new(key.as_bytes())
            .context("CAMPAIGN_ELT_PII_HASH_KEY")
            .map(Some),
        _ => Ok(None),
    }
}

/// The settings the flags ask for (unset ones keep the stored values).
pub(super) fn requested_settings(args: &SettingsArgs) -> RequestedSettings {
    RequestedSettings {
        click_through_window_seconds: args.click_through_window_seconds,
        source_time_zone: args.source_time_zone.clone(),
        accepted_event_types: args.event_types.clone(),
    }
}
