//! The refresh plan: from the files and what the tool built before, every statement one refresh
//! executes, in order, and why — pure, shared by `--dry-run` and the real refresh.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use tokio_postgres::GenericClient;

use super::views::*;
use crate::db::{quote_ident, quote_relation};

/// What the refresh should do.
#[derive(Debug, Clone, Copy, Default)]
pub struct RefreshOptions {
    /// Rebuild every relation from all events (also when the settings changed).
    pub full_refresh: bool,
}

/// A relation the tool created earlier, as recorded in `elt.managed_relations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedRelation {
    /// `schema.name`.
    pub relation: String,
    pub materialized: Materialization,
    pub checksum: String,
    /// The file it was built from, relative to its views directory.
    pub source_path: String,
    /// The relations the tool created that read this one (views and materialized views on it),
    /// as PostgreSQL records their dependencies: they must be dropped first.
    pub read_by: BTreeSet<String>,
}

/// The relations the tool created, newest first, each with the managed relations that read it
/// (from `pg_depend`: a view's rewrite rule depends on every relation it reads). Everything one
/// refresh builds has the same `built_at`, so the order alone is no safe order to drop them in;
/// the plan orders drops by `read_by`.
pub(super) async fn managed_relations(client: &impl GenericClient) -> Result<Vec<ManagedRelation>> {
    let rows = client
        .query(
            "with managed as (
                 select relation_name, to_regclass(quote_ident(split_part(relation_name, '.', 1))
                     || '.' || quote_ident(split_part(relation_name, '.', 2))) as oid
                 from elt.managed_relations
             ),
             readers as (
                 select referenced.relation_name, array_agg(distinct reader.relation_name) as read_by
                 from managed as referenced
                 join pg_catalog.pg_depend as dependency
                     on dependency.refclassid = 'pg_catalog.pg_class'::regclass
                     and dependency.refobjid = referenced.oid
                     and dependency.classid = 'pg_catalog.pg_rewrite'::regclass
                 join pg_catalog.pg_rewrite as rule on rule.oid = dependency.objid
                 join managed as reader on reader.oid = rule.ev_class
                 where reader.oid <> referenced.oid
                 group by referenced.relation_name
             )
             select relations.relation_name, relations.materialized, relations.checksum,
                 relations.source_path, coalesce(readers.read_by, '{}')
             from elt.managed_relations as relations
             left join readers using (relation_name)
             order by relations.built_at desc, relations.relation_name desc",
            &[],
        )
        .await
        .context("cannot read elt.managed_relations")?;
    Ok(rows
        .iter()
        .map(|row| ManagedRelation {
            relation: row.get(0),
            materialized: Materialization::parse(row.get(1)).unwrap_or(Materialization::Table),
            checksum: row.get(2),
            source_path: row.get(3),
            read_by: row.get::<_, Vec<String>>(4).into_iter().collect(),
        })
        .collect())
}

/// Why a step of a refresh runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// Claims the queued stale keys as `stale_ranges`.
    StaleKeys,
    /// The file has no relation yet.
    New,
    /// The file's checksum (or materialization) differs from the one its relation was built from.
    Changed,
    /// `--full-refresh` (or a settings change) rebuilds everything.
    FullRefresh,
    /// A relation this file reads is rebuilt.
    DependsOn(String),
    /// The file is gone: its relation is dropped.
    Removed,
    /// Unchanged: kept up to date as its materialization says.
    Refresh,
    /// Unchanged, with a delta query: the events loaded since the last refresh are added.
    Delta,
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::StaleKeys => write!(f, "claim the queued stale keys as stale_ranges"),
            Why::New => write!(f, "new"),
            Why::Changed => write!(f, "changed"),
            Why::FullRefresh => write!(f, "full refresh"),
            Why::DependsOn(relation) => write!(f, "depends on {relation}"),
            Why::Removed => write!(f, "file removed"),
            Why::Refresh => write!(f, "refresh"),
            Why::Delta => write!(f, "the new events' delta"),
        }
    }
}

