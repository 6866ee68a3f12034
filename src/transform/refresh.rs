//! Executes a refresh plan in one transaction: claims the stale keys, rebuilds or recomputes each
//! relation, records what it built and the refresh itself.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use indicatif::ProgressBar;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, GenericClient, Transaction};

use super::plan::*;
use super::views::*;
use crate::db::{database_message, quote_ident, quote_relation};
use crate::load::CREATE_CHANGED_EVENTS;
use crate::report::summary::{add_step_seconds, RefreshSummary, StepSeconds};
use crate::report_settings::{self, RequestedSettings};

/// Builds what changed and refreshes the rest for the stale keys, in one transaction; `progress`
/// shows the step that runs.
pub async fn refresh(
    client: &mut Client,
    views: &ViewSet,
    run_id: Option<i64>,
    options: RefreshOptions,
    progress: &ProgressBar,
) -> Result<RefreshSummary> {
    crate::progress::phase(progress, "refresh: planning");
    let transaction = client.transaction().await?;
    let events_read_before = events_read(&transaction).await?;
    // A settings change that no refresh has completed yet makes this one a full refresh.
    let pending: bool = transaction
        .query_opt("select full_refresh_pending from elt.settings", &[])
        .await?
        .is_some_and(|row| row.get(0));
    let managed = managed_relations(&transaction).await?;
    let read_by_scan = if options.full_refresh || pending {
        BTreeMap::new()
    } else {
        most_keys_stale(&transaction, views, &managed).await?
    };
    for reason in read_by_scan.values() {
        tracing::info!("reading the stale keys' events in one scan: {reason}");
    }
    let reads = read_by_scan
        .keys()
        .map(|relation| (relation.clone(), StaleKeysRead::ByScan))
        .collect();
    let plan = plan_refresh_reading(views, &managed, options.full_refresh || pending, &reads);
    let cause = refresh_cause(&transaction, run_id, options.full_refresh, pending).await?;
    transaction
        .execute(
            "create temporary table elt_refresh_cause on commit drop as select $1::text as cause",
            &[&cause],
        )
        .await?;
    let mut step_seconds = StepSeconds::new();
    for step in &plan.steps {
        let started = Instant::now();
        crate::progress::phase(progress, format!("refresh: {}", step.describe()));
        execute_step(&transaction, views, step).await?;
        let part = match step.action {
            Action::Prepare => "claim_stale_keys".to_owned(),
            Action::Drop => format!("drop {}", step.relation),
            Action::Build { .. } => step.relation.clone(),
            Action::ApplyDelta { .. } => format!("{} delta", step.relation),
        };
        add_step_seconds(&mut step_seconds, &part, started.elapsed().as_secs_f64());
    }
    let recording = Instant::now();
    crate::progress::phase(progress, "refresh: recording and committing");
    // The next refresh's delta queries look up earlier clicks only for new page loads at or
    // before the bound this refresh has seen.
    transaction
        .execute(
            "update elt.customer_newest_fired_at set refreshed_fired_at = newest_fired_at
             where refreshed_fired_at is distinct from newest_fired_at",
            &[],
        )
        .await
        .context("cannot record the customers' bounds this refresh has seen")?;
    transaction
        .batch_execute(FORGET_UNREFRESHED_EVENTS)
        .await
        .context("cannot empty the unrefreshed events")?;
    if plan.full_refresh {
        transaction
            .execute("update elt.settings set full_refresh_pending = false", &[])
            .await?;
    }

    let full_refresh = plan.full_refresh;
    let rebuilt = plan.rebuilt();
    let events_read = events_read(&transaction).await? - events_read_before;
    let row = transaction
        .query_one(
            "with recorded as (
                 insert into elt.refreshes (run_id, is_full_refresh, recomputed_keys, events_read, rebuilt_relations, started_at, finished_at)
                 select $1, $2, (select count(*) from elt_queued_ranges), $4, $3,
                     transaction_timestamp(), clock_timestamp()
                 returning refresh_id, recomputed_keys, events_read
             )
             select * from recorded",
            &[&run_id, &full_refresh, &rebuilt, &events_read],
        )
        .await?;
    let refresh_id: i64 = row.get(0);
    let restated: i64 = transaction
        .query_one(
            "with recorded as (
                 insert into elt.restatements
                     (refresh_id, relation, customer_id, hour, old_values, new_values, changed_rows, cause)
                 select $1, relation, customer_id, hour, old_values, new_values, changed_rows, cause
                 from elt_restatements
                 returning changed_rows
             )
             select coalesce(sum(changed_rows), 0)::bigint from recorded",
            &[&refresh_id],
        )
        .await
        .context("cannot record the refresh's restatements")?
        .get(0);
    transaction
        .execute(
            "insert into elt.refresh_keys (refresh_id, customer_id, hour)
             select $1, customer_id, starts_at from elt_queued_ranges",
            &[&refresh_id],
        )
        .await?;
    transaction
        .commit()
        .await
        .context("cannot commit the refresh")?;
    add_step_seconds(
        &mut step_seconds,
        "record",
        recording.elapsed().as_secs_f64(),
    );
    Ok(RefreshSummary {
        refresh_id,
        full_refresh,
        recomputed_keys: row.get(1),
        events_read: row.get(2),
        rebuilt_relations: rebuilt,
        dropped_relations: plan.dropped(),
        restated_rows: restated,
        stale_keys_read_by_scan: (!read_by_scan.is_empty())
            .then(|| read_by_scan.into_values().collect::<Vec<_>>().join("; ")),
        step_seconds,
    })
}

