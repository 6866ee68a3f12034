//! Transform: runs the analysts' SQL in `views/` inside PostgreSQL — builds, refreshes and tests it.
//!
//! Each `views/<schema>/<name>.sql` defines the relation `<schema>.<name>`; a header line
//! `-- materialized: view | table | incremental | materialized view` says how it is kept.
//! `views/tests/<name>.sql` are data tests: queries that return offending rows.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use include_dir::{include_dir, Dir};
use tokio_postgres::{Client, Transaction};

use crate::db::{quote_ident, quote_relation};
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
#[derive(Debug, Clone)]
struct ManagedRelation {
    materialized: Materialization,
    checksum: String,
}

async fn managed_relations(client: &Transaction<'_>) -> Result<BTreeMap<String, ManagedRelation>> {
    let rows = client
        .query(
            "select relation_name, materialized, checksum from elt.managed_relations order by built_at desc, relation_name",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let materialized: String = row.get(1);
            (
                row.get::<_, String>(0),
                ManagedRelation {
                    materialized: Materialization::parse(&materialized)
                        .unwrap_or(Materialization::Table),
                    checksum: row.get(2),
                },
            )
        })
        .collect())
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
            statements.push(
                "create or replace temporary view stale_ranges as select * from elt_all_ranges"
                    .into(),
            );
            statements.push(format!("create table {relation} as\n{sql}"));
            unique_index(&mut statements);
            statements.push(
                "create or replace temporary view stale_ranges as select * from elt_queued_ranges"
                    .into(),
            );
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

/// Prepares the stale key ranges of this refresh: claims the durable queue (restored if the
/// refresh rolls back) and defines `stale_ranges (customer_id, starts_at, ends_at)`.
const PREPARE_STALE_RANGES: &str = "
create temporary table elt_queued_ranges on commit drop as
with claimed as (
    delete from elt.stale_keys returning customer_id, hour
)
select distinct customer_id, hour as starts_at, hour + interval '1 hour' as ends_at
from claimed;
analyze elt_queued_ranges;
create temporary table elt_all_ranges on commit drop as
select customer_id, '-infinity'::timestamptz as starts_at, 'infinity'::timestamptz as ends_at
from (select distinct customer_id from elt.events) as customers;
analyze elt_all_ranges;
create or replace temporary view stale_ranges as select * from elt_queued_ranges;
";

/// Builds what changed and refreshes the rest for the stale keys, in one transaction.
pub async fn refresh(
    client: &mut Client,
    views: &ViewSet,
    run_id: Option<i64>,
    options: RefreshOptions,
) -> Result<RefreshSummary> {
    let transaction = client.transaction().await?;
    transaction
        .batch_execute(PREPARE_STALE_RANGES)
        .await
        .context("cannot claim the stale keys")?;
    let managed = managed_relations(&transaction).await?;

    // What must be rebuilt whole: new or changed files and everything downstream of them.
    let mut rebuild: BTreeSet<String> = BTreeSet::new();
    for model in &views.models {
        let changed = managed.get(&model.relation).is_none_or(|recorded| {
            recorded.checksum != model.checksum || recorded.materialized != model.materialized
        });
        if options.full_refresh
            || changed
            || model.depends_on.iter().any(|dep| rebuild.contains(dep))
        {
            rebuild.insert(model.relation.clone());
        }
    }
    let present: BTreeSet<&str> = views.models.iter().map(|m| m.relation.as_str()).collect();
    let removed: Vec<(&String, &ManagedRelation)> = managed
        .iter()
        .filter(|(name, _)| !present.contains(name.as_str()))
        .collect();

    // Drop: relations whose file is gone (newest first), then the rebuild set downstream-first.
    // Never cascade: an object the tool did not create stops the rebuild with a clear message.
    let mut dropped = Vec::new();
    let to_drop = removed
        .iter()
        .map(|(name, relation)| ((*name).clone(), relation.materialized))
        .chain(
            views
                .models
                .iter()
                .rev()
                .filter(|m| rebuild.contains(&m.relation) && managed.contains_key(&m.relation))
                .map(|m| (m.relation.clone(), managed[&m.relation].materialized)),
        );
    for (name, materialized) in to_drop {
        let statement = format!(
            "drop {} if exists {}",
            materialized.drop_keyword(),
            quote_relation(&name)
        );
        if let Err(error) = transaction.batch_execute(&statement).await {
            let message = database_message(&error);
            if message.contains("depend") {
                bail!(
                    "cannot rebuild {name}: objects that campaign-elt did not create depend on it ({message}); \
                     drop them, refresh, then re-create them"
                );
            }
            return Err(anyhow!("cannot drop {name}: {message}"));
        }
        transaction
            .execute(
                "delete from elt.managed_relations where relation_name = $1",
                &[&name],
            )
            .await?;
        if !present.contains(name.as_str()) {
            dropped.push(name);
        }
    }

    for model in &views.models {
        let is_rebuild = rebuild.contains(&model.relation);
        if is_rebuild {
            let schema = model.relation.split('.').next().unwrap_or("public");
            transaction
                .batch_execute(&format!(
                    "create schema if not exists {}",
                    quote_ident(schema)
                ))
                .await
                .with_context(|| format!("{}: cannot create schema {schema}", model.path))?;
        }
        for statement in model_statements(model, is_rebuild) {
            execute_model_statement(&transaction, model, &statement).await?;
        }
        if is_rebuild {
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

    let full_refresh = options.full_refresh;
    let rebuilt: Vec<String> = views
        .models
        .iter()
        .filter(|m| rebuild.contains(&m.relation))
        .map(|m| m.relation.clone())
        .collect();
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
        dropped_relations: dropped,
    })
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
        let query = format!(
            "select (select count(*) from ({sql}\n) as offending) as offending_rows, \
             array(select row_to_json(sample)::text from ({sql}\n) as sample limit 5) as sample"
        );
        let row = client
            .query_one(&query, &[])
            .await
            .map_err(|error| anyhow!("{}: {}", test.path, database_message(&error)))?;
        let offending: i64 = row.get(0);
        if offending > 0 {
            failures.push(DataTestFailure {
                name: test.name.clone(),
                offending_rows: offending as u64,
                sample: row.get(1),
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