/// What a step does, besides running its statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Defines `stale_ranges` for this refresh.
    Prepare,
    /// Drops a relation the tool created (and forgets it).
    Drop,
    /// Builds (`rebuild`) or refreshes the model `views.models[model]`.
    Build { model: usize, rebuild: bool },
    /// Computes the delta of `views.models[model]` (the statements make `elt_model_delta`), then
    /// adds it to the model's rows and queues its keys for the models downstream.
    ApplyDelta { model: usize },
}

/// One step of a refresh: the statements run for one file.
#[derive(Debug, Clone)]
pub struct PlanStep {
    /// The file, relative to its views directory (`campaign-elt` for the tool's own statements).
    pub path: String,
    /// The relation the step works on (empty for [`Action::Prepare`]).
    pub relation: String,
    pub why: Why,
    pub action: Action,
    pub statements: Vec<String>,
}

impl PlanStep {
    /// What the step does, for the progress bar: "claiming the stale keys", "dropping x",
    /// "building x", "refreshing x" (an incremental relation: its stale keys), "adding the new
    /// events to x".
    pub fn describe(&self) -> String {
        let relation = &self.relation;
        match self.action {
            Action::Prepare => "claiming the stale keys".to_owned(),
            Action::Drop => format!("dropping {relation}"),
            Action::Build { rebuild: true, .. } => format!("building {relation}"),
            Action::Build { rebuild: false, .. } => format!("refreshing {relation}"),
            Action::ApplyDelta { .. } => format!("adding the new events to {relation}"),
        }
    }
}

/// Everything one refresh executes, in order. Computed by [`plan_refresh`] from the files and the
/// relations recorded in the database; executed by [`refresh`], printed by [`dry_run`].
#[derive(Debug, Clone)]
pub struct RefreshPlan {
    pub full_refresh: bool,
    pub steps: Vec<PlanStep>,
}

impl RefreshPlan {
    /// Relations built whole by this plan, in build order.
    pub fn rebuilt(&self) -> Vec<String> {
        self.steps
            .iter()
            .filter(|step| matches!(step.action, Action::Build { rebuild: true, .. }))
            .map(|step| step.relation.clone())
            .collect()
    }

    /// Relations dropped for good (their file is gone).
    pub fn dropped(&self) -> Vec<String> {
        self.steps
            .iter()
            .filter(|step| step.action == Action::Drop && step.why == Why::Removed)
            .map(|step| step.relation.clone())
            .collect()
    }

    /// The plan as SQL text: every statement after a `-- <file> (<why>)` comment, and what
    /// campaign-elt does itself between them as `-- campaign-elt:` comments.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for step in &self.steps {
            let delta = matches!(step.action, Action::ApplyDelta { .. });
            if delta {
                out.push_str(
                    "-- campaign-elt: copy elt.unrefreshed_events into changed_events\n\n",
                );
            }
            for statement in &step.statements {
                out.push_str(&format!(
                    "-- {} ({})\n{};\n\n",
                    step.path, step.why, statement
                ));
            }
            if delta {
                out.push_str(&format!(
                    "-- campaign-elt: add elt_model_delta to {} (insert its keys; add each other \
                     column to the row's), and queue its keys for the relations downstream\n\n",
                    step.relation
                ));
            }
        }
        out
    }
}

/// Decides what a refresh does: drop the relations of removed files (newest first), drop what
/// must be rebuilt (new or changed files and everything downstream of them; dependents first),
/// then build or refresh every model in dependency order. Pure: the same plan is executed by
/// [`refresh`] and printed by [`dry_run`].
pub fn plan_refresh(
    views: &ViewSet,
    managed: &[ManagedRelation],
    full_refresh: bool,
) -> RefreshPlan {
    plan_refresh_reading(views, managed, full_refresh, &BTreeMap::new())
}