/// Why this refresh may change published report rows, for the restatements it records (a
/// rebuild of an edited model says so itself): a settings change or `--full-refresh`, else an
/// unload, else lines loaded since the last refresh.
async fn refresh_cause(
    transaction: &Transaction<'_>,
    run_id: Option<i64>,
    full_refresh: bool,
    settings_changed: bool,
) -> Result<&'static str> {
    if settings_changed {
        return Ok("settings change");
    }
    if full_refresh {
        return Ok("full refresh");
    }
    let command: Option<String> = match run_id {
        Some(run_id) => transaction
            .query_opt("select command from elt.runs where run_id = $1", &[&run_id])
            .await?
            .map(|row| row.get(0)),
        None => None,
    };
    Ok(match command.as_deref() {
        Some("unload") => "unload",
        _ => "late lines",
    })
}

/// The share of an incremental relation's rows whose keys are stale at which a refresh reads
/// the events in one scan ([`StaleKeysRead::ByScan`]) instead of each stale range through the
/// refresh index. Through the index, each event costs a heap page visit of its own (a page
/// holds the events of every customer loaded at that time), so a key costs about 5 times more
/// per event than a scan: a night on the nightly benchmark that left 95 % of the keys stale
/// took 23.4 s through the index, 4.1 s with one scan (docs/performance.md).
/// `CAMPAIGN_ELT_SCAN_AT_STALE_SHARE` overrides it (0: always scan; a large number: never).
pub const SCAN_AT_STALE_SHARE: f64 = 0.2;

/// The share from `CAMPAIGN_ELT_SCAN_AT_STALE_SHARE`, else [`SCAN_AT_STALE_SHARE`].
fn scan_at_stale_share() -> Result<f64> {
    share_from_env(
        "CAMPAIGN_ELT_SCAN_AT_STALE_SHARE",
        SCAN_AT_STALE_SHARE,
        "0 always reads the stale keys' events in one scan",
    )
}

/// A share of rows from the environment variable `name`, else `default`; `hint` says what 0
/// does.
pub(super) fn share_from_env(name: &str, default: f64, hint: &str) -> Result<f64> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(text) => match text.trim().parse::<f64>() {
            Ok(share) if share >= 0.0 && share.is_finite() => Ok(share),
            _ => bail!("{name}={text:?}: expected a share of at least 0 ({default} is the default; {hint})"),
        },
    }
}

