//! Transform: runs the analysts' SQL in `views/` inside PostgreSQL — builds, refreshes and tests it.
//!
//! Each `views/<schema>/<name>.sql` defines the relation `<schema>.<name>`; a header line
//! `-- materialized: view | table | incremental | materialized view` says how it is kept.
//! `views/tests/<name>.sql` are data tests: queries that return offending rows.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use include_dir::{include_dir, Dir};
use std::io::Write;

use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, GenericClient, Transaction};

use crate::db::{quote_ident, quote_relation};
use crate::settings::{self, RequestedSettings};
use crate::summary::{DataTestFailure, RefreshSummary};

/// The report definitions built into the binary (the repository's `views/`).
static BUILT_IN_VIEWS: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/views");

/// Directory of data tests inside a views directory.
const TESTS_DIRECTORY: &str = "tests";
/// Columns every incremental relation is keyed by.
const INCREMENTAL_KEY: [&str; 2] = ["customer_id", "hour"];

/// How a view file is kept in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Materialization {
    View,
    Table,
    Incremental,
    MaterializedView,
}

impl Materialization {
    pub fn name(self) -> &'static str {
        match self {
            Materialization::View => "view",
            Materialization::Table => "table",
            Materialization::Incremental => "incremental",
            Materialization::MaterializedView => "materialized view",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        match value
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_ascii_lowercase()
            .as_str()
        {
            "view" => Some(Materialization::View),
            "table" => Some(Materialization::Table),
            "incremental" => Some(Materialization::Incremental),
            "materialized view" | "materialized_view" => Some(Materialization::MaterializedView),
            _ => None,
        }
    }

    fn drop_keyword(self) -> &'static str {
        match self {
            Materialization::View => "view",
            Materialization::Table | Materialization::Incremental => "table",
            Materialization::MaterializedView => "materialized view",
        }
    }
}

/// One relation defined by a file.
#[derive(Debug, Clone)]
pub struct Model {
    /// `schema.name`, lowercase.
    pub relation: String,
    /// Path relative to the views directory, e.g. `reports/page_loads.sql`.
    pub path: String,
    pub sql: String,
    pub materialized: Materialization,
    /// Columns of the unique index (`-- unique_key: a, b`); incremental models default to
    /// `customer_id, hour`.
    pub unique_key: Vec<String>,
    pub checksum: String,
    /// Other models this one reads, by relation name.
    pub depends_on: BTreeSet<String>,
}

/// A data test: a query whose rows are offences.
#[derive(Debug, Clone)]
pub struct DataTest {
    pub name: String,
    pub path: String,
    pub sql: String,
}

/// The models of a views directory in dependency order, and its data tests.
#[derive(Debug, Clone)]
pub struct ViewSet {
    /// Where the files came from (`built-in` or a directory).
    pub origin: String,
    pub models: Vec<Model>,
    pub tests: Vec<DataTest>,
}

impl ViewSet {
    /// Reads `dir`, or the built-in set when `dir` is `None`.
    pub fn load(dir: Option<&Path>) -> Result<ViewSet> {
        let files = match dir {
            Some(dir) => read_directory(dir)?,
            None => {
                let mut files = Vec::new();
                collect_embedded(&BUILT_IN_VIEWS, &mut files);
                files
            }
        };
        let origin = dir.map_or_else(|| "built-in".to_owned(), |dir| dir.display().to_string());
        ViewSet::from_files(origin, files)
    }

    /// Builds a view set from `(relative path, contents)` pairs.
    pub fn from_files(origin: String, mut files: Vec<(String, String)>) -> Result<ViewSet> {
        files.sort();
        let mut models = Vec::new();
        let mut tests = Vec::new();
        for (path, sql) in files {
            let parts: Vec<&str> = path.trim_end_matches(".sql").split('/').collect();
            match parts.as_slice() {
                [TESTS_DIRECTORY, name] => {
                    check_identifier(name, &path)?;
                    tests.push(DataTest { name: name.to_string(), path: path.clone(), sql });
                }
                [schema, name] => {
                    check_identifier(schema, &path)?;
                    check_identifier(name, &path)?;
                    models.push(parse_model(&format!("{schema}.{name}"), &path, sql)?);
                }
                _ => bail!(
                    "{path}: a view file must be <schema>/<relation>.sql or {TESTS_DIRECTORY}/<test>.sql"
                ),
            }
        }
        let names: BTreeSet<String> = models.iter().map(|model| model.relation.clone()).collect();
        for model in &mut models {
            let code = strip_comments_and_strings(&model.sql).to_ascii_lowercase();
            model.depends_on = names
                .iter()
                .filter(|name| **name != model.relation && references(&code, name))
                .cloned()
                .collect();
        }
        let models = topological_order(models)?;
        Ok(ViewSet {
            origin,
            models,
            tests,
        })
    }
}