/// How the incremental models read the events of the stale keys they recompute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleKeysRead {
    /// Each stale range through the refresh index (`refresh_mode.is_full_refresh` false).
    ByIndex,
    /// Every event in one scan, as a whole build does (`refresh_mode.is_full_refresh` true),
    /// keeping only the stale keys' rows: cheaper once the stale keys are a large share of the
    /// rows (see `SCAN_AT_STALE_SHARE` in refresh.rs). Nothing is dropped, so readers of the
    /// relations are not blocked.
    ByScan,
}

/// The statements that define `stale_ranges` and `refresh_mode` for refreshing (not
/// rebuilding) one incremental model. A model with a delta recomputes only the keys its delta
/// does not cover (those an unload queued, say); the others recompute every queued key.
fn refresh_scope(model: &Model, read: StaleKeysRead) -> [String; 2] {
    let ranges = if model.delta.is_some() {
        "elt_queued_ranges where not delta_covered"
    } else {
        "elt_queued_ranges"
    };
    let full = read == StaleKeysRead::ByScan;
    [
        format!("create or replace temporary view stale_ranges as select * from {ranges}"),
        format!(
            "create or replace temporary view refresh_mode as select {full} as is_full_refresh"
        ),
    ]
}

/// [`plan_refresh`], with each incremental model reading its stale keys as `reads` says (by
/// index where it says nothing).
pub fn plan_refresh_reading(
    views: &ViewSet,
    managed: &[ManagedRelation],
    full_refresh: bool,
    reads: &BTreeMap<String, StaleKeysRead>,
) -> RefreshPlan {
    let recorded: BTreeMap<&str, &ManagedRelation> = managed
        .iter()
        .map(|relation| (relation.relation.as_str(), relation))
        .collect();
    let mut rebuild: BTreeMap<&str, Why> = BTreeMap::new();
    for model in &views.models {
        let why = match recorded.get(model.relation.as_str()) {
            None => Some(Why::New),
            Some(relation)
                if relation.checksum != model.checksum
                    || relation.materialized != model.materialized =>
            {
                Some(Why::Changed)
            }
            Some(_) if full_refresh => Some(Why::FullRefresh),
            Some(_) => model
                .depends_on
                .iter()
                .find(|dep| rebuild.contains_key(dep.as_str()))
                .map(|dep| Why::DependsOn(dep.clone())),
        };
        if let Some(why) = why {
            rebuild.insert(&model.relation, why);
        }
    }

    let rebuilds_incremental = views.models.iter().any(|model| {
        model.materialized == Materialization::Incremental
            && rebuild.contains_key(model.relation.as_str())
    });
    let mut prepare: Vec<String> = PREPARE_STALE_RANGES.iter().map(|s| s.to_string()).collect();
    if rebuilds_incremental {
        prepare.extend(PREPARE_ALL_RANGES.iter().map(|s| s.to_string()));
    }
    prepare.extend(INCREMENTAL_REFRESH_SCOPE.iter().map(|s| s.to_string()));
    prepare.push(PREPARE_RESTATEMENTS.to_owned());
    let mut steps = vec![PlanStep {
        path: "campaign-elt".into(),
        relation: String::new(),
        why: Why::StaleKeys,
        action: Action::Prepare,
        statements: prepare,
    }];
    let drop = |relation: &ManagedRelation, path: &str, why: Why| PlanStep {
        path: path.to_owned(),
        relation: relation.relation.clone(),
        why,
        action: Action::Drop,
        statements: vec![format!(
            "drop {} if exists {}",
            relation.materialized.drop_keyword(),
            quote_relation(&relation.relation)
        )],
    };
    let present: BTreeSet<&str> = views.models.iter().map(|m| m.relation.as_str()).collect();
    let mut drops = Vec::new();
    for relation in managed {
        if !present.contains(relation.relation.as_str()) {
            drops.push(drop(relation, &relation.source_path, Why::Removed));
        }
    }
    for model in views.models.iter().rev() {
        if let (Some(why), Some(relation)) = (
            rebuild.get(model.relation.as_str()),
            recorded.get(model.relation.as_str()),
        ) {
            let mut step = drop(relation, &model.path, why.clone());
            if model.records_restatements && relation.materialized == Materialization::Incremental {
                // The published rows, kept until the new relation is built and compared.
                step.statements
                    .splice(0..0, keep_published_rows(model, None));
            }
            drops.push(step);
        }
    }
    steps.extend(readers_first(drops, &recorded));
    for (index, model) in views.models.iter().enumerate() {
        let why = rebuild.get(model.relation.as_str());
        if let (Some(delta), None) = (&model.delta, why) {
            steps.push(PlanStep {
                path: delta.path.clone(),
                relation: model.relation.clone(),
                why: Why::Delta,
                action: Action::ApplyDelta { model: index },
                statements: delta_statements(&delta.sql),
            });
        }
        let read = reads
            .get(&model.relation)
            .copied()
            .unwrap_or(StaleKeysRead::ByIndex);
        let mut statements = model_statements(model, why.is_some(), read);
        if statements.is_empty() {
            continue; // an unchanged view: nothing to do
        }
        let was_published = recorded
            .get(model.relation.as_str())
            .is_some_and(|relation| relation.materialized == Materialization::Incremental);
        if let (Some(why), true, true) = (why, was_published, model.records_restatements) {
            let cause = match why {
                Why::Changed | Why::DependsOn(_) => "'edited model'",
                _ => REFRESH_CAUSE,
            };
            statements.extend(record_restatements(
                model,
                cause,
                Some(SUMMARIZE_RESTATEMENTS_ABOVE),
            ));
        }
        steps.push(PlanStep {
            path: model.path.clone(),
            relation: model.relation.clone(),
            why: why.cloned().unwrap_or(Why::Refresh),
            action: Action::Build {
                model: index,
                rebuild: why.is_some(),
            },
            statements,
        });
    }
    RefreshPlan {
        full_refresh,
        steps,
    }
}

