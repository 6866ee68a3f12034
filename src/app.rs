//! Commands: wires the command line to connect → lock → migrate → load → refresh → test.

use std::io::{IsTerminal, Write};
use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_postgres::Client;

use crate::check;
use crate::cli::{Cli, Command, GenerateArgs, LoadArgs, SettingsArgs};
use crate::config::connection::{self, ConnectionSettings};
use crate::db::{self, LockOutcome};
use crate::exit::{self, LockHeld, UsageError};
use crate::generate::{self, GenerateOptions};
use crate::ingest::clean::Cleaner;
use crate::load::{self, LoadOptions};
use crate::personal_data::PersonalDataHasher;
use crate::report;
use crate::settings::{self, PinnedSettings, RequestedSettings};
use crate::summary::RunSummary;
use crate::transform::{self, RefreshOptions, ViewSet};

/// Runs the command; returns the exit code of a command that completed (0, 3 or 4).
/// Errors are returned for main to report (exit code from [`exit::code_for`]).
pub async fn execute(cli: &Cli, stdout: &mut dyn Write) -> Result<i32> {
    let global = &cli.global;
    match &cli.command {
        Command::Generate(args) => return generate_command(args, global.quiet, stdout),
        Command::Check(args) => {
            let started = Instant::now();
            let settings = requested_settings(&args.settings).apply_to(&Default::default());
            settings.validate()?;
            let cleaner = Cleaner::new(settings.accepted_event_types.clone(), settings.zone());
            let mut summary = RunSummary::new("check");
            for path in &args.files {
                summary.add_file(check::check_file(path, &cleaner, args.max_line_bytes)?);
            }
            summary.elapsed_seconds = started.elapsed().as_secs_f64();
            report_summary(cli, &summary, stdout)?;
            return Ok(exit::SUCCESS);
        }
        Command::Migrate => {
            let mut client = open(cli).await?;
            let applied = db::migrate(&mut client).await?;
            if global.json {
                serde_json::to_writer(
                    &mut *stdout,
                    &serde_json::json!({ "applied_migrations": applied }),
                )?;
                writeln!(stdout)?;
            } else if applied.is_empty() {
                eprintln!("schema is up to date");
            } else {
                eprintln!("applied {}", applied.join(", "));
            }
            return Ok(exit::SUCCESS);
        }
        Command::Status(args) => {
            let mut client = open(cli).await?;
            client.batch_execute("set time zone 'UTC'").await?;
            db::migrate(&mut client).await?;
            let status = report::status(&client, args.limit).await?;
            if global.json {
                serde_json::to_writer_pretty(&mut *stdout, &status)?;
                writeln!(stdout)?;
            } else {
                report::render_status(&status, stdout)?;
            }
            return Ok(exit::SUCCESS);
        }
        Command::Report(args) => {
            let client = open(cli).await?;
            client.batch_execute("set time zone 'UTC'").await?;
            report::print_report(&client, args, stdout).await?;
            return Ok(exit::SUCCESS);
        }
        Command::Test => {
            let client = open(cli).await?;
            let views = ViewSet::load(global.views_dir.as_deref())?;
            let failures = transform::run_data_tests(&client, &views).await?;
            let mut summary = RunSummary::new("test");
            summary.data_tests_run = views.tests.len() as u64;
            summary.data_test_failures = failures;
            summary.exit_code = if summary.data_test_failures.is_empty() {
                exit::SUCCESS
            } else {
                exit::DATA_TEST_FAILED
            };
            report_summary(cli, &summary, stdout)?;
            return Ok(summary.exit_code);
        }
        Command::PurgeRejects(args) => return crate::purge::command(cli, args, stdout).await,
        Command::SetupRoles(args) => return crate::roles::command(cli, args, stdout).await,
        Command::Refresh(args) if args.dry_run => {
            return dry_run(cli, &args.settings, args.full_refresh, stdout).await
        }
        Command::Run(args) if args.dry_run => {
            return dry_run(cli, &args.load.settings, args.full_refresh, stdout).await
        }
        Command::Load(_) | Command::Refresh(_) | Command::Run(_) | Command::Unload(_) => {}
    }

    // load, refresh and run write data: they take the run lock and are recorded in elt.runs.
    let started = Instant::now();
    let no_settings = SettingsArgs::default();
    let (command_name, load_args, refresh, full_refresh, settings_args, unload_id) =
        match &cli.command {
            Command::Load(args) => ("load", Some(args), false, false, &args.settings, None),
            Command::Refresh(args) => (
                "refresh",
                None,
                true,
                args.full_refresh,
                &args.settings,
                None,
            ),
            Command::Run(args) => (
                "run",
                Some(&args.load),
                true,
                args.full_refresh,
                &args.load.settings,
                None,
            ),
            Command::Unload(args) => (
                "unload",
                None,
                true,
                false,
                &no_settings,
                Some(args.load_id),
            ),
            _ => unreachable!("handled above"),
        };
    let views = if refresh {
        Some(ViewSet::load(global.views_dir.as_deref())?)
    } else {
        None
    };
    let (mut client, connection) = open_with_settings(cli).await?;
    if db::acquire_run_lock(&client, !global.no_wait).await? == LockOutcome::HeldByAnotherRun {
        return Err(LockHeld.into());
    }
    let step = Instant::now();
    db::migrate(&mut client).await?;
    // A bulk load that died left the events table without its indexes: finish it first.
    crate::load::finish_bulk_load(&mut client, &connection).await?;
    let migrate_seconds = step.elapsed().as_secs_f64();
    let pinned = settings::pin(&client, &requested_settings(settings_args), full_refresh).await?;
    let run_id = start_run(&client, command_name).await?;

    let mut summary = RunSummary::new(command_name);
    summary.run_id = Some(run_id);
    summary
        .step_seconds
        .insert("migrate".into(), migrate_seconds);
    let steps = Steps {
        load: load_args,
        unload: unload_id,
        views: views.as_ref(),
        full_refresh,
        connection: &connection,
    };
    let outcome = run_steps(cli, &mut client, run_id, &steps, &pinned, &mut summary).await;
    summary.elapsed_seconds = started.elapsed().as_secs_f64();
    match outcome {
        Ok(code) => {
            summary.exit_code = code;
            finish_run(
                &client,
                run_id,
                &summary,
                // Completed (exit 0, 3 or 4) unless the refresh failed after the load.
                if summary.refresh_error.is_none() {
                    "succeeded"
                } else {
                    "failed"
                },
            )
            .await?;
            report_summary(cli, &summary, stdout)?;
            Ok(code)
        }
        Err(error) => {
            summary.exit_code = exit::code_for(&error);
            if let Err(record_error) = finish_run(&client, run_id, &summary, "failed").await {
                tracing::debug!("cannot record the failed run: {record_error:#}");
            }
            Err(error)
        }
    }
}