fn read_directory(dir: &Path) -> Result<Vec<(String, String)>> {
    let mut files = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let absolute = dir.join(&relative);
        let entries = std::fs::read_dir(&absolute)
            .with_context(|| format!("cannot read views directory {}", absolute.display()))?;
        for entry in entries {
            let entry = entry?;
            let relative = relative.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                pending.push(relative);
            } else if relative.extension().is_some_and(|ext| ext == "sql") {
                let text = std::fs::read_to_string(dir.join(&relative))
                    .with_context(|| format!("cannot read {}", dir.join(&relative).display()))?;
                files.push((relative.to_string_lossy().replace('\\', "/"), text));
            }
        }
    }
    Ok(files)
}

fn collect_embedded(dir: &Dir<'_>, files: &mut Vec<(String, String)>) {
    for file in dir.files() {
        if file.path().extension().is_some_and(|ext| ext == "sql") {
            if let Some(text) = file.contents_utf8() {
                files.push((file.path().to_string_lossy().into_owned(), text.to_owned()));
            }
        }
    }
    for sub in dir.dirs() {
        collect_embedded(sub, files);
    }
}

fn check_identifier(name: &str, path: &str) -> Result<()> {
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        bail!("{path}: {name:?} is not a plain lowercase SQL name ([a-z_][a-z0-9_]*)");
    }
    Ok(())
}

fn parse_model(relation: &str, path: &str, sql: String) -> Result<Model> {
    let mut materialized = None;
    let mut unique_key = None;
    for line in sql.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let Some(comment) = trimmed.strip_prefix("--") else {
            break;
        };
        if let Some((key, value)) = comment.split_once(':') {
            match key.trim().to_ascii_lowercase().as_str() {
                "materialized" => {
                    materialized = Some(Materialization::parse(value).ok_or_else(|| {
                        anyhow!(
                            "{path}: unknown materialization {:?} (use view, table, incremental or materialized view)",
                            value.trim()
                        )
                    })?)
                }
                "unique_key" => {
                    unique_key = Some(
                        value
                            .split(',')
                            .map(|column| column.trim().to_ascii_lowercase())
                            .filter(|column| !column.is_empty())
                            .collect::<Vec<_>>(),
                    )
                }
                _ => {}
            }
        }
    }
    let materialized = materialized
        .ok_or_else(|| anyhow!("{path}: missing the header line `-- materialized: view|table|incremental|materialized view`"))?;
    let unique_key = match (materialized, unique_key) {
        (_, Some(key)) => key,
        (Materialization::Incremental, None) => {
            INCREMENTAL_KEY.iter().map(|c| c.to_string()).collect()
        }
        (_, None) => Vec::new(),
    };
    if materialized == Materialization::Incremental
        && !INCREMENTAL_KEY
            .iter()
            .all(|c| unique_key.iter().any(|k| k == c))
    {
        bail!("{path}: an incremental relation is keyed by customer_id and hour; its unique_key must include both");
    }
    let body = sql.trim_end().trim_end_matches(';').to_owned();
    let checksum = blake3::hash(sql.as_bytes()).to_hex()[..32].to_owned();
    Ok(Model {
        relation: relation.to_owned(),
        path: path.to_owned(),
        sql: body,
        materialized,
        unique_key,
        checksum,
        depends_on: BTreeSet::new(),
    })
}

/// Removes `--` and `/* */` comments and the contents of string literals, so that names in them
/// do not count as references.
fn strip_comments_and_strings(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '-' if chars.peek() == Some(&'-') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut previous = ' ';
                for c in chars.by_ref() {
                    if previous == '*' && c == '/' {
                        break;
                    }
                    previous = c;
                }
                out.push(' ');
            }
            '\'' => {
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                }
                out.push_str("''");
            }
            _ => out.push(c),
        }
    }
    out
}