/// The drops in an order PostgreSQL accepts: each relation after every relation being dropped
/// that reads it (as recorded when it was built), else in the given order.
fn readers_first(
    mut drops: Vec<PlanStep>,
    recorded: &BTreeMap<&str, &ManagedRelation>,
) -> Vec<PlanStep> {
    let mut ordered = Vec::with_capacity(drops.len());
    while !drops.is_empty() {
        let read_by_none_left = |step: &PlanStep| {
            recorded.get(step.relation.as_str()).is_none_or(|relation| {
                !drops
                    .iter()
                    .any(|other| relation.read_by.contains(&other.relation))
            })
        };
        // A cycle cannot happen (a view cannot read what reads it); drop in order if it did.
        let next = drops.iter().position(read_by_none_left).unwrap_or(0);
        ordered.push(drops.remove(next));
    }
    ordered
}

/// The statements that build or refresh one model.
pub(super) fn model_statements(model: &Model, rebuild: bool, read: StaleKeysRead) -> Vec<String> {
    let relation = quote_relation(&model.relation);
    let sql = &model.sql;
    let unique_index = |statements: &mut Vec<String>| {
        if !model.unique_key.is_empty() {
            let columns: Vec<String> = model.unique_key.iter().map(|c| quote_ident(c)).collect();
            let index_name =
                quote_ident(&format!("{}_unique_key", model.relation.replace('.', "_")));
            statements.push(format!(
                "create unique index {index_name} on {relation} ({})",
                columns.join(", ")
            ));
        }
    };
    let mut statements = Vec::new();
    if rebuild {
        let schema = model.relation.split('.').next().unwrap_or("public");
        statements.push(format!(
            "create schema if not exists {}",
            quote_ident(schema)
        ));
    }
    match (model.materialized, rebuild) {
        (Materialization::View, true) => {
            statements.push(format!("create view {relation} as\n{sql}"))
        }
        (Materialization::View, false) => {}
        (Materialization::Table, true) => {
            statements.push(format!("create table {relation} as\n{sql}"));
            unique_index(&mut statements);
        }
        (Materialization::Table, false) => {
            statements.push(format!("truncate {relation}"));
            statements.push(format!("insert into {relation}\n{sql}"));
        }
        (Materialization::Incremental, true) => {
            statements.extend(FULL_REFRESH_SCOPE.iter().map(|s| s.to_string()));
            statements.push(format!("create table {relation} as\n{sql}"));
            unique_index(&mut statements);
        }
        (Materialization::Incremental, false) => {
            statements.extend(refresh_scope(model, read));
            if model.records_restatements {
                statements.extend(keep_published_rows(model, Some("stale_ranges")));
            }
            statements.push(format!(
                "delete from {relation} as target using stale_ranges \
                 where target.customer_id = stale_ranges.customer_id \
                 and target.hour >= stale_ranges.starts_at and target.hour < stale_ranges.ends_at"
            ));
            statements.push(format!(
                "insert into {relation}\nselect model.* from (\n{sql}\n) as model \
                 where exists (select 1 from stale_ranges where stale_ranges.customer_id = model.customer_id \
                 and model.hour >= stale_ranges.starts_at and model.hour < stale_ranges.ends_at)"
            ));
            if model.records_restatements {
                statements.extend(record_restatements(model, REFRESH_CAUSE, None));
            }
        }
        (Materialization::MaterializedView, true) => {
            statements.push(format!("create materialized view {relation} as\n{sql}"));
            unique_index(&mut statements);
        }
        (Materialization::MaterializedView, false) => {
            if model.unique_key.is_empty() {
                statements.push(format!("refresh materialized view {relation}"));
            } else {
                statements.push(format!("refresh materialized view concurrently {relation}"));
            }
        }
    }
    statements
}