/// The steps of a command that writes data, in the order they run.
struct Steps<'a> {
    load: Option<&'a LoadArgs>,
    unload: Option<i64>,
    views: Option<&'a ViewSet>,
    full_refresh: bool,
    /// For the second session a bulk load builds its indexes with.
    connection: &'a ConnectionSettings,
}

async fn run_steps(
    cli: &Cli,
    client: &mut Client,
    run_id: i64,
    steps: &Steps<'_>,
    pinned: &PinnedSettings,
    summary: &mut RunSummary,
) -> Result<i32> {
    let (load_args, views, full_refresh) = (steps.load, steps.views, steps.full_refresh);
    if let Some(load_id) = steps.unload {
        let step = Instant::now();
        let unloaded = load::unload(client, load_id).await?;
        eprintln!(
            "unloaded load {} ({}): {} event(s) and {} reject(s) removed, {} report key(s) to refresh",
            unloaded.load_id, unloaded.path, unloaded.removed_events, unloaded.removed_rejects, unloaded.queued_keys
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
    }
    if let Some(args) = load_args {
        let options = LoadOptions {
            batch_lines: args.batch_lines,
            max_line_bytes: args.max_line_bytes,
            force: args.force,
            batch_seconds: args.batch_seconds,
            personal_data: personal_data_hasher(args)?,
        };
        let step = Instant::now();
        let progress = progress_bar(cli);
        let run = load::LoadRun {
            run_id,
            progress: &progress,
            connection: steps.connection,
        };
        let files =
            load::load_files(client, &run, &args.files, &pinned.settings, &options, views).await;
        progress.finish_and_clear();
        for file in files? {
            summary.add_file(file);
        }
        summary
            .step_seconds
            .insert("load".into(), step.elapsed().as_secs_f64());
    }
    if let Some(views) = views {
        let options = RefreshOptions {
            full_refresh: full_refresh || pinned.changed,
        };
        let step = Instant::now();
        match transform::refresh(client, views, Some(run_id), options).await {
            Ok(refresh) => summary.refresh = Some(refresh),
            Err(error) if load_args.is_some() => {
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
            summary.data_tests_run = views.tests.len() as u64;
            summary.data_test_failures = transform::run_data_tests(client, views).await?;
            summary
                .step_seconds
                .insert("data_tests".into(), step.elapsed().as_secs_f64());
        }
    }
    if summary.refresh_error.is_some() {
        return Ok(exit::ERROR);
    }
    if let Some(limit) = load_args.and_then(|args| args.max_rejected) {
        if limit.is_exceeded(summary.totals.rejected, summary.totals.lines) {
            return Ok(exit::TOO_MANY_REJECTS);
        }
    }
    if !summary.data_test_failures.is_empty() {
        return Ok(exit::DATA_TEST_FAILED);
    }
    Ok(exit::SUCCESS)
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

/// `refresh --dry-run`, `run --dry-run`: print the refresh plan; load and change nothing.
async fn dry_run(
    cli: &Cli,
    settings: &SettingsArgs,
    full_refresh: bool,
    stdout: &mut dyn Write,
) -> Result<i32> {
    let views = ViewSet::load(cli.global.views_dir.as_deref())?;
    let mut client = open(cli).await?;
    let requested = requested_settings(settings);
    transform::dry_run(&mut client, &views, &requested, full_refresh, stdout).await?;
    Ok(exit::SUCCESS)
}

fn requested_settings(args: &SettingsArgs) -> RequestedSettings {
    RequestedSettings {
        click_through_window_seconds: args.click_through_window_seconds,
        source_time_zone: args.source_time_zone.clone(),
        accepted_event_types: args.event_types.clone(),
    }
}

async fn open(cli: &Cli) -> Result<Client> {
    Ok(open_with_settings(cli).await?.0)
}

/// Connects, and keeps the settings for the commands that open a second session.
async fn open_with_settings(cli: &Cli) -> Result<(Client, ConnectionSettings)> {
    let settings: ConnectionSettings =
        connection::resolve_from_process_env(cli.global.database_url.as_deref())?;
    tracing::debug!("connecting to {}", settings.display);
    Ok((db::connect(&settings).await?, settings))
}

async fn start_run(client: &Client, command: &str) -> Result<i64> {
    // We hold the run lock: a run still marked running was killed before it could say so.
    client
        .execute(
            "update elt.runs set status = 'interrupted', finished_at = coalesce(finished_at, clock_timestamp())
             where status = 'running'",
            &[],
        )
        .await?;
    Ok(client
        .query_one(
            "insert into elt.runs (command) values ($1) returning run_id",
            &[&command],
        )
        .await
        .context("cannot record the run")?
        .get(0))
}

async fn finish_run(
    client: &Client,
    run_id: i64,
    summary: &RunSummary,
    status: &str,
) -> Result<()> {
    client
        .execute(
            "update elt.runs set status = $2, exit_code = $3, summary = $4, finished_at = clock_timestamp()
             where run_id = $1",
            &[&run_id, &status, &summary.exit_code, &serde_json::to_value(summary)?],
        )
        .await
        .context("cannot record the end of the run")?;
    Ok(())
}

fn report_summary(cli: &Cli, summary: &RunSummary, stdout: &mut dyn Write) -> Result<()> {
    if cli.global.json {
        serde_json::to_writer_pretty(&mut *stdout, summary)?;
        writeln!(stdout)?;
    }
    if !cli.global.quiet {
        eprintln!("{}", summary.render());
    }
    Ok(())
}

fn progress_bar(cli: &Cli) -> ProgressBar {
    if cli.global.quiet || cli.global.json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("valid progress template")
        .progress_chars("=> "),
    );
    bar
}

fn generate_command(args: &GenerateArgs, quiet: bool, stdout: &mut dyn Write) -> Result<i32> {
    let options = GenerateOptions {
        lines: args.lines,
        seed: args.seed,
        start: args.start,
        events_per_hour: args.events_per_hour,
        customers: args.customers,
        users: args.users,
        dirt_rate: args.dirt_rate,
        exact_duplicate_rate: args.exact_duplicate_rate,
        conflicting_resend_rate: args.conflicting_resend_rate,
        late_rate: args.late_rate,
    };
    options
        .validate()
        .map_err(|message| UsageError(format!("generate: {message}")))?;
    match &args.output {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            let mut writer = std::io::BufWriter::with_capacity(1 << 20, file);
            let stats = if path.extension().is_some_and(|ext| ext == "gz") {
                let mut encoder =
                    flate2::write::GzEncoder::new(writer, flate2::Compression::fast());
                let stats = generate::generate(&options, &mut encoder)?;
                encoder.finish()?.flush()?;
                stats
            } else {
                let stats = generate::generate(&options, &mut writer)?;
                writer.flush()?;
                stats
            };
            if !quiet {
                eprintln!(
                    "wrote {} lines ({} bytes) to {}",
                    stats.lines,
                    stats.bytes,
                    path.display()
                );
            }
        }
        None => {
            let mut writer = std::io::BufWriter::with_capacity(1 << 20, stdout);
            generate::generate(&options, &mut writer)?;
            writer.flush()?;
        }
    }
    Ok(exit::SUCCESS)
}