/// Whether `code` mentions `schema.name` as a whole word (optionally with quoted parts).
fn references(code: &str, relation: &str) -> bool {
    let (schema, name) = relation.split_once('.').unwrap_or(("", relation));
    let spellings = [
        format!("{schema}.{name}"),
        format!("\"{schema}\".\"{name}\""),
        format!("\"{schema}\".{name}"),
        format!("{schema}.\"{name}\""),
    ];
    spellings.iter().any(|spelling| {
        code.match_indices(spelling.as_str()).any(|(start, _)| {
            let before = code[..start].chars().next_back();
            let after = code[start + spelling.len()..].chars().next();
            let is_word = |c: Option<char>| {
                c.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.' || c == '"')
            };
            !is_word(before) && !is_word(after)
        })
    })
}

/// Orders models so that each comes after what it depends on (ties by path); fails on a cycle.
fn topological_order(models: Vec<Model>) -> Result<Vec<Model>> {
    let mut remaining: BTreeMap<String, Model> = models
        .into_iter()
        .map(|m| (m.relation.clone(), m))
        .collect();
    let mut ordered: Vec<Model> = Vec::with_capacity(remaining.len());
    while !remaining.is_empty() {
        let ready: Vec<String> = remaining
            .values()
            .filter(|model| {
                model
                    .depends_on
                    .iter()
                    .all(|dep| !remaining.contains_key(dep))
            })
            .map(|model| model.relation.clone())
            .collect();
        if ready.is_empty() {
            let cycle: Vec<&str> = remaining
                .values()
                .map(|model| model.path.as_str())
                .collect();
            bail!(
                "the view files depend on each other in a cycle: {}",
                cycle.join(", ")
            );
        }
        for relation in ready {
            ordered.push(remaining.remove(&relation).expect("ready model is present"));
        }
    }
    Ok(ordered)
}

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
}