/// The incremental relations whose stale keys to recompute are at least
/// [`SCAN_AT_STALE_SHARE`] of their rows (by PostgreSQL's estimate, or a count of a relation
/// never analyzed), each with the reason; their refresh reads the events in one scan. A model
/// with a delta recomputes only the keys its delta does not cover; one that does not read
/// `refresh_mode` (the reports, which read the hourly model by key) has no scan to choose.
async fn most_keys_stale(
    transaction: &Transaction<'_>,
    views: &ViewSet,
    managed: &[ManagedRelation],
) -> Result<BTreeMap<String, String>> {
    let share = scan_at_stale_share()?;
    let counts = transaction
        .query_one(
            "select count(*), count(*) filter (where not delta_covered) from elt.stale_keys",
            &[],
        )
        .await?;
    let (queued, not_delta_covered): (i64, i64) = (counts.get(0), counts.get(1));
    let mut by_scan = BTreeMap::new();
    for model in &views.models {
        let built = managed
            .iter()
            .any(|relation| relation.relation == model.relation);
        let stale_keys = if model.delta.is_some() {
            not_delta_covered
        } else {
            queued
        };
        // Only a model that reads `refresh_mode` reads the events differently by scan.
        let reads_refresh_mode = strip_comments_and_strings(&model.sql).contains("refresh_mode");
        if model.materialized != Materialization::Incremental
            || !built
            || stale_keys == 0
            || !reads_refresh_mode
        {
            continue;
        }
        let rows = estimated_rows(transaction, &model.relation).await?;
        if stale_keys as f64 >= share * rows {
            by_scan.insert(
                model.relation.clone(),
                format!(
                    "{stale_keys} stale keys are {:.0} % of the {rows:.0} rows of {}",
                    100.0 * stale_keys as f64 / rows.max(1.0),
                    model.relation
                ),
            );
        }
    }
    Ok(by_scan)
}

/// PostgreSQL's estimate of a relation's rows (`pg_class.reltuples`), or a count of a relation
/// never analyzed.
pub(super) async fn estimated_rows(client: &impl GenericClient, relation: &str) -> Result<f64> {
    let estimate: f32 = client
        .query_one(
            "select reltuples from pg_catalog.pg_class where oid = to_regclass($1)",
            &[&quote_relation(relation)],
        )
        .await?
        .get(0);
    if estimate >= 0.0 {
        return Ok(estimate as f64);
    }
    let count = format!("select count(*) from {}", quote_relation(relation));
    Ok(client.query_one(&count, &[]).await?.get::<_, i64>(0) as f64)
}

/// The rows of `elt.events` this session's transaction has read so far, by PostgreSQL's own
/// counters: sequential scans plus rows fetched through an index. The counters of earlier
/// transactions may not have been flushed yet, so a refresh records the difference between its
/// start and its end.
async fn events_read(transaction: &Transaction<'_>) -> Result<i64> {
    Ok(transaction
        .query_one(
            "select coalesce(sum(seq_tup_read + idx_tup_fetch), 0)::bigint
             from pg_catalog.pg_stat_xact_user_tables
             where relid = 'elt.events'::regclass",
            &[],
        )
        .await
        .context("cannot read the events table's counters")?
        .get(0))
}