/// What an incremental model reads while it is built whole: every range, in full-refresh mode.
pub(super) const FULL_REFRESH_SCOPE: [&str; 2] = [
    "create or replace temporary view stale_ranges as select * from elt_all_ranges",
    "create or replace temporary view refresh_mode as select true as is_full_refresh",
];

/// What the models read by default once the stale keys are claimed: the claimed stale ranges,
/// each through the index. Every incremental model's refresh sets its own scope
/// ([`refresh_scope`]).
pub(super) const INCREMENTAL_REFRESH_SCOPE: [&str; 2] = [
    "create or replace temporary view stale_ranges as select * from elt_queued_ranges",
    "create or replace temporary view refresh_mode as select false as is_full_refresh",
];

/// Prepares the stale key ranges of this refresh: claims the durable queue (restored if the
/// refresh rolls back), locks the unrefreshed events against writers until it commits (it
/// empties them then: [`FORGET_UNREFRESHED_EVENTS`]) and defines `stale_ranges (customer_id,
/// starts_at, ends_at, delta_covered)` and `refresh_mode (is_full_refresh)` (a constant, so that
/// PostgreSQL plans only the branch of a model that applies).
pub(super) const PREPARE_STALE_RANGES: [&str; 3] = [
    "create temporary table elt_queued_ranges on commit drop as
with claimed as (
    delete from elt.stale_keys returning customer_id, hour, delta_covered
)
select customer_id, hour as starts_at, hour + interval '1 hour' as ends_at, delta_covered
from claimed",
    "analyze elt_queued_ranges",
    "lock table elt.unrefreshed_events in exclusive mode",
];

/// This refresh's restatements until it records them with its refresh id (see `refresh`).
pub(super) const PREPARE_RESTATEMENTS: &str = "create temporary table elt_restatements (
    relation text not null,
    customer_id bigint,
    hour timestamptz,
    old_values jsonb,
    new_values jsonb,
    changed_rows bigint not null default 1,
    cause text not null
) on commit drop";

/// Why this refresh changes published rows, unless a model was edited: `refresh` defines
/// `elt_refresh_cause` before the plan runs (late lines, unload, settings change, full refresh).
pub(super) const REFRESH_CAUSE: &str = "(select cause from elt_refresh_cause)";

/// Above this many changed rows of one relation, a rebuild records one summary row.
pub const SUMMARIZE_RESTATEMENTS_ABOVE: i64 = 10_000;