/// The relations the tool created, newest first: the reverse of an order they could be built in
/// (a relation is always rebuilt after what it reads), so a safe order to drop them in.
async fn managed_relations(client: &impl GenericClient) -> Result<Vec<ManagedRelation>> {
    let rows = client
        .query(
            "select relation_name, materialized, checksum, source_path from elt.managed_relations
             order by built_at desc, relation_name desc",
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

    /// The plan as SQL text: every statement after a `-- <file> (<why>)` comment.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for step in &self.steps {
            for statement in &step.statements {
                out.push_str(&format!(
                    "-- {} ({})\n{};\n\n",
                    step.path, step.why, statement
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

    let mut steps = vec![PlanStep {
        path: "campaign-elt".into(),
        relation: String::new(),
        why: Why::StaleKeys,
        action: Action::Prepare,
        statements: PREPARE_STALE_RANGES.iter().map(|s| s.to_string()).collect(),
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
    for relation in managed {
        if !present.contains(relation.relation.as_str()) {
            steps.push(drop(relation, &relation.source_path, Why::Removed));
        }
    }
    for model in views.models.iter().rev() {
        if let (Some(why), Some(relation)) = (
            rebuild.get(model.relation.as_str()),
            recorded.get(model.relation.as_str()),
        ) {
            steps.push(drop(relation, &model.path, why.clone()));
        }
    }
    for (index, model) in views.models.iter().enumerate() {
        let why = rebuild.get(model.relation.as_str());
        let statements = model_statements(model, why.is_some());
        if statements.is_empty() {
            continue; // an unchanged view: nothing to do
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

/// The statements that build or refresh one model.
fn model_statements(model: &Model, rebuild: bool) -> Vec<String> {
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
            statements.extend(INCREMENTAL_REFRESH_SCOPE.iter().map(|s| s.to_string()));
        }
        (Materialization::Incremental, false) => {
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
const FULL_REFRESH_SCOPE: [&str; 2] = [
    "create or replace temporary view stale_ranges as select * from elt_all_ranges",
    "create or replace temporary view refresh_mode as select true as is_full_refresh",
];

/// What an incremental model reads while it is refreshed: the claimed stale ranges.
const INCREMENTAL_REFRESH_SCOPE: [&str; 2] = [
    "create or replace temporary view stale_ranges as select * from elt_queued_ranges",
    "create or replace temporary view refresh_mode as select false as is_full_refresh",
];

/// Prepares the stale key ranges of this refresh: claims the durable queue (restored if the
/// refresh rolls back) and defines `stale_ranges (customer_id, starts_at, ends_at)` and
/// `refresh_mode (is_full_refresh)` (a constant, so that PostgreSQL plans only the branch of a
/// model that applies).
const PREPARE_STALE_RANGES: [&str; 6] = [
    "create temporary table elt_queued_ranges on commit drop as
with claimed as (
    delete from elt.stale_keys returning customer_id, hour
)
select distinct customer_id, hour as starts_at, hour + interval '1 hour' as ends_at
from claimed",
    "analyze elt_queued_ranges",
    "create temporary table elt_all_ranges on commit drop as
select customer_id, '-infinity'::timestamptz as starts_at, 'infinity'::timestamptz as ends_at
from (select distinct customer_id from elt.events) as customers",
    "analyze elt_all_ranges",
    INCREMENTAL_REFRESH_SCOPE[0],
    INCREMENTAL_REFRESH_SCOPE[1],
];

/// Builds what changed and refreshes the rest for the stale keys, in one transaction.
pub async fn refresh(
    client: &mut Client,
    views: &ViewSet,
    run_id: Option<i64>,
    options: RefreshOptions,
) -> Result<RefreshSummary> {
    let transaction = client.transaction().await?;
    // A settings change that no refresh has completed yet makes this one a full refresh.
    let pending: bool = transaction
        .query_opt("select full_refresh_pending from elt.settings", &[])
        .await?
        .is_some_and(|row| row.get(0));
    let managed = managed_relations(&transaction).await?;
    let plan = plan_refresh(views, &managed, options.full_refresh || pending);
    for step in &plan.steps {
        execute_step(&transaction, views, step).await?;
    }
    if plan.full_refresh {
        transaction
            .execute("update elt.settings set full_refresh_pending = false", &[])
            .await?;
    }

    let full_refresh = plan.full_refresh;
    let rebuilt = plan.rebuilt();
    let row = transaction
        .query_one(
            "with recorded as (
                 insert into elt.refreshes (run_id, is_full_refresh, recomputed_keys, events_read, rebuilt_relations, finished_at)
                 select $1, $2,
                     (select count(*) from elt_queued_ranges),
                     case when $2 then (select count(*) from elt.events)
                          else (select count(*) from elt_queued_ranges as ranges
                                inner join elt.events
                                    on events.customer_id = ranges.customer_id
                                    and events.fired_at >= ranges.starts_at
                                    and events.fired_at < ranges.ends_at)
                     end,
                     $3, clock_timestamp()
                 returning refresh_id, recomputed_keys, events_read
             )
             select * from recorded",
            &[&run_id, &full_refresh, &rebuilt],
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
    Ok(RefreshSummary {
        refresh_id,
        full_refresh,
        recomputed_keys: row.get(1),
        events_read: row.get(2),
        rebuilt_relations: rebuilt,
        dropped_relations: plan.dropped(),
    })
}

/// Runs one step of a plan and keeps `elt.managed_relations` in line with it.
async fn execute_step(
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
        let pinned = settings::pin(&transaction, requested, full_refresh).await?;
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

async fn execute_model_statement(
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
fn line_in_model(statement: &str, sql: &str, position: usize) -> Option<usize> {
    let offset = statement.find(sql)?;
    let byte = statement
        .char_indices()
        .nth(position.checked_sub(1)?)
        .map(|(index, _)| index)?;
    let within = byte.checked_sub(offset)?;
    (within <= sql.len()).then(|| sql[..within].matches('\n').count() + 1)
}

/// Postgres's own message (and detail) for an error, without the client library's wrapping.
pub fn database_message(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => {
            let mut message = db.message().to_owned();
            if let Some(detail) = db.detail() {
                message.push_str(&format!(" ({detail})"));
            }
            if let Some(hint) = db.hint() {
                message.push_str(&format!(" (hint: {hint})"));
            }
            message
        }
        None => error.to_string(),
    }
}

/// Runs every data test; returns the ones that found offending rows.
pub async fn run_data_tests(client: &Client, views: &ViewSet) -> Result<Vec<DataTestFailure>> {
    let mut failures = Vec::new();
    for test in &views.tests {
        let sql = test.sql.trim_end().trim_end_matches(';');
        // One evaluation of the test's query: the count of all offending rows rides along with
        // the first five.
        let query = format!(
            "select count(*) over () as offending_rows, row_to_json(offending)::text as sample \
             from ({sql}\n) as offending limit 5"
        );
        let rows = client
            .query(&query, &[])
            .await
            .map_err(|error| anyhow!("{}: {}", test.path, database_message(&error)))?;
        if let Some(first) = rows.first() {
            failures.push(DataTestFailure {
                name: test.name.clone(),
                offending_rows: first.get::<_, i64>(0) as u64,
                sample: rows.iter().map(|row| row.get(1)).collect(),
            });
        }
    }
    Ok(failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, sql: &str) -> (String, String) {
        (path.to_owned(), sql.to_owned())
    }

    #[test]
    fn orders_models_by_dependency_and_finds_tests() {
        let views = ViewSet::from_files(
            "test".into(),
            vec![
                file(
                    "reports/b.sql",
                    "-- materialized: view\nselect * from intermediate.a",
                ),
                file(
                    "intermediate/a.sql",
                    "-- materialized: table\nselect 1 as x",
                ),
                file(
                    "reports/c.sql",
                    "-- materialized: view\nselect * from reports.b join intermediate.a using (x)",
                ),
                file("tests/no_rows.sql", "select 1 where false"),
            ],
        )
        .unwrap();
        let order: Vec<&str> = views.models.iter().map(|m| m.relation.as_str()).collect();
        assert_eq!(order, ["intermediate.a", "reports.b", "reports.c"]);
        assert_eq!(views.tests.len(), 1);
        assert_eq!(views.models[2].depends_on.len(), 2);
    }

    #[test]
    fn ignores_names_in_comments_strings_and_longer_names() {
        let views = ViewSet::from_files(
            "test".into(),
            vec![
                file("reports/a.sql", "-- materialized: view\nselect 1 as x"),
                file(
                    "reports/b.sql",
                    "-- materialized: view\n-- reads reports.a\nselect 'reports.a' as y from reports.a_b /* reports.a */",
                ),
                file("reports/a_b.sql", "-- materialized: view\nselect 1 as x"),
            ],
        )
        .unwrap();
        let b = views
            .models
            .iter()
            .find(|m| m.relation == "reports.b")
            .unwrap();
        assert_eq!(b.depends_on.iter().collect::<Vec<_>>(), ["reports.a_b"]);
    }

    #[test]
    fn rejects_cycles_missing_headers_and_bad_names() {
        let cycle = ViewSet::from_files(
            "test".into(),
            vec![
                file(
                    "reports/a.sql",
                    "-- materialized: view\nselect * from reports.b",
                ),
                file(
                    "reports/b.sql",
                    "-- materialized: view\nselect * from reports.a",
                ),
            ],
        );
        assert!(cycle.unwrap_err().to_string().contains("cycle"));
        let missing = ViewSet::from_files("test".into(), vec![file("reports/a.sql", "select 1")]);
        assert!(missing
            .unwrap_err()
            .to_string()
            .contains("missing the header"));
        let unknown = ViewSet::from_files(
            "test".into(),
            vec![file("reports/a.sql", "-- materialized: cube\nselect 1")],
        );
        assert!(unknown
            .unwrap_err()
            .to_string()
            .contains("unknown materialization"));
        let bad_name = ViewSet::from_files(
            "test".into(),
            vec![file(
                "reports/Bad-Name.sql",
                "-- materialized: view\nselect 1",
            )],
        );
        assert!(bad_name.is_err());
        let nested = ViewSet::from_files(
            "test".into(),
            vec![file("a/b/c.sql", "-- materialized: view\nselect 1")],
        );
        assert!(nested.is_err());
    }

    #[test]
    fn incremental_models_are_keyed_by_customer_and_hour() {
        let views = ViewSet::from_files(
            "test".into(),
            vec![file(
                "reports/a.sql",
                "-- materialized: incremental\nselect 1 as customer_id, now() as hour;\n",
            )],
        )
        .unwrap();
        assert_eq!(views.models[0].unique_key, ["customer_id", "hour"]);
        assert!(!views.models[0].sql.ends_with(';'));
        let bad = ViewSet::from_files(
            "test".into(),
            vec![file(
                "reports/a.sql",
                "-- materialized: incremental\n-- unique_key: customer_id\nselect 1",
            )],
        );
        assert!(bad.is_err());
    }

    #[test]
    fn maps_error_positions_to_file_lines() {
        let sql = "select 1\nfrom nowhere";
        let statement = format!("create table x as\n{sql}");
        let position = statement.find("nowhere").unwrap() + 1;
        assert_eq!(line_in_model(&statement, sql, position), Some(2));
    }

    fn plan_views() -> ViewSet {
        ViewSet::from_files(
            "test".into(),
            vec![
                file("staging/base.sql", "-- materialized: view\nselect 1 as x"),
                file(
                    "intermediate/hourly.sql",
                    "-- materialized: incremental\nselect * from staging.base",
                ),
                file(
                    "reports/daily.sql",
                    "-- materialized: table\nselect * from intermediate.hourly",
                ),
                file(
                    "reports/totals.sql",
                    "-- materialized: materialized view\n-- unique_key: customer_id\nselect * from intermediate.hourly",
                ),
                file(
                    "reports/plain.sql",
                    "-- materialized: materialized view\nselect 1 as x",
                ),
            ],
        )
        .unwrap()
    }

    fn recorded(views: &ViewSet) -> Vec<ManagedRelation> {
        views
            .models
            .iter()
            .rev()
            .map(|model| ManagedRelation {
                relation: model.relation.clone(),
                materialized: model.materialized,
                checksum: model.checksum.clone(),
                source_path: model.path.clone(),
            })
            .collect()
    }

    /// `path (why): ` and the first five words of the statement's first line, for every statement
    /// of a plan but the tool's own.
    fn outline(plan: &RefreshPlan) -> Vec<String> {
        plan.steps
            .iter()
            .flat_map(|step| {
                step.statements.iter().map(move |statement| {
                    let first_line = statement.lines().next().unwrap_or_default();
                    let words: Vec<&str> = first_line.split_whitespace().take(5).collect();
                    format!("{} ({}): {}", step.path, step.why, words.join(" "))
                })
            })
            .filter(|line| !line.starts_with("campaign-elt"))
            .collect()
    }

    #[test]
    fn plans_a_first_build_in_dependency_order() {
        let views = plan_views();
        let plan = plan_refresh(&views, &[], false);
        assert_eq!(plan.steps[0].action, Action::Prepare);
        assert_eq!(
            outline(&plan),
            [
                "reports/plain.sql (new): create schema if not exists",
                "reports/plain.sql (new): create materialized view \"reports\".\"plain\" as",
                "staging/base.sql (new): create schema if not exists",
                "staging/base.sql (new): create view \"staging\".\"base\" as",
                "intermediate/hourly.sql (new): create schema if not exists",
                "intermediate/hourly.sql (new): create or replace temporary view",
                "intermediate/hourly.sql (new): create or replace temporary view",
                "intermediate/hourly.sql (new): create table \"intermediate\".\"hourly\" as",
                "intermediate/hourly.sql (new): create unique index \"intermediate_hourly_unique_key\" on",
                "intermediate/hourly.sql (new): create or replace temporary view",
                "intermediate/hourly.sql (new): create or replace temporary view",
                "reports/daily.sql (new): create schema if not exists",
                "reports/daily.sql (new): create table \"reports\".\"daily\" as",
                "reports/totals.sql (new): create schema if not exists",
                "reports/totals.sql (new): create materialized view \"reports\".\"totals\" as",
                "reports/totals.sql (new): create unique index \"reports_totals_unique_key\" on",
            ]
        );
        assert_eq!(plan.rebuilt().len(), 5);
        assert!(plan.dropped().is_empty());
    }

    #[test]
    fn plans_an_unchanged_set_as_refreshes_only() {
        let views = plan_views();
        let plan = plan_refresh(&views, &recorded(&views), false);
        assert_eq!(
            outline(&plan),
            [
                "reports/plain.sql (refresh): refresh materialized view \"reports\".\"plain\"",
                "intermediate/hourly.sql (refresh): delete from \"intermediate\".\"hourly\" as target",
                "intermediate/hourly.sql (refresh): insert into \"intermediate\".\"hourly\"",
                "reports/daily.sql (refresh): truncate \"reports\".\"daily\"",
                "reports/daily.sql (refresh): insert into \"reports\".\"daily\"",
                "reports/totals.sql (refresh): refresh materialized view concurrently \"reports\".\"totals\"",
            ]
        );
        assert!(plan.rebuilt().is_empty());
    }

    #[test]
    fn plans_a_change_as_drops_downstream_first_then_builds() {
        let views = plan_views();
        let mut managed = recorded(&views);
        for relation in &mut managed {
            if relation.relation == "intermediate.hourly" {
                relation.checksum = "old".into();
            }
        }
        managed.insert(
            0,
            ManagedRelation {
                relation: "reports.gone".into(),
                materialized: Materialization::View,
                checksum: "x".into(),
                source_path: "reports/gone.sql".into(),
            },
        );
        let plan = plan_refresh(&views, &managed, false);
        assert_eq!(
            outline(&plan),
            [
                "reports/gone.sql (file removed): drop view if exists \"reports\".\"gone\"",
                "reports/totals.sql (depends on intermediate.hourly): drop materialized view if exists",
                "reports/daily.sql (depends on intermediate.hourly): drop table if exists \"reports\".\"daily\"",
                "intermediate/hourly.sql (changed): drop table if exists \"intermediate\".\"hourly\"",
                "reports/plain.sql (refresh): refresh materialized view \"reports\".\"plain\"",
                "intermediate/hourly.sql (changed): create schema if not exists",
                "intermediate/hourly.sql (changed): create or replace temporary view",
                "intermediate/hourly.sql (changed): create or replace temporary view",
                "intermediate/hourly.sql (changed): create table \"intermediate\".\"hourly\" as",
                "intermediate/hourly.sql (changed): create unique index \"intermediate_hourly_unique_key\" on",
                "intermediate/hourly.sql (changed): create or replace temporary view",
                "intermediate/hourly.sql (changed): create or replace temporary view",
                "reports/daily.sql (depends on intermediate.hourly): create schema if not exists",
                "reports/daily.sql (depends on intermediate.hourly): create table \"reports\".\"daily\" as",
                "reports/totals.sql (depends on intermediate.hourly): create schema if not exists",
                "reports/totals.sql (depends on intermediate.hourly): create materialized view \"reports\".\"totals\" as",
                "reports/totals.sql (depends on intermediate.hourly): create unique index \"reports_totals_unique_key\" on",
            ]
        );
        assert_eq!(plan.dropped(), ["reports.gone"]);
        assert_eq!(
            plan.rebuilt(),
            ["intermediate.hourly", "reports.daily", "reports.totals"]
        );
        let full = plan_refresh(&views, &recorded(&views), true);
        assert_eq!(full.rebuilt().len(), 5);
        assert!(full
            .steps
            .iter()
            .skip(1)
            .all(|step| step.why == Why::FullRefresh));
    }

    #[test]
    fn renders_a_comment_before_every_statement() {
        let views = plan_views();
        let text = plan_refresh(&views, &recorded(&views), false).render();
        let lines: Vec<&str> = text.lines().filter(|line| !line.is_empty()).collect();
        assert!(lines[0].starts_with("-- campaign-elt (claim the queued stale keys"));
        assert!(text.contains(
            "-- reports/totals.sql (refresh)\nrefresh materialized view concurrently \"reports\".\"totals\";\n"
        ));
        // Every statement ends in `;` and a blank line; the next non-empty line is its comment.
        let statements = text.matches(";\n\n").count();
        let comments = text
            .split(";\n\n")
            .filter(|chunk| !chunk.is_empty())
            .filter(|chunk| {
                chunk.starts_with("-- ") && chunk.lines().next().unwrap().ends_with(')')
            })
            .count();
        assert_eq!(statements, comments);
    }

    #[test]
    fn built_in_views_parse() {
        let views = ViewSet::load(None).unwrap();
        for name in [
            "reports.page_loads",
            "reports.clicks",
            "reports.unique_user_clicks",
            "reports.click_through_rate",
        ] {
            assert!(
                views.models.iter().any(|m| m.relation == name),
                "{name} missing"
            );
        }
        assert!(!views.tests.is_empty());
    }
}
