//! Executes a refresh plan in one transaction: claims the stale keys, rebuilds or recomputes each
//! relation, records what it built and the refresh itself.

use std::io::Write;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Transaction};

use super::plan::*;
use super::views::*;
use crate::db::{database_message, quote_relation};
use crate::report::summary::{add_step_seconds, RefreshSummary, StepSeconds};
use crate::report_settings::{self, RequestedSettings};

/// Builds what changed and refreshes the rest for the stale keys, in one transaction.
pub async fn refresh(
    client: &mut Client,
    views: &ViewSet,
    run_id: Option<i64>,
    options: RefreshOptions,
) -> Result<RefreshSummary> {
    let transaction = client.transaction().await?;
    let events_read_before = events_read(&transaction).await?;
    // A settings change that no refresh has completed yet makes this one a full refresh.
    let pending: bool = transaction
        .query_opt("select full_refresh_pending from elt.settings", &[])
        .await?
        .is_some_and(|row| row.get(0));
    let managed = managed_relations(&transaction).await?;
    let most_keys_stale = if options.full_refresh || pending {
        None
    } else {
        most_keys_stale(&transaction, views, &managed).await?
    };
    let read = if let Some(reason) = &most_keys_stale {
        tracing::info!("reading the stale keys' events in one scan: {reason}");
        StaleKeysRead::ByScan
    } else {
        StaleKeysRead::ByIndex
    };
    let plan = plan_refresh_reading(views, &managed, options.full_refresh || pending, read);
    let mut step_seconds = StepSeconds::new();
    for step in &plan.steps {
        let started = Instant::now();
        execute_step(&transaction, views, step).await?;
        let part = match step.action {
            Action::Prepare => "claim_stale_keys".to_owned(),
            Action::Drop => format!("drop {}", step.relation),
            Action::Build { .. } => step.relation.clone(),
        };
        add_step_seconds(&mut step_seconds, &part, started.elapsed().as_secs_f64());
    }
    let recording = Instant::now();
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
        stale_keys_read_by_scan: most_keys_stale,
        step_seconds,
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
    match std::env::var("CAMPAIGN_ELT_SCAN_AT_STALE_SHARE") {
        Err(_) => Ok(SCAN_AT_STALE_SHARE),
        Ok(text) => match text.trim().parse::<f64>() {
            Ok(share) if share >= 0.0 && share.is_finite() => Ok(share),
            _ => bail!(
                "CAMPAIGN_ELT_SCAN_AT_STALE_SHARE={text:?}: expected a share of at least 0 \
                 (0.2 is the default; 0 always reads the stale keys' events in one scan)"
            ),
        },
    }
}

/// When the queued stale keys are at least [`SCAN_AT_STALE_SHARE`] of the rows of an
/// incremental relation (by PostgreSQL's estimate, or a count of a relation never analyzed),
/// says so; the refresh then reads the events in one scan.
async fn most_keys_stale(
    transaction: &Transaction<'_>,
    views: &ViewSet,
    managed: &[ManagedRelation],
) -> Result<Option<String>> {
    let share = scan_at_stale_share()?;
    let stale_keys: i64 = transaction
        .query_one("select count(*) from elt.stale_keys", &[])
        .await?
        .get(0);
    if stale_keys == 0 {
        return Ok(None);
    }
    for model in &views.models {
        let built = managed
            .iter()
            .any(|relation| relation.relation == model.relation);
        if model.materialized != Materialization::Incremental || !built {
            continue;
        }
        let estimate: f32 = transaction
            .query_one(
                "select reltuples from pg_catalog.pg_class where oid = to_regclass($1)",
                &[&quote_relation(&model.relation)],
            )
            .await?
            .get(0);
        let rows = if estimate >= 0.0 {
            estimate as f64
        } else {
            let count = format!("select count(*) from {}", quote_relation(&model.relation));
            transaction.query_one(&count, &[]).await?.get::<_, i64>(0) as f64
        };
        if stale_keys as f64 >= share * rows {
            return Ok(Some(format!(
                "{stale_keys} stale keys are {:.0} % of the {rows:.0} rows of {}",
                100.0 * stale_keys as f64 / rows.max(1.0),
                model.relation
            )));
        }
    }
    Ok(None)
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
         elt.refreshes, commit, then run {} data test(s)",
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