/// The temporary table that holds a relation's published rows during its step.
fn published_rows_table(model: &Model) -> String {
    quote_ident(&format!(
        "elt_published_{}",
        model.relation.replace('.', "_")
    ))
}

/// Keeps the rows of `model` that its step may change: those of `ranges` (the stale ranges),
/// or every row before a rebuild.
fn keep_published_rows(model: &Model, ranges: Option<&str>) -> Vec<String> {
    let kept = published_rows_table(model);
    let relation = quote_relation(&model.relation);
    let rows = match ranges {
        Some(ranges) => format!(
            "select target.* from {relation} as target inner join {ranges} \
             on target.customer_id = {ranges}.customer_id \
             and target.hour >= {ranges}.starts_at and target.hour < {ranges}.ends_at"
        ),
        None => format!("select * from {relation}"),
    };
    vec![
        format!("drop table if exists {kept}"),
        format!("create temporary table {kept} on commit drop as {rows}"),
    ]
}

/// Records the kept rows that the step changed or removed (a first appearance is no
/// restatement): each, or one summary row above `summarize_above` changed rows.
fn record_restatements(model: &Model, cause: &str, summarize_above: Option<i64>) -> Vec<String> {
    let kept = published_rows_table(model);
    let relation = quote_relation(&model.relation);
    let name = model.relation.replace('\'', "''");
    let changed = format!(
        "select '{name}' as relation, published.customer_id, published.hour,
    to_jsonb(published) - 'customer_id' - 'hour' as old_values, now_row.new_values
from {kept} as published
left join lateral (
    select to_jsonb(current_row) - 'customer_id' - 'hour' as new_values
    from {relation} as current_row
    where current_row.customer_id = published.customer_id and current_row.hour = published.hour
) as now_row on true
where now_row.new_values is distinct from to_jsonb(published) - 'customer_id' - 'hour'"
    );
    let mut statements = match summarize_above {
        None => vec![format!(
            "insert into elt_restatements (relation, customer_id, hour, old_values, new_values, cause)
select changed.*, {cause} from ({changed}) as changed"
        )],
        Some(limit) => vec![
            "drop table if exists elt_changed_rows".to_owned(),
            format!("create temporary table elt_changed_rows on commit drop as {changed}"),
            format!(
                "insert into elt_restatements (relation, customer_id, hour, old_values, new_values, cause)
select changed.*, {cause} from elt_changed_rows as changed
where (select count(*) from elt_changed_rows) <= {limit}"
            ),
            format!(
                "insert into elt_restatements (relation, changed_rows, cause)
select '{name}', count(*), {cause} from elt_changed_rows having count(*) > {limit}"
            ),
        ],
    };
    statements.push(format!("drop table {kept}"));
    statements
}

/// The last statement of every refresh plan: the unrefreshed events are in the models now (added
/// by their deltas, or read by a rebuild), so the queue is emptied — in the refresh's
/// transaction, so that a refresh that rolls back leaves them for the next one.
pub(super) const FORGET_UNREFRESHED_EVENTS: &str = "truncate elt.unrefreshed_events";

/// Every customer's whole time range, for the incremental models a refresh rebuilds. It reads
/// the customers of `elt.events`, so a refresh prepares it only when it rebuilds one: a nightly
/// refresh that rebuilds nothing never scans the events table for it.
pub(super) const PREPARE_ALL_RANGES: [&str; 2] = [
    "create temporary table elt_all_ranges on commit drop as
select customer_id, '-infinity'::timestamptz as starts_at, 'infinity'::timestamptz as ends_at,
    false as delta_covered
from (select distinct customer_id from elt.events) as customers",
    "analyze elt_all_ranges",
];

/// The statements that compute a model's delta as `elt_model_delta` from `changed_events`
/// (which the refresh fills with the unrefreshed events first).
fn delta_statements(sql: &str) -> Vec<String> {
    vec![
        "drop table if exists elt_model_delta".to_owned(),
        format!("create temporary table elt_model_delta on commit drop as\n{sql}"),
        "analyze elt_model_delta".to_owned(),
    ]
}