/// Runs one step of a plan and keeps `elt.managed_relations` in line with it.
pub(super) async fn execute_step(
    transaction: &Transaction<'_>,
    views: &ViewSet,
    step: &PlanStep,
) -> Result<()> {
    match step.action {
        Action::Prepare => {
            for statement in &step.statements {
                transaction
                    .batch_execute(statement)
                    .await
                    .context("cannot claim the stale keys")?;
            }
        }
        Action::Drop => {
            for statement in &step.statements {
                if let Err(error) = transaction.batch_execute(statement).await {
                    let verb = if step.why == Why::Removed {
                        "drop"
                    } else {
                        "rebuild"
                    };
                    if error.code() == Some(&SqlState::DEPENDENT_OBJECTS_STILL_EXIST) {
                        let detail = error
                            .as_db_error()
                            .and_then(|db| db.detail())
                            .unwrap_or("other objects depend on it");
                        bail!(
                            "{}: cannot {verb} {} ({}): {}; campaign-elt never drops objects it did not create \
                             and never cascades: drop or move them, refresh, then re-create them",
                            step.path,
                            step.relation,
                            step.why,
                            detail.replace('\n', "; ")
                        );
                    }
                    bail!(
                        "{}: cannot drop {}: {}",
                        step.path,
                        step.relation,
                        database_message(&error)
                    );
                }
            }
            transaction
                .execute(
                    "delete from elt.managed_relations where relation_name = $1",
                    &[&step.relation],
                )
                .await?;
        }
        Action::ApplyDelta { model } => {
            let model = &views.models[model];
            let delta = model
                .delta
                .as_ref()
                .map_or(model.path.as_str(), |d| &d.path);
            read_unrefreshed_events(transaction).await?;
            for statement in &step.statements {
                transaction
                    .batch_execute(statement)
                    .await
                    .map_err(|error| anyhow!("{delta}: {}", database_message(&error)))?;
            }
            apply_delta(transaction, model, delta).await?;
        }
        Action::Build { model, rebuild } => {
            let model = &views.models[model];
            for statement in &step.statements {
                execute_model_statement(transaction, model, statement).await?;
            }
            if rebuild {
                transaction
                    .execute(
                        "insert into elt.managed_relations (relation_name, materialized, checksum, source_path)
                         values ($1, $2, $3, $4)
                         on conflict (relation_name) do update set
                             materialized = excluded.materialized, checksum = excluded.checksum,
                             source_path = excluded.source_path, built_at = clock_timestamp()",
                        &[&model.relation, &model.materialized.name(), &model.checksum, &model.path],
                    )
                    .await?;
            }
        }
    }
    Ok(())
}

/// Fills `changed_events` with the unrefreshed events (the events the batches added since the
/// last refresh), for the delta queries.
async fn read_unrefreshed_events(transaction: &Transaction<'_>) -> Result<()> {
    transaction.batch_execute(CREATE_CHANGED_EVENTS).await?;
    transaction
        .batch_execute(
            "insert into changed_events (event_id_uuid, event_id_text, event_type, customer_id,
                 user_id, fired_at)
             select event_id_uuid, event_id_text, event_type, customer_id, user_id, fired_at
             from elt.unrefreshed_events;
             analyze changed_events",
        )
        .await
        .context("cannot read the unrefreshed events")?;
    Ok(())
}

/// Adds `elt_model_delta` (the model's delta, just computed) to the model's rows — each column
/// outside the unique key is an amount to add, a key without a row is inserted — and queues the
/// delta's keys for the models downstream.
async fn apply_delta(transaction: &Transaction<'_>, model: &Model, delta_path: &str) -> Result<()> {
    let columns: Vec<String> = transaction
        .query(
            "select attname::text from pg_catalog.pg_attribute
             where attrelid = 'pg_temp.elt_model_delta'::regclass and attnum > 0 and not attisdropped
             order by attnum",
            &[],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    if let Some(missing) = model
        .unique_key
        .iter()
        .find(|column| !columns.contains(column))
    {
        bail!(
            "{delta_path}: the delta has no column {missing}; it must select the unique key ({}) \
             and an amount for each other column of {}",
            model.unique_key.join(", "),
            model.relation
        );
    }
    let quoted: Vec<String> = columns.iter().map(|column| quote_ident(column)).collect();
    let key: Vec<String> = model.unique_key.iter().map(|c| quote_ident(c)).collect();
    let additions: Vec<String> = columns
        .iter()
        .filter(|column| !model.unique_key.contains(column))
        .map(|column| {
            let column = quote_ident(column);
            format!("{column} = target.{column} + excluded.{column}")
        })
        .collect();
    let on_conflict = if additions.is_empty() {
        "do nothing".to_owned()
    } else {
        format!("do update set {}", additions.join(", "))
    };
    let upsert = format!(
        "insert into {} as target ({columns})\nselect {columns} from elt_model_delta\n\
         on conflict ({key}) {on_conflict}",
        quote_relation(&model.relation),
        columns = quoted.join(", "),
        key = key.join(", "),
    );
    transaction.batch_execute(&upsert).await.map_err(|error| {
        anyhow!(
            "{delta_path}: cannot add the delta to {}: {}",
            model.relation,
            database_message(&error)
        )
    })?;
    transaction
        .batch_execute(QUEUE_DELTA_KEYS)
        .await
        .context("cannot queue the delta's keys")?;
    Ok(())
}

/// The delta's keys join the refresh's stale ranges, so that the models downstream recompute
/// them (the keys of the new events themselves were queued by their batches).
const QUEUE_DELTA_KEYS: &str =
    "insert into elt_queued_ranges (customer_id, starts_at, ends_at, delta_covered)
select keys.customer_id, keys.hour, keys.hour + interval '1 hour', true
from (select distinct customer_id, hour from elt_model_delta) as keys
where not exists (
    select 1
    from elt_queued_ranges as queued
    where queued.customer_id = keys.customer_id and queued.starts_at = keys.hour
);
analyze elt_queued_ranges";

/// Prints on `out` the statements a refresh would execute now, in order, each after a
/// `-- <file> (<why>)` comment. Changes nothing: the plan is computed, not executed (the settings
/// check runs in a transaction that is rolled back).
pub async fn dry_run(
    client: &mut Client,
    views: &ViewSet,
    requested: &RequestedSettings,
    full_refresh: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let transaction = client.transaction().await?;
    let migrated: bool = transaction
        .query_one(
            "select to_regclass('elt.managed_relations') is not null and to_regclass('elt.settings') is not null",
            &[],
        )
        .await?
        .get(0);
    let (managed, settings_changed, stale_keys) = if migrated {
        let pinned = report_settings::pin(&transaction, requested, full_refresh).await?;
        let stale_keys: i64 = transaction
            .query_one(
                "select count(*) from (select distinct customer_id, hour from elt.stale_keys) as keys",
                &[],
            )
            .await?
            .get(0);
        (
            managed_relations(&transaction).await?,
            pinned.changed,
            stale_keys,
        )
    } else {
        eprintln!("dry run: the database is not migrated yet; a real run migrates it first");
        (Vec::new(), false, 0)
    };
    transaction.rollback().await?;

    let plan = plan_refresh(views, &managed, full_refresh || settings_changed);
    write!(out, "{}", plan.render())?;
    writeln!(
        out,
        "-- campaign-elt: record the rebuilt files in elt.managed_relations and the refresh in \
         elt.refreshes, {FORGET_UNREFRESHED_EVENTS}, commit, then run {} data test(s)",
        views.tests.len()
    )?;
    eprintln!(
        "dry run (views: {}): {} step(s), {} relation(s) to rebuild, {} to drop, {} stale key(s) queued{}; \
         nothing was loaded or changed",
        views.origin,
        plan.steps.len(),
        plan.rebuilt().len(),
        plan.dropped().len(),
        stale_keys,
        if settings_changed { ", settings change: full refresh" } else { "" }
    );
    Ok(())
}

pub(super) async fn execute_model_statement(
    transaction: &Transaction<'_>,
    model: &Model,
    statement: &str,
) -> Result<()> {
    if let Err(error) = transaction.batch_execute(statement).await {
        let location = error
            .as_db_error()
            .and_then(|db| match db.position() {
                Some(tokio_postgres::error::ErrorPosition::Original(position)) => {
                    Some(*position as usize)
                }
                _ => None,
            })
            .and_then(|position| line_in_model(statement, &model.sql, position))
            .map(|line| format!(":{line}"))
            .unwrap_or_default();
        bail!("{}{location}: {}", model.path, database_message(&error));
    }
    Ok(())
}

/// Maps a 1-based character position in `statement` to a 1-based line of the model's SQL.
pub(super) fn line_in_model(statement: &str, sql: &str, position: usize) -> Option<usize> {
    let offset = statement.find(sql)?;
    let byte = statement
        .char_indices()
        .nth(position.checked_sub(1)?)
        .map(|(index, _)| index)?;
    let within = byte.checked_sub(offset)?;
    (within <= sql.len()).then(|| sql[..within].matches('\n').count() + 1)
}
